#include "server/auth/api_keys.h"

#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "server/common/status.h"
#include "tests/support/domain_fixture.h"
#include "tests/support/store_decorators.h"

namespace switchyard::auth {
namespace {

class ApiKeyManagerTest : public testing::DomainTest {
 protected:
  void SetUp() override {
    DomainTest::SetUp();
    CreatePool("main", 10);
    CreateTenant("acme", "main");
  }

  v1::CreateApiKeyResponse TenantKey(bool reveal = false) {
    v1::CreateApiKeyRequest req;
    req.set_parent("tenants/acme");
    req.set_display_name("ci");
    req.set_can_reveal_credentials(reveal);
    auto created = keys_->Create(req, Scope::All());
    EXPECT_TRUE(created.ok()) << created.status();
    return *created;
  }
};

TEST_F(ApiKeyManagerTest, ATenantKeyAuthenticatesAsItsTenant) {
  auto key = TenantKey(/*reveal=*/true);
  EXPECT_EQ(key.token().substr(0, 4), "syt_");
  EXPECT_EQ(key.api_key().hint(), key.token().substr(key.token().size() - 4));
  auto principal = keys_->Authenticate(key.token());
  ASSERT_TRUE(principal.ok()) << principal.status();
  EXPECT_EQ(principal->kind, TokenKind::kTenant);
  EXPECT_EQ(principal->tenant_id, "acme");
  EXPECT_TRUE(principal->can_reveal_credentials());
  EXPECT_EQ(principal->scope().tenant_id, "acme");
}

TEST_F(ApiKeyManagerTest, UnknownRevokedAndMissingCredentialsAreUnauthenticated) {
  EXPECT_EQ(ReasonOf(keys_->Authenticate("").status()), "MISSING_CREDENTIAL");
  EXPECT_EQ(ReasonOf(keys_->Authenticate(MintToken(TokenKind::kTenant)).status()),
            "UNKNOWN_CREDENTIAL");
  auto key = TenantKey();
  ASSERT_TRUE(keys_->Authenticate(key.token()).ok());  // now cached
  v1::RevokeApiKeyRequest revoke;
  revoke.set_name(key.api_key().name());
  ASSERT_TRUE(keys_->Revoke(revoke, Scope::All()).ok());
  auto after = keys_->Authenticate(key.token());
  EXPECT_EQ(after.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(ReasonOf(after.status()), "REVOKED_CREDENTIAL");
}

TEST_F(ApiKeyManagerTest, AMadeUpTokenCostsOneStoreReadPerCacheTtl) {
  testing::ReadCountingStore counting(*store_);
  ApiKeyManager keys(ApiKeyOptions{}, counting, clock_,
                     *vault_->LoadOrCreateServerKey("token-hmac"));
  const std::string made_up = MintToken(TokenKind::kTenant);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(ReasonOf(keys.Authenticate(made_up).status()), "UNKNOWN_CREDENTIAL");
  }
  EXPECT_EQ(counting.reads.load(), 1);
  clock_.Advance(ApiKeyOptions{}.cache_ttl);
  EXPECT_EQ(ReasonOf(keys.Authenticate(made_up).status()), "UNKNOWN_CREDENTIAL");
  EXPECT_EQ(counting.reads.load(), 2);
  // A key created afterwards is not held up by the tokens that were made up.
  auto key = TenantKey();
  EXPECT_TRUE(keys.Authenticate(key.token()).ok());
}

TEST_F(ApiKeyManagerTest, ATokenRefusedAsUnknownIsAcceptedOnceRegistered) {
  // The operator tries the new bootstrap key before the replica that
  // registers it has started.
  const std::string token = MintToken(TokenKind::kOperator);
  EXPECT_EQ(ReasonOf(keys_->Authenticate(token).status()), "UNKNOWN_CREDENTIAL");
  ApiKeyManager other(ApiKeyOptions{}, *store_, clock_,
                      *vault_->LoadOrCreateServerKey("token-hmac"));
  EXPECT_EQ(ReasonOf(other.Authenticate(token).status()), "UNKNOWN_CREDENTIAL");

  // Registered here: accepted here at once, not after the cache TTL.
  ASSERT_TRUE(keys_->EnsureBootstrapOperatorKey(token).ok());
  EXPECT_TRUE(keys_->Authenticate(token).ok());
  // And on the other replica once the announcement arrives.
  auto principal = keys_->Authenticate(token);
  other.ChangesAnnounced({storage::ChangeNotice{kApiKeyTopic, principal->key_id}});
  EXPECT_TRUE(other.Authenticate(token).ok());
}

TEST_F(ApiKeyManagerTest, WhenAnnouncementsMayHaveBeenMissedEveryCachedKeyIsReadAgain) {
  auto key = TenantKey();
  ASSERT_TRUE(keys_->Authenticate(key.token()).ok());  // now cached
  // Revoked through another replica, whose announcement did not arrive.
  auth::ApiKeyManager other(auth::ApiKeyOptions{}, *store_, clock_,
                            *vault_->LoadOrCreateServerKey("token-hmac"));
  v1::RevokeApiKeyRequest revoke;
  revoke.set_name(key.api_key().name());
  ASSERT_TRUE(other.Revoke(revoke, Scope::All()).ok());
  EXPECT_TRUE(keys_->Authenticate(key.token()).ok());  // still cached
  keys_->ChangesAnnounced({{std::string(storage::kEverythingChanged), ""}});
  EXPECT_EQ(ReasonOf(keys_->Authenticate(key.token()).status()), "REVOKED_CREDENTIAL");
}

TEST_F(ApiKeyManagerTest, RotationKeepsTheOldTokenForTheGracePeriodOnly) {
  auto key = TenantKey();
  v1::RotateApiKeyRequest rotate;
  rotate.set_name(key.api_key().name());
  rotate.mutable_grace_period()->set_seconds(300);
  auto rotated = keys_->Rotate(rotate, Scope::All());
  ASSERT_TRUE(rotated.ok()) << rotated.status();
  EXPECT_NE(rotated->token(), key.token());
  EXPECT_TRUE(keys_->Authenticate(key.token()).ok());
  EXPECT_TRUE(keys_->Authenticate(rotated->token()).ok());
  clock_.Advance(absl::Seconds(301));
  EXPECT_EQ(ReasonOf(keys_->Authenticate(key.token()).status()), "EXPIRED_CREDENTIAL");
  EXPECT_TRUE(keys_->Authenticate(rotated->token()).ok());
  // Without a grace period the old token stops at once.
  v1::RotateApiKeyRequest now;
  now.set_name(rotated->api_key().name());
  auto again = keys_->Rotate(now, Scope::All());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(ReasonOf(keys_->Authenticate(rotated->token()).status()), "REVOKED_CREDENTIAL");
}

TEST_F(ApiKeyManagerTest, AGracePeriodNeverExtendsALifetimeAndAKeyRotatesOnce) {
  v1::CreateApiKeyRequest req;
  req.set_parent("tenants/acme");
  req.mutable_ttl()->set_seconds(600);
  auto key = keys_->Create(req, Scope::All());
  ASSERT_TRUE(key.ok());
  v1::RotateApiKeyRequest rotate;
  rotate.set_name(key->api_key().name());
  rotate.mutable_grace_period()->set_seconds(3600);
  auto rotated = keys_->Rotate(rotate, Scope::All());
  ASSERT_TRUE(rotated.ok()) << rotated.status();
  // The successor keeps the original lifetime; the old key is not extended.
  EXPECT_EQ(rotated->api_key().expire_time().seconds(), key->api_key().expire_time().seconds());
  // Rotating the same (superseded) key again is refused.
  auto again = keys_->Rotate(rotate, Scope::All());
  EXPECT_EQ(ReasonOf(again.status()), "API_KEY_ALREADY_ROTATED");
  clock_.Advance(absl::Seconds(601));
  EXPECT_EQ(ReasonOf(keys_->Authenticate(key->token()).status()), "EXPIRED_CREDENTIAL");
  EXPECT_EQ(ReasonOf(keys_->Authenticate(rotated->token()).status()), "EXPIRED_CREDENTIAL");
}

TEST_F(ApiKeyManagerTest, ConnectionTokensAreIssuedOnceAndRevokedOnDisconnect) {
  auto conn = Connect("acme", "erp", "maintainx", v1::CLOUD);
  ASSERT_TRUE(conn.ok());
  const std::string token = conn->api_token();
  auto principal = keys_->Authenticate(token);
  ASSERT_TRUE(principal.ok()) << principal.status();
  EXPECT_EQ(principal->kind, TokenKind::kConnection);
  EXPECT_EQ(principal->connection_id, "erp");
  auto fetched = connections_->Get(conn->name(), Scope::All());
  EXPECT_EQ(fetched->api_token(), "");
  ASSERT_TRUE(Disconnect(conn->name()).ok());
  EXPECT_EQ(ReasonOf(keys_->Authenticate(token).status()), "REVOKED_CREDENTIAL");
}

TEST_F(ApiKeyManagerTest, ATenantManagesOnlyItsOwnConnectionTokens) {
  CreateTenant("globex", "main");
  auto conn = Connect("acme", "erp", "maintainx", v1::CLOUD);
  ASSERT_TRUE(conn.ok());
  v1::ListApiKeysRequest list;
  list.set_parent(conn->name());
  EXPECT_EQ(keys_->List(list, Scope::Tenant("acme"))->api_keys_size(), 1);
  EXPECT_EQ(keys_->List(list, Scope::Tenant("globex")).status().code(),
            absl::StatusCode::kNotFound);
  v1::ListApiKeysRequest tenant_keys;
  tenant_keys.set_parent("tenants/acme");
  EXPECT_EQ(keys_->List(tenant_keys, Scope::Tenant("acme")).status().code(),
            absl::StatusCode::kPermissionDenied);
  v1::CreateApiKeyRequest create;
  create.set_parent("tenants/acme");
  EXPECT_EQ(keys_->Create(create, Scope::Tenant("acme")).status().code(),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(ApiKeyManagerTest, LastUsedIsRecordedAtMinuteResolution) {
  auto key = TenantKey();
  ASSERT_TRUE(keys_->Authenticate(key.token()).ok());
  ASSERT_TRUE(keys_->FlushLastUsed().ok());
  v1::ListApiKeysRequest list;
  list.set_parent("tenants/acme");
  auto listed = keys_->List(list, Scope::All());
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->api_keys_size(), 1);
  EXPECT_EQ(listed->api_keys(0).last_used_time().seconds(), absl::ToUnixSeconds(clock_.Now()));
}

TEST_F(ApiKeyManagerTest, OnlyAKeyedHashOfATokenIsStored) {
  auto key = TenantKey();
  auto conn = Connect("acme", "erp", "maintainx", v1::CLOUD);
  const std::string bytes = switchyard::testing::TestStoreFileBytes(dir_.path());
  ASSERT_FALSE(bytes.empty());
  EXPECT_EQ(bytes.find(key.token().substr(4, 24)), std::string::npos);
  EXPECT_EQ(bytes.find(conn->api_token().substr(4, 24)), std::string::npos);
}

TEST_F(ApiKeyManagerTest, TheBootstrapKeyIsRegisteredOnceAndStaysRevokedIfRevoked) {
  const std::string token = MintToken(TokenKind::kOperator);
  ASSERT_TRUE(keys_->EnsureBootstrapOperatorKey(token).ok());
  ASSERT_TRUE(keys_->EnsureBootstrapOperatorKey(token).ok());
  auto principal = keys_->Authenticate(token);
  ASSERT_TRUE(principal.ok());
  v1::RevokeApiKeyRequest revoke;
  revoke.set_name("apiKeys/" + principal->key_id);
  ASSERT_TRUE(keys_->Revoke(revoke, Scope::All()).ok());
  ASSERT_TRUE(keys_->EnsureBootstrapOperatorKey(token).ok());
  EXPECT_EQ(ReasonOf(keys_->Authenticate(token).status()), "REVOKED_CREDENTIAL");
  EXPECT_EQ(keys_->EnsureBootstrapOperatorKey(MintToken(TokenKind::kTenant)).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace switchyard::auth
