#include "server/events/event_log.h"

#include "absl/strings/str_cat.h"
#include "server/common/names.h"
#include "server/common/proto_time.h"
#include "server/common/status.h"

namespace switchyard::events {

v1::Event EventLog::ToProto(const storage::EventRow& row) {
  v1::Event e;
  e.set_name(absl::StrCat("tenants/", row.tenant_id, "/connections/", row.connection_id, "/events/",
                          row.sequence));
  e.set_sequence(row.sequence);
  e.set_event_id(row.event_id);
  e.set_type(row.type);
  e.set_source(static_cast<v1::Event::Source>(row.source));
  if (row.source_time != absl::InfinitePast()) {
    switchyard::ToProto(row.source_time, e.mutable_source_time());
  }
  switchyard::ToProto(row.receive_time, e.mutable_receive_time());
  e.set_content_type(row.content_type);
  e.set_body(row.body);
  return e;
}

absl::StatusOr<v1::ListEventsResponse> EventLog::List(const v1::ListEventsRequest& req,
                                                      const Scope& scope) {
  SY_ASSIGN_OR_RETURN(std::vector<std::string> ids,
                      ParseName("parent", req.parent(), {"tenants", "connections"}));
  SY_ASSIGN_OR_RETURN(int page_size, NormalizePageSize(req.page_size()));
  if (req.after_sequence() < 0) {
    return InvalidArgument("INVALID_SEQUENCE", "after_sequence must not be negative");
  }
  auto missing = [&] {
    return NotFound("CONNECTION_NOT_FOUND", absl::StrCat(req.parent(), " does not exist"));
  };
  if (!scope.AllowsConnection(ids[0], ids[1])) return missing();
  std::vector<storage::EventRow> rows;
  SY_RETURN_IF_ERROR(store_.Read([&](storage::Transaction& tx) -> absl::Status {
    SY_ASSIGN_OR_RETURN(std::optional<storage::TenantRow> tenant, tx.GetTenant(ids[0]));
    SY_ASSIGN_OR_RETURN(std::optional<storage::ConnectionRow> connection,
                        tx.GetConnection(ids[0], ids[1]));
    if (!tenant.has_value() || tenant->deleted || !connection.has_value()) return missing();
    SY_ASSIGN_OR_RETURN(rows, tx.ListEvents(ids[0], ids[1], req.after_sequence(), page_size));
    return absl::OkStatus();
  }));
  v1::ListEventsResponse response;
  response.set_last_sequence(req.after_sequence());
  for (const storage::EventRow& row : rows) {
    *response.add_events() = ToProto(row);
    response.set_last_sequence(row.sequence);
  }
  return response;
}

}  // namespace switchyard::events
