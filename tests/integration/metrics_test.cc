// /metrics against the real server: Prometheus text with the RPC, webhook,
// credit and readiness metrics, and every metric the shipped alert rules use.

#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/gateway_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/http_client.h"
#include "tests/support/server_process.h"
#include "tests/support/temp_dir.h"

namespace switchyard {
namespace {

using ::testing::HasSubstr;

class MetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = testing::ServerProcess::Start(dir_.path());
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    client::ClientOptions options;
    options.target = server_->target();
    options.api_key = server_->operator_key();
    client_ = client::GatewayClient::Create(options);
  }

  std::string Scrape() {
    testing::HttpConnection http(server_->http_port());
    testing::HttpReply reply = http.Send("GET", "/metrics", {}, "");
    EXPECT_EQ(reply.status, 200);
    EXPECT_THAT(reply.headers["Content-Type"], HasSubstr("text/plain; version=0.0.4"));
    return reply.body;
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::ServerProcess> server_;
  std::unique_ptr<client::GatewayClient> client_;
};

TEST_F(MetricsTest, ExportsCallsWebhooksCreditsAndReadiness) {
  v1::CreateCreditPoolRequest pool;
  pool.set_credit_pool_id("main");
  pool.mutable_credit_pool()->set_capacity(10);
  ASSERT_TRUE(client_->CreateCreditPool(pool).ok());
  v1::GetTenantRequest missing;
  missing.set_name("tenants/nobody");
  EXPECT_FALSE(client_->GetTenant(missing).ok());
  testing::HttpConnection http(server_->http_port());
  EXPECT_EQ(http.Send("POST", "/webhooks/tenants/nobody/connections/x",
                      {{"content-type", "application/json"}}, "{}")
                .status,
            404);

  const std::string text = Scrape();
  EXPECT_THAT(text, HasSubstr("switchyard_ready 1\n"));
  EXPECT_THAT(
      text,
      HasSubstr(
          R"(switchyard_grpc_requests_total{code="OK",method="CreateCreditPool",service="switchyard.v1.Gateway"} 1)"));
  EXPECT_THAT(
      text,
      HasSubstr(
          R"(switchyard_grpc_requests_total{code="NOT_FOUND",method="GetTenant",service="switchyard.v1.Gateway"} 1)"));
  EXPECT_THAT(text, HasSubstr("# TYPE switchyard_grpc_request_duration_seconds histogram"));
  EXPECT_THAT(text, HasSubstr(R"(switchyard_credit_pool_capacity{pool="main"} 10)"));
  EXPECT_THAT(text, HasSubstr(R"(switchyard_credit_pool_available{pool="main"} 10)"));
  EXPECT_THAT(text, HasSubstr("switchyard_webhooks_received_total 1\n"));
  EXPECT_THAT(text,
              HasSubstr(R"(switchyard_webhooks_rejected_total{reason="UNKNOWN_CONNECTION"} 1)"));
  EXPECT_THAT(text, HasSubstr("switchyard_store_up 1\n"));
  EXPECT_THAT(text, HasSubstr(R"(switchyard_webhook_duration_seconds_count{code="404"} 1)"));

  testing::HttpConnection other(server_->http_port());
  EXPECT_EQ(other.Send("POST", "/metrics", {}, "").status, 405);
}

TEST_F(MetricsTest, EveryMetricTheAlertRulesUseIsExported) {
  std::ifstream in(SWITCHYARD_ALERTS_PATH);
  ASSERT_TRUE(in) << SWITCHYARD_ALERTS_PATH;
  std::stringstream rules;
  rules << in.rdbuf();
  const std::string text = Scrape();
  std::set<std::string> used;
  const std::regex metric(R"(\bswitchyard_[a-z0-9_]+)");
  const std::string all = rules.str();
  for (auto it = std::sregex_iterator(all.begin(), all.end(), metric); it != std::sregex_iterator();
       ++it) {
    used.insert(it->str());
  }
  ASSERT_GE(used.size(), 5u) << "the rules use too few metrics to be the real ones";
  for (const std::string& name : used) {
    // A histogram's series (name_bucket) are typed under its own name.
    if (absl::EndsWith(name, "_bucket")) {
      const std::string histogram = name.substr(0, name.size() - std::string("_bucket").size());
      EXPECT_THAT(text, HasSubstr(absl::StrCat("# TYPE ", histogram, " histogram")))
          << histogram << " is not exported";
      continue;
    }
    EXPECT_THAT(text, HasSubstr(absl::StrCat("# TYPE ", name, " "))) << name << " is not exported";
  }
}

}  // namespace
}  // namespace switchyard
