#include "server/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "server/api/grpc/gateway_service.h"
#include "server/catalog/catalog.h"
#include "server/common/log.h"
#include "server/common/status.h"
#include "server/connections/connections.h"
#include "server/storage/sqlite/sqlite_store.h"
#include "server/tenants/tenants.h"

namespace switchyard {

Server::Server(const ServerOptions& options, Clock& clock) : options_(options), clock_(clock) {}

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const ServerOptions& options, Clock& clock) {
  if (options.idempotency_retention < absl::Hours(24)) {
    return InvalidArgument("INVALID_OPTION", "idempotency retention must be at least 24h");
  }
  auto server = std::unique_ptr<Server>(new Server(options, clock));

  std::error_code ec;
  std::filesystem::create_directories(options.data_dir, ec);
  if (ec) {
    return Error(
        absl::StatusCode::kUnavailable, "DATA_DIR_UNAVAILABLE",
        absl::StrCat("cannot create data directory ", options.data_dir, ": ", ec.message()));
  }
  storage::SqliteStoreOptions store_options;
  store_options.path = (std::filesystem::path(options.data_dir) / "switchyard.db").string();
  SY_ASSIGN_OR_RETURN(server->store_, storage::SqliteStore::Open(store_options));

  if (options.catalog_file.empty()) {
    SY_ASSIGN_OR_RETURN(server->catalog_,
                        catalog::SystemCatalog::FromText(catalog::SystemCatalog::DefaultText()));
  } else {
    SY_ASSIGN_OR_RETURN(server->catalog_, catalog::SystemCatalog::FromFile(options.catalog_file));
  }
  SY_ASSIGN_OR_RETURN(server->ledger_,
                      credits::CreditLedger::Create(options.ledger, *server->store_, clock));
  server->connections_ = std::make_unique<connections::ConnectionManager>(
      *server->store_, *server->catalog_, *server->ledger_, clock);
  server->tenants_ = std::make_unique<tenants::TenantRegistry>(*server->store_, *server->ledger_,
                                                               *server->connections_, clock);
  server->service_ = std::make_unique<api::GatewayService>(*server->tenants_, *server->catalog_,
                                                           *server->ledger_, *server->connections_);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen_address, grpc::InsecureServerCredentials(),
                           &server->port_);
  builder.RegisterService(server->service_.get());
  server->grpc_server_ = builder.BuildAndStart();
  if (server->grpc_server_ == nullptr || server->port_ == 0) {
    return Error(absl::StatusCode::kUnavailable, "LISTEN_FAILED",
                 absl::StrCat("cannot listen on ", options.listen_address));
  }
  auto* health = server->grpc_server_->GetHealthCheckService();
  health->SetServingStatus(true);
  health->SetServingStatus("switchyard.v1.Gateway", true);

  server->maintenance_ = std::thread([s = server.get()] { s->MaintenanceLoop(); });
  log::Info("serving", {{"address", options.listen_address},
                        {"port", server->port_},
                        {"data_dir", options.data_dir},
                        {"systems", static_cast<int64_t>(server->catalog_->systems().size())}});
  return server;
}

Server::~Server() { Shutdown(); }

void Server::MaintenanceLoop() {
  absl::Time next_purge = absl::InfinitePast();
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      // Real time paces the loop; what counts as due is decided by clock_.
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), options_.maintenance_interval)) {
        return;
      }
    }
    absl::StatusOr<int> expired = ledger_->ExpireDue();
    if (!expired.ok()) {
      log::Warning("reservation expiry failed", {{"error", expired.status().ToString()}});
    } else if (*expired > 0) {
      log::Info("reservations expired", {{"count", static_cast<int64_t>(*expired)}});
    }
    const absl::Time now = clock_.Now();
    if (now >= next_purge) {
      next_purge = now + absl::Hours(1);
      absl::Status purged = store_->Write([&](storage::Transaction& tx) {
        return tx.DeleteIdempotencyBefore(now - options_.idempotency_retention).status();
      });
      if (!purged.ok()) log::Warning("idempotency purge failed", {{"error", purged.ToString()}});
    }
  }
}

void Server::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      mu_.Await(absl::Condition(&stopped_));
      return;
    }
    stopping_ = true;
  }
  log::Info("draining", {{"deadline_ms", absl::ToInt64Milliseconds(options_.drain_deadline)}});
  if (grpc_server_ != nullptr) {
    grpc_server_->GetHealthCheckService()->SetServingStatus(false);
    grpc_server_->Shutdown(absl::ToChronoTime(absl::Now() + options_.drain_deadline));
    grpc_server_->Wait();
    log::Info("grpc stopped");
  }
  if (maintenance_.joinable()) maintenance_.join();
  store_.reset();
  log::Info("stopped");
  absl::MutexLock lock(&mu_);
  stopped_ = true;
}

}  // namespace switchyard
