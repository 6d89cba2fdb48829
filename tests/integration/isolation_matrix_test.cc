// Tenant isolation over every RPC of the Gateway service and every kind of
// caller, against the real server.
//
// Tenants "alpha" and "bravo" each have a tenant key, connections with tokens,
// credentials and a reservation. For every RPC, each of bravo's credentials
// (tenant key, connection token) calls it naming alpha's resources, and again
// naming the same resources under a tenant that does not exist ("ghost"). The
// two answers must be identical (code, message with the tenant id swapped,
// ErrorInfo reason), so nothing reveals that alpha's resources exist; neither
// may succeed. Afterwards alpha's state is checked to be unchanged. Missing,
// malformed and revoked credentials get UNAUTHENTICATED everywhere, and the
// operator and alpha's own key succeed where they should.

#include <grpcpp/grpcpp.h>

#include <functional>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "client/gateway_client.h"
#include "gtest/gtest.h"
#include "server/auth/token_format.h"
#include "tests/support/event_consumer.h"
#include "tests/support/server_process.h"
#include "tests/support/temp_dir.h"

namespace switchyard {
namespace {

using grpc::ClientContext;
using grpc::StatusCode;

// The ids of one tenant's resources, by which every call names them.
struct Names {
  std::string tenant;
  std::string connection;
  std::string token_id;  // of `connection`'s token
  std::string reservation;
  std::string incident;  // id of an incident of the tenant's connection
};

// One RPC, issued with `credential` against the resources `n`.
using Invocation = std::function<grpc::Status(v1::Gateway::Stub&, ClientContext&, const Names& n)>;

std::map<std::string, Invocation> AllCalls() {
  std::map<std::string, Invocation> calls;
  auto tenant = [](const Names& n) { return "tenants/" + n.tenant; };
  auto connection = [&](const Names& n) { return tenant(n) + "/connections/" + n.connection; };
  auto reservation = [&](const Names& n) {
    return tenant(n) + "/creditReservations/" + n.reservation;
  };
  auto token = [&](const Names& n) { return connection(n) + "/tokens/" + n.token_id; };
#define SY_CALL(Method, Request, Response, fill)                                      \
  calls[#Method] = [=](v1::Gateway::Stub& stub, ClientContext& ctx, const Names& n) { \
    v1::Request req;                                                                  \
    fill;                                                                             \
    Response resp;                                                                    \
    return stub.Method(&ctx, req, &resp);                                             \
  }
  SY_CALL(CreateTenant, CreateTenantRequest, v1::Tenant, {
    req.set_tenant_id("new-" + n.tenant);
    req.mutable_tenant()->set_credit_pool("creditPools/shared");
  });
  SY_CALL(GetTenant, GetTenantRequest, v1::Tenant, req.set_name(tenant(n)));
  SY_CALL(ListTenants, ListTenantsRequest, v1::ListTenantsResponse, {});
  SY_CALL(UpdateTenant, UpdateTenantRequest, v1::Tenant, {
    req.mutable_tenant()->set_name(tenant(n));
    req.mutable_tenant()->set_display_name("taken over");
  });
  SY_CALL(DeleteTenant, DeleteTenantRequest, google::protobuf::Empty, {
    req.set_name(tenant(n));
    req.set_force(true);
  });
  SY_CALL(ListSystems, ListSystemsRequest, v1::ListSystemsResponse, {});
  SY_CALL(GetSystem, GetSystemRequest, v1::System, req.set_name("systems/sap-ecc"));
  SY_CALL(CreateCreditPool, CreateCreditPoolRequest, v1::CreditPool,
          req.set_credit_pool_id("pool-" + n.tenant));
  SY_CALL(GetCreditPool, GetCreditPoolRequest, v1::CreditPool, req.set_name("creditPools/shared"));
  SY_CALL(ListCreditPools, ListCreditPoolsRequest, v1::ListCreditPoolsResponse, {});
  SY_CALL(SetCreditPoolCapacity, SetCreditPoolCapacityRequest, v1::CreditPool, {
    req.set_name("creditPools/shared");
    req.set_capacity(1);
  });
  SY_CALL(ReserveCredits, ReserveCreditsRequest, v1::CreditReservation, {
    req.set_parent(tenant(n));
    req.set_amount(1);
  });
  SY_CALL(GetCreditReservation, GetCreditReservationRequest, v1::CreditReservation,
          req.set_name(reservation(n)));
  SY_CALL(ListCreditReservations, ListCreditReservationsRequest, v1::ListCreditReservationsResponse,
          req.set_parent(tenant(n)));
  SY_CALL(CommitCreditReservation, CommitCreditReservationRequest, v1::CreditReservation,
          req.set_name(reservation(n)));
  SY_CALL(ReleaseCreditReservation, ReleaseCreditReservationRequest, v1::CreditReservation,
          req.set_name(reservation(n)));
  SY_CALL(CreateConnection, CreateConnectionRequest, v1::Connection, {
    req.set_parent(tenant(n));
    req.set_connection_id("intruder");
    req.mutable_connection()->set_system("systems/maintainx");
    req.mutable_connection()->set_deployment(v1::CLOUD);
  });
  SY_CALL(GetConnection, GetConnectionRequest, v1::Connection, req.set_name(connection(n)));
  SY_CALL(ListConnections, ListConnectionsRequest, v1::ListConnectionsResponse,
          req.set_parent(tenant(n)));
  SY_CALL(UpdateConnection, UpdateConnectionRequest, v1::Connection, {
    req.mutable_connection()->set_name(connection(n));
    req.mutable_connection()->set_display_name("taken over");
  });
  SY_CALL(ActivateConnection, ActivateConnectionRequest, v1::Connection,
          req.set_name(connection(n)));
  SY_CALL(DeactivateConnection, DeactivateConnectionRequest, v1::Connection,
          req.set_name(connection(n)));
  SY_CALL(DeleteConnection, DeleteConnectionRequest, v1::Connection, req.set_name(connection(n)));
  SY_CALL(ListLedgerEntries, ListLedgerEntriesRequest, v1::ListLedgerEntriesResponse,
          req.set_parent("creditPools/shared"));
  SY_CALL(CreateApiKey, CreateApiKeyRequest, v1::CreateApiKeyResponse, req.set_parent(tenant(n)));
  SY_CALL(ListApiKeys, ListApiKeysRequest, v1::ListApiKeysResponse, req.set_parent(connection(n)));
  SY_CALL(RotateApiKey, RotateApiKeyRequest, v1::CreateApiKeyResponse, req.set_name(token(n)));
  SY_CALL(RevokeApiKey, RevokeApiKeyRequest, v1::ApiKey, req.set_name(token(n)));
  SY_CALL(SetConnectionCredentials, SetConnectionCredentialsRequest, v1::ConnectionCredentials, {
    req.mutable_credentials()->set_name(connection(n) + "/credentials");
    req.mutable_credentials()->set_password("overwritten");
  });
  SY_CALL(GetConnectionCredentials, GetConnectionCredentialsRequest, v1::ConnectionCredentials,
          req.set_name(connection(n) + "/credentials"));
  SY_CALL(DeleteConnectionCredentials, DeleteConnectionCredentialsRequest, google::protobuf::Empty,
          req.set_name(connection(n) + "/credentials"));
  SY_CALL(RotateTenantDataKey, RotateTenantDataKeyRequest, v1::RotateTenantDataKeyResponse,
          req.set_name(tenant(n)));
  SY_CALL(RewrapDataKeys, RewrapDataKeysRequest, v1::RewrapDataKeysResponse, {});
  SY_CALL(RotateWebhookSecret, RotateWebhookSecretRequest, v1::WebhookSecret,
          req.set_name(connection(n) + "/webhookSecret"));
  SY_CALL(GetWebhookSecret, GetWebhookSecretRequest, v1::WebhookSecret,
          req.set_name(connection(n) + "/webhookSecret"));
  SY_CALL(RevokeWebhookSecret, RevokeWebhookSecretRequest, google::protobuf::Empty,
          req.set_name(connection(n) + "/webhookSecret"));
  SY_CALL(ListEvents, ListEventsRequest, v1::ListEventsResponse, req.set_parent(connection(n)));
  SY_CALL(PublishEvents, PublishEventsRequest, v1::PublishEventsResponse, {
    req.set_parent(connection(n));
    auto* e = req.add_events();
    e->set_event_id("injected");
    e->set_body("{}");
  });
  auto subscription = [&](const Names& n) { return tenant(n) + "/subscriptions/orders"; };
  SY_CALL(CreateSubscription, CreateSubscriptionRequest, v1::Subscription, {
    req.set_parent(tenant(n));
    req.set_subscription_id("planted");
  });
  SY_CALL(GetSubscription, GetSubscriptionRequest, v1::Subscription, req.set_name(subscription(n)));
  SY_CALL(ListSubscriptions, ListSubscriptionsRequest, v1::ListSubscriptionsResponse,
          req.set_parent(tenant(n)));
  SY_CALL(DeleteSubscription, DeleteSubscriptionRequest, google::protobuf::Empty,
          req.set_name(subscription(n)));
  SY_CALL(SeekSubscription, SeekSubscriptionRequest, v1::SeekSubscriptionResponse, {
    req.set_subscription(subscription(n));
    req.mutable_position()->set_connection(connection(n));
  });
  SY_CALL(ListDeadLetters, ListDeadLettersRequest, v1::ListDeadLettersResponse,
          req.set_subscription(subscription(n)));
  SY_CALL(ReplayDeadLetters, ReplayDeadLettersRequest, v1::ReplayDeadLettersResponse,
          req.set_subscription(subscription(n)));
  SY_CALL(SetConnectionHealthCheck, SetConnectionHealthCheckRequest, v1::ConnectionHealth, {
    req.set_name(connection(n) + "/health");
    req.mutable_check()->set_url("http://127.0.0.1:1/attacker");
  });
  SY_CALL(GetConnectionHealth, GetConnectionHealthRequest, v1::ConnectionHealth,
          req.set_name(connection(n) + "/health"));
  SY_CALL(SetConnectionChangeFeed, SetConnectionChangeFeedRequest, v1::ChangeFeed, {
    req.mutable_feed()->set_name(connection(n) + "/changeFeed");
    req.mutable_feed()->set_url("http://127.0.0.1:1/attacker");
  });
  SY_CALL(GetConnectionChangeFeed, GetConnectionChangeFeedRequest, v1::ChangeFeed,
          req.set_name(connection(n) + "/changeFeed"));
  SY_CALL(GetIncident, GetIncidentRequest, v1::Incident, req.set_name("incidents/" + n.incident));
  SY_CALL(CreateIncident, CreateIncidentRequest, v1::Incident, {
    req.mutable_incident()->set_title("fake outage");
    req.mutable_incident()->set_component(connection(n));
  });
  SY_CALL(AnnotateIncident, AnnotateIncidentRequest, v1::Incident, {
    req.set_name("incidents/" + n.incident);
    req.set_text("planted");
  });
  SY_CALL(ResolveIncident, ResolveIncidentRequest, v1::Incident,
          req.set_name("incidents/" + n.incident));
#undef SY_CALL
  // Lists only the caller's own incidents: it succeeds, and must not show
  // another tenant's.
  calls["ListIncidents"] = [=](v1::Gateway::Stub& stub, ClientContext& ctx, const Names& n) {
    v1::ListIncidentsRequest req;
    v1::ListIncidentsResponse resp;
    grpc::Status status = stub.ListIncidents(&ctx, req, &resp);
    for (const v1::Incident& incident : resp.incidents()) {
      if (incident.component().find("tenants/" + n.tenant + "/") == 0) {
        return grpc::Status(grpc::StatusCode::INTERNAL, "LEAK: " + incident.name());
      }
    }
    return status;
  };
  // The streaming call: name the subscription, half-close, read to the end.
  calls["StreamEvents"] = [=](v1::Gateway::Stub& stub, ClientContext& ctx, const Names& n) {
    auto stream = stub.StreamEvents(&ctx);
    v1::StreamEventsRequest first;
    first.set_subscription(subscription(n));
    stream->Write(first);
    stream->WritesDone();
    v1::StreamEventsResponse response;
    while (stream->Read(&response)) {
    }
    return stream->Finish();
  };
  return calls;
}

// Calls that reveal nothing of any tenant and are open to every caller.
const std::set<std::string> kPublicCalls = {"ListSystems", "GetSystem"};
// Calls that name no tenant and answer with the caller's own resources only.
const std::set<std::string> kSelfScopedCalls = {"ListIncidents"};

std::string Reason(const grpc::Status& status) {
  auto s = client::FromGrpcStatus(status);
  return client::ErrorReason(s);
}

class IsolationMatrixTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = testing::ServerProcess::Start(dir_.path());
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ = grpc::CreateChannel(server_->target(), grpc::InsecureChannelCredentials());
    stub_ = v1::Gateway::NewStub(channel_);
    op_ = Client(server_->operator_key());

    v1::CreateCreditPoolRequest pool;
    pool.set_credit_pool_id("shared");
    pool.mutable_credit_pool()->set_capacity(100);
    ASSERT_TRUE(op_->CreateCreditPool(pool).ok());
    alpha_ = MakeTenant("alpha");
    bravo_ = MakeTenant("bravo");
  }

  std::unique_ptr<client::GatewayClient> Client(const std::string& key) {
    client::ClientOptions options;
    options.target = server_->target();
    options.api_key = key;
    options.max_attempts = 1;
    return client::GatewayClient::Create(options);
  }

  struct TenantFixture {
    Names names;
    std::string tenant_key;
    std::string connection_token;
    v1::ConnectionCredentials credentials;
  };

  TenantFixture MakeTenant(const std::string& id) {
    TenantFixture t;
    v1::CreateTenantRequest tenant;
    tenant.set_tenant_id(id);
    tenant.mutable_tenant()->set_credit_pool("creditPools/shared");
    EXPECT_TRUE(op_->CreateTenant(tenant).ok());
    v1::CreateApiKeyRequest key;
    key.set_parent("tenants/" + id);
    key.set_can_reveal_credentials(true);
    auto created = op_->CreateApiKey(key);
    EXPECT_TRUE(created.ok()) << created.status();
    t.tenant_key = created->token();
    auto tenant_client = Client(t.tenant_key);
    for (const char* c : {"erp", "cmms"}) {
      v1::CreateConnectionRequest conn;
      conn.set_parent("tenants/" + id);
      conn.set_connection_id(c);
      conn.mutable_connection()->set_system("systems/maintainx");
      conn.mutable_connection()->set_deployment(v1::CLOUD);
      auto made = tenant_client->CreateConnection(conn);
      EXPECT_TRUE(made.ok()) << made.status();
      if (std::string(c) == "erp") t.connection_token = made->api_token();
    }
    v1::ListApiKeysRequest tokens;
    tokens.set_parent("tenants/" + id + "/connections/erp");
    auto listed = tenant_client->ListApiKeys(tokens);
    EXPECT_TRUE(listed.ok() && listed->api_keys_size() == 1);
    const std::string& token_name = listed->api_keys(0).name();
    t.names = Names{id, "erp", token_name.substr(token_name.rfind('/') + 1), "held", ""};
    v1::ReserveCreditsRequest reserve;
    reserve.set_parent("tenants/" + id);
    reserve.set_reservation_id("held");
    reserve.set_amount(2);
    EXPECT_TRUE(tenant_client->ReserveCredits(reserve).ok());
    v1::SetConnectionCredentialsRequest creds;
    creds.mutable_credentials()->set_name("tenants/" + id + "/connections/erp/credentials");
    creds.mutable_credentials()->set_base_url("https://" + id + ".example.test");
    creds.mutable_credentials()->set_username(id + "-user");
    creds.mutable_credentials()->set_password(id + "-secret-password");
    EXPECT_TRUE(tenant_client->SetConnectionCredentials(creds).ok());
    t.credentials = creds.credentials();
    v1::CreateSubscriptionRequest sub;
    sub.set_parent("tenants/" + id);
    sub.set_subscription_id("orders");
    EXPECT_TRUE(tenant_client->CreateSubscription(sub).ok());
    v1::CreateIncidentRequest incident;
    incident.mutable_incident()->set_title(id + " erp is down");
    incident.mutable_incident()->set_component("tenants/" + id + "/connections/erp");
    auto opened = op_->CreateIncident(incident);
    EXPECT_TRUE(opened.ok()) << opened.status();
    t.names.incident = opened->name().substr(strlen("incidents/"));
    return t;
  }

  grpc::Status Invoke(const Invocation& call, const std::string& credential, const Names& n) {
    ClientContext ctx;
    if (!credential.empty()) ctx.AddMetadata("authorization", credential);
    return call(*stub_, ctx, n);
  }

  // Everything of alpha a successful attack could have changed.
  std::string AlphaSnapshot() {
    std::string out;
    v1::GetTenantRequest tenant;
    tenant.set_name("tenants/alpha");
    auto t = op_->GetTenant(tenant);
    absl::StrAppend(&out, t.ok() ? t->ShortDebugString() : t.status().ToString(), "\n");
    v1::ListConnectionsRequest conns;
    conns.set_parent("tenants/alpha");
    auto c = op_->ListConnections(conns);
    absl::StrAppend(&out, c.ok() ? c->ShortDebugString() : c.status().ToString(), "\n");
    v1::ListCreditReservationsRequest res;
    res.set_parent("tenants/alpha");
    auto r = op_->ListCreditReservations(res);
    absl::StrAppend(&out, r.ok() ? r->ShortDebugString() : r.status().ToString(), "\n");
    v1::GetConnectionCredentialsRequest creds;
    creds.set_name("tenants/alpha/connections/erp/credentials");
    creds.set_reveal_secrets(true);
    auto s = op_->GetConnectionCredentials(creds);
    absl::StrAppend(&out, s.ok() ? s->password() + s->base_url() : s.status().ToString(), "\n");
    v1::ListApiKeysRequest keys;
    keys.set_parent("tenants/alpha");
    auto k = op_->ListApiKeys(keys);
    absl::StrAppend(&out, k.ok() ? k->ShortDebugString() : k.status().ToString(), "\n");
    v1::ListSubscriptionsRequest subs;
    subs.set_parent("tenants/alpha");
    auto l = op_->ListSubscriptions(subs);
    absl::StrAppend(&out, l.ok() ? l->ShortDebugString() : l.status().ToString(), "\n");
    v1::GetIncidentRequest incident;
    incident.set_name("incidents/" + alpha_.names.incident);
    auto i = op_->GetIncident(incident);
    absl::StrAppend(&out, i.ok() ? i->ShortDebugString() : i.status().ToString(), "\n");
    v1::GetConnectionHealthRequest health;
    health.set_name("tenants/alpha/connections/erp/health");
    auto h = op_->GetConnectionHealth(health);
    absl::StrAppend(&out, h.ok() ? h->ShortDebugString() : h.status().ToString(), "\n");
    return out;
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::ServerProcess> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Gateway::Stub> stub_;
  std::unique_ptr<client::GatewayClient> op_;
  TenantFixture alpha_, bravo_;
};

TEST_F(IsolationMatrixTest, TheMatrixCoversEveryRpcOfTheService) {
  const auto calls = AllCalls();
  const auto* service = v1::CreateTenantRequest::descriptor()->file()->FindServiceByName("Gateway");
  std::set<std::string> methods;
  for (int i = 0; i < service->method_count(); ++i) methods.insert(service->method(i)->name());
  std::set<std::string> covered;
  for (const auto& [name, unused] : calls) covered.insert(name);
  EXPECT_EQ(methods, covered);
}

TEST_F(IsolationMatrixTest, NoCredentialOfOneTenantReadsChangesOrDetectsAnotherTenant) {
  const std::string before = AlphaSnapshot();
  Names ghost = alpha_.names;
  ghost.tenant = "ghost";
  const std::vector<std::pair<std::string, std::string>> intruders = {
      {"bravo tenant key", "Bearer " + bravo_.tenant_key},
      {"bravo connection token", "Bearer " + bravo_.connection_token},
  };
  for (const auto& [who, credential] : intruders) {
    for (const auto& [method, call] : AllCalls()) {
      SCOPED_TRACE(who + " calling " + method);
      grpc::Status on_alpha = Invoke(call, credential, alpha_.names);
      grpc::Status on_ghost = Invoke(call, credential, ghost);
      if (kPublicCalls.count(method)) {
        EXPECT_TRUE(on_alpha.ok()) << on_alpha.error_message();
        continue;
      }
      if (kSelfScopedCalls.count(method)) {
        EXPECT_TRUE(on_alpha.ok() || on_alpha.error_code() == StatusCode::PERMISSION_DENIED)
            << on_alpha.error_message();
        continue;
      }
      EXPECT_FALSE(on_alpha.ok());
      EXPECT_TRUE(on_alpha.error_code() == StatusCode::NOT_FOUND ||
                  on_alpha.error_code() == StatusCode::PERMISSION_DENIED)
          << on_alpha.error_code() << " " << on_alpha.error_message();
      // Indistinguishable from a tenant that does not exist.
      EXPECT_EQ(on_alpha.error_code(), on_ghost.error_code());
      EXPECT_EQ(on_alpha.error_message(),
                absl::StrReplaceAll(on_ghost.error_message(), {{"ghost", "alpha"}}));
      EXPECT_EQ(Reason(on_alpha), Reason(on_ghost));
    }
  }
  EXPECT_EQ(AlphaSnapshot(), before);
}

TEST_F(IsolationMatrixTest, AConnectionTokenSeesOnlyItsOwnConnection) {
  auto token = Client(alpha_.connection_token);
  v1::GetConnectionRequest own;
  own.set_name("tenants/alpha/connections/erp");
  EXPECT_TRUE(token->GetConnection(own).ok());
  v1::GetConnectionRequest sibling;
  sibling.set_name("tenants/alpha/connections/cmms");
  auto other = token->GetConnection(sibling);
  v1::GetConnectionRequest missing;
  missing.set_name("tenants/alpha/connections/nothing");
  auto absent = token->GetConnection(missing);
  EXPECT_EQ(other.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(absent.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(client::ErrorReason(other.status()), client::ErrorReason(absent.status()));
  v1::ListConnectionsRequest list;
  list.set_parent("tenants/alpha");
  EXPECT_EQ(token->ListConnections(list).status().code(), absl::StatusCode::kPermissionDenied);
}

TEST_F(IsolationMatrixTest, MissingMalformedAndRevokedCredentialsAreUnauthenticatedEverywhere) {
  // Revoke a tenant key of bravo through the operator.
  v1::CreateApiKeyRequest key;
  key.set_parent("tenants/bravo");
  auto doomed = op_->CreateApiKey(key);
  ASSERT_TRUE(doomed.ok());
  v1::RevokeApiKeyRequest revoke;
  revoke.set_name(doomed->api_key().name());
  ASSERT_TRUE(op_->RevokeApiKey(revoke).ok());
  std::string mistyped = alpha_.tenant_key;
  mistyped[10] = mistyped[10] == 'a' ? 'b' : 'a';
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"none", ""},
      {"not bearer", "Basic " + alpha_.tenant_key},
      {"garbage", "Bearer not-a-token"},
      {"truncated", "Bearer " + alpha_.tenant_key.substr(0, 30)},
      {"mistyped", "Bearer " + mistyped},
      {"unknown", "Bearer " + auth::MintToken(auth::TokenKind::kTenant)},
      {"revoked", "Bearer " + doomed->token()},
  };
  for (const auto& [what, credential] : bad) {
    for (const auto& [method, call] : AllCalls()) {
      SCOPED_TRACE(what + " calling " + method);
      grpc::Status status = Invoke(call, credential, alpha_.names);
      if (credential.empty() && kPublicCalls.count(method)) {
        // The catalog is open to anonymous callers.
        EXPECT_TRUE(status.ok()) << status.error_message();
        continue;
      }
      EXPECT_EQ(status.error_code(), StatusCode::UNAUTHENTICATED) << status.error_message();
      // The credential never comes back in an error.
      if (credential.size() > 20) {
        EXPECT_EQ(status.error_message().find(credential.substr(7, 20)), std::string::npos);
      }
    }
  }
}

TEST_F(IsolationMatrixTest, RevokingAKeyEndsTheEventStreamsItOpened) {
  v1::CreateApiKeyRequest key;
  key.set_parent("tenants/alpha");
  auto doomed = op_->CreateApiKey(key);
  ASSERT_TRUE(doomed.ok()) << doomed.status();
  auto client = Client(doomed->token());
  testing::Consumer consumer(*client, "tenants/alpha/subscriptions/orders");
  // The stream is open and delivering before the key goes.
  v1::PublishEventsRequest publish;
  publish.set_parent("tenants/alpha/connections/erp");
  publish.add_events()->set_event_id("before-revocation");
  ASSERT_TRUE(op_->PublishEvents(publish).ok());
  ASSERT_TRUE(consumer.WaitFor(
      [](const auto& got) {
        for (const auto& d : got) {
          if (d.event_id == "before-revocation") return true;
        }
        return false;
      },
      absl::Seconds(30)));

  v1::RevokeApiKeyRequest revoke;
  revoke.set_name(doomed->api_key().name());
  ASSERT_TRUE(op_->RevokeApiKey(revoke).ok());
  // The server ends the stream (Stop would cancel one still open after the
  // wait, and report CANCELLED).
  consumer.WaitFor([](const auto&) { return false; }, absl::Seconds(30));
  const absl::Status ended = consumer.Stop();
  EXPECT_EQ(ended.code(), absl::StatusCode::kUnauthenticated) << ended;
}

TEST_F(IsolationMatrixTest, OwnersAndOperatorsReachWhatTheyShould) {
  for (const auto& [method, call] : AllCalls()) {
    SCOPED_TRACE(method);
    static const std::set<std::string> kOperatorOnly = {
        "CreateTenant",      "ListTenants",      "UpdateTenant",        "DeleteTenant",
        "CreateCreditPool",  "GetCreditPool",    "ListCreditPools",     "SetCreditPoolCapacity",
        "ListLedgerEntries", "CreateApiKey",     "RotateTenantDataKey", "RewrapDataKeys",
        "CreateIncident",    "AnnotateIncident", "ResolveIncident"};
    if (kOperatorOnly.count(method)) {
      grpc::Status status = Invoke(call, "Bearer " + alpha_.tenant_key, alpha_.names);
      EXPECT_EQ(status.error_code(), StatusCode::PERMISSION_DENIED) << status.error_message();
    }
  }
  // Alpha's own key reads its own credentials, secrets included (it may reveal).
  auto alpha = Client(alpha_.tenant_key);
  v1::GetConnectionCredentialsRequest creds;
  creds.set_name("tenants/alpha/connections/erp/credentials");
  creds.set_reveal_secrets(true);
  auto revealed = alpha->GetConnectionCredentials(creds);
  ASSERT_TRUE(revealed.ok()) << revealed.status();
  EXPECT_EQ(revealed->password(), "alpha-secret-password");
  // Without reveal, no secret value is returned, only which fields are set.
  creds.set_reveal_secrets(false);
  auto masked = alpha->GetConnectionCredentials(creds);
  ASSERT_TRUE(masked.ok());
  EXPECT_EQ(masked->password(), "");
  EXPECT_EQ(masked->username(), "alpha-user");
  ASSERT_EQ(masked->secret_fields_size(), 1);
  EXPECT_EQ(masked->secret_fields(0), "password");
}

}  // namespace
}  // namespace switchyard
