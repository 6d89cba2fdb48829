#include "server/events/event_log.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/common/names.h"
#include "server/common/proto_time.h"
#include "server/common/status.h"

namespace switchyard::events {

std::string EventLog::TypeFromBody(absl::string_view content_type, absl::string_view body) {
  if (!absl::StrContains(content_type, "json") || body.empty() || body.front() != '{') return "";
  google::protobuf::Struct object;
  if (!google::protobuf::util::JsonStringToMessage(std::string(body), &object).ok()) return "";
  auto it = object.fields().find("type");
  if (it == object.fields().end() || !it->second.has_string_value()) return "";
  return it->second.string_value().substr(0, 128);
}

v1::Event EventLog::ToProto(const storage::EventRow& row) {
  v1::Event e;
  e.set_name(absl::StrCat("tenants/", row.tenant_id, "/connections/", row.connection_id, "/events/",
                          row.sequence));
  e.set_sequence(row.sequence);
  e.set_event_id(row.event_id);
  e.set_type(row.type.empty() ? TypeFromBody(row.content_type, row.body) : row.type);
  e.set_source(static_cast<v1::Event::Source>(row.source));
  if (row.source_time != absl::InfinitePast()) {
    switchyard::ToProto(row.source_time, e.mutable_source_time());
  }
  switchyard::ToProto(row.receive_time, e.mutable_receive_time());
  e.set_content_type(row.content_type);
  e.set_body(row.body);
  return e;
}

absl::StatusOr<EventLog::Appended> EventLog::AppendInTx(storage::Transaction& tx,
                                                        storage::EventRow row) {
  SY_ASSIGN_OR_RETURN(std::optional<storage::EventRow> existing,
                      tx.GetEventById(row.tenant_id, row.connection_id, row.event_id));
  if (existing.has_value()) return Appended{existing->sequence, true};
  SY_ASSIGN_OR_RETURN(int64_t last, tx.LastEventSequence(row.tenant_id, row.connection_id));
  row.sequence = last + 1;
  SY_RETURN_IF_ERROR(tx.InsertEvent(row));
  return Appended{row.sequence, false};
}

absl::StatusOr<v1::PublishEventsResponse> EventLog::Publish(const v1::PublishEventsRequest& req,
                                                            const Scope& scope, absl::Time now) {
  SY_ASSIGN_OR_RETURN(std::vector<std::string> ids,
                      ParseName("parent", req.parent(), {"tenants", "connections"}));
  if (req.events_size() < 1 || req.events_size() > 500) {
    return InvalidArgument("INVALID_BATCH", "publish 1 to 500 events at a time");
  }
  for (const v1::PublishedEvent& e : req.events()) {
    bool printable = !e.event_id().empty() && e.event_id().size() <= 256;
    for (char c : e.event_id()) printable = printable && c > 0x20 && c < 0x7f;
    if (!printable) {
      return InvalidArgument("INVALID_EVENT_ID",
                             "event_id must be 1 to 256 printable ASCII characters");
    }
    if (e.type().size() > 128) {
      return InvalidArgument("INVALID_EVENT_TYPE", "type must be at most 128 characters");
    }
    if (e.body().size() > (1 << 20)) {
      return Error(absl::StatusCode::kOutOfRange, "BODY_TOO_LARGE",
                   "event bodies are limited to 1 MiB");
    }
  }
  auto missing = [&] {
    return NotFound("CONNECTION_NOT_FOUND", absl::StrCat(req.parent(), " does not exist"));
  };
  if (!scope.AllowsConnection(ids[0], ids[1])) return missing();
  v1::PublishEventsResponse response;
  SY_RETURN_IF_ERROR(store_.Write([&](storage::Transaction& tx) -> absl::Status {
    response.Clear();
    SY_ASSIGN_OR_RETURN(std::optional<storage::TenantRow> tenant, tx.GetTenant(ids[0]));
    SY_ASSIGN_OR_RETURN(std::optional<int> state, tx.GetConnectionState(ids[0], ids[1]));
    if (!tenant.has_value() || tenant->deleted || !state.has_value()) return missing();
    if (*state == v1::Connection::DISCONNECTED) {
      return FailedPrecondition("CONNECTION_DISCONNECTED", "the connection is disconnected");
    }
    for (const v1::PublishedEvent& e : req.events()) {
      storage::EventRow row;
      row.tenant_id = ids[0];
      row.connection_id = ids[1];
      row.event_id = e.event_id();
      row.type = e.type();
      row.source = v1::Event::API;
      row.source_time = e.has_source_time() ? FromProto(e.source_time()) : now;
      row.receive_time = now;
      row.content_type = e.content_type().empty() ? "application/json" : e.content_type();
      row.body = e.body();
      SY_ASSIGN_OR_RETURN(Appended appended, AppendInTx(tx, std::move(row)));
      auto* result = response.add_results();
      result->set_sequence(appended.sequence);
      result->set_duplicate(appended.duplicate);
    }
    return absl::OkStatus();
  }));
  return response;
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
    rows.clear();
    SY_ASSIGN_OR_RETURN(std::optional<storage::TenantRow> tenant, tx.GetTenant(ids[0]));
    SY_ASSIGN_OR_RETURN(std::optional<storage::ConnectionRow> connection,
                        tx.GetConnection(ids[0], ids[1]));
    if (!tenant.has_value() || tenant->deleted || !connection.has_value()) return missing();
    // Read in small chunks until the page is full or holds
    // kMaxMessageEventBytes: a page of large events stays one message a
    // client can receive, and memory stays bounded.
    constexpr int kChunk = 32;
    int64_t after = req.after_sequence();
    size_t bytes = 0;
    while (static_cast<int>(rows.size()) < page_size && bytes < kMaxMessageEventBytes) {
      const int want = std::min(kChunk, page_size - static_cast<int>(rows.size()));
      SY_ASSIGN_OR_RETURN(std::vector<storage::EventRow> chunk,
                          tx.ListEvents(ids[0], ids[1], after, want));
      for (storage::EventRow& row : chunk) {
        const size_t size = row.body.size() + row.event_id.size() + row.type.size() +
                            row.content_type.size() + row.tenant_id.size() +
                            row.connection_id.size() + 192;
        if (!rows.empty() && bytes + size > kMaxMessageEventBytes) {
          bytes = kMaxMessageEventBytes;  // full
          break;
        }
        bytes += size;
        after = row.sequence;
        rows.push_back(std::move(row));
      }
      if (static_cast<int>(chunk.size()) < want) break;
    }
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

absl::StatusOr<int64_t> EventLog::DeleteExpired(absl::Time cutoff, bool restart) {
  absl::MutexLock lock(&mu_);
  if (restart) sweep_position_ = 0;
  int64_t deleted = 0;
  for (int batch = 0; batch < 10; ++batch) {
    storage::EventSweep sweep;
    SY_RETURN_IF_ERROR(store_.Write([&](storage::Transaction& tx) -> absl::Status {
      SY_ASSIGN_OR_RETURN(sweep, tx.SweepEvents(cutoff, sweep_position_, 1000));
      return absl::OkStatus();
    }));
    sweep_position_ = sweep.next_position;
    deleted += sweep.deleted;
    if (sweep.done) break;
  }
  return deleted;
}

}  // namespace switchyard::events
