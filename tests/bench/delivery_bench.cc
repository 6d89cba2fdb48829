// Streaming delivery against the real server.
//
//   delivery_bench [--events=20000] [--connections=16] [--rate=2000]
//                  [--latency_seconds=5]
//
// Throughput: `events` events (1 KiB bodies) are stored first, over
// `connections` connections; then they are received and acknowledged through
// StreamEvents on one stream, and on four streams of another subscription.
// The baseline, in the same run, is the polling API (ListEvents, 1,000 per
// page) reading the same events: the cost of reading and shipping them
// without any delivery bookkeeping.
//
// Latency: signed webhooks are posted over HTTP at a steady `rate` per second
// while one stream receives and acknowledges them; the latency of each is the
// time from its receive_time (set by the gateway when the webhook arrived)
// to its arrival at the subscriber, and also from the moment the poster sent
// it. Client and server share this machine's clock.

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <mutex>
#include <set>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "client/gateway_client.h"
#include "server/webhooks/signature.h"
#include "tests/support/http_client.h"
#include "tests/support/server_process.h"
#include "tests/support/temp_dir.h"

ABSL_FLAG(int, events, 20000, "events stored before the throughput runs");
ABSL_FLAG(int, connections, 16, "gateway connections the events are spread over");
ABSL_FLAG(int, rate, 2000, "webhooks per second during the latency run");
ABSL_FLAG(double, latency_seconds, 5, "duration of the latency run");

namespace switchyard {
namespace {

std::string ConnectionName(int i) { return absl::StrCat("tenants/acme/connections/c", i); }

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[std::min(values.size() - 1, static_cast<size_t>(p * values.size()))];
}

// Receives on `streams` streams of `subscription` until `expected` distinct
// events arrived; acknowledges every message at once. Returns events/s.
double Receive(client::GatewayClient& client, const std::string& subscription, int streams,
               int expected) {
  absl::Mutex mu;
  std::set<std::string> seen;  // guarded by mu
  std::vector<std::unique_ptr<client::EventStream>> open;
  for (int i = 0; i < streams; ++i) open.push_back(client.StreamEvents(subscription));
  const absl::Time start = absl::Now();
  std::vector<std::thread> threads;
  for (auto& stream : open) {
    threads.emplace_back([&, s = stream.get()] {
      v1::StreamEventsResponse response;
      while (s->Next(&response)) {
        std::vector<std::string> acks;
        for (const auto& r : response.received_events()) acks.push_back(r.ack_id());
        s->Ack(acks);
        absl::MutexLock lock(&mu);
        for (const auto& r : response.received_events()) seen.insert(r.event().name());
      }
    });
  }
  {
    absl::MutexLock lock(&mu);
    auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      return static_cast<int>(seen.size()) >= expected;
    };
    mu.AwaitWithTimeout(absl::Condition(&done), absl::Minutes(5));
  }
  const absl::Duration elapsed = absl::Now() - start;
  for (auto& stream : open) stream->Close();
  for (auto& t : threads) t.join();
  absl::MutexLock lock(&mu);
  if (static_cast<int>(seen.size()) < expected) {
    std::printf("  (only %zu of %d events arrived)\n", seen.size(), expected);
  }
  return static_cast<double>(seen.size()) / absl::ToDoubleSeconds(elapsed);
}

int Main() {
  const int events = absl::GetFlag(FLAGS_events);
  const int connections = absl::GetFlag(FLAGS_connections);
  testing::TempDir dir;
  auto server = testing::ServerProcess::Start(
      dir.path(),
      {"--webhook_rate_per_connection=1000000", "--webhook_burst_per_connection=1000000"});
  if (!server.ok()) {
    std::fprintf(stderr, "server: %s\n", server.status().ToString().c_str());
    return 1;
  }
  client::ClientOptions options;
  options.target = (*server)->target();
  options.api_key = (*server)->operator_key();
  auto client = client::GatewayClient::Create(options);
  v1::CreateCreditPoolRequest pool;
  pool.set_credit_pool_id("main");
  pool.mutable_credit_pool()->set_capacity(1000);
  v1::CreateTenantRequest tenant;
  tenant.set_tenant_id("acme");
  tenant.mutable_tenant()->set_credit_pool("creditPools/main");
  if (!client->CreateCreditPool(pool).ok() || !client->CreateTenant(tenant).ok()) return 1;
  std::vector<crypto::Secret> secrets;
  for (int i = 0; i < connections; ++i) {
    v1::CreateConnectionRequest conn;
    conn.set_parent("tenants/acme");
    conn.set_connection_id(absl::StrCat("c", i));
    conn.mutable_connection()->set_system("systems/maintainx");
    conn.mutable_connection()->set_deployment(v1::CLOUD);
    if (!client->CreateConnection(conn).ok()) return 1;
    v1::RotateWebhookSecretRequest rotate;
    rotate.set_name(ConnectionName(i) + "/webhookSecret");
    auto secret = client->RotateWebhookSecret(rotate);
    if (!secret.ok()) return 1;
    secrets.push_back(*webhooks::ParseSecret(secret->secrets(0)));
  }
  for (const char* id : {"one", "four"}) {
    v1::CreateSubscriptionRequest sub;
    sub.set_parent("tenants/acme");
    sub.set_subscription_id(id);
    if (!client->CreateSubscription(sub).ok()) return 1;
  }

  // Store the events.
  const std::string body =
      absl::StrCat(R"({"type":"work_order.updated","pad":")", std::string(980, 'x'), R"("})");
  for (int stored = 0, batch = 0; stored < events; ++batch) {
    v1::PublishEventsRequest req;
    req.set_parent(ConnectionName(batch % connections));
    for (int k = 0; k < 500 && stored < events; ++k, ++stored) {
      auto* e = req.add_events();
      e->set_event_id(absl::StrCat("pre-", stored));
      e->set_body(body);
    }
    if (auto r = client->PublishEvents(req); !r.ok()) {
      std::fprintf(stderr, "publish: %s\n", r.status().ToString().c_str());
      return 1;
    }
  }

  // Baseline: the polling API over the same events.
  absl::Time start = absl::Now();
  int64_t polled = 0;
  for (int i = 0; i < connections; ++i) {
    v1::ListEventsRequest req;
    req.set_parent(ConnectionName(i));
    req.set_page_size(1000);
    while (true) {
      auto page = client->ListEvents(req);
      if (!page.ok() || page->events().empty()) break;
      polled += page->events_size();
      req.set_after_sequence(page->last_sequence());
    }
  }
  const double baseline = static_cast<double>(polled) / absl::ToDoubleSeconds(absl::Now() - start);
  const double one = Receive(*client, "tenants/acme/subscriptions/one", 1, events);
  const double four = Receive(*client, "tenants/acme/subscriptions/four", 4, events);
  std::printf("delivery throughput, %d stored events of 1 KiB over %d connections:\n", events,
              connections);
  std::printf("  ListEvents polling (baseline)  %10.0f events/s  100.0%%\n", baseline);
  std::printf("  StreamEvents, 1 stream + acks  %10.0f events/s  %5.1f%%\n", one,
              100 * one / baseline);
  std::printf("  StreamEvents, 4 streams + acks %10.0f events/s  %5.1f%%\n", four,
              100 * four / baseline);

  // Latency at a steady webhook rate.
  v1::CreateSubscriptionRequest sub;
  sub.set_parent("tenants/acme");
  sub.set_subscription_id("latency");
  if (!client->CreateSubscription(sub).ok()) return 1;
  auto stream = client->StreamEvents("tenants/acme/subscriptions/latency");
  absl::Mutex mu;
  absl::flat_hash_map<std::string, absl::Time> sent;  // guarded by mu
  std::vector<double> from_receive, from_send;        // guarded by mu
  std::thread consumer([&] {
    v1::StreamEventsResponse response;
    while (stream->Next(&response)) {
      const absl::Time now = absl::Now();
      std::vector<std::string> acks;
      absl::MutexLock lock(&mu);
      for (const auto& r : response.received_events()) {
        acks.push_back(r.ack_id());
        const absl::Time received = absl::FromUnixSeconds(r.event().receive_time().seconds()) +
                                    absl::Nanoseconds(r.event().receive_time().nanos());
        from_receive.push_back(absl::ToDoubleMilliseconds(now - received));
        auto it = sent.find(r.event().event_id());
        if (it != sent.end()) from_send.push_back(absl::ToDoubleMilliseconds(now - it->second));
      }
      stream->Ack(acks);
    }
  });
  const int rate = absl::GetFlag(FLAGS_rate);
  constexpr int kPosters = 8;
  const absl::Duration duration = absl::Seconds(absl::GetFlag(FLAGS_latency_seconds));
  const absl::Duration interval = absl::Seconds(1) * kPosters / rate;
  std::atomic<int64_t> posted{0}, failed{0};
  const absl::Time begin = absl::Now();
  std::vector<std::thread> posters;
  for (int p = 0; p < kPosters; ++p) {
    posters.emplace_back([&, p] {
      testing::HttpConnection http((*server)->http_port());
      for (int i = 0;; ++i) {
        // Paced, with the posters spread evenly over each interval.
        const absl::Time due = begin + interval * i + interval * p / kPosters;
        if (due >= begin + duration) return;
        std::this_thread::sleep_until(absl::ToChronoTime(due));
        const int c = (p + i * kPosters) % connections;
        const std::string id = absl::StrCat("lat-", p, "-", i);
        const std::string ts = absl::StrCat(absl::ToUnixSeconds(absl::Now()));
        const std::string path = absl::StrCat("/webhooks/", ConnectionName(c));
        {
          absl::MutexLock lock(&mu);
          sent[id] = absl::Now();
        }
        testing::HttpReply reply = http.Send(
            "POST", path,
            {{"content-type", "application/json"},
             {"webhook-id", id},
             {"webhook-timestamp", ts},
             {"webhook-signature", webhooks::Sign(secrets[static_cast<size_t>(c)], id, ts, body)}},
            body);
        (reply.status == 200 ? posted : failed)++;
      }
    });
  }
  for (auto& t : posters) t.join();
  const double offered = static_cast<double>(posted.load()) / absl::ToDoubleSeconds(duration);
  {
    absl::MutexLock lock(&mu);
    auto all_in = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      return static_cast<int64_t>(from_receive.size()) >= posted.load();
    };
    mu.AwaitWithTimeout(absl::Condition(&all_in), absl::Seconds(30));
  }
  stream->Close();
  consumer.join();
  absl::MutexLock lock(&mu);
  std::printf("end-to-end latency at %.0f webhooks/s for %.0f s (%lld delivered, %lld failed):\n",
              offered, absl::ToDoubleSeconds(duration), static_cast<long long>(from_receive.size()),
              static_cast<long long>(failed.load()));
  std::printf("  received -> delivered   p50 %6.2f ms  p99 %6.2f ms  max %6.2f ms\n",
              Percentile(from_receive, 0.5), Percentile(from_receive, 0.99),
              Percentile(from_receive, 1.0));
  std::printf("  POST sent -> delivered  p50 %6.2f ms  p99 %6.2f ms  max %6.2f ms\n",
              Percentile(from_send, 0.5), Percentile(from_send, 0.99), Percentile(from_send, 1.0));
  (*server)->Terminate();
  return failed.load() == 0 ? 0 : 1;
}

}  // namespace
}  // namespace switchyard

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return switchyard::Main();
}
