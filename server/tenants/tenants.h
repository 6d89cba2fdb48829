#ifndef SWITCHYARD_SERVER_TENANTS_TENANTS_H_
#define SWITCHYARD_SERVER_TENANTS_TENANTS_H_

// Tenants: the customers whose systems the gateway connects. Each draws
// credits from one pool, optionally capped by its own credit limit.

#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/common/clock.h"
#include "server/connections/connections.h"
#include "server/credits/ledger.h"
#include "server/storage/store.h"
#include "switchyard/v1/gateway.pb.h"

namespace switchyard::tenants {

// Thread-safe. Borrows its dependencies, which must outlive it.
class TenantRegistry {
 public:
  TenantRegistry(storage::Store& store, credits::CreditLedger& ledger,
                 connections::ConnectionManager& connections, auth::ApiKeyManager& keys,
                 vault::CredentialVault& vault, Clock& clock)
      : store_(store),
        ledger_(ledger),
        connections_(connections),
        keys_(keys),
        vault_(vault),
        clock_(clock) {}

  // NOT_FOUND / POOL_NOT_FOUND for an unknown pool; ALREADY_EXISTS /
  // TENANT_EXISTS when the id is (or was) taken.
  absl::StatusOr<v1::Tenant> Create(const v1::CreateTenantRequest& request);
  // NOT_FOUND for tenants outside `scope`, as for tenants that do not exist.
  absl::StatusOr<v1::Tenant> Get(absl::string_view name, const Scope& scope);
  absl::StatusOr<v1::ListTenantsResponse> List(const v1::ListTenantsRequest& request);
  // A credit limit below what the tenant holds fails with FAILED_PRECONDITION /
  // CREDIT_LIMIT_BELOW_USAGE.
  absl::StatusOr<v1::Tenant> Update(const v1::UpdateTenantRequest& request);
  // See DeleteTenant in gateway.proto. Also revokes every key and token of
  // the tenant and destroys its data keys, so its secrets are unrecoverable.
  absl::Status Delete(const v1::DeleteTenantRequest& request);

  static v1::Tenant ToProto(const storage::TenantRow& row);

 private:
  storage::Store& store_;
  credits::CreditLedger& ledger_;
  connections::ConnectionManager& connections_;
  auth::ApiKeyManager& keys_;
  vault::CredentialVault& vault_;
  Clock& clock_;
};

}  // namespace switchyard::tenants

#endif  // SWITCHYARD_SERVER_TENANTS_TENANTS_H_
