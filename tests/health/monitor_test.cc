#include "server/health/monitor.h"

#include <deque>

#include "gtest/gtest.h"
#include "server/common/status.h"
#include "server/events/event_log.h"
#include "server/health/url_policy.h"
#include "server/incidents/incidents.h"
#include "tests/support/domain_fixture.h"

namespace switchyard::health {
namespace {

using State = v1::ConnectionHealth;

// Answers probes from a script, at once, recording what was asked.
class ScriptedProber final : public HttpProber {
 public:
  void Get(const std::string& url, absl::Duration timeout, size_t max_body,
           std::function<void(ProbeResult)> done) override {
    urls.push_back(url);
    ProbeResult result = next;
    done(result);
  }
  ProbeResult next{200, absl::Milliseconds(10), "", ""};
  std::vector<std::string> urls;
};

TEST(ApplyProbeTest, StatesMoveWithHysteresis) {
  storage::ConnectionHealthRow row;
  row.state = State::UNKNOWN;
  row.expected_status = 200;
  row.timeout_ms = 1000;
  const absl::Time t = absl::FromUnixSeconds(1800000000);
  const ProbeResult ok{200, absl::Milliseconds(20), "", ""};
  const ProbeResult down{0, absl::Seconds(1), "timed out", ""};
  const ProbeResult denied{401, absl::Milliseconds(20), "", ""};
  const ProbeResult slow{200, absl::Milliseconds(700), "", ""};
  ApplyProbe(row, ok, t);
  EXPECT_EQ(row.state, State::ONLINE);
  EXPECT_EQ(row.last_result, "HTTP 200 in 20 ms");
  ApplyProbe(row, down, t);
  EXPECT_EQ(row.state, State::DEGRADED);
  ApplyProbe(row, down, t);
  EXPECT_EQ(row.state, State::DEGRADED);
  ApplyProbe(row, down, t + absl::Seconds(1));
  EXPECT_EQ(row.state, State::OFFLINE);
  EXPECT_EQ(row.state_change_time, t + absl::Seconds(1));
  EXPECT_EQ(row.last_result, "timed out");
  ApplyProbe(row, ok, t);
  EXPECT_EQ(row.state, State::OFFLINE);  // one good probe is not enough
  ApplyProbe(row, ok, t);
  EXPECT_EQ(row.state, State::ONLINE);
  ApplyProbe(row, slow, t);
  EXPECT_EQ(row.state, State::DEGRADED);
  ApplyProbe(row, denied, t);
  ApplyProbe(row, denied, t);
  EXPECT_EQ(row.state, State::AUTH_REQUIRED);
}

TEST(CheckOutboundUrlTest, RefusesTheGatewaysOwnNetworkByAddress) {
  for (const char* ok : {"https://erp.acme.example/health", "http://93.184.216.34:8080/x",
                         "https://[2606:4700::1111]/", "http://user@host.example/"}) {
    EXPECT_TRUE(CheckOutboundUrl(ok, false).ok()) << ok;
  }
  for (const char* refused :
       {"http://127.0.0.1/", "http://localhost:8080/", "http://169.254.169.254/latest/meta-data",
        "http://10.1.2.3/", "http://172.20.0.1/", "http://192.168.1.1/", "http://[::1]:80/",
        "http://[fd00::1]/", "http://[::ffff:127.0.0.1]/", "http://0.0.0.0/", "http://x@127.0.0.1/",
        "http://[64:ff9b::a9fe:a9fe]/", "http://224.0.0.1/", "http://198.18.0.1/",
        "http://[ff02::1]/"}) {
    EXPECT_EQ(ReasonOf(CheckOutboundUrl(refused, false)), "URL_NOT_ALLOWED") << refused;
    EXPECT_TRUE(CheckOutboundUrl(refused, true).ok()) << refused;
  }
  for (const char* bad : {"ftp://x/", "http://", "https:///path", "http://a b/", "http://[::1/",
                          "https://erp.acme.example/feed#top"}) {
    EXPECT_EQ(ReasonOf(CheckOutboundUrl(bad, true)), "INVALID_URL") << bad;
  }
}

TEST(NextProbeTest, BacksOffWhileFailingWithinBounds) {
  storage::ConnectionHealthRow row;
  row.interval_ms = 30000;
  const absl::Time t = absl::FromUnixSeconds(1800000000);
  EXPECT_EQ(NextProbe(row, t, 0), t + absl::Seconds(30));
  EXPECT_EQ(NextProbe(row, t, 1), t + absl::Seconds(33));
  EXPECT_EQ(NextProbe(row, t, -1), t + absl::Seconds(27));
  row.consecutive_failures = 2;
  EXPECT_EQ(NextProbe(row, t, 0), t + absl::Seconds(60));
  row.consecutive_failures = 10;
  EXPECT_EQ(NextProbe(row, t, 0), t + absl::Seconds(240));  // 8 intervals
  row.interval_ms = 60000;
  EXPECT_EQ(NextProbe(row, t, 0), t + absl::Minutes(5));  // at most 5 minutes
}

class HealthMonitorTest : public testing::DomainTest {
 protected:
  void SetUp() override {
    DomainTest::SetUp();
    CreatePool("main", 20);
    CreateTenant("acme", "main");
    ASSERT_TRUE(Connect("acme", "erp", "netsuite", v1::CLOUD).ok());
    monitor_ = std::make_unique<HealthMonitor>(*store_, clock_, prober_);
    ASSERT_TRUE(monitor_->Load().ok());
    incidents_ = std::make_unique<incidents::IncidentLog>(*store_, clock_);
  }

  absl::StatusOr<v1::ConnectionHealth> SetCheck(const std::string& url) {
    v1::SetConnectionHealthCheckRequest req;
    req.set_name("tenants/acme/connections/erp/health");
    req.mutable_check()->set_url(url);
    req.mutable_check()->mutable_interval()->set_seconds(10);
    return monitor_->Set(req, Scope::All());
  }

  v1::ConnectionHealth Health() {
    auto h = monitor_->Get("tenants/acme/connections/erp/health", Scope::All());
    EXPECT_TRUE(h.ok()) << h.status();
    return *h;
  }

  // One probe: run what is due, then apply its (immediate) result.
  void Probe() {
    monitor_->Tick();
    monitor_->Tick();
    clock_.Advance(absl::Minutes(6));  // past any backoff
  }

  std::vector<v1::Incident> OpenIncidents() {
    v1::ListIncidentsRequest req;
    req.set_state(v1::Incident::OPEN);
    auto list = incidents_->List(req, Scope::All());
    EXPECT_TRUE(list.ok()) << list.status();
    return {list->incidents().begin(), list->incidents().end()};
  }

  ScriptedProber prober_;
  std::unique_ptr<HealthMonitor> monitor_;
  std::unique_ptr<incidents::IncidentLog> incidents_;
};

TEST_F(HealthMonitorTest, ProbesRecordStatesEventsAndIncidents) {
  auto set = SetCheck("https://erp.acme.example/health");
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->state(), State::UNKNOWN);
  Probe();
  EXPECT_EQ(Health().state(), State::ONLINE);
  EXPECT_EQ(prober_.urls.size(), 1u);

  prober_.next = {0, absl::Seconds(5), "connection refused", ""};
  Probe();
  Probe();
  EXPECT_TRUE(OpenIncidents().empty());
  Probe();
  v1::ConnectionHealth h = Health();
  EXPECT_EQ(h.state(), State::OFFLINE);
  EXPECT_EQ(h.consecutive_failures(), 3);
  EXPECT_EQ(h.last_result(), "connection refused");
  std::vector<v1::Incident> open = OpenIncidents();
  ASSERT_EQ(open.size(), 1u);
  EXPECT_EQ(open[0].component(), "tenants/acme/connections/erp");
  EXPECT_TRUE(open[0].automatic());

  prober_.next = {200, absl::Milliseconds(5), "", ""};
  Probe();
  Probe();
  EXPECT_EQ(Health().state(), State::ONLINE);
  EXPECT_TRUE(OpenIncidents().empty());

  // Down again; then the check is set anew (a fixed URL, say): the state
  // starts from UNKNOWN, and the incident does not stay open.
  prober_.next = {0, absl::Seconds(5), "connection refused", ""};
  for (int i = 0; i < 3; ++i) Probe();
  ASSERT_EQ(OpenIncidents().size(), 1u);
  ASSERT_TRUE(SetCheck("https://erp2.acme.example/health").ok());
  EXPECT_TRUE(OpenIncidents().empty());

  // Every change is an event on the connection's stream.
  events::EventLog log(*store_);
  v1::ListEventsRequest req;
  req.set_parent("tenants/acme/connections/erp");
  auto events = log.List(req, Scope::All());
  ASSERT_TRUE(events.ok());
  std::vector<std::string> changes;
  for (const auto& e : events->events()) {
    if (e.type() == "switchyard.connection.health_changed") changes.push_back(e.body());
  }
  // UNKNOWN->ONLINE->DEGRADED->OFFLINE->ONLINE->DEGRADED->OFFLINE
  ASSERT_EQ(changes.size(), 6u);
  EXPECT_NE(changes[2].find(R"("from":"DEGRADED","to":"OFFLINE")"), std::string::npos);
}

TEST_F(HealthMonitorTest, OneProbeInFlightPerConnectionAndBadSettingsAreRefused) {
  // A prober that never answers: the next tick must not start a second one.
  class Silent final : public HttpProber {
   public:
    void Get(const std::string&, absl::Duration, size_t,
             std::function<void(ProbeResult)> done) override {
      held.push_back(std::move(done));
    }
    std::vector<std::function<void(ProbeResult)>> held;
  } silent;
  HealthMonitor monitor(*store_, clock_, silent);
  v1::SetConnectionHealthCheckRequest req;
  req.set_name("tenants/acme/connections/erp/health");
  req.mutable_check()->set_url("http://erp.acme.example/ping");
  ASSERT_TRUE(monitor.Set(req, Scope::All()).ok());
  monitor.Tick();
  clock_.Advance(absl::Hours(1));
  monitor.Tick();
  EXPECT_EQ(silent.held.size(), 1u);
  for (auto& done : silent.held) done({0, absl::ZeroDuration(), "shutting down", ""});

  req.mutable_check()->set_url("ftp://erp.acme.example/");
  EXPECT_EQ(ReasonOf(monitor.Set(req, Scope::All()).status()), "INVALID_URL");
  req.mutable_check()->set_url("http://erp.acme.example/");
  req.mutable_check()->mutable_interval()->set_seconds(1);
  EXPECT_EQ(ReasonOf(monitor.Set(req, Scope::All()).status()), "INVALID_INTERVAL");
  req.mutable_check()->mutable_interval()->set_seconds(30);
  EXPECT_EQ(monitor.Set(req, Scope::Tenant("globex")).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace switchyard::health
