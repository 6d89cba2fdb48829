// The polling fallback against a fake external system on loopback: it serves
// a health endpoint and a change feed, goes down and comes back, and sends
// some events by webhook and some by feed. A subscriber sees each event
// once, whichever path brought it.

#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "client/gateway_client.h"
#include "gtest/gtest.h"
#include "server/api/http/http_server.h"
#include "server/webhooks/signature.h"
#include "tests/support/gateway_setup.h"
#include "tests/support/http_client.h"
#include "tests/support/server_process.h"
#include "tests/support/temp_dir.h"

namespace switchyard {
namespace {

// A connected system: GET /health and GET /feed?cursor=N (N events already
// seen), answering 503 to both while down.
class FakeSystem final : public api::HttpHandler {
 public:
  void Handle(api::HttpRequest request, Respond respond) override {
    absl::MutexLock lock(&mu_);
    api::HttpResponse response;
    if (down_) {
      response.status = 503;
      response.body = "{}";
      return respond(std::move(response));
    }
    if (request.target == "/health") return respond(std::move(response));
    if (request.target.rfind("/feed", 0) == 0) {
      size_t from = 0;
      const size_t at = request.target.find("cursor=");
      if (at != std::string::npos) from = std::stoul(request.target.substr(at + 7));
      std::string events;
      for (size_t i = from; i < feed_.size(); ++i) {
        absl::StrAppend(&events, events.empty() ? "" : ",", R"({"id":")", feed_[i],
                        R"(","type":"work_order.updated","time":"2026-11-28T06:00:00Z",)",
                        R"("data":{"wo":")", feed_[i], R"("}})");
      }
      ++polls_;
      response.body =
          absl::StrCat(R"({"events":[)", events, R"(],"next_cursor":")", feed_.size(), R"("})");
      return respond(std::move(response));
    }
    response.status = 404;
    respond(std::move(response));
  }
  void Add(const std::string& id) {
    absl::MutexLock lock(&mu_);
    feed_.push_back(id);
  }
  void SetDown(bool down) {
    absl::MutexLock lock(&mu_);
    down_ = down;
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> feed_ ABSL_GUARDED_BY(mu_);
  bool down_ ABSL_GUARDED_BY(mu_) = false;
  int polls_ ABSL_GUARDED_BY(mu_) = 0;
};

TEST(ChangeFeedTest, EventsByWebhookAndByFeedReachTheSubscriberOnceEach) {
  FakeSystem fake;
  api::HttpServerOptions fake_options;
  fake_options.listen_address = "127.0.0.1:0";
  auto fake_server = api::HttpServer::Start(fake_options, fake);
  ASSERT_TRUE(fake_server.ok()) << fake_server.status();
  const std::string base = absl::StrCat("http://127.0.0.1:", (*fake_server)->port());

  testing::TempDir dir;
  auto server = testing::ServerProcess::Start(
      dir.path(), {"--health_check_min_interval=50ms", "--outbound_allow_private"});
  ASSERT_TRUE(server.ok()) << server.status();
  client::ClientOptions options;
  options.target = (*server)->target();
  options.api_key = (*server)->operator_key();
  auto client = client::GatewayClient::Create(options);
  ASSERT_TRUE(
      testing::CreateTenantWithConnection(*client, "main", 10, "acme", "mx", "maintainx").ok());
  v1::RotateWebhookSecretRequest rotate;
  rotate.set_name("tenants/acme/connections/mx/webhookSecret");
  auto secret = client->RotateWebhookSecret(rotate);
  ASSERT_TRUE(secret.ok());
  const crypto::Secret key = *webhooks::ParseSecret(secret->secrets(0));
  v1::CreateSubscriptionRequest sub;
  sub.set_parent("tenants/acme");
  sub.set_subscription_id("work");
  sub.mutable_subscription()->mutable_filter()->add_event_types("work_order.*");
  ASSERT_TRUE(client->CreateSubscription(sub).ok());
  v1::CreateSubscriptionRequest health_sub;
  health_sub.set_parent("tenants/acme");
  health_sub.set_subscription_id("health");
  health_sub.mutable_subscription()->mutable_filter()->add_event_types(
      "switchyard.connection.health_changed");
  ASSERT_TRUE(client->CreateSubscription(health_sub).ok());
  auto health_stream = client->StreamEvents("tenants/acme/subscriptions/health");
  // The next health change's new state, e.g. "ONLINE".
  auto next_health = [&]() -> std::string {
    v1::StreamEventsResponse response;
    if (!health_stream->Next(&response) || response.received_events_size() == 0) return "";
    health_stream->Ack({response.received_events(0).ack_id()});
    const std::string& body = response.received_events(0).event().body();
    const size_t to = body.find(R"("to":")");
    return to == std::string::npos ? body : body.substr(to + 6, body.find('"', to + 6) - to - 6);
  };

  // The consumer: records every delivery, acknowledges it.
  absl::Mutex mu;
  std::multiset<std::string> delivered;  // guarded by mu
  std::map<std::string, int> sources;    // guarded by mu
  auto stream = client->StreamEvents("tenants/acme/subscriptions/work");
  std::thread consumer([&] {
    v1::StreamEventsResponse response;
    while (stream->Next(&response)) {
      std::vector<std::string> acks;
      absl::MutexLock lock(&mu);
      for (const auto& r : response.received_events()) {
        delivered.insert(r.event().event_id());
        sources[r.event().event_id()] = r.event().source();
        acks.push_back(r.ack_id());
      }
      stream->Ack(acks);
    }
  });
  auto await = [&](const std::set<std::string>& ids) {
    absl::MutexLock lock(&mu);
    auto all = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      for (const auto& id : ids) {
        if (delivered.count(id) == 0) return false;
      }
      return true;
    };
    return mu.AwaitWithTimeout(absl::Condition(&all), absl::Seconds(30));
  };
  testing::HttpConnection http((*server)->http_port());
  auto post = [&](const std::string& id) {
    const std::string body = absl::StrCat(R"({"type":"work_order.updated","wo":")", id, R"("})");
    const std::string ts = absl::StrCat(absl::ToUnixSeconds(absl::Now()));
    return http
        .Send("POST", "/webhooks/tenants/acme/connections/mx",
              {{"content-type", "application/json"},
               {"webhook-id", id},
               {"webhook-timestamp", ts},
               {"webhook-signature", webhooks::Sign(key, id, ts, body)}},
              body)
        .status;
  };

  // wo-1 comes by webhook first and by the feed later; wo-2 only by feed.
  ASSERT_EQ(post("wo-1"), 200);
  fake.Add("wo-1");
  fake.Add("wo-2");
  v1::SetConnectionHealthCheckRequest check;
  check.set_name("tenants/acme/connections/mx/health");
  check.mutable_check()->set_url(base + "/health");
  check.mutable_check()->mutable_interval()->set_nanos(100000000);
  check.mutable_check()->mutable_timeout()->set_nanos(100000000);
  ASSERT_TRUE(client->SetConnectionHealthCheck(check).ok());
  v1::SetConnectionChangeFeedRequest feed;
  feed.mutable_feed()->set_name("tenants/acme/connections/mx/changeFeed");
  feed.mutable_feed()->set_url(base + "/feed");
  feed.mutable_feed()->mutable_interval()->set_nanos(100000000);
  auto set = client->SetConnectionChangeFeed(feed);
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_TRUE(await({"wo-1", "wo-2"}));
  EXPECT_EQ(next_health(), "ONLINE");

  // The system goes down: wo-3 happens there, wo-4 still arrives by webhook.
  fake.SetDown(true);
  fake.Add("wo-3");
  fake.Add("wo-4");
  ASSERT_EQ(post("wo-4"), 200);
  EXPECT_TRUE(await({"wo-4"}));
  EXPECT_EQ(next_health(), "DEGRADED");
  EXPECT_EQ(next_health(), "OFFLINE");
  v1::GetConnectionChangeFeedRequest get;
  get.set_name("tenants/acme/connections/mx/changeFeed");
  // It comes back: the feed catches up with wo-3 (and wo-4 again, absorbed).
  fake.SetDown(false);
  EXPECT_TRUE(await({"wo-3"}));
  EXPECT_EQ(next_health(), "ONLINE");
  auto state = client->GetConnectionChangeFeed(get);
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->cursor(), "4");
  EXPECT_EQ(state->events_stored(), 2);  // wo-2, wo-3; wo-1 and wo-4 were there already

  // Every event is stored once, and was delivered once.
  v1::ListEventsRequest list;
  list.set_parent("tenants/acme/connections/mx");
  auto events = client->ListEvents(list);
  ASSERT_TRUE(events.ok());
  std::multiset<std::string> stored;
  for (const auto& e : events->events()) {
    if (e.event_id().rfind("wo-", 0) == 0) stored.insert(e.event_id());
  }
  EXPECT_EQ(stored, (std::multiset<std::string>{"wo-1", "wo-2", "wo-3", "wo-4"}));
  stream->Cancel();
  health_stream->Cancel();
  consumer.join();
  absl::MutexLock lock(&mu);
  EXPECT_EQ(delivered, (std::multiset<std::string>{"wo-1", "wo-2", "wo-3", "wo-4"}));
  EXPECT_EQ(sources["wo-1"], v1::Event::WEBHOOK);
  EXPECT_EQ(sources["wo-2"], v1::Event::POLL);
}

}  // namespace
}  // namespace switchyard
