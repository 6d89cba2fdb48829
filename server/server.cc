#include "server/server.h"

#include <arpa/inet.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <netinet/in.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>
#include <climits>
#include <filesystem>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/api/grpc/gateway_service.h"
#include "server/api/grpc/metrics_interceptor.h"
#include "server/api/http/webhook_handler.h"
#include "server/catalog/catalog.h"
#include "server/common/log.h"
#include "server/common/names.h"
#include "server/common/proto_time.h"
#include "server/common/status.h"
#include "server/connections/connections.h"
#include "server/delivery/subscriptions.h"
#include "server/events/event_log.h"
#include "server/health/monitor.h"
#include "server/incidents/incidents.h"
#include "server/polling/feed_poller.h"
#include "server/storage/postgres/pg_store.h"
#include "server/storage/sqlite/sqlite_store.h"
#include "server/tenants/tenants.h"
#include "server/vault/vault.h"

namespace switchyard {

namespace {
// Whether host:port names a loopback address literally (127.0.0.0/8, [::1]
// or "localhost"); host names are not resolved, so none can sneak past.
// A duration as gRPC channel-argument milliseconds.
int ClampedMillis(absl::Duration d) {
  return static_cast<int>(std::clamp<int64_t>(absl::ToInt64Milliseconds(d), 1, INT32_MAX));
}

bool IsLoopback(absl::string_view address) {
  const size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos) return false;
  std::string host(address.substr(0, colon));
  if (host == "localhost") return true;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    in6_addr v6;
    return inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), &v6) == 1 &&
           IN6_IS_ADDR_LOOPBACK(&v6);
  }
  in_addr v4;
  return inet_pton(AF_INET, host.c_str(), &v4) == 1 && (ntohl(v4.s_addr) >> 24) == 127;
}

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

// Checks the TLS files as a handshake would use them: the first certificate
// of the chain, the private key that matches it, and a CA bundle with at
// least one certificate. The files are read again later (tls_reload_interval)
// and a bad renewal is only logged by gRPC, so the start is where a mistake
// is caught loudly. OpenSSL reads the key itself (and wipes its buffers).
absl::Status CheckTlsFiles(const ServerOptions& options) {
  auto open = [](const std::string& path,
                 absl::string_view what) -> absl::StatusOr<std::unique_ptr<BIO, BioFree>> {
    std::unique_ptr<BIO, BioFree> bio(BIO_new_file(path.c_str(), "r"));
    if (bio == nullptr) {
      return NotFound("TLS_FILE_UNREADABLE", absl::StrCat("cannot read TLS ", what, " ", path));
    }
    return bio;
  };
  auto invalid = [](absl::string_view what, const std::string& path) {
    const unsigned long code = ERR_get_error();  // NOLINT(runtime/int): OpenSSL's type
    ERR_clear_error();
    return InvalidArgument(
        "INVALID_TLS_FILE",
        absl::StrCat("TLS ", what, " ", path, " is not usable",
                     code != 0 ? absl::StrCat(": ", ERR_reason_error_string(code)) : ""));
  };
  SY_ASSIGN_OR_RETURN(auto cert_bio, open(options.tls_cert_file, "certificate"));
  std::unique_ptr<X509, X509Free> cert(
      PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr));
  if (cert == nullptr) return invalid("certificate", options.tls_cert_file);
  SY_ASSIGN_OR_RETURN(auto key_bio, open(options.tls_key_file, "private key"));
  std::unique_ptr<EVP_PKEY, PkeyFree> key(
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (key == nullptr) return invalid("private key", options.tls_key_file);
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return InvalidArgument(
        "INVALID_TLS_FILE",
        absl::StrCat("TLS private key ", options.tls_key_file,
                     " does not belong to the certificate ", options.tls_cert_file));
  }
  if (!options.tls_client_ca_file.empty()) {
    SY_ASSIGN_OR_RETURN(auto ca_bio, open(options.tls_client_ca_file, "client CA"));
    std::unique_ptr<X509, X509Free> ca(PEM_read_bio_X509(ca_bio.get(), nullptr, nullptr, nullptr));
    if (ca == nullptr) return invalid("client CA", options.tls_client_ca_file);
  }
  return absl::OkStatus();
}
}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const ServerOptions& options) {
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    return InvalidArgument("INVALID_TLS_OPTIONS",
                           "TLS needs both a certificate file and a private key file");
  }
  if (options.tls_cert_file.empty()) {
    if (!options.tls_client_ca_file.empty()) {
      return InvalidArgument("INVALID_TLS_OPTIONS",
                             "client certificate verification needs TLS (certificate and key)");
    }
    return grpc::InsecureServerCredentials();
  }
  // Usable now, or the server does not start.
  SY_RETURN_IF_ERROR(CheckTlsFiles(options));
  // The files are read again every tls_reload_interval, so that a renewed
  // certificate (cert-manager rewriting the mounted Secret) is served without
  // a restart; new handshakes get it, open connections keep theirs.
  const auto seconds = static_cast<unsigned int>(std::clamp<int64_t>(
      absl::ToInt64Seconds(options.tls_reload_interval), 1, int64_t{24} * 3600));
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      options.tls_key_file, options.tls_cert_file, options.tls_client_ca_file, seconds);
  grpc::experimental::TlsServerCredentialsOptions tls(provider);
  tls.watch_identity_key_cert_pairs();
  if (options.tls_client_ca_file.empty()) {
    tls.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  } else {
    tls.watch_root_certs();
    tls.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  }
  return grpc::experimental::TlsServerCredentials(tls);
}

Server::Server(const ServerOptions& options, Clock& clock) : options_(options), clock_(clock) {}

absl::StatusOr<std::unique_ptr<Server>> Server::Start(
    const ServerOptions& options, std::unique_ptr<crypto::MasterKeyring> keyring,
    absl::string_view bootstrap_operator_key, Clock& clock) {
  if (options.idempotency_retention < absl::Hours(24)) {
    return InvalidArgument("INVALID_OPTION", "idempotency retention must be at least 24h");
  }
  if (options.event_retention < absl::Hours(24)) {
    return InvalidArgument("INVALID_OPTION",
                           "event retention must be at least 24h (it is also the window in which "
                           "repeated webhook ids are recognised)");
  }
  if (options.delivery.max_unread_bytes < (int64_t{64} << 10)) {
    return InvalidArgument("INVALID_OPTION",
                           "a stream's unread bytes must be allowed 64 KiB at least");
  }
  if (!(options.ingest.rate_per_second > 0) || !(options.ingest.burst >= 1)) {
    // A rate of 0 would answer every webhook 429 with an endless Retry-After.
    return InvalidArgument("INVALID_OPTION",
                           "the webhook rate per connection must be above 0 and its burst at "
                           "least 1");
  }
  if (options.max_rpc_threads < 8) {
    return InvalidArgument("INVALID_OPTION", "the gRPC thread limit must be at least 8");
  }
  if (options.max_connection_age_grace < absl::Minutes(3)) {
    // Streams renew themselves within the grace (after at least a minute,
    // with a minute to drain); a shorter one would cut them.
    return InvalidArgument("INVALID_OPTION", "the gRPC connection-age grace must be at least 3m");
  }
  if (options.ingest.max_body_bytes < 1 || options.ingest.max_body_bytes > kMaxMessageEventBytes) {
    // Every stored event must fit one message a gRPC client can receive.
    return InvalidArgument("INVALID_OPTION", "the webhook body limit must be 1 byte to 3 MiB");
  }
  if (keyring == nullptr) {
    return FailedPrecondition("NO_MASTER_KEY", "the server needs a master keyring");
  }
  SY_ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> credentials,
                      MakeServerCredentials(options));
  auto server = std::unique_ptr<Server>(new Server(options, clock));
  server->keyring_ = std::move(keyring);

  if (!options.database_url.empty()) {
    storage::PgStoreOptions store_options;
    store_options.url = options.database_url;
    store_options.password = options.database_password;
    store_options.pool_size = options.database_pool_size;
    store_options.statement_timeout = options.database_statement_timeout;
    SY_ASSIGN_OR_RETURN(server->store_, storage::PgStore::Open(store_options));
  } else {
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
  }

  if (options.catalog_file.empty()) {
    SY_ASSIGN_OR_RETURN(server->catalog_,
                        catalog::SystemCatalog::FromText(catalog::SystemCatalog::DefaultText()));
  } else {
    SY_ASSIGN_OR_RETURN(server->catalog_, catalog::SystemCatalog::FromFile(options.catalog_file));
  }
  server->vault_ =
      std::make_unique<vault::CredentialVault>(*server->store_, *server->keyring_, clock);
  // The token-hash key is wrapped by the master key: a wrong master key stops
  // the start here, before anything is served.
  absl::StatusOr<crypto::Secret> hash_key = server->vault_->LoadOrCreateServerKey("token-hmac");
  if (!hash_key.ok()) {
    return Error(hash_key.status().code(), ReasonOf(hash_key.status()),
                 absl::StrCat("cannot unwrap the gateway's keys with this master keyring (is it "
                              "the right master key?): ",
                              hash_key.status().message()));
  }
  server->keys_ = std::make_unique<auth::ApiKeyManager>(options.api_keys, *server->store_, clock,
                                                        *std::move(hash_key));
  if (!bootstrap_operator_key.empty()) {
    SY_RETURN_IF_ERROR(server->keys_->EnsureBootstrapOperatorKey(bootstrap_operator_key));
  } else {
    log::Warning("no bootstrap operator key given; only existing keys can call the gateway");
  }
  SY_ASSIGN_OR_RETURN(server->ledger_,
                      credits::CreditLedger::Create(options.ledger, *server->store_, clock));
  server->connections_ = std::make_unique<connections::ConnectionManager>(
      *server->store_, *server->catalog_, *server->ledger_, *server->keys_, *server->vault_, clock);
  server->tenants_ = std::make_unique<tenants::TenantRegistry>(
      *server->store_, *server->ledger_, *server->connections_, *server->keys_, *server->vault_,
      clock);
  server->events_ = std::make_unique<events::EventLog>(*server->store_);
  server->ingestor_ =
      std::make_unique<webhooks::Ingestor>(options.ingest, *server->store_, *server->vault_, clock);
  delivery::EngineOptions delivery = options.delivery;
  // Streams renew themselves before a connection closed for its age would
  // cut them (with the defaults, after 24 to 30 minutes): a stream opened
  // just before the close lives at most its age plus its drain.
  delivery.max_stream_age =
      options.max_connection_age == absl::InfiniteDuration()
          ? absl::InfiniteDuration()  // connections are never closed for their age
          : std::min(options.max_connection_age,
                     options.max_connection_age_grace - delivery.stream_drain - absl::Seconds(30));
  server->delivery_ = std::make_unique<delivery::DeliveryEngine>(*server->store_, clock, delivery);
  server->store_->SetCommitListener(server->delivery_.get());
  server->change_listeners_ =
      storage::FanOut({server->keys_.get(), server->vault_.get(), server->delivery_.get()});
  server->store_->SetChangeListener(server->change_listeners_.get());
  server->delivery_->Start();
  // Streams of revoked or cut-short keys end at once.
  server->keys_->SetKeysChangedListener(
      [engine = server->delivery_.get()] { engine->KeysChanged(); });
  server->subscriptions_ = std::make_unique<delivery::SubscriptionManager>(
      *server->store_, clock,
      [engine = server->delivery_.get()](const std::string& name) { engine->Invalidate(name); },
      [engine = server->delivery_.get()](const std::string& name) {
        engine->ReplayDeadLetters(name);
      },
      [engine = server->delivery_.get()] { return engine->Checkpoint(); });
  server->incidents_ = std::make_unique<incidents::IncidentLog>(*server->store_, clock);
  SY_ASSIGN_OR_RETURN(server->prober_, health::NewCurlProber(options.outbound_allow_private));
  server->health_ = std::make_unique<health::HealthMonitor>(
      *server->store_, clock, *server->prober_, options.health_check_min_interval,
      options.outbound_allow_private);
  SY_RETURN_IF_ERROR(server->health_->Load());
  server->health_->Start(options.health_tick);
  server->feeds_ = std::make_unique<polling::FeedPoller>(
      *server->store_, clock, *server->prober_, options.health_check_min_interval,
      options.outbound_allow_private,
      [ingestor = server->ingestor_.get()](const std::string& tenant, const std::string& conn) {
        return ingestor->LastWebhookTime(tenant, conn);
      });
  SY_RETURN_IF_ERROR(server->feeds_->Load());
  server->feeds_->Start(options.health_tick);
  server->status_page_ = std::make_unique<status::StatusPage>(
      *server->store_, clock, *server->catalog_,
      [s = server.get()] {
        std::vector<v1::StatusReport::Component> out;
        for (const Component& c : s->Components()) {
          v1::StatusReport::Component& p = out.emplace_back();
          p.set_name(c.name);
          p.set_healthy(c.healthy);
          ToProto(c.since, p.mutable_since());
          p.set_detail(c.detail);
        }
        return out;
      },
      options.status_page);
  server->metrics_ = std::make_unique<metrics::Registry>();
  server->AddMetricSources();
  server->service_ = std::make_unique<api::GatewayService>(
      *server->keys_, *server->tenants_, *server->catalog_, *server->ledger_, *server->connections_,
      *server->vault_, *server->events_, *server->subscriptions_, *server->delivery_,
      *server->health_, *server->incidents_, *server->feeds_);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen_address, credentials, &server->port_);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS,
                             ClampedMillis(options.max_connection_age));
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
                             ClampedMillis(options.max_connection_age_grace));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, ClampedMillis(options.keepalive_time));
  // Requests of at most 4 MiB, gRPC's usual limit, said here so that it is
  // the documented one (PublishEvents batches count against it).
  builder.SetMaxReceiveMessageSize(4 << 20);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20000);
  // The probes' health server (its own builder) keeps its own threads.
  grpc::ResourceQuota quota("switchyard-grpc");
  quota.SetMaxThreads(options.max_rpc_threads);
  builder.SetResourceQuota(quota);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // Clients may ping idle connections every 10 s without being cut off.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
  const bool tls = !options.tls_cert_file.empty();
  if (!options.plaintext_listen_address.empty() && options.tls_cert_file.empty()) {
    return InvalidArgument(
        "INVALID_OPTION", "the extra plaintext listener only makes sense with TLS on the main one");
  }
  if (!options.plaintext_listen_address.empty() && !IsLoopback(options.plaintext_listen_address)) {
    return InvalidArgument("INVALID_OPTION",
                           "the plaintext listener must be a loopback address such as "
                           "127.0.0.1:50052; use the health listener for probes from elsewhere");
  }
  if (tls && !options.plaintext_listen_address.empty()) {
    builder.AddListeningPort(options.plaintext_listen_address, grpc::InsecureServerCredentials(),
                             &server->plaintext_port_);
  }
  builder.RegisterService(server->service_.get());
  {
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
    creators.push_back(std::make_unique<api::MetricsInterceptorFactory>(*server->metrics_, clock));
    builder.experimental().SetInterceptorCreators(std::move(creators));
  }
  server->grpc_server_ = builder.BuildAndStart();
  if (server->grpc_server_ == nullptr || server->port_ == 0) {
    return Error(absl::StatusCode::kUnavailable, "LISTEN_FAILED",
                 absl::StrCat("cannot listen on ", options.listen_address));
  }
  if (!options.health_listen_address.empty()) {
    // A second server with no services of its own: only the default health
    // service, in plaintext.
    grpc::ServerBuilder health_builder;
    health_builder.AddListeningPort(options.health_listen_address,
                                    grpc::InsecureServerCredentials(), &server->health_port_);
    server->health_server_ = health_builder.BuildAndStart();
    if (server->health_server_ == nullptr || server->health_port_ == 0) {
      return Error(absl::StatusCode::kUnavailable, "LISTEN_FAILED",
                   absl::StrCat("cannot listen on ", options.health_listen_address));
    }
  }
  if (!options.http.listen_address.empty()) {
    server->http_handler_ = std::make_unique<api::GatewayHttpHandler>(
        *server->ingestor_, server->metrics_.get(), server->status_page_.get(), clock);
    api::HttpServerOptions http = options.http;
    http.max_body_bytes = options.ingest.max_body_bytes;
    SY_ASSIGN_OR_RETURN(server->http_server_, api::HttpServer::Start(http, *server->http_handler_));
  }
  server->SetServing(true);
  if (!tls && !IsLoopback(options.listen_address)) {
    log::Warning(
        "serving gRPC in PLAINTEXT on a non-loopback address: bearer credentials and revealed "
        "secrets cross the network unencrypted. Use --tls_cert_file/--tls_key_file, or a "
        "service mesh that encrypts pod-to-pod traffic.",
        {{"address", options.listen_address}});
  }

  server->CheckComponents();
  server->maintenance_ = std::thread([s = server.get()] { s->MaintenanceLoop(); });
  log::Info("serving", {{"address", options.listen_address},
                        {"port", server->port_},
                        {"tls", tls},
                        {"mutual_tls", !options.tls_client_ca_file.empty()},
                        {"plaintext_port", server->plaintext_port_},
                        {"health_port", server->health_port_},
                        {"http_port", static_cast<int64_t>(server->http_port())},
                        {"master_key", server->keyring_->primary_id()},
                        {"data_dir", options.data_dir},
                        {"systems", static_cast<int64_t>(server->catalog_->systems().size())}});
  return server;
}

Server::~Server() { Shutdown(); }

int Server::http_port() const { return http_server_ != nullptr ? http_server_->port() : 0; }

void Server::AddMetricSources() {
  metrics_->AddSource([this](metrics::Writer& w) {
    w.Gauge("switchyard_ready", "1 while the gateway serves, 0 while it starts or drains");
    w.Sample(serving_.load() ? 1 : 0);
  });
  metrics_->AddSource([this](metrics::Writer& w) {
    int64_t accepted = 0, duplicates = 0, rejected = 0;
    std::vector<std::pair<std::string, int64_t>> reasons;
    for (const auto& [reason, count] : ingestor_->Counters()) {
      if (reason == "ACCEPTED") {
        accepted = count;
      } else if (reason == "DUPLICATE") {
        duplicates = count;
      } else {
        rejected += count;
        reasons.emplace_back(reason, count);
      }
    }
    w.Counter("switchyard_webhooks_received_total", "webhooks answered, whatever the outcome");
    w.Sample(static_cast<double>(accepted + duplicates + rejected));
    w.Counter("switchyard_webhooks_accepted_total", "webhooks stored (answered 200)");
    w.Sample(static_cast<double>(accepted));
    w.Counter("switchyard_webhooks_duplicate_total",
              "webhooks answered 200 as repeats of a stored webhook-id");
    w.Sample(static_cast<double>(duplicates));
    w.Counter("switchyard_webhooks_rejected_total", "webhooks refused, by reason");
    for (auto& [reason, count] : reasons)
      w.Sample(static_cast<double>(count), {{"reason", reason}});
  });
  metrics_->AddSource([this](metrics::Writer& w) {
    const delivery::DeliveryStats stats = delivery_->Stats();
    w.Counter("switchyard_events_delivered_total", "deliveries sent to subscribers");
    w.Sample(static_cast<double>(stats.delivered));
    w.Counter("switchyard_events_redelivered_total",
              "deliveries that repeat an earlier one (deadline, nack, lost stream)");
    w.Sample(static_cast<double>(stats.redelivered));
    w.Counter("switchyard_events_acked_total", "events acknowledged by subscribers");
    w.Sample(static_cast<double>(stats.acked));
    w.Counter(
        "switchyard_delivery_acks_forwarded_total",
        "acks, nacks and deadline changes sent on to the replica delivering their connection");
    w.Sample(static_cast<double>(stats.forwarded));
    w.Counter("switchyard_events_skipped_total",
              "events deleted by retention before a subscription received them");
    w.Sample(static_cast<double>(stats.skipped));
    w.Counter("switchyard_delivery_write_failures_total",
              "failed writes of acknowledgements and dead letters (retried)");
    w.Sample(static_cast<double>(stats.write_failures));
    w.Gauge("switchyard_delivery_streams", "open StreamEvents streams");
    w.Sample(static_cast<double>(stats.streams));
    w.Counter("switchyard_dead_letters_total", "events that ran out of attempts, by subscription");
    for (const auto& [name, count] : delivery_->DeadLettersBySubscription()) {
      w.Sample(static_cast<double>(count), {{"subscription", name}});
    }
    const std::vector<delivery::SubscriptionDelivery> subs = delivery_->Subscriptions();
    w.Gauge("switchyard_delivery_lag_seconds",
            "age of the oldest event not yet acknowledged, by active subscription");
    for (const auto& d : subs) {
      w.Sample(absl::ToDoubleSeconds(d.lag), {{"subscription", d.name}});
    }
    w.Gauge("switchyard_delivery_backlog_events",
            "events stored and not yet acknowledged, by active subscription");
    for (const auto& d : subs) {
      w.Sample(static_cast<double>(d.backlog), {{"subscription", d.name}});
    }
    w.Gauge("switchyard_delivery_outstanding_events",
            "events sent and not yet acknowledged, by active subscription");
    for (const auto& d : subs) {
      w.Sample(static_cast<double>(d.outstanding), {{"subscription", d.name}});
    }
  });
  metrics_->AddSource([this](metrics::Writer& w) {
    std::vector<storage::PoolRow> pools;
    std::map<int, int64_t> connections;
    absl::Status read = store_->Read([&](storage::Transaction& tx) -> absl::Status {
      std::string after;
      while (true) {
        SY_ASSIGN_OR_RETURN(std::vector<storage::PoolRow> page, tx.ListPools(after, 1000));
        pools.insert(pools.end(), page.begin(), page.end());
        if (page.size() < 1000) break;
        after = page.back().id;
      }
      SY_ASSIGN_OR_RETURN(connections, tx.CountConnectionsByState());
      return absl::OkStatus();
    });
    w.Gauge("switchyard_store_up", "1 when the store answered this scrape");
    w.Sample(read.ok() ? 1 : 0);
    if (!read.ok()) return;
    const std::pair<const char*, const char*> kinds[] = {
        {"capacity", "credits in the pool"},
        {"available", "credits neither reserved nor consumed"},
        {"reserved", "credits held by pending reservations"},
        {"consumed", "credits consumed by connections"}};
    for (const auto& [kind, help] : kinds) {
      w.Gauge(absl::StrCat("switchyard_credit_pool_", kind), help);
      for (const storage::PoolRow& p : pools) {
        const int64_t value = std::string(kind) == "capacity"   ? p.capacity
                              : std::string(kind) == "reserved" ? p.reserved
                              : std::string(kind) == "consumed"
                                  ? p.consumed
                                  : p.capacity - p.reserved - p.consumed;
        w.Sample(static_cast<double>(value), {{"pool", p.id}});
      }
    }
    w.Gauge("switchyard_connection_health", "connections with a health check, by health state");
    const std::map<int, int64_t> health = health_->CountByState();
    for (int state = v1::ConnectionHealth::UNKNOWN; state <= v1::ConnectionHealth::AUTH_REQUIRED;
         ++state) {
      auto it = health.find(state);
      w.Sample(it == health.end() ? 0 : static_cast<double>(it->second),
               {{"health", v1::ConnectionHealth::State_Name(
                               static_cast<v1::ConnectionHealth::State>(state))}});
    }
    w.Gauge("switchyard_component_up", "1 while a gateway component is healthy");
    for (const Component& c : Components()) {
      w.Sample(c.healthy ? 1 : 0, {{"component", c.name}});
    }
    w.Gauge("switchyard_connections", "connections by state");
    for (int state = v1::Connection::PENDING; state <= v1::Connection::DISCONNECTED; ++state) {
      if (!v1::Connection::State_IsValid(state)) continue;
      auto it = connections.find(state);
      w.Sample(it == connections.end() ? 0 : static_cast<double>(it->second),
               {{"state", v1::Connection::State_Name(static_cast<v1::Connection::State>(state))}});
    }
  });
}

std::vector<Server::Component> Server::Components() const {
  absl::MutexLock lock(&components_mu_);
  return components_;
}

void Server::CheckComponents() {
  const absl::Time now = clock_.Now();
  // The store: a read must succeed.
  absl::Status store =
      store_->Read([](storage::Transaction& tx) { return tx.GetPool("$probe").status(); });
  SetStoreReady(store.ok());
  // Webhook ingest: no webhook refused because the store failed since the
  // last check.
  int64_t ingest_failures = 0;
  for (const auto& [reason, count] : ingestor_->Counters()) {
    if (reason == "STORE_UNAVAILABLE" || reason == "SHUTTING_DOWN") ingest_failures += count;
  }
  // Delivery: no failed write of acknowledgements since the last check.
  const int64_t delivery_failures = delivery_->Stats().write_failures;
  const std::vector<std::pair<std::string, std::string>> problems = {
      {"gateway/store", store.ok() ? "" : std::string(store.message())},
      {"gateway/webhook-ingest",
       ingest_failures > last_ingest_failures_
           ? absl::StrCat(ingest_failures - last_ingest_failures_,
                          " webhooks refused because the store could not commit")
           : ""},
      {"gateway/delivery",
       delivery_failures > last_delivery_failures_ ? "acknowledgements could not be written" : ""},
  };
  last_ingest_failures_ = ingest_failures;
  last_delivery_failures_ = delivery_failures;
  std::vector<Component> to_record;
  {
    absl::MutexLock lock(&components_mu_);
    if (components_.empty()) {
      for (const auto& [name, problem] : problems)
        components_.push_back({name, true, now, "", true});
    }
    for (size_t i = 0; i < problems.size(); ++i) {
      Component& c = components_[i];
      const bool healthy = problems[i].second.empty();
      if (healthy != c.healthy) {
        c.healthy = healthy;
        c.since = now;
        c.recorded = false;
        log::Warning(healthy ? "gateway component recovered" : "gateway component failing",
                     {{"component", c.name}, {"detail", problems[i].second}});
      }
      if (!healthy) c.detail = problems[i].second;
      if (!c.recorded) to_record.push_back(c);
    }
  }
  // Written when the store takes it, retried on every check. A store outage
  // that ends before its incident could be written leaves no incident (the
  // log and switchyard_component_up record it).
  for (const Component& c : to_record) {
    absl::Status recorded = c.healthy
                                ? incidents_->Resolve(c.name, "recovered")
                                : incidents_->Open(c.name, absl::StrCat(c.name, " is failing"),
                                                   v1::Incident::CRITICAL, c.detail);
    if (!recorded.ok()) continue;  // next check tries again
    absl::MutexLock lock(&components_mu_);
    for (Component& mine : components_) {
      if (mine.name == c.name && mine.healthy == c.healthy) mine.recorded = true;
    }
  }
}

void Server::SetServing(bool serving) {
  absl::MutexLock lock(&health_mu_);
  serving_ = serving;
  for (grpc::Server* s : {grpc_server_.get(), health_server_.get()}) {
    if (s == nullptr) continue;
    s->GetHealthCheckService()->SetServingStatus(serving);
    s->GetHealthCheckService()->SetServingStatus("switchyard.v1.Gateway", serving && store_ready_);
  }
}

void Server::SetStoreReady(bool ready) {
  absl::MutexLock lock(&health_mu_);
  if (ready == store_ready_) return;
  store_ready_ = ready;
  log::Warning(ready ? "ready again: the store answers" : "not ready: the store does not answer");
  if (!serving_) return;
  for (grpc::Server* s : {grpc_server_.get(), health_server_.get()}) {
    if (s != nullptr) s->GetHealthCheckService()->SetServingStatus("switchyard.v1.Gateway", ready);
  }
}

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
    if (absl::Status flushed = keys_->FlushLastUsed(); !flushed.ok()) {
      log::Warning("last-used flush failed", {{"error", flushed.ToString()}});
    }
    absl::StatusOr<int> expired = ledger_->ExpireDue();
    if (!expired.ok()) {
      log::Warning("reservation expiry failed", {{"error", expired.status().ToString()}});
    } else if (*expired > 0) {
      log::Info("reservations expired", {{"count", static_cast<int64_t>(*expired)}});
    }
    CheckComponents();
    const absl::Time now = clock_.Now();
    // Events past retention, a bounded amount per round.
    absl::StatusOr<int64_t> swept =
        events_->DeleteExpired(now - options_.event_retention, now >= next_purge);
    if (!swept.ok()) {
      log::Warning("event retention sweep failed", {{"error", swept.status().ToString()}});
    } else if (*swept > 0) {
      log::Info("events past retention deleted", {{"count", *swept}});
    }
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
  // One deadline for the whole drain (webhooks being stored, then gRPC
  // calls), so that the pod's termination grace period can count on it.
  const absl::Time deadline = absl::Now() + options_.drain_deadline;
  if (http_server_ != nullptr) {
    // Webhooks first: stop taking them, answer those being stored.
    http_server_->Shutdown(
        std::clamp(deadline - absl::Now(), absl::ZeroDuration(), absl::Seconds(10)));
    http_handler_->Shutdown();
    ingestor_->Shutdown();
  }
  if (grpc_server_ != nullptr) {
    SetServing(false);
    // End the event streams first: their clients reconnect elsewhere, and a
    // stream would otherwise hold the drain until its deadline.
    delivery_->Shutdown();
    grpc_server_->Shutdown(absl::ToChronoTime(deadline));
    grpc_server_->Wait();
    log::Info("grpc stopped");
  }
  if (health_server_ != nullptr) {
    health_server_->Shutdown(absl::ToChronoTime(absl::Now()));
    health_server_->Wait();
  }
  if (maintenance_.joinable()) maintenance_.join();
  // Stop scheduling, then let the HTTP client complete what is in flight
  // (into the monitor and the poller, which still exist).
  if (health_ != nullptr) health_->Shutdown();
  if (feeds_ != nullptr) feeds_->Shutdown();
  prober_.reset();
  if (delivery_ != nullptr) {
    if (keys_ != nullptr) keys_->SetKeysChangedListener(nullptr);
    delivery_->Shutdown();
    store_->SetCommitListener(nullptr);
  }
  if (store_ != nullptr) store_->SetChangeListener(nullptr);
  store_.reset();
  log::Info("stopped");
  absl::MutexLock lock(&mu_);
  stopped_ = true;
}

}  // namespace switchyard
