#ifndef SWITCHYARD_SERVER_INCIDENTS_INCIDENTS_H_
#define SWITCHYARD_SERVER_INCIDENTS_INCIDENTS_H_

// Incidents: opened and resolved by the gateway for connections and its own
// components, or by operators by hand; kept as history.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/common/clock.h"
#include "server/common/scope.h"
#include "server/storage/store.h"
#include "switchyard/v1/gateway.pb.h"

namespace switchyard::incidents {

// Thread-safe. Borrows `store` and `clock`, which must outlive it.
class IncidentLog {
 public:
  IncidentLog(storage::Store& store, Clock& clock) : store_(store), clock_(clock) {}

  // Opens an automatic incident for `component` unless one is open.
  static absl::Status OpenInTx(storage::Transaction& tx, absl::string_view component,
                               absl::string_view title, v1::Incident::Severity severity,
                               absl::string_view note, absl::Time now);
  // Resolves the open incident of `component`, if any, with `note`.
  static absl::Status ResolveInTx(storage::Transaction& tx, absl::string_view component,
                                  absl::string_view note, absl::Time now);
  // The same, each in its own transaction.
  absl::Status Open(absl::string_view component, absl::string_view title,
                    v1::Incident::Severity severity, absl::string_view note);
  absl::Status Resolve(absl::string_view component, absl::string_view note);

  // The RPCs. Operators see every incident; a tenant scope sees the incidents
  // of its connections (others are NOT_FOUND / INCIDENT_NOT_FOUND). `author`
  // names the caller in notes. INVALID_ARGUMENT for bad titles, notes or
  // severities; FAILED_PRECONDITION / INCIDENT_RESOLVED to change a resolved
  // one.
  absl::StatusOr<v1::Incident> Create(const v1::CreateIncidentRequest& request,
                                      absl::string_view author);
  absl::StatusOr<v1::Incident> Get(absl::string_view name, const Scope& scope);
  absl::StatusOr<v1::ListIncidentsResponse> List(const v1::ListIncidentsRequest& request,
                                                 const Scope& scope);
  absl::StatusOr<v1::Incident> Annotate(const v1::AnnotateIncidentRequest& request,
                                        absl::string_view author);
  absl::StatusOr<v1::Incident> Resolve(const v1::ResolveIncidentRequest& request,
                                       absl::string_view author);

  static v1::Incident ToProto(const storage::IncidentRow& row);

 private:
  storage::Store& store_;
  Clock& clock_;
};

}  // namespace switchyard::incidents

#endif  // SWITCHYARD_SERVER_INCIDENTS_INCIDENTS_H_
