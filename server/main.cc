// switchyard-server: parses flags (or a --flagfile), starts the gateway and
// waits for SIGTERM or SIGINT, then drains and exits.

#include <signal.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/time/time.h"
#include "server/common/clock.h"
#include "server/common/log.h"
#include "server/server.h"

ABSL_FLAG(std::string, listen, "0.0.0.0:50051",
          "gRPC listen address (host:port); port 0 picks a free port");
ABSL_FLAG(std::string, data_dir, "/var/lib/switchyard",
          "directory of the embedded SQLite store (created if missing)");
ABSL_FLAG(std::string, catalog_file, "",
          "system catalog (text format of switchyard.v1.SystemCatalogConfig); empty uses the "
          "built-in catalog, a copy of config/catalog.textproto");
ABSL_FLAG(absl::Duration, drain_deadline, absl::Seconds(20),
          "on SIGTERM, how long in-flight calls may take before they are cancelled");
ABSL_FLAG(absl::Duration, maintenance_interval, absl::Seconds(1),
          "how often expired credit reservations are released");
ABSL_FLAG(absl::Duration, idempotency_retention, absl::Hours(48),
          "how long request_id records are kept (at least 24h)");
ABSL_FLAG(absl::Duration, default_reservation_ttl, absl::Minutes(10),
          "TTL of a credit reservation made without one");
ABSL_FLAG(std::string, port_file, "",
          "if set, the bound gRPC port is written to this file once serving; '-' writes it "
          "to stdout");
ABSL_FLAG(std::string, log_level, "info", "lowest log level written: debug, info, warning, error");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Switchyard integration gateway.\n"
      "Usage: switchyard-server [--flag=value ...] [--flagfile=/etc/switchyard/server.flags]");
  absl::ParseCommandLine(argc, argv);

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
  options.drain_deadline = absl::GetFlag(FLAGS_drain_deadline);
  options.maintenance_interval = absl::GetFlag(FLAGS_maintenance_interval);
  options.idempotency_retention = absl::GetFlag(FLAGS_idempotency_retention);
  options.ledger.default_ttl = absl::GetFlag(FLAGS_default_reservation_ttl);

  auto server = switchyard::Server::Start(options, switchyard::SystemClock());
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
