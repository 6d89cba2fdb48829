#include "server/connections/connections.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/common/idempotency.h"
#include "server/common/names.h"
#include "server/common/proto_time.h"
#include "server/common/status.h"
#include "server/crypto/secret.h"
#include "server/events/event_log.h"

namespace switchyard::connections {
namespace {
using storage::ConnectionRow;
using storage::ReservationRow;
using storage::TenantRow;
using storage::Transaction;
using v1::Connection;
using v1::CreditReservation;

constexpr size_t kMaxMetadataEntries = 64;
constexpr size_t kMaxMetadataValue = 1024;

std::string ConnectionName(absl::string_view tenant_id, absl::string_view id) {
  return absl::StrCat("tenants/", tenant_id, "/connections/", id);
}

absl::Status ConnectionNotFound(absl::string_view name) {
  return NotFound("CONNECTION_NOT_FOUND", absl::StrCat(name, " does not exist"));
}

absl::Status ValidateFields(const Connection& c) {
  if (c.display_name().size() > 200) {
    return InvalidArgument("INVALID_DISPLAY_NAME", "display_name must be at most 200 bytes");
  }
  if (static_cast<size_t>(c.metadata_size()) > kMaxMetadataEntries) {
    return InvalidArgument("INVALID_METADATA", absl::StrCat("metadata holds at most ",
                                                            kMaxMetadataEntries, " entries"));
  }
  for (const auto& [key, value] : c.metadata()) {
    bool ok = !key.empty() && key.size() <= 63;
    for (char ch : key) {
      ok = ok && ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '.');
    }
    if (!ok) {
      return InvalidArgument(
          "INVALID_METADATA",
          "metadata keys must be 1-63 characters of A-Z, a-z, 0-9, '_', '-', '.'");
    }
    if (value.size() > kMaxMetadataValue) {
      return InvalidArgument(
          "INVALID_METADATA",
          absl::StrCat("metadata value of \"", key, "\" exceeds ", kMaxMetadataValue, " bytes"));
    }
  }
  return absl::OkStatus();
}

bool TransitionAllowed(Connection::State from, Connection::State to) {
  switch (from) {
    case Connection::PENDING:
      return to == Connection::ACTIVE || to == Connection::INACTIVE || to == Connection::ERROR;
    case Connection::ACTIVE:
      return to == Connection::INACTIVE || to == Connection::ERROR;
    case Connection::INACTIVE:
      return to == Connection::ACTIVE;
    case Connection::ERROR:
      return to == Connection::ACTIVE || to == Connection::INACTIVE;
    default:
      return false;
  }
}

// Parses `tenants/{t}/connections/{c}`.
absl::StatusOr<std::vector<std::string>> ParseConnectionName(absl::string_view name) {
  return ParseName("name", name, {"tenants", "connections"});
}

struct Located {
  TenantRow tenant;
  ConnectionRow connection;
};

// Who may reach a connection: a connection token its own (for reading), or
// only callers that see the whole tenant (for changes).
enum Reach { kOwnConnection, kWholeTenant };

// The connection `ids` (tenant, connection) named `name`, if `scope` reaches
// it; NOT_FOUND / CONNECTION_NOT_FOUND otherwise, whatever the reason.
absl::StatusOr<Located> LocateConnection(Transaction& tx, const std::vector<std::string>& ids,
                                         absl::string_view name, const Scope& scope, Reach reach) {
  const bool visible = reach == kWholeTenant ? scope.AllowsWholeTenant(ids[0])
                                             : scope.AllowsConnection(ids[0], ids[1]);
  if (!visible) return ConnectionNotFound(name);
  absl::StatusOr<TenantRow> tenant = credits::LoadTenant(tx, ids[0], Scope::All());
  if (absl::IsNotFound(tenant.status())) return ConnectionNotFound(name);
  SY_RETURN_IF_ERROR(tenant.status());
  SY_ASSIGN_OR_RETURN(std::optional<ConnectionRow> row, tx.GetConnection(ids[0], ids[1]));
  if (!row.has_value()) return ConnectionNotFound(name);
  return Located{*std::move(tenant), *std::move(row)};
}

// Appends one of the gateway's own events (source GATEWAY) to the stream of
// `connection`, in the transaction that caused it.
absl::Status EmitInTx(Transaction& tx, const ConnectionRow& connection, absl::string_view type,
                      absl::Time now) {
  storage::EventRow row;
  row.tenant_id = connection.tenant_id;
  row.connection_id = connection.id;
  row.event_id = GenerateId("gw");
  row.type = std::string(type);
  row.source = v1::Event::GATEWAY;
  row.source_time = now;
  row.receive_time = now;
  row.content_type = "application/json";
  row.body = absl::StrCat(
      "{\"connection\":\"", ConnectionName(connection.tenant_id, connection.id), "\",\"state\":\"",
      Connection::State_Name(static_cast<Connection::State>(connection.state)), "\"}");
  return events::EventLog::AppendInTx(tx, std::move(row)).status();
}

// Records switchyard.credits.low on `connection` when taking `cost` credits
// for it brought its pool's available credits, or its tenant's room under
// its credit limit, from above to at or below kLowCreditFraction.
absl::Status EmitCreditsLowInTx(Transaction& tx, const ConnectionRow& connection,
                                const storage::TenantRow& tenant, int64_t cost, absl::Time now) {
  constexpr double kLowCreditFraction = 0.1;
  auto crossed = [&](int64_t total, int64_t left) {
    const double mark = kLowCreditFraction * static_cast<double>(total);
    return static_cast<double>(left) <= mark && static_cast<double>(left + cost) > mark;
  };
  std::vector<std::string> bodies;
  const std::string name = ConnectionName(connection.tenant_id, connection.id);
  SY_ASSIGN_OR_RETURN(std::optional<storage::PoolRow> pool, tx.GetPool(tenant.pool_id));
  if (pool.has_value()) {
    const int64_t available = pool->capacity - pool->reserved - pool->consumed;
    if (crossed(pool->capacity, available)) {
      bodies.push_back(absl::StrCat(
          "{\"connection\":\"", name, "\",\"scope\":\"pool\",\"credit_pool\":\"creditPools/",
          pool->id, "\",\"capacity\":", pool->capacity, ",\"available\":", available, "}"));
    }
  }
  if (tenant.credit_limit > 0) {
    const int64_t room = tenant.credit_limit - tenant.reserved - tenant.consumed;
    if (crossed(tenant.credit_limit, room)) {
      bodies.push_back(absl::StrCat(
          "{\"connection\":\"", name, "\",\"scope\":\"tenant\",\"tenant\":\"tenants/", tenant.id,
          "\",\"credit_limit\":", tenant.credit_limit, ",\"remaining\":", room, "}"));
    }
  }
  for (std::string& body : bodies) {
    storage::EventRow row;
    row.tenant_id = connection.tenant_id;
    row.connection_id = connection.id;
    row.event_id = GenerateId("gw");
    row.type = "switchyard.credits.low";
    row.source = v1::Event::GATEWAY;
    row.source_time = now;
    row.receive_time = now;
    row.content_type = "application/json";
    row.body = std::move(body);
    SY_RETURN_IF_ERROR(events::EventLog::AppendInTx(tx, std::move(row)).status());
  }
  return absl::OkStatus();
}

// Sorted, length-prefixed view of metadata for fingerprints.
std::string MetadataFingerprint(const Connection& c) {
  std::vector<std::pair<std::string, std::string>> entries(c.metadata().begin(),
                                                           c.metadata().end());
  std::sort(entries.begin(), entries.end());
  std::string out;
  for (const auto& [k, v] : entries) absl::StrAppend(&out, k.size(), ":", k, v.size(), ":", v);
  return out;
}
}  // namespace

Connection ConnectionManager::ToProto(const ConnectionRow& row) {
  Connection c;
  c.set_name(ConnectionName(row.tenant_id, row.id));
  c.set_system(absl::StrCat("systems/", row.system_id));
  c.set_deployment(static_cast<v1::Deployment>(row.deployment));
  c.set_display_name(row.display_name);
  c.mutable_metadata()->insert(row.metadata.begin(), row.metadata.end());
  c.set_state(static_cast<Connection::State>(row.state));
  c.set_credits(row.credits);
  c.set_credit_pool(absl::StrCat("creditPools/", row.pool_id));
  if (!row.reservation_id.empty()) {
    c.set_credit_reservation(
        absl::StrCat("tenants/", row.tenant_id, "/creditReservations/", row.reservation_id));
  }
  switchyard::ToProto(row.create_time, c.mutable_create_time());
  switchyard::ToProto(row.update_time, c.mutable_update_time());
  if (row.disconnect_time != absl::InfinitePast()) {
    switchyard::ToProto(row.disconnect_time, c.mutable_disconnect_time());
  }
  return c;
}

absl::StatusOr<Connection> ConnectionManager::Create(const v1::CreateConnectionRequest& req,
                                                     const Scope& scope) {
  SY_ASSIGN_OR_RETURN(std::vector<std::string> parent,
                      ParseName("parent", req.parent(), {"tenants"}));
  const std::string& tenant_id = parent[0];
  SY_RETURN_IF_ERROR(ValidateId("connection_id", req.connection_id()));
  SY_RETURN_IF_ERROR(ValidateRequestId(req.request_id()));
  const Connection& spec = req.connection();
  SY_RETURN_IF_ERROR(ValidateFields(spec));
  SY_ASSIGN_OR_RETURN(std::vector<std::string> system_ids,
                      ParseName("connection.system", spec.system(), {"systems"}));
  const v1::System* system = catalog_.Find(system_ids[0]);
  if (system == nullptr) {
    return NotFound("SYSTEM_NOT_FOUND", absl::StrCat(spec.system(), " is not in the catalog"));
  }
  SY_ASSIGN_OR_RETURN(int64_t cost, catalog_.Cost(*system, spec.deployment()));
  std::string reservation_id;
  if (!req.credit_reservation().empty()) {
    SY_ASSIGN_OR_RETURN(std::vector<std::string> r,
                        ParseName("credit_reservation", req.credit_reservation(),
                                  {"tenants", "creditReservations"}));
    if (r[0] != tenant_id) {
      return InvalidArgument("RESERVATION_OF_OTHER_TENANT",
                             "credit_reservation must belong to the parent tenant");
    }
    reservation_id = r[1];
  }
  const std::string name = ConnectionName(tenant_id, req.connection_id());
  IdempotencyKey key = MakeIdempotencyKey(
      "CreateConnection", req.parent(), req.request_id(),
      Fingerprint({req.connection_id(), spec.system(), absl::StrCat(spec.deployment()),
                   spec.display_name(), MetadataFingerprint(spec), req.credit_reservation()}));

  const absl::Time now = clock_.Now();
  Connection result;
  std::string token;
  absl::Status outcome;
  SY_RETURN_IF_ERROR(store_.Write([&](Transaction& tx) -> absl::Status {
    // The store may run this more than once (a lost conflict): nothing of a
    // run that did not commit may show.
    result.Clear();
    token.clear();
    outcome = absl::OkStatus();
    SY_ASSIGN_OR_RETURN(TenantRow tenant, credits::LoadTenant(tx, tenant_id, scope));
    SY_ASSIGN_OR_RETURN(std::optional<Connection> previous,
                        FindIdempotentResponse<Connection>(tx, key));
    if (previous.has_value()) {
      result = *std::move(previous);
      return absl::OkStatus();
    }
    SY_ASSIGN_OR_RETURN(std::optional<ConnectionRow> existing,
                        tx.GetConnection(tenant_id, req.connection_id()));
    if (existing.has_value()) {
      return Error(absl::StatusCode::kAlreadyExists, "CONNECTION_EXISTS",
                   absl::StrCat(name, " already exists"));
    }
    const credits::Cause cause{req.request_id(), req.connection_id()};
    ReservationRow reservation;
    if (reservation_id.empty()) {
      SY_ASSIGN_OR_RETURN(reservation, ledger_.ReserveInTx(tx, tenant, GenerateId("c"), cost,
                                                           absl::Minutes(1), now, cause));
      SY_RETURN_IF_ERROR(ledger_.CommitInTx(tx, tenant, reservation, now, cause));
    } else {
      SY_ASSIGN_OR_RETURN(std::optional<ReservationRow> found,
                          tx.GetReservation(tenant_id, reservation_id));
      if (!found.has_value()) {
        return NotFound("RESERVATION_NOT_FOUND",
                        absl::StrCat(req.credit_reservation(), " does not exist"));
      }
      reservation = *std::move(found);
      if (reservation.amount != cost) {
        return WithMetadata(
            FailedPrecondition("RESERVATION_AMOUNT_MISMATCH",
                               absl::StrCat(req.credit_reservation(), " holds ", reservation.amount,
                                            " credits; this connection costs ", cost)),
            "cost", absl::StrCat(cost));
      }
      if (reservation.state == CreditReservation::PENDING && reservation.expire_time <= now) {
        // Expire durably, then fail the create.
        SY_RETURN_IF_ERROR(ledger_.ReleaseInTx(tx, tenant, reservation, CreditReservation::EXPIRED,
                                               now, credits::Cause{}));
        outcome = FailedPrecondition("RESERVATION_EXPIRED",
                                     absl::StrCat(req.credit_reservation(), " has expired"));
        return absl::OkStatus();
      }
      if (reservation.state == CreditReservation::PENDING) {
        SY_RETURN_IF_ERROR(ledger_.CommitInTx(tx, tenant, reservation, now, cause));
      } else if (reservation.state == CreditReservation::COMMITTED &&
                 reservation.connection_id.empty()) {
        reservation.connection_id = req.connection_id();
        SY_RETURN_IF_ERROR(tx.UpdateReservation(reservation));
      } else if (reservation.state == CreditReservation::COMMITTED) {
        return FailedPrecondition(
            "RESERVATION_ALREADY_USED",
            absl::StrCat(req.credit_reservation(), " already pays for ",
                         ConnectionName(tenant_id, reservation.connection_id)));
      } else {
        return FailedPrecondition(reservation.state == CreditReservation::RELEASED
                                      ? "RESERVATION_RELEASED"
                                      : "RESERVATION_EXPIRED",
                                  absl::StrCat(req.credit_reservation(), " is no longer pending"));
      }
    }
    ConnectionRow row;
    row.tenant_id = tenant_id;
    row.id = req.connection_id();
    row.system_id = system_ids[0];
    row.deployment = spec.deployment();
    row.display_name = spec.display_name();
    row.metadata.insert(spec.metadata().begin(), spec.metadata().end());
    row.state = Connection::PENDING;
    row.credits = cost;
    row.pool_id = tenant.pool_id;
    row.reservation_id = reservation.id;
    row.create_time = now;
    row.update_time = now;
    SY_RETURN_IF_ERROR(tx.InsertConnection(row));
    SY_RETURN_IF_ERROR(EmitInTx(tx, row, "switchyard.connection.created", now));
    if (reservation_id.empty()) {
      // The credits were taken just now: tell if that crossed a low mark.
      SY_RETURN_IF_ERROR(EmitCreditsLowInTx(tx, row, tenant, cost, now));
    }
    tenant.connection_count += 1;
    SY_RETURN_IF_ERROR(tx.UpdateTenant(tenant));
    SY_ASSIGN_OR_RETURN(token, keys_.IssueConnectionTokenInTx(tx, tenant_id, row.id, now));
    result = ToProto(row);
    // The recorded response leaves the token out: only its hash is stored.
    return RecordIdempotentResponse(tx, key, result, now);
  }));
  SY_RETURN_IF_ERROR(outcome);
  result.set_api_token(token);
  crypto::Wipe(token);
  return result;
}

absl::StatusOr<Connection> ConnectionManager::Get(absl::string_view name, const Scope& scope) {
  SY_ASSIGN_OR_RETURN(std::vector<std::string> ids, ParseConnectionName(name));
  ConnectionRow result;
  SY_RETURN_IF_ERROR(store_.Read([&](Transaction& tx) -> absl::Status {
    SY_ASSIGN_OR_RETURN(Located found, LocateConnection(tx, ids, name, scope, kOwnConnection));
    result = std::move(found.connection);
    return absl::OkStatus();
  }));
  return ToProto(result);
}

absl::StatusOr<v1::ListConnectionsResponse> ConnectionManager::List(
    const v1::ListConnectionsRequest& req, const Scope& scope) {
  SY_ASSIGN_OR_RETURN(std::vector<std::string> parent,
                      ParseName("parent", req.parent(), {"tenants"}));
  SY_ASSIGN_OR_RETURN(int page_size, NormalizePageSize(req.page_size()));
  storage::ConnectionFilter filter;
  if (!req.system().empty()) {
    SY_ASSIGN_OR_RETURN(std::vector<std::string> s, ParseName("system", req.system(), {"systems"}));
    filter.system_id = s[0];
  }
  if (!Connection::State_IsValid(req.state())) {
    return InvalidArgument("INVALID_STATE", "state filter is not a known connection state");
  }
  filter.state = req.state();
  const std::string query =
      absl::StrCat("ListConnections|", req.parent(), "|", req.system(), "|", req.state());
  SY_ASSIGN_OR_RETURN(std::string after, DecodePageToken(req.page_token(), query));
  std::vector<ConnectionRow> rows;
  SY_RETURN_IF_ERROR(store_.Read([&](Transaction& tx) -> absl::Status {
    SY_RETURN_IF_ERROR(credits::LoadTenant(tx, parent[0], scope).status());
    SY_ASSIGN_OR_RETURN(rows, tx.ListConnections(parent[0], filter, after, page_size + 1));
    return absl::OkStatus();
  }));
  v1::ListConnectionsResponse response;
  for (size_t i = 0; i < rows.size() && i < static_cast<size_t>(page_size); ++i) {
    *response.add_connections() = ToProto(rows[i]);
  }
  if (rows.size() > static_cast<size_t>(page_size)) {
    response.set_next_page_token(EncodePageToken(query, rows[page_size - 1].id));
  }
  return response;
}

absl::StatusOr<Connection> ConnectionManager::Update(const v1::UpdateConnectionRequest& req,
                                                     const Scope& scope) {
  SY_ASSIGN_OR_RETURN(std::vector<std::string> ids, ParseConnectionName(req.connection().name()));
  SY_RETURN_IF_ERROR(ValidateFields(req.connection()));
  bool set_name = req.update_mask().paths().empty();
  bool set_metadata = set_name;
  for (const std::string& path : req.update_mask().paths()) {
    if (path == "display_name") {
      set_name = true;
    } else if (path == "metadata") {
      set_metadata = true;
    } else {
      return InvalidArgument("INVALID_UPDATE_MASK",
                             absl::StrCat("update_mask path \"", path,
                                          "\" is not updatable; use display_name or metadata"));
    }
  }
  const absl::Time now = clock_.Now();
  ConnectionRow result;
  SY_RETURN_IF_ERROR(store_.Write([&](Transaction& tx) -> absl::Status {
    SY_ASSIGN_OR_RETURN(Located found,
                        LocateConnection(tx, ids, req.connection().name(), scope, kWholeTenant));
    ConnectionRow* row = &found.connection;
    if (row->state == Connection::DISCONNECTED) {
      return FailedPrecondition("CONNECTION_DISCONNECTED",
                                absl::StrCat(req.connection().name(), " is disconnected"));
    }
    if (set_name) row->display_name = req.connection().display_name();
    if (set_metadata) {
      row->metadata.clear();
      row->metadata.insert(req.connection().metadata().begin(), req.connection().metadata().end());
    }
    row->update_time = now;
    SY_RETURN_IF_ERROR(tx.UpdateConnection(*row));
    result = *std::move(row);
    return absl::OkStatus();
  }));
  return ToProto(result);
}

absl::StatusOr<Connection> ConnectionManager::SetState(absl::string_view name,
                                                       Connection::State state,
                                                       const Scope& scope) {
  SY_ASSIGN_OR_RETURN(std::vector<std::string> ids, ParseConnectionName(name));
  const absl::Time now = clock_.Now();
  ConnectionRow result;
  SY_RETURN_IF_ERROR(store_.Write([&](Transaction& tx) -> absl::Status {
    SY_ASSIGN_OR_RETURN(Located found, LocateConnection(tx, ids, name, scope, kWholeTenant));
    ConnectionRow* row = &found.connection;
    const auto from = static_cast<Connection::State>(row->state);
    if (from != state) {
      if (!TransitionAllowed(from, state)) {
        return FailedPrecondition(
            "INVALID_STATE_TRANSITION",
            absl::StrCat(name, " is ", Connection::State_Name(from), " and cannot become ",
                         Connection::State_Name(state)));
      }
      row->state = state;
      row->update_time = now;
      SY_RETURN_IF_ERROR(tx.UpdateConnection(*row));
      SY_RETURN_IF_ERROR(EmitInTx(tx, *row, "switchyard.connection.state_changed", now));
    }
    result = *std::move(row);
    return absl::OkStatus();
  }));
  return ToProto(result);
}

absl::StatusOr<std::vector<std::string>> ConnectionManager::DisconnectInTx(
    Transaction& tx, TenantRow& tenant, ConnectionRow& connection, absl::Time now,
    absl::string_view request_id) {
  if (connection.state == Connection::DISCONNECTED) return std::vector<std::string>();
  connection.state = Connection::DISCONNECTED;
  connection.update_time = now;
  connection.disconnect_time = now;
  SY_RETURN_IF_ERROR(tx.UpdateConnection(connection));
  SY_RETURN_IF_ERROR(EmitInTx(tx, connection, "switchyard.connection.disconnected", now));
  SY_ASSIGN_OR_RETURN(std::vector<std::string> revoked,
                      keys_.RevokeAllInTx(tx, tenant.id, connection.id, now));
  SY_RETURN_IF_ERROR(vault_.DeleteCredentialsInTx(tx, tenant.id, connection.id));
  tenant.connection_count -= 1;
  SY_RETURN_IF_ERROR(ledger_.ReturnInTx(tx, tenant, connection.credits, connection.reservation_id,
                                        now,
                                        credits::Cause{std::string(request_id), connection.id}));
  return revoked;
}

absl::StatusOr<Connection> ConnectionManager::Disconnect(const v1::DeleteConnectionRequest& req,
                                                         const Scope& scope) {
  const std::string& name = req.name();
  SY_ASSIGN_OR_RETURN(std::vector<std::string> ids, ParseConnectionName(name));
  SY_RETURN_IF_ERROR(ValidateRequestId(req.request_id()));
  const absl::Time now = clock_.Now();
  ConnectionRow result;
  std::vector<std::string> revoked;
  SY_RETURN_IF_ERROR(store_.Write([&](Transaction& tx) -> absl::Status {
    SY_ASSIGN_OR_RETURN(Located found, LocateConnection(tx, ids, name, scope, kWholeTenant));
    SY_ASSIGN_OR_RETURN(revoked,
                        DisconnectInTx(tx, found.tenant, found.connection, now, req.request_id()));
    result = std::move(found.connection);
    return absl::OkStatus();
  }));
  keys_.Forget(revoked);
  return ToProto(result);
}

}  // namespace switchyard::connections
