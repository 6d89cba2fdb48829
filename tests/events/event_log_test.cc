#include "server/events/event_log.h"

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/common/status.h"
#include "tests/support/domain_fixture.h"

namespace switchyard::events {
namespace {

class EventLogTest : public testing::DomainTest {
 protected:
  void SetUp() override {
    DomainTest::SetUp();
    CreatePool("main", 20);
    CreateTenant("acme", "main");
    ASSERT_TRUE(Connect("acme", "erp", "netsuite", v1::CLOUD).ok());
    log_ = std::make_unique<EventLog>(*store_);
  }

  absl::StatusOr<v1::PublishEventsResponse> Publish(std::vector<std::string> ids,
                                                    const Scope& scope = Scope::All()) {
    v1::PublishEventsRequest req;
    req.set_parent("tenants/acme/connections/erp");
    for (const std::string& id : ids) {
      auto* e = req.add_events();
      e->set_event_id(id);
      e->set_type("purchase_order.updated");
      e->set_body(R"({"po":"4711"})");
    }
    return log_->Publish(req, scope, clock_.Now());
  }

  std::vector<v1::Event> All() {
    v1::ListEventsRequest req;
    req.set_parent("tenants/acme/connections/erp");
    req.set_page_size(1000);
    auto list = log_->List(req, Scope::All());
    EXPECT_TRUE(list.ok()) << list.status();
    return {list->events().begin(), list->events().end()};
  }

  std::unique_ptr<EventLog> log_;
};

TEST_F(EventLogTest, TheGatewayRecordsConnectionLifecycleEvents) {
  ASSERT_TRUE(
      connections_->SetState("tenants/acme/connections/erp", v1::Connection::ACTIVE, Scope::All())
          .ok());
  ASSERT_TRUE(Disconnect("tenants/acme/connections/erp").ok());
  auto events = All();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].type(), "switchyard.connection.created");
  EXPECT_EQ(events[1].type(), "switchyard.connection.state_changed");
  EXPECT_NE(events[1].body().find("\"state\":\"ACTIVE\""), std::string::npos);
  EXPECT_EQ(events[2].type(), "switchyard.connection.disconnected");
  for (const auto& e : events) EXPECT_EQ(e.source(), v1::Event::GATEWAY);
}

// The events of `connection` of `tenant` with `type`.
std::vector<v1::Event> EventsOfType(EventLog& log, const std::string& tenant,
                                    const std::string& connection, const std::string& type) {
  v1::ListEventsRequest req;
  req.set_parent("tenants/" + tenant + "/connections/" + connection);
  auto list = log.List(req, Scope::All());
  EXPECT_TRUE(list.ok()) << list.status();
  std::vector<v1::Event> out;
  for (const auto& e : list->events()) {
    if (e.type() == type) out.push_back(e);
  }
  return out;
}

TEST_F(EventLogTest, CrossingTheLowCreditMarkIsRecordedOnceOnTheConnectionThatCrossedIt) {
  // Pool "main": 20 credits, 2 taken by erp. 10% of 20 is 2.
  for (const char* id : {"s1", "s2", "s3"}) {
    ASSERT_TRUE(Connect("acme", id, "sap-s4hana", v1::CLOUD).ok());  // 4 each: 14, 10, 6 left
    EXPECT_TRUE(EventsOfType(*log_, "acme", id, "switchyard.credits.low").empty()) << id;
  }
  ASSERT_TRUE(Connect("acme", "s4", "sap-s4hana", v1::CLOUD).ok());  // 2 left: crossed
  auto low = EventsOfType(*log_, "acme", "s4", "switchyard.credits.low");
  ASSERT_EQ(low.size(), 1u);
  EXPECT_EQ(low[0].source(), v1::Event::GATEWAY);
  EXPECT_EQ(low[0].body(), R"({"connection":"tenants/acme/connections/s4","scope":"pool",)"
                           R"("credit_pool":"creditPools/main","capacity":20,"available":2})");
  ASSERT_TRUE(Connect("acme", "s5", "maintainx", v1::CLOUD).ok());  // 1 left: already low
  EXPECT_TRUE(EventsOfType(*log_, "acme", "s5", "switchyard.credits.low").empty());
}

TEST_F(EventLogTest, ATenantNearItsCreditLimitIsTold) {
  v1::CreateTenantRequest req;
  req.set_tenant_id("lim");
  req.mutable_tenant()->set_credit_pool("creditPools/main");
  req.mutable_tenant()->set_credit_limit(10);
  ASSERT_TRUE(tenants_->Create(req).ok());
  for (const char* id : {"n1", "n2", "n3", "n4"}) {
    ASSERT_TRUE(Connect("lim", id, "netsuite", v1::CLOUD).ok());  // 2 each: room 8, 6, 4, 2
  }
  ASSERT_TRUE(Connect("lim", "n5", "netsuite", v1::CLOUD).ok());  // room 0 <= 1: crossed
  auto low = EventsOfType(*log_, "lim", "n5", "switchyard.credits.low");
  ASSERT_EQ(low.size(), 1u);
  EXPECT_EQ(low[0].body(), R"({"connection":"tenants/lim/connections/n5","scope":"tenant",)"
                           R"("tenant":"tenants/lim","credit_limit":10,"remaining":0})");
}

TEST_F(EventLogTest, PublishedBatchesAreStoredInOrderAndDeduplicated) {
  auto first = Publish({"po-1", "po-2"});
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->results_size(), 2);
  EXPECT_EQ(first->results(1).sequence(), first->results(0).sequence() + 1);
  auto again = Publish({"po-2", "po-3"});
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->results(0).duplicate());
  EXPECT_EQ(again->results(0).sequence(), first->results(1).sequence());
  EXPECT_FALSE(again->results(1).duplicate());
  auto events = All();
  ASSERT_EQ(events.size(), 4u);  // created + po-1..po-3
  EXPECT_EQ(events[3].event_id(), "po-3");
  EXPECT_EQ(events[3].source(), v1::Event::API);
}

TEST_F(EventLogTest, APageOfLargeEventsEndsEarlySoThatAClientCanReceiveIt) {
  v1::PublishEventsRequest publish;
  publish.set_parent("tenants/acme/connections/erp");
  for (int i = 0; i < 5; ++i) {
    auto* e = publish.add_events();
    e->set_event_id(absl::StrCat("big-", i));
    e->set_body(std::string(900 << 10, 'x'));
  }
  ASSERT_TRUE(log_->Publish(publish, Scope::All(), clock_.Now()).ok());
  std::vector<std::string> seen;
  v1::ListEventsRequest req;
  req.set_parent("tenants/acme/connections/erp");
  req.set_page_size(1000);
  int pages = 0;
  while (true) {
    auto page = log_->List(req, Scope::All());
    ASSERT_TRUE(page.ok()) << page.status();
    if (page->events().empty()) break;
    ++pages;
    EXPECT_LT(page->ByteSizeLong(), size_t{4} << 20);  // gRPC's usual limit
    for (const v1::Event& e : page->events()) seen.push_back(e.event_id());
    req.set_after_sequence(page->last_sequence());
  }
  EXPECT_GE(pages, 2);
  ASSERT_EQ(seen.size(), 6u);  // created + the five, each once, in order
  for (int i = 0; i < 5; ++i) EXPECT_EQ(seen[static_cast<size_t>(i) + 1], absl::StrCat("big-", i));
}

TEST_F(EventLogTest, BadBatchesAreRefusedAndStoreNothing) {
  EXPECT_EQ(ReasonOf(Publish({}).status()), "INVALID_BATCH");
  EXPECT_EQ(ReasonOf(Publish({"ok", "has space"}).status()), "INVALID_EVENT_ID");
  EXPECT_EQ(All().size(), 1u);
  ASSERT_TRUE(Disconnect("tenants/acme/connections/erp").ok());
  EXPECT_EQ(ReasonOf(Publish({"late"}).status()), "CONNECTION_DISCONNECTED");
}

TEST_F(EventLogTest, AConnectionPublishesOnlyToItself) {
  ASSERT_TRUE(Connect("acme", "crm", "odoo", v1::CLOUD).ok());
  EXPECT_TRUE(Publish({"own"}, Scope{"acme", "erp"}).ok());
  auto other = Publish({"other"}, Scope{"acme", "crm"});
  EXPECT_EQ(other.status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace switchyard::events
