#include "server/api/grpc/gateway_service.h"

#include "server/api/grpc/status_mapping.h"

namespace switchyard::api {
namespace {
// Copies a domain result into the response, or maps its error.
template <typename T>
grpc::Status Reply(absl::StatusOr<T> result, T* response) {
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = *std::move(result);
  return grpc::Status::OK;
}
}  // namespace

using grpc::ServerContext;
using grpc::Status;

Status GatewayService::CreateTenant(ServerContext*, const v1::CreateTenantRequest* req,
                                    v1::Tenant* resp) {
  return Reply(tenants_.Create(*req), resp);
}
Status GatewayService::GetTenant(ServerContext*, const v1::GetTenantRequest* req,
                                 v1::Tenant* resp) {
  return Reply(tenants_.Get(req->name()), resp);
}
Status GatewayService::ListTenants(ServerContext*, const v1::ListTenantsRequest* req,
                                   v1::ListTenantsResponse* resp) {
  return Reply(tenants_.List(*req), resp);
}
Status GatewayService::UpdateTenant(ServerContext*, const v1::UpdateTenantRequest* req,
                                    v1::Tenant* resp) {
  return Reply(tenants_.Update(*req), resp);
}
Status GatewayService::DeleteTenant(ServerContext*, const v1::DeleteTenantRequest* req,
                                    google::protobuf::Empty*) {
  return ToGrpcStatus(tenants_.Delete(*req));
}

Status GatewayService::ListSystems(ServerContext*, const v1::ListSystemsRequest* req,
                                   v1::ListSystemsResponse* resp) {
  return Reply(catalog_.List(*req), resp);
}
Status GatewayService::GetSystem(ServerContext*, const v1::GetSystemRequest* req,
                                 v1::System* resp) {
  return Reply(catalog_.Get(req->name()), resp);
}

Status GatewayService::CreateCreditPool(ServerContext*, const v1::CreateCreditPoolRequest* req,
                                        v1::CreditPool* resp) {
  return Reply(ledger_.CreatePool(*req), resp);
}
Status GatewayService::GetCreditPool(ServerContext*, const v1::GetCreditPoolRequest* req,
                                     v1::CreditPool* resp) {
  return Reply(ledger_.GetPool(req->name()), resp);
}
Status GatewayService::ListCreditPools(ServerContext*, const v1::ListCreditPoolsRequest* req,
                                       v1::ListCreditPoolsResponse* resp) {
  return Reply(ledger_.ListPools(*req), resp);
}
Status GatewayService::SetCreditPoolCapacity(ServerContext*,
                                             const v1::SetCreditPoolCapacityRequest* req,
                                             v1::CreditPool* resp) {
  return Reply(ledger_.SetCapacity(*req), resp);
}

Status GatewayService::ReserveCredits(ServerContext*, const v1::ReserveCreditsRequest* req,
                                      v1::CreditReservation* resp) {
  return Reply(ledger_.Reserve(*req), resp);
}
Status GatewayService::GetCreditReservation(ServerContext*,
                                            const v1::GetCreditReservationRequest* req,
                                            v1::CreditReservation* resp) {
  return Reply(ledger_.GetReservation(req->name()), resp);
}
Status GatewayService::ListCreditReservations(ServerContext*,
                                              const v1::ListCreditReservationsRequest* req,
                                              v1::ListCreditReservationsResponse* resp) {
  return Reply(ledger_.ListReservations(*req), resp);
}
Status GatewayService::CommitCreditReservation(ServerContext*,
                                               const v1::CommitCreditReservationRequest* req,
                                               v1::CreditReservation* resp) {
  return Reply(ledger_.Commit(*req), resp);
}
Status GatewayService::ReleaseCreditReservation(ServerContext*,
                                                const v1::ReleaseCreditReservationRequest* req,
                                                v1::CreditReservation* resp) {
  return Reply(ledger_.Release(*req), resp);
}

Status GatewayService::CreateConnection(ServerContext*, const v1::CreateConnectionRequest* req,
                                        v1::Connection* resp) {
  return Reply(connections_.Create(*req), resp);
}
Status GatewayService::GetConnection(ServerContext*, const v1::GetConnectionRequest* req,
                                     v1::Connection* resp) {
  return Reply(connections_.Get(req->name()), resp);
}
Status GatewayService::ListConnections(ServerContext*, const v1::ListConnectionsRequest* req,
                                       v1::ListConnectionsResponse* resp) {
  return Reply(connections_.List(*req), resp);
}
Status GatewayService::UpdateConnection(ServerContext*, const v1::UpdateConnectionRequest* req,
                                        v1::Connection* resp) {
  return Reply(connections_.Update(*req), resp);
}
Status GatewayService::ActivateConnection(ServerContext*, const v1::ActivateConnectionRequest* req,
                                          v1::Connection* resp) {
  return Reply(connections_.SetState(req->name(), v1::Connection::ACTIVE), resp);
}
Status GatewayService::DeactivateConnection(ServerContext*,
                                            const v1::DeactivateConnectionRequest* req,
                                            v1::Connection* resp) {
  return Reply(connections_.SetState(req->name(), v1::Connection::INACTIVE), resp);
}
Status GatewayService::DeleteConnection(ServerContext*, const v1::DeleteConnectionRequest* req,
                                        v1::Connection* resp) {
  return Reply(connections_.Disconnect(*req), resp);
}

Status GatewayService::ListLedgerEntries(ServerContext*, const v1::ListLedgerEntriesRequest* req,
                                         v1::ListLedgerEntriesResponse* resp) {
  return Reply(ledger_.ListEntries(*req), resp);
}

}  // namespace switchyard::api
