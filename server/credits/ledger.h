#ifndef SWITCHYARD_SERVER_CREDITS_LEDGER_H_
#define SWITCHYARD_SERVER_CREDITS_LEDGER_H_

// The connection-credit ledger: pools, two-phase reservations and the journal
// of every credit movement.
//
// Invariants, kept inside every store transaction:
//   pool.capacity = available + pool.reserved + pool.consumed, available >= 0
//   pool.reserved = sum of its PENDING reservations
//   tenant.reserved + tenant.consumed <= tenant.credit_limit (when set)
//   replaying the pool's journal from zero yields its balances.
// A reservation leaves PENDING exactly once (commit, release or expiry): each
// transition happens in a store transaction that first re-reads its state.

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/common/clock.h"
#include "server/common/scope.h"
#include "server/storage/store.h"
#include "switchyard/v1/gateway.pb.h"

namespace switchyard::credits {

struct LedgerOptions {
  // TTL of a reservation made without one. Default 10 minutes.
  absl::Duration default_ttl = absl::Minutes(10);
  // Longest TTL accepted. Default 7 days.
  absl::Duration max_ttl = absl::Hours(24 * 7);
  // Largest amount one reservation may hold. Default 1,000,000.
  int64_t max_amount = 1000000;
  // Largest pool capacity. Default 1e12.
  int64_t max_capacity = 1000000000000;
};

// Who and what caused a credit movement, for the journal.
struct Cause {
  std::string request_id;
  std::string connection_id;
};

// The tenant `tenant_id`, or NOT_FOUND / TENANT_NOT_FOUND when it does not
// exist, was deleted, or lies outside `scope` (indistinguishably).
absl::StatusOr<storage::TenantRow> LoadTenant(storage::Transaction& tx, absl::string_view tenant_id,
                                              const Scope& scope);

// Thread-safe. Borrows `store` and `clock`, which must outlive it.
class CreditLedger {
 public:
  static absl::StatusOr<std::unique_ptr<CreditLedger>> Create(const LedgerOptions& options,
                                                              storage::Store& store, Clock& clock);

  // --- Pools ----------------------------------------------------------------
  // INVALID_ARGUMENT for a bad id or capacity; ALREADY_EXISTS / POOL_EXISTS.
  absl::StatusOr<v1::CreditPool> CreatePool(const v1::CreateCreditPoolRequest& request);
  // NOT_FOUND / POOL_NOT_FOUND.
  absl::StatusOr<v1::CreditPool> GetPool(absl::string_view name);
  absl::StatusOr<v1::ListCreditPoolsResponse> ListPools(const v1::ListCreditPoolsRequest& request);
  // FAILED_PRECONDITION / CAPACITY_BELOW_USAGE when below reserved + consumed.
  absl::StatusOr<v1::CreditPool> SetCapacity(const v1::SetCreditPoolCapacityRequest& request);

  // --- Reservations -----------------------------------------------------------
  // Reservations outside `scope` behave as if they did not exist.
  // RESOURCE_EXHAUSTED / CREDITS_EXHAUSTED (pool) or TENANT_CREDIT_LIMIT.
  absl::StatusOr<v1::CreditReservation> Reserve(const v1::ReserveCreditsRequest& request,
                                                const Scope& scope);
  absl::StatusOr<v1::CreditReservation> GetReservation(absl::string_view name, const Scope& scope);
  absl::StatusOr<v1::ListCreditReservationsResponse> ListReservations(
      const v1::ListCreditReservationsRequest& request, const Scope& scope);
  absl::StatusOr<v1::CreditReservation> Commit(const v1::CommitCreditReservationRequest& request,
                                               const Scope& scope);
  absl::StatusOr<v1::CreditReservation> Release(const v1::ReleaseCreditReservationRequest& request,
                                                const Scope& scope);

  // Expires every PENDING reservation whose expire_time has passed; returns
  // how many. Called periodically by the server.
  absl::StatusOr<int> ExpireDue();

  // --- Journal --------------------------------------------------------------
  absl::StatusOr<v1::ListLedgerEntriesResponse> ListEntries(
      const v1::ListLedgerEntriesRequest& request);

  // --- Steps for other modules' transactions ----------------------------------
  // Each updates the affected pool, `tenant` (in the store and in place) and
  // appends to the journal. Errors leave the transaction to be rolled back.

  // Reserves `amount` for `tenant` after expiring the pool's due reservations.
  absl::StatusOr<storage::ReservationRow> ReserveInTx(storage::Transaction& tx,
                                                      storage::TenantRow& tenant,
                                                      absl::string_view reservation_id,
                                                      int64_t amount, absl::Duration ttl,
                                                      absl::Time now, const Cause& cause);
  // PENDING -> COMMITTED. `reservation` is updated in place and stored.
  absl::Status CommitInTx(storage::Transaction& tx, storage::TenantRow& tenant,
                          storage::ReservationRow& reservation, absl::Time now, const Cause& cause);
  // PENDING -> RELEASED or EXPIRED (`state`).
  absl::Status ReleaseInTx(storage::Transaction& tx, storage::TenantRow& tenant,
                           storage::ReservationRow& reservation, int state, absl::Time now,
                           const Cause& cause);
  // Expires every reservation of `pool_id` ("" any) due at `now`, so that
  // what pools and tenants hold counts none of them; returns how many.
  absl::StatusOr<int> ExpireAllDueInTx(storage::Transaction& tx, absl::string_view pool_id,
                                       absl::Time now);
  // Returns `amount` consumed credits of `tenant` to its pool
  // (DISCONNECT_RETURN), attributed to `reservation_id`.
  absl::Status ReturnInTx(storage::Transaction& tx, storage::TenantRow& tenant, int64_t amount,
                          absl::string_view reservation_id, absl::Time now, const Cause& cause);

  // A resource view of `row` as of `now` (a PENDING reservation past its
  // expiry shows as EXPIRED).
  static v1::CreditReservation ToProto(const storage::ReservationRow& row, absl::Time now);
  static v1::CreditPool ToProto(const storage::PoolRow& row);

 private:
  CreditLedger(const LedgerOptions& options, storage::Store& store, Clock& clock)
      : options_(options), store_(store), clock_(clock) {}

  // Commit (`target` COMMITTED) or Release (`target` RELEASED).
  absl::StatusOr<v1::CreditReservation> Resolve(absl::string_view name,
                                                absl::string_view request_id, const Scope& scope,
                                                v1::CreditReservation::State target);
  // Expires up to 1000 reservations of `pool_id` ("" any) due at `now`;
  // returns how many.
  absl::StatusOr<int> ExpireDueInTx(storage::Transaction& tx, absl::string_view pool_id,
                                    absl::Time now);
  // Loads the pool of `tenant`; a missing pool is a broken invariant.
  absl::StatusOr<storage::PoolRow> LoadPoolOf(storage::Transaction& tx,
                                              const storage::TenantRow& tenant);
  // Stores `pool` and `tenant` and journals the movement.
  absl::Status Record(storage::Transaction& tx, storage::PoolRow& pool, storage::TenantRow& tenant,
                      v1::LedgerEntry::Kind kind, int64_t amount, absl::string_view reservation_id,
                      absl::Time now, const Cause& cause);
  // Resolves a reservation name to its row; NOT_FOUND / RESERVATION_NOT_FOUND.
  struct Located {
    storage::TenantRow tenant;
    storage::ReservationRow reservation;
  };
  absl::StatusOr<Located> Locate(storage::Transaction& tx, absl::string_view name,
                                 const Scope& scope);
  absl::Status ValidateTtl(absl::Duration ttl) const;

  const LedgerOptions options_;
  storage::Store& store_;
  Clock& clock_;
};

}  // namespace switchyard::credits

#endif  // SWITCHYARD_SERVER_CREDITS_LEDGER_H_
