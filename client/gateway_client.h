#ifndef SWITCHYARD_CLIENT_GATEWAY_CLIENT_H_
#define SWITCHYARD_CLIENT_GATEWAY_CLIENT_H_

// A small C++ client for switchyard.v1.Gateway: channel setup, per-call
// deadlines, and retries with exponential backoff for calls that are safe to
// repeat. Create calls without a request_id get a generated one, so that
// their retries are safe too.
//
// Errors come back as absl::Status with the server's code and message; the
// google.rpc.ErrorInfo reason is available through ErrorReason().

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "switchyard/v1/gateway.grpc.pb.h"

namespace switchyard::client {

struct ClientOptions {
  // host:port of the gateway. Default "localhost:50051".
  std::string target = "localhost:50051";
  // Deadline of each attempt. Default 10s.
  absl::Duration deadline = absl::Seconds(10);
  // Attempts of a retryable call, including the first. Default 4.
  int max_attempts = 4;
  // Backoff before the second attempt, doubled each time up to max_backoff,
  // with full jitter. Defaults 100ms and 2s.
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(2);
  // Bearer credential sent with every Gateway call: an operator key, tenant
  // key or connection token. Empty: none.
  std::string api_key;
  // TLS: set `tls` to use it; `tls_root_certs` (PEM) overrides the system
  // roots; a client certificate and key (PEM) are presented for mutual TLS.
  bool tls = false;
  std::string tls_root_certs;
  std::string tls_client_cert;
  std::string tls_client_key;
  // Overrides the name checked against the server certificate.
  std::string tls_server_name;
};

// The ErrorInfo reason of an error returned by GatewayClient ("" if none).
std::string ErrorReason(const absl::Status& status);

// Converts a gRPC status, including its ErrorInfo detail, to absl::Status.
absl::Status FromGrpcStatus(const grpc::Status& status);

// Thread-safe: calls may be made from any number of threads at once.
class GatewayClient {
 public:
  // Creates the channel (plaintext). The connection is made lazily.
  static std::unique_ptr<GatewayClient> Create(const ClientOptions& options);

  // One method per RPC of switchyard.v1.Gateway, with the same name.
  absl::StatusOr<v1::Tenant> CreateTenant(v1::CreateTenantRequest request);
  absl::StatusOr<v1::Tenant> GetTenant(const v1::GetTenantRequest& request);
  absl::StatusOr<v1::ListTenantsResponse> ListTenants(const v1::ListTenantsRequest& request);
  absl::StatusOr<v1::Tenant> UpdateTenant(const v1::UpdateTenantRequest& request);
  absl::Status DeleteTenant(const v1::DeleteTenantRequest& request);
  absl::StatusOr<v1::ListSystemsResponse> ListSystems(const v1::ListSystemsRequest& request);
  absl::StatusOr<v1::System> GetSystem(const v1::GetSystemRequest& request);
  absl::StatusOr<v1::CreditPool> CreateCreditPool(v1::CreateCreditPoolRequest request);
  absl::StatusOr<v1::CreditPool> GetCreditPool(const v1::GetCreditPoolRequest& request);
  absl::StatusOr<v1::ListCreditPoolsResponse> ListCreditPools(
      const v1::ListCreditPoolsRequest& request);
  absl::StatusOr<v1::CreditPool> SetCreditPoolCapacity(
      const v1::SetCreditPoolCapacityRequest& request);
  absl::StatusOr<v1::CreditReservation> ReserveCredits(v1::ReserveCreditsRequest request);
  absl::StatusOr<v1::CreditReservation> GetCreditReservation(
      const v1::GetCreditReservationRequest& request);
  absl::StatusOr<v1::ListCreditReservationsResponse> ListCreditReservations(
      const v1::ListCreditReservationsRequest& request);
  absl::StatusOr<v1::CreditReservation> CommitCreditReservation(
      const v1::CommitCreditReservationRequest& request);
  absl::StatusOr<v1::CreditReservation> ReleaseCreditReservation(
      const v1::ReleaseCreditReservationRequest& request);
  absl::StatusOr<v1::Connection> CreateConnection(v1::CreateConnectionRequest request);
  absl::StatusOr<v1::Connection> GetConnection(const v1::GetConnectionRequest& request);
  absl::StatusOr<v1::ListConnectionsResponse> ListConnections(
      const v1::ListConnectionsRequest& request);
  absl::StatusOr<v1::Connection> UpdateConnection(const v1::UpdateConnectionRequest& request);
  absl::StatusOr<v1::Connection> ActivateConnection(const v1::ActivateConnectionRequest& request);
  absl::StatusOr<v1::Connection> DeactivateConnection(
      const v1::DeactivateConnectionRequest& request);
  absl::StatusOr<v1::Connection> DeleteConnection(const v1::DeleteConnectionRequest& request);
  absl::StatusOr<v1::ListLedgerEntriesResponse> ListLedgerEntries(
      const v1::ListLedgerEntriesRequest& request);
  absl::StatusOr<v1::CreateApiKeyResponse> CreateApiKey(const v1::CreateApiKeyRequest& request);
  absl::StatusOr<v1::ListApiKeysResponse> ListApiKeys(const v1::ListApiKeysRequest& request);
  absl::StatusOr<v1::CreateApiKeyResponse> RotateApiKey(const v1::RotateApiKeyRequest& request);
  absl::StatusOr<v1::ApiKey> RevokeApiKey(const v1::RevokeApiKeyRequest& request);
  absl::StatusOr<v1::ConnectionCredentials> SetConnectionCredentials(
      const v1::SetConnectionCredentialsRequest& request);
  absl::StatusOr<v1::ConnectionCredentials> GetConnectionCredentials(
      const v1::GetConnectionCredentialsRequest& request);
  absl::Status DeleteConnectionCredentials(const v1::DeleteConnectionCredentialsRequest& request);
  absl::StatusOr<v1::RotateTenantDataKeyResponse> RotateTenantDataKey(
      const v1::RotateTenantDataKeyRequest& request);
  absl::StatusOr<v1::RewrapDataKeysResponse> RewrapDataKeys(
      const v1::RewrapDataKeysRequest& request);
  absl::StatusOr<v1::WebhookSecret> RotateWebhookSecret(
      const v1::RotateWebhookSecretRequest& request);
  absl::StatusOr<v1::WebhookSecret> GetWebhookSecret(const v1::GetWebhookSecretRequest& request);
  absl::Status RevokeWebhookSecret(const v1::RevokeWebhookSecretRequest& request);
  absl::StatusOr<v1::ListEventsResponse> ListEvents(const v1::ListEventsRequest& request);
  absl::StatusOr<v1::PublishEventsResponse> PublishEvents(const v1::PublishEventsRequest& request);

  // The standard health check (grpc.health.v1) for `service` ("" = server).
  absl::StatusOr<grpc::health::v1::HealthCheckResponse> CheckHealth(const std::string& service);

  v1::Gateway::Stub& stub() { return *stub_; }

 private:
  enum class Retry { kNever, kSafe };
  template <typename Request, typename Response>
  using Method = grpc::Status (v1::Gateway::Stub::*)(grpc::ClientContext*, const Request&,
                                                     Response*);
  template <typename Request, typename Response>
  absl::StatusOr<Response> Call(Method<Request, Response> method, const Request& request,
                                Retry retry);

  GatewayClient(const ClientOptions& options, std::shared_ptr<grpc::Channel> channel);

  const ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Gateway::Stub> stub_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

}  // namespace switchyard::client

#endif  // SWITCHYARD_CLIENT_GATEWAY_CLIENT_H_
