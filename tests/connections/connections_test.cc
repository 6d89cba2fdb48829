#include "server/connections/connections.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/status.h"
#include "tests/support/domain_fixture.h"

namespace switchyard::connections {
namespace {

using v1::Connection;

class ConnectionManagerTest : public testing::DomainTest {
 protected:
  void SetUp() override {
    DomainTest::SetUp();
    CreatePool("main", 20);
    CreateTenant("acme", "main");
  }
};

TEST_F(ConnectionManagerTest, CloudS4HanaCostsFourAndOnPremisesEccCostsEight) {
  auto s4 = Connect("acme", "s4-eu", "sap-s4hana", v1::CLOUD);
  ASSERT_TRUE(s4.ok()) << s4.status();
  EXPECT_EQ(s4->credits(), 4);
  auto ecc = Connect("acme", "ecc-us", "sap-ecc", v1::ON_PREMISES);
  ASSERT_TRUE(ecc.ok()) << ecc.status();
  EXPECT_EQ(ecc->credits(), 8);
  auto cmms = Connect("acme", "mx", "maintainx", v1::CLOUD);
  ASSERT_TRUE(cmms.ok());
  EXPECT_EQ(cmms->credits(), 1);
  v1::CreditPool pool = Pool("main");
  EXPECT_EQ(pool.consumed(), 13);
  EXPECT_EQ(pool.available(), 7);
}

TEST_F(ConnectionManagerTest, SeveralInstancesOfOneSystemAreIndependentConnections) {
  ASSERT_TRUE(Connect("acme", "sap-eu", "sap-s4hana", v1::CLOUD).ok());
  ASSERT_TRUE(Connect("acme", "sap-us", "sap-s4hana", v1::CLOUD).ok());
  v1::ListConnectionsRequest req;
  req.set_parent("tenants/acme");
  req.set_system("systems/sap-s4hana");
  auto list = connections_->List(req, Scope::All());
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->connections_size(), 2);
  EXPECT_NE(list->connections(0).credit_reservation(), list->connections(1).credit_reservation());
}

TEST_F(ConnectionManagerTest, ConnectWithoutCreditsFailsAndChangesNothing) {
  ASSERT_TRUE(Connect("acme", "ecc-1", "sap-ecc", v1::ON_PREMISES).ok());
  ASSERT_TRUE(Connect("acme", "ecc-2", "sap-ecc", v1::ON_PREMISES).ok());
  ASSERT_TRUE(Connect("acme", "s4", "sap-s4hana", v1::CLOUD).ok());
  auto third = Connect("acme", "mx", "maintainx", v1::CLOUD);
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ReasonOf(third.status()), "CREDITS_EXHAUSTED");
  EXPECT_EQ(connections_->Get("tenants/acme/connections/mx", Scope::All()).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(Pool("main").consumed(), 20);
  EXPECT_EQ(Pool("main").reserved(), 0);
}

TEST_F(ConnectionManagerTest, DisconnectReturnsCreditsOnceAndKeepsTheConnectionReadable) {
  ASSERT_TRUE(Connect("acme", "s4", "sap-s4hana", v1::CLOUD).ok());
  auto gone = Disconnect("tenants/acme/connections/s4");
  ASSERT_TRUE(gone.ok());
  EXPECT_EQ(gone->state(), Connection::DISCONNECTED);
  EXPECT_TRUE(gone->has_disconnect_time());
  auto again = Disconnect("tenants/acme/connections/s4");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(Pool("main").consumed(), 0);
  EXPECT_EQ(Pool("main").available(), 20);
  EXPECT_EQ(connections_->Get("tenants/acme/connections/s4", Scope::All())->state(),
            Connection::DISCONNECTED);
  EXPECT_EQ(ReasonOf(connections_
                         ->SetState("tenants/acme/connections/s4", Connection::ACTIVE, Scope::All())
                         .status()),
            "INVALID_STATE_TRANSITION");
}

TEST_F(ConnectionManagerTest, ConnectConsumesAPriorReservationOfExactlyTheCost) {
  v1::ReserveCreditsRequest reserve;
  reserve.set_parent("tenants/acme");
  reserve.set_reservation_id("onboarding");
  reserve.set_amount(4);
  ASSERT_TRUE(ledger_->Reserve(reserve, Scope::All()).ok());
  auto wrong = Connect("acme", "ecc", "sap-ecc", v1::ON_PREMISES, "onboarding");
  EXPECT_EQ(ReasonOf(wrong.status()), "RESERVATION_AMOUNT_MISMATCH");
  auto c = Connect("acme", "s4", "sap-s4hana", v1::CLOUD, "onboarding");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->credit_reservation(), "tenants/acme/creditReservations/onboarding");
  auto r = ledger_->GetReservation("tenants/acme/creditReservations/onboarding", Scope::All());
  EXPECT_EQ(r->state(), v1::CreditReservation::COMMITTED);
  EXPECT_EQ(r->connection(), "tenants/acme/connections/s4");
  EXPECT_EQ(Pool("main").consumed(), 4);
  EXPECT_EQ(Pool("main").reserved(), 0);
  auto reuse = Connect("acme", "s4-b", "sap-s4hana", v1::CLOUD, "onboarding");
  EXPECT_EQ(ReasonOf(reuse.status()), "RESERVATION_ALREADY_USED");
}

TEST_F(ConnectionManagerTest, AnExpiredReservationCannotPayForAConnection) {
  v1::ReserveCreditsRequest reserve;
  reserve.set_parent("tenants/acme");
  reserve.set_reservation_id("late");
  reserve.set_amount(4);
  reserve.mutable_ttl()->set_seconds(60);
  ASSERT_TRUE(ledger_->Reserve(reserve, Scope::All()).ok());
  clock_.Advance(absl::Seconds(61));
  auto c = Connect("acme", "s4", "sap-s4hana", v1::CLOUD, "late");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReasonOf(c.status()), "RESERVATION_EXPIRED");
  EXPECT_EQ(Pool("main").reserved(), 0);
}

TEST_F(ConnectionManagerTest, StateMachineAllowsDocumentedTransitionsOnly) {
  ASSERT_TRUE(Connect("acme", "mx", "maintainx", v1::CLOUD).ok());
  const std::string name = "tenants/acme/connections/mx";
  EXPECT_EQ(connections_->Get(name, Scope::All())->state(), Connection::PENDING);
  EXPECT_EQ(connections_->SetState(name, Connection::ACTIVE, Scope::All())->state(),
            Connection::ACTIVE);
  EXPECT_EQ(connections_->SetState(name, Connection::INACTIVE, Scope::All())->state(),
            Connection::INACTIVE);
  EXPECT_EQ(ReasonOf(connections_->SetState(name, Connection::ERROR, Scope::All()).status()),
            "INVALID_STATE_TRANSITION");
  EXPECT_EQ(connections_->SetState(name, Connection::ACTIVE, Scope::All())->state(),
            Connection::ACTIVE);
  EXPECT_EQ(Pool("main").consumed(), 1);  // credits stay consumed while inactive
}

TEST_F(ConnectionManagerTest, UpdateChangesOnlyMaskedFields) {
  ASSERT_TRUE(Connect("acme", "mx", "maintainx", v1::CLOUD).ok());
  v1::UpdateConnectionRequest req;
  req.mutable_connection()->set_name("tenants/acme/connections/mx");
  req.mutable_connection()->set_display_name("Plant 7");
  (*req.mutable_connection()->mutable_metadata())["region"] = "eu";
  req.mutable_update_mask()->add_paths("metadata");
  auto updated = connections_->Update(req, Scope::All());
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_EQ(updated->display_name(), "");
  EXPECT_EQ(updated->metadata().at("region"), "eu");
  req.mutable_update_mask()->add_paths("system");
  EXPECT_EQ(ReasonOf(connections_->Update(req, Scope::All()).status()), "INVALID_UPDATE_MASK");
}

TEST_F(ConnectionManagerTest, RetryWithRequestIdReturnsTheOriginalConnection) {
  v1::CreateConnectionRequest req;
  req.set_parent("tenants/acme");
  req.set_connection_id("s4");
  req.set_request_id("create-s4");
  req.mutable_connection()->set_system("systems/sap-s4hana");
  req.mutable_connection()->set_deployment(v1::CLOUD);
  ASSERT_TRUE(connections_->Create(req, Scope::All()).ok());
  auto retry = connections_->Create(req, Scope::All());
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_EQ(Pool("main").consumed(), 4);
  req.mutable_connection()->set_deployment(v1::ON_PREMISES);
  EXPECT_EQ(connections_->Create(req, Scope::All()).status().code(), absl::StatusCode::kAborted);
  req.clear_request_id();
  req.mutable_connection()->set_deployment(v1::CLOUD);
  EXPECT_EQ(ReasonOf(connections_->Create(req, Scope::All()).status()), "CONNECTION_EXISTS");
}

TEST_F(ConnectionManagerTest, BadInputIsRejectedWithSpecificReasons) {
  EXPECT_EQ(ReasonOf(Connect("acme", "s4", "no-such-system", v1::CLOUD).status()),
            "SYSTEM_NOT_FOUND");
  EXPECT_EQ(ReasonOf(Connect("acme", "s4", "maintainx", v1::ON_PREMISES).status()),
            "DEPLOYMENT_NOT_SUPPORTED");
  EXPECT_EQ(ReasonOf(Connect("acme", "s4", "maintainx", v1::DEPLOYMENT_UNSPECIFIED).status()),
            "INVALID_DEPLOYMENT");
  EXPECT_EQ(ReasonOf(Connect("acme", "S4!", "maintainx", v1::CLOUD).status()), "INVALID_ID");
  EXPECT_EQ(ReasonOf(Connect("nobody", "s4", "maintainx", v1::CLOUD).status()), "TENANT_NOT_FOUND");
  v1::ListConnectionsRequest list;
  list.set_parent("tenants/acme");
  list.set_page_size(-1);
  EXPECT_EQ(ReasonOf(connections_->List(list, Scope::All()).status()), "INVALID_PAGE_SIZE");
}

TEST_F(ConnectionManagerTest, ListPagesThroughEveryConnectionAndTokensAreBoundToTheQuery) {
  for (int i = 0; i < 7; ++i) {
    ASSERT_TRUE(Connect("acme", "mx-" + std::to_string(i), "maintainx", v1::CLOUD).ok());
  }
  v1::ListConnectionsRequest req;
  req.set_parent("tenants/acme");
  req.set_page_size(3);
  std::vector<std::string> names;
  while (true) {
    auto page = connections_->List(req, Scope::All());
    ASSERT_TRUE(page.ok()) << page.status();
    for (const auto& c : page->connections()) names.push_back(c.name());
    if (page->next_page_token().empty()) break;
    req.set_page_token(page->next_page_token());
    v1::ListConnectionsRequest other = req;
    other.set_system("systems/sap-ecc");
    EXPECT_EQ(ReasonOf(connections_->List(other, Scope::All()).status()), "INVALID_PAGE_TOKEN");
  }
  EXPECT_EQ(names.size(), 7u);
  EXPECT_EQ(names.front(), "tenants/acme/connections/mx-0");
  EXPECT_EQ(names.back(), "tenants/acme/connections/mx-6");
}

}  // namespace
}  // namespace switchyard::connections
