#include "server/auth/api_keys.h"

#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "server/common/log.h"
#include "server/common/names.h"
#include "server/common/proto_time.h"
#include "server/common/status.h"
#include "server/crypto/aead.h"

namespace switchyard::auth {
namespace {
using storage::ApiKeyRow;
using storage::Transaction;
using v1::ApiKey;

struct KeyName {
  TokenKind kind;
  std::string tenant_id;
  std::string connection_id;
  std::string id;
};

absl::Status Unauthenticated(absl::string_view reason, absl::string_view message) {
  return Error(absl::StatusCode::kUnauthenticated, reason, message);
}

absl::Status PermissionDenied(absl::string_view message) {
  return Error(absl::StatusCode::kPermissionDenied, "PERMISSION_DENIED", message);
}

absl::Status KeyNotFound(absl::string_view name) {
  return NotFound("API_KEY_NOT_FOUND", absl::StrCat(name, " does not exist"));
}

absl::StatusOr<KeyName> ParseKeyName(absl::string_view name) {
  if (auto ids = ParseName("name", name, {"apiKeys"}); ids.ok()) {
    return KeyName{TokenKind::kOperator, "", "", (*ids)[0]};
  }
  if (auto ids = ParseName("name", name, {"tenants", "apiKeys"}); ids.ok()) {
    return KeyName{TokenKind::kTenant, (*ids)[0], "", (*ids)[1]};
  }
  if (auto ids = ParseName("name", name, {"tenants", "connections", "tokens"}); ids.ok()) {
    return KeyName{TokenKind::kConnection, (*ids)[0], (*ids)[1], (*ids)[2]};
  }
  return InvalidArgument("INVALID_NAME",
                         "name must look like apiKeys/{key}, tenants/{tenant}/apiKeys/{key} or "
                         "tenants/{tenant}/connections/{connection}/tokens/{token}");
}

std::string NameOf(const ApiKeyRow& row) {
  switch (static_cast<TokenKind>(row.kind)) {
    case TokenKind::kOperator:
      return absl::StrCat("apiKeys/", row.id);
    case TokenKind::kTenant:
      return absl::StrCat("tenants/", row.tenant_id, "/apiKeys/", row.id);
    case TokenKind::kConnection:
      return absl::StrCat("tenants/", row.tenant_id, "/connections/", row.connection_id, "/tokens/",
                          row.id);
  }
  return row.id;
}

// Whether `scope` may see and manage the key named `key`: operators manage
// every key; a tenant manages the connection tokens of its tenant.
absl::Status CheckScope(const KeyName& key, const Scope& scope, absl::Status not_found) {
  if (scope.tenant_id.empty()) return absl::OkStatus();
  // The right depends on the kind of key only, whatever tenant is named.
  if (key.kind == TokenKind::kOperator) {
    return PermissionDenied("only operators manage operator keys");
  }
  if (key.kind == TokenKind::kTenant) return PermissionDenied("only operators manage tenant keys");
  if (!scope.AllowsWholeTenant(key.tenant_id)) return not_found;
  return absl::OkStatus();
}

absl::Status TenantNotFound(absl::string_view tenant_id) {
  return NotFound("TENANT_NOT_FOUND", absl::StrCat("tenants/", tenant_id, " does not exist"));
}

bool IsActive(const ApiKeyRow& row, absl::Time now) {
  return row.state == ApiKey::ACTIVE &&
         (row.expire_time == absl::InfinitePast() || row.expire_time > now);
}
}  // namespace

ApiKeyManager::ApiKeyManager(const ApiKeyOptions& options, storage::Store& store, Clock& clock,
                             crypto::Secret hash_key)
    : options_(options), store_(store), clock_(clock), hasher_(hash_key) {}

std::string ApiKeyManager::Hash(absl::string_view token) const { return hasher_.Sign(token); }

ApiKey ApiKeyManager::ToProto(const ApiKeyRow& row, absl::Time now) {
  ApiKey key;
  key.set_name(NameOf(row));
  key.set_kind(static_cast<ApiKey::Kind>(row.kind));
  key.set_display_name(row.display_name);
  key.set_hint(row.hint);
  key.set_can_reveal_credentials((row.rights & kRightRevealCredentials) != 0);
  ApiKey::State state = static_cast<ApiKey::State>(row.state);
  if (state == ApiKey::ACTIVE && !IsActive(row, now)) state = ApiKey::EXPIRED;
  key.set_state(state);
  switchyard::ToProto(row.create_time, key.mutable_create_time());
  if (row.expire_time != absl::InfinitePast()) {
    switchyard::ToProto(row.expire_time, key.mutable_expire_time());
  }
  if (row.last_used_time != absl::InfinitePast()) {
    switchyard::ToProto(row.last_used_time, key.mutable_last_used_time());
  }
  if (row.revoke_time != absl::InfinitePast()) {
    switchyard::ToProto(row.revoke_time, key.mutable_revoke_time());
  }
  return key;
}

ApiKeyRow ApiKeyManager::NewRow(TokenKind kind, absl::string_view tenant_id,
                                absl::string_view connection_id, absl::string_view token,
                                absl::Time now) const {
  ApiKeyRow row;
  row.id = GenerateId("k");
  row.kind = static_cast<int>(kind);
  row.tenant_id = std::string(tenant_id);
  row.connection_id = std::string(connection_id);
  row.hash = Hash(token);
  row.hint = TokenHint(token);
  row.state = ApiKey::ACTIVE;
  row.create_time = now;
  return row;
}

absl::StatusOr<Principal> ApiKeyManager::Authenticate(absl::string_view token) {
  if (token.empty()) {
    return Unauthenticated("MISSING_CREDENTIAL",
                           "this call needs 'authorization: Bearer <key or token>' metadata");
  }
  SY_ASSIGN_OR_RETURN(TokenKind kind, ParseToken(token));
  const std::string hash = Hash(token);
  const absl::Time now = clock_.Now();
  auto expired = [] { return Unauthenticated("EXPIRED_CREDENTIAL", "the credential has expired"); };
  // The common case, a cached key used recently, only takes the lock shared:
  // every call of every caller passes here.
  bool note_use = false;
  uint64_t generation = 0;
  {
    absl::ReaderMutexLock lock(&mu_);
    generation = generation_;
    auto it = cache_.find(hash);
    if (it != cache_.end() && now - it->second.cached_at < options_.cache_ttl) {
      if (it->second.key_expire_time != absl::InfinitePast() && it->second.key_expire_time <= now) {
        return expired();
      }
      if (now - it->second.last_noted < absl::Seconds(1)) return it->second.principal;
      note_use = true;
    } else if (auto u = unknown_.find(hash);
               u != unknown_.end() && now - u->second < options_.cache_ttl) {
      return Unauthenticated("UNKNOWN_CREDENTIAL", "the credential is not known");
    }
  }
  if (note_use) {
    absl::MutexLock lock(&mu_);
    auto it = cache_.find(hash);
    if (it != cache_.end()) {
      it->second.last_noted = now;
      pending_use_[it->second.principal.key_id] = now;
      return it->second.principal;
    }
  }
  std::optional<ApiKeyRow> row;
  SY_RETURN_IF_ERROR(store_.Read([&](Transaction& tx) -> absl::Status {
    SY_ASSIGN_OR_RETURN(row, tx.GetApiKeyByHash(hash));
    return absl::OkStatus();
  }));
  // The index lookup found the row by hash; the constant-time comparison is
  // the verification itself.
  if (!row.has_value() || !crypto::ConstantTimeEquals(row->hash, hash) ||
      row->kind != static_cast<int>(kind)) {
    if (!row.has_value()) {
      constexpr size_t kMaxUnknown = 10000;
      absl::MutexLock lock(&mu_);
      // A key registered while the row was read must not be refused.
      if (generation_ == generation) {
        if (unknown_.size() >= kMaxUnknown) unknown_.clear();
        unknown_[hash] = now;
      }
    }
    return Unauthenticated("UNKNOWN_CREDENTIAL", "the credential is not known");
  }
  if (row->state == ApiKey::REVOKED) {
    return Unauthenticated("REVOKED_CREDENTIAL", "the credential was revoked");
  }
  if (!IsActive(*row, now)) return expired();
  if ((kind != TokenKind::kOperator && row->tenant_id.empty()) ||
      (kind == TokenKind::kConnection && row->connection_id.empty())) {
    // A tenant or connection credential without its owner would see too much.
    log::Error("api key row without owner", {{"key", row->id}});
    return Unauthenticated("UNKNOWN_CREDENTIAL", "the credential is not known");
  }
  Principal principal{kind, row->id, row->tenant_id, row->connection_id, row->rights};
  absl::MutexLock lock(&mu_);
  // A revocation that committed while the row was read must win.
  if (generation_ == generation) cache_[hash] = CacheEntry{principal, row->expire_time, now, now};
  pending_use_[principal.key_id] = now;
  return principal;
}

void ApiKeyManager::ChangesAnnounced(const std::vector<storage::ChangeNotice>& changes) {
  std::vector<std::string> ids;
  for (const storage::ChangeNotice& c : changes) {
    if (c.topic == storage::kEverythingChanged) {
      {
        absl::MutexLock lock(&mu_);
        ++generation_;
        cache_.clear();
        unknown_.clear();
      }
      NotifyKeysChanged();
      return;
    }
    if (c.topic == kApiKeyTopic) ids.push_back(c.id);
  }
  if (!ids.empty()) Forget(ids);
}

void ApiKeyManager::Forget(const std::vector<std::string>& key_ids) {
  {
    absl::MutexLock lock(&mu_);
    ++generation_;
    // A key registered meanwhile (the bootstrap key, chosen by the operator)
    // must not stay refused.
    unknown_.clear();
    if (key_ids.empty()) return;
    absl::flat_hash_set<absl::string_view> ids(key_ids.begin(), key_ids.end());
    for (auto it = cache_.begin(); it != cache_.end();) {
      if (ids.contains(it->second.principal.key_id)) {
        cache_.erase(it++);
      } else {
        ++it;
      }
    }
  }
  NotifyKeysChanged();
}

void ApiKeyManager::SetKeysChangedListener(std::function<void()> listener) {
  absl::MutexLock lock(&mu_);
  keys_changed_ = std::move(listener);
}

void ApiKeyManager::NotifyKeysChanged() {
  std::function<void()> listener;
  {
    absl::MutexLock lock(&mu_);
    listener = keys_changed_;
  }
  if (listener) listener();
}

absl::Status ApiKeyManager::EnsureBootstrapOperatorKey(absl::string_view token) {
  absl::StatusOr<TokenKind> kind = ParseToken(token);
  if (!kind.ok() || *kind != TokenKind::kOperator) {
    return InvalidArgument("INVALID_BOOTSTRAP_KEY",
                           "the bootstrap operator key must be a well-formed syo_ key");
  }
  const absl::Time now = clock_.Now();
  std::optional<ApiKeyRow> registered;  // the new key
  SY_RETURN_IF_ERROR(store_.Write([&](Transaction& tx) -> absl::Status {
    registered.reset();  // the store may run this more than once
    SY_ASSIGN_OR_RETURN(std::optional<ApiKeyRow> existing, tx.GetApiKeyByHash(Hash(token)));
    if (existing.has_value()) return absl::OkStatus();
    ApiKeyRow row = NewRow(TokenKind::kOperator, "", "", token, now);
    row.display_name = "bootstrap operator key";
    row.rights = kRightRevealCredentials;
    SY_RETURN_IF_ERROR(tx.InsertApiKey(row));
    // Replicas that refused the token as unknown accept it at once.
    tx.AnnounceChange(kApiKeyTopic, row.id);
    registered = std::move(row);
    return absl::OkStatus();
  }));
  if (registered.has_value()) {
    log::Info("bootstrap operator key registered",
              {{"key", NameOf(*registered)}, {"hint", registered->hint}});
    Forget({registered->id});
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ApiKeyManager::IssueConnectionTokenInTx(Transaction& tx,
                                                                    absl::string_view tenant_id,
                                                                    absl::string_view connection_id,
                                                                    absl::Time now) {
  std::string token = MintToken(TokenKind::kConnection);
  ApiKeyRow row = NewRow(TokenKind::kConnection, tenant_id, connection_id, token, now);
  row.display_name = "connection token";
  SY_RETURN_IF_ERROR(tx.InsertApiKey(row));
  return token;
}

absl::StatusOr<std::vector<std::string>> ApiKeyManager::RevokeAllInTx(
    Transaction& tx, absl::string_view tenant_id, absl::string_view connection_id, absl::Time now) {
  std::vector<std::string> revoked;
  std::string after;
  while (true) {
    SY_ASSIGN_OR_RETURN(std::vector<ApiKeyRow> page,
                        tx.ListApiKeys(0, tenant_id, connection_id, after, 500));
    for (ApiKeyRow& row : page) {
      if (row.state == ApiKey::REVOKED) continue;
      row.state = ApiKey::REVOKED;
      row.revoke_time = now;
      SY_RETURN_IF_ERROR(tx.UpdateApiKey(row));
      tx.AnnounceChange(kApiKeyTopic, row.id);
      revoked.push_back(row.id);
    }
    if (page.size() < 500) return revoked;
    after = page.back().id;
  }
}

absl::StatusOr<v1::CreateApiKeyResponse> ApiKeyManager::Create(const v1::CreateApiKeyRequest& req,
                                                               const Scope& scope) {
  if (!scope.tenant_id.empty()) return PermissionDenied("only operators create keys");
  TokenKind kind = TokenKind::kOperator;
  std::string tenant_id;
  if (!req.parent().empty()) {
    SY_ASSIGN_OR_RETURN(std::vector<std::string> ids,
                        ParseName("parent", req.parent(), {"tenants"}));
    kind = TokenKind::kTenant;
    tenant_id = ids[0];
  }
  if (req.display_name().size() > 200) {
    return InvalidArgument("INVALID_DISPLAY_NAME", "display_name must be at most 200 bytes");
  }
  absl::Duration ttl = absl::ZeroDuration();
  if (req.has_ttl()) {
    ttl = FromProto(req.ttl());
    if (ttl < absl::Minutes(1) || ttl > absl::Hours(24 * 3650)) {
      return InvalidArgument("INVALID_TTL", "ttl must be between 1 minute and 10 years");
    }
  }
  const absl::Time now = clock_.Now();
  v1::CreateApiKeyResponse response;
  std::string token = MintToken(kind);
  SY_RETURN_IF_ERROR(store_.Write([&](Transaction& tx) -> absl::Status {
    if (kind == TokenKind::kTenant) {
      SY_ASSIGN_OR_RETURN(std::optional<storage::TenantRow> tenant, tx.GetTenant(tenant_id));
      if (!tenant.has_value() || tenant->deleted) {
        return NotFound("TENANT_NOT_FOUND", absl::StrCat(req.parent(), " does not exist"));
      }
    }
    ApiKeyRow row = NewRow(kind, tenant_id, "", token, now);
    row.display_name = req.display_name();
    row.rights = req.can_reveal_credentials() ? kRightRevealCredentials : 0;
    if (ttl > absl::ZeroDuration()) row.expire_time = now + ttl;
    SY_RETURN_IF_ERROR(tx.InsertApiKey(row));
    *response.mutable_api_key() = ToProto(row, now);
    return absl::OkStatus();
  }));
  response.set_token(std::move(token));
  return response;
}

absl::StatusOr<v1::ListApiKeysResponse> ApiKeyManager::List(const v1::ListApiKeysRequest& req,
                                                            const Scope& scope) {
  KeyName filter{TokenKind::kOperator, "", "", ""};
  if (!req.parent().empty()) {
    if (auto t = ParseName("parent", req.parent(), {"tenants"}); t.ok()) {
      filter = KeyName{TokenKind::kTenant, (*t)[0], "", ""};
    } else if (auto c = ParseName("parent", req.parent(), {"tenants", "connections"}); c.ok()) {
      filter = KeyName{TokenKind::kConnection, (*c)[0], (*c)[1], ""};
    } else {
      return InvalidArgument("INVALID_NAME",
                             "parent must be empty, tenants/{tenant} or "
                             "tenants/{tenant}/connections/{connection}");
    }
  }
  SY_RETURN_IF_ERROR(CheckScope(filter, scope, TenantNotFound(filter.tenant_id)));
  SY_ASSIGN_OR_RETURN(int page_size, NormalizePageSize(req.page_size()));
  const std::string query = absl::StrCat("ListApiKeys|", req.parent());
  SY_ASSIGN_OR_RETURN(std::string after, DecodePageToken(req.page_token(), query));
  std::vector<ApiKeyRow> rows;
  SY_RETURN_IF_ERROR(store_.Read([&](Transaction& tx) -> absl::Status {
    if (!filter.tenant_id.empty()) {
      SY_ASSIGN_OR_RETURN(std::optional<storage::TenantRow> tenant, tx.GetTenant(filter.tenant_id));
      if (!tenant.has_value() || tenant->deleted) {
        return NotFound("TENANT_NOT_FOUND",
                        absl::StrCat("tenants/", filter.tenant_id, " does not exist"));
      }
    }
    SY_ASSIGN_OR_RETURN(rows, tx.ListApiKeys(static_cast<int>(filter.kind), filter.tenant_id,
                                             filter.connection_id, after, page_size + 1));
    return absl::OkStatus();
  }));
  const absl::Time now = clock_.Now();
  v1::ListApiKeysResponse response;
  for (size_t i = 0; i < rows.size() && i < static_cast<size_t>(page_size); ++i) {
    *response.add_api_keys() = ToProto(rows[i], now);
  }
  if (rows.size() > static_cast<size_t>(page_size)) {
    response.set_next_page_token(EncodePageToken(query, rows[page_size - 1].id));
  }
  return response;
}

absl::StatusOr<v1::CreateApiKeyResponse> ApiKeyManager::Rotate(const v1::RotateApiKeyRequest& req,
                                                               const Scope& scope) {
  SY_ASSIGN_OR_RETURN(KeyName key, ParseKeyName(req.name()));
  SY_RETURN_IF_ERROR(CheckScope(key, scope, KeyNotFound(req.name())));
  absl::Duration grace = absl::ZeroDuration();
  if (req.has_grace_period()) {
    grace = FromProto(req.grace_period());
    if (grace < absl::ZeroDuration() || grace > options_.max_grace_period) {
      return InvalidArgument("INVALID_GRACE_PERIOD",
                             absl::StrCat("grace_period must be between 0 and ",
                                          absl::FormatDuration(options_.max_grace_period)));
    }
  }
  const absl::Time now = clock_.Now();
  v1::CreateApiKeyResponse response;
  std::string token = MintToken(key.kind);
  SY_RETURN_IF_ERROR(store_.Write([&](Transaction& tx) -> absl::Status {
    SY_ASSIGN_OR_RETURN(std::optional<ApiKeyRow> old, tx.GetApiKey(key.id));
    if (!old.has_value() || NameOf(*old) != req.name()) return KeyNotFound(req.name());
    if (!IsActive(*old, now)) {
      return FailedPrecondition("API_KEY_INACTIVE",
                                absl::StrCat(req.name(), " is revoked or expired"));
    }
    if (!old->superseded_by.empty()) {
      return FailedPrecondition(
          "API_KEY_ALREADY_ROTATED",
          absl::StrCat(req.name(), " was already rotated; rotate its successor instead"));
    }
    ApiKeyRow fresh = NewRow(key.kind, old->tenant_id, old->connection_id, token, now);
    fresh.display_name = old->display_name;
    fresh.rights = old->rights;
    fresh.expire_time = old->expire_time;  // the successor keeps the original lifetime
    SY_RETURN_IF_ERROR(tx.InsertApiKey(fresh));
    old->superseded_by = fresh.id;
    if (grace > absl::ZeroDuration()) {
      // The grace period can shorten the old token's life, never extend it.
      if (old->expire_time == absl::InfinitePast() || old->expire_time > now + grace) {
        old->expire_time = now + grace;
      }
    } else {
      old->state = ApiKey::REVOKED;
      old->revoke_time = now;
    }
    SY_RETURN_IF_ERROR(tx.UpdateApiKey(*old));
    tx.AnnounceChange(kApiKeyTopic, old->id);
    *response.mutable_api_key() = ToProto(fresh, now);
    return absl::OkStatus();
  }));
  Forget({key.id});
  response.set_token(std::move(token));
  return response;
}

absl::StatusOr<ApiKey> ApiKeyManager::Revoke(const v1::RevokeApiKeyRequest& req,
                                             const Scope& scope) {
  SY_ASSIGN_OR_RETURN(KeyName key, ParseKeyName(req.name()));
  SY_RETURN_IF_ERROR(CheckScope(key, scope, KeyNotFound(req.name())));
  const absl::Time now = clock_.Now();
  ApiKey result;
  bool changed = false;
  SY_RETURN_IF_ERROR(store_.Write([&](Transaction& tx) -> absl::Status {
    SY_ASSIGN_OR_RETURN(std::optional<ApiKeyRow> row, tx.GetApiKey(key.id));
    if (!row.has_value() || NameOf(*row) != req.name()) return KeyNotFound(req.name());
    if (row->state != ApiKey::REVOKED) {
      row->state = ApiKey::REVOKED;
      row->revoke_time = now;
      SY_RETURN_IF_ERROR(tx.UpdateApiKey(*row));
      tx.AnnounceChange(kApiKeyTopic, row->id);
      changed = true;
    }
    result = ToProto(*row, now);
    return absl::OkStatus();
  }));
  if (changed) Forget({key.id});
  return result;
}

absl::Status ApiKeyManager::FlushLastUsed() {
  absl::flat_hash_map<std::string, absl::Time> due;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, time] : pending_use_) {
      auto it = recorded_use_.find(id);
      if (it == recorded_use_.end() || time - it->second >= options_.last_used_resolution) {
        due[id] = time;
      }
    }
    pending_use_.clear();
  }
  if (due.empty()) return absl::OkStatus();
  SY_RETURN_IF_ERROR(store_.Write([&](Transaction& tx) -> absl::Status {
    for (const auto& [id, time] : due) {
      SY_ASSIGN_OR_RETURN(std::optional<ApiKeyRow> row, tx.GetApiKey(id));
      if (!row.has_value()) continue;
      row->last_used_time = time;
      SY_RETURN_IF_ERROR(tx.UpdateApiKey(*row));
    }
    return absl::OkStatus();
  }));
  absl::MutexLock lock(&mu_);
  for (const auto& [id, time] : due) recorded_use_[id] = time;
  return absl::OkStatus();
}

}  // namespace switchyard::auth
