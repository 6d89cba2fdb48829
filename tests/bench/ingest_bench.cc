// Webhook ingest throughput against the real server, as a ratio to a
// do-nothing HTTP 200 endpoint (nginx) driven by the same load generator in
// the same run.
//
//   ingest_bench [--connections=64] [--seconds=5] [--body_bytes=1024]
//                [--ceiling_script=../shared/bench/http-ceiling]
//                [--database_url=URL --database_password_file=F --replicas=N]
//
// With --database_url the gateway runs on PostgreSQL, as N replicas sharing
// the database; the HTTP connections are spread over the replicas.
//
// Each of `connections` keep-alive HTTP/1.1 connections posts signed
// Standard Webhooks (unique ids, pre-signed before timing) as fast as it gets
// answers, spread over 8 gateway connections. The same generator then drives
// the ceiling endpoint when its script is available. Every 200 from the
// gateway means the webhook was durably committed (fsync'd) first.

// clang-format off
#include "server/api/http/beast.h"
// clang-format on

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/gateway_client.h"
#include "server/webhooks/signature.h"
#include "tests/support/replica_set.h"
#include "tests/support/server_process.h"
#include "tests/support/temp_dir.h"

ABSL_FLAG(int, connections, 64, "concurrent keep-alive HTTP connections");
ABSL_FLAG(double, seconds, 5, "duration of each run");
ABSL_FLAG(int, body_bytes, 1024, "webhook body size");
ABSL_FLAG(std::string, ceiling_script, "../shared/bench/http-ceiling",
          "script that starts/stops the do-nothing HTTP 200 endpoint; skipped when missing");
ABSL_FLAG(int, ceiling_port, 18089, "port for the ceiling endpoint");
ABSL_FLAG(std::string, database_url, "", "PostgreSQL for the gateway; empty: embedded store");
ABSL_FLAG(std::string, database_password_file, "", "PostgreSQL password file");
ABSL_FLAG(int, replicas, 1, "gateway replicas sharing --database_url");

namespace switchyard {
namespace {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr int kGatewayConnections = 8;

struct Request {
  std::string target;
  http::request<http::string_body> message;
};

struct Result {
  double per_second = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  int64_t non_200 = 0;
  int64_t failed = 0;
};

// Sends `requests[worker][i]` in order on one connection per worker until the
// time is up.
// Worker w connects to ports[w % ports.size()].
Result Drive(const std::vector<int>& ports, std::vector<std::vector<Request>>& requests,
             absl::Duration duration) {
  const int workers = static_cast<int>(requests.size());
  std::vector<std::vector<double>> latencies(static_cast<size_t>(workers));
  std::atomic<int64_t> non_200{0}, failed{0};
  std::vector<std::thread> threads;
  const absl::Time start = absl::Now();
  const absl::Time end = start + duration;
  for (int w = 0; w < workers; ++w) {
    threads.emplace_back([&, w] {
      const int port = ports[static_cast<size_t>(w) % ports.size()];
      asio::io_context ioc;
      tcp::socket socket(ioc);
      beast::error_code ec;
      socket.connect(
          tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)),
          ec);
      if (ec) {
        ++failed;
        return;
      }
      beast::flat_buffer buffer;
      auto& mine = latencies[static_cast<size_t>(w)];
      for (Request& r : requests[static_cast<size_t>(w)]) {
        if (absl::Now() >= end) break;
        const absl::Time t0 = absl::Now();
        http::write(socket, r.message, ec);
        http::response<http::string_body> res;
        if (!ec) http::read(socket, buffer, res, ec);
        if (ec) {
          ++failed;
          return;
        }
        mine.push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
        if (res.result_int() != 200) ++non_200;
      }
    });
  }
  for (auto& t : threads) t.join();
  const double elapsed = absl::ToDoubleSeconds(absl::Now() - start);
  std::vector<double> all;
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  Result result;
  result.per_second = static_cast<double>(all.size()) / elapsed;
  if (!all.empty()) {
    result.p50_ms = all[all.size() / 2];
    result.p99_ms = all[std::min(all.size() - 1, all.size() * 99 / 100)];
  }
  result.non_200 = non_200.load();
  result.failed = failed.load();
  return result;
}

// Pre-signed webhooks for each worker, enough for the run at up to 60,000/s.
std::vector<std::vector<Request>> MakeRequests(int workers, absl::Duration duration,
                                               const std::vector<crypto::Secret>& secrets,
                                               const std::string& tag) {
  const int per_worker = static_cast<int>(60000 * absl::ToDoubleSeconds(duration) / workers) + 100;
  const std::string body = absl::StrCat(
      R"({"type":"work_order.updated","data":")",
      std::string(static_cast<size_t>(std::max(0, absl::GetFlag(FLAGS_body_bytes) - 45)), 'x'),
      R"("})");
  const std::string ts = absl::StrCat(absl::ToUnixSeconds(absl::Now()));
  std::vector<std::vector<Request>> out(static_cast<size_t>(workers));
  for (int w = 0; w < workers; ++w) {
    const int connection = w % kGatewayConnections;
    const std::string target = absl::StrCat("/webhooks/tenants/bench/connections/c", connection);
    for (int i = 0; i < per_worker; ++i) {
      const std::string id = absl::StrCat(tag, "-", w, "-", i);
      http::request<http::string_body> req(http::verb::post, target, 11);
      req.set(http::field::host, "127.0.0.1");
      req.set(http::field::content_type, "application/json");
      req.set("webhook-id", id);
      req.set("webhook-timestamp", ts);
      req.set("webhook-signature",
              webhooks::Sign(secrets[static_cast<size_t>(connection)], id, ts, body));
      req.body() = body;
      req.prepare_payload();
      out[static_cast<size_t>(w)].push_back(Request{target, std::move(req)});
    }
  }
  return out;
}

int Main() {
  const int connections = absl::GetFlag(FLAGS_connections);
  const absl::Duration duration = absl::Seconds(absl::GetFlag(FLAGS_seconds));
  auto replicas = testing::ReplicaSet::Start(
      absl::GetFlag(FLAGS_replicas), absl::GetFlag(FLAGS_database_url),
      absl::GetFlag(FLAGS_database_password_file),
      {"--webhook_rate_per_connection=1000000", "--webhook_burst_per_connection=1000000"});
  if (!replicas.ok()) {
    std::fprintf(stderr, "cannot start server: %s\n", replicas.status().ToString().c_str());
    return 1;
  }
  std::vector<int> ports;
  for (int i = 0; i < (*replicas)->size(); ++i)
    ports.push_back((*replicas)->replica(i).http_port());
  client::ClientOptions options;
  options.target = (*replicas)->replica(0).target();
  options.api_key = (*replicas)->replica(0).operator_key();
  auto c = client::GatewayClient::Create(options);
  v1::CreateCreditPoolRequest pool;
  pool.set_credit_pool_id("bench");
  pool.mutable_credit_pool()->set_capacity(1000);
  v1::CreateTenantRequest tenant;
  tenant.set_tenant_id("bench");
  tenant.mutable_tenant()->set_credit_pool("creditPools/bench");
  if (!c->CreateCreditPool(pool).ok() || !c->CreateTenant(tenant).ok()) return 1;
  std::vector<crypto::Secret> secrets;
  for (int i = 0; i < kGatewayConnections; ++i) {
    v1::CreateConnectionRequest conn;
    conn.set_parent("tenants/bench");
    conn.set_connection_id(absl::StrCat("c", i));
    conn.mutable_connection()->set_system("systems/maintainx");
    conn.mutable_connection()->set_deployment(v1::CLOUD);
    v1::RotateWebhookSecretRequest rotate;
    rotate.set_name(absl::StrCat("tenants/bench/connections/c", i, "/webhookSecret"));
    if (!c->CreateConnection(conn).ok()) return 1;
    auto secret = c->RotateWebhookSecret(rotate);
    if (!secret.ok()) return 1;
    secrets.push_back(*webhooks::ParseSecret(secret->secrets(0)));
  }

  auto gateway_requests = MakeRequests(connections, duration, secrets, "gw");
  const Result gateway = Drive(ports, gateway_requests, duration);

  Result ceiling;
  bool have_ceiling = false;
  const std::string script = absl::GetFlag(FLAGS_ceiling_script);
  const int ceiling_port = absl::GetFlag(FLAGS_ceiling_port);
  if (std::filesystem::exists(script)) {
    const std::string start = absl::StrCat(script, " start ", ceiling_port, " >/dev/null 2>&1");
    if (std::system(start.c_str()) == 0) {
      auto ceiling_requests = MakeRequests(connections, duration, secrets, "ng");
      ceiling = Drive({ceiling_port}, ceiling_requests, duration);
      have_ceiling = true;
      std::system(absl::StrCat(script, " stop ", ceiling_port, " >/dev/null 2>&1").c_str());
    }
  }

  std::printf("ingest_bench: %d keep-alive connections, %d-byte signed webhooks, %.1fs, %s\n",
              connections, absl::GetFlag(FLAGS_body_bytes), absl::ToDoubleSeconds(duration),
              absl::GetFlag(FLAGS_database_url).empty()
                  ? "embedded store"
                  : absl::StrCat("PostgreSQL, ", (*replicas)->size(), " replica(s)").c_str());
  std::printf("%-28s %12s %9s %9s %8s %8s\n", "endpoint", "requests/s", "p50 ms", "p99 ms",
              "non-200", "failed");
  auto row = [](const char* name, const Result& r) {
    std::printf("%-28s %12.0f %9.2f %9.2f %8lld %8lld\n", name, r.per_second, r.p50_ms, r.p99_ms,
                static_cast<long long>(r.non_200), static_cast<long long>(r.failed));
  };
  row("gateway (durable 200)", gateway);
  if (have_ceiling) {
    row("nginx return 200 (ceiling)", ceiling);
    std::printf("gateway / ceiling: %.1f%%\n", 100.0 * gateway.per_second / ceiling.per_second);
  } else {
    std::printf("ceiling endpoint not run (no %s)\n", script.c_str());
  }
  return gateway.non_200 == 0 && gateway.failed == 0 ? 0 : 1;
}

}  // namespace
}  // namespace switchyard

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return switchyard::Main();
}
