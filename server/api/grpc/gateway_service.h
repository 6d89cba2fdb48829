#ifndef SWITCHYARD_SERVER_API_GRPC_GATEWAY_SERVICE_H_
#define SWITCHYARD_SERVER_API_GRPC_GATEWAY_SERVICE_H_

// The switchyard.v1.Gateway gRPC service: a thin adapter. Each call
// authenticates the bearer credential, checks that the caller's kind may make
// the call (PERMISSION_DENIED otherwise), hands the request and the caller's
// scope to one domain method, and maps the result with ToGrpcStatus.
//
// Unary calls use gRPC's synchronous API: handlers run on gRPC's thread pool
// and block on the store, which is the intended use of that API. StreamEvents
// uses the callback API (see event_stream.h).

#include "server/auth/api_keys.h"
#include "server/catalog/catalog.h"
#include "server/connections/connections.h"
#include "server/credits/ledger.h"
#include "server/delivery/engine.h"
#include "server/delivery/subscriptions.h"
#include "server/events/event_log.h"
#include "server/health/monitor.h"
#include "server/incidents/incidents.h"
#include "server/polling/feed_poller.h"
#include "server/tenants/tenants.h"
#include "server/vault/vault.h"
#include "switchyard/v1/gateway.grpc.pb.h"

namespace switchyard::api {

// Thread-safe. Borrows the domain modules, which must outlive it.
class GatewayService final
    : public v1::Gateway::WithCallbackMethod_StreamEvents<v1::Gateway::Service> {
 public:
  GatewayService(auth::ApiKeyManager& keys, tenants::TenantRegistry& tenants,
                 const catalog::SystemCatalog& catalog, credits::CreditLedger& ledger,
                 connections::ConnectionManager& connections, vault::CredentialVault& vault,
                 events::EventLog& events, delivery::SubscriptionManager& subscriptions,
                 delivery::DeliveryEngine& delivery, health::HealthMonitor& health,
                 incidents::IncidentLog& incidents, polling::FeedPoller& feeds)
      : keys_(keys),
        tenants_(tenants),
        catalog_(catalog),
        ledger_(ledger),
        connections_(connections),
        vault_(vault),
        events_(events),
        subscriptions_(subscriptions),
        delivery_(delivery),
        health_(health),
        incidents_(incidents),
        feeds_(feeds) {}

  grpc::Status CreateTenant(grpc::ServerContext* context, const v1::CreateTenantRequest* req,
                            v1::Tenant* resp) override;
  grpc::Status GetTenant(grpc::ServerContext* context, const v1::GetTenantRequest* req,
                         v1::Tenant* resp) override;
  grpc::Status ListTenants(grpc::ServerContext* context, const v1::ListTenantsRequest* req,
                           v1::ListTenantsResponse* resp) override;
  grpc::Status UpdateTenant(grpc::ServerContext* context, const v1::UpdateTenantRequest* req,
                            v1::Tenant* resp) override;
  grpc::Status DeleteTenant(grpc::ServerContext* context, const v1::DeleteTenantRequest* req,
                            google::protobuf::Empty* resp) override;
  grpc::Status ListSystems(grpc::ServerContext* context, const v1::ListSystemsRequest* req,
                           v1::ListSystemsResponse* resp) override;
  grpc::Status GetSystem(grpc::ServerContext* context, const v1::GetSystemRequest* req,
                         v1::System* resp) override;
  grpc::Status CreateCreditPool(grpc::ServerContext* context,
                                const v1::CreateCreditPoolRequest* req,
                                v1::CreditPool* resp) override;
  grpc::Status GetCreditPool(grpc::ServerContext* context, const v1::GetCreditPoolRequest* req,
                             v1::CreditPool* resp) override;
  grpc::Status ListCreditPools(grpc::ServerContext* context, const v1::ListCreditPoolsRequest* req,
                               v1::ListCreditPoolsResponse* resp) override;
  grpc::Status SetCreditPoolCapacity(grpc::ServerContext* context,
                                     const v1::SetCreditPoolCapacityRequest* req,
                                     v1::CreditPool* resp) override;
  grpc::Status ReserveCredits(grpc::ServerContext* context, const v1::ReserveCreditsRequest* req,
                              v1::CreditReservation* resp) override;
  grpc::Status GetCreditReservation(grpc::ServerContext* context,
                                    const v1::GetCreditReservationRequest* req,
                                    v1::CreditReservation* resp) override;
  grpc::Status ListCreditReservations(grpc::ServerContext* context,
                                      const v1::ListCreditReservationsRequest* req,
                                      v1::ListCreditReservationsResponse* resp) override;
  grpc::Status CommitCreditReservation(grpc::ServerContext* context,
                                       const v1::CommitCreditReservationRequest* req,
                                       v1::CreditReservation* resp) override;
  grpc::Status ReleaseCreditReservation(grpc::ServerContext* context,
                                        const v1::ReleaseCreditReservationRequest* req,
                                        v1::CreditReservation* resp) override;
  grpc::Status CreateConnection(grpc::ServerContext* context,
                                const v1::CreateConnectionRequest* req,
                                v1::Connection* resp) override;
  grpc::Status GetConnection(grpc::ServerContext* context, const v1::GetConnectionRequest* req,
                             v1::Connection* resp) override;
  grpc::Status ListConnections(grpc::ServerContext* context, const v1::ListConnectionsRequest* req,
                               v1::ListConnectionsResponse* resp) override;
  grpc::Status UpdateConnection(grpc::ServerContext* context,
                                const v1::UpdateConnectionRequest* req,
                                v1::Connection* resp) override;
  grpc::Status ActivateConnection(grpc::ServerContext* context,
                                  const v1::ActivateConnectionRequest* req,
                                  v1::Connection* resp) override;
  grpc::Status DeactivateConnection(grpc::ServerContext* context,
                                    const v1::DeactivateConnectionRequest* req,
                                    v1::Connection* resp) override;
  grpc::Status DeleteConnection(grpc::ServerContext* context,
                                const v1::DeleteConnectionRequest* req,
                                v1::Connection* resp) override;
  grpc::Status ListLedgerEntries(grpc::ServerContext* context,
                                 const v1::ListLedgerEntriesRequest* req,
                                 v1::ListLedgerEntriesResponse* resp) override;
  grpc::Status CreateApiKey(grpc::ServerContext* context, const v1::CreateApiKeyRequest* req,
                            v1::CreateApiKeyResponse* resp) override;
  grpc::Status ListApiKeys(grpc::ServerContext* context, const v1::ListApiKeysRequest* req,
                           v1::ListApiKeysResponse* resp) override;
  grpc::Status RotateApiKey(grpc::ServerContext* context, const v1::RotateApiKeyRequest* req,
                            v1::CreateApiKeyResponse* resp) override;
  grpc::Status RevokeApiKey(grpc::ServerContext* context, const v1::RevokeApiKeyRequest* req,
                            v1::ApiKey* resp) override;
  grpc::Status SetConnectionCredentials(grpc::ServerContext* context,
                                        const v1::SetConnectionCredentialsRequest* req,
                                        v1::ConnectionCredentials* resp) override;
  grpc::Status GetConnectionCredentials(grpc::ServerContext* context,
                                        const v1::GetConnectionCredentialsRequest* req,
                                        v1::ConnectionCredentials* resp) override;
  grpc::Status DeleteConnectionCredentials(grpc::ServerContext* context,
                                           const v1::DeleteConnectionCredentialsRequest* req,
                                           google::protobuf::Empty* resp) override;
  grpc::Status RotateTenantDataKey(grpc::ServerContext* context,
                                   const v1::RotateTenantDataKeyRequest* req,
                                   v1::RotateTenantDataKeyResponse* resp) override;
  grpc::Status RotateWebhookSecret(grpc::ServerContext* context,
                                   const v1::RotateWebhookSecretRequest* req,
                                   v1::WebhookSecret* resp) override;
  grpc::Status GetWebhookSecret(grpc::ServerContext* context,
                                const v1::GetWebhookSecretRequest* req,
                                v1::WebhookSecret* resp) override;
  grpc::Status RevokeWebhookSecret(grpc::ServerContext* context,
                                   const v1::RevokeWebhookSecretRequest* req,
                                   google::protobuf::Empty* resp) override;
  grpc::Status ListEvents(grpc::ServerContext* context, const v1::ListEventsRequest* req,
                          v1::ListEventsResponse* resp) override;
  grpc::Status PublishEvents(grpc::ServerContext* context, const v1::PublishEventsRequest* req,
                             v1::PublishEventsResponse* resp) override;
  grpc::Status RewrapDataKeys(grpc::ServerContext* context, const v1::RewrapDataKeysRequest* req,
                              v1::RewrapDataKeysResponse* resp) override;
  grpc::Status CreateSubscription(grpc::ServerContext* context,
                                  const v1::CreateSubscriptionRequest* req,
                                  v1::Subscription* resp) override;
  grpc::Status GetSubscription(grpc::ServerContext* context, const v1::GetSubscriptionRequest* req,
                               v1::Subscription* resp) override;
  grpc::Status ListSubscriptions(grpc::ServerContext* context,
                                 const v1::ListSubscriptionsRequest* req,
                                 v1::ListSubscriptionsResponse* resp) override;
  grpc::Status DeleteSubscription(grpc::ServerContext* context,
                                  const v1::DeleteSubscriptionRequest* req,
                                  google::protobuf::Empty* resp) override;
  grpc::Status SeekSubscription(grpc::ServerContext* context,
                                const v1::SeekSubscriptionRequest* req,
                                v1::SeekSubscriptionResponse* resp) override;
  grpc::Status ListDeadLetters(grpc::ServerContext* context, const v1::ListDeadLettersRequest* req,
                               v1::ListDeadLettersResponse* resp) override;
  grpc::Status ReplayDeadLetters(grpc::ServerContext* context,
                                 const v1::ReplayDeadLettersRequest* req,
                                 v1::ReplayDeadLettersResponse* resp) override;
  grpc::ServerBidiReactor<v1::StreamEventsRequest, v1::StreamEventsResponse>* StreamEvents(
      grpc::CallbackServerContext* context) override;
  grpc::Status SetConnectionHealthCheck(grpc::ServerContext* context,
                                        const v1::SetConnectionHealthCheckRequest* req,
                                        v1::ConnectionHealth* resp) override;
  grpc::Status GetConnectionHealth(grpc::ServerContext* context,
                                   const v1::GetConnectionHealthRequest* req,
                                   v1::ConnectionHealth* resp) override;
  grpc::Status ListIncidents(grpc::ServerContext* context, const v1::ListIncidentsRequest* req,
                             v1::ListIncidentsResponse* resp) override;
  grpc::Status GetIncident(grpc::ServerContext* context, const v1::GetIncidentRequest* req,
                           v1::Incident* resp) override;
  grpc::Status CreateIncident(grpc::ServerContext* context, const v1::CreateIncidentRequest* req,
                              v1::Incident* resp) override;
  grpc::Status AnnotateIncident(grpc::ServerContext* context,
                                const v1::AnnotateIncidentRequest* req,
                                v1::Incident* resp) override;
  grpc::Status ResolveIncident(grpc::ServerContext* context, const v1::ResolveIncidentRequest* req,
                               v1::Incident* resp) override;
  grpc::Status SetConnectionChangeFeed(grpc::ServerContext* context,
                                       const v1::SetConnectionChangeFeedRequest* req,
                                       v1::ChangeFeed* resp) override;
  grpc::Status GetConnectionChangeFeed(grpc::ServerContext* context,
                                       const v1::GetConnectionChangeFeedRequest* req,
                                       v1::ChangeFeed* resp) override;

 private:
  // Which kinds of callers may make a call.
  // kAnonymous: callers without any credential too (a credential that is
  // presented must still be valid).
  enum Callers : int {
    kOperator = 1,
    kTenant = 2,
    kConnection = 4,
    kAnyCaller = 7,
    kAnonymous = 8
  };

  // The authenticated caller of `context`, if its kind is in `callers`.
  absl::StatusOr<auth::Principal> Authorize(grpc::ServerContextBase* context, int callers);
  // The same from the `authorization` metadata value (std::nullopt: none).
  // May read the store.
  absl::StatusOr<auth::Principal> AuthorizeHeader(const std::optional<std::string>& header,
                                                  int callers);
  static std::optional<std::string> AuthorizationOf(grpc::ServerContextBase* context);

  auth::ApiKeyManager& keys_;
  tenants::TenantRegistry& tenants_;
  const catalog::SystemCatalog& catalog_;
  credits::CreditLedger& ledger_;
  connections::ConnectionManager& connections_;
  vault::CredentialVault& vault_;
  events::EventLog& events_;
  delivery::SubscriptionManager& subscriptions_;
  delivery::DeliveryEngine& delivery_;
  health::HealthMonitor& health_;
  incidents::IncidentLog& incidents_;
  polling::FeedPoller& feeds_;
};

}  // namespace switchyard::api

#endif  // SWITCHYARD_SERVER_API_GRPC_GATEWAY_SERVICE_H_
