#ifndef SWITCHYARD_SERVER_API_GRPC_GATEWAY_SERVICE_H_
#define SWITCHYARD_SERVER_API_GRPC_GATEWAY_SERVICE_H_

// The switchyard.v1.Gateway gRPC service: a thin adapter that hands each call
// to one domain method and maps its result with ToGrpcStatus.
//
// Uses gRPC's synchronous API: handlers run on gRPC's thread pool and block
// on the store, which is the intended use of that API.

#include "server/catalog/catalog.h"
#include "server/connections/connections.h"
#include "server/credits/ledger.h"
#include "server/tenants/tenants.h"
#include "switchyard/v1/gateway.grpc.pb.h"

namespace switchyard::api {

// Thread-safe. Borrows the domain modules, which must outlive it.
class GatewayService final : public v1::Gateway::Service {
 public:
  GatewayService(tenants::TenantRegistry& tenants, const catalog::SystemCatalog& catalog,
                 credits::CreditLedger& ledger, connections::ConnectionManager& connections)
      : tenants_(tenants), catalog_(catalog), ledger_(ledger), connections_(connections) {}

  grpc::Status CreateTenant(grpc::ServerContext*, const v1::CreateTenantRequest*,
                            v1::Tenant*) override;
  grpc::Status GetTenant(grpc::ServerContext*, const v1::GetTenantRequest*, v1::Tenant*) override;
  grpc::Status ListTenants(grpc::ServerContext*, const v1::ListTenantsRequest*,
                           v1::ListTenantsResponse*) override;
  grpc::Status UpdateTenant(grpc::ServerContext*, const v1::UpdateTenantRequest*,
                            v1::Tenant*) override;
  grpc::Status DeleteTenant(grpc::ServerContext*, const v1::DeleteTenantRequest*,
                            google::protobuf::Empty*) override;

  grpc::Status ListSystems(grpc::ServerContext*, const v1::ListSystemsRequest*,
                           v1::ListSystemsResponse*) override;
  grpc::Status GetSystem(grpc::ServerContext*, const v1::GetSystemRequest*, v1::System*) override;

  grpc::Status CreateCreditPool(grpc::ServerContext*, const v1::CreateCreditPoolRequest*,
                                v1::CreditPool*) override;
  grpc::Status GetCreditPool(grpc::ServerContext*, const v1::GetCreditPoolRequest*,
                             v1::CreditPool*) override;
  grpc::Status ListCreditPools(grpc::ServerContext*, const v1::ListCreditPoolsRequest*,
                               v1::ListCreditPoolsResponse*) override;
  grpc::Status SetCreditPoolCapacity(grpc::ServerContext*, const v1::SetCreditPoolCapacityRequest*,
                                     v1::CreditPool*) override;

  grpc::Status ReserveCredits(grpc::ServerContext*, const v1::ReserveCreditsRequest*,
                              v1::CreditReservation*) override;
  grpc::Status GetCreditReservation(grpc::ServerContext*, const v1::GetCreditReservationRequest*,
                                    v1::CreditReservation*) override;
  grpc::Status ListCreditReservations(grpc::ServerContext*,
                                      const v1::ListCreditReservationsRequest*,
                                      v1::ListCreditReservationsResponse*) override;
  grpc::Status CommitCreditReservation(grpc::ServerContext*,
                                       const v1::CommitCreditReservationRequest*,
                                       v1::CreditReservation*) override;
  grpc::Status ReleaseCreditReservation(grpc::ServerContext*,
                                        const v1::ReleaseCreditReservationRequest*,
                                        v1::CreditReservation*) override;

  grpc::Status CreateConnection(grpc::ServerContext*, const v1::CreateConnectionRequest*,
                                v1::Connection*) override;
  grpc::Status GetConnection(grpc::ServerContext*, const v1::GetConnectionRequest*,
                             v1::Connection*) override;
  grpc::Status ListConnections(grpc::ServerContext*, const v1::ListConnectionsRequest*,
                               v1::ListConnectionsResponse*) override;
  grpc::Status UpdateConnection(grpc::ServerContext*, const v1::UpdateConnectionRequest*,
                                v1::Connection*) override;
  grpc::Status ActivateConnection(grpc::ServerContext*, const v1::ActivateConnectionRequest*,
                                  v1::Connection*) override;
  grpc::Status DeactivateConnection(grpc::ServerContext*, const v1::DeactivateConnectionRequest*,
                                    v1::Connection*) override;
  grpc::Status DeleteConnection(grpc::ServerContext*, const v1::DeleteConnectionRequest*,
                                v1::Connection*) override;

  grpc::Status ListLedgerEntries(grpc::ServerContext*, const v1::ListLedgerEntriesRequest*,
                                 v1::ListLedgerEntriesResponse*) override;

 private:
  tenants::TenantRegistry& tenants_;
  const catalog::SystemCatalog& catalog_;
  credits::CreditLedger& ledger_;
  connections::ConnectionManager& connections_;
};

}  // namespace switchyard::api

#endif  // SWITCHYARD_SERVER_API_GRPC_GATEWAY_SERVICE_H_
