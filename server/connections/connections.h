#ifndef SWITCHYARD_SERVER_CONNECTIONS_CONNECTIONS_H_
#define SWITCHYARD_SERVER_CONNECTIONS_CONNECTIONS_H_

// Connections of tenants to external systems, and what they cost.
//
// State machine (see Connection.State in gateway.proto):
//   PENDING  -> ACTIVE | INACTIVE | ERROR | DISCONNECTED
//   ACTIVE   -> INACTIVE | ERROR | DISCONNECTED
//   INACTIVE -> ACTIVE | DISCONNECTED
//   ERROR    -> ACTIVE | INACTIVE | DISCONNECTED
// Connecting consumes the system's credits; disconnecting returns them, once.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/auth/api_keys.h"
#include "server/catalog/catalog.h"
#include "server/common/clock.h"
#include "server/common/scope.h"
#include "server/credits/ledger.h"
#include "server/storage/store.h"
#include "server/vault/vault.h"
#include "switchyard/v1/gateway.pb.h"

namespace switchyard::connections {

// Thread-safe. Borrows its dependencies, which must outlive it.
class ConnectionManager {
 public:
  ConnectionManager(storage::Store& store, const catalog::SystemCatalog& catalog,
                    credits::CreditLedger& ledger, auth::ApiKeyManager& keys,
                    vault::CredentialVault& vault, Clock& clock)
      : store_(store),
        catalog_(catalog),
        ledger_(ledger),
        keys_(keys),
        vault_(vault),
        clock_(clock) {}

  // NOT_FOUND for an unknown tenant, system or reservation; ALREADY_EXISTS /
  // CONNECTION_EXISTS; RESOURCE_EXHAUSTED when credits run out;
  // FAILED_PRECONDITION for an unusable reservation or unsupported deployment.
  // Connections outside `scope` behave as if they did not exist.
  absl::StatusOr<v1::Connection> Create(const v1::CreateConnectionRequest& request,
                                        const Scope& scope);
  absl::StatusOr<v1::Connection> Get(absl::string_view name, const Scope& scope);
  absl::StatusOr<v1::ListConnectionsResponse> List(const v1::ListConnectionsRequest& request,
                                                   const Scope& scope);
  // FAILED_PRECONDITION / CONNECTION_DISCONNECTED for disconnected connections.
  absl::StatusOr<v1::Connection> Update(const v1::UpdateConnectionRequest& request,
                                        const Scope& scope);
  // FAILED_PRECONDITION / INVALID_STATE_TRANSITION when not allowed.
  absl::StatusOr<v1::Connection> SetState(absl::string_view name, v1::Connection::State state,
                                          const Scope& scope);
  // Disconnects; repeating it is harmless.
  absl::StatusOr<v1::Connection> Disconnect(const v1::DeleteConnectionRequest& request,
                                            const Scope& scope);

  // Disconnects `connection` of `tenant` inside `tx`: returns its credits,
  // revokes its tokens and forgets its credentials. No-op for a connection
  // that is already disconnected. Returns the ids of the revoked tokens: pass
  // them to ApiKeyManager::Forget once the transaction committed.
  absl::StatusOr<std::vector<std::string>> DisconnectInTx(storage::Transaction& tx,
                                                          storage::TenantRow& tenant,
                                                          storage::ConnectionRow& connection,
                                                          absl::Time now,
                                                          absl::string_view request_id);

  static v1::Connection ToProto(const storage::ConnectionRow& row);

 private:
  storage::Store& store_;
  const catalog::SystemCatalog& catalog_;
  credits::CreditLedger& ledger_;
  auth::ApiKeyManager& keys_;
  vault::CredentialVault& vault_;
  Clock& clock_;
};

}  // namespace switchyard::connections

#endif  // SWITCHYARD_SERVER_CONNECTIONS_CONNECTIONS_H_
