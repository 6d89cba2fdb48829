#include "server/vault/vault.h"

#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "server/common/status.h"
#include "tests/support/domain_fixture.h"
#include "tests/support/store_decorators.h"

namespace switchyard::vault {
namespace {

using v1::ConnectionCredentials;

class CredentialVaultTest : public testing::DomainTest {
 protected:
  void SetUp() override {
    DomainTest::SetUp();
    CreatePool("main", 50);
    CreateTenant("acme", "main");
    CreateTenant("globex", "main");
    ASSERT_TRUE(Connect("acme", "erp", "sap-s4hana", v1::CLOUD).ok());
    ASSERT_TRUE(Connect("acme", "cmms", "maintainx", v1::CLOUD).ok());
    ASSERT_TRUE(Connect("globex", "erp", "sap-s4hana", v1::CLOUD).ok());
  }

  static std::string Name(const std::string& tenant, const std::string& connection) {
    return "tenants/" + tenant + "/connections/" + connection + "/credentials";
  }

  absl::StatusOr<ConnectionCredentials> Set(CredentialVault& vault, const std::string& tenant,
                                            const std::string& connection,
                                            const std::string& password) {
    v1::SetConnectionCredentialsRequest req;
    req.mutable_credentials()->set_name(Name(tenant, connection));
    req.mutable_credentials()->set_base_url("https://" + tenant + ".example.test/sap");
    req.mutable_credentials()->set_username("svc-" + tenant);
    req.mutable_credentials()->set_password(password);
    (*req.mutable_credentials()->mutable_secrets())["client-cert"] = "PEM " + password;
    return vault.Set(req, Scope::All());
  }

  absl::StatusOr<ConnectionCredentials> Reveal(CredentialVault& vault, const std::string& tenant,
                                               const std::string& connection) {
    v1::GetConnectionCredentialsRequest req;
    req.set_name(Name(tenant, connection));
    req.set_reveal_secrets(true);
    return vault.Get(req, Scope::All(), /*can_reveal=*/true);
  }

  std::optional<storage::CredentialsRow> Row(const std::string& tenant,
                                             const std::string& connection) {
    std::optional<storage::CredentialsRow> row;
    EXPECT_TRUE(store_
                    ->Read([&](storage::Transaction& tx) -> absl::Status {
                      auto r = tx.GetCredentials(tenant, connection);
                      if (!r.ok()) return r.status();
                      row = *r;
                      return absl::OkStatus();
                    })
                    .ok());
    return row;
  }

  void Put(const storage::CredentialsRow& row) {
    ASSERT_TRUE(
        store_->Write([&](storage::Transaction& tx) { return tx.PutCredentials(row); }).ok());
  }

  std::string StoreFileBytes() {
    std::string all;
    for (const char* suffix : {"", "-wal"}) {
      std::ifstream in(dir_.path() + "/store.db" + suffix, std::ios::binary);
      std::stringstream bytes;
      bytes << in.rdbuf();
      all += bytes.str();
    }
    return all;
  }
};

TEST_F(CredentialVaultTest, SetThenRevealRoundTripsAndTheSummaryHidesSecrets) {
  auto set = Set(*vault_, "acme", "erp", "hunter2-acme");
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->password(), "");
  EXPECT_EQ(set->username(), "svc-acme");
  EXPECT_EQ(set->secret_fields_size(), 2);
  auto revealed = Reveal(*vault_, "acme", "erp");
  ASSERT_TRUE(revealed.ok()) << revealed.status();
  EXPECT_EQ(revealed->password(), "hunter2-acme");
  EXPECT_EQ(revealed->secrets().at("client-cert"), "PEM hunter2-acme");
  v1::GetConnectionCredentialsRequest masked;
  masked.set_name(Name("acme", "erp"));
  auto summary = vault_->Get(masked, Scope::All(), /*can_reveal=*/false);
  ASSERT_TRUE(summary.ok());
  EXPECT_EQ(summary->password(), "");
  EXPECT_EQ(summary->secrets_size(), 0);
  EXPECT_EQ(summary->base_url(), "https://acme.example.test/sap");
}

TEST_F(CredentialVaultTest, SecretsNeverReachTheStoreFileInPlaintext) {
  ASSERT_TRUE(Set(*vault_, "acme", "erp", "plaintext-canary-7f3a").ok());
  EXPECT_EQ(StoreFileBytes().find("plaintext-canary-7f3a"), std::string::npos);
}

TEST_F(CredentialVaultTest, RevealingNeedsTheRight) {
  ASSERT_TRUE(Set(*vault_, "acme", "erp", "pw").ok());
  v1::GetConnectionCredentialsRequest req;
  req.set_name(Name("acme", "erp"));
  req.set_reveal_secrets(true);
  auto denied = vault_->Get(req, Scope::Tenant("acme"), /*can_reveal=*/false);
  EXPECT_EQ(denied.status().code(), absl::StatusCode::kPermissionDenied);
}

TEST_F(CredentialVaultTest, CiphertextMovedToAnotherConnectionOrTenantFailsToDecrypt) {
  ASSERT_TRUE(Set(*vault_, "acme", "erp", "acme-erp").ok());
  ASSERT_TRUE(Set(*vault_, "acme", "cmms", "acme-cmms").ok());
  ASSERT_TRUE(Set(*vault_, "globex", "erp", "globex-erp").ok());
  storage::CredentialsRow acme_erp = *Row("acme", "erp");
  storage::CredentialsRow acme_cmms = *Row("acme", "cmms");
  storage::CredentialsRow globex_erp = *Row("globex", "erp");

  // Another connection of the same tenant (same data key).
  storage::CredentialsRow moved = acme_cmms;
  moved.sealed = acme_erp.sealed;
  Put(moved);
  auto r1 = Reveal(*vault_, "acme", "cmms");
  EXPECT_EQ(r1.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(ReasonOf(r1.status()), "DECRYPTION_FAILED");

  // Another tenant.
  moved = globex_erp;
  moved.sealed = acme_erp.sealed;
  Put(moved);
  EXPECT_EQ(Reveal(*vault_, "globex", "erp").status().code(), absl::StatusCode::kDataLoss);

  // The source row is untouched and still decrypts.
  EXPECT_EQ(Reveal(*vault_, "acme", "erp")->password(), "acme-erp");
}

TEST_F(CredentialVaultTest, BitFlippedOrTruncatedCiphertextFailsAndCorruptsNothing) {
  ASSERT_TRUE(Set(*vault_, "acme", "erp", "pw-1").ok());
  ASSERT_TRUE(Set(*vault_, "acme", "cmms", "pw-2").ok());
  storage::CredentialsRow row = *Row("acme", "erp");
  storage::CredentialsRow flipped = row;
  flipped.sealed[flipped.sealed.size() / 2] ^= 0x40;
  Put(flipped);
  EXPECT_EQ(Reveal(*vault_, "acme", "erp").status().code(), absl::StatusCode::kDataLoss);
  storage::CredentialsRow truncated = row;
  truncated.sealed.resize(10);
  Put(truncated);
  EXPECT_EQ(Reveal(*vault_, "acme", "erp").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(Reveal(*vault_, "acme", "cmms")->password(), "pw-2");
  // A fresh Set repairs the damaged row.
  ASSERT_TRUE(Set(*vault_, "acme", "erp", "pw-3").ok());
  EXPECT_EQ(Reveal(*vault_, "acme", "erp")->password(), "pw-3");
}

TEST_F(CredentialVaultTest, AWrongMasterKeyFailsClearly) {
  ASSERT_TRUE(Set(*vault_, "acme", "erp", "pw").ok());
  // Same key id, different key material.
  auto impostor = crypto::MasterKeyring::Generate("k1").first;
  CredentialVault other(*store_, *impostor, clock_);
  auto r = Reveal(other, "acme", "erp");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(ReasonOf(r.status()), "DECRYPTION_FAILED");
  EXPECT_FALSE(other.LoadOrCreateServerKey("token-hmac").ok());
  // A keyring without the key id says which key is missing.
  auto unrelated = crypto::MasterKeyring::Generate("k9").first;
  CredentialVault third(*store_, *unrelated, clock_);
  EXPECT_EQ(ReasonOf(Reveal(third, "acme", "erp").status()), "MASTER_KEY_UNAVAILABLE");
}

TEST_F(CredentialVaultTest, MasterKeyRotationRewrapsWithoutReencryptingSecrets) {
  ASSERT_TRUE(Set(*vault_, "acme", "erp", "before-rotation").ok());
  const std::string sealed_before = Row("acme", "erp")->sealed;
  // The operator puts a new key k2 first and keeps k1 while the rewrap runs;
  // the old key still unwraps meanwhile, so nothing stops.
  const std::string k2 = std::string(crypto::MasterKeyring::Generate("k2").second.view());
  auto both = *crypto::MasterKeyring::Parse(k2 + keyring_text_);
  CredentialVault during(*store_, *both, clock_);
  EXPECT_EQ(Reveal(during, "acme", "erp")->password(), "before-rotation");
  auto rewrapped = during.RewrapDataKeys();
  ASSERT_TRUE(rewrapped.ok()) << rewrapped.status();
  EXPECT_EQ(rewrapped->primary_master_key_id(), "k2");
  EXPECT_EQ(rewrapped->rewrapped(), 2);  // acme's data key and the token-hash key
  // Then k1 is removed from the keyring.
  auto only_new = *crypto::MasterKeyring::Parse(k2);
  CredentialVault after(*store_, *only_new, clock_);
  EXPECT_EQ(Reveal(after, "acme", "erp")->password(), "before-rotation");
  EXPECT_TRUE(after.LoadOrCreateServerKey("token-hmac").ok());
  // Secrets were not re-encrypted, only the data keys re-wrapped.
  EXPECT_EQ(Row("acme", "erp")->sealed, sealed_before);
  EXPECT_EQ(after.RewrapDataKeys()->rewrapped(), 0);
}

TEST_F(CredentialVaultTest, TenantKeyRotationReencryptsLazilyOrAtOnce) {
  ASSERT_TRUE(Set(*vault_, "acme", "erp", "one").ok());
  ASSERT_TRUE(Set(*vault_, "acme", "cmms", "two").ok());
  v1::RotateTenantDataKeyRequest lazy;
  lazy.set_name("tenants/acme");
  auto rotated = vault_->RotateTenantKey(lazy);
  ASSERT_TRUE(rotated.ok()) << rotated.status();
  EXPECT_EQ(rotated->key_version(), 2);
  EXPECT_EQ(rotated->reencrypted(), 0);
  EXPECT_EQ(Row("acme", "erp")->key_version, 1);
  // Revealing moves the credentials to the new version.
  EXPECT_EQ(Reveal(*vault_, "acme", "erp")->password(), "one");
  EXPECT_EQ(Row("acme", "erp")->key_version, 2);
  EXPECT_EQ(Row("acme", "cmms")->key_version, 1);

  v1::RotateTenantDataKeyRequest now;
  now.set_name("tenants/acme");
  now.set_reencrypt(true);
  auto again = vault_->RotateTenantKey(now);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->key_version(), 3);
  EXPECT_EQ(again->reencrypted(), 2);
  EXPECT_EQ(Row("acme", "cmms")->key_version, 3);
  EXPECT_EQ(Reveal(*vault_, "acme", "cmms")->password(), "two");
  // Older versions are destroyed once nothing is sealed under them.
  ASSERT_TRUE(store_
                  ->Read([](storage::Transaction& tx) -> absl::Status {
                    auto keys = tx.ListDataKeys("acme");
                    EXPECT_TRUE(keys.ok());
                    EXPECT_EQ(keys->size(), 1u);
                    EXPECT_EQ(keys->front().version, 3);
                    return absl::OkStatus();
                  })
                  .ok());
}

TEST_F(CredentialVaultTest, TenantKeyReencryptionCoversWebhookSecrets) {
  v1::RotateWebhookSecretRequest rotate;
  rotate.set_name("tenants/acme/connections/erp/webhookSecret");
  auto first = vault_->RotateWebhookSecret(rotate, Scope::All(), /*can_reveal=*/true);
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = vault_->RotateWebhookSecret(rotate, Scope::All(), /*can_reveal=*/true);
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_EQ(second->secrets_size(), 2);  // the new one and the old in its grace period

  v1::RotateTenantDataKeyRequest now;
  now.set_name("tenants/acme");
  now.set_reencrypt(true);
  auto rotated = vault_->RotateTenantKey(now);
  ASSERT_TRUE(rotated.ok()) << rotated.status();
  EXPECT_EQ(rotated->reencrypted(), 2);
  // The older data keys are gone, and both secrets still open and verify.
  v1::GetWebhookSecretRequest get;
  get.set_name("tenants/acme/connections/erp/webhookSecret");
  auto after = vault_->GetWebhookSecret(get, Scope::All(), /*can_reveal=*/true);
  ASSERT_TRUE(after.ok()) << after.status();
  ASSERT_EQ(after->secrets_size(), 2);
  EXPECT_EQ(after->secrets(0), second->secrets(0));
  EXPECT_EQ(after->secrets(1), second->secrets(1));
  auto keys = vault_->LoadWebhookKeys("acme", "erp");
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_EQ(keys->signers.size(), 2u);
}

TEST_F(CredentialVaultTest, RotationsAnswerOnlyWhatTheirCommittedRunDid) {
  // Every write's function runs once more before the run that commits, as
  // after a lost conflict on PostgreSQL.
  testing::RehearsingStore rehearsing(*store_);
  vault::CredentialVault vault(rehearsing, *keyring_, clock_);
  v1::RotateWebhookSecretRequest rotate;
  rotate.set_name("tenants/acme/connections/erp/webhookSecret");
  auto first = vault.RotateWebhookSecret(rotate, Scope::All(), /*can_reveal=*/true);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->secrets_size(), 1);
  auto second = vault.RotateWebhookSecret(rotate, Scope::All(), /*can_reveal=*/true);
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_EQ(second->secrets_size(), 2);
  ASSERT_EQ(second->expire_times_size(), 2);
  // What was answered is what was stored.
  v1::GetWebhookSecretRequest get;
  get.set_name("tenants/acme/connections/erp/webhookSecret");
  auto stored = vault_->GetWebhookSecret(get, Scope::All(), /*can_reveal=*/true);
  ASSERT_TRUE(stored.ok()) << stored.status();
  ASSERT_EQ(stored->secrets_size(), 2);
  EXPECT_EQ(stored->secrets(0), second->secrets(0));
  EXPECT_EQ(stored->secrets(1), first->secrets(0));

  v1::RotateTenantDataKeyRequest now;
  now.set_name("tenants/acme");
  now.set_reencrypt(true);
  auto rotated = vault.RotateTenantKey(now);
  ASSERT_TRUE(rotated.ok()) << rotated.status();
  EXPECT_EQ(rotated->reencrypted(), 2);  // the two secrets, counted once
}

TEST_F(CredentialVaultTest, DeletingATenantDestroysItsDataKeySoOldCiphertextIsUnrecoverable) {
  ASSERT_TRUE(Set(*vault_, "acme", "erp", "doomed").ok());
  storage::CredentialsRow backup = *Row("acme", "erp");
  v1::DeleteTenantRequest del;
  del.set_name("tenants/acme");
  del.set_force(true);
  ASSERT_TRUE(tenants_->Delete(del).ok());
  EXPECT_FALSE(Row("acme", "erp").has_value());
  // Restoring the row from a backup does not bring the secret back: the
  // tenant's data key is gone.
  Put(backup);
  ASSERT_TRUE(store_
                  ->Read([](storage::Transaction& tx) -> absl::Status {
                    auto keys = tx.ListDataKeys("acme");
                    EXPECT_TRUE(keys.ok() && keys->empty());
                    return absl::OkStatus();
                  })
                  .ok());
  v1::GetConnectionCredentialsRequest req;
  req.set_name(Name("acme", "erp"));
  req.set_reveal_secrets(true);
  EXPECT_FALSE(vault_->Get(req, Scope::All(), true).ok());
}

TEST_F(CredentialVaultTest, DisconnectingForgetsCredentials) {
  ASSERT_TRUE(Set(*vault_, "acme", "erp", "pw").ok());
  ASSERT_TRUE(Disconnect("tenants/acme/connections/erp").ok());
  EXPECT_FALSE(Row("acme", "erp").has_value());
  EXPECT_EQ(ReasonOf(Set(*vault_, "acme", "erp", "pw").status()), "CONNECTION_DISCONNECTED");
}

TEST_F(CredentialVaultTest, WebhookSecretVersionsChangeOnlyForTheConnectionChanged) {
  EXPECT_EQ(vault_->WebhookSecretVersion("acme", "erp"), 0u);
  v1::RotateWebhookSecretRequest rotate;
  rotate.set_name("tenants/acme/connections/erp/webhookSecret");
  ASSERT_TRUE(vault_->RotateWebhookSecret(rotate, Scope::All(), /*can_reveal=*/true).ok());
  const uint64_t rotated = vault_->WebhookSecretVersion("acme", "erp");
  EXPECT_NE(rotated, 0u);
  EXPECT_EQ(vault_->WebhookSecretVersion("acme", "cmms"), 0u);
  EXPECT_EQ(vault_->WebhookSecretVersion("globex", "erp"), 0u);
  v1::RevokeWebhookSecretRequest revoke;
  revoke.set_name("tenants/acme/connections/erp/webhookSecret");
  ASSERT_TRUE(vault_->RevokeWebhookSecret(revoke, Scope::All()).ok());
  EXPECT_NE(vault_->WebhookSecretVersion("acme", "erp"), rotated);
  // Announced by another replica.
  vault_->ChangesAnnounced({{std::string(kWebhookSecretTopic), "globex/erp"}});
  EXPECT_NE(vault_->WebhookSecretVersion("globex", "erp"), 0u);
  EXPECT_EQ(vault_->WebhookSecretVersion("acme", "cmms"), 0u);
  // Announcements may have been missed: every version moves.
  const uint64_t globex = vault_->WebhookSecretVersion("globex", "erp");
  const uint64_t acme = vault_->WebhookSecretVersion("acme", "erp");
  vault_->ChangesAnnounced({{std::string(storage::kEverythingChanged), ""}});
  EXPECT_NE(vault_->WebhookSecretVersion("acme", "cmms"), 0u);
  EXPECT_NE(vault_->WebhookSecretVersion("globex", "erp"), globex);
  EXPECT_NE(vault_->WebhookSecretVersion("acme", "erp"), acme);
}

TEST_F(CredentialVaultTest, BadNamesAndOversizedCredentialsAreRejected) {
  v1::SetConnectionCredentialsRequest req;
  req.mutable_credentials()->set_name("tenants/acme/connections/erp");
  EXPECT_EQ(ReasonOf(vault_->Set(req, Scope::All()).status()), "INVALID_NAME");
  req.mutable_credentials()->set_name(Name("acme", "erp"));
  req.mutable_credentials()->set_api_key(std::string(70 * 1024, 'k'));
  EXPECT_EQ(ReasonOf(vault_->Set(req, Scope::All()).status()), "CREDENTIALS_TOO_LARGE");
  req.mutable_credentials()->set_name(Name("acme", "nothing"));
  req.mutable_credentials()->clear_api_key();
  EXPECT_EQ(vault_->Set(req, Scope::All()).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace switchyard::vault
