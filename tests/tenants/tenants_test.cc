#include "server/tenants/tenants.h"

#include "gtest/gtest.h"
#include "server/common/status.h"
#include "tests/support/domain_fixture.h"

namespace switchyard::tenants {
namespace {

class TenantRegistryTest : public testing::DomainTest {
 protected:
  void SetUp() override {
    DomainTest::SetUp();
    CreatePool("main", 40);
    CreateTenant("acme", "main");
  }
};

TEST_F(TenantRegistryTest, CreateRequiresAnExistingPoolAndAFreshId) {
  v1::CreateTenantRequest req;
  req.set_tenant_id("globex");
  req.mutable_tenant()->set_credit_pool("creditPools/missing");
  EXPECT_EQ(ReasonOf(tenants_->Create(req).status()), "POOL_NOT_FOUND");
  req.set_tenant_id("acme");
  req.mutable_tenant()->set_credit_pool("creditPools/main");
  EXPECT_EQ(ReasonOf(tenants_->Create(req).status()), "TENANT_EXISTS");
}

TEST_F(TenantRegistryTest, DeleteRefusesWhileConnectionsRemain) {
  ASSERT_TRUE(Connect("acme", "s4", "sap-s4hana", v1::CLOUD).ok());
  v1::DeleteTenantRequest req;
  req.set_name("tenants/acme");
  absl::Status status = tenants_->Delete(req);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReasonOf(status), "TENANT_HAS_CONNECTIONS");
  EXPECT_TRUE(tenants_->Get("tenants/acme", Scope::All()).ok());
}

TEST_F(TenantRegistryTest, ForcedDeleteDisconnectsReleasesAndReturnsEverything) {
  ASSERT_TRUE(Connect("acme", "s4", "sap-s4hana", v1::CLOUD).ok());
  ASSERT_TRUE(Connect("acme", "ecc", "sap-ecc", v1::ON_PREMISES).ok());
  v1::ReserveCreditsRequest pending;
  pending.set_parent("tenants/acme");
  pending.set_reservation_id("pending");
  pending.set_amount(3);
  ASSERT_TRUE(ledger_->Reserve(pending, Scope::All()).ok());
  v1::ReserveCreditsRequest unbound = pending;
  unbound.set_reservation_id("unbound");
  ASSERT_TRUE(ledger_->Reserve(unbound, Scope::All()).ok());
  ASSERT_TRUE(Commit("tenants/acme/creditReservations/unbound").ok());
  ASSERT_EQ(Pool("main").available(), 40 - 4 - 8 - 3 - 3);

  v1::DeleteTenantRequest req;
  req.set_name("tenants/acme");
  req.set_force(true);
  ASSERT_TRUE(tenants_->Delete(req).ok());
  v1::CreditPool pool = Pool("main");
  EXPECT_EQ(pool.available(), 40);
  EXPECT_EQ(pool.reserved(), 0);
  EXPECT_EQ(pool.consumed(), 0);
  EXPECT_EQ(tenants_->Get("tenants/acme", Scope::All()).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(connections_->Get("tenants/acme/connections/s4", Scope::All()).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(TenantRegistryTest, CreditLimitCannotDropBelowHoldings) {
  ASSERT_TRUE(Connect("acme", "ecc", "sap-ecc", v1::ON_PREMISES).ok());
  v1::UpdateTenantRequest req;
  req.mutable_tenant()->set_name("tenants/acme");
  req.mutable_tenant()->set_credit_limit(5);
  req.mutable_update_mask()->add_paths("credit_limit");
  EXPECT_EQ(ReasonOf(tenants_->Update(req).status()), "CREDIT_LIMIT_BELOW_USAGE");
  req.mutable_tenant()->set_credit_limit(9);
  auto t = tenants_->Update(req);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->credit_limit(), 9);
  auto mx = Connect("acme", "mx", "maintainx", v1::CLOUD);
  ASSERT_TRUE(mx.ok());
  EXPECT_EQ(ReasonOf(Connect("acme", "mx2", "maintainx", v1::CLOUD).status()),
            "TENANT_CREDIT_LIMIT");
}

TEST_F(TenantRegistryTest, AReservationPastItsExpiryDoesNotHoldUpALowerLimit) {
  v1::ReserveCreditsRequest reserve;
  reserve.set_parent("tenants/acme");
  reserve.set_reservation_id("lapsing");
  reserve.set_amount(6);
  reserve.mutable_ttl()->set_seconds(60);
  ASSERT_TRUE(ledger_->Reserve(reserve, Scope::All()).ok());
  v1::UpdateTenantRequest req;
  req.mutable_tenant()->set_name("tenants/acme");
  req.mutable_tenant()->set_credit_limit(5);
  req.mutable_update_mask()->add_paths("credit_limit");
  EXPECT_EQ(ReasonOf(tenants_->Update(req).status()), "CREDIT_LIMIT_BELOW_USAGE");
  clock_.Advance(absl::Minutes(2));  // expired, not yet swept
  auto t = tenants_->Update(req);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->credit_limit(), 5);
  EXPECT_EQ(Pool("main").reserved(), 0);
}

TEST_F(TenantRegistryTest, ListReturnsTenantsInIdOrderWithoutDeletedOnes) {
  CreateTenant("zeta", "main");
  CreateTenant("beta", "main");
  v1::DeleteTenantRequest del;
  del.set_name("tenants/zeta");
  ASSERT_TRUE(tenants_->Delete(del).ok());
  auto list = tenants_->List({});
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->tenants_size(), 2);
  EXPECT_EQ(list->tenants(0).name(), "tenants/acme");
  EXPECT_EQ(list->tenants(1).name(), "tenants/beta");
}

}  // namespace
}  // namespace switchyard::tenants
