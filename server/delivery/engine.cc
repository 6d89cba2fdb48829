#include "server/delivery/engine.h"

#include <algorithm>
#include <map>
#include <queue>
#include <set>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/common/log.h"
#include "server/common/names.h"
#include "server/common/proto_time.h"
#include "server/common/status.h"
#include "server/delivery/subscription_name.h"
#include "server/events/event_log.h"

namespace switchyard::delivery {
namespace {

// Requests a stream may send before its first credential check answers
// (the first one, and acks left over from an earlier stream).
constexpr size_t kMaxEarlyRequests = 256;

constexpr int kDefaultMaxEvents = 1000;
constexpr int kMaxMaxEvents = 100000;
constexpr int64_t kDefaultMaxBytes = int64_t{10} << 20;
constexpr int kMaxDeadlineSeconds = 600;
// Announcements of acks, nacks and deadline changes for another replica.
constexpr absl::string_view kSettleTopic = "delivery.settle";
// Most of them passed on per request; the rest are dropped (their events are
// delivered again after their deadline).
constexpr int kMaxForwardedPerRequest = 1000;
// Two ids of at most 63 characters and three numbers.
constexpr size_t kMaxAckIdBytes = 63 + 1 + 63 + 3 * (1 + 19);
// Events of one connection sent per dispatch round (unordered
// subscriptions); rounds alternate between connections.
constexpr int kEventsPerRound = 16;
// Dispatch rounds per Pump before yielding to new input.
constexpr int kRoundsPerPump = 64;

std::string LaneKey(absl::string_view tenant_id, absl::string_view connection_id) {
  return absl::StrCat(tenant_id, "/", connection_id);
}

// An ack id names a delivery: tenant/connection/sequence/attempt/generation.
// The generation is the subscription's, which every seek changes, so acks of
// deliveries made before a seek do not settle the deliveries after it.
struct AckId {
  std::string lane;
  int64_t sequence = 0;
  int attempt = 0;
  int64_t generation = 0;
};

std::string FormatAckId(absl::string_view lane, int64_t sequence, int attempt, int64_t generation) {
  return absl::StrCat(lane, "/", sequence, "/", attempt, "/", generation);
}

// The ack id as the engine writes it (what other replicas are told).
std::string Canonical(const AckId& id) {
  return FormatAckId(id.lane, id.sequence, id.attempt, id.generation);
}

std::optional<AckId> ParseAckId(absl::string_view text) {
  std::vector<absl::string_view> parts = absl::StrSplit(text, '/');
  AckId id;
  // Tenant and connection are ids and the rest plain digits: no spaces or
  // line ends, so that an ack id can be announced to other replicas.
  auto digits = [](absl::string_view part) {
    return !part.empty() && part.size() <= 19 &&
           std::all_of(part.begin(), part.end(), [](char c) { return absl::ascii_isdigit(c); });
  };
  if (text.size() > kMaxAckIdBytes || parts.size() != 5 || !ValidateId("tenant", parts[0]).ok() ||
      !ValidateId("connection", parts[1]).ok() || !digits(parts[2]) || !digits(parts[3]) ||
      !digits(parts[4]) || !absl::SimpleAtoi(parts[2], &id.sequence) ||
      !absl::SimpleAtoi(parts[3], &id.attempt) || !absl::SimpleAtoi(parts[4], &id.generation)) {
    return std::nullopt;
  }
  id.lane = LaneKey(parts[0], parts[1]);
  return id;
}

absl::Status Malformed(absl::string_view message) {
  return InvalidArgument("INVALID_STREAM_REQUEST", message);
}

}  // namespace

struct DeliveryEngine::Work {
  enum Kind {
    kOpen,
    kRequest,
    kClose,
    kInvalidate,
    kReplay,
    kNotices,
    kFlushed,
    kForwarded,
    kReauthorize,
    kReauthorized,
    kAuthorized
  };
  Kind kind = kOpen;
  StreamId stream = 0;
  std::shared_ptr<StreamSink> sink;
  Authorizer authorize;  // kOpen
  v1::StreamEventsRequest request;
  std::string name;
  std::vector<storage::EventNotice> notices;
  std::shared_ptr<FlushBatch> flushed;
  bool cancelled = false;                                  // kClose
  std::vector<std::pair<StreamId, absl::Status>> refused;  // kReauthorized
  std::optional<absl::StatusOr<Scope>> scope;              // kAuthorized; kOpen when known
};

struct DeliveryEngine::Stream {
  StreamId id = 0;
  std::shared_ptr<StreamSink> sink;
  Authorizer authorize;  // run again when keys change, and every reauthorize_interval
  Scope scope;
  std::string sub;  // name, once attached
  int max_events = kDefaultMaxEvents;
  int64_t max_bytes = kDefaultMaxBytes;
  int outstanding = 0;
  int64_t outstanding_bytes = 0;
  v1::StreamEventsResponse batch;  // being assembled
  size_t batch_bytes = 0;          // its encoded size, kept below kMaxMessageEventBytes

  // Past its age (EngineOptions::max_stream_age) a stream gets nothing new
  // and ends once its events are settled, or at renew_at + drain at the
  // latest.
  absl::Time renew_at = absl::InfiniteFuture();
  bool renewing = false;

  // Its first credential check runs on a thread of the engine; the
  // requests that arrive meanwhile wait here, in order, and so does the
  // client's close (with its `cancelled`): a refused credential is told,
  // not an OK.
  bool authorizing = false;
  std::vector<v1::StreamEventsRequest> early;
  std::optional<bool> closed_early;
  // Keys changed while the first check ran (it may have read the key
  // before): checked again once it is done.
  bool recheck = false;

  // At least one event is always allowed, whatever its size.
  bool HasRoom() const {
    return !renewing && outstanding < max_events &&
           (outstanding == 0 || outstanding_bytes < max_bytes);
  }
};

namespace {
struct Waiting {
  std::shared_ptr<const v1::Event> event;
  int64_t position = 0;
  int attempts = 0;  // deliveries so far
  bool replay = false;
  // Of those, the ones that used no attempt (returned by a half-closed
  // stream unseen): not counted against the subscription's maximum.
  int free = 0;
};

// An event's delivery count, and how many of those used up no attempt.
struct AttemptCount {
  int attempts = 0;
  int free = 0;
};

// Every delivery of an event has the next attempt number, so that its ack id
// names that delivery alone (a late ack of an earlier one settles nothing);
// `free` of them do not count against the subscription's maximum.
struct Delivered {
  std::shared_ptr<const v1::Event> event;
  int64_t position = 0;
  int attempt = 0;
  int free = 0;
  absl::Time deadline;
  // The earliest deadline queued for it in Sub::expiries (later entries of
  // it are stale). An extended deadline queues nothing: that entry queues
  // the new one when it comes due; only an earlier one is queued.
  absl::Time queued;
  uint64_t stream = 0;
  bool replay = false;
};
}  // namespace

struct DeliveryEngine::Lane {
  std::string key;  // tenant/connection
  std::string tenant_id;
  std::string connection_id;
  // Every sequence up to here is acknowledged, dead-lettered or skipped.
  int64_t resolved_through = 0;
  // Every sequence up to here was read from the store (or skipped).
  int64_t loaded_through = 0;
  // The highest sequence known to be stored.
  int64_t known_last = 0;
  std::map<int64_t, Waiting> ready;  // to send, lowest sequence first
  std::map<int64_t, Delivered> outstanding;
  // Resolved ranges [first, last] above resolved_through, by first.
  std::map<int64_t, int64_t> resolved_above;
  // Attempt counts of events above the cursor (taken back at least once):
  // as read from the store when the lease was gained, used when the event is
  // read again; changed since the last flush, written with the cursor; and
  // the sequences that have a count in the store, deleted once the cursor
  // passes them. Replayed dead letters keep theirs in memory only.
  std::map<int64_t, AttemptCount> prior;
  std::map<int64_t, AttemptCount> unsaved;
  std::set<int64_t> saved;
  // Sequences above resolved_through whose dead letter is being replayed:
  // they arrive through the normal path, and their dead letter goes when
  // they are acknowledged. Position of the dead letter by sequence.
  std::map<int64_t, int64_t> replayed_above;
  StreamId stream = 0;  // while anything is outstanding
  bool queued = false;  // in Sub::runnable
  bool dirty = false;   // in Sub::dirty
  bool leased = false;  // this replica holds the lane's lease
  // Given back once nothing is outstanding: no new event is sent meanwhile.
  bool draining = false;
  // Writes of its cursor and attempt counts in flight (Flush to Flushed).
  int writing = 0;
  // Nothing sent is waiting for its ack and the cursor and counts are
  // written: the lane can go to another replica, which resumes at the cursor
  // (events acked above a gap, or waiting to be sent again, are delivered by
  // it) with the counts.
  bool Idle() const { return outstanding.empty() && !dirty && writing == 0; }
};

namespace {
struct Expiry {
  absl::Time deadline;
  void* lane = nullptr;  // a DeliveryEngine::Lane of the same Sub
  int64_t sequence = 0;
  int attempt = 0;
  bool operator>(const Expiry& other) const { return deadline > other.deadline; }
};
}  // namespace

struct DeliveryEngine::Sub {
  SubscriptionKey key;
  std::string name;
  uint64_t incarnation = 0;
  bool loaded = false;
  int64_t start_position = 0;
  int64_t generation = 0;
  absl::Duration ack_deadline = absl::Seconds(30);
  int max_attempts = 5;
  bool ordered = false;
  absl::flat_hash_set<std::string> connections;  // lane keys; empty: all
  absl::flat_hash_set<std::string> systems;      // empty: all
  std::vector<std::string> types;                // empty: all

  absl::flat_hash_map<std::string, std::unique_ptr<Lane>> lanes;
  absl::flat_hash_set<std::string> excluded;          // connections that do not match
  absl::flat_hash_map<std::string, int64_t> unknown;  // seen in notices, not looked up yet
  std::vector<StreamId> streams;
  std::vector<std::pair<StreamId, v1::StreamEventsRequest>> early;  // before loading
  std::deque<Lane*> runnable;
  std::priority_queue<Expiry, std::vector<Expiry>, std::greater<>> expiries;

  std::vector<Lane*> dirty;
  std::vector<storage::DeadLetterRow> dead;
  std::vector<int64_t> undead;  // dead letters replayed and acknowledged
  bool flushing = false;
  absl::Time last_flush = absl::InfinitePast();
  bool replay_pending = false;  // dead letters were marked for replay

  bool lease_due = true;  // lanes without a lease decision (new, or after a load)
  absl::Time next_lease = absl::InfinitePast();
  absl::Time leased_until = absl::InfinitePast();  // last renewal + TTL
  bool member = false;                             // registered in the store
  int draining = 0;                                // lanes being given back

  bool TypeMatches(absl::string_view type) const {
    if (types.empty()) return true;
    for (const std::string& t : types) {
      if (absl::EndsWith(t, "*")
              ? absl::StartsWith(type, absl::string_view(t).substr(0, t.size() - 1))
              : type == t) {
        return true;
      }
    }
    return false;
  }
  bool HasPendingWrites() const { return !dirty.empty() || !dead.empty() || !undead.empty(); }

  void Wake(Lane& lane) {
    if (lane.queued) return;
    lane.queued = true;
    runnable.push_back(&lane);
  }
  void MarkDirty(Lane& lane) {
    if (lane.dirty) return;
    lane.dirty = true;
    dirty.push_back(&lane);
  }
  // Marks sequences [from, to] resolved.
  void Resolve(Lane& lane, int64_t from, int64_t to) {
    if (to <= lane.resolved_through) return;
    from = std::max(from, lane.resolved_through + 1);
    // Merge [from, to] with the ranges it touches.
    auto it = lane.resolved_above.upper_bound(from);
    if (it != lane.resolved_above.begin() && std::prev(it)->second >= from - 1) {
      --it;
      from = it->first;
      to = std::max(to, it->second);
      it = lane.resolved_above.erase(it);
    }
    while (it != lane.resolved_above.end() && it->first <= to + 1) {
      to = std::max(to, it->second);
      it = lane.resolved_above.erase(it);
    }
    lane.resolved_above[from] = to;
    auto first = lane.resolved_above.begin();
    if (first->first <= lane.resolved_through + 1) {
      lane.resolved_through = std::max(lane.resolved_through, first->second);
      lane.resolved_above.erase(first);
    }
    MarkDirty(lane);
  }
};

struct DeliveryEngine::FlushBatch {
  struct Cursor {
    Lane* lane;  // only dereferenced by Flushed, when its Sub still exists
    storage::SubscriptionCursorRow row;
    std::vector<storage::DeliveryAttemptRow> attempts;  // to write
    std::vector<int64_t> deleted;                       // counts up to the cursor, to delete
  };
  std::string name;
  uint64_t incarnation = 0;
  SubscriptionKey key;
  int64_t generation = 0;
  std::string holder;  // cursors are written only for lanes it still holds
  std::vector<Cursor> cursors;
  std::vector<storage::DeadLetterRow> dead;
  std::vector<int64_t> undead;
  absl::Status status;
};

namespace {
std::string RandomReplicaId() {
  absl::BitGen gen;
  return absl::StrCat("r", absl::Hex(absl::Uniform<uint64_t>(gen), absl::kZeroPad16));
}
}  // namespace

DeliveryEngine::DeliveryEngine(storage::Store& store, Clock& clock, EngineOptions options)
    : store_(store),
      clock_(clock),
      options_(options),
      holder_(options.replica_id.empty() ? RandomReplicaId() : options.replica_id) {}

DeliveryEngine::~DeliveryEngine() { Shutdown(); }

void DeliveryEngine::Start() {
  absl::MutexLock lock(&inbox_mu_);
  if (started_ || stopping_) return;
  started_ = true;
  // One pass at a time is queued (checking_).
  checker_ = std::make_unique<WorkerThread>(1);
  // New streams' first checks; with more waiting, a check runs on the
  // engine thread.
  opener_ = std::make_unique<WorkerThread>(4096);
  thread_ = std::thread([this] { Loop(); });
}

void DeliveryEngine::Post(Work work) {
  absl::MutexLock lock(&inbox_mu_);
  if (drained_) return;  // nothing would ever take it
  inbox_.push_back(std::move(work));
}

DeliveryEngine::StreamId DeliveryEngine::Open(std::shared_ptr<StreamSink> sink,
                                              Authorizer authorize, std::optional<Scope> known) {
  Work work;
  work.kind = Work::kOpen;
  work.sink = sink;
  work.authorize = std::move(authorize);
  if (known.has_value()) work.scope = *std::move(known);
  {
    absl::MutexLock lock(&inbox_mu_);
    if (!stopping_) {
      work.stream = next_stream_id_++;
      const StreamId id = work.stream;
      inbox_.push_back(std::move(work));
      return id;
    }
  }
  sink->End(Error(absl::StatusCode::kUnavailable, "SHUTTING_DOWN",
                  "the server is shutting down; reconnect"));
  return 0;
}

void DeliveryEngine::Handle(StreamId stream, v1::StreamEventsRequest request) {
  Work work;
  work.kind = Work::kRequest;
  work.stream = stream;
  work.request = std::move(request);
  Post(std::move(work));
}

void DeliveryEngine::Close(StreamId stream, bool cancelled) {
  Work work;
  work.kind = Work::kClose;
  work.stream = stream;
  work.cancelled = cancelled;
  Post(std::move(work));
}

void DeliveryEngine::Invalidate(const std::string& subscription_name) {
  Work work;
  work.kind = Work::kInvalidate;
  work.name = subscription_name;
  Post(std::move(work));
}

void DeliveryEngine::ReplayDeadLetters(const std::string& subscription_name) {
  Work work;
  work.kind = Work::kReplay;
  work.name = subscription_name;
  Post(std::move(work));
}

void DeliveryEngine::EventsCommitted(const std::vector<storage::EventNotice>& notices) {
  Work work;
  work.kind = Work::kNotices;
  work.notices = notices;
  Post(std::move(work));
}

DeliveryStats DeliveryEngine::Stats() const {
  DeliveryStats stats;
  stats.delivered = delivered_.load();
  stats.redelivered = redelivered_.load();
  stats.acked = acked_.load();
  stats.dead_lettered = dead_lettered_.load();
  stats.streams = open_streams_.load();
  stats.skipped = skipped_.load();
  stats.write_failures = write_failures_.load();
  stats.forwarded = forwarded_.load();
  return stats;
}

std::map<std::string, int64_t> DeliveryEngine::DeadLettersBySubscription() const {
  absl::MutexLock lock(&stats_mu_);
  return dead_by_subscription_;
}

std::vector<SubscriptionDelivery> DeliveryEngine::Subscriptions() {
  absl::MutexLock lock(&pump_mu_);
  const absl::Time now = clock_.Now();
  std::vector<SubscriptionDelivery> out;
  for (const auto& [name, sub] : subs_) {
    if (!sub->loaded) continue;
    SubscriptionDelivery d;
    d.name = name;
    d.streams = static_cast<int64_t>(sub->streams.size());
    absl::Time oldest = absl::InfiniteFuture();
    auto consider = [&](const v1::Event& e) {
      const absl::Time received = absl::FromUnixSeconds(e.receive_time().seconds()) +
                                  absl::Nanoseconds(e.receive_time().nanos());
      oldest = std::min(oldest, received);
    };
    for (const auto& [key, lane] : sub->lanes) {
      d.outstanding += static_cast<int64_t>(lane->outstanding.size());
      d.backlog += std::max<int64_t>(0, lane->known_last - lane->resolved_through);
      if (!lane->outstanding.empty()) consider(*lane->outstanding.begin()->second.event);
      if (!lane->ready.empty()) consider(*lane->ready.begin()->second.event);
    }
    if (oldest != absl::InfiniteFuture() && oldest < now) d.lag = now - oldest;
    out.push_back(std::move(d));
  }
  return out;
}

void DeliveryEngine::Loop() {
  while (true) {
    {
      absl::MutexLock lock(&inbox_mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(inbox_mu_) {
        return !inbox_.empty() || stopping_;
      };
      // wake_at_ is on the engine's clock, which is the wall clock when the
      // engine thread runs.
      inbox_mu_.AwaitWithDeadline(absl::Condition(&ready), wake_at_);
      if (stopping_) return;
    }
    Pump();
  }
}

void DeliveryEngine::Pump() {
  std::vector<Work> work;
  {
    absl::MutexLock lock(&inbox_mu_);
    work.swap(inbox_);
    wake_at_ = absl::InfiniteFuture();
  }
  absl::MutexLock lock(&pump_mu_);
  if (shut_down_) return;
  absl::Time now = clock_.Now();
  for (Work& w : work) Apply(w, now);
  if (now >= next_reauthorize_) Reauthorize(now);
  if (now >= next_renewal_ || renewing_) Renew(now);

  absl::Time wake = std::min(next_reauthorize_, next_renewal_);
  std::vector<std::string> names;
  names.reserve(subs_.size());
  for (const auto& [name, sub] : subs_) names.push_back(name);
  for (const std::string& name : names) {
    auto it = subs_.find(name);
    if (it == subs_.end()) continue;
    Sub& sub = *it->second;
    if (!sub.loaded) {
      if (absl::Status loaded = Load(sub); !loaded.ok()) {
        Drop(name, loaded);
        continue;
      }
    }
    if (sub.streams.empty()) {
      // Nobody receives: write what was acknowledged, then forget it until
      // a stream comes back (its state is read again from the store).
      Flush(sub, now, false);
      if (!sub.HasPendingWrites() && !sub.flushing) {
        if (sub.member) Leave(sub);
        subs_.erase(it);
        continue;
      }
      if (!sub.flushing) wake = std::min(wake, sub.last_flush + options_.flush_interval);
      continue;
    }
    if (sub.draining > 0 && !sub.lease_due && !sub.flushing) {
      // A draining lane whose events are all settled and written goes back
      // now rather than at the next renewal.
      for (auto& [key, lane] : sub.lanes) {
        if (lane->draining && lane->Idle()) sub.lease_due = true;
      }
    }
    if (sub.lease_due || now >= sub.next_lease) Lease(sub, now);
    wake = std::min(wake, sub.next_lease);
    if (sub.replay_pending) {
      absl::Status replays =
          store_.Read([&](storage::Transaction& tx) { return LoadReplays(sub, tx); });
      if (replays.ok()) {
        sub.replay_pending = false;
      } else {
        log::Warning("delivery: reading replayed dead letters failed; will retry",
                     {{"subscription", name}, {"error", replays.ToString()}});
      }
    }
    Expire(sub, now);
    bool more = false;
    for (int round = 0; round < kRoundsPerPump; ++round) {
      if (absl::Status filled = Fill(sub); !filled.ok()) {
        log::Warning("delivery: reading events failed",
                     {{"subscription", name}, {"error", filled.ToString()}});
        wake = std::min(wake, now + absl::Milliseconds(100));
        break;
      }
      more = Dispatch(sub, now);
      if (!more) break;
    }
    if (more || sub.lease_due) wake = now;
    Flush(sub, now, false);
    if (!sub.expiries.empty()) wake = std::min(wake, sub.expiries.top().deadline);
    if (sub.HasPendingWrites() && !sub.flushing) {
      wake = std::min(wake, sub.last_flush + options_.flush_interval);
    }
  }
  SendBatches();
  absl::MutexLock inbox_lock(&inbox_mu_);
  wake_at_ = std::min(wake_at_, wake);
}

void DeliveryEngine::Apply(Work& w, absl::Time now) {
  switch (w.kind) {
    case Work::kOpen: {
      auto stream = std::make_unique<Stream>();
      stream->id = w.stream;
      stream->sink = std::move(w.sink);
      std::optional<absl::StatusOr<Scope>> scope = std::move(w.scope);
      // Unless known, the check may read the store: off this thread once
      // started.
      if (!scope.has_value() &&
          (opener_ == nullptr || !opener_->Post([this, id = w.stream, authorize = w.authorize] {
            if (checks_cancelled_.load(std::memory_order_acquire)) return;
            Work work;
            work.kind = Work::kAuthorized;
            work.stream = id;
            work.scope = authorize();
            Post(std::move(work));
          }))) {
        scope = w.authorize();
      }
      stream->authorize = std::move(w.authorize);
      stream->authorizing = !scope.has_value();
      if (options_.max_stream_age > absl::ZeroDuration() &&
          options_.max_stream_age < absl::InfiniteDuration()) {
        // Spread over [0.8, 1] of the age, so that streams opened together
        // do not all reconnect together.
        const double spread = static_cast<double>((w.stream * 2654435761u) % 1000) / 1000.0;
        stream->renew_at = now + options_.max_stream_age * (0.8 + 0.2 * spread);
        next_renewal_ = std::min(next_renewal_, stream->renew_at);
      }
      ++open_streams_;
      streams_[w.stream] = std::move(stream);
      if (scope.has_value()) Authorized(w.stream, *std::move(scope), now);
      return;
    }
    case Work::kAuthorized:
      Authorized(w.stream, *std::move(w.scope), now);
      return;
    case Work::kReauthorize:
      Reauthorize(now);
      return;
    case Work::kReauthorized:
      checking_ = false;
      EndRefused(w.refused);
      if (check_again_) {
        check_again_ = false;
        Reauthorize(now);
      }
      return;
    case Work::kRequest: {
      auto it = streams_.find(w.stream);
      if (it == streams_.end()) return;
      if (it->second->authorizing) {
        // A client not checked yet cannot pile up requests.
        if (it->second->early.size() >= kMaxEarlyRequests) {
          EndStream(w.stream,
                    Error(absl::StatusCode::kResourceExhausted, "TOO_MANY_EARLY_REQUESTS",
                          absl::StrCat("at most ", kMaxEarlyRequests,
                                       " requests before the stream's credential is checked")));
          return;
        }
        it->second->early.push_back(std::move(w.request));
        return;
      }
      Request(*it->second, w.request, now);
      return;
    }
    case Work::kClose: {
      auto it = streams_.find(w.stream);
      if (it == streams_.end()) return;
      if (it->second->authorizing) {
        it->second->closed_early = w.cancelled;
        return;
      }
      EndStream(w.stream, absl::OkStatus(), w.cancelled);
      return;
    }
    case Work::kInvalidate: {
      auto it = subs_.find(w.name);
      if (it == subs_.end()) return;
      auto fresh = std::make_unique<Sub>();
      fresh->key = it->second->key;
      fresh->name = w.name;
      fresh->incarnation = next_incarnation_++;
      fresh->streams = it->second->streams;
      for (StreamId id : fresh->streams) {
        auto s = streams_.find(id);
        if (s == streams_.end()) continue;
        s->second->outstanding = 0;
        s->second->outstanding_bytes = 0;
      }
      it->second = std::move(fresh);
      return;
    }
    case Work::kReplay: {
      auto it = subs_.find(w.name);
      if (it != subs_.end()) it->second->replay_pending = true;
      return;
    }
    case Work::kNotices:
      for (const storage::EventNotice& n : w.notices) Notice(n);
      return;
    case Work::kFlushed:
      Flushed(*w.flushed);
      return;
    case Work::kForwarded: {
      // Settles what this replica holds; the rest is dropped (the lane moved
      // on, or the subscription has no stream here).
      auto it = subs_.find(w.name);
      if (it != subs_.end() && it->second->loaded) {
        Settle(*it->second, /*stream=*/0, w.request, now, /*forwarded=*/true);
      }
      return;
    }
  }
}

void DeliveryEngine::Request(Stream& stream, v1::StreamEventsRequest& request, absl::Time now) {
  if (stream.sub.empty()) {
    Attach(stream, request, now);
    return;
  }
  if (!request.subscription().empty() && request.subscription() != stream.sub) {
    EndStream(stream.id, Malformed("only the first request names the subscription"));
    return;
  }
  auto sub = subs_.find(stream.sub);
  if (sub == subs_.end()) return;
  if (!sub->second->loaded) {
    sub->second->early.emplace_back(stream.id, std::move(request));
    return;
  }
  Settle(*sub->second, stream.id, request, now);
}

void DeliveryEngine::Authorized(StreamId id, absl::StatusOr<Scope> scope, absl::Time now) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return;  // closed while it was checked
  Stream& stream = *it->second;
  stream.authorizing = false;
  if (!scope.ok()) {
    EndStream(id, scope.status());
    return;
  }
  stream.scope = *std::move(scope);
  std::vector<v1::StreamEventsRequest> early = std::move(stream.early);
  const std::optional<bool> closed = stream.closed_early;
  if (stream.recheck) {
    stream.recheck = false;
    Reauthorize(now);
  }
  for (v1::StreamEventsRequest& request : early) {
    auto s = streams_.find(id);
    if (s == streams_.end()) return;  // a request ended it
    Request(*s->second, request, now);
  }
  if (closed.has_value() && streams_.contains(id)) EndStream(id, absl::OkStatus(), *closed);
}

void DeliveryEngine::KeysChanged() {
  Work work;
  work.kind = Work::kReauthorize;
  Post(std::move(work));
}

void DeliveryEngine::Renew(absl::Time now) {
  next_renewal_ = absl::InfiniteFuture();
  renewing_ = false;
  std::vector<StreamId> done;
  for (auto& [id, stream] : streams_) {
    if (!stream->renewing && now >= stream->renew_at) stream->renewing = true;
    if (stream->renewing) {
      if (stream->outstanding == 0 || now >= stream->renew_at + options_.stream_drain) {
        done.push_back(id);
        continue;
      }
      // Checked again when an ack settles its last event (every input
      // pumps), and at the end of the drain.
      next_renewal_ = std::min(next_renewal_, stream->renew_at + options_.stream_drain);
      renewing_ = true;
    } else {
      next_renewal_ = std::min(next_renewal_, stream->renew_at);
    }
  }
  for (StreamId id : done) {
    EndStream(id,
              Error(absl::StatusCode::kUnavailable, "STREAM_RENEWAL",
                    "the stream reached its maximum age; reconnect"),
              /*used_attempts=*/false);
  }
}

void DeliveryEngine::Reauthorize(absl::Time now) {
  next_reauthorize_ = now + options_.reauthorize_interval;
  if (checking_) {
    check_again_ = true;
    return;
  }
  auto checks = std::make_shared<std::vector<std::pair<StreamId, Authorizer>>>();
  for (const auto& [id, stream] : streams_) {
    // One still being checked for the first time is checked again after.
    if (stream->authorizing) {
      stream->recheck = true;
      continue;
    }
    if (stream->authorize) checks->emplace_back(id, stream->authorize);
  }
  if (checks->empty()) return;
  auto run = [this, checks] {
    std::vector<std::pair<StreamId, absl::Status>> refused;
    for (const auto& [id, authorize] : *checks) {
      // Shutdown ends every stream anyway: a pass against a store that
      // hangs must not hold it up.
      if (checks_cancelled_.load(std::memory_order_acquire)) break;
      // A key's scope never changes: only whether it is still valid
      // matters. A failure to check (the store unreachable) keeps the
      // stream: it is checked again at the next interval.
      absl::StatusOr<Scope> scope = authorize();
      if (absl::IsUnauthenticated(scope.status()) || absl::IsPermissionDenied(scope.status())) {
        refused.emplace_back(id, scope.status());
      }
    }
    return refused;
  };
  if (checker_ != nullptr) {
    checking_ = true;
    const bool queued = checker_->Post([this, run] {
      Work work;
      work.kind = Work::kReauthorized;
      work.refused = run();
      Post(std::move(work));
    });
    if (!queued) checking_ = false;  // shutting down: every stream ends anyway
    return;
  }
  std::vector<std::pair<StreamId, absl::Status>> refused = run();
  EndRefused(refused);
}

void DeliveryEngine::EndRefused(std::vector<std::pair<StreamId, absl::Status>>& refused) {
  // The client did nothing wrong with its events: they come back without
  // using up an attempt. A stream that ended meanwhile is gone already.
  for (auto& [id, status] : refused) {
    if (streams_.contains(id)) EndStream(id, std::move(status), /*used_attempts=*/false);
  }
}

void DeliveryEngine::Attach(Stream& stream, v1::StreamEventsRequest& request, absl::Time now) {
  if (request.subscription().empty()) {
    EndStream(stream.id, Malformed("the first request must name the subscription"));
    return;
  }
  absl::StatusOr<SubscriptionKey> key =
      ParseSubscriptionName("subscription", request.subscription());
  if (!key.ok()) {
    EndStream(stream.id, key.status());
    return;
  }
  if (!key->VisibleTo(stream.scope)) {
    EndStream(stream.id, NotFound("SUBSCRIPTION_NOT_FOUND",
                                  absl::StrCat(request.subscription(), " does not exist")));
    return;
  }
  if (request.max_outstanding_events() < 0 || request.max_outstanding_events() > kMaxMaxEvents ||
      request.max_outstanding_bytes() < 0) {
    EndStream(stream.id,
              InvalidArgument("INVALID_FLOW_CONTROL",
                              absl::StrCat("max_outstanding_events must be 0 to ", kMaxMaxEvents,
                                           " and max_outstanding_bytes not negative")));
    return;
  }
  if (request.max_outstanding_events() > 0) stream.max_events = request.max_outstanding_events();
  if (request.max_outstanding_bytes() > 0) stream.max_bytes = request.max_outstanding_bytes();
  const std::string name = key->Name();
  auto& sub = subs_[name];
  if (sub == nullptr) {
    sub = std::make_unique<Sub>();
    sub->key = *key;
    sub->name = name;
    sub->incarnation = next_incarnation_++;
  }
  stream.sub = name;
  sub->streams.push_back(stream.id);
  if (request.ack_ids_size() + request.nack_ids_size() + request.modify_deadline_ack_ids_size() >
      0) {
    if (sub->loaded) {
      Settle(*sub, stream.id, request, now);
    } else {
      sub->early.emplace_back(stream.id, std::move(request));
    }
  }
}

void DeliveryEngine::EndStream(StreamId id, absl::Status status, bool used_attempts) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  std::unique_ptr<Stream> stream = std::move(it->second);
  streams_.erase(it);
  Detach(*stream, clock_.Now(), used_attempts);
  stream->sink->End(std::move(status));
  --open_streams_;
}

void DeliveryEngine::Detach(Stream& stream, absl::Time now, bool used_attempts) {
  if (stream.sub.empty()) return;
  auto it = subs_.find(stream.sub);
  stream.sub.clear();
  if (it == subs_.end()) return;
  Sub& sub = *it->second;
  sub.streams.erase(std::remove(sub.streams.begin(), sub.streams.end(), stream.id),
                    sub.streams.end());
  // Whatever was outstanding on the stream goes to the other streams now.
  for (auto& [key, lane] : sub.lanes) {
    if (lane->stream != stream.id) continue;
    std::vector<int64_t> sequences;
    for (const auto& [sequence, delivered] : lane->outstanding) sequences.push_back(sequence);
    for (int64_t sequence : sequences) Retry(sub, *lane, sequence, now, used_attempts);
    lane->stream = 0;
  }
}

void DeliveryEngine::Drop(const std::string& name, absl::Status status) {
  auto it = subs_.find(name);
  if (it == subs_.end()) return;
  std::vector<StreamId> streams = it->second->streams;
  subs_.erase(it);
  for (StreamId id : streams) EndStream(id, status);
}

void DeliveryEngine::Notice(const storage::EventNotice& n) {
  const std::string key = LaneKey(n.tenant_id, n.connection_id);
  for (auto& [name, sub] : subs_) {
    if (!sub->loaded) continue;
    if (!sub->key.tenant_id.empty() && sub->key.tenant_id != n.tenant_id) continue;
    if (!sub->connections.empty() && !sub->connections.contains(key)) continue;
    auto lane = sub->lanes.find(key);
    if (lane != sub->lanes.end()) {
      lane->second->known_last = std::max(lane->second->known_last, n.sequence);
      sub->Wake(*lane->second);
    } else if (!sub->excluded.contains(key)) {
      int64_t& last = sub->unknown[key];
      last = std::max(last, n.sequence);
    }
  }
}

absl::Status DeliveryEngine::AddLane(Sub& sub, storage::Transaction& tx,
                                     const std::string& tenant_id, const std::string& connection_id,
                                     const std::string& system_id, std::optional<int64_t> cursor) {
  const std::string key = LaneKey(tenant_id, connection_id);
  if (sub.lanes.contains(key)) return absl::OkStatus();
  if (!sub.systems.empty() && !sub.systems.contains(system_id)) {
    sub.excluded.insert(key);
    return absl::OkStatus();
  }
  auto lane = std::make_unique<Lane>();
  lane->key = key;
  lane->tenant_id = tenant_id;
  lane->connection_id = connection_id;
  SY_ASSIGN_OR_RETURN(lane->known_last, tx.LastEventSequence(tenant_id, connection_id));
  if (cursor.has_value()) {
    lane->resolved_through = *cursor;
  } else {
    SY_ASSIGN_OR_RETURN(int64_t first,
                        tx.FirstEventSequenceAfter(tenant_id, connection_id, sub.start_position));
    lane->resolved_through = first > 0 ? first - 1 : lane->known_last;
  }
  lane->loaded_through = lane->resolved_through;
  Lane& added = *lane;
  sub.lanes[key] = std::move(lane);
  sub.lease_due = true;
  sub.Wake(added);
  return absl::OkStatus();
}

absl::Status DeliveryEngine::Load(Sub& sub) {
  v1::Subscription config;
  absl::Status status = store_.Read([&](storage::Transaction& tx) -> absl::Status {
    sub.lanes.clear();
    sub.runnable.clear();
    sub.excluded.clear();
    sub.unknown.clear();
    SY_ASSIGN_OR_RETURN(std::optional<storage::SubscriptionRow> row,
                        tx.GetSubscription(sub.key.tenant_id, sub.key.id));
    if (!row.has_value()) {
      return NotFound("SUBSCRIPTION_NOT_FOUND", absl::StrCat(sub.name, " does not exist"));
    }
    if (!config.ParseFromString(row->config)) {
      return Error(absl::StatusCode::kDataLoss, "SUBSCRIPTION_CORRUPT",
                   absl::StrCat(sub.name, " cannot be read"));
    }
    sub.start_position = row->start_position;
    sub.generation = row->generation;
    sub.ack_deadline = FromProto(config.ack_deadline());
    sub.max_attempts = config.max_delivery_attempts();
    sub.ordered = config.ordered();
    sub.connections.clear();
    sub.systems.clear();
    sub.types.assign(config.filter().event_types().begin(), config.filter().event_types().end());
    for (const std::string& c : config.filter().connections()) {
      // tenants/{t}/connections/{c}, validated on create.
      std::vector<absl::string_view> parts = absl::StrSplit(c, '/');
      if (parts.size() == 4) sub.connections.insert(LaneKey(parts[1], parts[3]));
    }
    for (const std::string& s : config.filter().systems()) sub.systems.insert(s);

    SY_ASSIGN_OR_RETURN(std::vector<storage::SubscriptionCursorRow> cursors,
                        tx.ListSubscriptionCursors(sub.key.tenant_id, sub.key.id));
    absl::flat_hash_map<std::string, int64_t> cursor_of;
    for (const auto& c : cursors)
      cursor_of[LaneKey(c.tenant_id, c.connection_id)] = c.resolved_through;

    auto add = [&](const storage::ConnectionRow& c) -> absl::Status {
      const std::string key = LaneKey(c.tenant_id, c.id);
      if (!sub.connections.empty() && !sub.connections.contains(key)) return absl::OkStatus();
      auto cursor = cursor_of.find(key);
      return AddLane(
          sub, tx, c.tenant_id, c.id, c.system_id,
          cursor == cursor_of.end() ? std::nullopt : std::optional<int64_t>(cursor->second));
    };
    auto add_tenant = [&](const std::string& tenant_id) -> absl::Status {
      std::string after;
      while (true) {
        SY_ASSIGN_OR_RETURN(std::vector<storage::ConnectionRow> page,
                            tx.ListConnections(tenant_id, {}, after, 1000));
        for (const auto& c : page) SY_RETURN_IF_ERROR(add(c));
        if (page.size() < 1000) return absl::OkStatus();
        after = page.back().id;
      }
    };
    if (!sub.key.tenant_id.empty()) {
      SY_RETURN_IF_ERROR(add_tenant(sub.key.tenant_id));
    } else {
      std::string after;
      while (true) {
        SY_ASSIGN_OR_RETURN(std::vector<storage::TenantRow> tenants, tx.ListTenants(after, 1000));
        for (const auto& t : tenants) SY_RETURN_IF_ERROR(add_tenant(t.id));
        if (tenants.size() < 1000) break;
        after = tenants.back().id;
      }
    }

    return LoadReplays(sub, tx);
  });
  if (!status.ok()) return status;
  sub.loaded = true;
  auto early = std::move(sub.early);
  sub.early.clear();
  const absl::Time now = clock_.Now();
  for (auto& [id, request] : early) {
    // Applied even when the stream is gone: acks are accepted from any
    // stream, and after a reconnect they may be all that arrived.
    Settle(sub, id, request, now);
  }
  return absl::OkStatus();
}

void DeliveryEngine::Skipped(Sub& sub, Lane& lane, int64_t from, int64_t to) {
  sub.Resolve(lane, from, to);
  skipped_ += to - from + 1;
  log::Warning("delivery: events deleted by retention before this subscription received them",
               {{"subscription", sub.name},
                {"connection", lane.key},
                {"first_sequence", from},
                {"last_sequence", to}});
}

absl::Status DeliveryEngine::LoadReplays(Sub& sub, storage::Transaction& tx) {
  int64_t after = 0;
  while (true) {
    SY_ASSIGN_OR_RETURN(std::vector<storage::DeadLetterRow> replays,
                        tx.ListDeadLetters(sub.key.tenant_id, sub.key.id, after, 1000, true));
    for (const storage::DeadLetterRow& d : replays) {
      auto it = sub.lanes.find(LaneKey(d.tenant_id, d.connection_id));
      if (it == sub.lanes.end() || !it->second->leased) continue;  // another replica's
      Lane& lane = *it->second;
      const bool present = lane.ready.contains(d.sequence) || lane.outstanding.contains(d.sequence);
      if (present || d.sequence > lane.loaded_through) {
        // On its way through the normal path: its ack ends the dead letter.
        lane.replayed_above[d.sequence] = d.position;
        continue;
      }
      SY_ASSIGN_OR_RETURN(std::optional<storage::EventRow> event,
                          tx.GetEvent(d.tenant_id, d.connection_id, d.sequence));
      if (!event.has_value()) continue;  // past retention
      lane.ready[d.sequence] =
          Waiting{std::make_shared<const v1::Event>(events::EventLog::ToProto(*event)), d.position,
                  0, true};
      sub.Wake(lane);
    }
    if (replays.size() < 1000) return absl::OkStatus();
    after = replays.back().position;
  }
}

absl::Status DeliveryEngine::Fill(Sub& sub) {
  std::vector<Lane*> wanting;
  for (Lane* lane : sub.runnable) {
    if (lane->leased && static_cast<int>(lane->ready.size()) < options_.lane_buffer / 2 + 1 &&
        lane->loaded_through < lane->known_last) {
      wanting.push_back(lane);
    }
  }
  if (wanting.empty() && sub.unknown.empty()) return absl::OkStatus();
  return store_.Read([&](storage::Transaction& tx) -> absl::Status {
    if (!sub.unknown.empty()) {
      // Cleared once read; a failed read leaves them for the next round.
      auto unknown = sub.unknown;
      for (const auto& [key, last] : unknown) {
        std::pair<std::string, std::string> ids = absl::StrSplit(key, absl::MaxSplits('/', 1));
        SY_ASSIGN_OR_RETURN(std::optional<storage::ConnectionRow> c,
                            tx.GetConnection(ids.first, ids.second));
        if (!c.has_value()) continue;
        SY_RETURN_IF_ERROR(AddLane(sub, tx, c->tenant_id, c->id, c->system_id, std::nullopt));
        auto lane = sub.lanes.find(key);
        if (lane != sub.lanes.end()) {
          lane->second->known_last = std::max(lane->second->known_last, last);
          if (lane->second->leased && lane->second->loaded_through < lane->second->known_last) {
            wanting.push_back(lane->second.get());
          }
        }
      }
      sub.unknown.clear();
    }
    for (Lane* lane : wanting) {
      const int want = options_.lane_buffer - static_cast<int>(lane->ready.size());
      SY_ASSIGN_OR_RETURN(
          std::vector<storage::EventRow> rows,
          tx.ListEvents(lane->tenant_id, lane->connection_id, lane->loaded_through, want));
      for (storage::EventRow& row : rows) {
        if (row.sequence > lane->loaded_through + 1) {
          Skipped(sub, *lane, lane->loaded_through + 1, row.sequence - 1);
        }
        lane->loaded_through = row.sequence;
        auto event = std::make_shared<const v1::Event>(events::EventLog::ToProto(row));
        if (!sub.TypeMatches(event->type())) {
          sub.Resolve(*lane, row.sequence, row.sequence);
          continue;
        }
        Waiting waiting{std::move(event), row.position, 0, false};
        if (auto prior = lane->prior.find(row.sequence); prior != lane->prior.end()) {
          waiting.attempts = prior->second.attempts;
          waiting.free = prior->second.free;
          lane->prior.erase(prior);
        }
        lane->ready[row.sequence] = std::move(waiting);
      }
      if (static_cast<int>(rows.size()) < want && lane->loaded_through < lane->known_last) {
        Skipped(sub, *lane, lane->loaded_through + 1, lane->known_last);
        lane->loaded_through = lane->known_last;
      }
    }
    return absl::OkStatus();
  });
}

bool DeliveryEngine::Dispatch(Sub& sub, absl::Time now) {
  if (sub.streams.empty()) return false;
  bool progress = false;
  // The leases must hold with room to spare, on a clock read now: a renewal
  // that blocked (the store in trouble) may have taken seconds since `now`,
  // and another replica's clock may be ahead. Past that, nothing new is
  // sent; the replica that takes the lanes over sends the rest.
  const bool leases_hold = std::max(now, clock_.Now()) < sub.leased_until - options_.lease_ttl / 5;
  const size_t n = sub.runnable.size();
  for (size_t i = 0; i < n; ++i) {
    Lane* lane = sub.runnable.front();
    sub.runnable.pop_front();
    if (!lane->leased || lane->draining || !leases_hold) {
      lane->queued = false;  // woken when its lease is taken or renewed
      continue;
    }
    if (lane->ready.empty()) {
      if (lane->loaded_through < lane->known_last) {
        sub.runnable.push_back(lane);  // Fill reads more
      } else {
        lane->queued = false;
      }
      continue;
    }
    if (sub.ordered && !lane->outstanding.empty()) {
      lane->queued = false;  // woken when the outstanding event is settled
      continue;
    }
    Stream* stream = nullptr;
    if (lane->stream != 0) {
      auto it = streams_.find(lane->stream);
      if (it != streams_.end()) stream = it->second.get();
    } else {
      for (StreamId id : sub.streams) {
        auto it = streams_.find(id);
        if (it == streams_.end()) continue;
        Stream* candidate = it->second.get();
        if (candidate->HasRoom() &&
            (stream == nullptr || candidate->outstanding < stream->outstanding)) {
          stream = candidate;
        }
      }
    }
    if (stream == nullptr || !stream->HasRoom()) {
      sub.runnable.push_back(lane);  // waits for room on its stream
      continue;
    }
    const int limit = sub.ordered ? 1 : kEventsPerRound;
    for (int sent = 0; sent < limit && !lane->ready.empty() && stream->HasRoom(); ++sent) {
      auto first = lane->ready.begin();
      const int64_t sequence = first->first;
      Waiting waiting = std::move(first->second);
      lane->ready.erase(first);
      Delivered d;
      d.event = std::move(waiting.event);
      d.position = waiting.position;
      d.attempt = waiting.attempts + 1;
      d.free = waiting.free;
      d.deadline = now + sub.ack_deadline;
      d.stream = stream->id;
      d.replay = waiting.replay;
      ++stream->outstanding;
      stream->outstanding_bytes += static_cast<int64_t>(d.event->body().size());
      // A message stays below the clients' 4 MiB limit: one that would grow
      // past kMaxMessageEventBytes is sent first.
      const size_t event_bytes = d.event->ByteSizeLong() + 64;
      if (stream->batch.received_events_size() > 0 &&
          stream->batch_bytes + event_bytes > kMaxMessageEventBytes) {
        stream->sink->Send(std::move(stream->batch));
        stream->batch.Clear();
        stream->batch_bytes = 0;
      }
      if (stream->batch.received_events_size() == 0) batched_.push_back(stream->id);
      stream->batch_bytes += event_bytes;
      v1::ReceivedEvent* received = stream->batch.add_received_events();
      received->set_ack_id(FormatAckId(lane->key, sequence, d.attempt, sub.generation));
      *received->mutable_event() = *d.event;
      received->set_delivery_attempt(d.attempt);
      if (stream->batch.received_events_size() >= options_.max_events_per_message) {
        stream->sink->Send(std::move(stream->batch));
        stream->batch.Clear();
        stream->batch_bytes = 0;
      }
      sub.expiries.push(Expiry{d.deadline, lane, sequence, d.attempt});
      d.queued = d.deadline;
      ++delivered_;
      if (d.attempt > 1) ++redelivered_;
      lane->outstanding[sequence] = std::move(d);
      lane->stream = stream->id;
      progress = true;
      if (sub.ordered) break;
    }
    sub.runnable.push_back(lane);
  }
  return progress;
}

void DeliveryEngine::Lease(Sub& sub, absl::Time now) {
  const absl::Time expire = now + options_.lease_ttl;
  std::vector<Lane*> lanes;
  lanes.reserve(sub.lanes.size());
  for (auto& [key, lane] : sub.lanes) lanes.push_back(lane.get());
  std::sort(lanes.begin(), lanes.end(), [](Lane* a, Lane* b) { return a->key < b->key; });
  struct Plan {
    bool moved = false;  // seek or delete: Invalidate reloads the subscription
    std::vector<std::pair<Lane*, std::optional<int64_t>>> gained;  // with the stored cursor
    std::vector<Lane*> lost;
    std::vector<Lane*> released;
    std::vector<Lane*> kept;
    std::vector<Lane*> draining;
    // The subscription's stored attempt counts, when lanes were gained.
    std::vector<storage::DeliveryAttemptRow> attempts;
  };
  Plan plan;
  absl::Status status = store_.Write([&](storage::Transaction& tx) -> absl::Status {
    plan = Plan();  // the function runs again after a conflict
    const std::string& tenant = sub.key.tenant_id;
    const std::string& id = sub.key.id;
    SY_ASSIGN_OR_RETURN(std::optional<storage::SubscriptionRow> row,
                        tx.GetSubscription(tenant, id));
    if (!row.has_value() || row->generation != sub.generation) {
      plan.moved = true;
      return absl::OkStatus();
    }
    SY_RETURN_IF_ERROR(tx.PutDeliveryMember({tenant, id, holder_, expire}));
    SY_ASSIGN_OR_RETURN(std::vector<storage::DeliveryMemberRow> members,
                        tx.ListDeliveryMembers(tenant, id));
    size_t present = 0;
    for (const auto& m : members) {
      present += m.expire_time > now ? 1 : 0;
      // A replica gone for an hour (every restart brings a new id) is
      // forgotten, with its expired leases.
      if (m.holder != holder_ && m.expire_time < now - absl::Hours(1)) {
        SY_RETURN_IF_ERROR(tx.LeaveDelivery(tenant, id, m.holder));
      }
    }
    const size_t share = (lanes.size() + present - 1) / std::max<size_t>(present, 1);
    SY_ASSIGN_OR_RETURN(std::vector<storage::DeliveryLeaseRow> leases,
                        tx.ListDeliveryLeases(tenant, id));
    absl::flat_hash_map<std::string, const storage::DeliveryLeaseRow*> lease_of;
    for (const auto& l : leases) lease_of[LaneKey(l.tenant_id, l.connection_id)] = &l;
    SY_ASSIGN_OR_RETURN(std::vector<storage::SubscriptionCursorRow> cursors,
                        tx.ListSubscriptionCursors(tenant, id));
    absl::flat_hash_map<std::string, int64_t> cursor_of;
    for (const auto& c : cursors) {
      cursor_of[LaneKey(c.tenant_id, c.connection_id)] = c.resolved_through;
    }
    auto cursor = [&](Lane* lane) -> std::optional<int64_t> {
      auto it = cursor_of.find(lane->key);
      if (it == cursor_of.end()) return std::nullopt;
      return it->second;
    };
    std::vector<Lane*> mine, free;
    for (Lane* lane : lanes) {
      auto it = lease_of.find(lane->key);
      if (it != lease_of.end() && it->second->holder == holder_) {
        mine.push_back(lane);
        continue;
      }
      if (lane->leased) plan.lost.push_back(lane);
      if (it == lease_of.end() || it->second->expire_time <= now) free.push_back(lane);
    }
    // Extras go back, those with nothing in flight (a lane with outstanding
    // events drains first: nothing new is sent on it until they are settled,
    // then it goes back at once).
    size_t held = mine.size();
    for (Lane* lane : mine) {
      if (held > share && (lane->Idle() || !lane->leased)) {
        if (lane->leased) {
          SY_RETURN_IF_ERROR(tx.PutSubscriptionCursor(
              {tenant, id, lane->tenant_id, lane->connection_id, lane->resolved_through}));
        }
        SY_RETURN_IF_ERROR(
            tx.DeleteDeliveryLease(tenant, id, lane->tenant_id, lane->connection_id, holder_));
        plan.released.push_back(lane);
        --held;
        continue;
      }
      SY_RETURN_IF_ERROR(
          tx.PutDeliveryLease({tenant, id, lane->tenant_id, lane->connection_id, holder_, expire}));
      if (!lane->leased) plan.gained.emplace_back(lane, cursor(lane));
      plan.kept.push_back(lane);
    }
    // Of those kept, the ones beyond the share drain.
    for (size_t i = share; i < plan.kept.size(); ++i) plan.draining.push_back(plan.kept[i]);
    for (Lane* lane : free) {
      if (held >= share) break;
      SY_RETURN_IF_ERROR(
          tx.PutDeliveryLease({tenant, id, lane->tenant_id, lane->connection_id, holder_, expire}));
      plan.gained.emplace_back(lane, cursor(lane));
      ++held;
    }
    if (!plan.gained.empty()) {
      SY_ASSIGN_OR_RETURN(plan.attempts, tx.ListDeliveryAttempts(tenant, id));
    }
    return absl::OkStatus();
  });
  sub.lease_due = false;
  if (!status.ok()) {
    log::Warning("delivery: renewing leases failed; will retry",
                 {{"subscription", sub.name}, {"error", status.ToString()}});
    sub.next_lease = now + std::min(options_.lease_ttl / 3, absl::Seconds(1));
    return;
  }
  sub.next_lease = now + options_.lease_ttl / 3;
  if (plan.moved) {
    // Sought or deleted, possibly through another replica: read it again
    // (a deleted one ends its streams).
    Invalidate(sub.name);
    return;
  }
  // Dead letters marked for replay through any replica, and those of lanes
  // just gained, are read again.
  sub.replay_pending = true;
  sub.member = true;
  sub.leased_until = expire;
  for (Lane* lane : plan.lost) DropLane(*lane);
  for (Lane* lane : plan.released) DropLane(*lane);
  for (auto& [key, lane] : sub.lanes) lane->draining = false;
  for (Lane* lane : plan.draining) lane->draining = true;
  sub.draining = static_cast<int>(plan.draining.size());
  for (auto& [lane, cursor] : plan.gained) {
    lane->leased = true;
    if (cursor.has_value() && *cursor != lane->resolved_through) {
      // Another replica moved the lane since it was read here.
      DropLane(*lane);
      lane->leased = true;
      lane->resolved_through = *cursor;
      lane->loaded_through = *cursor;
    }
    lane->prior.clear();
    lane->saved.clear();
    lane->unsaved.clear();
  }
  // Lanes gained start from the counts in the store; those kept here know
  // better.
  absl::flat_hash_set<const Lane*> gained;
  for (const auto& [lane, cursor] : plan.gained) gained.insert(lane);
  for (const storage::DeliveryAttemptRow& a : plan.attempts) {
    auto it = sub.lanes.find(LaneKey(a.tenant_id, a.connection_id));
    if (it == sub.lanes.end() || !gained.contains(it->second.get())) continue;
    Lane& lane = *it->second;
    lane.saved.insert(a.sequence);
    if (a.sequence > lane.resolved_through && lane.loaded_through < a.sequence) {
      lane.prior[a.sequence] = AttemptCount{a.attempts, a.free};
    }
  }
  for (Lane* lane : lanes) {
    if (lane->leased) sub.Wake(*lane);
  }
}

void DeliveryEngine::DropLane(Lane& lane) {
  for (auto& [sequence, d] : lane.outstanding) {
    auto stream = streams_.find(d.stream);
    if (stream != streams_.end()) {
      --stream->second->outstanding;
      stream->second->outstanding_bytes -= static_cast<int64_t>(d.event->body().size());
    }
  }
  lane.outstanding.clear();
  lane.ready.clear();
  lane.resolved_above.clear();
  lane.replayed_above.clear();
  lane.prior.clear();
  lane.unsaved.clear();
  lane.saved.clear();
  lane.stream = 0;
  lane.leased = false;
  lane.loaded_through = lane.resolved_through;
}

void DeliveryEngine::Leave(Sub& sub) {
  absl::Status left = store_.Write([&](storage::Transaction& tx) {
    return tx.LeaveDelivery(sub.key.tenant_id, sub.key.id, holder_);
  });
  if (!left.ok()) {
    log::Warning("delivery: giving back leases failed; they expire by themselves",
                 {{"subscription", sub.name}, {"error", left.ToString()}});
  }
  sub.member = false;
}

void DeliveryEngine::Expire(Sub& sub, absl::Time now) {
  while (!sub.expiries.empty() && sub.expiries.top().deadline <= now) {
    Expiry e = sub.expiries.top();
    sub.expiries.pop();
    Lane& lane = *static_cast<Lane*>(e.lane);
    auto it = lane.outstanding.find(e.sequence);
    if (it == lane.outstanding.end() || it->second.attempt != e.attempt ||
        e.deadline != it->second.queued) {
      continue;  // settled, or a stale entry
    }
    Delivered& d = it->second;
    if (d.deadline > e.deadline) {
      // Extended since it was queued.
      sub.expiries.push(Expiry{d.deadline, &lane, e.sequence, d.attempt});
      d.queued = d.deadline;
      continue;
    }
    Retry(sub, lane, e.sequence, now, /*used_attempt=*/true);
  }
}

void DeliveryEngine::Retry(Sub& sub, Lane& lane, int64_t sequence, absl::Time now,
                           bool used_attempt) {
  auto it = lane.outstanding.find(sequence);
  if (it == lane.outstanding.end()) return;
  Delivered d = std::move(it->second);
  lane.outstanding.erase(it);
  auto stream = streams_.find(d.stream);
  if (stream != streams_.end()) {
    --stream->second->outstanding;
    stream->second->outstanding_bytes -= static_cast<int64_t>(d.event->body().size());
  }
  if (lane.outstanding.empty()) lane.stream = 0;
  sub.Wake(lane);
  // Kept in the store (with the cursor), so that the count goes on after a
  // restart or on another replica.
  auto count = [&](int free) {
    if (d.replay) return;
    lane.unsaved[sequence] = AttemptCount{d.attempt, free};
    sub.MarkDirty(lane);
  };
  if (!used_attempt) {
    // Sent but never seen: delivered again without using an attempt.
    count(d.free + 1);
    lane.ready[sequence] = Waiting{std::move(d.event), d.position, d.attempt, d.replay, d.free + 1};
    return;
  }
  const int used = d.attempt - d.free;
  if (used < sub.max_attempts) {
    count(d.free);
    lane.ready[sequence] = Waiting{std::move(d.event), d.position, d.attempt, d.replay, d.free};
    return;
  }
  storage::DeadLetterRow row;
  row.subscription_tenant_id = sub.key.tenant_id;
  row.subscription_id = sub.key.id;
  row.position = d.position;
  row.tenant_id = lane.tenant_id;
  row.connection_id = lane.connection_id;
  row.sequence = sequence;
  row.attempts = used;
  row.dead_time = now;
  sub.dead.push_back(std::move(row));
  if (!d.replay) {
    lane.replayed_above.erase(sequence);  // the new dead letter replaces the replayed one
    sub.Resolve(lane, sequence, sequence);
  }
  ++dead_lettered_;
  {
    absl::MutexLock lock(&stats_mu_);
    ++dead_by_subscription_[sub.name];
  }
  log::Warning("event dead-lettered", {{"subscription", sub.name},
                                       {"connection", lane.key},
                                       {"sequence", sequence},
                                       {"attempts", used}});
}

bool DeliveryEngine::Settle(Sub& sub, StreamId stream, const v1::StreamEventsRequest& request,
                            absl::Time now, bool forwarded) {
  // A malformed request ends its stream (if it still exists); what came
  // before in it is applied.
  auto reject = [&](absl::Status status) {
    EndStream(stream, std::move(status));
    return false;
  };
  if (request.modify_deadline_ack_ids_size() != request.modify_deadline_seconds_size()) {
    return reject(
        Malformed("modify_deadline_ack_ids and modify_deadline_seconds must have the same length"));
  }
  // Acks of lanes another replica may hold go to it (through the store's
  // announcements), once; those that came that way are not sent on again.
  v1::StreamEventsRequest foreign;
  const bool may_forward = !forwarded && store_.Shared();
  int forwarding = 0;
  // The lane of a well-formed ack id of the current generation, or nullptr
  // (then, for a lane of the subscription this replica does not hold,
  // `pass_on` is called).
  auto find = [&](const std::string& text, AckId& id,
                  absl::FunctionRef<void()> pass_on) -> std::optional<Lane*> {
    std::optional<AckId> parsed = ParseAckId(text);
    if (!parsed.has_value()) return std::nullopt;
    id = *std::move(parsed);
    if (id.generation != sub.generation) return nullptr;  // made before a seek
    auto lane = sub.lanes.find(id.lane);
    if (lane == sub.lanes.end()) return nullptr;  // not of this subscription
    if (!lane->second->leased) {
      if (may_forward && forwarding < kMaxForwardedPerRequest) {
        ++forwarding;
        pass_on();
      }
      return nullptr;
    }
    return lane->second.get();
  };
  auto malformed = [&](const std::string& text) {
    if (foreign.ByteSizeLong() > 0) Forward(sub, foreign);
    return reject(Malformed(absl::StrCat("malformed ack id '", text.substr(0, 64), "'")));
  };
  for (const std::string& text : request.ack_ids()) {
    AckId id;
    std::optional<Lane*> found = find(text, id, [&] { foreign.add_ack_ids(Canonical(id)); });
    if (!found.has_value()) return malformed(text);
    Lane* lane = *found;
    if (lane == nullptr) continue;
    const int64_t sequence = id.sequence;
    bool replay = false;
    int64_t position = 0;
    if (auto it = lane->outstanding.find(sequence); it != lane->outstanding.end()) {
      // In an ordered subscription, only the delivery in flight settles it:
      // a late ack of an earlier attempt must not let the next event overtake
      // the redelivery being processed.
      if (sub.ordered && it->second.attempt != id.attempt) continue;
      auto owner = streams_.find(it->second.stream);
      if (owner != streams_.end()) {
        --owner->second->outstanding;
        owner->second->outstanding_bytes -= static_cast<int64_t>(it->second.event->body().size());
      }
      replay = it->second.replay;
      position = it->second.position;
      lane->outstanding.erase(it);
      if (lane->outstanding.empty()) lane->stream = 0;
    } else if (auto w = lane->ready.find(sequence); w != lane->ready.end()) {
      // Acknowledged while waiting to be delivered again (after a deadline,
      // a nack, or a reconnect).
      replay = w->second.replay;
      position = w->second.position;
      lane->ready.erase(w);
    } else {
      continue;  // already acknowledged: acks are idempotent
    }
    if (replay) {
      sub.undead.push_back(position);
    } else {
      if (auto r = lane->replayed_above.find(sequence); r != lane->replayed_above.end()) {
        sub.undead.push_back(r->second);
        lane->replayed_above.erase(r);
      }
      sub.Resolve(*lane, sequence, sequence);
    }
    ++acked_;
    sub.Wake(*lane);
  }
  auto nack = [&](Lane& lane, const AckId& id) {
    auto it = lane.outstanding.find(id.sequence);
    if (it != lane.outstanding.end() && it->second.attempt == id.attempt) {
      Retry(sub, lane, id.sequence, now, /*used_attempt=*/true);
    }
  };
  for (const std::string& text : request.nack_ids()) {
    AckId id;
    std::optional<Lane*> found = find(text, id, [&] { foreign.add_nack_ids(Canonical(id)); });
    if (!found.has_value()) return malformed(text);
    if (*found != nullptr) nack(**found, id);
  }
  for (int i = 0; i < request.modify_deadline_ack_ids_size(); ++i) {
    const std::string& text = request.modify_deadline_ack_ids(i);
    const int seconds = request.modify_deadline_seconds(i);
    if (seconds < 0 || seconds > kMaxDeadlineSeconds) {
      return reject(InvalidArgument(
          "INVALID_DEADLINE",
          absl::StrCat("modify_deadline_seconds must be 0 to ", kMaxDeadlineSeconds)));
    }
    AckId id;
    std::optional<Lane*> found = find(text, id, [&] {
      foreign.add_modify_deadline_ack_ids(Canonical(id));
      foreign.add_modify_deadline_seconds(seconds);
    });
    if (!found.has_value()) return malformed(text);
    Lane* lane = *found;
    if (lane == nullptr) continue;
    if (seconds == 0) {
      nack(*lane, id);
      continue;
    }
    auto it = lane->outstanding.find(id.sequence);
    if (it == lane->outstanding.end() || it->second.attempt != id.attempt) continue;
    Delivered& d = it->second;
    d.deadline = now + absl::Seconds(seconds);
    if (d.deadline < d.queued) {
      sub.expiries.push(Expiry{d.deadline, lane, id.sequence, d.attempt});
      d.queued = d.deadline;
    }
  }
  if (foreign.ByteSizeLong() > 0) Forward(sub, foreign);
  return true;
}

void DeliveryEngine::Forward(const Sub& sub, const v1::StreamEventsRequest& foreign) {
  // One announcement line per ack id: "<subscription> <a|n|d> <ack id>
  // [seconds]". Names and ack ids hold no spaces, tabs or line ends.
  std::vector<std::string> lines;
  for (const std::string& id : foreign.ack_ids()) {
    lines.push_back(absl::StrCat(sub.name, " a ", id));
  }
  for (const std::string& id : foreign.nack_ids()) {
    lines.push_back(absl::StrCat(sub.name, " n ", id));
  }
  for (int i = 0; i < foreign.modify_deadline_ack_ids_size(); ++i) {
    lines.push_back(absl::StrCat(sub.name, " d ", foreign.modify_deadline_ack_ids(i), " ",
                                 foreign.modify_deadline_seconds(i)));
  }
  forwarded_ += static_cast<int64_t>(lines.size());
  const std::string name = sub.name;
  {
    absl::MutexLock lock(&inbox_mu_);
    ++forwards_in_flight_;
  }
  store_.WriteAsync(
      [lines = std::move(lines)](storage::Transaction& tx) {
        for (const std::string& line : lines) tx.AnnounceChange(kSettleTopic, line);
        return absl::OkStatus();
      },
      [this, name](absl::Status status) {
        if (!status.ok()) {
          // Lost acks only mean deliveries again after their deadline.
          ++write_failures_;
          log::Warning("acknowledgements for another replica not sent",
                       {{"subscription", name}, {"error", status.ToString()}});
        }
        absl::MutexLock lock(&inbox_mu_);
        --forwards_in_flight_;  // last: Shutdown may return at once
      },
      name);
}

void DeliveryEngine::ChangesAnnounced(const std::vector<storage::ChangeNotice>& changes) {
  // Gathered per subscription, in the order announced.
  std::map<std::string, v1::StreamEventsRequest> by_sub;
  for (const storage::ChangeNotice& change : changes) {
    if (change.topic != kSettleTopic) continue;
    std::vector<absl::string_view> parts = absl::StrSplit(change.id, ' ');
    if (parts.size() < 3) continue;
    if (!ParseAckId(parts[2]).has_value()) continue;
    v1::StreamEventsRequest& request = by_sub[std::string(parts[0])];
    int seconds = 0;
    if (parts[1] == "a" && parts.size() == 3) {
      request.add_ack_ids(std::string(parts[2]));
    } else if (parts[1] == "n" && parts.size() == 3) {
      request.add_nack_ids(std::string(parts[2]));
    } else if (parts[1] == "d" && parts.size() == 4 && absl::SimpleAtoi(parts[3], &seconds) &&
               seconds >= 0 && seconds <= kMaxDeadlineSeconds) {
      request.add_modify_deadline_ack_ids(std::string(parts[2]));
      request.add_modify_deadline_seconds(seconds);
    }
  }
  for (auto& [name, request] : by_sub) {
    Work work;
    work.kind = Work::kForwarded;
    work.name = name;
    work.request = std::move(request);
    Post(std::move(work));
  }
}

void DeliveryEngine::Flush(Sub& sub, absl::Time now, bool wait) {
  if (!sub.loaded || !sub.HasPendingWrites()) return;
  if (!wait && (sub.flushing || now < sub.last_flush + options_.flush_interval)) return;
  auto batch = std::make_shared<FlushBatch>();
  batch->name = sub.name;
  batch->incarnation = sub.incarnation;
  batch->key = sub.key;
  batch->generation = sub.generation;
  batch->holder = holder_;
  for (Lane* lane : sub.dirty) {
    lane->dirty = false;
    FlushBatch::Cursor cursor{lane,
                              {sub.key.tenant_id, sub.key.id, lane->tenant_id, lane->connection_id,
                               lane->resolved_through},
                              {},
                              {}};
    for (const auto& [sequence, count] : lane->unsaved) {
      if (sequence <= lane->resolved_through) continue;
      cursor.attempts.push_back({sub.key.tenant_id, sub.key.id, lane->tenant_id,
                                 lane->connection_id, sequence, count.attempts, count.free});
      lane->saved.insert(sequence);
    }
    lane->unsaved.clear();
    const auto passed = lane->saved.upper_bound(lane->resolved_through);
    cursor.deleted.assign(lane->saved.begin(), passed);
    lane->saved.erase(lane->saved.begin(), passed);
    lane->prior.erase(lane->prior.begin(), lane->prior.upper_bound(lane->resolved_through));
    ++lane->writing;
    batch->cursors.push_back(std::move(cursor));
  }
  sub.dirty.clear();
  batch->dead = std::move(sub.dead);
  sub.dead.clear();
  batch->undead = std::move(sub.undead);
  sub.undead.clear();
  sub.flushing = true;
  sub.last_flush = now;
  auto write = [batch](storage::Transaction& tx) -> absl::Status {
    SY_ASSIGN_OR_RETURN(std::optional<storage::SubscriptionRow> row,
                        tx.GetSubscription(batch->key.tenant_id, batch->key.id));
    // Deleted, or moved by a seek since these acknowledgements were made.
    if (!row.has_value() || row->generation != batch->generation) return absl::OkStatus();
    for (const FlushBatch::Cursor& c : batch->cursors) {
      // A lane whose lease went to another replica is that replica's to move.
      SY_ASSIGN_OR_RETURN(
          std::string holder,
          tx.DeliveryLeaseHolder(c.row.subscription_tenant_id, c.row.subscription_id,
                                 c.row.tenant_id, c.row.connection_id));
      if (holder != batch->holder) continue;
      SY_RETURN_IF_ERROR(tx.PutSubscriptionCursor(c.row));
      if (!c.deleted.empty()) {
        SY_RETURN_IF_ERROR(tx.DeleteDeliveryAttempts(c.row.subscription_tenant_id,
                                                     c.row.subscription_id, c.row.tenant_id,
                                                     c.row.connection_id, c.row.resolved_through));
      }
      for (const storage::DeliveryAttemptRow& a : c.attempts) {
        SY_RETURN_IF_ERROR(tx.PutDeliveryAttempt(a));
      }
    }
    // Like cursors: an event of a lane that moved stays the new holder's to
    // deliver (its cursor was not moved past it here).
    absl::flat_hash_map<std::string, bool> held;  // by lane
    for (const storage::DeadLetterRow& d : batch->dead) {
      const std::string lane = LaneKey(d.tenant_id, d.connection_id);
      auto it = held.find(lane);
      if (it == held.end()) {
        SY_ASSIGN_OR_RETURN(std::string holder,
                            tx.DeliveryLeaseHolder(d.subscription_tenant_id, d.subscription_id,
                                                   d.tenant_id, d.connection_id));
        it = held.emplace(lane, holder == batch->holder).first;
      }
      if (it->second) SY_RETURN_IF_ERROR(tx.PutDeadLetter(d));
    }
    for (int64_t position : batch->undead) {
      SY_RETURN_IF_ERROR(tx.DeleteDeadLetter(batch->key.tenant_id, batch->key.id, position));
    }
    return absl::OkStatus();
  };
  if (wait) {
    batch->status = store_.Write(write);
    Flushed(*batch);
    return;
  }
  {
    absl::MutexLock lock(&inbox_mu_);
    ++flushes_in_flight_;
  }
  store_.WriteAsync(
      write,
      [this, batch](absl::Status status) {
        batch->status = std::move(status);
        Work work;
        work.kind = Work::kFlushed;
        work.flushed = batch;
        absl::MutexLock lock(&inbox_mu_);
        inbox_.push_back(std::move(work));
        --flushes_in_flight_;
      },
      "$delivery");
}

void DeliveryEngine::Flushed(FlushBatch& batch) {
  auto it = subs_.find(batch.name);
  if (it == subs_.end() || it->second->incarnation != batch.incarnation) return;
  Sub& sub = *it->second;
  sub.flushing = false;
  for (const FlushBatch::Cursor& c : batch.cursors) --c.lane->writing;
  if (batch.status.ok()) return;
  ++write_failures_;
  log::Warning("delivery: writing acknowledgements failed; will retry",
               {{"subscription", sub.name}, {"error", batch.status.ToString()}});
  for (const FlushBatch::Cursor& c : batch.cursors) {
    if (!c.lane->leased) continue;  // gone to another replica meanwhile
    sub.MarkDirty(*c.lane);
    // Written again with the next flush, unless counted again since.
    for (const storage::DeliveryAttemptRow& a : c.attempts) {
      c.lane->unsaved.emplace(a.sequence, AttemptCount{a.attempts, a.free});
    }
    c.lane->saved.insert(c.deleted.begin(), c.deleted.end());
  }
  for (auto& d : batch.dead) sub.dead.push_back(std::move(d));
  for (int64_t p : batch.undead) sub.undead.push_back(p);
}

void DeliveryEngine::SendBatches() {
  for (StreamId id : batched_) {
    auto it = streams_.find(id);
    if (it == streams_.end() || it->second->batch.received_events_size() == 0) continue;
    it->second->sink->Send(std::move(it->second->batch));
    it->second->batch.Clear();
    it->second->batch_bytes = 0;
  }
  batched_.clear();
}

void DeliveryEngine::Shutdown() {
  {
    absl::MutexLock lock(&inbox_mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
  // A pass in progress finishes; its result is applied below.
  checks_cancelled_.store(true, std::memory_order_release);
  if (checker_ != nullptr) checker_->Stop();
  if (opener_ != nullptr) opener_->Stop();
  absl::MutexLock lock(&pump_mu_);
  // Settle what the clients already said, then end every stream.
  std::vector<Work> work;
  {
    absl::MutexLock inbox_lock(&inbox_mu_);
    work.swap(inbox_);
  }
  const absl::Time now = clock_.Now();
  for (Work& w : work) {
    if (w.kind == Work::kOpen) {
      w.sink->End(Error(absl::StatusCode::kUnavailable, "SHUTTING_DOWN",
                        "the server is shutting down; reconnect"));
      continue;
    }
    Apply(w, now);
  }
  SendBatches();
  std::vector<StreamId> ids;
  for (const auto& [id, stream] : streams_) ids.push_back(id);
  for (StreamId id : ids) {
    auto it = streams_.find(id);
    if (it == streams_.end()) continue;
    std::unique_ptr<Stream> stream = std::move(it->second);
    streams_.erase(it);
    stream->sink->End(Error(absl::StatusCode::kUnavailable, "SHUTTING_DOWN",
                            "the server is shutting down; reconnect"));
    --open_streams_;
  }
  // Deliveries broken off here used up no attempt; their counts are written
  // all the same, so that the next delivery has the next attempt number.
  for (auto& [name, sub] : subs_) {
    for (auto& [key, lane] : sub->lanes) {
      for (const auto& [sequence, d] : lane->outstanding) {
        if (d.replay) continue;
        lane->unsaved[sequence] = AttemptCount{d.attempt, d.free + 1};
        sub->MarkDirty(*lane);
      }
    }
  }
  if (absl::Status flushed = FlushAll(now); !flushed.ok()) {
    log::Error("delivery: acknowledgements not written at shutdown; they will be delivered again",
               {{"error", flushed.ToString()}});
  }
  // Other replicas take the lanes over at once instead of after the TTL.
  for (auto& [name, sub] : subs_) {
    if (sub->member) Leave(*sub);
  }
  shut_down_ = true;
  // The callbacks of Forward's writes refer to the engine.
  absl::MutexLock inbox_lock(&inbox_mu_);
  inbox_mu_.Await(absl::Condition(
      +[](int* n) { return *n == 0; }, &forwards_in_flight_));
  // Input from now on (acks of streams being torn down, commit notices) is
  // dropped instead of piling up.
  drained_ = true;
  inbox_.clear();
}

absl::Status DeliveryEngine::FlushAll(absl::Time now) {
  std::vector<Work> flushed;
  {
    absl::MutexLock inbox_lock(&inbox_mu_);
    inbox_mu_.Await(absl::Condition(
        +[](int* n) { return *n == 0; }, &flushes_in_flight_));
    // Keep other input for the next Pump; take the write outcomes.
    std::vector<Work> rest;
    for (Work& w : inbox_) {
      (w.kind == Work::kFlushed ? flushed : rest).push_back(std::move(w));
    }
    inbox_.swap(rest);
  }
  for (Work& w : flushed) Flushed(*w.flushed);
  absl::Status status;
  for (auto& [name, sub] : subs_) {
    Flush(*sub, now, true);
    if (sub->HasPendingWrites()) {
      status = Error(absl::StatusCode::kUnavailable, "STORE_UNAVAILABLE",
                     "acknowledgements could not be written");
    }
  }
  return status;
}

absl::Status DeliveryEngine::Checkpoint() {
  absl::MutexLock lock(&pump_mu_);
  return FlushAll(clock_.Now());
}

}  // namespace switchyard::delivery
