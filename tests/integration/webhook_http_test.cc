// Webhook ingest over real HTTP against the real server binary: the happy
// path, every bad-input case, rate limiting, keep-alive, and no loss of an
// acknowledged webhook across kill -9, through to a streaming subscriber.

#include <algorithm>
#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "client/gateway_client.h"
#include "gtest/gtest.h"
#include "server/webhooks/signature.h"
#include "tests/support/event_consumer.h"
#include "tests/support/http_client.h"
#include "tests/support/server_process.h"
#include "tests/support/temp_dir.h"

namespace switchyard {
namespace {

using testing::Consumer;
using testing::HttpConnection;
using Reply = testing::HttpReply;

class WebhookHttpTest : public ::testing::Test {
 protected:
  void Start(std::vector<std::string> flags = {}) {
    auto server = testing::ServerProcess::Start(dir_.path(), flags);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    ASSERT_GT(server_->http_port(), 0);
    client::ClientOptions options;
    options.target = server_->target();
    options.api_key = server_->operator_key();
    client_ = client::GatewayClient::Create(options);
  }

  // Pool, tenant and `n` connections mx0..mx{n-1}, each with a signing secret.
  void Connect(int n) {
    v1::CreateCreditPoolRequest pool;
    pool.set_credit_pool_id("main");
    pool.mutable_credit_pool()->set_capacity(100);
    ASSERT_TRUE(client_->CreateCreditPool(pool).ok());
    v1::CreateTenantRequest tenant;
    tenant.set_tenant_id("acme");
    tenant.mutable_tenant()->set_credit_pool("creditPools/main");
    ASSERT_TRUE(client_->CreateTenant(tenant).ok());
    for (int i = 0; i < n; ++i) {
      v1::CreateConnectionRequest conn;
      conn.set_parent("tenants/acme");
      conn.set_connection_id(absl::StrCat("mx", i));
      conn.mutable_connection()->set_system("systems/maintainx");
      conn.mutable_connection()->set_deployment(v1::CLOUD);
      ASSERT_TRUE(client_->CreateConnection(conn).ok());
      v1::RotateWebhookSecretRequest rotate;
      rotate.set_name(absl::StrCat("tenants/acme/connections/mx", i, "/webhookSecret"));
      auto secret = client_->RotateWebhookSecret(rotate);
      ASSERT_TRUE(secret.ok()) << secret.status();
      EXPECT_EQ(secret->webhook_path(), absl::StrCat("/webhooks/tenants/acme/connections/mx", i));
      secrets_.push_back(*webhooks::ParseSecret(secret->secrets(0)));
    }
  }

  std::vector<std::pair<std::string, std::string>> Headers(int connection, const std::string& id,
                                                           const std::string& body,
                                                           int64_t skew_seconds = 0) {
    const std::string ts = absl::StrCat(absl::ToUnixSeconds(absl::Now()) + skew_seconds);
    return {{"content-type", "application/json"},
            {"webhook-id", id},
            {"webhook-timestamp", ts},
            {"webhook-signature",
             webhooks::Sign(secrets_[static_cast<size_t>(connection)], id, ts, body)}};
  }

  static std::string Path(int connection) {
    return absl::StrCat("/webhooks/tenants/acme/connections/mx", connection);
  }

  // The connection's events, webhooks only unless `all`.
  std::vector<v1::Event> Events(int connection, bool all = false) {
    std::vector<v1::Event> out;
    v1::ListEventsRequest req;
    req.set_parent(absl::StrCat("tenants/acme/connections/mx", connection));
    req.set_page_size(1000);
    while (true) {
      auto page = client_->ListEvents(req);
      EXPECT_TRUE(page.ok()) << page.status();
      if (!page.ok() || page->events().empty()) return out;
      for (const v1::Event& e : page->events()) {
        if (all || e.source() == v1::Event::WEBHOOK) out.push_back(e);
      }
      req.set_after_sequence(page->last_sequence());
    }
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::ServerProcess> server_;
  std::unique_ptr<client::GatewayClient> client_;
  std::vector<crypto::Secret> secrets_;
};

TEST_F(WebhookHttpTest, AcceptedWebhooksAreStoredOnceAndListed) {
  Start();
  Connect(1);
  HttpConnection http(server_->http_port());
  const std::string body = R"({"type":"work_order.created","id":"wo-17"})";
  Reply first = http.Send("POST", Path(0), Headers(0, "evt-1", body), body);
  EXPECT_EQ(first.status, 200) << first.body;
  auto events = Events(0);
  ASSERT_EQ(events.size(), 1u);
  const int64_t seq = events[0].sequence();
  EXPECT_EQ(first.body, absl::StrCat(R"({"sequence":)", seq, R"(,"duplicate":false})"));
  // The same webhook again (a retry by the sender): 200, stored once.
  Reply again = http.Send("POST", Path(0), Headers(0, "evt-1", body), body);
  EXPECT_EQ(again.status, 200);
  EXPECT_EQ(again.body, absl::StrCat(R"({"sequence":)", seq, R"(,"duplicate":true})"));
  Reply second = http.Send("POST", Path(0), Headers(0, "evt-2", "{}"), "{}");
  EXPECT_EQ(second.body, absl::StrCat(R"({"sequence":)", seq + 1, R"(,"duplicate":false})"));
  events = Events(0);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].event_id(), "evt-1");
  EXPECT_EQ(events[0].body(), body);
  EXPECT_EQ(events[1].event_id(), "evt-2");
}

TEST_F(WebhookHttpTest, BadInputIsAnsweredPreciselyAndStoresNothing) {
  Start({"--webhook_max_body_bytes=1024"});
  Connect(1);
  HttpConnection http(server_->http_port());
  const std::string body = "{}";
  auto expect = [&](Reply reply, int status, const std::string& reason) {
    EXPECT_EQ(reply.status, status) << reason << ": " << reply.body;
    EXPECT_NE(reply.body.find(reason), std::string::npos) << reply.body;
  };
  expect(
      http.Send("POST", "/webhooks/tenants/acme/connections/nothing", Headers(0, "e1", body), body),
      404, "UNKNOWN_CONNECTION");
  expect(http.Send("POST", "/elsewhere", Headers(0, "e1", body), body), 404, "NOT_FOUND");
  Reply get = http.Send("GET", Path(0), {}, "");
  expect(get, 405, "METHOD_NOT_ALLOWED");
  EXPECT_EQ(get.headers["Allow"], "POST");
  auto text = Headers(0, "e2", body);
  text[0].second = "text/plain";
  expect(http.Send("POST", Path(0), text, body), 415, "UNSUPPORTED_CONTENT_TYPE");
  auto forged = Headers(0, "e3", body);
  expect(http.Send("POST", Path(0), forged, R"({"changed":true})"), 401, "SIGNATURE_MISMATCH");
  expect(http.Send("POST", Path(0), Headers(0, "e4", body, -600), body), 401,
         "TIMESTAMP_OUT_OF_TOLERANCE");
  auto missing = Headers(0, "e5", body);
  missing.pop_back();
  expect(http.Send("POST", Path(0), missing, body), 400, "MISSING_HEADER");
  const std::string large(2000, ' ');
  HttpConnection fresh(server_->http_port());
  expect(fresh.Send("POST", Path(0), Headers(0, "e6", large), large), 413, "BODY_TOO_LARGE");
  HttpConnection garbage(server_->http_port());
  garbage.SendRaw("THIS IS NOT HTTP\r\n\r\n");
  expect(garbage.Read(), 400, "MALFORMED_REQUEST");
  // A sender that ends its side in the middle of the body is told.
  HttpConnection cut(server_->http_port());
  cut.SendRaw(
      absl::StrCat("POST ", Path(0), " HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{"));
  cut.CloseSend();
  expect(cut.Read(), 400, "INCOMPLETE_REQUEST");
  // A repeated webhook-id is malformed, not the last one silently.
  auto two_ids = Headers(0, "e7", body);
  two_ids.emplace_back("webhook-id", "e8");
  expect(http.Send("POST", Path(0), two_ids, body), 400, "INVALID_WEBHOOK_ID");
  // Repeated webhook-signature lines are one list: a stale signature on
  // the last line does not hide the valid one.
  auto two_signatures = Headers(0, "two-signatures", body);
  two_signatures.emplace_back("webhook-signature", "v1,c3RhbGU=");
  EXPECT_EQ(http.Send("POST", Path(0), two_signatures, body).status, 200);
  // The connection that was refused everything still works.
  EXPECT_EQ(http.Send("POST", Path(0), Headers(0, "ok", body), body).status, 200);
  auto events = Events(0);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].event_id(), "two-signatures");
  EXPECT_EQ(events[1].event_id(), "ok");
  // Each refusal is counted by its reason, also those the listener answers
  // itself (body too large, malformed HTTP); a path that is no webhook URL
  // is not a webhook.
  const std::string metrics = http.Send("GET", "/metrics", {}, "").body;
  for (const char* reason :
       {"UNKNOWN_CONNECTION", "METHOD_NOT_ALLOWED", "UNSUPPORTED_CONTENT_TYPE",
        "SIGNATURE_MISMATCH", "TIMESTAMP_OUT_OF_TOLERANCE", "MISSING_HEADER", "BODY_TOO_LARGE",
        "MALFORMED_REQUEST", "INCOMPLETE_REQUEST", "INVALID_WEBHOOK_ID"}) {
    EXPECT_NE(metrics.find(
                  absl::StrCat("switchyard_webhooks_rejected_total{reason=\"", reason, "\"} 1\n")),
              std::string::npos)
        << reason;
  }
  EXPECT_EQ(metrics.find("reason=\"NOT_FOUND\""), std::string::npos);
  EXPECT_NE(metrics.find("switchyard_webhooks_received_total 12\n"), std::string::npos);
}

TEST_F(WebhookHttpTest, SlowRequestsAreAnswered408) {
  Start({"--http_request_timeout=1s"});
  Connect(1);
  HttpConnection slow(server_->http_port());
  slow.SendRaw("POST " + Path(0) + " HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{");
  // The server answers once its deadline passes; the read waits for that.
  Reply reply = slow.Read();
  EXPECT_EQ(reply.status, 408);
  EXPECT_NE(reply.body.find("REQUEST_TIMEOUT"), std::string::npos);
  HttpConnection scrape(server_->http_port());
  EXPECT_NE(scrape.Send("GET", "/metrics", {}, "")
                .body.find("switchyard_webhooks_rejected_total{reason=\"REQUEST_TIMEOUT\"} 1\n"),
            std::string::npos);
}

TEST_F(WebhookHttpTest, ANoisyConnectionIsRateLimitedWithRetryAfter) {
  Start({"--webhook_rate_per_connection=1", "--webhook_burst_per_connection=2"});
  Connect(2);
  HttpConnection http(server_->http_port());
  int limited = 0;
  std::string retry_after;
  for (int i = 0; i < 4; ++i) {
    const std::string id = absl::StrCat("e", i);
    Reply r = http.Send("POST", Path(0), Headers(0, id, "{}"), "{}");
    if (r.status == 429) {
      ++limited;
      retry_after = r.headers["Retry-After"];
    }
  }
  EXPECT_GE(limited, 1);
  EXPECT_FALSE(retry_after.empty());
  // Another connection is not affected.
  EXPECT_EQ(http.Send("POST", Path(1), Headers(1, "x", "{}"), "{}").status, 200);
}

TEST_F(WebhookHttpTest, WebhooksReachStreamsAndStreamsEndCleanlyOnShutdown) {
  Start();
  Connect(2);
  v1::CreateSubscriptionRequest sub;
  sub.set_parent("tenants/acme");
  sub.set_subscription_id("all");
  sub.mutable_subscription()->mutable_filter()->add_event_types("ticket.*");
  ASSERT_TRUE(client_->CreateSubscription(sub).ok());
  Consumer consumer(*client_, "tenants/acme/subscriptions/all");
  HttpConnection http(server_->http_port());
  const std::string body = R"({"type":"ticket.opened","id":7})";
  for (int c = 0; c < 2; ++c) {
    EXPECT_EQ(http.Send("POST", Path(c), Headers(c, absl::StrCat("wh-", c), body), body).status,
              200);
  }
  ASSERT_TRUE(consumer.WaitFor([](const auto& d) { return d.size() >= 2; }, absl::Seconds(30)));
  auto got = consumer.Deliveries();
  ASSERT_EQ(got.size(), 2u);
  for (const auto& d : got) {
    EXPECT_EQ(d.event_id, d.connection == "tenants/acme/connections/mx0" ? "wh-0" : "wh-1");
    EXPECT_EQ(d.attempt, 1);
  }
  // SIGTERM: the stream ends with UNAVAILABLE so the client reconnects
  // elsewhere, and the server exits well inside its drain deadline.
  const absl::Time before = absl::Now();
  EXPECT_EQ(server_->Terminate(), 0);
  EXPECT_EQ(consumer.Join().code(), absl::StatusCode::kUnavailable);
  EXPECT_LT(absl::Now() - before, absl::Seconds(15));
}

TEST_F(WebhookHttpTest, AStreamWhoseClientStopsReadingIsCancelledAndItsEventsMoveOn) {
  Start({"--delivery_max_unread_bytes=262144"});
  Connect(1);
  v1::CreateSubscriptionRequest sub;
  sub.set_parent("tenants/acme");
  sub.set_subscription_id("slow");
  // Only the cancellation, never the deadline, can take the events back;
  // and they were never seen, so it uses no attempt: with one allowed, none
  // becomes a dead letter.
  sub.mutable_subscription()->mutable_ack_deadline()->set_seconds(600);
  sub.mutable_subscription()->set_max_delivery_attempts(1);
  ASSERT_TRUE(client_->CreateSubscription(sub).ok());
  const std::string name = "tenants/acme/subscriptions/slow";
  // A client that opens a stream with generous flow control and never reads.
  std::unique_ptr<client::EventStream> stuck =
      client_->StreamEvents(name, /*max_outstanding_events=*/100000,
                            /*max_outstanding_bytes=*/int64_t{1} << 30);
  // 24 MB of events: more than gRPC's buffers take in for a client that
  // does not read (a few MB), and far more than the 256 KiB the server then
  // keeps for it.
  constexpr int kEvents = 3000;
  for (int batch = 0; batch < kEvents / 100; ++batch) {
    v1::PublishEventsRequest publish;
    publish.set_parent("tenants/acme/connections/mx0");
    for (int i = 0; i < 100; ++i) {
      v1::PublishedEvent* e = publish.add_events();
      e->set_event_id(absl::StrCat("big-", batch * 100 + i));
      e->set_body(absl::StrCat(R"({"pad":")", std::string(8000, 'x'), R"("})"));
    }
    ASSERT_TRUE(client_->PublishEvents(publish).ok());
  }
  // The stuck stream is cancelled, and a reading stream gets every event.
  Consumer consumer(*client_, name);
  EXPECT_TRUE(consumer.WaitFor(
      [](const auto& d) {
        std::set<std::string> ids;
        for (const auto& x : d) {
          if (absl::StartsWith(x.event_id, "big-")) ids.insert(x.event_id);
        }
        return ids.size() == kEvents;
      },
      absl::Seconds(60)))
      << "events held by a stream that does not read never moved on";
  stuck->Cancel();
}

TEST_F(WebhookHttpTest, EveryWebhookAnswered200SurvivesKillNineAndIsDelivered) {
  Start();
  constexpr int kConnections = 4;
  constexpr int kPosters = 16;
  Connect(kConnections);
  v1::CreateSubscriptionRequest sub;
  sub.set_parent("tenants/acme");
  sub.set_subscription_id("ordered");
  sub.mutable_subscription()->set_ordered(true);
  ASSERT_TRUE(client_->CreateSubscription(sub).ok());
  auto consumer = std::make_unique<Consumer>(*client_, "tenants/acme/subscriptions/ordered");

  std::atomic<bool> stop{false};
  std::atomic<int> acked_count{0};
  std::mutex mu;
  std::vector<std::vector<std::string>> acked(kPosters);  // in the order answered
  std::vector<std::thread> posters;
  for (int p = 0; p < kPosters; ++p) {
    posters.emplace_back([&, p] {
      const int connection = p % kConnections;
      HttpConnection http(server_->http_port());
      for (int i = 0; !stop.load(); ++i) {
        const std::string id = absl::StrCat("p", p, "-", i);
        const std::string body = absl::StrCat(R"({"poster":)", p, R"(,"n":)", i, "}");
        Reply r = http.Send("POST", Path(connection), Headers(connection, id, body), body);
        if (r.status != 200) return;  // the server is gone
        std::lock_guard<std::mutex> lock(mu);
        acked[static_cast<size_t>(p)].push_back(id);
        ++acked_count;
      }
    });
  }
  {
    // Kill once 400 webhooks were acknowledged and more are in flight.
    absl::Mutex m;
    absl::MutexLock lock(&m);
    auto enough = [&] { return acked_count.load() >= 400; };
    const absl::Time give_up = absl::Now() + absl::Seconds(60);
    while (!enough() && absl::Now() < give_up) {
      m.AwaitWithTimeout(absl::Condition(&enough), absl::Milliseconds(10));
    }
    ASSERT_GE(acked_count.load(), 400) << "the load never got going";
  }
  server_->Kill();
  stop = true;
  for (auto& t : posters) t.join();
  consumer->Join().IgnoreError();  // the connection broke
  std::vector<Consumer::Delivery> before = consumer->Deliveries();
  consumer.reset();

  Start();
  for (int connection = 0; connection < kConnections; ++connection) {
    std::map<std::string, int64_t> sequence_of;
    int64_t previous = 0;
    for (const v1::Event& e : Events(connection, /*all=*/true)) {
      EXPECT_EQ(e.sequence(), previous + 1);  // dense, in order
      previous = e.sequence();
      sequence_of[e.event_id()] = e.sequence();
    }
    for (int p = connection; p < kPosters; p += kConnections) {
      int64_t last = 0;
      for (const std::string& id : acked[static_cast<size_t>(p)]) {
        auto it = sequence_of.find(id);
        ASSERT_NE(it, sequence_of.end()) << "acknowledged webhook lost: " << id;
        EXPECT_GT(it->second, last) << "out of order: " << id;
        last = it->second;
      }
    }
  }

  // Every acknowledged webhook reaches the subscriber, before or after the
  // kill, and each stream saw each connection's events in sequence.
  std::set<std::string> expected;
  for (const auto& ids : acked) expected.insert(ids.begin(), ids.end());
  Consumer after(*client_, "tenants/acme/subscriptions/ordered");
  auto covered = [&](const std::vector<Consumer::Delivery>& deliveries) {
    std::set<std::string> seen;
    for (const auto& d : before) seen.insert(d.event_id);
    for (const auto& d : deliveries) seen.insert(d.event_id);
    return std::includes(seen.begin(), seen.end(), expected.begin(), expected.end());
  };
  EXPECT_TRUE(after.WaitFor(covered, absl::Seconds(60))) << "acknowledged webhooks not delivered";
  for (const std::vector<Consumer::Delivery>& deliveries : {before, after.Deliveries()}) {
    std::map<std::string, int64_t> last;
    for (const auto& d : deliveries) {
      EXPECT_GT(d.sequence, last[d.connection]) << d.connection << " out of order";
      last[d.connection] = d.sequence;
    }
  }
  EXPECT_GT(before.size(), 0u) << "nothing was delivered while the load ran";
}

}  // namespace
}  // namespace switchyard
