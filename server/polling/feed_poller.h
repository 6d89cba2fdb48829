#ifndef SWITCHYARD_SERVER_POLLING_FEED_POLLER_H_
#define SWITCHYARD_SERVER_POLLING_FEED_POLLER_H_

// The polling fallback: fetches each configured connection's change feed on
// its interval (always, or only while its webhooks have been silent), and
// stores the events it finds with the feed's new cursor in one transaction.
// Events are deduplicated by id against everything the connection already
// has, webhooks included, so a consumer sees each change once whichever path
// brought it. The JSON contract is documented with ChangeFeed in
// gateway.proto.

#include <functional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/common/clock.h"
#include "server/common/scope.h"
#include "server/common/ticker.h"
#include "server/health/prober.h"
#include "server/storage/store.h"
#include "switchyard/v1/gateway.pb.h"

namespace switchyard::polling {

// One answer of a change feed.
struct FeedPage {
  std::vector<storage::EventRow> events;  // event_id, type, source_time, body
  std::string next_cursor;
  bool has_more = false;
};

// Parses an answer body. INVALID_ARGUMENT / INVALID_FEED with the reason
// when it breaks the contract.
absl::StatusOr<FeedPage> ParseFeedPage(absl::string_view body);

// Thread-safe. Borrows its dependencies, which must outlive it.
class FeedPoller {
 public:
  // `min_interval`: the shortest interval accepted.
  // When the webhook receiver last saw a webhook of a connection, duplicates
  // included (InfinitePast: unknown).
  using LastWebhookFn =
      std::function<absl::Time(const std::string& tenant_id, const std::string& connection_id)>;

  // `allow_private`: see health::CheckOutboundUrl. `last_webhook` (optional)
  // completes what the store knows for WHEN_WEBHOOKS_SILENT.
  FeedPoller(storage::Store& store, Clock& clock, health::HttpProber& http,
             absl::Duration min_interval = absl::Seconds(5), bool allow_private = false,
             LastWebhookFn last_webhook = nullptr)
      : store_(store),
        clock_(clock),
        http_(http),
        min_interval_(min_interval),
        allow_private_(allow_private),
        last_webhook_(std::move(last_webhook)) {}
  ~FeedPoller();

  absl::Status Load() ABSL_LOCKS_EXCLUDED(mu_);
  // A thread that calls Tick every `period` of wall time.
  void Start(absl::Duration period) ABSL_LOCKS_EXCLUDED(mu_);
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);
  // Stores finished fetches and starts the due ones at clock.Now().
  void Tick() ABSL_LOCKS_EXCLUDED(mu_);

  // The RPCs: NOT_FOUND / CONNECTION_NOT_FOUND outside `scope`;
  // INVALID_ARGUMENT for a bad URL, interval, mode or threshold;
  // FAILED_PRECONDITION / CONNECTION_DISCONNECTED.
  absl::StatusOr<v1::ChangeFeed> Set(const v1::SetConnectionChangeFeedRequest& request,
                                     const Scope& scope) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::ChangeFeed> Get(absl::string_view name, const Scope& scope);

  static v1::ChangeFeed ToProto(const storage::ChangeFeedRow& row);

 private:
  struct Entry {
    storage::ChangeFeedRow row;
    absl::Time next_due;
    bool in_flight = false;
    uint64_t generation = 0;
  };
  struct Finished {
    std::string key;
    uint64_t generation;
    health::ProbeResult result;
  };
  // Stores one fetch's outcome; returns whether another page waits.
  // `gone`: the connection is disconnected; its feed was removed.
  absl::StatusOr<bool> Store(storage::ChangeFeedRow& row, const health::ProbeResult& result,
                             absl::Time now, bool& gone);

  storage::Store& store_;
  Clock& clock_;
  health::HttpProber& http_;
  const absl::Duration min_interval_;
  const bool allow_private_;
  const LastWebhookFn last_webhook_;

  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  std::vector<Finished> finished_ ABSL_GUARDED_BY(mu_);
  uint64_t next_generation_ ABSL_GUARDED_BY(mu_) = 1;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  Ticker ticker_;  // last: stopped before the rest goes
};

}  // namespace switchyard::polling

#endif  // SWITCHYARD_SERVER_POLLING_FEED_POLLER_H_
