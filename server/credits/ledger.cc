#include "server/credits/ledger.h"

#include "absl/strings/str_cat.h"
#include "server/common/idempotency.h"
#include "server/common/names.h"
#include "server/common/proto_time.h"
#include "server/common/status.h"

namespace switchyard::credits {
namespace {

// Reservations expired per statement.
constexpr int kExpiryBatch = 1000;
using storage::PoolRow;
using storage::ReservationRow;
using storage::TenantRow;
using storage::Transaction;
using v1::CreditReservation;
using v1::LedgerEntry;

absl::Status PoolNotFound(absl::string_view pool_id) {
  return NotFound("POOL_NOT_FOUND", absl::StrCat("creditPools/", pool_id, " does not exist"));
}

absl::Status ReservationNotFound(absl::string_view name) {
  return NotFound("RESERVATION_NOT_FOUND", absl::StrCat(name, " does not exist"));
}

std::string ReservationName(const ReservationRow& row) {
  return absl::StrCat("tenants/", row.tenant_id, "/creditReservations/", row.id);
}

absl::Status NotPending(const ReservationRow& row) {
  switch (row.state) {
    case CreditReservation::COMMITTED:
      return FailedPrecondition("RESERVATION_COMMITTED",
                                absl::StrCat(ReservationName(row), " is already committed"));
    case CreditReservation::RELEASED:
      return FailedPrecondition("RESERVATION_RELEASED",
                                absl::StrCat(ReservationName(row), " was released"));
    default:
      return FailedPrecondition("RESERVATION_EXPIRED",
                                absl::StrCat(ReservationName(row), " has expired"));
  }
}

absl::Status ValidateDisplayName(absl::string_view display_name) {
  if (display_name.size() > 200) {
    return InvalidArgument("INVALID_DISPLAY_NAME", "display_name must be at most 200 bytes");
  }
  return absl::OkStatus();
}
}  // namespace

absl::StatusOr<TenantRow> LoadTenant(Transaction& tx, absl::string_view tenant_id,
                                     const Scope& scope) {
  std::optional<TenantRow> tenant;
  if (scope.AllowsWholeTenant(tenant_id)) {
    SY_ASSIGN_OR_RETURN(tenant, tx.GetTenant(tenant_id));
  }
  if (!tenant.has_value() || tenant->deleted) {
    return NotFound("TENANT_NOT_FOUND", absl::StrCat("tenants/", tenant_id, " does not exist"));
  }
  return *std::move(tenant);
}

absl::StatusOr<std::unique_ptr<CreditLedger>> CreditLedger::Create(const LedgerOptions& options,
                                                                   storage::Store& store,
                                                                   Clock& clock) {
  if (options.default_ttl <= absl::ZeroDuration() || options.max_ttl < options.default_ttl ||
      options.max_amount <= 0 || options.max_capacity <= 0) {
    return absl::InvalidArgumentError("invalid ledger options");
  }
  return std::unique_ptr<CreditLedger>(new CreditLedger(options, store, clock));
}

v1::CreditPool CreditLedger::ToProto(const PoolRow& row) {
  v1::CreditPool pool;
  pool.set_name(absl::StrCat("creditPools/", row.id));
  pool.set_display_name(row.display_name);
  pool.set_capacity(row.capacity);
  pool.set_available(row.capacity - row.reserved - row.consumed);
  pool.set_reserved(row.reserved);
  pool.set_consumed(row.consumed);
  switchyard::ToProto(row.create_time, pool.mutable_create_time());
  switchyard::ToProto(row.update_time, pool.mutable_update_time());
  return pool;
}

CreditReservation CreditLedger::ToProto(const ReservationRow& row, absl::Time now) {
  CreditReservation r;
  r.set_name(ReservationName(row));
  r.set_credit_pool(absl::StrCat("creditPools/", row.pool_id));
  r.set_amount(row.amount);
  auto state = static_cast<CreditReservation::State>(row.state);
  // Past its expiry a PENDING reservation can no longer be committed; the
  // reaper will make that durable shortly.
  if (state == CreditReservation::PENDING && row.expire_time <= now) {
    state = CreditReservation::EXPIRED;
  }
  r.set_state(state);
  switchyard::ToProto(row.expire_time, r.mutable_expire_time());
  switchyard::ToProto(row.create_time, r.mutable_create_time());
  if (row.resolve_time != absl::InfinitePast()) {
    switchyard::ToProto(row.resolve_time, r.mutable_resolve_time());
  }
  if (!row.connection_id.empty()) {
    r.set_connection(absl::StrCat("tenants/", row.tenant_id, "/connections/", row.connection_id));
  }
  return r;
}

absl::Status CreditLedger::ValidateTtl(absl::Duration ttl) const {
  if (ttl < absl::Seconds(1) || ttl > options_.max_ttl) {
    return InvalidArgument("INVALID_TTL", absl::StrCat("ttl must be between 1s and ",
                                                       absl::FormatDuration(options_.max_ttl)));
  }
  return absl::OkStatus();
}

// --- Pools --------------------------------------------------------------------

absl::StatusOr<v1::CreditPool> CreditLedger::CreatePool(const v1::CreateCreditPoolRequest& req) {
  SY_RETURN_IF_ERROR(ValidateId("credit_pool_id", req.credit_pool_id()));
  SY_RETURN_IF_ERROR(ValidateRequestId(req.request_id()));
  SY_RETURN_IF_ERROR(ValidateDisplayName(req.credit_pool().display_name()));
  const int64_t capacity = req.credit_pool().capacity();
  if (capacity < 0 || capacity > options_.max_capacity) {
    return InvalidArgument("INVALID_CAPACITY",
                           absl::StrCat("capacity must be between 0 and ", options_.max_capacity));
  }
  const std::string name = absl::StrCat("creditPools/", req.credit_pool_id());
  IdempotencyKey key =
      MakeIdempotencyKey("CreateCreditPool", "", req.request_id(),
                         Fingerprint({req.credit_pool_id(), req.credit_pool().display_name(),
                                      absl::StrCat(capacity)}));
  const absl::Time now = clock_.Now();
  v1::CreditPool result;
  SY_RETURN_IF_ERROR(store_.Write([&](Transaction& tx) -> absl::Status {
    SY_ASSIGN_OR_RETURN(std::optional<v1::CreditPool> previous,
                        FindIdempotentResponse<v1::CreditPool>(tx, key));
    if (previous.has_value()) {
      result = *std::move(previous);
      return absl::OkStatus();
    }
    PoolRow pool{req.credit_pool_id(), req.credit_pool().display_name(), 0, 0, 0, now, now};
    absl::Status inserted = tx.InsertPool(pool);
    if (absl::IsAlreadyExists(inserted)) {
      return Error(absl::StatusCode::kAlreadyExists, "POOL_EXISTS",
                   absl::StrCat(name, " already exists"));
    }
    SY_RETURN_IF_ERROR(inserted);
    if (capacity > 0) {
      pool.capacity = capacity;
      SY_RETURN_IF_ERROR(tx.UpdatePool(pool));
      storage::JournalRow entry;
      entry.kind = LedgerEntry::CAPACITY_CHANGE;
      entry.amount = capacity;
      entry.time = now;
      entry.pool_id = pool.id;
      entry.request_id = req.request_id();
      entry.capacity_after = pool.capacity;
      SY_RETURN_IF_ERROR(tx.AppendJournal(entry).status());
    }
    result = ToProto(pool);
    return RecordIdempotentResponse(tx, key, result, now);
  }));
  return result;
}

absl::StatusOr<v1::CreditPool> CreditLedger::GetPool(absl::string_view name) {
  SY_ASSIGN_OR_RETURN(std::vector<std::string> ids, ParseName("name", name, {"creditPools"}));
  PoolRow result;
  SY_RETURN_IF_ERROR(store_.Read([&](Transaction& tx) -> absl::Status {
    SY_ASSIGN_OR_RETURN(std::optional<PoolRow> pool, tx.GetPool(ids[0]));
    if (!pool.has_value()) return PoolNotFound(ids[0]);
    result = *std::move(pool);
    return absl::OkStatus();
  }));
  return ToProto(result);
}

absl::StatusOr<v1::ListCreditPoolsResponse> CreditLedger::ListPools(
    const v1::ListCreditPoolsRequest& req) {
  SY_ASSIGN_OR_RETURN(int page_size, NormalizePageSize(req.page_size()));
  constexpr absl::string_view kScope = "ListCreditPools";
  SY_ASSIGN_OR_RETURN(std::string after, DecodePageToken(req.page_token(), kScope));
  std::vector<PoolRow> rows;
  SY_RETURN_IF_ERROR(store_.Read([&](Transaction& tx) -> absl::Status {
    SY_ASSIGN_OR_RETURN(rows, tx.ListPools(after, page_size + 1));
    return absl::OkStatus();
  }));
  v1::ListCreditPoolsResponse response;
  for (size_t i = 0; i < rows.size() && i < static_cast<size_t>(page_size); ++i) {
    *response.add_credit_pools() = ToProto(rows[i]);
  }
  if (rows.size() > static_cast<size_t>(page_size)) {
    response.set_next_page_token(EncodePageToken(kScope, rows[page_size - 1].id));
  }
  return response;
}

absl::StatusOr<v1::CreditPool> CreditLedger::SetCapacity(
    const v1::SetCreditPoolCapacityRequest& req) {
  SY_ASSIGN_OR_RETURN(std::vector<std::string> ids, ParseName("name", req.name(), {"creditPools"}));
  SY_RETURN_IF_ERROR(ValidateRequestId(req.request_id()));
  if (req.capacity() < 0 || req.capacity() > options_.max_capacity) {
    return InvalidArgument("INVALID_CAPACITY",
                           absl::StrCat("capacity must be between 0 and ", options_.max_capacity));
  }
  const absl::Time now = clock_.Now();
  PoolRow result;
  SY_RETURN_IF_ERROR(store_.Write([&](Transaction& tx) -> absl::Status {
    SY_ASSIGN_OR_RETURN(std::optional<PoolRow> pool, tx.GetPool(ids[0]));
    if (!pool.has_value()) return PoolNotFound(ids[0]);
    SY_ASSIGN_OR_RETURN(int expired, ExpireAllDueInTx(tx, pool->id, now));
    if (expired > 0) {
      SY_ASSIGN_OR_RETURN(pool, tx.GetPool(ids[0]));
    }
    const int64_t in_use = pool->reserved + pool->consumed;
    if (req.capacity() < in_use) {
      return WithMetadata(
          WithMetadata(
              FailedPrecondition("CAPACITY_BELOW_USAGE",
                                 absl::StrCat("capacity ", req.capacity(), " is below the ", in_use,
                                              " credits reserved or consumed in ", req.name())),
              "in_use", absl::StrCat(in_use)),
          "requested_capacity", absl::StrCat(req.capacity()));
    }
    const int64_t delta = req.capacity() - pool->capacity;
    if (delta != 0) {
      pool->capacity = req.capacity();
      pool->update_time = now;
      SY_RETURN_IF_ERROR(tx.UpdatePool(*pool));
      storage::JournalRow entry;
      entry.kind = LedgerEntry::CAPACITY_CHANGE;
      entry.amount = delta;
      entry.time = now;
      entry.pool_id = pool->id;
      entry.request_id = req.request_id();
      entry.capacity_after = pool->capacity;
      entry.reserved_after = pool->reserved;
      entry.consumed_after = pool->consumed;
      SY_RETURN_IF_ERROR(tx.AppendJournal(entry).status());
    }
    result = *std::move(pool);
    return absl::OkStatus();
  }));
  return ToProto(result);
}

// --- Building blocks ----------------------------------------------------------------

absl::StatusOr<PoolRow> CreditLedger::LoadPoolOf(Transaction& tx, const TenantRow& tenant) {
  SY_ASSIGN_OR_RETURN(std::optional<PoolRow> pool, tx.GetPool(tenant.pool_id));
  if (!pool.has_value()) {
    return Error(absl::StatusCode::kInternal, "LEDGER_INCONSISTENT",
                 absl::StrCat("tenants/", tenant.id, " draws from missing pool ", tenant.pool_id));
  }
  return *std::move(pool);
}

absl::Status CreditLedger::Record(Transaction& tx, PoolRow& pool, TenantRow& tenant,
                                  LedgerEntry::Kind kind, int64_t amount,
                                  absl::string_view reservation_id, absl::Time now,
                                  const Cause& cause) {
  if (pool.reserved < 0 || pool.consumed < 0 || pool.reserved + pool.consumed > pool.capacity ||
      tenant.reserved < 0 || tenant.consumed < 0) {
    // Domain code checked before moving credits; reaching this is a bug.
    return Error(absl::StatusCode::kInternal, "LEDGER_INCONSISTENT",
                 absl::StrCat("credit movement would break the balance of creditPools/", pool.id));
  }
  pool.update_time = now;
  tenant.update_time = now;
  SY_RETURN_IF_ERROR(tx.UpdatePool(pool));
  SY_RETURN_IF_ERROR(tx.UpdateTenant(tenant));
  storage::JournalRow entry;
  entry.kind = kind;
  entry.amount = amount;
  entry.time = now;
  entry.pool_id = pool.id;
  entry.tenant_id = tenant.id;
  entry.connection_id = cause.connection_id;
  entry.reservation_id = std::string(reservation_id);
  entry.request_id = cause.request_id;
  entry.capacity_after = pool.capacity;
  entry.reserved_after = pool.reserved;
  entry.consumed_after = pool.consumed;
  return tx.AppendJournal(entry).status();
}

absl::StatusOr<ReservationRow> CreditLedger::ReserveInTx(Transaction& tx, TenantRow& tenant,
                                                         absl::string_view reservation_id,
                                                         int64_t amount, absl::Duration ttl,
                                                         absl::Time now, const Cause& cause) {
  SY_ASSIGN_OR_RETURN(int expired, ExpireAllDueInTx(tx, tenant.pool_id, now));
  if (expired > 0) {
    // Expiry may have changed this tenant's row too.
    SY_ASSIGN_OR_RETURN(tenant, LoadTenant(tx, tenant.id, Scope::All()));
  }
  SY_ASSIGN_OR_RETURN(PoolRow pool, LoadPoolOf(tx, tenant));
  const int64_t available = pool.capacity - pool.reserved - pool.consumed;
  if (amount > available) {
    absl::Status error = Error(absl::StatusCode::kResourceExhausted, "CREDITS_EXHAUSTED",
                               absl::StrCat("creditPools/", pool.id, " has ", available,
                                            " credits available; ", amount, " requested"));
    error = WithMetadata(error, "available", absl::StrCat(available));
    return WithMetadata(error, "requested", absl::StrCat(amount));
  }
  const int64_t held = tenant.reserved + tenant.consumed;
  if (tenant.credit_limit > 0 && held + amount > tenant.credit_limit) {
    absl::Status error =
        Error(absl::StatusCode::kResourceExhausted, "TENANT_CREDIT_LIMIT",
              absl::StrCat("tenants/", tenant.id, " holds ", held, " of its limit of ",
                           tenant.credit_limit, " credits; ", amount, " requested"));
    error = WithMetadata(error, "limit", absl::StrCat(tenant.credit_limit));
    return WithMetadata(error, "requested", absl::StrCat(amount));
  }
  ReservationRow row;
  row.tenant_id = tenant.id;
  row.id = std::string(reservation_id);
  row.pool_id = pool.id;
  row.amount = amount;
  row.state = CreditReservation::PENDING;
  row.expire_time = now + ttl;
  row.create_time = now;
  SY_RETURN_IF_ERROR(tx.InsertReservation(row));
  pool.reserved += amount;
  tenant.reserved += amount;
  SY_RETURN_IF_ERROR(Record(tx, pool, tenant, LedgerEntry::RESERVE, amount, row.id, now, cause));
  return row;
}

absl::Status CreditLedger::CommitInTx(Transaction& tx, TenantRow& tenant,
                                      ReservationRow& reservation, absl::Time now,
                                      const Cause& cause) {
  if (reservation.state != CreditReservation::PENDING) return NotPending(reservation);
  SY_ASSIGN_OR_RETURN(PoolRow pool, LoadPoolOf(tx, tenant));
  reservation.state = CreditReservation::COMMITTED;
  reservation.resolve_time = now;
  if (!cause.connection_id.empty()) reservation.connection_id = cause.connection_id;
  SY_RETURN_IF_ERROR(tx.UpdateReservation(reservation));
  pool.reserved -= reservation.amount;
  pool.consumed += reservation.amount;
  tenant.reserved -= reservation.amount;
  tenant.consumed += reservation.amount;
  return Record(tx, pool, tenant, LedgerEntry::COMMIT, reservation.amount, reservation.id, now,
                cause);
}

absl::Status CreditLedger::ReleaseInTx(Transaction& tx, TenantRow& tenant,
                                       ReservationRow& reservation, int state, absl::Time now,
                                       const Cause& cause) {
  if (reservation.state != CreditReservation::PENDING) return NotPending(reservation);
  SY_ASSIGN_OR_RETURN(PoolRow pool, LoadPoolOf(tx, tenant));
  reservation.state = state;
  reservation.resolve_time = now;
  SY_RETURN_IF_ERROR(tx.UpdateReservation(reservation));
  pool.reserved -= reservation.amount;
  tenant.reserved -= reservation.amount;
  const auto kind =
      state == CreditReservation::EXPIRED ? LedgerEntry::EXPIRE : LedgerEntry::RELEASE;
  return Record(tx, pool, tenant, kind, reservation.amount, reservation.id, now, cause);
}

absl::Status CreditLedger::ReturnInTx(Transaction& tx, TenantRow& tenant, int64_t amount,
                                      absl::string_view reservation_id, absl::Time now,
                                      const Cause& cause) {
  SY_ASSIGN_OR_RETURN(PoolRow pool, LoadPoolOf(tx, tenant));
  pool.consumed -= amount;
  tenant.consumed -= amount;
  return Record(tx, pool, tenant, LedgerEntry::DISCONNECT_RETURN, amount, reservation_id, now,
                cause);
}

absl::StatusOr<int> CreditLedger::ExpireDueInTx(Transaction& tx, absl::string_view pool_id,
                                                absl::Time now) {
  SY_ASSIGN_OR_RETURN(
      std::vector<ReservationRow> due,
      tx.ListReservationsExpiringBy(pool_id, CreditReservation::PENDING, now, kExpiryBatch));
  for (ReservationRow& reservation : due) {
    SY_ASSIGN_OR_RETURN(std::optional<TenantRow> tenant, tx.GetTenant(reservation.tenant_id));
    if (!tenant.has_value()) {
      return Error(absl::StatusCode::kInternal, "LEDGER_INCONSISTENT",
                   absl::StrCat(ReservationName(reservation), " belongs to no tenant"));
    }
    SY_RETURN_IF_ERROR(
        ReleaseInTx(tx, *tenant, reservation, CreditReservation::EXPIRED, now, Cause{}));
  }
  return static_cast<int>(due.size());
}

absl::StatusOr<int> CreditLedger::ExpireAllDueInTx(Transaction& tx, absl::string_view pool_id,
                                                   absl::Time now) {
  int total = 0;
  while (true) {
    SY_ASSIGN_OR_RETURN(int expired, ExpireDueInTx(tx, pool_id, now));
    total += expired;
    if (expired < kExpiryBatch) return total;
  }
}

absl::StatusOr<int> CreditLedger::ExpireDue() {
  int total = 0;
  while (true) {
    int expired = 0;
    const absl::Time now = clock_.Now();
    SY_RETURN_IF_ERROR(store_.Write([&](Transaction& tx) -> absl::Status {
      SY_ASSIGN_OR_RETURN(expired, ExpireDueInTx(tx, "", now));
      return absl::OkStatus();
    }));
    total += expired;
    if (expired < kExpiryBatch) return total;
  }
}

// --- Reservations -------------------------------------------------------------------

absl::StatusOr<CreditLedger::Located> CreditLedger::Locate(Transaction& tx, absl::string_view name,
                                                           const Scope& scope) {
  SY_ASSIGN_OR_RETURN(std::vector<std::string> ids,
                      ParseName("name", name, {"tenants", "creditReservations"}));
  absl::StatusOr<TenantRow> tenant = LoadTenant(tx, ids[0], scope);
  if (absl::IsNotFound(tenant.status())) return ReservationNotFound(name);
  SY_RETURN_IF_ERROR(tenant.status());
  SY_ASSIGN_OR_RETURN(std::optional<ReservationRow> reservation, tx.GetReservation(ids[0], ids[1]));
  if (!reservation.has_value()) return ReservationNotFound(name);
  return Located{*std::move(tenant), *std::move(reservation)};
}

absl::StatusOr<CreditReservation> CreditLedger::Reserve(const v1::ReserveCreditsRequest& req,
                                                        const Scope& scope) {
  SY_ASSIGN_OR_RETURN(std::vector<std::string> ids, ParseName("parent", req.parent(), {"tenants"}));
  SY_RETURN_IF_ERROR(ValidateRequestId(req.request_id()));
  std::string reservation_id = req.reservation_id();
  if (reservation_id.empty()) {
    reservation_id = GenerateId("r");
  } else {
    SY_RETURN_IF_ERROR(ValidateId("reservation_id", reservation_id));
  }
  if (req.amount() < 1 || req.amount() > options_.max_amount) {
    return InvalidArgument("INVALID_AMOUNT",
                           absl::StrCat("amount must be between 1 and ", options_.max_amount));
  }
  absl::Duration ttl = req.has_ttl() ? FromProto(req.ttl()) : options_.default_ttl;
  SY_RETURN_IF_ERROR(ValidateTtl(ttl));
  IdempotencyKey key =
      MakeIdempotencyKey("ReserveCredits", req.parent(), req.request_id(),
                         Fingerprint({req.reservation_id(), absl::StrCat(req.amount()),
                                      absl::StrCat(absl::ToInt64Milliseconds(ttl))}));
  const absl::Time now = clock_.Now();
  CreditReservation result;
  SY_RETURN_IF_ERROR(store_.Write([&](Transaction& tx) -> absl::Status {
    SY_ASSIGN_OR_RETURN(TenantRow tenant, LoadTenant(tx, ids[0], scope));
    SY_ASSIGN_OR_RETURN(std::optional<CreditReservation> previous,
                        FindIdempotentResponse<CreditReservation>(tx, key));
    if (previous.has_value()) {
      result = *std::move(previous);
      return absl::OkStatus();
    }
    SY_ASSIGN_OR_RETURN(std::optional<ReservationRow> existing,
                        tx.GetReservation(tenant.id, reservation_id));
    if (existing.has_value()) {
      // Idempotent by id, in the manner of TigerBeetle's transfer ids.
      if (existing->amount != req.amount()) {
        return Error(absl::StatusCode::kAlreadyExists, "RESERVATION_EXISTS",
                     absl::StrCat(ReservationName(*existing), " already exists with amount ",
                                  existing->amount));
      }
      result = ToProto(*existing, now);
      return absl::OkStatus();
    }
    SY_ASSIGN_OR_RETURN(ReservationRow row, ReserveInTx(tx, tenant, reservation_id, req.amount(),
                                                        ttl, now, Cause{req.request_id(), ""}));
    result = ToProto(row, now);
    return RecordIdempotentResponse(tx, key, result, now);
  }));
  return result;
}

absl::StatusOr<CreditReservation> CreditLedger::GetReservation(absl::string_view name,
                                                               const Scope& scope) {
  ReservationRow result;
  SY_RETURN_IF_ERROR(store_.Read([&](Transaction& tx) -> absl::Status {
    SY_ASSIGN_OR_RETURN(Located found, Locate(tx, name, scope));
    result = std::move(found.reservation);
    return absl::OkStatus();
  }));
  return ToProto(result, clock_.Now());
}

absl::StatusOr<v1::ListCreditReservationsResponse> CreditLedger::ListReservations(
    const v1::ListCreditReservationsRequest& req, const Scope& scope) {
  SY_ASSIGN_OR_RETURN(std::vector<std::string> parent,
                      ParseName("parent", req.parent(), {"tenants"}));
  SY_ASSIGN_OR_RETURN(int page_size, NormalizePageSize(req.page_size()));
  if (!CreditReservation::State_IsValid(req.state())) {
    return InvalidArgument("INVALID_STATE", "state filter is not a known reservation state");
  }
  const std::string query = absl::StrCat("ListCreditReservations|", req.parent(), "|", req.state());
  SY_ASSIGN_OR_RETURN(std::string after, DecodePageToken(req.page_token(), query));
  std::vector<ReservationRow> rows;
  SY_RETURN_IF_ERROR(store_.Read([&](Transaction& tx) -> absl::Status {
    SY_RETURN_IF_ERROR(LoadTenant(tx, parent[0], scope).status());
    SY_ASSIGN_OR_RETURN(rows, tx.ListReservations(parent[0], req.state(), after, page_size + 1));
    return absl::OkStatus();
  }));
  const absl::Time now = clock_.Now();
  v1::ListCreditReservationsResponse response;
  for (size_t i = 0; i < rows.size() && i < static_cast<size_t>(page_size); ++i) {
    *response.add_credit_reservations() = ToProto(rows[i], now);
  }
  if (rows.size() > static_cast<size_t>(page_size)) {
    response.set_next_page_token(EncodePageToken(query, rows[page_size - 1].id));
  }
  return response;
}

absl::StatusOr<CreditReservation> CreditLedger::Commit(
    const v1::CommitCreditReservationRequest& req, const Scope& scope) {
  return Resolve(req.name(), req.request_id(), scope, CreditReservation::COMMITTED);
}

absl::StatusOr<CreditReservation> CreditLedger::Release(
    const v1::ReleaseCreditReservationRequest& req, const Scope& scope) {
  return Resolve(req.name(), req.request_id(), scope, CreditReservation::RELEASED);
}

absl::StatusOr<CreditReservation> CreditLedger::Resolve(absl::string_view name,
                                                        absl::string_view request_id,
                                                        const Scope& scope,
                                                        CreditReservation::State target) {
  SY_RETURN_IF_ERROR(ValidateRequestId(request_id));
  const Cause cause{std::string(request_id), ""};
  const absl::Time now = clock_.Now();
  ReservationRow result;
  // A reservation found past its expiry is expired durably and the call
  // fails; that error travels beside the transaction so the expiry commits.
  absl::Status outcome;
  SY_RETURN_IF_ERROR(store_.Write([&](Transaction& tx) -> absl::Status {
    outcome = absl::OkStatus();  // the store may run this more than once
    SY_ASSIGN_OR_RETURN(Located found, Locate(tx, name, scope));
    ReservationRow& r = found.reservation;
    if (r.state == target) {  // a repeat of a call that succeeded
      result = r;
      return absl::OkStatus();
    }
    if (r.state == CreditReservation::PENDING && r.expire_time <= now) {
      SY_RETURN_IF_ERROR(ReleaseInTx(tx, found.tenant, r, CreditReservation::EXPIRED, now, cause));
      outcome = NotPending(r);
      return absl::OkStatus();
    }
    SY_RETURN_IF_ERROR(target == CreditReservation::COMMITTED
                           ? CommitInTx(tx, found.tenant, r, now, cause)
                           : ReleaseInTx(tx, found.tenant, r, target, now, cause));
    result = r;
    return absl::OkStatus();
  }));
  SY_RETURN_IF_ERROR(outcome);
  return ToProto(result, now);
}

// --- Journal --------------------------------------------------------------------------

absl::StatusOr<v1::ListLedgerEntriesResponse> CreditLedger::ListEntries(
    const v1::ListLedgerEntriesRequest& req) {
  SY_ASSIGN_OR_RETURN(std::vector<std::string> pool_ids,
                      ParseName("parent", req.parent(), {"creditPools"}));
  std::string tenant_id;
  if (!req.tenant().empty()) {
    SY_ASSIGN_OR_RETURN(std::vector<std::string> t, ParseName("tenant", req.tenant(), {"tenants"}));
    tenant_id = t[0];
  }
  SY_ASSIGN_OR_RETURN(int page_size, NormalizePageSize(req.page_size()));
  const std::string query = absl::StrCat("ListLedgerEntries|", req.parent(), "|", req.tenant());
  SY_ASSIGN_OR_RETURN(std::string after, DecodePageToken(req.page_token(), query));
  int64_t after_sequence = 0;
  if (!after.empty() && (!absl::SimpleAtoi(after, &after_sequence) || after_sequence < 0)) {
    return InvalidArgument("INVALID_PAGE_TOKEN", "page_token is malformed");
  }
  std::vector<storage::JournalRow> rows;
  SY_RETURN_IF_ERROR(store_.Read([&](Transaction& tx) -> absl::Status {
    SY_ASSIGN_OR_RETURN(std::optional<PoolRow> pool, tx.GetPool(pool_ids[0]));
    if (!pool.has_value()) return PoolNotFound(pool_ids[0]);
    SY_ASSIGN_OR_RETURN(rows,
                        tx.ListJournal(pool_ids[0], tenant_id, after_sequence, page_size + 1));
    return absl::OkStatus();
  }));
  v1::ListLedgerEntriesResponse response;
  for (size_t i = 0; i < rows.size() && i < static_cast<size_t>(page_size); ++i) {
    const storage::JournalRow& row = rows[i];
    LedgerEntry* e = response.add_entries();
    e->set_name(absl::StrCat(req.parent(), "/ledgerEntries/", row.sequence));
    e->set_sequence(row.sequence);
    e->set_kind(static_cast<LedgerEntry::Kind>(row.kind));
    e->set_amount(row.amount);
    switchyard::ToProto(row.time, e->mutable_time());
    e->set_credit_pool(req.parent());
    if (!row.tenant_id.empty()) e->set_tenant(absl::StrCat("tenants/", row.tenant_id));
    if (!row.connection_id.empty()) {
      e->set_connection(
          absl::StrCat("tenants/", row.tenant_id, "/connections/", row.connection_id));
    }
    if (!row.reservation_id.empty()) {
      e->set_credit_reservation(
          absl::StrCat("tenants/", row.tenant_id, "/creditReservations/", row.reservation_id));
    }
    e->set_request_id(row.request_id);
    e->set_capacity_after(row.capacity_after);
    e->set_reserved_after(row.reserved_after);
    e->set_consumed_after(row.consumed_after);
  }
  if (rows.size() > static_cast<size_t>(page_size)) {
    response.set_next_page_token(
        EncodePageToken(query, absl::StrCat(rows[page_size - 1].sequence)));
  }
  return response;
}

}  // namespace switchyard::credits
