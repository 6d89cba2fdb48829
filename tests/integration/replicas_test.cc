// Several gateway replicas on one PostgreSQL database, and the gateway across
// a restart of that database. PostgreSQL only.
//
// Three server processes share one schema. 64 concurrent clients spread over
// them connect, disconnect, reserve, commit, release and post webhooks; one
// replica is killed with kill -9 in the middle. Afterwards the credit
// invariant holds, the journal replays to the balances, and every webhook
// answered 200 (by any replica) reaches a subscriber streaming from another
// replica, in order per connection.

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "client/gateway_client.h"
#include "gtest/gtest.h"
#include "server/webhooks/signature.h"
#include "tests/support/credit_workload.h"
#include "tests/support/event_consumer.h"
#include "tests/support/http_client.h"
#include "tests/support/postgres_server.h"
#include "tests/support/server_process.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_store.h"

namespace switchyard {
namespace {

using testing::Consumer;
using testing::HttpConnection;

// Waits until `done()` holds or `timeout` passes; returns done().
bool Eventually(const std::function<bool()>& done, absl::Duration timeout) {
  absl::Mutex mu;
  absl::MutexLock lock(&mu);
  const absl::Time give_up = absl::Now() + timeout;
  while (!done() && absl::Now() < give_up) {
    mu.AwaitWithTimeout(absl::Condition(&done), absl::Milliseconds(20));
  }
  return done();
}

// Posts signed webhooks in a loop and records those answered 200, in order.
class Posters {
 public:
  struct Target {
    int http_port;
    std::string path;
    const crypto::Secret* secret;  // borrowed; outlives the posters
  };

  // Poster p posts to targets[p % size]. With `stop_on_error`, a poster stops
  // when its replica is gone (the connection fails); answers other than 200
  // are counted and the poster goes on (the database may come back).
  Posters(std::vector<Target> targets, int count, bool stop_on_error)
      : targets_(std::move(targets)), acked_(static_cast<size_t>(count)) {
    for (int p = 0; p < count; ++p) {
      threads_.emplace_back([this, p, stop_on_error] { Run(p, stop_on_error); });
    }
  }
  ~Posters() { Stop(); }

  void Stop() {
    stop_ = true;
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  int acked() const { return count_.load(); }
  int refused() const { return refused_.load(); }
  // Answers other than 200, by HTTP status (0: the connection failed).
  std::map<int, int> RefusedByStatus() {
    std::lock_guard<std::mutex> lock(mu_);
    return refused_by_status_;
  }
  // Ids answered 200, per poster, in the order answered.
  std::vector<std::vector<std::string>> Acked() {
    std::lock_guard<std::mutex> lock(mu_);
    return acked_;
  }
  const Target& TargetOf(int poster) const {
    return targets_[static_cast<size_t>(poster) % targets_.size()];
  }

 private:
  void Run(int p, bool stop_on_error) {
    const Target& target = TargetOf(p);
    auto http = std::make_unique<HttpConnection>(target.http_port);
    for (int i = 0; !stop_.load(); ++i) {
      const std::string id = absl::StrCat("p", p, "-", i);
      const std::string body = absl::StrCat(R"({"poster":)", p, R"(,"n":)", i, "}");
      const std::string ts = absl::StrCat(absl::ToUnixSeconds(absl::Now()));
      testing::HttpReply r =
          http->Send("POST", target.path,
                     {{"content-type", "application/json"},
                      {"webhook-id", id},
                      {"webhook-timestamp", ts},
                      {"webhook-signature", webhooks::Sign(*target.secret, id, ts, body)}},
                     body);
      if (r.status == 200) {
        std::lock_guard<std::mutex> lock(mu_);
        acked_[static_cast<size_t>(p)].push_back(id);
        ++count_;
        continue;
      }
      if (stop_on_error && r.status == 0) return;
      ++refused_;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (++refused_by_status_[r.status] == 1) {
          std::printf("first webhook answered %d: %s\n", r.status, r.body.c_str());
        }
      }
      // The connection may have been closed with the error: open a new one.
      http = std::make_unique<HttpConnection>(target.http_port);
      absl::Mutex m;
      absl::MutexLock lock(&m);
      m.AwaitWithTimeout(absl::Condition(
                             +[](std::atomic<bool>* s) { return s->load(); }, &stop_),
                         absl::Milliseconds(20));
    }
  }

  const std::vector<Target> targets_;
  std::atomic<bool> stop_{false};
  std::atomic<int> count_{0};
  std::atomic<int> refused_{0};
  std::mutex mu_;
  std::vector<std::vector<std::string>> acked_;  // guarded by mu_
  std::map<int, int> refused_by_status_;         // guarded by mu_
  std::vector<std::thread> threads_;
};

// Stops and joins the load's threads, also when a test returns early.
struct LoadThreads {
  std::atomic<bool>& stop;
  std::vector<std::thread> threads;
  void Join() {
    stop = true;
    for (auto& t : threads) {
      if (t.joinable()) t.join();
    }
  }
  ~LoadThreads() { Join(); }
};

class ReplicasTest : public ::testing::Test {
 protected:
  // Starts replica `i` on the schema of replica 0, with its keys.
  void StartReplica(int i, std::vector<std::string> flags = {}) {
    const std::string& dir = dirs_[i].path();
    if (i > 0) {
      for (const char* file : {"master.keyring", "operator.key", "postgres.url"}) {
        std::filesystem::copy_file(dirs_[0].path() + "/" + file, dir + "/" + file,
                                   std::filesystem::copy_options::overwrite_existing);
      }
    }
    auto server = testing::ServerProcess::Start(dir, flags);
    ASSERT_TRUE(server.ok()) << server.status();
    replicas_[i] = *std::move(server);
  }

  std::unique_ptr<client::GatewayClient> Client(int replica, int attempts = 4,
                                                const std::string& key = "") {
    client::ClientOptions options;
    options.target = replicas_[replica]->target();
    options.api_key = key.empty() ? replicas_[replica]->operator_key() : key;
    options.max_attempts = attempts;
    options.deadline = absl::Seconds(30);
    return client::GatewayClient::Create(options);
  }

  // Tenant `tenant` in its own pool with `n` connections mx0.., each with a
  // webhook secret rotated through replica `secret_replica`.
  std::vector<crypto::Secret> WebhookConnections(client::GatewayClient& c,
                                                 client::GatewayClient& secret_client,
                                                 const std::string& tenant, int n) {
    v1::CreateCreditPoolRequest pool;
    pool.set_credit_pool_id(tenant + "-pool");
    pool.mutable_credit_pool()->set_capacity(100);
    EXPECT_TRUE(c.CreateCreditPool(pool).ok());
    v1::CreateTenantRequest t;
    t.set_tenant_id(tenant);
    t.mutable_tenant()->set_credit_pool("creditPools/" + tenant + "-pool");
    EXPECT_TRUE(c.CreateTenant(t).ok());
    std::vector<crypto::Secret> secrets;
    for (int i = 0; i < n; ++i) {
      v1::CreateConnectionRequest conn;
      conn.set_parent("tenants/" + tenant);
      conn.set_connection_id(absl::StrCat("mx", i));
      conn.mutable_connection()->set_system("systems/maintainx");
      conn.mutable_connection()->set_deployment(v1::CLOUD);
      EXPECT_TRUE(c.CreateConnection(conn).ok());
      v1::RotateWebhookSecretRequest rotate;
      rotate.set_name(absl::StrCat("tenants/", tenant, "/connections/mx", i, "/webhookSecret"));
      auto secret = secret_client.RotateWebhookSecret(rotate);
      EXPECT_TRUE(secret.ok()) << secret.status();
      if (secret.ok()) secrets.push_back(*webhooks::ParseSecret(secret->secrets(0)));
    }
    return secrets;
  }

  std::vector<v1::Event> Events(client::GatewayClient& c, const std::string& connection) {
    std::vector<v1::Event> out;
    v1::ListEventsRequest req;
    req.set_parent(connection);
    req.set_page_size(1000);
    while (true) {
      auto page = c.ListEvents(req);
      EXPECT_TRUE(page.ok()) << page.status();
      if (!page.ok() || page->events().empty()) return out;
      out.insert(out.end(), page->events().begin(), page->events().end());
      req.set_after_sequence(page->last_sequence());
    }
  }

  // Every id in `acked` is stored for its connection, in the order answered.
  void ExpectStoredInOrder(client::GatewayClient& c, const Posters& posters,
                           const std::vector<std::vector<std::string>>& acked,
                           const std::string& tenant, int connections) {
    for (int connection = 0; connection < connections; ++connection) {
      std::map<std::string, int64_t> sequence_of;
      int64_t previous = 0;
      for (const v1::Event& e :
           Events(c, absl::StrCat("tenants/", tenant, "/connections/mx", connection))) {
        EXPECT_EQ(e.sequence(), previous + 1);  // dense, in order
        previous = e.sequence();
        sequence_of[e.event_id()] = e.sequence();
      }
      for (size_t p = 0; p < acked.size(); ++p) {
        if (posters.TargetOf(static_cast<int>(p)).path !=
            absl::StrCat("/webhooks/tenants/", tenant, "/connections/mx", connection)) {
          continue;
        }
        int64_t last = 0;
        for (const std::string& id : acked[p]) {
          auto it = sequence_of.find(id);
          ASSERT_NE(it, sequence_of.end()) << "acknowledged webhook lost: " << id;
          EXPECT_GT(it->second, last) << "out of order: " << id;
          last = it->second;
        }
      }
    }
  }

  // Every acknowledged webhook reaches `consumer` or was in `earlier` (what
  // another stream of the subscription received), and each stream received
  // each connection's events in sequence.
  void ExpectDelivered(Consumer& consumer, const std::vector<Consumer::Delivery>& earlier,
                       const std::vector<std::vector<std::string>>& acked) {
    std::set<std::string> expected;
    for (const auto& ids : acked) expected.insert(ids.begin(), ids.end());
    auto covered = [&](const std::vector<Consumer::Delivery>& deliveries) {
      std::set<std::string> seen;
      for (const auto& d : earlier) seen.insert(d.event_id);
      for (const auto& d : deliveries) seen.insert(d.event_id);
      return std::includes(seen.begin(), seen.end(), expected.begin(), expected.end());
    };
    EXPECT_TRUE(consumer.WaitFor(covered, absl::Seconds(60)))
        << "acknowledged webhooks not delivered";
    for (const auto& deliveries : {earlier, consumer.Deliveries()}) {
      std::map<std::string, int64_t> last;
      for (const auto& d : deliveries) {
        EXPECT_GT(d.sequence, last[d.connection]) << d.connection << " out of order";
        last[d.connection] = d.sequence;
      }
    }
  }

  testing::TempDir dirs_[3];
  std::unique_ptr<testing::ServerProcess> replicas_[3];
};

TEST_F(ReplicasTest, ThreeReplicasShareCreditsTokensAndEventsAndSurviveKillNine) {
  ASSERT_TRUE(testing::TestStoreIsPostgres()) << "runs on PostgreSQL only";
  // Short leases, so that replicas balance and take over within seconds; a
  // long credential cache, so that only the announcement of a revocation can
  // end a cached key's use on another replica.
  for (int i = 0; i < 3; ++i) {
    StartReplica(
        i, {"--delivery_lease_ttl=3s", "--auth_cache_ttl=1h", "--webhook_secret_cache_ttl=1h"});
  }
  auto a = Client(0);
  auto b = Client(1);
  auto c = Client(2);

  // Tokens and secrets written through one replica work through the others.
  testing::CreditWorkload load([this](int id, int attempts) { return Client(id % 3, attempts); });
  load.CreatePoolAndTenants();
  v1::CreateApiKeyRequest key_req;
  key_req.set_parent("tenants/tenant-1");
  auto tenant_key = c->CreateApiKey(key_req);
  ASSERT_TRUE(tenant_key.ok()) << tenant_key.status();
  v1::GetTenantRequest get_tenant;
  get_tenant.set_name("tenants/tenant-1");
  EXPECT_TRUE(Client(0, 1, tenant_key->token())->GetTenant(get_tenant).ok());
  EXPECT_TRUE(Client(1, 1, tenant_key->token())->GetTenant(get_tenant).ok());
  // Revoked through C, it stops working on A and B, which had it cached.
  v1::RevokeApiKeyRequest revoke;
  revoke.set_name(tenant_key->api_key().name());
  ASSERT_TRUE(c->RevokeApiKey(revoke).ok());
  for (int replica : {0, 1}) {
    auto user = Client(replica, 1, tenant_key->token());
    EXPECT_TRUE(Eventually(
        [&] {
          return user->GetTenant(get_tenant).status().code() == absl::StatusCode::kUnauthenticated;
        },
        absl::Seconds(30)))
        << "a key revoked through replica C still works on replica " << replica;
  }
  constexpr int kConnections = 4;
  std::vector<crypto::Secret> secrets = WebhookConnections(*a, *c, "acme", kConnections);
  ASSERT_EQ(secrets.size(), static_cast<size_t>(kConnections));

  v1::CreateSubscriptionRequest sub;
  sub.set_parent("tenants/acme");
  sub.set_subscription_id("ordered");
  sub.mutable_subscription()->set_ordered(true);
  ASSERT_TRUE(a->CreateSubscription(sub).ok());
  // Streams from replicas B and C share the subscription; webhooks arrive
  // at A, B and C.
  Consumer consumer(*b, "tenants/acme/subscriptions/ordered");
  {
    // A webhook accepted by A alone reaches the stream on B, announced by
    // the database (B has no other reason to look).
    HttpConnection http(replicas_[0]->http_port());
    const std::string body = R"({"type":"ticket.opened"})";
    const std::string ts = absl::StrCat(absl::ToUnixSeconds(absl::Now()));
    const absl::Time posted = absl::Now();
    ASSERT_EQ(http.Send("POST", "/webhooks/tenants/acme/connections/mx0",
                        {{"content-type", "application/json"},
                         {"webhook-id", "first"},
                         {"webhook-timestamp", ts},
                         {"webhook-signature", webhooks::Sign(secrets[0], "first", ts, body)}},
                        body)
                  .status,
              200);
    ASSERT_TRUE(consumer.WaitFor(
        [](const auto& d) {
          return std::any_of(d.begin(), d.end(),
                             [](const auto& x) { return x.event_id == "first"; });
        },
        absl::Seconds(30)))
        << "a webhook accepted by replica A never reached the stream on replica B";
    std::printf("webhook on replica A to stream on replica B: %.1f ms\n",
                absl::ToDoubleMilliseconds(absl::Now() - posted));
  }
  auto on_c = std::make_unique<Consumer>(*c, "tenants/acme/subscriptions/ordered");

  // 48 credit clients and 16 webhook posters, spread over the replicas.
  constexpr int kCreditClients = 48;
  constexpr int kPosters = 16;
  std::vector<Posters::Target> targets;
  for (int p = 0; p < kPosters; ++p) {
    const int connection = p % kConnections;
    targets.push_back({replicas_[p % 3]->http_port(),
                       absl::StrCat("/webhooks/tenants/acme/connections/mx", connection),
                       &secrets[static_cast<size_t>(connection)]});
  }
  std::atomic<bool> stop{false};
  std::atomic<int> done{0}, reads{0};
  LoadThreads clients{stop, {}};
  clients.threads.emplace_back([&] { load.Watch(0, stop, reads); });
  for (int i = 0; i < kCreditClients; ++i) {
    clients.threads.emplace_back([&, i] { load.RunClient(i, 1000000, stop, done, 1); });
  }
  Posters posters(targets, kPosters, /*stop_on_error=*/true);

  // Kill C once the load runs and C's stream has its share of the work.
  ASSERT_TRUE(Eventually(
      [&] { return done.load() >= 600 && posters.acked() >= 300 && !on_c->Deliveries().empty(); },
      absl::Seconds(90)))
      << "the load never got going: " << done.load() << " credit calls, " << posters.acked()
      << " webhooks, " << on_c->Deliveries().size() << " delivered on C";
  replicas_[2]->Kill();        // C
  on_c->Join().IgnoreError();  // its connection broke
  const std::vector<Consumer::Delivery> delivered_on_c = on_c->Deliveries();
  const size_t delivered_on_b = consumer.Deliveries().size();
  // B and C shared the connections: neither had them all.
  std::set<std::string> connections_b, connections_c;
  for (const auto& d : consumer.Deliveries()) connections_b.insert(d.connection);
  for (const auto& d : delivered_on_c) connections_c.insert(d.connection);
  EXPECT_GT(delivered_on_b, 0u);
  EXPECT_LT(connections_c.size(), static_cast<size_t>(kConnections));
  const int done_at_kill = done.load();
  const int acked_at_kill = posters.acked();
  // The other two replicas go on serving.
  EXPECT_TRUE(Eventually(
      [&] { return done.load() >= done_at_kill + 400 && posters.acked() >= acked_at_kill + 200; },
      absl::Seconds(90)))
      << "the surviving replicas stopped serving: " << done.load() - done_at_kill
      << " credit calls and " << posters.acked() - acked_at_kill << " webhooks since the kill";
  clients.Join();
  for (const auto& [status, count] : posters.RefusedByStatus()) {
    std::printf("webhooks answered %d: %d\n", status, count);
    // Concurrent replicas may ask a sender to retry (503), never fail it.
    EXPECT_EQ(status, 503) << count << " webhooks answered " << status;
  }
  posters.Stop();
  EXPECT_GT(reads.load(), 0);

  load.VerifyEverything(kCreditClients);
  const auto acked = posters.Acked();
  ExpectStoredInOrder(*a, posters, acked, "acme", kConnections);
  // B took C's connections over when C's leases expired.
  ExpectDelivered(consumer, delivered_on_c, acked);

  // A webhook secret revoked through B stops verifying on A, which had it
  // cached for an hour.
  v1::RevokeWebhookSecretRequest revoke_secret;
  revoke_secret.set_name("tenants/acme/connections/mx0/webhookSecret");
  ASSERT_TRUE(b->RevokeWebhookSecret(revoke_secret).ok());
  int n = 0;
  EXPECT_TRUE(Eventually(
      [&] {
        HttpConnection http(replicas_[0]->http_port());
        const std::string id = absl::StrCat("after-revoke-", n++);
        const std::string body = "{}";
        const std::string ts = absl::StrCat(absl::ToUnixSeconds(absl::Now()));
        return http.Send("POST", "/webhooks/tenants/acme/connections/mx0",
                         {{"content-type", "application/json"},
                          {"webhook-id", id},
                          {"webhook-timestamp", ts},
                          {"webhook-signature", webhooks::Sign(secrets[0], id, ts, body)}},
                         body)
                   .status == 401;
      },
      absl::Seconds(30)))
      << "a webhook secret revoked through replica B still verifies on replica A";
}

// A counter of replica `i`'s /metrics, or -1 when absent.
double MetricOf(int http_port, const std::string& name) {
  HttpConnection http(http_port);
  const testing::HttpReply reply = http.Send("GET", "/metrics", {}, "");
  for (absl::string_view line : absl::StrSplit(reply.body, '\n')) {
    if (!absl::ConsumePrefix(&line, name + " ")) continue;
    double value = 0;
    if (absl::SimpleAtod(line, &value)) return value;
  }
  return -1;
}

TEST_F(ReplicasTest, AnAckOnAnotherReplicasStreamSettlesTheDelivery) {
  ASSERT_TRUE(testing::TestStoreIsPostgres()) << "runs on PostgreSQL only";
  for (int i = 0; i < 2; ++i) StartReplica(i, {"--delivery_lease_ttl=3s"});
  auto a = Client(0);
  auto b = Client(1);
  std::vector<crypto::Secret> secrets = WebhookConnections(*a, *a, "acme", 1);
  ASSERT_EQ(secrets.size(), 1u);
  v1::CreateSubscriptionRequest sub;
  sub.set_parent("tenants/acme");
  sub.set_subscription_id("anywhere");
  // Long enough that only an ack, never the deadline, settles a delivery.
  sub.mutable_subscription()->mutable_ack_deadline()->set_seconds(600);
  ASSERT_TRUE(a->CreateSubscription(sub).ok());
  const std::string name = "tenants/acme/subscriptions/anywhere";
  auto post = [&](const std::string& id) {
    HttpConnection http(replicas_[0]->http_port());
    const std::string body = R"({"type":"ticket.opened"})";
    const std::string ts = absl::StrCat(absl::ToUnixSeconds(absl::Now()));
    return http
        .Send("POST", "/webhooks/tenants/acme/connections/mx0",
              {{"content-type", "application/json"},
               {"webhook-id", id},
               {"webhook-timestamp", ts},
               {"webhook-signature", webhooks::Sign(secrets[0], id, ts, body)}},
              body)
        .status;
  };

  // Replica A delivers "one" on its stream, which does not ack it.
  std::unique_ptr<client::EventStream> on_a = a->StreamEvents(name);
  ASSERT_EQ(post("one"), 200);
  v1::StreamEventsResponse received;
  ASSERT_TRUE(on_a->Next(&received));
  ASSERT_EQ(received.received_events_size(), 1);
  ASSERT_EQ(received.received_events(0).event().event_id(), "one");
  const std::string ack_id = received.received_events(0).ack_id();

  // The ack comes on a stream of replica B, which does not hold the
  // connection: B passes it on, and A settles the delivery.
  std::unique_ptr<client::EventStream> on_b = b->StreamEvents(name);
  ASSERT_TRUE(on_b->Ack({ack_id}));
  EXPECT_TRUE(Eventually(
      [&] { return MetricOf(replicas_[0]->http_port(), "switchyard_events_acked_total") >= 1; },
      absl::Seconds(30)))
      << "replica A never received the ack sent to replica B";
  EXPECT_GE(MetricOf(replicas_[1]->http_port(), "switchyard_delivery_acks_forwarded_total"), 1);

  // A's stream ends; had "one" not been settled, it would go to B's stream
  // before anything newer. B gets "two" first.
  on_a->Close();
  while (on_a->Next(&received)) {
  }
  ASSERT_EQ(post("two"), 200);
  std::vector<std::string> seen;
  while (std::find(seen.begin(), seen.end(), "two") == seen.end() && on_b->Next(&received)) {
    for (const v1::ReceivedEvent& e : received.received_events()) {
      seen.push_back(e.event().event_id());
      on_b->Ack({e.ack_id()});
    }
  }
  EXPECT_EQ(seen, std::vector<std::string>{"two"});
  on_b->Cancel();
}

TEST_F(ReplicasTest, APostgresRestartUnderLoadLosesNothingAndNeedsNoGatewayRestart) {
  ASSERT_TRUE(testing::TestStoreIsPostgres()) << "runs on PostgreSQL only";
  auto pg = testing::PostgresServer::Start();
  ASSERT_TRUE(pg.ok()) << pg.status();
  const std::string password_file = dirs_[0].path() + "/db-password";
  std::ofstream(password_file) << (*pg)->password() << "\n";
  StartReplica(0, {"--database_url=" + (*pg)->url(), "--database_password_file=" + password_file,
                   "--maintenance_interval=100ms", "--database_statement_timeout=2s"});
  auto a = Client(0);
  constexpr int kConnections = 2;
  std::vector<crypto::Secret> secrets = WebhookConnections(*a, *a, "acme", kConnections);
  ASSERT_EQ(secrets.size(), static_cast<size_t>(kConnections));
  v1::CreateSubscriptionRequest sub;
  sub.set_parent("tenants/acme");
  sub.set_subscription_id("ordered");
  sub.mutable_subscription()->set_ordered(true);
  ASSERT_TRUE(a->CreateSubscription(sub).ok());

  std::vector<Posters::Target> targets;
  for (int p = 0; p < 8; ++p) {
    targets.push_back({replicas_[0]->http_port(),
                       absl::StrCat("/webhooks/tenants/acme/connections/mx", p % kConnections),
                       &secrets[static_cast<size_t>(p % kConnections)]});
  }
  Posters posters(targets, 8, /*stop_on_error=*/false);
  auto ready = [&] {
    auto health = Client(0, 1)->CheckHealth("switchyard.v1.Gateway");
    return health.ok() && health->status() == grpc::health::v1::HealthCheckResponse::SERVING;
  };
  ASSERT_TRUE(Eventually([&] { return posters.acked() >= 200; }, absl::Seconds(60)));

  ASSERT_TRUE((*pg)->Stop().ok());
  EXPECT_TRUE(Eventually([&] { return !ready(); }, absl::Seconds(30)))
      << "still ready without its database";
  const int refused_before = posters.refused();
  EXPECT_TRUE(Eventually([&] { return posters.refused() > refused_before; }, absl::Seconds(30)))
      << "webhooks were not refused while the database was gone";
  // Liveness stays: the process must not be restarted for this.
  auto live = Client(0, 1)->CheckHealth("");
  ASSERT_TRUE(live.ok()) << live.status();
  EXPECT_EQ(live->status(), grpc::health::v1::HealthCheckResponse::SERVING);

  ASSERT_TRUE((*pg)->Resume().ok());
  EXPECT_TRUE(Eventually(ready, absl::Seconds(30))) << "not ready after the database came back";
  const int acked_after = posters.acked();
  EXPECT_TRUE(Eventually([&] { return posters.acked() >= acked_after + 200; }, absl::Seconds(60)))
      << "webhooks are not accepted again";
  posters.Stop();

  const auto acked = posters.Acked();
  ExpectStoredInOrder(*a, posters, acked, "acme", kConnections);
  Consumer consumer(*a, "tenants/acme/subscriptions/ordered");
  ExpectDelivered(consumer, {}, acked);
}

}  // namespace
}  // namespace switchyard
