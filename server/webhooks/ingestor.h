#ifndef SWITCHYARD_SERVER_WEBHOOKS_INGESTOR_H_
#define SWITCHYARD_SERVER_WEBHOOKS_INGESTOR_H_

// Webhook ingest: verify, rate-limit, store durably, answer. Nothing else
// happens before the answer; processing of stored events is asynchronous.
// No HTTP types: the HTTP listener translates requests to Webhook.

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
  // again (a signature that fails re-reads them at once). Default 10s.
  absl::Duration secret_cache_ttl = absl::Seconds(10);
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
           Clock& clock)
      : options_(options), store_(store), vault_(vault), clock_(clock) {}

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
  // secrets are cached, else on the ingestor's own thread, which reads them;
  // then `done` is called exactly once, on a store thread once the commit is
  // durable, or at once on error. With 1024 webhooks already waiting for
  // their secrets, UNAVAILABLE (BUSY).
  using Done = std::function<void(absl::StatusOr<IngestResult>)>;
  void IngestAsync(Webhook webhook, Done done) ABSL_LOCKS_EXCLUDED(mu_);

  // Finishes the webhooks waiting for their secrets (into the store), then
  // takes no more asynchronously. Call before the store closes. Idempotent.
  void Shutdown() { loader_.Stop(); }

  // When a correctly signed webhook last arrived for the connection (stored
  // or a duplicate), since this process started; InfinitePast if none.
  absl::Time LastWebhookTime(absl::string_view tenant_id, absl::string_view connection_id) const
      ABSL_LOCKS_EXCLUDED(mu_);

  // Counts of outcomes by reason ("ACCEPTED", "DUPLICATE", or an error
  // reason), for logs and metrics.
  std::map<std::string, int64_t> Counters() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct CachedKeys {
    std::shared_ptr<const vault::CredentialVault::WebhookKeys> keys;
    absl::Time loaded_at;
    uint64_t generation = 0;  // the vault's webhook secret generation then
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
  // nullptr when they must be read and `may_read` is false.
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
  absl::flat_hash_map<std::string, CachedKeys> keys_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int64_t> counters_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, absl::Time> last_webhook_ ABSL_GUARDED_BY(mu_);

  // Reads secrets missing from the cache, off the callers' threads. Last: it
  // stops (and finishes its tasks) before the members above go.
  WorkerThread loader_{1024};
};

}  // namespace switchyard::webhooks

#endif  // SWITCHYARD_SERVER_WEBHOOKS_INGESTOR_H_
