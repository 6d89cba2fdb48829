// Health checks of connected systems through the real server and real HTTP
// (libcurl): a system that answers is ONLINE, one that stops answering goes
// DEGRADED and then OFFLINE with an incident, and comes back. Each change is
// awaited as an event on a subscription, never by sleeping.

#include "absl/strings/str_cat.h"
#include "client/gateway_client.h"
#include "gtest/gtest.h"
#include "tests/support/gateway_setup.h"
#include "tests/support/server_process.h"
#include "tests/support/temp_dir.h"

namespace switchyard {
namespace {

class HealthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = testing::ServerProcess::Start(
        dir_.path(), {"--health_check_min_interval=50ms", "--outbound_allow_private"});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    client::ClientOptions options;
    options.target = server_->target();
    options.api_key = server_->operator_key();
    client_ = client::GatewayClient::Create(options);
    ASSERT_TRUE(
        testing::CreateTenantWithConnection(*client_, "main", 10, "acme", "mx", "maintainx").ok());
    v1::CreateSubscriptionRequest sub;
    sub.set_parent("tenants/acme");
    sub.set_subscription_id("health");
    sub.mutable_subscription()->mutable_filter()->add_event_types(
        "switchyard.connection.health_changed");
    ASSERT_TRUE(client_->CreateSubscription(sub).ok());
    stream_ = client_->StreamEvents("tenants/acme/subscriptions/health");
  }

  void Check(const std::string& url) {
    v1::SetConnectionHealthCheckRequest req;
    req.set_name("tenants/acme/connections/mx/health");
    req.mutable_check()->set_url(url);
    req.mutable_check()->mutable_interval()->set_nanos(100 * 1000 * 1000);
    req.mutable_check()->mutable_timeout()->set_nanos(100 * 1000 * 1000);
    auto set = client_->SetConnectionHealthCheck(req);
    ASSERT_TRUE(set.ok()) << set.status();
  }

  // The body of the next health change.
  std::string NextChange() {
    v1::StreamEventsResponse response;
    if (!stream_->Next(&response) || response.received_events_size() == 0) return "stream ended";
    stream_->Ack({response.received_events(0).ack_id()});
    return response.received_events(0).event().body();
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::ServerProcess> server_;
  std::unique_ptr<client::GatewayClient> client_;
  std::unique_ptr<client::EventStream> stream_;
};

TEST_F(HealthTest, ASystemThatStopsAnsweringGoesOfflineWithAnIncidentAndComesBack) {
  // The gateway's own HTTP listener stands in for the connected system.
  const std::string up = absl::StrCat("http://127.0.0.1:", server_->http_port(), "/metrics");
  Check(up);
  EXPECT_NE(NextChange().find(R"("from":"UNKNOWN","to":"ONLINE")"), std::string::npos);

  // Port 1 on loopback: connection refused.
  Check("http://127.0.0.1:1/health");
  std::string change = NextChange();
  EXPECT_NE(change.find(R"("to":"DEGRADED")"), std::string::npos) << change;
  change = NextChange();
  EXPECT_NE(change.find(R"("from":"DEGRADED","to":"OFFLINE")"), std::string::npos) << change;
  v1::GetConnectionHealthRequest get;
  get.set_name("tenants/acme/connections/mx/health");
  auto health = client_->GetConnectionHealth(get);
  ASSERT_TRUE(health.ok());
  EXPECT_EQ(health->state(), v1::ConnectionHealth::OFFLINE);
  EXPECT_GE(health->consecutive_failures(), 3);
  v1::ListIncidentsRequest open;
  open.set_state(v1::Incident::OPEN);
  auto incidents = client_->ListIncidents(open);
  ASSERT_TRUE(incidents.ok());
  ASSERT_EQ(incidents->incidents_size(), 1);
  EXPECT_EQ(incidents->incidents(0).component(), "tenants/acme/connections/mx");

  Check(up);  // new settings: UNKNOWN, then ONLINE at the first good probe
  change = NextChange();
  EXPECT_NE(change.find(R"("to":"ONLINE")"), std::string::npos) << change;
  stream_->Cancel();
}

}  // namespace
}  // namespace switchyard
