#include "server/api/grpc/gateway_service.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "server/api/grpc/event_stream.h"
#include "server/api/grpc/status_mapping.h"
#include "server/common/status.h"

namespace switchyard::api {
namespace {
// Copies a domain result into the response, or maps its error.
template <typename T>
grpc::Status Reply(absl::StatusOr<T> result, T* response) {
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = *std::move(result);
  return grpc::Status::OK;
}

absl::StatusOr<google::protobuf::Empty> Empty(const absl::Status& status) {
  if (!status.ok()) return status;
  return google::protobuf::Empty();
}

const char* KindName(auth::TokenKind kind) {
  switch (kind) {
    case auth::TokenKind::kOperator:
      return "operator keys";
    case auth::TokenKind::kTenant:
      return "tenant keys";
    case auth::TokenKind::kConnection:
      return "connection tokens";
  }
  return "this credential";
}
}  // namespace

using grpc::ServerContext;
using grpc::Status;

std::optional<std::string> GatewayService::AuthorizationOf(grpc::ServerContextBase* context) {
  const auto& metadata = context->client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) return std::nullopt;
  return std::string(it->second.data(), it->second.size());
}

absl::StatusOr<auth::Principal> GatewayService::Authorize(grpc::ServerContextBase* context,
                                                          int callers) {
  return AuthorizeHeader(AuthorizationOf(context), callers);
}

absl::StatusOr<auth::Principal> GatewayService::AuthorizeHeader(
    const std::optional<std::string>& header, int callers) {
  absl::string_view token;
  if (header.has_value()) {
    absl::string_view value(*header);
    if (value.size() < 7 || !absl::EqualsIgnoreCase(value.substr(0, 7), "Bearer ")) {
      return Error(absl::StatusCode::kUnauthenticated, "MALFORMED_CREDENTIAL",
                   "authorization metadata must be 'Bearer <key or token>'");
    }
    token = absl::StripAsciiWhitespace(value.substr(7));
  }
  if (token.empty() && !header.has_value() && (callers & kAnonymous) != 0) {
    return auth::Principal::Anonymous();
  }
  SY_ASSIGN_OR_RETURN(auth::Principal principal, keys_.Authenticate(token));
  const int kind_bit = principal.kind == auth::TokenKind::kOperator ? kOperator
                       : principal.kind == auth::TokenKind::kTenant ? kTenant
                                                                    : kConnection;
  if ((callers & kind_bit) == 0) {
    return Error(absl::StatusCode::kPermissionDenied, "PERMISSION_DENIED",
                 std::string("this call is not available to ") + KindName(principal.kind));
  }
  return principal;
}

Status GatewayService::CreateTenant(ServerContext* context, const v1::CreateTenantRequest* req,
                                    v1::Tenant* resp) {
  auto p = Authorize(context, kOperator);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(tenants_.Create(*req), resp);
}

Status GatewayService::GetTenant(ServerContext* context, const v1::GetTenantRequest* req,
                                 v1::Tenant* resp) {
  auto p = Authorize(context, kOperator | kTenant);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(tenants_.Get(req->name(), p->scope()), resp);
}

Status GatewayService::ListTenants(ServerContext* context, const v1::ListTenantsRequest* req,
                                   v1::ListTenantsResponse* resp) {
  auto p = Authorize(context, kOperator);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(tenants_.List(*req), resp);
}

Status GatewayService::UpdateTenant(ServerContext* context, const v1::UpdateTenantRequest* req,
                                    v1::Tenant* resp) {
  auto p = Authorize(context, kOperator);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(tenants_.Update(*req), resp);
}

Status GatewayService::DeleteTenant(ServerContext* context, const v1::DeleteTenantRequest* req,
                                    google::protobuf::Empty* resp) {
  auto p = Authorize(context, kOperator);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(Empty(tenants_.Delete(*req)), resp);
}

Status GatewayService::ListSystems(ServerContext* context, const v1::ListSystemsRequest* req,
                                   v1::ListSystemsResponse* resp) {
  auto p = Authorize(context, kAnyCaller | kAnonymous);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(catalog_.List(*req), resp);
}

Status GatewayService::GetSystem(ServerContext* context, const v1::GetSystemRequest* req,
                                 v1::System* resp) {
  auto p = Authorize(context, kAnyCaller | kAnonymous);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(catalog_.Get(req->name()), resp);
}

Status GatewayService::CreateCreditPool(ServerContext* context,
                                        const v1::CreateCreditPoolRequest* req,
                                        v1::CreditPool* resp) {
  auto p = Authorize(context, kOperator);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(ledger_.CreatePool(*req), resp);
}

Status GatewayService::GetCreditPool(ServerContext* context, const v1::GetCreditPoolRequest* req,
                                     v1::CreditPool* resp) {
  auto p = Authorize(context, kOperator);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(ledger_.GetPool(req->name()), resp);
}

Status GatewayService::ListCreditPools(ServerContext* context,
                                       const v1::ListCreditPoolsRequest* req,
                                       v1::ListCreditPoolsResponse* resp) {
  auto p = Authorize(context, kOperator);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(ledger_.ListPools(*req), resp);
}

Status GatewayService::SetCreditPoolCapacity(ServerContext* context,
                                             const v1::SetCreditPoolCapacityRequest* req,
                                             v1::CreditPool* resp) {
  auto p = Authorize(context, kOperator);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(ledger_.SetCapacity(*req), resp);
}

Status GatewayService::ReserveCredits(ServerContext* context, const v1::ReserveCreditsRequest* req,
                                      v1::CreditReservation* resp) {
  auto p = Authorize(context, kOperator | kTenant);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(ledger_.Reserve(*req, p->scope()), resp);
}

Status GatewayService::GetCreditReservation(ServerContext* context,
                                            const v1::GetCreditReservationRequest* req,
                                            v1::CreditReservation* resp) {
  auto p = Authorize(context, kOperator | kTenant);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(ledger_.GetReservation(req->name(), p->scope()), resp);
}

Status GatewayService::ListCreditReservations(ServerContext* context,
                                              const v1::ListCreditReservationsRequest* req,
                                              v1::ListCreditReservationsResponse* resp) {
  auto p = Authorize(context, kOperator | kTenant);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(ledger_.ListReservations(*req, p->scope()), resp);
}

Status GatewayService::CommitCreditReservation(ServerContext* context,
                                               const v1::CommitCreditReservationRequest* req,
                                               v1::CreditReservation* resp) {
  auto p = Authorize(context, kOperator | kTenant);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(ledger_.Commit(*req, p->scope()), resp);
}

Status GatewayService::ReleaseCreditReservation(ServerContext* context,
                                                const v1::ReleaseCreditReservationRequest* req,
                                                v1::CreditReservation* resp) {
  auto p = Authorize(context, kOperator | kTenant);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(ledger_.Release(*req, p->scope()), resp);
}

Status GatewayService::CreateConnection(ServerContext* context,
                                        const v1::CreateConnectionRequest* req,
                                        v1::Connection* resp) {
  auto p = Authorize(context, kOperator | kTenant);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(connections_.Create(*req, p->scope()), resp);
}

Status GatewayService::GetConnection(ServerContext* context, const v1::GetConnectionRequest* req,
                                     v1::Connection* resp) {
  auto p = Authorize(context, kAnyCaller);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(connections_.Get(req->name(), p->scope()), resp);
}

Status GatewayService::ListConnections(ServerContext* context,
                                       const v1::ListConnectionsRequest* req,
                                       v1::ListConnectionsResponse* resp) {
  auto p = Authorize(context, kOperator | kTenant);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(connections_.List(*req, p->scope()), resp);
}

Status GatewayService::UpdateConnection(ServerContext* context,
                                        const v1::UpdateConnectionRequest* req,
                                        v1::Connection* resp) {
  auto p = Authorize(context, kOperator | kTenant);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(connections_.Update(*req, p->scope()), resp);
}

Status GatewayService::ActivateConnection(ServerContext* context,
                                          const v1::ActivateConnectionRequest* req,
                                          v1::Connection* resp) {
  auto p = Authorize(context, kOperator | kTenant);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(connections_.SetState(req->name(), v1::Connection::ACTIVE, p->scope()), resp);
}

Status GatewayService::DeactivateConnection(ServerContext* context,
                                            const v1::DeactivateConnectionRequest* req,
                                            v1::Connection* resp) {
  auto p = Authorize(context, kOperator | kTenant);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(connections_.SetState(req->name(), v1::Connection::INACTIVE, p->scope()), resp);
}

Status GatewayService::DeleteConnection(ServerContext* context,
                                        const v1::DeleteConnectionRequest* req,
                                        v1::Connection* resp) {
  auto p = Authorize(context, kOperator | kTenant);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(connections_.Disconnect(*req, p->scope()), resp);
}

Status GatewayService::ListLedgerEntries(ServerContext* context,
                                         const v1::ListLedgerEntriesRequest* req,
                                         v1::ListLedgerEntriesResponse* resp) {
  auto p = Authorize(context, kOperator);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(ledger_.ListEntries(*req), resp);
}

Status GatewayService::CreateApiKey(ServerContext* context, const v1::CreateApiKeyRequest* req,
                                    v1::CreateApiKeyResponse* resp) {
  auto p = Authorize(context, kOperator);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(keys_.Create(*req, p->scope()), resp);
}

Status GatewayService::ListApiKeys(ServerContext* context, const v1::ListApiKeysRequest* req,
                                   v1::ListApiKeysResponse* resp) {
  auto p = Authorize(context, kOperator | kTenant);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(keys_.List(*req, p->scope()), resp);
}

Status GatewayService::RotateApiKey(ServerContext* context, const v1::RotateApiKeyRequest* req,
                                    v1::CreateApiKeyResponse* resp) {
  auto p = Authorize(context, kOperator | kTenant);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(keys_.Rotate(*req, p->scope()), resp);
}

Status GatewayService::RevokeApiKey(ServerContext* context, const v1::RevokeApiKeyRequest* req,
                                    v1::ApiKey* resp) {
  auto p = Authorize(context, kOperator | kTenant);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(keys_.Revoke(*req, p->scope()), resp);
}

Status GatewayService::SetConnectionCredentials(ServerContext* context,
                                                const v1::SetConnectionCredentialsRequest* req,
                                                v1::ConnectionCredentials* resp) {
  auto p = Authorize(context, kOperator | kTenant);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(vault_.Set(*req, p->scope()), resp);
}

Status GatewayService::GetConnectionCredentials(ServerContext* context,
                                                const v1::GetConnectionCredentialsRequest* req,
                                                v1::ConnectionCredentials* resp) {
  auto p = Authorize(context, kOperator | kTenant);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(vault_.Get(*req, p->scope(), p->can_reveal_credentials()), resp);
}

Status GatewayService::DeleteConnectionCredentials(
    ServerContext* context, const v1::DeleteConnectionCredentialsRequest* req,
    google::protobuf::Empty* resp) {
  auto p = Authorize(context, kOperator | kTenant);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(Empty(vault_.Delete(*req, p->scope())), resp);
}

Status GatewayService::RotateTenantDataKey(ServerContext* context,
                                           const v1::RotateTenantDataKeyRequest* req,
                                           v1::RotateTenantDataKeyResponse* resp) {
  auto p = Authorize(context, kOperator);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(vault_.RotateTenantKey(*req), resp);
}

Status GatewayService::RewrapDataKeys(ServerContext* context, const v1::RewrapDataKeysRequest* req,
                                      v1::RewrapDataKeysResponse* resp) {
  auto p = Authorize(context, kOperator);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(vault_.RewrapDataKeys(), resp);
}

Status GatewayService::RotateWebhookSecret(ServerContext* context,
                                           const v1::RotateWebhookSecretRequest* req,
                                           v1::WebhookSecret* resp) {
  auto p = Authorize(context, kOperator | kTenant);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(vault_.RotateWebhookSecret(*req, p->scope(), p->can_reveal_credentials()), resp);
}

Status GatewayService::GetWebhookSecret(ServerContext* context,
                                        const v1::GetWebhookSecretRequest* req,
                                        v1::WebhookSecret* resp) {
  auto p = Authorize(context, kOperator | kTenant);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(vault_.GetWebhookSecret(*req, p->scope(), p->can_reveal_credentials()), resp);
}

Status GatewayService::RevokeWebhookSecret(ServerContext* context,
                                           const v1::RevokeWebhookSecretRequest* req,
                                           google::protobuf::Empty* resp) {
  auto p = Authorize(context, kOperator | kTenant);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(Empty(vault_.RevokeWebhookSecret(*req, p->scope())), resp);
}

Status GatewayService::ListEvents(ServerContext* context, const v1::ListEventsRequest* req,
                                  v1::ListEventsResponse* resp) {
  auto p = Authorize(context, kAnyCaller);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(events_.List(*req, p->scope()), resp);
}

Status GatewayService::PublishEvents(ServerContext* context, const v1::PublishEventsRequest* req,
                                     v1::PublishEventsResponse* resp) {
  auto p = Authorize(context, kAnyCaller);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(events_.Publish(*req, p->scope(), absl::Now()), resp);
}

Status GatewayService::CreateSubscription(ServerContext* context,
                                          const v1::CreateSubscriptionRequest* req,
                                          v1::Subscription* resp) {
  auto p = Authorize(context, kOperator | kTenant);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(subscriptions_.Create(*req, p->scope()), resp);
}

Status GatewayService::GetSubscription(ServerContext* context,
                                       const v1::GetSubscriptionRequest* req,
                                       v1::Subscription* resp) {
  auto p = Authorize(context, kOperator | kTenant);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(subscriptions_.Get(req->name(), p->scope()), resp);
}

Status GatewayService::ListSubscriptions(ServerContext* context,
                                         const v1::ListSubscriptionsRequest* req,
                                         v1::ListSubscriptionsResponse* resp) {
  auto p = Authorize(context, kOperator | kTenant);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(subscriptions_.List(*req, p->scope()), resp);
}

Status GatewayService::DeleteSubscription(ServerContext* context,
                                          const v1::DeleteSubscriptionRequest* req,
                                          google::protobuf::Empty* resp) {
  auto p = Authorize(context, kOperator | kTenant);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(Empty(subscriptions_.Delete(req->name(), p->scope())), resp);
}

Status GatewayService::SeekSubscription(ServerContext* context,
                                        const v1::SeekSubscriptionRequest* req,
                                        v1::SeekSubscriptionResponse* resp) {
  auto p = Authorize(context, kOperator | kTenant);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(subscriptions_.Seek(*req, p->scope()), resp);
}

Status GatewayService::ListDeadLetters(ServerContext* context,
                                       const v1::ListDeadLettersRequest* req,
                                       v1::ListDeadLettersResponse* resp) {
  auto p = Authorize(context, kOperator | kTenant);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(subscriptions_.ListDeadLetters(*req, p->scope()), resp);
}

Status GatewayService::ReplayDeadLetters(ServerContext* context,
                                         const v1::ReplayDeadLettersRequest* req,
                                         v1::ReplayDeadLettersResponse* resp) {
  auto p = Authorize(context, kOperator | kTenant);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(subscriptions_.ReplayDeadLetters(*req, p->scope()), resp);
}

grpc::ServerBidiReactor<v1::StreamEventsRequest, v1::StreamEventsResponse>*
GatewayService::StreamEvents(grpc::CallbackServerContext* context) {
  // Verifying the credential may read the store (a cache miss): it runs on
  // a thread of the delivery engine, never in this reaction.
  return NewEventStream(
      context, delivery_, [this, header = AuthorizationOf(context)]() -> absl::StatusOr<Scope> {
        SY_ASSIGN_OR_RETURN(auth::Principal p, AuthorizeHeader(header, kOperator | kTenant));
        return p.scope();
      });
}

Status GatewayService::SetConnectionHealthCheck(ServerContext* context,
                                                const v1::SetConnectionHealthCheckRequest* req,
                                                v1::ConnectionHealth* resp) {
  auto p = Authorize(context, kOperator | kTenant);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(health_.Set(*req, p->scope()), resp);
}

Status GatewayService::GetConnectionHealth(ServerContext* context,
                                           const v1::GetConnectionHealthRequest* req,
                                           v1::ConnectionHealth* resp) {
  auto p = Authorize(context, kAnyCaller);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(health_.Get(req->name(), p->scope()), resp);
}

Status GatewayService::ListIncidents(ServerContext* context, const v1::ListIncidentsRequest* req,
                                     v1::ListIncidentsResponse* resp) {
  auto p = Authorize(context, kOperator | kTenant);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(incidents_.List(*req, p->scope()), resp);
}

Status GatewayService::GetIncident(ServerContext* context, const v1::GetIncidentRequest* req,
                                   v1::Incident* resp) {
  auto p = Authorize(context, kOperator | kTenant);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(incidents_.Get(req->name(), p->scope()), resp);
}

Status GatewayService::CreateIncident(ServerContext* context, const v1::CreateIncidentRequest* req,
                                      v1::Incident* resp) {
  auto p = Authorize(context, kOperator);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(incidents_.Create(*req, "apiKeys/" + p->key_id), resp);
}

Status GatewayService::AnnotateIncident(ServerContext* context,
                                        const v1::AnnotateIncidentRequest* req,
                                        v1::Incident* resp) {
  auto p = Authorize(context, kOperator);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(incidents_.Annotate(*req, "apiKeys/" + p->key_id), resp);
}

Status GatewayService::ResolveIncident(ServerContext* context,
                                       const v1::ResolveIncidentRequest* req, v1::Incident* resp) {
  auto p = Authorize(context, kOperator);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(incidents_.Resolve(*req, "apiKeys/" + p->key_id), resp);
}

Status GatewayService::SetConnectionChangeFeed(ServerContext* context,
                                               const v1::SetConnectionChangeFeedRequest* req,
                                               v1::ChangeFeed* resp) {
  auto p = Authorize(context, kOperator | kTenant);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(feeds_.Set(*req, p->scope()), resp);
}

Status GatewayService::GetConnectionChangeFeed(ServerContext* context,
                                               const v1::GetConnectionChangeFeedRequest* req,
                                               v1::ChangeFeed* resp) {
  auto p = Authorize(context, kAnyCaller);
  if (!p.ok()) return ToGrpcStatus(p.status());
  return Reply(feeds_.Get(req->name(), p->scope()), resp);
}

}  // namespace switchyard::api
