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
#include <mutex>
#include <string>
#include <vector>

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

  absl::StatusOr<v1::Subscription> CreateSubscription(v1::CreateSubscriptionRequest request);
  absl::StatusOr<v1::Subscription> GetSubscription(const v1::GetSubscriptionRequest& request);
  absl::StatusOr<v1::ListSubscriptionsResponse> ListSubscriptions(
      const v1::ListSubscriptionsRequest& request);
  absl::Status DeleteSubscription(const v1::DeleteSubscriptionRequest& request);
  absl::StatusOr<v1::SeekSubscriptionResponse> SeekSubscription(
      const v1::SeekSubscriptionRequest& request);
  absl::StatusOr<v1::ListDeadLettersResponse> ListDeadLetters(
      const v1::ListDeadLettersRequest& request);
  absl::StatusOr<v1::ReplayDeadLettersResponse> ReplayDeadLetters(
      const v1::ReplayDeadLettersRequest& request);

  absl::StatusOr<v1::ConnectionHealth> SetConnectionHealthCheck(
      const v1::SetConnectionHealthCheckRequest& request);
  absl::StatusOr<v1::ConnectionHealth> GetConnectionHealth(
      const v1::GetConnectionHealthRequest& request);
  absl::StatusOr<v1::ChangeFeed> SetConnectionChangeFeed(
      const v1::SetConnectionChangeFeedRequest& request);
  absl::StatusOr<v1::ChangeFeed> GetConnectionChangeFeed(
      const v1::GetConnectionChangeFeedRequest& request);
  absl::StatusOr<v1::ListIncidentsResponse> ListIncidents(const v1::ListIncidentsRequest& request);
  absl::StatusOr<v1::Incident> GetIncident(const v1::GetIncidentRequest& request);
  absl::StatusOr<v1::Incident> CreateIncident(v1::CreateIncidentRequest request);
  absl::StatusOr<v1::Incident> AnnotateIncident(const v1::AnnotateIncidentRequest& request);
  absl::StatusOr<v1::Incident> ResolveIncident(const v1::ResolveIncidentRequest& request);

  // Opens a StreamEvents call on `subscription` with the given flow control
  // (0: the server's defaults). Never retried: on an error the caller opens
  // a new stream (the subscription resumes where its acks left it).
  std::unique_ptr<class EventStream> StreamEvents(const std::string& subscription,
                                                  int max_outstanding_events = 0,
                                                  int64_t max_outstanding_bytes = 0);

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

// One StreamEvents call. Next is called from one thread; Ack, Nack and
// ExtendDeadline from any thread (writes are serialized); Cancel from any.
class EventStream {
 public:
  EventStream(
      std::unique_ptr<grpc::ClientContext> context,
      std::unique_ptr<grpc::ClientReaderWriter<v1::StreamEventsRequest, v1::StreamEventsResponse>>
          stream)
      : context_(std::move(context)), stream_(std::move(stream)) {}

  // Blocks for the next message; false once the stream has ended (then call
  // Finish for the reason).
  bool Next(v1::StreamEventsResponse* response) { return stream_->Read(response); }
  // Writes one request; false when the stream is broken.
  bool Send(const v1::StreamEventsRequest& request);
  bool Ack(const std::vector<std::string>& ack_ids);
  bool Nack(const std::vector<std::string>& ack_ids);
  bool ExtendDeadline(const std::vector<std::string>& ack_ids, int seconds);
  // Ends the stream from this side: half-close (the server ends it, and the
  // outstanding events go to other streams) or cancel.
  void Close();
  void Cancel() { context_->TryCancel(); }
  // The status the stream ended with; call after Next returned false.
  absl::Status Finish();

 private:
  std::unique_ptr<grpc::ClientContext> context_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::StreamEventsRequest, v1::StreamEventsResponse>>
      stream_;
  std::mutex write_mu_;
  bool closed_ = false;  // guarded by write_mu_
};

}  // namespace switchyard::client

#endif  // SWITCHYARD_CLIENT_GATEWAY_CLIENT_H_
