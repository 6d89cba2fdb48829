// switchyard-server: parses flags (or a --flagfile), starts the gateway and
// waits for SIGTERM or SIGINT, then drains and exits.

#include <openssl/crypto.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/common/clock.h"
#include "server/common/log.h"
#include "server/crypto/secret.h"
#include "server/server.h"
#include "server/startup_keys.h"

ABSL_FLAG(std::string, listen, "0.0.0.0:50051",
          "gRPC listen address (host:port); port 0 picks a free port");
ABSL_FLAG(std::string, data_dir, "/var/lib/switchyard",
          "directory of the embedded SQLite store (created if missing)");
ABSL_FLAG(std::string, database_url, "",
          "PostgreSQL store shared by several replicas, as a libpq URI or connection string "
          "(tables go to the first schema of its search_path); empty uses the embedded store "
          "in --data_dir");
ABSL_FLAG(std::string, database_password_file, "",
          "file holding the PostgreSQL password (else SWITCHYARD_DATABASE_PASSWORD, or libpq's "
          "own sources)");
ABSL_FLAG(int32_t, database_pool_size, 8, "PostgreSQL connections kept per replica");
ABSL_FLAG(absl::Duration, database_statement_timeout, absl::Seconds(10),
          "longest a PostgreSQL statement may run, and longest a call waits for a connection");
ABSL_FLAG(std::string, replica_id, "",
          "names this replica in delivery leases; a replica restarted with the same id takes "
          "its lanes back at once. Default: the embedded store's only replica, or "
          "HOSTNAME-PID with --database_url");
ABSL_FLAG(absl::Duration, delivery_lease_ttl, absl::Seconds(15),
          "how long a replica's delivery leases last unrenewed: the longest its connections "
          "wait for another replica after it dies");
ABSL_FLAG(int64_t, delivery_max_unread_bytes, int64_t{64} << 20,
          "a StreamEvents call whose client leaves more bytes unread is cancelled (the client "
          "sees CANCELLED), and its events go to other streams without using an attempt; at "
          "least 64 KiB");
ABSL_FLAG(std::string, catalog_file, "",
          "system catalog (text format of switchyard.v1.SystemCatalogConfig); empty uses the "
          "built-in catalog, a copy of config/catalog.textproto");
ABSL_FLAG(absl::Duration, drain_deadline, absl::Seconds(20),
          "on SIGTERM, how long in-flight webhooks (10s at most) and calls may take, together, "
          "before they are cut off");
ABSL_FLAG(absl::Duration, maintenance_interval, absl::Seconds(1),
          "how often expired credit reservations are released");
ABSL_FLAG(absl::Duration, idempotency_retention, absl::Hours(48),
          "how long request_id records are kept (at least 24h)");
ABSL_FLAG(absl::Duration, default_reservation_ttl, absl::Minutes(10),
          "TTL of a credit reservation made without one");
ABSL_FLAG(std::string, port_file, "",
          "if set, the bound gRPC port is written to this file once serving; '-' writes it "
          "to stdout");
ABSL_FLAG(std::string, master_key_file, "",
          "master keyring file (lines ID:BASE64KEY, first is primary); alternatively the "
          "SWITCHYARD_MASTER_KEY environment variable. Required unless --dev_mode");
ABSL_FLAG(std::string, bootstrap_operator_key_file, "",
          "file holding the first operator key (syo_...); alternatively the "
          "SWITCHYARD_OPERATOR_KEY environment variable");
ABSL_FLAG(bool, dev_mode, false,
          "LOCAL USE ONLY: generate a master key and an operator key into the data directory "
          "when none is given");
ABSL_FLAG(std::string, tls_cert_file, "", "PEM certificate chain: serve gRPC over TLS");
ABSL_FLAG(std::string, tls_key_file, "", "PEM private key of --tls_cert_file");
ABSL_FLAG(std::string, tls_client_ca_file, "",
          "PEM CA bundle: require and verify client certificates (mutual TLS)");
ABSL_FLAG(absl::Duration, tls_reload_interval, absl::Minutes(1),
          "how often the TLS files are read again, so that a renewed certificate is served "
          "without a restart");
ABSL_FLAG(std::string, plaintext_listen, "",
          "with TLS, also listen in plaintext here for loopback clients (a loopback address, "
          "for example 127.0.0.1:50052)");
ABSL_FLAG(std::string, health_listen, "",
          "plaintext listener serving only grpc.health.v1, for probes (for example "
          "0.0.0.0:8081)");
ABSL_FLAG(std::string, http_listen, "0.0.0.0:8080",
          "HTTP listener for webhooks (IP:port; port 0 picks a free port; empty disables it)");
ABSL_FLAG(absl::Duration, http_request_timeout, absl::Seconds(30),
          "time allowed to receive one HTTP request (or to wait for the next on a kept-alive "
          "connection), above 0 and at most 1h; slower requests are answered 408");
ABSL_FLAG(absl::Duration, webhook_tolerance, absl::Minutes(5),
          "accepted distance between webhook-timestamp and the gateway's clock");
ABSL_FLAG(int64_t, webhook_max_body_bytes, 1 << 20, "largest webhook body accepted (413 above)");
ABSL_FLAG(double, webhook_rate_per_connection, 200,
          "webhooks per second accepted per connection before 429");
ABSL_FLAG(double, webhook_burst_per_connection, 400, "burst above the rate per connection");
ABSL_FLAG(absl::Duration, webhook_secret_cache_ttl, absl::Seconds(10),
          "how long a connection's webhook secrets are reused before they are read again (in "
          "the background; a rotation or revocation drops them at once)");
ABSL_FLAG(absl::Duration, auth_cache_ttl, absl::Seconds(10),
          "how long a verified credential is reused before the store is read again; bounds how "
          "long a revocation made by another replica takes to apply");
ABSL_FLAG(absl::Duration, event_retention, absl::Hours(24 * 7),
          "how long events are kept, and the window of webhook-id deduplication (at least 24h)");
ABSL_FLAG(absl::Duration, grpc_max_connection_age, absl::Minutes(30),
          "close gRPC connections after this age so clients rebalance over replicas");
ABSL_FLAG(absl::Duration, grpc_max_connection_age_grace, absl::Minutes(35),
          "time given to calls on a connection closed for its age (at least 3m); event streams "
          "renew themselves within it (after the connection age, or the grace less 90s if "
          "shorter)");
ABSL_FLAG(int, grpc_max_threads, 256,
          "threads serving unary gRPC calls (at least 8); calls beyond them are answered "
          "RESOURCE_EXHAUSTED rather than queued");
ABSL_FLAG(absl::Duration, grpc_keepalive_time, absl::Minutes(1),
          "interval of keepalive pings on idle gRPC connections");
ABSL_FLAG(absl::Duration, health_check_min_interval, absl::Seconds(5),
          "shortest connection health-check interval accepted");
ABSL_FLAG(bool, outbound_allow_private, false,
          "let health checks and change feeds fetch loopback, private and link-local addresses");
ABSL_FLAG(bool, status_page_show_tenants, false,
          "show tenant and connection names in incidents on the public status page");
ABSL_FLAG(std::string, status_page_title, "Switchyard status", "title of the status page");
ABSL_FLAG(std::string, log_level, "info", "lowest log level written: debug, info, warning, error");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Switchyard integration gateway.\n"
      "Usage: switchyard-server [--flag=value ...] [--flagfile=/etc/switchyard/server.flags]");
  absl::ParseCommandLine(argc, argv);
  // Lock-order checking (a graph update on every lock) stays on in the test
  // binaries; the server skips its cost.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  using switchyard::log::Level;
  const std::string level = absl::GetFlag(FLAGS_log_level);
  switchyard::log::SetMinLevel(level == "debug"     ? Level::kDebug
                               : level == "warning" ? Level::kWarning
                               : level == "error"   ? Level::kError
                                                    : Level::kInfo);
  switchyard::log::CaptureGrpcLogs();

  // Signals are taken by sigwait below; block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  switchyard::ServerOptions options;
  options.listen_address = absl::GetFlag(FLAGS_listen);
  options.data_dir = absl::GetFlag(FLAGS_data_dir);
  options.catalog_file = absl::GetFlag(FLAGS_catalog_file);
  options.database_url = absl::GetFlag(FLAGS_database_url);
  options.delivery.replica_id = absl::GetFlag(FLAGS_replica_id);
  if (options.delivery.replica_id.empty()) {
    // One replica on the embedded store; several may share PostgreSQL, so
    // each needs its own name (a pod's HOSTNAME is unique, and a container
    // restarted in place keeps it and its PID 1).
    char host[256] = {0};
    ::gethostname(host, sizeof(host) - 1);
    options.delivery.replica_id =
        options.database_url.empty() ? "embedded" : absl::StrCat(host, "-", ::getpid());
  }
  options.delivery.lease_ttl = absl::GetFlag(FLAGS_delivery_lease_ttl);
  options.delivery.max_unread_bytes = absl::GetFlag(FLAGS_delivery_max_unread_bytes);
  options.database_pool_size = absl::GetFlag(FLAGS_database_pool_size);
  options.database_statement_timeout = absl::GetFlag(FLAGS_database_statement_timeout);
  {
    const char* env = std::getenv("SWITCHYARD_DATABASE_PASSWORD");
    auto password = switchyard::LoadDatabasePassword(absl::GetFlag(FLAGS_database_password_file),
                                                     env == nullptr ? "" : env);
    unsetenv("SWITCHYARD_DATABASE_PASSWORD");
    if (!password.ok()) {
      switchyard::log::Error("cannot start", {{"error", password.status().ToString()}});
      return 1;
    }
    options.database_password = *std::move(password);
  }
  options.drain_deadline = absl::GetFlag(FLAGS_drain_deadline);
  options.maintenance_interval = absl::GetFlag(FLAGS_maintenance_interval);
  options.idempotency_retention = absl::GetFlag(FLAGS_idempotency_retention);
  options.ledger.default_ttl = absl::GetFlag(FLAGS_default_reservation_ttl);

  options.tls_cert_file = absl::GetFlag(FLAGS_tls_cert_file);
  options.tls_key_file = absl::GetFlag(FLAGS_tls_key_file);
  options.tls_client_ca_file = absl::GetFlag(FLAGS_tls_client_ca_file);
  options.tls_reload_interval = absl::GetFlag(FLAGS_tls_reload_interval);
  options.plaintext_listen_address = absl::GetFlag(FLAGS_plaintext_listen);
  options.health_listen_address = absl::GetFlag(FLAGS_health_listen);
  options.api_keys.cache_ttl = absl::GetFlag(FLAGS_auth_cache_ttl);
  options.http.listen_address = absl::GetFlag(FLAGS_http_listen);
  options.http.request_timeout = absl::GetFlag(FLAGS_http_request_timeout);
  options.ingest.tolerance = absl::GetFlag(FLAGS_webhook_tolerance);
  options.event_retention = absl::GetFlag(FLAGS_event_retention);
  options.health_check_min_interval = absl::GetFlag(FLAGS_health_check_min_interval);
  options.status_page.show_tenants = absl::GetFlag(FLAGS_status_page_show_tenants);
  options.outbound_allow_private = absl::GetFlag(FLAGS_outbound_allow_private);
  options.status_page.title = absl::GetFlag(FLAGS_status_page_title);
  options.max_connection_age = absl::GetFlag(FLAGS_grpc_max_connection_age);
  options.max_connection_age_grace = absl::GetFlag(FLAGS_grpc_max_connection_age_grace);
  options.keepalive_time = absl::GetFlag(FLAGS_grpc_keepalive_time);
  options.max_rpc_threads = absl::GetFlag(FLAGS_grpc_max_threads);
  options.ingest.max_body_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_webhook_max_body_bytes));
  options.ingest.rate_per_second = absl::GetFlag(FLAGS_webhook_rate_per_connection);
  options.ingest.burst = absl::GetFlag(FLAGS_webhook_burst_per_connection);
  options.ingest.secret_cache_ttl = absl::GetFlag(FLAGS_webhook_secret_cache_ttl);

  switchyard::KeySources sources;
  sources.master_key_file = absl::GetFlag(FLAGS_master_key_file);
  sources.operator_key_file = absl::GetFlag(FLAGS_bootstrap_operator_key_file);
  sources.dev_mode = absl::GetFlag(FLAGS_dev_mode);
  sources.data_dir = options.data_dir;
  // Keys are taken out of the environment: overwritten where they are (the
  // process's initial environment, which /proc/<pid>/environ shows), then
  // removed, so that nothing this process starts inherits them.
  for (auto [name, target] : {std::pair{"SWITCHYARD_MASTER_KEY", &sources.master_key_env},
                              std::pair{"SWITCHYARD_OPERATOR_KEY", &sources.operator_key_env}}) {
    if (char* env = std::getenv(name)) {
      *target = env;
      OPENSSL_cleanse(env, std::strlen(env));
    }
    unsetenv(name);
  }
  if (sources.dev_mode) std::filesystem::create_directories(options.data_dir);
  auto keys = switchyard::LoadStartupKeys(sources);
  switchyard::crypto::Wipe(sources.master_key_env);
  switchyard::crypto::Wipe(sources.operator_key_env);
  if (!keys.ok()) {
    switchyard::log::Error("cannot start", {{"error", keys.status().ToString()}});
    return 1;
  }
  auto server = switchyard::Server::Start(options, std::move(keys->keyring),
                                          keys->bootstrap_operator_key, switchyard::SystemClock());
  switchyard::crypto::Wipe(keys->bootstrap_operator_key);
  if (!server.ok()) {
    switchyard::log::Error("cannot start", {{"error", server.status().ToString()}});
    return 1;
  }
  if (const std::string port_file = absl::GetFlag(FLAGS_port_file); port_file == "-") {
    std::printf("%d\n", (*server)->port());
    std::fflush(stdout);
  } else if (!port_file.empty()) {
    // Written to a temporary name and renamed so readers never see half a file.
    const std::string tmp = port_file + ".tmp";
    std::ofstream(tmp) << (*server)->port() << "\n";
    std::rename(tmp.c_str(), port_file.c_str());
  }

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  switchyard::log::Info("signal received", {{"signal", signal_number}});
  (*server)->Shutdown();
  return 0;
}
