#ifndef SWITCHYARD_SERVER_EVENTS_EVENT_LOG_H_
#define SWITCHYARD_SERVER_EVENTS_EVENT_LOG_H_

// Reading the stored events of connections (the polling fallback).

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/common/scope.h"
#include "server/storage/store.h"
#include "switchyard/v1/gateway.pb.h"

namespace switchyard::events {

// Thread-safe. Borrows `store`, which must outlive it.
class EventLog {
 public:
  explicit EventLog(storage::Store& store) : store_(store) {}

  // Events of one connection after `after_sequence`. NOT_FOUND /
  // CONNECTION_NOT_FOUND for connections outside `scope` or missing.
  absl::StatusOr<v1::ListEventsResponse> List(const v1::ListEventsRequest& request,
                                              const Scope& scope);

  // Publishes events of one connection in one transaction. INVALID_ARGUMENT
  // for a bad batch; NOT_FOUND outside `scope` or for a missing connection;
  // FAILED_PRECONDITION / CONNECTION_DISCONNECTED.
  absl::StatusOr<v1::PublishEventsResponse> Publish(const v1::PublishEventsRequest& request,
                                                    const Scope& scope, absl::Time now);

  struct Appended {
    int64_t sequence = 0;
    bool duplicate = false;
  };
  // Stores `row` (its sequence is assigned: the connection's next) unless an
  // event with its event_id exists, whose sequence is then returned.
  static absl::StatusOr<Appended> AppendInTx(storage::Transaction& tx, storage::EventRow row);

  // The event as clients see it. Events stored without a type (webhooks)
  // take the top-level "type" string of their JSON body, if any, as the
  // Standard Webhooks payload convention has it.
  static v1::Event ToProto(const storage::EventRow& row);
  // That "type" member of a JSON object body, at most 128 characters; "" if
  // absent or not JSON.
  static std::string TypeFromBody(absl::string_view content_type, absl::string_view body);

  // Deletes up to 10,000 events received before `cutoff`, continuing where
  // the previous call stopped (from the oldest event when `restart`), and
  // returns how many. The newest event of each connection stays, so that its
  // sequence numbers continue.
  absl::StatusOr<int64_t> DeleteExpired(absl::Time cutoff, bool restart) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  storage::Store& store_;
  absl::Mutex mu_;
  int64_t sweep_position_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace switchyard::events

#endif  // SWITCHYARD_SERVER_EVENTS_EVENT_LOG_H_
