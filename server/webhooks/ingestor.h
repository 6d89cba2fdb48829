#ifndef SWITCHYARD_SERVER_WEBHOOKS_INGESTOR_H_
#define SWITCHYARD_SERVER_WEBHOOKS_INGESTOR_H_

// Webhook ingest: verify, rate-limit, store durably, answer. Nothing else
// happens before the answer; processing of stored events is asynchronous.
// No HTTP types: the HTTP listener translates requests to Webhook.

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/common/clock.h"
#include "server/common/worker_thread.h"
#include "server/storage/store.h"
#include "server/vault/vault.h"

namespace switchyard::webhooks {

struct IngestOptions {
  // Accepted distance between webhook-timestamp and the gateway's clock.
  // Default 5 minutes.
  absl::Duration tolerance = absl::Minutes(5);
  // Largest body accepted. Default 1 MiB.
  size_t max_body_bytes = 1 << 20;
  // Sustained webhooks per second accepted per connection, and the burst
  // above it. Defaults 200 and 400.
  double rate_per_second = 200;
  double burst = 400;
  // How long a connection's signing secrets are reused before they are read
  // again, in the background (a signature that fails, or a rotation or
  // revocation, makes them read again before use). Default 10s.
  absl::Duration secret_cache_ttl = absl::Seconds(10);
  // Webhooks that may wait for their connection's secrets to be read, and
  // the bytes of their bodies; more are answered UNAVAILABLE (BUSY). Those
  // of connections not in the cache (new ones, or URLs of none) may take
  // three quarters of that. Defaults 4096 and 64 MiB.
  size_t max_waiting = 4096;
  size_t max_waiting_bytes = 64 << 20;
  // Bytes of bodies handed to the store and not yet committed; more are
  // answered UNAVAILABLE (BUSY). Default 256 MiB.
  size_t max_storing_bytes = 256 << 20;
};

// One received webhook.
struct Webhook {
  std::string tenant_id;
  std::string connection_id;
  std::string id;         // webhook-id
  std::string timestamp;  // webhook-timestamp
  std::string signature;  // webhook-signature
  std::string content_type;
  std::string body;
};

struct IngestResult {
  int64_t sequence = 0;    // of the event within its connection
  bool duplicate = false;  // the webhook-id was already stored
};

// Thread-safe. Borrows its dependencies, which must outlive it.
class Ingestor {
 public:
  Ingestor(const IngestOptions& options, storage::Store& store, vault::CredentialVault& vault,
           Clock& clock);
  // Shuts down.
  ~Ingestor();

  // Stores `webhook` durably (answering only after the commit) and returns
  // its sequence; a repeated webhook-id is answered with the first one's.
  // Errors, with reasons:
  //   NOT_FOUND           UNKNOWN_CONNECTION (tenant or connection)
  //   FAILED_PRECONDITION CONNECTION_DISCONNECTED
  //   INVALID_ARGUMENT    headers (see signature.h), UNSUPPORTED_CONTENT_TYPE
  //   OUT_OF_RANGE        BODY_TOO_LARGE
  //   UNAUTHENTICATED     SIGNATURE_MISMATCH, TIMESTAMP_OUT_OF_TOLERANCE,
  //                       NO_SIGNING_SECRET
  //   RESOURCE_EXHAUSTED  RATE_LIMITED (metadata retry_after_seconds)
  //   UNAVAILABLE         the store could not commit; nothing was stored
  absl::StatusOr<IngestResult> Ingest(const Webhook& webhook) ABSL_LOCKS_EXCLUDED(mu_);

  // The same without waiting: never reads the store on the calling thread
  // (an event loop). The checks run there when the connection's signing
  // secrets are cached (secrets past their cache TTL, though not revoked,
  // are used once more while they are read again in the background). Else
  // the webhook waits while one of the ingestor's threads reads them, once
  // for all the connection's waiting webhooks. Then `done` is called exactly
  // once, on a store thread once the commit is durable, or at once on error.
  // With IngestOptions::max_waiting webhooks (or max_waiting_bytes of
  // bodies) already waiting, or max_storing_bytes being stored,
  // UNAVAILABLE (BUSY, metadata retry_after_seconds); after Shutdown,
  // UNAVAILABLE (SHUTTING_DOWN).
  using Done = std::function<void(absl::StatusOr<IngestResult>)>;
  void IngestAsync(Webhook webhook, Done done) ABSL_LOCKS_EXCLUDED(mu_);

  // Answers the webhooks waiting for their secrets with SHUTTING_DOWN (no
  // more reads), and refuses later ones so. Call before the store closes.
  // Idempotent.
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);

  // When a correctly signed webhook last arrived for the connection (stored
  // or a duplicate), since this process started; InfinitePast if none.
  absl::Time LastWebhookTime(absl::string_view tenant_id, absl::string_view connection_id) const
      ABSL_LOCKS_EXCLUDED(mu_);

  // Counts a webhook refused before it reached the ingestor (by the HTTP
  // layer: a malformed request, a body too large, a wrong method...) with
  // the outcomes below, under `reason`.
  void CountRefused(absl::string_view reason) ABSL_LOCKS_EXCLUDED(mu_);

  // Counts of outcomes by reason ("ACCEPTED", "DUPLICATE", or an error
  // reason), for logs and metrics.
  std::map<std::string, int64_t> Counters() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct CachedKeys {
    std::shared_ptr<const vault::CredentialVault::WebhookKeys> keys;
    absl::Time loaded_at;
    uint64_t generation = 0;  // the connection's webhook secret version then
  };
  struct Bucket {
    double tokens = 0;
    absl::Time updated = absl::InfinitePast();
  };
  // Everything before storing: size, type, connection, signature, rate.
  // Returns the sender's timestamp; nullopt, without `may_read`, when the
  // secrets must be read from the store first.
  absl::StatusOr<std::optional<absl::Time>> Admit(const Webhook& webhook, bool may_read)
      ABSL_LOCKS_EXCLUDED(mu_);
  // A webhook waiting for its connection's secrets to be read.
  struct Parked {
    std::shared_ptr<const Webhook> webhook;
    Done done;
  };
  // Makes `webhook` wait for its connection's secrets (starting their read),
  // or refuses it when too many wait.
  void Park(std::shared_ptr<const Webhook> webhook, Done done) ABSL_LOCKS_EXCLUDED(mu_);
  // Queues the read of the secrets of `key` (tenant/connection) on its
  // loader thread.
  void StartLoad(const std::string& key);
  // On a loader thread: reads the secrets of `key` (unless `read` is false
  // or the ingestor stops), then admits and stores the webhooks waiting.
  void LoadAndRelease(const std::string& key, bool read = true) ABSL_LOCKS_EXCLUDED(mu_);
  // Reads the secrets of a connection from the vault into the cache.
  absl::StatusOr<std::shared_ptr<const vault::CredentialVault::WebhookKeys>> Load(
      const std::string& key, absl::string_view tenant_id, absl::string_view connection_id)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Stores an admitted webhook (or answers its refusal) and calls `done`.
  void Store(std::shared_ptr<const Webhook> webhook,
             const absl::StatusOr<std::optional<absl::Time>>& admitted, Done done)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The store step: `outcome` receives a refusal decided inside the
  // transaction (which then writes nothing).
  struct Appended {
    IngestResult result;
    absl::Status outcome;
  };
  absl::Status Append(storage::Transaction& tx, const Webhook& webhook, absl::Time sent,
                      absl::Time now, Appended& appended);
  void Count(const absl::StatusOr<IngestResult>& result) ABSL_LOCKS_EXCLUDED(mu_);
  // The connection's secrets, from the cache or (with `may_read`) the store;
  // nullptr when they must be read and `may_read` is false (secrets only
  // past their TTL are returned then, and read again in the background).
  absl::StatusOr<std::shared_ptr<const vault::CredentialVault::WebhookKeys>> Keys(
      const std::string& key, const Webhook& webhook, bool refresh, bool may_read)
      ABSL_LOCKS_EXCLUDED(mu_);
  // OK, or RESOURCE_EXHAUSTED with the wait before a token is available.
  absl::Status TakeToken(const std::string& key, absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);

  const IngestOptions options_;
  storage::Store& store_;
  vault::CredentialVault& vault_;
  Clock& clock_;

  mutable absl::Mutex mu_;
  // Secrets of connections, by "tenant/connection"; and apart, URLs that
  // named no connection when read.
  absl::flat_hash_map<std::string, CachedKeys> keys_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, CachedKeys> missing_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int64_t> counters_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, absl::Time> last_webhook_ ABSL_GUARDED_BY(mu_);
  // Connections whose secrets are being read, with the webhooks waiting.
  absl::flat_hash_map<std::string, std::vector<Parked>> loading_ ABSL_GUARDED_BY(mu_);
  size_t parked_count_ ABSL_GUARDED_BY(mu_) = 0;
  size_t parked_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<bool> stopped_{false};       // stopping_, read without the mutex
  std::atomic<int64_t> storing_bytes_{0};  // see IngestOptions::max_storing_bytes

  // Read secrets off the callers' threads; a connection always on the same
  // one. Last: they stop (and finish their tasks) before the members above
  // go.
  std::vector<std::unique_ptr<WorkerThread>> loaders_;
};

}  // namespace switchyard::webhooks

#endif  // SWITCHYARD_SERVER_WEBHOOKS_INGESTOR_H_
