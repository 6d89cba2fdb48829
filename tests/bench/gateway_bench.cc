// Throughput of the gateway's credit operations against the real server, as a
// ratio to the transport ceiling measured in the same run.
//
//   gateway_bench [--callers=64] [--seconds=5] [--target=HOST:PORT]
//                 [--database_url=URL --database_password_file=F --replicas=N]
//                 [--phases=health,authed,connect,reserve]
//
// With --database_url the gateway runs on PostgreSQL, as N replicas sharing
// the database; callers are spread over the replicas.
//
// Without --target it starts switchyard-server on port 0 in a temp dir. Each
// phase runs `callers` threads, each with its own channel, for `seconds`:
//   health   grpc.health.v1.Health/Check (the baseline: same server, same
//            callers, no store work)
//   authed   GetSystem with an operator key, and anonymous: the same call
//            without a credential, for the cost of authentication
//   connect  CreateConnection + DeleteConnection pairs (cloud MaintainX)
//   reserve  ReserveCredits + ReleaseCreditReservation pairs
// and prints pairs (or calls) per second, p50/p99 latency of one pair, and
// the ratio to the baseline in calls per second.

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "client/gateway_client.h"
#include "server/auth/api_keys.h"
#include "server/common/clock.h"
#include "server/storage/sqlite/sqlite_store.h"
#include "tests/support/replica_set.h"
#include "tests/support/server_process.h"
#include "tests/support/temp_dir.h"

ABSL_FLAG(int, callers, 64, "concurrent callers");
ABSL_FLAG(double, seconds, 5, "duration of each phase");
ABSL_FLAG(std::string, target, "", "existing gateway; empty starts one");
ABSL_FLAG(std::string, api_key, "", "operator key for --target");
ABSL_FLAG(std::string, database_url, "", "PostgreSQL for the gateway; empty: embedded store");
ABSL_FLAG(std::string, database_password_file, "", "PostgreSQL password file");
ABSL_FLAG(int, replicas, 1, "gateway replicas sharing --database_url");
ABSL_FLAG(std::string, phases, "health,authed,connect,reserve", "phases to run");

namespace switchyard {
namespace {

// CPU seconds used so far by process `pid` (user + system), or -1.
double ProcessCpuSeconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return -1;
  std::vector<std::string> fields = absl::StrSplit(stat.substr(paren + 2), ' ');
  // Fields 14 and 15 of /proc/PID/stat (utime, stime) are at 11 and 12 here.
  if (fields.size() < 13) return -1;
  return static_cast<double>(std::stoll(fields[11]) + std::stoll(fields[12])) /
         static_cast<double>(sysconf(_SC_CLK_TCK));
}

std::vector<int> server_pids;  // the servers this process started

// CPU seconds of every started server, or -1.
double ServerCpuSeconds() {
  if (server_pids.empty()) return -1;
  double total = 0;
  for (int pid : server_pids) total += ProcessCpuSeconds(pid);
  return total;
}

struct Result {
  double server_cpu_us = -1;  // server CPU per operation, when known
  double per_second = 0;      // operations (pairs or calls) per second
  double p50_ms = 0;
  double p99_ms = 0;
  int64_t errors = 0;
};

// Runs `op(caller, client, iteration)` in `callers` threads for `duration`;
// caller i calls targets[i % targets.size()].
template <typename Op>
Result RunPhase(const std::vector<std::string>& targets, const std::string& api_key, int callers,
                absl::Duration duration, Op op) {
  std::vector<std::vector<double>> latencies(static_cast<size_t>(callers));
  std::atomic<int64_t> errors{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  std::vector<std::unique_ptr<client::GatewayClient>> clients;
  for (int i = 0; i < callers; ++i) {
    client::ClientOptions options;
    options.target = targets[static_cast<size_t>(i) % targets.size()];
    options.api_key = api_key;
    options.max_attempts = 1;
    clients.push_back(client::GatewayClient::Create(options));
    (void)clients.back()->CheckHealth("");  // connect before timing
  }
  const double cpu_before = ServerCpuSeconds();
  const absl::Time start = absl::Now();
  const absl::Time end = start + duration;
  for (int i = 0; i < callers; ++i) {
    threads.emplace_back([&, i] {
      auto& mine = latencies[static_cast<size_t>(i)];
      for (int64_t n = 0; absl::Now() < end; ++n) {
        const absl::Time t0 = absl::Now();
        if (!op(i, *clients[static_cast<size_t>(i)], n)) ++errors;
        mine.push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
      }
    });
  }
  for (auto& t : threads) t.join();
  const double elapsed = absl::ToDoubleSeconds(absl::Now() - start);
  std::vector<double> all;
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  Result r;
  r.per_second = static_cast<double>(all.size()) / elapsed;
  if (!all.empty()) {
    r.p50_ms = all[all.size() / 2];
    r.p99_ms = all[std::min(all.size() - 1, all.size() * 99 / 100)];
  }
  r.errors = errors.load();
  if (cpu_before >= 0 && !all.empty()) {
    r.server_cpu_us = (ServerCpuSeconds() - cpu_before) * 1e6 / static_cast<double>(all.size());
  }
  return r;
}

// Microseconds one ApiKeyManager::Authenticate of a valid key takes in steady
// state (parse, checksum, HMAC-SHA256, cache lookup), measured in-process on a
// real store.
double AuthenticateMicros() {
  testing::TempDir dir;
  storage::SqliteStoreOptions options;
  options.path = dir.path() + "/auth.db";
  auto store = storage::SqliteStore::Open(options);
  if (!store.ok()) return -1;
  auth::ApiKeyManager keys(auth::ApiKeyOptions{}, **store, SystemClock(), crypto::RandomSecret(32));
  const std::string token = auth::MintToken(auth::TokenKind::kOperator);
  if (!keys.EnsureBootstrapOperatorKey(token).ok()) return -1;
  constexpr int kCalls = 200000;
  const absl::Time start = absl::Now();
  for (int i = 0; i < kCalls; ++i) {
    if (!keys.Authenticate(token).ok()) return -1;
  }
  return absl::ToDoubleMicroseconds(absl::Now() - start) / kCalls;
}

int Main() {
  const int callers = absl::GetFlag(FLAGS_callers);
  const absl::Duration duration = absl::Seconds(absl::GetFlag(FLAGS_seconds));
  std::unique_ptr<testing::ReplicaSet> replicas;
  std::string target = absl::GetFlag(FLAGS_target);
  std::string api_key = absl::GetFlag(FLAGS_api_key);
  std::vector<std::string> targets = {target};
  if (target.empty()) {
    auto started =
        testing::ReplicaSet::Start(absl::GetFlag(FLAGS_replicas), absl::GetFlag(FLAGS_database_url),
                                   absl::GetFlag(FLAGS_database_password_file), {});
    if (!started.ok()) {
      std::fprintf(stderr, "cannot start server: %s\n", started.status().ToString().c_str());
      return 1;
    }
    replicas = *std::move(started);
    targets = replicas->targets();
    target = targets[0];
    api_key = replicas->replica(0).operator_key();
    server_pids = replicas->pids();
  }
  const std::vector<std::string> phase_list = absl::StrSplit(absl::GetFlag(FLAGS_phases), ',');
  auto wanted = [&](absl::string_view phase) {
    return std::find(phase_list.begin(), phase_list.end(), phase) != phase_list.end();
  };

  // One pool large enough that no phase runs out; one tenant per caller.
  client::ClientOptions admin_options;
  admin_options.target = target;
  admin_options.api_key = api_key;
  auto admin = client::GatewayClient::Create(admin_options);
  const std::string run = absl::StrCat(absl::ToUnixMicros(absl::Now()));
  v1::CreateCreditPoolRequest pool;
  pool.set_credit_pool_id("bench-" + run);
  pool.mutable_credit_pool()->set_capacity(1000000);
  if (auto p = admin->CreateCreditPool(pool); !p.ok()) {
    std::fprintf(stderr, "setup failed: %s\n", p.status().ToString().c_str());
    return 1;
  }
  std::vector<std::string> tenants;
  for (int i = 0; i < callers; ++i) {
    v1::CreateTenantRequest t;
    t.set_tenant_id(absl::StrCat("bench-", run, "-", i));
    t.mutable_tenant()->set_credit_pool("creditPools/" + pool.credit_pool_id());
    if (auto r = admin->CreateTenant(t); !r.ok()) {
      std::fprintf(stderr, "setup failed: %s\n", r.status().ToString().c_str());
      return 1;
    }
    tenants.push_back("tenants/" + t.tenant_id());
  }

  Result health, authed, anonymous, connect, reserve;
  if (wanted("health")) {
    health =
        RunPhase(targets, api_key, callers, duration,
                 [](int, client::GatewayClient& c, int64_t) { return c.CheckHealth("").ok(); });
  }
  if (wanted("authed")) {
    // Authentication cost: the same cheap call (catalog lookup, no store)
    // with a valid operator key, and anonymously (the catalog is open to
    // anyone). Alternating rounds, so that drift of a shared 2-core machine
    // hits both; each figure is the median round.
    auto get_system = [](int, client::GatewayClient& c, int64_t) {
      v1::GetSystemRequest r;
      r.set_name("systems/maintainx");
      return c.GetSystem(r).ok();
    };
    std::vector<Result> authed_rounds, anonymous_rounds;
    for (int round = 0; round < 3; ++round) {
      authed_rounds.push_back(RunPhase(targets, api_key, callers, duration / 3, get_system));
      anonymous_rounds.push_back(RunPhase(targets, "", callers, duration / 3, get_system));
    }
    auto median = [](std::vector<Result> rounds) {
      std::sort(rounds.begin(), rounds.end(),
                [](const Result& a, const Result& b) { return a.per_second < b.per_second; });
      Result m = rounds[rounds.size() / 2];
      for (const Result& r : rounds) m.errors = std::max(m.errors, r.errors);
      return m;
    };
    authed = median(authed_rounds);
    anonymous = median(anonymous_rounds);
  }
  if (wanted("connect")) {
    connect = RunPhase(targets, api_key, callers, duration,
                       [&](int i, client::GatewayClient& c, int64_t n) {
                         v1::CreateConnectionRequest req;
                         req.set_parent(tenants[static_cast<size_t>(i)]);
                         req.set_connection_id(absl::StrCat("c", n));
                         req.mutable_connection()->set_system("systems/maintainx");
                         req.mutable_connection()->set_deployment(v1::CLOUD);
                         auto created = c.CreateConnection(req);
                         if (!created.ok()) return false;
                         v1::DeleteConnectionRequest del;
                         del.set_name(created->name());
                         return c.DeleteConnection(del).ok();
                       });
  }
  if (wanted("reserve")) {
    reserve = RunPhase(targets, api_key, callers, duration,
                       [&](int i, client::GatewayClient& c, int64_t n) {
                         v1::ReserveCreditsRequest req;
                         req.set_parent(tenants[static_cast<size_t>(i)]);
                         req.set_reservation_id(absl::StrCat("r", n));
                         req.set_amount(2);
                         auto r = c.ReserveCredits(req);
                         if (!r.ok()) return false;
                         v1::ReleaseCreditReservationRequest rel;
                         rel.set_name(r->name());
                         return c.ReleaseCreditReservation(rel).ok();
                       });
  }

  std::printf("gateway_bench: %d callers, %.1fs per phase, %s\n", callers,
              absl::ToDoubleSeconds(duration),
              absl::GetFlag(FLAGS_database_url).empty()
                  ? ("target " + target).c_str()
                  : absl::StrCat("PostgreSQL, ", targets.size(), " replica(s)").c_str());
  std::printf("%-26s %10s %8s %8s %7s %18s %15s\n", "phase", "ops/s", "p50 ms", "p99 ms", "errors",
              "calls/s vs health", "server CPU/op");
  auto row = [&](const char* name, const Result& r, int calls_per_op) {
    std::printf(
        "%-26s %10.0f %8.2f %8.2f %7lld %17.1f%% %12.1f us\n", name, r.per_second, r.p50_ms,
        r.p99_ms, static_cast<long long>(r.errors),
        health.per_second > 0 ? 100.0 * r.per_second * calls_per_op / health.per_second : 0.0,
        r.server_cpu_us);
  };
  if (wanted("health")) row("health Check (baseline)", health, 1);
  if (wanted("authed")) {
    row("GetSystem, operator key", authed, 1);
    row("GetSystem, anonymous", anonymous, 1);
  }
  if (wanted("connect")) row("connect+disconnect pairs", connect, 2);
  if (wanted("reserve")) row("reserve+release pairs", reserve, 2);
  if (wanted("authed")) {
    std::printf("authenticated GetSystem / unauthenticated GetSystem: %.1f%%\n",
                100.0 * authed.per_second / anonymous.per_second);
    const double auth_us = AuthenticateMicros();
    std::printf(
        "authentication (verify a key, cached): %.2f us per call = %.1f%% of the server CPU of "
        "an authenticated GetSystem (%.1f us)\n",
        auth_us, authed.server_cpu_us > 0 ? 100.0 * auth_us / authed.server_cpu_us : -1.0,
        authed.server_cpu_us);
  }
  return health.errors + authed.errors + anonymous.errors + connect.errors + reserve.errors == 0
             ? 0
             : 1;
}

}  // namespace
}  // namespace switchyard

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return switchyard::Main();
}
