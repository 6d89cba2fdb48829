#ifndef SWITCHYARD_SERVER_DELIVERY_ENGINE_H_
#define SWITCHYARD_SERVER_DELIVERY_ENGINE_H_

// Streaming delivery of stored events to subscribers, at least once.
//
// Per subscription and connection ("lane") the engine reads the connection's
// events in sequence, sends them to the subscription's streams, and keeps
// what is outstanding with its delivery deadline. A lane sticks to one stream
// while it has events outstanding there; an ordered subscription sends the
// next event of a lane only once the previous one is acknowledged. Acks
// advance a per-lane cursor (every sequence up to it is acknowledged,
// dead-lettered or filtered out) that is written to the store in the
// background, batched: after a crash, events acknowledged in the last few
// milliseconds are delivered again, never lost. Events that run out of
// attempts become dead letters, written in the same batch as the cursor that
// passes them.
//
// An event taken back (deadline passed, nack, stream ended) keeps its
// attempt count in the store, written with the cursor: after a restart, or
// on the replica that takes its connection over, it goes on from there and
// the maximum holds. A count not written yet when a replica dies is lost;
// the event is then delivered again with an attempt number used before.
//
// Replicas: a replica delivers a connection's events to a subscription only
// while it holds that lane's lease in the store. Replicas with streams on a
// subscription register as its members and share its lanes evenly: each
// takes free or expired leases up to its share and gives back extras that
// have nothing outstanding. Leases are renewed every third of their TTL; a
// replica that dies leaves its lanes to the others when its leases expire.
// Acks, nacks and deadline changes are accepted on any stream of the
// subscription: those for lanes this replica does not hold are announced
// through the store (ChangeListener) to the replica that does. An
// announcement is not durable: one lost (a replica reconnecting to the
// database) means a delivery again after its deadline, never a loss.
//
// Threading: every public method is thread-safe and never blocks on I/O; it
// queues its input and wakes the engine thread (Start), which does all reads
// and writes. Tests may instead call Pump() themselves with a manual clock.
// Credential checks of streams (when they open, and again on KeysChanged and
// every reauthorize_interval) may read the store: once started, they run on
// threads of their own, so that many new streams, or a pass over many keys,
// do not hold up delivery.

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/common/clock.h"
#include "server/common/scope.h"
#include "server/common/worker_thread.h"
#include "server/storage/store.h"
#include "switchyard/v1/gateway.pb.h"

namespace switchyard::delivery {

// The sending half of one stream, implemented by the transport. The engine
// calls it from its own thread only; neither method may block.
class StreamSink {
 public:
  virtual ~StreamSink() = default;
  // Queues one message for the client.
  virtual void Send(v1::StreamEventsResponse response) = 0;
  // Ends the stream with `status`, after the queued messages. Called once;
  // Send is not called afterwards.
  virtual void End(absl::Status status) = 0;
};

struct EngineOptions {
  // How long acknowledgements may wait to be written together. Default 5ms.
  absl::Duration flush_interval = absl::Milliseconds(5);
  // Events read ahead per connection. Default 64.
  int lane_buffer = 64;
  // Most events in one stream message. Default 100.
  int max_events_per_message = 100;
  // Names this replica in delivery leases; empty: a random id.
  std::string replica_id;
  // How long delivery leases last without renewal (renewed every third of
  // it). A replica sends nothing new in the last fifth of its leases (by its
  // clock, read just before sending), which absorbs a renewal that blocked
  // and clock skew between replicas up to that much. Default 15s.
  absl::Duration lease_ttl = absl::Seconds(15);
  // A stream whose client leaves more bytes unread (it stopped reading while
  // its connection lives on) is cancelled by the transport, so that its
  // events go to other streams. Default 64 MiB.
  int64_t max_unread_bytes = int64_t{64} << 20;
  // How often every stream's credential is checked again, for keys that
  // expire: revocations arrive through KeysChanged, at once. Each check of a
  // key no longer cached reads the store, once per distinct key, off the
  // engine thread. Default 1 minute.
  absl::Duration reauthorize_interval = absl::Minutes(1);
  // A stream older than this (each stream gets 80-100% of it) is renewed:
  // it gets no new events, and once those outstanding are settled, or after
  // `stream_drain`, it ends with UNAVAILABLE / STREAM_RENEWAL (its events
  // come back without using an attempt) and the client reconnects. The
  // server sets it below gRPC's connection-age grace, so that a connection
  // closed for its age never cuts a stream (a cut counts as a consumer
  // failure). Default: never.
  absl::Duration max_stream_age = absl::InfiniteDuration();
  absl::Duration stream_drain = absl::Seconds(60);
};

// Counters since start, for logs, metrics and benchmarks.
struct DeliveryStats {
  int64_t delivered = 0;    // deliveries sent, first and repeated
  int64_t redelivered = 0;  // of which repeated
  int64_t acked = 0;
  int64_t dead_lettered = 0;
  // Events deleted by retention before a subscription received them.
  int64_t skipped = 0;
  // Failed writes of acknowledgements (retried), or of their announcements
  // to another replica (not retried: the events are delivered again).
  int64_t write_failures = 0;
  // Acks, nacks and deadline changes announced to the replica holding their
  // connection.
  int64_t forwarded = 0;
  int64_t streams = 0;  // open now
};

// Delivery state of one subscription, for metrics.
struct SubscriptionDelivery {
  std::string name;
  int64_t streams = 0;
  int64_t outstanding = 0;  // sent, not yet acknowledged
  // Events stored and not yet acknowledged, dead-lettered or skipped.
  int64_t backlog = 0;
  // Age of the oldest event read and not yet acknowledged (0 when none).
  absl::Duration lag;
};

class DeliveryEngine final : public storage::CommitListener, public storage::ChangeListener {
 public:
  using StreamId = uint64_t;

  // Borrows `store` and `clock`, which must outlive the engine.
  DeliveryEngine(storage::Store& store, Clock& clock, EngineOptions options = {});
  // Calls Shutdown.
  ~DeliveryEngine() override;

  // Starts the engine thread. Without it, nothing happens until Pump().
  void Start() ABSL_LOCKS_EXCLUDED(inbox_mu_);

  // Ends every stream with UNAVAILABLE (clients reconnect, possibly to
  // another replica), writes pending acknowledgements, and stops the engine
  // thread. Later streams are refused with UNAVAILABLE. Idempotent.
  void Shutdown() ABSL_LOCKS_EXCLUDED(inbox_mu_, pump_mu_);

  // Tells the scope of a stream's caller, or the error that ends the stream
  // (for example UNAUTHENTICATED). May read the store. Once the engine is
  // started, runs on threads of the engine's own, never on the engine
  // thread, when the stream opens and later (see KeysChanged); copies of it
  // must be safe to run there. Requests that arrive while it runs wait.
  using Authorizer = std::function<absl::StatusOr<Scope>()>;

  // A new stream; `sink` is kept until the stream ends (sink->End). Its
  // requests come through Handle; the first one must name the subscription.
  // New streams' first checks run one at a time.
  StreamId Open(std::shared_ptr<StreamSink> sink, Authorizer authorize)
      ABSL_LOCKS_EXCLUDED(inbox_mu_) {
    return Open(std::move(sink), std::move(authorize), std::nullopt);
  }
  // The same for a caller whose scope is known: no first check.
  StreamId Open(std::shared_ptr<StreamSink> sink, Scope scope) ABSL_LOCKS_EXCLUDED(inbox_mu_) {
    return Open(
        std::move(sink), [scope]() -> absl::StatusOr<Scope> { return scope; }, scope);
  }
  // One request of the stream. A malformed request ends the stream with
  // INVALID_ARGUMENT; a subscription that does not exist or is outside the
  // stream's scope, with NOT_FOUND.
  void Handle(StreamId stream, v1::StreamEventsRequest request) ABSL_LOCKS_EXCLUDED(inbox_mu_);
  // API keys were revoked, cut short or forgotten: every stream's credential
  // is checked again (its Authorizer runs on the checking thread once
  // started, within Pump without Start, not at all once shutting down), and
  // a stream whose check fails ends with that status (UNAUTHENTICATED, for
  // example); its outstanding events come back without using an attempt.
  // Streams are checked every EngineOptions::reauthorize_interval as well,
  // so that keys that expire end their streams.
  void KeysChanged() ABSL_LOCKS_EXCLUDED(inbox_mu_);

  // The client is done: its outstanding events are delivered again on other
  // streams, and the stream is ended with OK. After a half-close they use
  // up no attempt (they were sent, not failed), though the next delivery
  // has the next attempt number, as every delivery does; when the client
  // broke off (`cancelled`, for example it crashed on an event), each one
  // used up an attempt, so that an event that kills its consumers ends as a
  // dead letter.
  void Close(StreamId stream, bool cancelled) ABSL_LOCKS_EXCLUDED(inbox_mu_);

  // The subscription moved in the store (seek, delete): drop what is known of
  // it and read it again. Outstanding events are delivered again.
  void Invalidate(const std::string& subscription_name) ABSL_LOCKS_EXCLUDED(inbox_mu_);

  // Dead letters of the subscription were marked for replay: deliver them
  // (without disturbing what is outstanding).
  void ReplayDeadLetters(const std::string& subscription_name) ABSL_LOCKS_EXCLUDED(inbox_mu_);

  // storage::CommitListener.
  void EventsCommitted(const std::vector<storage::EventNotice>& notices) override
      ABSL_LOCKS_EXCLUDED(inbox_mu_);
  // storage::ChangeListener: acks, nacks and deadline changes other replicas
  // received for lanes this one may hold.
  void ChangesAnnounced(const std::vector<storage::ChangeNotice>& changes) override
      ABSL_LOCKS_EXCLUDED(inbox_mu_);

  // Processes queued input and everything due at clock.Now(). Runs on the
  // engine thread; tests without Start() call it directly.
  void Pump() ABSL_LOCKS_EXCLUDED(inbox_mu_, pump_mu_);

  // Writes what was acknowledged and dead-lettered so far, and waits until it
  // is durable. Returns the store's error if a write failed (it is retried).
  absl::Status Checkpoint() ABSL_LOCKS_EXCLUDED(inbox_mu_, pump_mu_);

  // EngineOptions::max_unread_bytes, for the transport.
  int64_t max_unread_bytes() const { return options_.max_unread_bytes; }

  DeliveryStats Stats() const;
  // The subscriptions being delivered now (those with streams, or with
  // acknowledgements still to write). Waits for a Pump in progress.
  std::vector<SubscriptionDelivery> Subscriptions() ABSL_LOCKS_EXCLUDED(pump_mu_);
  // Events dead-lettered since start, by subscription name.
  std::map<std::string, int64_t> DeadLettersBySubscription() const ABSL_LOCKS_EXCLUDED(stats_mu_);

 private:
  struct Lane;
  struct Sub;
  struct Stream;
  struct Work;

  struct FlushBatch;

  void Post(Work work) ABSL_LOCKS_EXCLUDED(inbox_mu_);
  // Open, with the scope when it is known already.
  StreamId Open(std::shared_ptr<StreamSink> sink, Authorizer authorize, std::optional<Scope> known)
      ABSL_LOCKS_EXCLUDED(inbox_mu_);
  void Loop() ABSL_LOCKS_EXCLUDED(inbox_mu_);

  // All below run inside Pump, under pump_mu_.
  void Apply(Work& work, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(pump_mu_);
  void Attach(Stream& stream, v1::StreamEventsRequest& request, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(pump_mu_);
  // Starts a check of every stream's credential (one pass at a time; one
  // asked for meanwhile follows it).
  void Reauthorize(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(pump_mu_);
  // A request of a stream whose credential was checked.
  void Request(Stream& stream, v1::StreamEventsRequest& request, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(pump_mu_);
  // The first check of a stream's credential came back: ends the stream, or
  // applies the requests that waited for it.
  void Authorized(StreamId id, absl::StatusOr<Scope> scope, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(pump_mu_);
  // Ends the streams a check refused, those still open.
  void EndRefused(std::vector<std::pair<StreamId, absl::Status>>& refused)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(pump_mu_);
  // Starts and ends the renewal of streams past their age.
  void Renew(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(pump_mu_);
  // Ends a stream; its outstanding events return to the subscription,
  // counting as failed attempts when `used_attempts`.
  void EndStream(StreamId id, absl::Status status, bool used_attempts = true)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(pump_mu_);
  void Detach(Stream& stream, absl::Time now, bool used_attempts)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(pump_mu_);
  void Notice(const storage::EventNotice& notice) ABSL_EXCLUSIVE_LOCKS_REQUIRED(pump_mu_);
  absl::Status Load(Sub& sub) ABSL_EXCLUSIVE_LOCKS_REQUIRED(pump_mu_);
  absl::Status AddLane(Sub& sub, storage::Transaction& tx, const std::string& tenant_id,
                       const std::string& connection_id, const std::string& system_id,
                       std::optional<int64_t> cursor) ABSL_EXCLUSIVE_LOCKS_REQUIRED(pump_mu_);
  absl::Status Fill(Sub& sub) ABSL_EXCLUSIVE_LOCKS_REQUIRED(pump_mu_);
  // Queues the subscription's dead letters marked for replay.
  absl::Status LoadReplays(Sub& sub, storage::Transaction& tx)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(pump_mu_);
  // Sequences [from, to] of `lane` are gone from the store: resolved, logged,
  // counted.
  void Skipped(Sub& sub, Lane& lane, int64_t from, int64_t to)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(pump_mu_);
  bool Dispatch(Sub& sub, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(pump_mu_);
  // Registers this replica as a member of the subscription, renews its
  // leases, takes free ones up to its share and gives back extras.
  void Lease(Sub& sub, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(pump_mu_);
  // The lane's lease went to another replica: forget what was read and sent.
  void DropLane(Lane& lane) ABSL_EXCLUSIVE_LOCKS_REQUIRED(pump_mu_);
  // Gives back the subscription's leases and membership (no streams left).
  void Leave(Sub& sub) ABSL_EXCLUSIVE_LOCKS_REQUIRED(pump_mu_);
  void Expire(Sub& sub, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(pump_mu_);
  // Applies acks, nacks and deadline changes; false when the stream was ended
  // for a malformed request. Those of lanes this replica does not hold are
  // forwarded, unless they were `forwarded` here by another replica.
  bool Settle(Sub& sub, StreamId stream, const v1::StreamEventsRequest& request, absl::Time now,
              bool forwarded = false) ABSL_EXCLUSIVE_LOCKS_REQUIRED(pump_mu_);
  // Announces `foreign` acks to the other replicas, in the background.
  void Forward(const Sub& sub, const v1::StreamEventsRequest& foreign)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(pump_mu_);
  // Takes an outstanding event back: to be delivered again, or, when
  // `used_attempt` and it had its last attempt, to the dead letters.
  void Retry(Sub& sub, Lane& lane, int64_t sequence, absl::Time now, bool used_attempt)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(pump_mu_);
  void Flush(Sub& sub, absl::Time now, bool wait) ABSL_EXCLUSIVE_LOCKS_REQUIRED(pump_mu_);
  void Flushed(FlushBatch& batch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(pump_mu_);
  // Waits for background writes, applies their outcome, then writes the rest
  // synchronously.
  absl::Status FlushAll(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(pump_mu_);
  void SendBatches() ABSL_EXCLUSIVE_LOCKS_REQUIRED(pump_mu_);
  // Ends the subscription's streams with `status` and forgets it.
  void Drop(const std::string& name, absl::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(pump_mu_);

  storage::Store& store_;
  Clock& clock_;
  const EngineOptions options_;
  const std::string holder_;  // this replica in leases

  mutable absl::Mutex inbox_mu_;
  std::vector<Work> inbox_ ABSL_GUARDED_BY(inbox_mu_);
  StreamId next_stream_id_ ABSL_GUARDED_BY(inbox_mu_) = 1;
  bool stopping_ ABSL_GUARDED_BY(inbox_mu_) = false;
  bool drained_ ABSL_GUARDED_BY(inbox_mu_) = false;  // Shutdown is done
  bool started_ ABSL_GUARDED_BY(inbox_mu_) = false;
  // When the engine thread must pump again at the latest.
  absl::Time wake_at_ ABSL_GUARDED_BY(inbox_mu_) = absl::InfiniteFuture();
  int flushes_in_flight_ ABSL_GUARDED_BY(inbox_mu_) = 0;
  // Announcements of acks to other replicas being written (Forward).
  int forwards_in_flight_ ABSL_GUARDED_BY(inbox_mu_) = 0;

  std::atomic<int64_t> delivered_{0};
  std::atomic<int64_t> redelivered_{0};
  std::atomic<int64_t> acked_{0};
  std::atomic<int64_t> dead_lettered_{0};
  std::atomic<int64_t> open_streams_{0};
  std::atomic<int64_t> skipped_{0};
  std::atomic<int64_t> write_failures_{0};
  std::atomic<int64_t> forwarded_{0};
  mutable absl::Mutex stats_mu_;
  std::map<std::string, int64_t> dead_by_subscription_ ABSL_GUARDED_BY(stats_mu_);

  // Held by Pump; taken before inbox_mu_ when both are needed.
  absl::Mutex pump_mu_;
  absl::flat_hash_map<StreamId, std::unique_ptr<Stream>> streams_ ABSL_GUARDED_BY(pump_mu_);
  absl::flat_hash_map<std::string, std::unique_ptr<Sub>> subs_ ABSL_GUARDED_BY(pump_mu_);
  // Streams with a message being assembled.
  std::vector<StreamId> batched_ ABSL_GUARDED_BY(pump_mu_);
  uint64_t next_incarnation_ ABSL_GUARDED_BY(pump_mu_) = 1;
  absl::Time next_reauthorize_ ABSL_GUARDED_BY(pump_mu_) = absl::InfinitePast();
  // The next stream to renew, or the end of a drain; renewing_: a stream is
  // draining, so every Pump checks whether it may end.
  absl::Time next_renewal_ ABSL_GUARDED_BY(pump_mu_) = absl::InfiniteFuture();
  bool renewing_ ABSL_GUARDED_BY(pump_mu_) = false;
  bool shut_down_ ABSL_GUARDED_BY(pump_mu_) = false;
  // A credential pass is running on checker_; another was asked for since.
  bool checking_ ABSL_GUARDED_BY(pump_mu_) = false;
  bool check_again_ ABSL_GUARDED_BY(pump_mu_) = false;
  // Run credential passes, and new streams' first checks, once Start made
  // them; stopped by Shutdown, which first cancels the checks (a pass stops
  // between keys, first checks not started are dropped: every stream ends).
  std::unique_ptr<WorkerThread> checker_;
  std::unique_ptr<WorkerThread> opener_;
  std::atomic<bool> checks_cancelled_{false};

  std::thread thread_;
};

}  // namespace switchyard::delivery

#endif  // SWITCHYARD_SERVER_DELIVERY_ENGINE_H_
