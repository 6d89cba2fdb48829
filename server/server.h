#ifndef SWITCHYARD_SERVER_SERVER_H_
#define SWITCHYARD_SERVER_SERVER_H_

// The gateway process: owns the store, the domain modules and the gRPC
// server, in dependency order, and runs periodic maintenance (reservation
// expiry, idempotency-record cleanup).

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/api/http/http_server.h"
#include "server/auth/api_keys.h"
#include "server/common/clock.h"
#include "server/credits/ledger.h"
#include "server/crypto/keyring.h"
#include "server/delivery/engine.h"
#include "server/metrics/metrics.h"
#include "server/status/status_page.h"
#include "server/webhooks/ingestor.h"

namespace grpc {
class Server;
class ServerCredentials;
}  // namespace grpc

namespace switchyard {

namespace storage {
class Store;
class ChangeListener;
}  // namespace storage
namespace catalog {
class SystemCatalog;
}
namespace connections {
class ConnectionManager;
}
namespace tenants {
class TenantRegistry;
}
namespace vault {
class CredentialVault;
}
namespace events {
class EventLog;
}
namespace delivery {
class SubscriptionManager;
}
namespace health {
class HttpProber;
class HealthMonitor;
}  // namespace health
namespace incidents {
class IncidentLog;
}
namespace polling {
class FeedPoller;
}
namespace api {
class GatewayHttpHandler;
}
namespace api {
class GatewayService;
}

struct ServerOptions {
  // gRPC listen address; port 0 picks a free port. Default "0.0.0.0:50051".
  std::string listen_address = "0.0.0.0:50051";
  // Directory of the embedded store (created if missing). Default
  // "/var/lib/switchyard".
  std::string data_dir = "/var/lib/switchyard";
  // The PostgreSQL store shared by several replicas, instead of the embedded
  // one: a libpq connection string or URI (empty: embedded store), the
  // password when the URI has none, the connections kept open, and the
  // longest a statement may run.
  std::string database_url;
  std::string database_password;
  int database_pool_size = 8;
  absl::Duration database_statement_timeout = absl::Seconds(10);
  // System catalog file; empty uses the built-in catalog. Default empty.
  std::string catalog_file;
  // How long Shutdown waits for in-flight calls. Default 20s.
  absl::Duration drain_deadline = absl::Seconds(20);
  // How often due reservations are expired. Default 1s.
  absl::Duration maintenance_interval = absl::Seconds(1);
  // How long idempotency records are kept; at least 24h. Default 48h.
  absl::Duration idempotency_retention = absl::Hours(48);
  credits::LedgerOptions ledger;
  auth::ApiKeyOptions api_keys;
  // The HTTP listener (webhooks). An empty listen address disables it.
  api::HttpServerOptions http;
  webhooks::IngestOptions ingest;
  delivery::EngineOptions delivery;
  // How long events are kept; also the window in which a repeated webhook-id
  // or event_id is recognised. At least 24h. Default 7 days.
  absl::Duration event_retention = absl::Hours(24 * 7);
  // gRPC connections are closed after this age (with the grace below for
  // calls in flight, streams included), so that clients spread again over
  // replicas behind a Kubernetes Service. Defaults 30 min and 5 min.
  absl::Duration max_connection_age = absl::Minutes(30);
  absl::Duration max_connection_age_grace = absl::Minutes(35);
  // Interval of server keepalive pings on idle connections. Default 1 min.
  absl::Duration keepalive_time = absl::Minutes(1);
  // Threads serving unary gRPC calls (each call holds one until it is
  // answered; event streams hold none, a server-reflection stream one while
  // open), pollers included. A call arriving
  // when all are busy is answered RESOURCE_EXHAUSTED at once instead of
  // starting one more thread: a store that hangs costs a bounded number of
  // threads. At least 8. Default 256.
  int max_rpc_threads = 256;
  // Shortest connection health-check and change-feed interval accepted.
  // Default 5s.
  absl::Duration health_check_min_interval = absl::Seconds(5);
  // How often due health probes are started and results applied. Default
  // 100ms.
  absl::Duration health_tick = absl::Milliseconds(100);
  // Let health checks and change feeds fetch loopback, private and
  // link-local addresses (tests; trusted setups). Default off.
  bool outbound_allow_private = false;
  // The status page (/status on the HTTP listener).
  status::StatusPageOptions status_page;
  // TLS for the gRPC port: certificate chain and private key (PEM files).
  // Both empty: plaintext.
  std::string tls_cert_file;
  std::string tls_key_file;
  // With TLS: CA bundle (PEM) to verify client certificates; when set, every
  // client must present a certificate it signed (mutual TLS).
  std::string tls_client_ca_file;
  // With TLS: how often the three files are read again (a renewed
  // certificate is served to new connections without a restart). 1 s to
  // 24 h; default 1 minute.
  absl::Duration tls_reload_interval = absl::Minutes(1);
  // With TLS: an extra plaintext listener for loopback clients, serving every
  // service; it must be a loopback address (for example "127.0.0.1:50052").
  // Empty: none.
  std::string plaintext_listen_address;
  // A plaintext listener serving only the health service, on any address, for
  // probes that cannot speak TLS (for example "0.0.0.0:8081"). Empty: none.
  std::string health_listen_address;
};

// gRPC server credentials for `options`: plaintext, TLS, or TLS requiring and
// verifying client certificates. INVALID_ARGUMENT for an incomplete setting;
// NOT_FOUND when a file cannot be read.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const ServerOptions& options);

// Thread-safe.
class Server {
 public:
  // Opens the store, loads the catalog, starts serving. Errors: the store or
  // catalog cannot be loaded (kUnavailable, kInvalidArgument, kNotFound), the
  // address cannot be bound (kUnavailable). `clock` must outlive the server.
  // `bootstrap_operator_key` (syo_..., or empty for none) is registered at
  // start-up if unknown; the server keeps no copy of it.
  static absl::StatusOr<std::unique_ptr<Server>> Start(
      const ServerOptions& options, std::unique_ptr<crypto::MasterKeyring> keyring,
      absl::string_view bootstrap_operator_key, Clock& clock);

  // Stops gracefully if Shutdown was not called.
  ~Server();

  // The bound gRPC port.
  int port() const { return port_; }
  // The bound plaintext port when TLS is on and a plaintext listener was
  // asked for; 0 otherwise.
  int plaintext_port() const { return plaintext_port_; }
  // The bound port of the health-only listener; 0 when there is none.
  int health_port() const { return health_port_; }
  // The bound HTTP port; 0 when the HTTP listener is disabled.
  int http_port() const;

  // Reports NOT_SERVING, stops accepting calls, waits up to the drain deadline
  // for in-flight calls (then cancels them), stops maintenance and closes the
  // store. Idempotent.
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);

  // A gateway component's health, as the maintenance loop last saw it.
  struct Component {
    std::string name;  // "gateway/store", "gateway/webhook-ingest", "gateway/delivery"
    bool healthy = true;
    absl::Time since = absl::InfinitePast();
    std::string detail;
    // Whether its incident (open or resolved) is written; retried until it is.
    bool recorded = true;
  };
  std::vector<Component> Components() const ABSL_LOCKS_EXCLUDED(components_mu_);

 private:
  explicit Server(const ServerOptions& options, Clock& clock);
  void MaintenanceLoop() ABSL_LOCKS_EXCLUDED(mu_);
  // Reports `serving` on the health service of every listener: the overall
  // status ("", liveness) is `serving`; the gateway's service (readiness) is
  // `serving` while the store answers too.
  void SetServing(bool serving) ABSL_LOCKS_EXCLUDED(health_mu_);
  // Readiness follows the store: not ready while it cannot be read, so that
  // a load balancer sends calls to replicas that can serve them.
  void SetStoreReady(bool ready) ABSL_LOCKS_EXCLUDED(health_mu_);
  // Registers what /metrics reads at every scrape.
  void AddMetricSources();

  // Checks the gateway's components once and opens or resolves their
  // incidents (maintenance thread).
  void CheckComponents() ABSL_LOCKS_EXCLUDED(components_mu_);

  const ServerOptions options_;
  Clock& clock_;
  std::unique_ptr<crypto::MasterKeyring> keyring_;
  std::unique_ptr<storage::Store> store_;
  // Hands changes announced by other replicas to the caches that hold them.
  std::unique_ptr<storage::ChangeListener> change_listeners_;
  std::unique_ptr<catalog::SystemCatalog> catalog_;
  std::unique_ptr<vault::CredentialVault> vault_;
  std::unique_ptr<auth::ApiKeyManager> keys_;
  std::unique_ptr<credits::CreditLedger> ledger_;
  std::unique_ptr<connections::ConnectionManager> connections_;
  std::unique_ptr<tenants::TenantRegistry> tenants_;
  std::unique_ptr<events::EventLog> events_;
  std::unique_ptr<delivery::DeliveryEngine> delivery_;
  std::unique_ptr<delivery::SubscriptionManager> subscriptions_;
  std::unique_ptr<webhooks::Ingestor> ingestor_;
  std::unique_ptr<incidents::IncidentLog> incidents_;
  std::unique_ptr<health::HttpProber> prober_;
  std::unique_ptr<health::HealthMonitor> health_;
  std::unique_ptr<polling::FeedPoller> feeds_;
  std::unique_ptr<metrics::Registry> metrics_;
  std::unique_ptr<status::StatusPage> status_page_;
  std::unique_ptr<api::GatewayService> service_;
  std::unique_ptr<api::GatewayHttpHandler> http_handler_;
  std::unique_ptr<api::HttpServer> http_server_;
  std::unique_ptr<grpc::Server> grpc_server_;
  int port_ = 0;
  int plaintext_port_ = 0;
  std::unique_ptr<grpc::Server> health_server_;
  int health_port_ = 0;

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<bool> serving_{false};
  absl::Mutex health_mu_;  // orders the updates of the health service
  bool store_ready_ ABSL_GUARDED_BY(health_mu_) = true;
  mutable absl::Mutex components_mu_;
  std::vector<Component> components_ ABSL_GUARDED_BY(components_mu_);
  // Counters seen by the last CheckComponents (maintenance thread only).
  int64_t last_ingest_failures_ = 0;
  int64_t last_delivery_failures_ = 0;
  std::thread maintenance_;
};

}  // namespace switchyard

#endif  // SWITCHYARD_SERVER_SERVER_H_
