#include "server/incidents/incidents.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/common/idempotency.h"
#include "server/common/names.h"
#include "server/common/proto_time.h"
#include "server/common/status.h"

namespace switchyard::incidents {
namespace {

constexpr int kMaxNote = 2000;
constexpr int kMaxNotes = 500;

absl::Status Missing(absl::string_view name) {
  return NotFound("INCIDENT_NOT_FOUND", absl::StrCat(name, " does not exist"));
}

absl::StatusOr<int64_t> ParseIncidentName(absl::string_view name) {
  int64_t id = 0;
  if (!absl::StartsWith(name, "incidents/") ||
      !absl::SimpleAtoi(name.substr(strlen("incidents/")), &id) || id <= 0) {
    return InvalidArgument("INVALID_NAME", "an incident name is incidents/{number}");
  }
  return id;
}

// Whether `scope` may see an incident of `component`.
bool Visible(const Scope& scope, absl::string_view component) {
  if (scope.tenant_id.empty()) return true;
  return absl::StartsWith(component, absl::StrCat("tenants/", scope.tenant_id, "/"));
}

absl::Status AddNote(storage::IncidentRow& row, absl::string_view author, absl::string_view text,
                     absl::Time now) {
  v1::Incident notes;
  if (!row.notes.empty() && !notes.ParseFromString(row.notes)) {
    return Error(absl::StatusCode::kDataLoss, "INCIDENT_CORRUPT", "incident notes unreadable");
  }
  if (notes.notes_size() >= kMaxNotes) {
    // Keep the first note (how it started) and the newest ones.
    notes.mutable_notes()->DeleteSubrange(1, notes.notes_size() - kMaxNotes + 1);
  }
  v1::Incident::Note* note = notes.add_notes();
  ToProto(now, note->mutable_time());
  note->set_author(std::string(author));
  note->set_text(std::string(text));
  notes.SerializeToString(&row.notes);
  return absl::OkStatus();
}

absl::Status ValidateText(absl::string_view field, absl::string_view text, bool required) {
  if ((required && text.empty()) || text.size() > kMaxNote) {
    return InvalidArgument("INVALID_TEXT", absl::StrCat(field, " must be ", required ? "1" : "0",
                                                        " to ", kMaxNote, " characters"));
  }
  return absl::OkStatus();
}

}  // namespace

v1::Incident IncidentLog::ToProto(const storage::IncidentRow& row) {
  v1::Incident incident;
  if (!row.notes.empty()) incident.ParseFromString(row.notes);
  incident.set_name(absl::StrCat("incidents/", row.id));
  incident.set_title(row.title);
  incident.set_component(row.component);
  incident.set_severity(static_cast<v1::Incident::Severity>(row.severity));
  incident.set_state(static_cast<v1::Incident::State>(row.state));
  switchyard::ToProto(row.start_time, incident.mutable_start_time());
  if (row.end_time != absl::InfinitePast()) {
    switchyard::ToProto(row.end_time, incident.mutable_end_time());
  }
  incident.set_automatic(row.automatic);
  return incident;
}

absl::Status IncidentLog::OpenInTx(storage::Transaction& tx, absl::string_view component,
                                   absl::string_view title, v1::Incident::Severity severity,
                                   absl::string_view note, absl::Time now) {
  SY_ASSIGN_OR_RETURN(std::optional<storage::IncidentRow> open, tx.FindOpenIncident(component));
  if (open.has_value()) return absl::OkStatus();
  storage::IncidentRow row;
  row.title = std::string(title);
  row.component = std::string(component);
  row.severity = severity;
  row.state = v1::Incident::OPEN;
  row.start_time = now;
  row.automatic = true;
  SY_RETURN_IF_ERROR(AddNote(row, "gateway", note, now));
  return tx.InsertIncident(row).status();
}

absl::Status IncidentLog::ResolveInTx(storage::Transaction& tx, absl::string_view component,
                                      absl::string_view note, absl::Time now) {
  SY_ASSIGN_OR_RETURN(std::optional<storage::IncidentRow> open, tx.FindOpenIncident(component));
  if (!open.has_value()) return absl::OkStatus();
  open->state = v1::Incident::RESOLVED;
  open->end_time = now;
  SY_RETURN_IF_ERROR(AddNote(*open, "gateway", note, now));
  return tx.UpdateIncident(*open);
}

absl::Status IncidentLog::Open(absl::string_view component, absl::string_view title,
                               v1::Incident::Severity severity, absl::string_view note) {
  const absl::Time now = clock_.Now();
  return store_.Write([&](storage::Transaction& tx) {
    return OpenInTx(tx, component, title, severity, note, now);
  });
}

absl::Status IncidentLog::Resolve(absl::string_view component, absl::string_view note) {
  const absl::Time now = clock_.Now();
  return store_.Write(
      [&](storage::Transaction& tx) { return ResolveInTx(tx, component, note, now); });
}

absl::StatusOr<v1::Incident> IncidentLog::Create(const v1::CreateIncidentRequest& req,
                                                 absl::string_view author) {
  const v1::Incident& in = req.incident();
  if (in.title().empty() || in.title().size() > 200) {
    return InvalidArgument("INVALID_TITLE", "title must be 1 to 200 characters");
  }
  if (in.component().size() > 200) {
    return InvalidArgument("INVALID_COMPONENT", "component is limited to 200 characters");
  }
  if (!v1::Incident::Severity_IsValid(in.severity())) {
    return InvalidArgument("INVALID_SEVERITY", "severity must be MINOR, MAJOR or CRITICAL");
  }
  SY_RETURN_IF_ERROR(ValidateRequestId(req.request_id()));
  IdempotencyKey key =
      MakeIdempotencyKey("CreateIncident", "", req.request_id(),
                         Fingerprint({in.title(), in.component(), absl::StrCat(in.severity())}));
  const absl::Time now = clock_.Now();
  v1::Incident result;
  SY_RETURN_IF_ERROR(store_.Write([&](storage::Transaction& tx) -> absl::Status {
    SY_ASSIGN_OR_RETURN(std::optional<v1::Incident> previous,
                        FindIdempotentResponse<v1::Incident>(tx, key));
    if (previous.has_value()) {
      result = *std::move(previous);
      return absl::OkStatus();
    }
    storage::IncidentRow row;
    row.title = in.title();
    row.component = in.component().empty() ? "gateway" : in.component();
    row.severity =
        in.severity() == v1::Incident::SEVERITY_UNSPECIFIED ? v1::Incident::MAJOR : in.severity();
    row.state = v1::Incident::OPEN;
    row.start_time = now;
    SY_RETURN_IF_ERROR(AddNote(row, author, "opened", now));
    SY_ASSIGN_OR_RETURN(row.id, tx.InsertIncident(row));
    result = ToProto(row);
    return RecordIdempotentResponse(tx, key, result, now);
  }));
  return result;
}

absl::StatusOr<v1::Incident> IncidentLog::Get(absl::string_view name, const Scope& scope) {
  SY_ASSIGN_OR_RETURN(int64_t id, ParseIncidentName(name));
  std::optional<storage::IncidentRow> row;
  SY_RETURN_IF_ERROR(store_.Read([&](storage::Transaction& tx) -> absl::Status {
    SY_ASSIGN_OR_RETURN(row, tx.GetIncident(id));
    return absl::OkStatus();
  }));
  if (!row.has_value() || !Visible(scope, row->component)) return Missing(name);
  return ToProto(*row);
}

absl::StatusOr<v1::ListIncidentsResponse> IncidentLog::List(const v1::ListIncidentsRequest& req,
                                                            const Scope& scope) {
  SY_ASSIGN_OR_RETURN(int page_size, NormalizePageSize(req.page_size()));
  const std::string token_scope = absl::StrCat("incidents:", req.state(), ":", scope.tenant_id);
  SY_ASSIGN_OR_RETURN(std::string after, DecodePageToken(req.page_token(), token_scope));
  int64_t before = 0;
  if (!after.empty() && !absl::SimpleAtoi(after, &before)) {
    return InvalidArgument("INVALID_PAGE_TOKEN", "page_token is malformed");
  }
  v1::ListIncidentsResponse response;
  SY_RETURN_IF_ERROR(store_.Read([&](storage::Transaction& tx) -> absl::Status {
    response.Clear();
    int64_t cursor = before;
    // Tenant scopes skip other tenants' incidents; read on until the page is
    // full or the history ends.
    while (response.incidents_size() < page_size) {
      SY_ASSIGN_OR_RETURN(std::vector<storage::IncidentRow> rows,
                          tx.ListIncidents(req.state(), cursor, 500));
      for (const auto& row : rows) {
        cursor = row.id;
        if (!Visible(scope, row.component)) continue;
        *response.add_incidents() = ToProto(row);
        if (response.incidents_size() == page_size) break;
      }
      if (rows.size() < 500) {
        if (response.incidents_size() < page_size) cursor = 0;
        break;
      }
    }
    if (response.incidents_size() == page_size && cursor > 1) {
      response.set_next_page_token(EncodePageToken(token_scope, absl::StrCat(cursor)));
    }
    return absl::OkStatus();
  }));
  return response;
}

absl::StatusOr<v1::Incident> IncidentLog::Annotate(const v1::AnnotateIncidentRequest& req,
                                                   absl::string_view author) {
  SY_ASSIGN_OR_RETURN(int64_t id, ParseIncidentName(req.name()));
  SY_RETURN_IF_ERROR(ValidateText("text", req.text(), true));
  const absl::Time now = clock_.Now();
  v1::Incident result;
  SY_RETURN_IF_ERROR(store_.Write([&](storage::Transaction& tx) -> absl::Status {
    SY_ASSIGN_OR_RETURN(std::optional<storage::IncidentRow> row, tx.GetIncident(id));
    if (!row.has_value()) return Missing(req.name());
    SY_RETURN_IF_ERROR(AddNote(*row, author, req.text(), now));
    SY_RETURN_IF_ERROR(tx.UpdateIncident(*row));
    result = ToProto(*row);
    return absl::OkStatus();
  }));
  return result;
}

absl::StatusOr<v1::Incident> IncidentLog::Resolve(const v1::ResolveIncidentRequest& req,
                                                  absl::string_view author) {
  SY_ASSIGN_OR_RETURN(int64_t id, ParseIncidentName(req.name()));
  SY_RETURN_IF_ERROR(ValidateText("text", req.text(), false));
  const absl::Time now = clock_.Now();
  v1::Incident result;
  SY_RETURN_IF_ERROR(store_.Write([&](storage::Transaction& tx) -> absl::Status {
    SY_ASSIGN_OR_RETURN(std::optional<storage::IncidentRow> row, tx.GetIncident(id));
    if (!row.has_value()) return Missing(req.name());
    if (row->state == v1::Incident::RESOLVED) {
      return FailedPrecondition("INCIDENT_RESOLVED", absl::StrCat(req.name(), " is resolved"));
    }
    row->state = v1::Incident::RESOLVED;
    row->end_time = now;
    SY_RETURN_IF_ERROR(AddNote(*row, author, req.text().empty() ? "resolved" : req.text(), now));
    SY_RETURN_IF_ERROR(tx.UpdateIncident(*row));
    result = ToProto(*row);
    return absl::OkStatus();
  }));
  return result;
}

}  // namespace switchyard::incidents
