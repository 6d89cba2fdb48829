#ifndef SWITCHYARD_SERVER_AUTH_API_KEYS_H_
#define SWITCHYARD_SERVER_AUTH_API_KEYS_H_

// API credentials and authentication: operator keys, tenant keys and
// connection tokens (see token_format.h), stored only as HMAC-SHA256 under a
// server key, verified in constant time, never logged (at most the last four
// characters are shown).

#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/auth/token_format.h"
#include "server/common/clock.h"
#include "server/common/scope.h"
#include "server/crypto/aead.h"
#include "server/crypto/secret.h"
#include "server/storage/store.h"
#include "switchyard/v1/gateway.pb.h"

namespace switchyard::auth {

// Rights beyond what a caller's kind allows.
inline constexpr int64_t kRightRevealCredentials = 1;

// An authenticated caller, or an anonymous one (only for calls that reveal
// nothing of any tenant).
struct Principal {
  TokenKind kind = TokenKind::kConnection;
  std::string key_id;
  std::string tenant_id;      // tenant keys and connection tokens
  std::string connection_id;  // connection tokens
  int64_t rights = 0;
  bool anonymous = false;

  static Principal Anonymous() {
    Principal p;
    p.kind = TokenKind::kConnection;
    p.anonymous = true;
    return p;
  }
  // An anonymous caller's scope matches no tenant (ids never contain '$').
  // Built from the kind, never from empty ids: only operators see everything.
  Scope scope() const {
    if (anonymous) return Scope{"$none", "$none"};
    switch (kind) {
      case TokenKind::kOperator:
        return Scope::All();
      case TokenKind::kTenant:
        return Scope::Tenant(tenant_id);
      case TokenKind::kConnection:
        return Scope{tenant_id, connection_id};
    }
    return Scope{"$none", "$none"};
  }
  bool can_reveal_credentials() const { return (rights & kRightRevealCredentials) != 0; }
};

struct ApiKeyOptions {
  // How long a successful lookup is reused without reading the store. Keys
  // revoked through this process are dropped from the cache at once; the TTL
  // bounds how long another replica's revocation takes to apply. Default 10s.
  absl::Duration cache_ttl = absl::Seconds(10);
  // Last-used times are kept at this resolution. Default 1 minute.
  absl::Duration last_used_resolution = absl::Minutes(1);
  // Longest grace period of a rotation. Default 7 days.
  absl::Duration max_grace_period = absl::Hours(24 * 7);
};

// Thread-safe. Borrows `store` and `clock`, which must outlive it.
// The topic of AnnounceChange for a key revoked or cut short, with its id.
inline constexpr char kApiKeyTopic[] = "api_key";

class ApiKeyManager final : public storage::ChangeListener {
 public:
  // `hash_key` keys the HMAC of stored tokens (32 bytes).
  ApiKeyManager(const ApiKeyOptions& options, storage::Store& store, Clock& clock,
                crypto::Secret hash_key);

  // The caller presenting `token`. UNAUTHENTICATED with reason
  // MISSING_CREDENTIAL (empty), MALFORMED_CREDENTIAL, UNKNOWN_CREDENTIAL,
  // REVOKED_CREDENTIAL or EXPIRED_CREDENTIAL.
  absl::StatusOr<Principal> Authenticate(absl::string_view token) ABSL_LOCKS_EXCLUDED(mu_);

  // Makes `token` (an operator key, syo_...) valid if it is not known yet:
  // the first operator key, supplied at start-up. A revoked bootstrap key
  // stays revoked. INVALID_ARGUMENT when `token` is not an operator key.
  absl::Status EnsureBootstrapOperatorKey(absl::string_view token);

  // Issues a token for connection `connection_id` of `tenant_id` inside `tx`
  // and returns it.
  absl::StatusOr<std::string> IssueConnectionTokenInTx(storage::Transaction& tx,
                                                       absl::string_view tenant_id,
                                                       absl::string_view connection_id,
                                                       absl::Time now);
  // Revokes every active key of `tenant_id` (all of them when
  // `connection_id` is empty, else those of that connection) inside `tx`, and
  // returns the ids it revoked. Pass them to Forget() once the transaction
  // committed.
  absl::StatusOr<std::vector<std::string>> RevokeAllInTx(storage::Transaction& tx,
                                                         absl::string_view tenant_id,
                                                         absl::string_view connection_id,
                                                         absl::Time now);
  // Drops the cached verifications of `key_ids`, and keeps any verification
  // that read the store before this call from entering the cache.
  void Forget(const std::vector<std::string>& key_ids) ABSL_LOCKS_EXCLUDED(mu_);
  // Calls `listener` (on the thread that forgot them) whenever keys were
  // revoked, cut short or forgotten, so that long-lived calls authorized by
  // them (event streams) are checked again. It must not block or call back
  // into this manager. Replaces an earlier listener; empty: none.
  void SetKeysChangedListener(std::function<void()> listener) ABSL_LOCKS_EXCLUDED(mu_);
  // storage::ChangeListener: keys revoked or rotated through another replica
  // are forgotten here too, instead of living on until the cache TTL.
  void ChangesAnnounced(const std::vector<storage::ChangeNotice>& changes) override
      ABSL_LOCKS_EXCLUDED(mu_);

  // The API key calls. Operator scope sees every key; a tenant scope sees only
  // the connection tokens of its tenant (NOT_FOUND for other tenants,
  // PERMISSION_DENIED for tenant and operator keys).
  absl::StatusOr<v1::CreateApiKeyResponse> Create(const v1::CreateApiKeyRequest& request,
                                                  const Scope& scope);
  absl::StatusOr<v1::ListApiKeysResponse> List(const v1::ListApiKeysRequest& request,
                                               const Scope& scope);
  absl::StatusOr<v1::CreateApiKeyResponse> Rotate(const v1::RotateApiKeyRequest& request,
                                                  const Scope& scope) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::ApiKey> Revoke(const v1::RevokeApiKeyRequest& request, const Scope& scope)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Writes the buffered last-used times. Called periodically.
  absl::Status FlushLastUsed() ABSL_LOCKS_EXCLUDED(mu_);

  static v1::ApiKey ToProto(const storage::ApiKeyRow& row, absl::Time now);

 private:
  void NotifyKeysChanged() ABSL_LOCKS_EXCLUDED(mu_);
  struct CacheEntry {
    Principal principal;
    absl::Time key_expire_time;
    absl::Time cached_at;
    absl::Time last_noted;  // when its use was last queued for FlushLastUsed
  };
  std::string Hash(absl::string_view token) const;
  storage::ApiKeyRow NewRow(TokenKind kind, absl::string_view tenant_id,
                            absl::string_view connection_id, absl::string_view token,
                            absl::Time now) const;
  void NoteUse(const std::string& key_id, absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);

  const ApiKeyOptions options_;
  storage::Store& store_;
  Clock& clock_;
  const crypto::HmacSha256Signer hasher_;

  absl::Mutex mu_;
  absl::flat_hash_map<std::string, CacheEntry> cache_ ABSL_GUARDED_BY(mu_);  // by hash
  // Hashes of well-formed tokens the store did not know, with when: a caller
  // making up tokens costs one store read per token and cache_ttl, not one
  // per call (tokens are random, so a key created later never matches one).
  // At most kMaxUnknown; cleared when full.
  absl::flat_hash_map<std::string, absl::Time> unknown_ ABSL_GUARDED_BY(mu_);
  // Bumped by Forget: a lookup that started before may not fill the cache.
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  std::function<void()> keys_changed_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, absl::Time> pending_use_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, absl::Time> recorded_use_ ABSL_GUARDED_BY(mu_);
};

}  // namespace switchyard::auth

#endif  // SWITCHYARD_SERVER_AUTH_API_KEYS_H_
