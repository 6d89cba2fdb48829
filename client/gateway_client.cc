#include "client/gateway_client.h"

#include <grpcpp/grpcpp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <thread>

#include "absl/random/random.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace switchyard::client {
namespace {
constexpr char kReasonPayload[] = "switchyard.dev/reason";

// A request id for a create call that had none: 128 random bits.
std::string NewRequestId() {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) std::abort();
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(bytes), sizeof(bytes)));
}
}  // namespace

std::string ErrorReason(const absl::Status& status) {
  auto payload = status.GetPayload(kReasonPayload);
  return payload.has_value() ? std::string(*payload) : std::string();
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  absl::Status out(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
  google::rpc::Status details;
  if (!status.error_details().empty() && details.ParseFromString(status.error_details())) {
    for (const auto& any : details.details()) {
      google::rpc::ErrorInfo info;
      if (any.UnpackTo(&info)) {
        out.SetPayload(kReasonPayload, absl::Cord(info.reason()));
        for (const auto& [key, value] : info.metadata()) {
          out.SetPayload(absl::StrCat("switchyard.dev/metadata/", key), absl::Cord(value));
        }
      }
    }
  }
  return out;
}

std::unique_ptr<GatewayClient> GatewayClient::Create(const ClientOptions& options) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);  // retries are ours, with our safety rules
  // A server that vanished without closing the connection (host down,
  // partition) is noticed within about 40 s instead of never: a stream being
  // tailed would otherwise wait in Read for ever. The server allows pings
  // every 10 s.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (options.tls) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options.tls_root_certs;
    ssl.pem_cert_chain = options.tls_client_cert;
    ssl.pem_private_key = options.tls_client_key;
    credentials = grpc::SslCredentials(ssl);
    if (!options.tls_server_name.empty()) {
      args.SetSslTargetNameOverride(options.tls_server_name);
    }
  }
  auto channel = grpc::CreateCustomChannel(options.target, credentials, args);
  return std::unique_ptr<GatewayClient>(new GatewayClient(options, std::move(channel)));
}

GatewayClient::GatewayClient(const ClientOptions& options, std::shared_ptr<grpc::Channel> channel)
    : options_(options),
      channel_(std::move(channel)),
      stub_(v1::Gateway::NewStub(channel_)),
      health_(grpc::health::v1::Health::NewStub(channel_)) {}

template <typename Request, typename Response>
absl::StatusOr<Response> GatewayClient::Call(Method<Request, Response> method,
                                             const Request& request, Retry retry) {
  thread_local absl::BitGen bitgen;
  absl::Duration backoff = options_.initial_backoff;
  for (int attempt = 1;; ++attempt) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + options_.deadline));
    if (!options_.api_key.empty()) {
      context.AddMetadata("authorization", "Bearer " + options_.api_key);
    }
    Response response;
    grpc::Status status = ((*stub_).*method)(&context, request, &response);
    if (status.ok()) return response;
    const bool retryable = retry == Retry::kSafe &&
                           status.error_code() == grpc::StatusCode::UNAVAILABLE &&
                           attempt < options_.max_attempts;
    if (!retryable) return FromGrpcStatus(status);
    // Full jitter: sleep a uniform fraction of the current backoff.
    std::this_thread::sleep_for(absl::ToChronoNanoseconds(
        absl::Nanoseconds(absl::Uniform<int64_t>(bitgen, 0, absl::ToInt64Nanoseconds(backoff)))));
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

#define SY_SAFE_CALL(Name, Request, Response)                                        \
  absl::StatusOr<Response> GatewayClient::Name(const Request& request) {             \
    return Call<Request, Response>(&v1::Gateway::Stub::Name, request, Retry::kSafe); \
  }

// Creates: fill in a request_id so that a retry cannot create twice.
#define SY_CREATE_CALL(Name, Request, Response)                                      \
  absl::StatusOr<Response> GatewayClient::Name(Request request) {                    \
    if (request.request_id().empty()) request.set_request_id(NewRequestId());        \
    return Call<Request, Response>(&v1::Gateway::Stub::Name, request, Retry::kSafe); \
  }
SY_CREATE_CALL(CreateTenant, v1::CreateTenantRequest, v1::Tenant)
SY_CREATE_CALL(CreateCreditPool, v1::CreateCreditPoolRequest, v1::CreditPool)
SY_CREATE_CALL(ReserveCredits, v1::ReserveCreditsRequest, v1::CreditReservation)
SY_CREATE_CALL(CreateConnection, v1::CreateConnectionRequest, v1::Connection)
SY_CREATE_CALL(CreateSubscription, v1::CreateSubscriptionRequest, v1::Subscription)
SY_CREATE_CALL(CreateIncident, v1::CreateIncidentRequest, v1::Incident)
#undef SY_CREATE_CALL

// Reads, absolute updates and state transitions that answer a repeat with the
// same result are safe to retry.
SY_SAFE_CALL(GetTenant, v1::GetTenantRequest, v1::Tenant)
SY_SAFE_CALL(ListTenants, v1::ListTenantsRequest, v1::ListTenantsResponse)
SY_SAFE_CALL(UpdateTenant, v1::UpdateTenantRequest, v1::Tenant)
SY_SAFE_CALL(ListSystems, v1::ListSystemsRequest, v1::ListSystemsResponse)
SY_SAFE_CALL(GetSystem, v1::GetSystemRequest, v1::System)
SY_SAFE_CALL(GetCreditPool, v1::GetCreditPoolRequest, v1::CreditPool)
SY_SAFE_CALL(ListCreditPools, v1::ListCreditPoolsRequest, v1::ListCreditPoolsResponse)
SY_SAFE_CALL(SetCreditPoolCapacity, v1::SetCreditPoolCapacityRequest, v1::CreditPool)
SY_SAFE_CALL(GetCreditReservation, v1::GetCreditReservationRequest, v1::CreditReservation)
SY_SAFE_CALL(ListCreditReservations, v1::ListCreditReservationsRequest,
             v1::ListCreditReservationsResponse)
SY_SAFE_CALL(CommitCreditReservation, v1::CommitCreditReservationRequest, v1::CreditReservation)
SY_SAFE_CALL(ReleaseCreditReservation, v1::ReleaseCreditReservationRequest, v1::CreditReservation)
SY_SAFE_CALL(GetConnection, v1::GetConnectionRequest, v1::Connection)
SY_SAFE_CALL(ListConnections, v1::ListConnectionsRequest, v1::ListConnectionsResponse)
SY_SAFE_CALL(UpdateConnection, v1::UpdateConnectionRequest, v1::Connection)
SY_SAFE_CALL(ActivateConnection, v1::ActivateConnectionRequest, v1::Connection)
SY_SAFE_CALL(DeactivateConnection, v1::DeactivateConnectionRequest, v1::Connection)
SY_SAFE_CALL(DeleteConnection, v1::DeleteConnectionRequest, v1::Connection)
SY_SAFE_CALL(ListLedgerEntries, v1::ListLedgerEntriesRequest, v1::ListLedgerEntriesResponse)
SY_SAFE_CALL(ListApiKeys, v1::ListApiKeysRequest, v1::ListApiKeysResponse)
SY_SAFE_CALL(RevokeApiKey, v1::RevokeApiKeyRequest, v1::ApiKey)
SY_SAFE_CALL(SetConnectionCredentials, v1::SetConnectionCredentialsRequest,
             v1::ConnectionCredentials)
SY_SAFE_CALL(GetConnectionCredentials, v1::GetConnectionCredentialsRequest,
             v1::ConnectionCredentials)
SY_SAFE_CALL(RewrapDataKeys, v1::RewrapDataKeysRequest, v1::RewrapDataKeysResponse)
SY_SAFE_CALL(GetWebhookSecret, v1::GetWebhookSecretRequest, v1::WebhookSecret)
SY_SAFE_CALL(ListEvents, v1::ListEventsRequest, v1::ListEventsResponse)
// Safe to repeat: events are deduplicated by event_id.
SY_SAFE_CALL(PublishEvents, v1::PublishEventsRequest, v1::PublishEventsResponse)
SY_SAFE_CALL(GetSubscription, v1::GetSubscriptionRequest, v1::Subscription)
SY_SAFE_CALL(ListSubscriptions, v1::ListSubscriptionsRequest, v1::ListSubscriptionsResponse)
// Repeating a seek lands on the same position; repeating a replay marks what
// the first one marked.
SY_SAFE_CALL(SeekSubscription, v1::SeekSubscriptionRequest, v1::SeekSubscriptionResponse)
SY_SAFE_CALL(ListDeadLetters, v1::ListDeadLettersRequest, v1::ListDeadLettersResponse)
SY_SAFE_CALL(ReplayDeadLetters, v1::ReplayDeadLettersRequest, v1::ReplayDeadLettersResponse)
SY_SAFE_CALL(SetConnectionHealthCheck, v1::SetConnectionHealthCheckRequest, v1::ConnectionHealth)
SY_SAFE_CALL(GetConnectionHealth, v1::GetConnectionHealthRequest, v1::ConnectionHealth)
SY_SAFE_CALL(ListIncidents, v1::ListIncidentsRequest, v1::ListIncidentsResponse)
SY_SAFE_CALL(SetConnectionChangeFeed, v1::SetConnectionChangeFeedRequest, v1::ChangeFeed)
SY_SAFE_CALL(GetConnectionChangeFeed, v1::GetConnectionChangeFeedRequest, v1::ChangeFeed)
SY_SAFE_CALL(GetIncident, v1::GetIncidentRequest, v1::Incident)
#undef SY_SAFE_CALL

// Calls that mint a new secret or version each time are never retried: a
// retry after a lost answer would mint another.
absl::StatusOr<v1::CreateApiKeyResponse> GatewayClient::CreateApiKey(
    const v1::CreateApiKeyRequest& request) {
  return Call<v1::CreateApiKeyRequest, v1::CreateApiKeyResponse>(&v1::Gateway::Stub::CreateApiKey,
                                                                 request, Retry::kNever);
}
absl::StatusOr<v1::CreateApiKeyResponse> GatewayClient::RotateApiKey(
    const v1::RotateApiKeyRequest& request) {
  return Call<v1::RotateApiKeyRequest, v1::CreateApiKeyResponse>(&v1::Gateway::Stub::RotateApiKey,
                                                                 request, Retry::kNever);
}
absl::StatusOr<v1::RotateTenantDataKeyResponse> GatewayClient::RotateTenantDataKey(
    const v1::RotateTenantDataKeyRequest& request) {
  return Call<v1::RotateTenantDataKeyRequest, v1::RotateTenantDataKeyResponse>(
      &v1::Gateway::Stub::RotateTenantDataKey, request, Retry::kNever);
}
absl::StatusOr<v1::WebhookSecret> GatewayClient::RotateWebhookSecret(
    const v1::RotateWebhookSecretRequest& request) {
  return Call<v1::RotateWebhookSecretRequest, v1::WebhookSecret>(
      &v1::Gateway::Stub::RotateWebhookSecret, request, Retry::kNever);
}
absl::Status GatewayClient::RevokeWebhookSecret(const v1::RevokeWebhookSecretRequest& request) {
  return Call<v1::RevokeWebhookSecretRequest, google::protobuf::Empty>(
             &v1::Gateway::Stub::RevokeWebhookSecret, request, Retry::kSafe)
      .status();
}
absl::Status GatewayClient::DeleteConnectionCredentials(
    const v1::DeleteConnectionCredentialsRequest& request) {
  return Call<v1::DeleteConnectionCredentialsRequest, google::protobuf::Empty>(
             &v1::Gateway::Stub::DeleteConnectionCredentials, request, Retry::kNever)
      .status();
}

// A repeated delete of a tenant that was deleted answers NOT_FOUND, so the
// call is not retried.
absl::Status GatewayClient::DeleteTenant(const v1::DeleteTenantRequest& request) {
  return Call<v1::DeleteTenantRequest, google::protobuf::Empty>(&v1::Gateway::Stub::DeleteTenant,
                                                                request, Retry::kNever)
      .status();
}

// Resolving an incident that is resolved fails (FAILED_PRECONDITION), so a
// retry after a lost answer would report a failure: not retried.
absl::StatusOr<v1::Incident> GatewayClient::ResolveIncident(
    const v1::ResolveIncidentRequest& request) {
  return Call<v1::ResolveIncidentRequest, v1::Incident>(&v1::Gateway::Stub::ResolveIncident,
                                                        request, Retry::kNever);
}

// Each call adds a note: not retried.
absl::StatusOr<v1::Incident> GatewayClient::AnnotateIncident(
    const v1::AnnotateIncidentRequest& request) {
  return Call<v1::AnnotateIncidentRequest, v1::Incident>(&v1::Gateway::Stub::AnnotateIncident,
                                                         request, Retry::kNever);
}

absl::Status GatewayClient::DeleteSubscription(const v1::DeleteSubscriptionRequest& request) {
  return Call<v1::DeleteSubscriptionRequest, google::protobuf::Empty>(
             &v1::Gateway::Stub::DeleteSubscription, request, Retry::kNever)
      .status();
}

std::unique_ptr<EventStream> GatewayClient::StreamEvents(const std::string& subscription,
                                                         int max_outstanding_events,
                                                         int64_t max_outstanding_bytes) {
  auto context = std::make_unique<grpc::ClientContext>();
  if (!options_.api_key.empty()) {
    context->AddMetadata("authorization", "Bearer " + options_.api_key);
  }
  auto stream = stub_->StreamEvents(context.get());
  auto out = std::make_unique<EventStream>(std::move(context), std::move(stream));
  v1::StreamEventsRequest first;
  first.set_subscription(subscription);
  first.set_max_outstanding_events(max_outstanding_events);
  first.set_max_outstanding_bytes(max_outstanding_bytes);
  // A failed write shows as the stream's end in Next and Finish.
  out->Send(first);
  return out;
}

bool EventStream::Send(const v1::StreamEventsRequest& request) {
  std::lock_guard<std::mutex> lock(write_mu_);
  if (closed_) return false;
  return stream_->Write(request);
}

bool EventStream::Ack(const std::vector<std::string>& ack_ids) {
  if (ack_ids.empty()) return true;
  v1::StreamEventsRequest request;
  for (const std::string& id : ack_ids) request.add_ack_ids(id);
  return Send(request);
}

bool EventStream::Nack(const std::vector<std::string>& ack_ids) {
  if (ack_ids.empty()) return true;
  v1::StreamEventsRequest request;
  for (const std::string& id : ack_ids) request.add_nack_ids(id);
  return Send(request);
}

bool EventStream::ExtendDeadline(const std::vector<std::string>& ack_ids, int seconds) {
  if (ack_ids.empty()) return true;
  v1::StreamEventsRequest request;
  for (const std::string& id : ack_ids) {
    request.add_modify_deadline_ack_ids(id);
    request.add_modify_deadline_seconds(seconds);
  }
  return Send(request);
}

void EventStream::Close() {
  std::lock_guard<std::mutex> lock(write_mu_);
  if (closed_) return;
  closed_ = true;
  stream_->WritesDone();
}

absl::Status EventStream::Finish() { return FromGrpcStatus(stream_->Finish()); }

absl::StatusOr<grpc::health::v1::HealthCheckResponse> GatewayClient::CheckHealth(
    const std::string& service) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + options_.deadline));
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status status = health_->Check(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

}  // namespace switchyard::client
