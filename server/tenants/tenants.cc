#include "server/tenants/tenants.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "server/common/idempotency.h"
#include "server/common/names.h"
#include "server/common/proto_time.h"
#include "server/common/status.h"

namespace switchyard::tenants {
namespace {
using storage::TenantRow;
using storage::Transaction;
using v1::Connection;
using v1::CreditReservation;

absl::Status ValidateTenantFields(const v1::Tenant& tenant) {
  if (tenant.display_name().size() > 200) {
    return InvalidArgument("INVALID_DISPLAY_NAME", "display_name must be at most 200 bytes");
  }
  if (tenant.credit_limit() < 0) {
    return InvalidArgument("INVALID_CREDIT_LIMIT", "credit_limit must not be negative");
  }
  return absl::OkStatus();
}
}  // namespace

v1::Tenant TenantRegistry::ToProto(const TenantRow& row) {
  v1::Tenant t;
  t.set_name(absl::StrCat("tenants/", row.id));
  t.set_display_name(row.display_name);
  t.set_credit_pool(absl::StrCat("creditPools/", row.pool_id));
  t.set_credit_limit(row.credit_limit);
  t.set_reserved_credits(row.reserved);
  t.set_consumed_credits(row.consumed);
  t.set_connection_count(row.connection_count);
  switchyard::ToProto(row.create_time, t.mutable_create_time());
  switchyard::ToProto(row.update_time, t.mutable_update_time());
  return t;
}

absl::StatusOr<v1::Tenant> TenantRegistry::Create(const v1::CreateTenantRequest& req) {
  SY_RETURN_IF_ERROR(ValidateId("tenant_id", req.tenant_id()));
  SY_RETURN_IF_ERROR(ValidateRequestId(req.request_id()));
  SY_RETURN_IF_ERROR(ValidateTenantFields(req.tenant()));
  SY_ASSIGN_OR_RETURN(std::vector<std::string> pool,
                      ParseName("tenant.credit_pool", req.tenant().credit_pool(), {"creditPools"}));
  IdempotencyKey key = MakeIdempotencyKey(
      "CreateTenant", "", req.request_id(),
      Fingerprint({req.tenant_id(), req.tenant().display_name(), req.tenant().credit_pool(),
                   absl::StrCat(req.tenant().credit_limit())}));
  const absl::Time now = clock_.Now();
  v1::Tenant result;
  SY_RETURN_IF_ERROR(store_.Write([&](Transaction& tx) -> absl::Status {
    SY_ASSIGN_OR_RETURN(std::optional<v1::Tenant> previous,
                        FindIdempotentResponse<v1::Tenant>(tx, key));
    if (previous.has_value()) {
      result = *std::move(previous);
      return absl::OkStatus();
    }
    SY_ASSIGN_OR_RETURN(std::optional<storage::PoolRow> pool_row, tx.GetPool(pool[0]));
    if (!pool_row.has_value()) {
      return NotFound("POOL_NOT_FOUND",
                      absl::StrCat(req.tenant().credit_pool(), " does not exist"));
    }
    TenantRow row;
    row.id = req.tenant_id();
    row.display_name = req.tenant().display_name();
    row.pool_id = pool[0];
    row.credit_limit = req.tenant().credit_limit();
    row.create_time = now;
    row.update_time = now;
    absl::Status inserted = tx.InsertTenant(row);
    if (absl::IsAlreadyExists(inserted)) {
      return Error(absl::StatusCode::kAlreadyExists, "TENANT_EXISTS",
                   absl::StrCat("tenants/", req.tenant_id(),
                                " already exists or existed; tenant ids are never reused"));
    }
    SY_RETURN_IF_ERROR(inserted);
    result = ToProto(row);
    return RecordIdempotentResponse(tx, key, result, now);
  }));
  return result;
}

absl::StatusOr<v1::Tenant> TenantRegistry::Get(absl::string_view name, const Scope& scope) {
  SY_ASSIGN_OR_RETURN(std::vector<std::string> ids, ParseName("name", name, {"tenants"}));
  TenantRow result;
  SY_RETURN_IF_ERROR(store_.Read([&](Transaction& tx) -> absl::Status {
    SY_ASSIGN_OR_RETURN(result, credits::LoadTenant(tx, ids[0], scope));
    return absl::OkStatus();
  }));
  return ToProto(result);
}

absl::StatusOr<v1::ListTenantsResponse> TenantRegistry::List(const v1::ListTenantsRequest& req) {
  SY_ASSIGN_OR_RETURN(int page_size, NormalizePageSize(req.page_size()));
  constexpr absl::string_view kScope = "ListTenants";
  SY_ASSIGN_OR_RETURN(std::string after, DecodePageToken(req.page_token(), kScope));
  std::vector<TenantRow> rows;
  SY_RETURN_IF_ERROR(store_.Read([&](Transaction& tx) -> absl::Status {
    SY_ASSIGN_OR_RETURN(rows, tx.ListTenants(after, page_size + 1));
    return absl::OkStatus();
  }));
  v1::ListTenantsResponse response;
  for (size_t i = 0; i < rows.size() && i < static_cast<size_t>(page_size); ++i) {
    *response.add_tenants() = ToProto(rows[i]);
  }
  if (rows.size() > static_cast<size_t>(page_size)) {
    response.set_next_page_token(EncodePageToken(kScope, rows[page_size - 1].id));
  }
  return response;
}

absl::StatusOr<v1::Tenant> TenantRegistry::Update(const v1::UpdateTenantRequest& req) {
  SY_ASSIGN_OR_RETURN(std::vector<std::string> ids,
                      ParseName("tenant.name", req.tenant().name(), {"tenants"}));
  SY_RETURN_IF_ERROR(ValidateTenantFields(req.tenant()));
  bool set_name = req.update_mask().paths().empty();
  bool set_limit = set_name;
  for (const std::string& path : req.update_mask().paths()) {
    if (path == "display_name") {
      set_name = true;
    } else if (path == "credit_limit") {
      set_limit = true;
    } else {
      return InvalidArgument("INVALID_UPDATE_MASK",
                             absl::StrCat("update_mask path \"", path,
                                          "\" is not updatable; use display_name or credit_limit"));
    }
  }
  const absl::Time now = clock_.Now();
  TenantRow result;
  SY_RETURN_IF_ERROR(store_.Write([&](Transaction& tx) -> absl::Status {
    SY_ASSIGN_OR_RETURN(TenantRow row, credits::LoadTenant(tx, ids[0], Scope::All()));
    if (set_name) row.display_name = req.tenant().display_name();
    if (set_limit) {
      // Reservations past their expiry hold nothing.
      SY_ASSIGN_OR_RETURN(int expired, ledger_.ExpireAllDueInTx(tx, row.pool_id, now));
      if (expired > 0) {
        SY_ASSIGN_OR_RETURN(TenantRow fresh, credits::LoadTenant(tx, ids[0], Scope::All()));
        fresh.display_name = row.display_name;
        row = std::move(fresh);
      }
      const int64_t held = row.reserved + row.consumed;
      if (req.tenant().credit_limit() > 0 && req.tenant().credit_limit() < held) {
        return FailedPrecondition(
            "CREDIT_LIMIT_BELOW_USAGE",
            absl::StrCat("tenants/", row.id, " holds ", held, " credits, more than the limit ",
                         req.tenant().credit_limit()));
      }
      row.credit_limit = req.tenant().credit_limit();
    }
    row.update_time = now;
    SY_RETURN_IF_ERROR(tx.UpdateTenant(row));
    result = std::move(row);
    return absl::OkStatus();
  }));
  return ToProto(result);
}

absl::Status TenantRegistry::Delete(const v1::DeleteTenantRequest& req) {
  SY_ASSIGN_OR_RETURN(std::vector<std::string> ids, ParseName("name", req.name(), {"tenants"}));
  SY_RETURN_IF_ERROR(ValidateRequestId(req.request_id()));
  const credits::Cause cause{req.request_id(), ""};
  const absl::Time now = clock_.Now();
  std::vector<std::string> revoked;
  SY_RETURN_IF_ERROR(store_.Write([&](Transaction& tx) -> absl::Status {
    revoked.clear();
    SY_ASSIGN_OR_RETURN(TenantRow tenant, credits::LoadTenant(tx, ids[0], Scope::All()));
    if (tenant.connection_count > 0 && !req.force()) {
      return WithMetadata(
          FailedPrecondition("TENANT_HAS_CONNECTIONS",
                             absl::StrCat(req.name(), " still has ", tenant.connection_count,
                                          " connections; disconnect them or delete with force")),
          "connection_count", absl::StrCat(tenant.connection_count));
    }
    // Disconnect every live connection, returning its credits.
    std::string after;
    while (true) {
      SY_ASSIGN_OR_RETURN(std::vector<storage::ConnectionRow> page,
                          tx.ListConnections(tenant.id, {}, after, 500));
      for (storage::ConnectionRow& c : page) {
        SY_ASSIGN_OR_RETURN(std::vector<std::string> ids_of_connection,
                            connections_.DisconnectInTx(tx, tenant, c, now, req.request_id()));
        revoked.insert(revoked.end(), ids_of_connection.begin(), ids_of_connection.end());
      }
      if (page.size() < 500) break;
      after = page.back().id;
    }
    // Release pending reservations; return the credits of committed ones that
    // no connection ever bound.
    after.clear();
    while (true) {
      SY_ASSIGN_OR_RETURN(std::vector<storage::ReservationRow> page,
                          tx.ListReservations(tenant.id, 0, after, 500));
      for (storage::ReservationRow& r : page) {
        if (r.state == CreditReservation::PENDING) {
          SY_RETURN_IF_ERROR(
              ledger_.ReleaseInTx(tx, tenant, r, CreditReservation::RELEASED, now, cause));
        } else if (r.state == CreditReservation::COMMITTED && r.connection_id.empty()) {
          SY_RETURN_IF_ERROR(ledger_.ReturnInTx(tx, tenant, r.amount, r.id, now, cause));
        }
      }
      if (page.size() < 500) break;
      after = page.back().id;
    }
    if (tenant.reserved != 0 || tenant.consumed != 0 || tenant.connection_count != 0) {
      return Error(absl::StatusCode::kInternal, "LEDGER_INCONSISTENT",
                   absl::StrCat(req.name(), " still holds credits after returning all of them"));
    }
    SY_ASSIGN_OR_RETURN(std::vector<std::string> tenant_keys,
                        keys_.RevokeAllInTx(tx, tenant.id, "", now));
    revoked.insert(revoked.end(), tenant_keys.begin(), tenant_keys.end());
    SY_RETURN_IF_ERROR(vault_.DestroyTenantInTx(tx, tenant.id));
    tenant.deleted = true;
    tenant.update_time = now;
    return tx.UpdateTenant(tenant);
  }));
  keys_.Forget(revoked);
  return absl::OkStatus();
}

}  // namespace switchyard::tenants
