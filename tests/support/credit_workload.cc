#include "tests/support/credit_workload.h"

#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace switchyard::testing {

void CreditWorkload::CreatePoolAndTenants() {
  auto c = client_for_(0, 4);
  v1::CreateCreditPoolRequest pool;
  pool.set_credit_pool_id("shared");
  pool.mutable_credit_pool()->set_capacity(kCapacity);
  ASSERT_TRUE(c->CreateCreditPool(pool).ok());
  for (int t = 0; t < kTenants; ++t) {
    v1::CreateTenantRequest tenant;
    tenant.set_tenant_id(absl::StrCat("tenant-", t));
    tenant.mutable_tenant()->set_credit_pool("creditPools/shared");
    if (t == 0) tenant.mutable_tenant()->set_credit_limit(20);
    ASSERT_TRUE(c->CreateTenant(tenant).ok());
  }
}

void CreditWorkload::RunClient(int id, int ops, const std::atomic<bool>& stop,
                               std::atomic<int>& done, int attempts) {
  auto c = client_for_(id, attempts);
  std::mt19937 rng(static_cast<uint32_t>(1234 + id));
  const std::string tenant = absl::StrCat("tenants/tenant-", id % kTenants);
  const std::vector<std::pair<std::string, v1::Deployment>> systems = {
      {"sap-s4hana", v1::CLOUD}, {"sap-ecc", v1::ON_PREMISES}, {"maintainx", v1::CLOUD},
      {"netsuite", v1::CLOUD},   {"ibm-maximo", v1::CLOUD},    {"odoo", v1::ON_PREMISES}};
  std::vector<std::string> my_connections, my_reservations;
  for (int i = 0; i < ops && !stop.load(); ++i) {
    const int choice = static_cast<int>(rng() % 10);
    if (choice < 3) {
      const auto& [system, deployment] = systems[rng() % systems.size()];
      v1::CreateConnectionRequest req;
      req.set_parent(tenant);
      req.set_connection_id(absl::StrCat("c", id, "-", i));
      req.mutable_connection()->set_system("systems/" + system);
      req.mutable_connection()->set_deployment(deployment);
      auto r = c->CreateConnection(req);
      if (r.ok()) {
        my_connections.push_back(r->name());
        absl::MutexLock lock(&mu_);
        connected_.insert(r->name());
      }
    } else if (choice < 5 && !my_connections.empty()) {
      const size_t k = rng() % my_connections.size();
      v1::DeleteConnectionRequest req;
      req.set_name(my_connections[k]);
      auto r = c->DeleteConnection(req);
      if (r.ok()) {
        absl::MutexLock lock(&mu_);
        disconnected_.insert(r->name());
      }
      my_connections.erase(my_connections.begin() + static_cast<long>(k));
    } else if (choice < 8) {
      v1::ReserveCreditsRequest req;
      req.set_parent(tenant);
      req.set_reservation_id(absl::StrCat("r", id, "-", i));
      req.set_amount(1 + static_cast<int64_t>(rng() % 6));
      req.mutable_ttl()->set_seconds(choice == 7 ? 1 : 600);
      auto r = c->ReserveCredits(req);
      if (r.ok()) {
        my_reservations.push_back(r->name());
        absl::MutexLock lock(&mu_);
        reserved_.insert(r->name());
      }
    } else if (!my_reservations.empty()) {
      const size_t k = rng() % my_reservations.size();
      const std::string name = my_reservations[k];
      my_reservations.erase(my_reservations.begin() + static_cast<long>(k));
      absl::StatusOr<v1::CreditReservation> r;
      if (choice == 8) {
        v1::CommitCreditReservationRequest req;
        req.set_name(name);
        r = c->CommitCreditReservation(req);
      } else {
        v1::ReleaseCreditReservationRequest req;
        req.set_name(name);
        r = c->ReleaseCreditReservation(req);
      }
      if (r.ok()) {
        absl::MutexLock lock(&mu_);
        resolved_[name] = r->state();
      }
    }
    done.fetch_add(1);
  }
}

void CreditWorkload::Watch(int id, const std::atomic<bool>& stop, std::atomic<int>& reads) {
  auto c = client_for_(id, 1);
  v1::GetCreditPoolRequest req;
  req.set_name("creditPools/shared");
  while (!stop.load()) {
    auto pool = c->GetCreditPool(req);
    if (!pool.ok()) continue;  // the server may be down during the kill -9 test
    ++reads;
    EXPECT_EQ(pool->capacity(), pool->available() + pool->reserved() + pool->consumed());
    EXPECT_GE(pool->available(), 0);
    EXPECT_EQ(pool->capacity(), kCapacity);
  }
}

void CreditWorkload::VerifyEverything(int min_entries) {
  auto c = client_for_(0, 4);
  v1::GetCreditPoolRequest get;
  get.set_name("creditPools/shared");
  auto pool = c->GetCreditPool(get);
  ASSERT_TRUE(pool.ok()) << pool.status();
  EXPECT_EQ(pool->capacity(), pool->available() + pool->reserved() + pool->consumed());

  int64_t capacity = 0, reserved = 0, consumed = 0, entries = 0;
  v1::ListLedgerEntriesRequest list;
  list.set_parent("creditPools/shared");
  list.set_page_size(1000);
  while (true) {
    auto page = c->ListLedgerEntries(list);
    ASSERT_TRUE(page.ok()) << page.status();
    for (const v1::LedgerEntry& e : page->entries()) {
      ++entries;
      switch (e.kind()) {
        case v1::LedgerEntry::CAPACITY_CHANGE:
          capacity += e.amount();
          break;
        case v1::LedgerEntry::RESERVE:
          reserved += e.amount();
          break;
        case v1::LedgerEntry::COMMIT:
          reserved -= e.amount();
          consumed += e.amount();
          break;
        case v1::LedgerEntry::RELEASE:
        case v1::LedgerEntry::EXPIRE:
          reserved -= e.amount();
          break;
        case v1::LedgerEntry::DISCONNECT_RETURN:
          consumed -= e.amount();
          break;
        default:
          ADD_FAILURE() << "unknown kind";
      }
      ASSERT_GE(reserved, 0);
      ASSERT_GE(consumed, 0);
      ASSERT_LE(reserved + consumed, capacity);
    }
    if (page->next_page_token().empty()) break;
    list.set_page_token(page->next_page_token());
  }
  EXPECT_GE(entries, min_entries);
  EXPECT_EQ(capacity, pool->capacity());
  EXPECT_EQ(reserved, pool->reserved());
  EXPECT_EQ(consumed, pool->consumed());

  int64_t tenant_reserved = 0, tenant_consumed = 0;
  auto tenants = c->ListTenants({});
  ASSERT_TRUE(tenants.ok());
  int pool_tenants = 0;
  for (const v1::Tenant& t : tenants->tenants()) {
    if (t.credit_pool() != "creditPools/shared") continue;  // other tests' tenants
    ++pool_tenants;
    tenant_reserved += t.reserved_credits();
    tenant_consumed += t.consumed_credits();
    if (t.credit_limit() > 0) {
      EXPECT_LE(t.reserved_credits() + t.consumed_credits(), t.credit_limit());
    }
  }
  EXPECT_EQ(pool_tenants, kTenants);
  EXPECT_EQ(tenant_reserved, pool->reserved());
  EXPECT_EQ(tenant_consumed, pool->consumed());

  absl::MutexLock lock(&mu_);
  for (const std::string& name : connected_) {
    v1::GetConnectionRequest req;
    req.set_name(name);
    auto conn = c->GetConnection(req);
    ASSERT_TRUE(conn.ok()) << name << ": " << conn.status();
    if (disconnected_.count(name)) {
      EXPECT_EQ(conn->state(), v1::Connection::DISCONNECTED) << name;
    }
  }
  for (const std::string& name : reserved_) {
    v1::GetCreditReservationRequest req;
    req.set_name(name);
    auto r = c->GetCreditReservation(req);
    ASSERT_TRUE(r.ok()) << name << ": " << r.status();
    auto it = resolved_.find(name);
    if (it != resolved_.end()) {
      EXPECT_EQ(r->state(), it->second) << name;
    }
  }
}

}  // namespace switchyard::testing
