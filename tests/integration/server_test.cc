// Drives the real switchyard-server binary over gRPC.

#include <grpcpp/grpcpp.h>

#include <fstream>
#include <sstream>

#include "client/gateway_client.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"
#include "switchyard/v1/gateway.grpc.pb.h"
#include "tests/support/server_process.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_store.h"

namespace switchyard {
namespace {

using client::ErrorReason;
using client::GatewayClient;

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override { StartServer(); }

  void StartServer() {
    auto server = testing::ServerProcess::Start(dir_.path());
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    client::ClientOptions options;
    options.target = server_->target();
    options.api_key = server_->operator_key();
    client_ = GatewayClient::Create(options);
  }

  void CreatePoolAndTenant(int64_t capacity) {
    v1::CreateCreditPoolRequest pool;
    pool.set_credit_pool_id("main");
    pool.mutable_credit_pool()->set_capacity(capacity);
    ASSERT_TRUE(client_->CreateCreditPool(pool).ok());
    v1::CreateTenantRequest tenant;
    tenant.set_tenant_id("acme");
    tenant.mutable_tenant()->set_credit_pool("creditPools/main");
    ASSERT_TRUE(client_->CreateTenant(tenant).ok());
  }

  v1::CreateConnectionRequest ConnectRequest(const std::string& id, const std::string& system,
                                             v1::Deployment deployment) {
    v1::CreateConnectionRequest req;
    req.set_parent("tenants/acme");
    req.set_connection_id(id);
    req.mutable_connection()->set_system("systems/" + system);
    req.mutable_connection()->set_deployment(deployment);
    return req;
  }

  std::string ServerLog() {
    std::ifstream in(dir_.path() + "/server.log");
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::ServerProcess> server_;
  std::unique_ptr<GatewayClient> client_;
};

TEST_F(ServerTest, ServesTheStandardHealthService) {
  auto overall = client_->CheckHealth("");
  ASSERT_TRUE(overall.ok()) << overall.status();
  EXPECT_EQ(overall->status(), grpc::health::v1::HealthCheckResponse::SERVING);
  auto gateway = client_->CheckHealth("switchyard.v1.Gateway");
  ASSERT_TRUE(gateway.ok());
  EXPECT_EQ(gateway->status(), grpc::health::v1::HealthCheckResponse::SERVING);
  EXPECT_EQ(client_->CheckHealth("no.such.Service").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ServerTest, ConnectsAndDisconnectsSystemsPayingWithCredits) {
  CreatePoolAndTenant(12);
  auto s4 = client_->CreateConnection(ConnectRequest("s4-eu", "sap-s4hana", v1::CLOUD));
  ASSERT_TRUE(s4.ok()) << s4.status();
  EXPECT_EQ(s4->credits(), 4);
  auto ecc = client_->CreateConnection(ConnectRequest("ecc", "sap-ecc", v1::ON_PREMISES));
  ASSERT_TRUE(ecc.ok()) << ecc.status();
  EXPECT_EQ(ecc->credits(), 8);

  v1::GetCreditPoolRequest get_pool;
  get_pool.set_name("creditPools/main");
  EXPECT_EQ(client_->GetCreditPool(get_pool)->available(), 0);

  auto more = client_->CreateConnection(ConnectRequest("mx", "maintainx", v1::CLOUD));
  EXPECT_EQ(more.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ErrorReason(more.status()), "CREDITS_EXHAUSTED");

  v1::DeleteConnectionRequest del;
  del.set_name(s4->name());
  auto gone = client_->DeleteConnection(del);
  ASSERT_TRUE(gone.ok());
  EXPECT_EQ(gone->state(), v1::Connection::DISCONNECTED);
  EXPECT_EQ(client_->GetCreditPool(get_pool)->available(), 4);
  EXPECT_TRUE(client_->CreateConnection(ConnectRequest("mx", "maintainx", v1::CLOUD)).ok());
}

TEST_F(ServerTest, ErrorsCarryTheCanonicalCodeAndAnErrorInfoReason) {
  CreatePoolAndTenant(10);
  // Raw stub: the status details are what any gRPC client receives.
  grpc::ClientContext context;
  context.AddMetadata("authorization", "Bearer " + server_->operator_key());
  v1::GetConnectionRequest req;
  req.set_name("tenants/acme/connections/Not_Valid");
  v1::Connection response;
  grpc::Status status = client_->stub().GetConnection(&context, req, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("tenants/{tenant}/connections/{connection}"),
            std::string::npos);
  google::rpc::Status details;
  ASSERT_TRUE(details.ParseFromString(status.error_details()));
  google::rpc::ErrorInfo info;
  ASSERT_TRUE(details.details(0).UnpackTo(&info));
  EXPECT_EQ(info.reason(), "INVALID_NAME");
  EXPECT_EQ(info.domain(), "switchyard.v1");

  req.set_name("tenants/acme/connections/missing");
  auto missing = client_->GetConnection(req);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ErrorReason(missing.status()), "CONNECTION_NOT_FOUND");

  v1::ReserveCreditsRequest reserve;
  reserve.set_parent("tenants/acme");
  reserve.set_amount(0);
  EXPECT_EQ(ErrorReason(client_->ReserveCredits(reserve).status()), "INVALID_AMOUNT");
  reserve.set_amount(1);
  reserve.mutable_ttl()->set_seconds(0);
  reserve.mutable_ttl()->set_nanos(1000);
  EXPECT_EQ(ErrorReason(client_->ReserveCredits(reserve).status()), "INVALID_TTL");

  v1::ListTenantsRequest list;
  list.set_page_token("not-a-token");
  auto bad_token = client_->ListTenants(list);
  EXPECT_EQ(bad_token.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ErrorReason(bad_token.status()), "INVALID_PAGE_TOKEN");
}

TEST_F(ServerTest, RetriedCreateWithTheSameRequestIdReturnsTheOriginalResult) {
  CreatePoolAndTenant(10);
  v1::CreateConnectionRequest req = ConnectRequest("s4", "sap-s4hana", v1::CLOUD);
  req.set_request_id("6d1f7c2e-create-s4");
  auto first = client_->CreateConnection(req);
  ASSERT_TRUE(first.ok());
  auto retry = client_->CreateConnection(req);
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_EQ(retry->name(), first->name());
  EXPECT_EQ(retry->create_time().seconds(), first->create_time().seconds());
  v1::GetCreditPoolRequest get_pool;
  get_pool.set_name("creditPools/main");
  EXPECT_EQ(client_->GetCreditPool(get_pool)->consumed(), 4);
  req.mutable_connection()->set_display_name("changed");
  auto conflicting = client_->CreateConnection(req);
  EXPECT_EQ(conflicting.status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(ErrorReason(conflicting.status()), "REQUEST_ID_REUSED");
}

TEST_F(ServerTest, StateSurvivesARestartAndSigtermExitsCleanly) {
  CreatePoolAndTenant(10);
  ASSERT_TRUE(client_->CreateConnection(ConnectRequest("mx", "maintainx", v1::CLOUD)).ok());
  client_.reset();  // an idle client connection would make the drain wait for it
  EXPECT_EQ(server_->Terminate(), 0);
  const std::string log = ServerLog();
  EXPECT_NE(log.find("\"msg\":\"draining\""), std::string::npos) << log;
  EXPECT_NE(log.find("\"msg\":\"stopped\""), std::string::npos) << log;

  StartServer();
  v1::GetConnectionRequest get;
  get.set_name("tenants/acme/connections/mx");
  auto mx = client_->GetConnection(get);
  ASSERT_TRUE(mx.ok()) << mx.status();
  EXPECT_EQ(mx->credits(), 1);
}

TEST_F(ServerTest, ReadsItsSettingsFromAFlagFile) {
  EXPECT_EQ(server_->Terminate(), 0);
  const std::string flags = dir_.path() + "/server.flags";
  std::ofstream(flags) << "# settings\n--default_reservation_ttl=90s\n--log_level=warning\n";
  auto server = testing::ServerProcess::Start(dir_.path(), {"--flagfile=" + flags});
  ASSERT_TRUE(server.ok()) << server.status();
  server_ = *std::move(server);
  client::ClientOptions options;
  options.target = server_->target();
  options.api_key = server_->operator_key();
  client_ = GatewayClient::Create(options);
  CreatePoolAndTenant(5);
  v1::ReserveCreditsRequest reserve;
  reserve.set_parent("tenants/acme");
  reserve.set_amount(1);
  auto r = client_->ReserveCredits(reserve);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->expire_time().seconds() - r->create_time().seconds(), 90);
}

TEST_F(ServerTest, CallsBeyondTheThreadLimitAreRefusedNotQueued) {
  client_.reset();
  EXPECT_EQ(server_->Terminate(), 0);
  auto server = testing::ServerProcess::Start(dir_.path(), {"--grpc_max_threads=8"});
  ASSERT_TRUE(server.ok()) << server.status();
  server_ = *std::move(server);
  // Writes wait while the lock is held, each holding a thread.
  auto block = testing::StoreWriteBlock::Hold(dir_.path());
  ASSERT_TRUE(block.ok()) << block.status();

  auto stub = v1::Gateway::NewStub(
      grpc::CreateChannel(server_->target(), grpc::InsecureChannelCredentials()));
  grpc::CompletionQueue queue;
  struct Call {
    grpc::ClientContext context;
    v1::CreditPool reply;
    grpc::Status status;
    std::unique_ptr<grpc::ClientAsyncResponseReader<v1::CreditPool>> rpc;
  };
  constexpr int kCalls = 24;
  std::vector<std::unique_ptr<Call>> calls;
  for (int i = 0; i < kCalls; ++i) {
    auto call = std::make_unique<Call>();
    call->context.AddMetadata("authorization", "Bearer " + server_->operator_key());
    call->context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    v1::CreateCreditPoolRequest request;
    request.set_credit_pool_id("p" + std::to_string(i));
    request.mutable_credit_pool()->set_capacity(1);
    call->rpc = stub->AsyncCreateCreditPool(&call->context, request, &queue);
    call->rpc->Finish(&call->reply, &call->status, reinterpret_cast<void*>(intptr_t{i}));
    calls.push_back(std::move(call));
  }
  // At most 7 of the 8 threads run calls (one keeps taking new ones); those
  // wait for the store, for up to its 10 s busy timeout. So the first 17
  // answers are refusals, given at once, whatever the order; then the store
  // goes on, and what is left is answered.
  int created = 0;
  int refused = 0;
  for (int i = 0; i < kCalls; ++i) {
    void* tag = nullptr;
    bool ok = false;
    if (!queue.Next(&tag, &ok)) break;
    const grpc::Status& status = calls[reinterpret_cast<intptr_t>(tag)]->status;
    if (status.ok()) {
      ++created;
    } else {
      EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
          << status.error_message();
      EXPECT_EQ(status.error_message(), "Server Threadpool Exhausted");
      ++refused;
    }
    if (i < kCalls - 7) {
      EXPECT_FALSE(status.ok()) << "a call ran while all threads were waiting for the store";
    }
    if (i == kCalls - 8) (*block)->Release();
  }
  (*block)->Release();  // also when an answer was missing
  queue.Shutdown();
  void* tag = nullptr;
  bool ok = false;
  while (queue.Next(&tag, &ok)) {
  }
  // Those that got a thread finished once the store went on; the others
  // were refused, not half done.
  EXPECT_GE(created, 1);
  EXPECT_EQ(created + refused, kCalls);
  client::ClientOptions options;
  options.target = server_->target();
  options.api_key = server_->operator_key();
  client_ = GatewayClient::Create(options);
  auto pools = client_->ListCreditPools(v1::ListCreditPoolsRequest());
  ASSERT_TRUE(pools.ok()) << pools.status();
  EXPECT_EQ(pools->credit_pools_size(), created);
}

TEST_F(ServerTest, LogsAreOneJsonObjectPerLine) {
  std::istringstream lines(ServerLog());
  std::string line;
  int count = 0;
  while (std::getline(lines, line)) {
    ++count;
    EXPECT_EQ(line.front(), '{') << line;
    EXPECT_EQ(line.back(), '}') << line;
    EXPECT_NE(line.find("\"ts\":"), std::string::npos) << line;
    EXPECT_NE(line.find("\"level\":"), std::string::npos) << line;
  }
  EXPECT_GT(count, 0);
}

TEST_F(ServerTest, RefusesToStartWithABrokenCatalogAndSaysWhy) {
  const std::string catalog = dir_.path() + "/bad-catalog.textproto";
  std::ofstream(catalog) << "systems { id: \"x\" tier: 9 deployments: [CLOUD] }\n";
  testing::TempDir other;
  auto server = testing::ServerProcess::Start(other.path(), {"--catalog_file=" + catalog});
  EXPECT_FALSE(server.ok());
  std::ifstream in(other.path() + "/server.log");
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_NE(text.str().find("tier 9"), std::string::npos) << text.str();
}

TEST_F(ServerTest, RefusesToStartWithSettingsOutOfRangeAndSaysWhich) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--webhook_rate_per_connection=0", "webhook rate per connection"},
      {"--webhook_burst_per_connection=0.5", "burst at least 1"},
      {"--grpc_max_threads=4", "thread limit must be at least 8"},
      {"--grpc_max_connection_age_grace=1m", "grace must be at least 3m"},
  };
  for (const auto& [flag, message] : cases) {
    testing::TempDir other;
    auto server = testing::ServerProcess::Start(other.path(), {flag});
    EXPECT_FALSE(server.ok()) << flag;
    std::ifstream in(other.path() + "/server.log");
    std::stringstream text;
    text << in.rdbuf();
    EXPECT_NE(text.str().find(message), std::string::npos) << flag << ": " << text.str();
  }
}

}  // namespace
}  // namespace switchyard
