#ifndef SWITCHYARD_SERVER_HEALTH_MONITOR_H_
#define SWITCHYARD_SERVER_HEALTH_MONITOR_H_

// Health of connected systems: each connection with a health check is probed
// on its interval (with jitter, and backoff while failing), at most one probe
// in flight per connection, and slow systems never hold up others (probes are
// asynchronous). Its state moves with hysteresis (see ConnectionHealth in
// gateway.proto); each change is written with an event
// (switchyard.connection.health_changed) and opens or resolves an incident.

#include <map>
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

namespace switchyard::health {

// The next state of a connection after one probe (pure; exposed for tests).
// Updates state, counters, last_result and, when the state changes,
// state_change_time.
void ApplyProbe(storage::ConnectionHealthRow& row, const ProbeResult& result, absl::Time now);

// When to probe next after `row`'s last probe: the interval, doubled per
// failure beyond the first (at most 8 intervals, at most 5 minutes, never less
// than the interval), each with ±10% jitter drawn from `jitter` in [-1, 1].
absl::Time NextProbe(const storage::ConnectionHealthRow& row, absl::Time now, double jitter);

// Thread-safe. Borrows its dependencies, which must outlive it.
class HealthMonitor {
 public:
  // `min_interval` is the shortest probe interval accepted (5s in
  // production; tests use less).
  // `allow_private`: see CheckOutboundUrl.
  HealthMonitor(storage::Store& store, Clock& clock, HttpProber& prober,
                absl::Duration min_interval = absl::Seconds(5), bool allow_private = false)
      : store_(store),
        clock_(clock),
        prober_(prober),
        min_interval_(min_interval),
        allow_private_(allow_private) {}
  ~HealthMonitor();

  // Reads every check from the store; call before Start or Tick.
  absl::Status Load() ABSL_LOCKS_EXCLUDED(mu_);
  // A thread that calls Tick every `period` of wall time.
  void Start(absl::Duration period) ABSL_LOCKS_EXCLUDED(mu_);
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);

  // Applies finished probes (writing state changes, events and incidents)
  // and starts the probes that are due at clock.Now().
  void Tick() ABSL_LOCKS_EXCLUDED(mu_);

  // The RPCs. NOT_FOUND / CONNECTION_NOT_FOUND outside `scope`;
  // INVALID_ARGUMENT for a bad URL, interval, timeout or status;
  // FAILED_PRECONDITION / CONNECTION_DISCONNECTED.
  absl::StatusOr<v1::ConnectionHealth> Set(const v1::SetConnectionHealthCheckRequest& request,
                                           const Scope& scope) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::ConnectionHealth> Get(absl::string_view name, const Scope& scope);

  // Connections with a check, by state (v1::ConnectionHealth::State).
  std::map<int, int64_t> CountByState() const ABSL_LOCKS_EXCLUDED(mu_);
  // A copy of every check's row.
  std::vector<storage::ConnectionHealthRow> Snapshot() const ABSL_LOCKS_EXCLUDED(mu_);

  static v1::ConnectionHealth ToProto(const storage::ConnectionHealthRow& row);

 private:
  struct Entry {
    storage::ConnectionHealthRow row;
    absl::Time next_due;
    bool in_flight = false;
    uint64_t generation = 0;  // changes with the check's settings
  };
  struct Finished {
    std::string key;
    uint64_t generation;
    ProbeResult result;
  };

  storage::Store& store_;
  Clock& clock_;
  HttpProber& prober_;
  const absl::Duration min_interval_;
  const bool allow_private_;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  std::vector<Finished> finished_ ABSL_GUARDED_BY(mu_);
  uint64_t next_generation_ ABSL_GUARDED_BY(mu_) = 1;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  Ticker ticker_;  // last: stopped before the rest goes
};

}  // namespace switchyard::health

#endif  // SWITCHYARD_SERVER_HEALTH_MONITOR_H_
