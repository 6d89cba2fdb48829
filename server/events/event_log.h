#ifndef SWITCHYARD_SERVER_EVENTS_EVENT_LOG_H_
#define SWITCHYARD_SERVER_EVENTS_EVENT_LOG_H_

// Reading the stored events of connections (the polling fallback).

#include "absl/status/statusor.h"
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

  static v1::Event ToProto(const storage::EventRow& row);

 private:
  storage::Store& store_;
};

}  // namespace switchyard::events

#endif  // SWITCHYARD_SERVER_EVENTS_EVENT_LOG_H_
