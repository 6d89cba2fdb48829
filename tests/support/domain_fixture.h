#ifndef SWITCHYARD_TESTS_SUPPORT_DOMAIN_FIXTURE_H_
#define SWITCHYARD_TESTS_SUPPORT_DOMAIN_FIXTURE_H_

// The domain modules wired over a real store (SQLite in a temp dir, or a
// PostgreSQL schema: see test_store.h), with a manual clock, as the server
// wires them.

#include <memory>

#include "gtest/gtest.h"
#include "server/auth/api_keys.h"
#include "server/catalog/catalog.h"
#include "server/common/clock.h"
#include "server/connections/connections.h"
#include "server/credits/ledger.h"
#include "server/storage/store.h"
#include "server/tenants/tenants.h"
#include "server/vault/vault.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_store.h"

namespace switchyard::testing {

class DomainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = OpenTestStore(dir_.path());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    catalog_ = *catalog::SystemCatalog::FromText(catalog::SystemCatalog::DefaultText());
    ledger_ = *credits::CreditLedger::Create(credits::LedgerOptions{}, *store_, clock_);
    auto generated = crypto::MasterKeyring::Generate("k1");
    keyring_ = std::move(generated.first);
    keyring_text_ = std::string(generated.second.view());
    vault_ = std::make_unique<vault::CredentialVault>(*store_, *keyring_, clock_);
    keys_ = std::make_unique<auth::ApiKeyManager>(auth::ApiKeyOptions{}, *store_, clock_,
                                                  *vault_->LoadOrCreateServerKey("token-hmac"));
    connections_ = std::make_unique<connections::ConnectionManager>(*store_, *catalog_, *ledger_,
                                                                    *keys_, *vault_, clock_);
    tenants_ = std::make_unique<tenants::TenantRegistry>(*store_, *ledger_, *connections_, *keys_,
                                                         *vault_, clock_);
  }

  void CreatePool(const std::string& id, int64_t capacity) {
    v1::CreateCreditPoolRequest req;
    req.set_credit_pool_id(id);
    req.mutable_credit_pool()->set_capacity(capacity);
    ASSERT_TRUE(ledger_->CreatePool(req).ok());
  }

  void CreateTenant(const std::string& id, const std::string& pool) {
    v1::CreateTenantRequest req;
    req.set_tenant_id(id);
    req.mutable_tenant()->set_credit_pool("creditPools/" + pool);
    auto t = tenants_->Create(req);
    ASSERT_TRUE(t.ok()) << t.status();
  }

  absl::StatusOr<v1::Connection> Connect(const std::string& tenant, const std::string& id,
                                         const std::string& system, v1::Deployment deployment,
                                         const std::string& reservation = "") {
    v1::CreateConnectionRequest req;
    req.set_parent("tenants/" + tenant);
    req.set_connection_id(id);
    req.mutable_connection()->set_system("systems/" + system);
    req.mutable_connection()->set_deployment(deployment);
    if (!reservation.empty()) {
      req.set_credit_reservation("tenants/" + tenant + "/creditReservations/" + reservation);
    }
    return connections_->Create(req, Scope::All());
  }

  absl::StatusOr<v1::CreditReservation> Commit(const std::string& name) {
    v1::CommitCreditReservationRequest req;
    req.set_name(name);
    return ledger_->Commit(req, Scope::All());
  }

  absl::StatusOr<v1::Connection> Disconnect(const std::string& name) {
    v1::DeleteConnectionRequest req;
    req.set_name(name);
    return connections_->Disconnect(req, Scope::All());
  }

  v1::CreditPool Pool(const std::string& id) { return *ledger_->GetPool("creditPools/" + id); }

  TempDir dir_;
  ManualClock clock_{absl::FromUnixSeconds(1800000000)};
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<catalog::SystemCatalog> catalog_;
  std::unique_ptr<credits::CreditLedger> ledger_;
  std::unique_ptr<crypto::MasterKeyring> keyring_;
  std::string keyring_text_;  // the text form of keyring_, as an operator holds it
  std::unique_ptr<vault::CredentialVault> vault_;
  std::unique_ptr<auth::ApiKeyManager> keys_;
  std::unique_ptr<connections::ConnectionManager> connections_;
  std::unique_ptr<tenants::TenantRegistry> tenants_;
};

}  // namespace switchyard::testing

#endif  // SWITCHYARD_TESTS_SUPPORT_DOMAIN_FIXTURE_H_
