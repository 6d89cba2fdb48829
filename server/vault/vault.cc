#include "server/vault/vault.h"

#include <limits>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/common/names.h"
#include "server/common/proto_time.h"
#include "server/common/status.h"
#include "server/crypto/aead.h"
#include "server/webhooks/signature.h"

namespace switchyard::vault {
namespace {
using storage::CredentialsRow;
using storage::DataKeyRow;
using storage::Transaction;
using v1::ConnectionCredentials;

std::string DataKeyAad(absl::string_view owner, int64_t version) {
  return absl::StrCat("switchyard/data-key/v1|", owner, "|", version);
}

std::string CredentialsAad(absl::string_view tenant, absl::string_view connection,
                           int64_t version) {
  return absl::StrCat("switchyard/credentials/v1|", tenant, "|", connection, "|", version);
}

struct ConnectionRef {
  std::string tenant_id;
  std::string connection_id;
  std::string name;
};

// Parses `tenants/{tenant}/connections/{connection}/{child}`, the name of a
// singleton resource of a connection (its credentials or webhook secret).
absl::StatusOr<ConnectionRef> ParseConnectionChild(absl::string_view name,
                                                   absl::string_view child) {
  SY_ASSIGN_OR_RETURN(std::vector<std::string> ids, switchyard::ParseConnectionChild(name, child));
  return ConnectionRef{ids[0], ids[1], std::string(name)};
}

absl::StatusOr<ConnectionRef> ParseCredentialsName(absl::string_view name) {
  return ParseConnectionChild(name, "credentials");
}

absl::Status CredentialsNotFound(absl::string_view name) {
  return NotFound("CREDENTIALS_NOT_FOUND", absl::StrCat(name, " does not exist"));
}

// Checks that the connection exists, is visible to `scope` and, when
// `must_be_live`, is not disconnected.
absl::Status CheckConnection(Transaction& tx, const ConnectionRef& ref, const Scope& scope,
                             bool must_be_live) {
  auto missing = [&] {
    return NotFound("CONNECTION_NOT_FOUND", absl::StrCat("tenants/", ref.tenant_id, "/connections/",
                                                         ref.connection_id, " does not exist"));
  };
  if (!scope.AllowsConnection(ref.tenant_id, ref.connection_id)) return missing();
  SY_ASSIGN_OR_RETURN(std::optional<storage::TenantRow> tenant, tx.GetTenant(ref.tenant_id));
  if (!tenant.has_value() || tenant->deleted) return missing();
  SY_ASSIGN_OR_RETURN(std::optional<storage::ConnectionRow> connection,
                      tx.GetConnection(ref.tenant_id, ref.connection_id));
  if (!connection.has_value()) return missing();
  if (must_be_live && connection->state == v1::Connection::DISCONNECTED) {
    return FailedPrecondition("CONNECTION_DISCONNECTED",
                              "the connection is disconnected; its credentials are gone");
  }
  return absl::OkStatus();
}

// Overwrites the secret fields of `c` before it is released.
void WipeSecrets(ConnectionCredentials& c) {
  crypto::Wipe(*c.mutable_password());
  crypto::Wipe(*c.mutable_oauth_client_secret());
  crypto::Wipe(*c.mutable_oauth_refresh_token());
  crypto::Wipe(*c.mutable_api_key());
  for (auto& [name, value] : *c.mutable_secrets()) crypto::Wipe(value);
}

// The view without secret values: which secret fields are set.
ConnectionCredentials Summarize(const ConnectionCredentials& c) {
  ConnectionCredentials s;
  s.set_base_url(c.base_url());
  s.set_username(c.username());
  s.set_oauth_client_id(c.oauth_client_id());
  if (!c.password().empty()) s.add_secret_fields("password");
  if (!c.oauth_client_secret().empty()) s.add_secret_fields("oauth_client_secret");
  if (!c.oauth_refresh_token().empty()) s.add_secret_fields("oauth_refresh_token");
  if (!c.api_key().empty()) s.add_secret_fields("api_key");
  std::vector<std::string> names;
  for (const auto& [name, value] : c.secrets()) names.push_back(name);
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) s.add_secret_fields(absl::StrCat("secrets.", name));
  return s;
}

absl::Status ValidateCredentials(const ConnectionCredentials& c) {
  const size_t total = c.ByteSizeLong();
  if (total > 64 * 1024) {
    return InvalidArgument("CREDENTIALS_TOO_LARGE", "credentials must be at most 64 KiB");
  }
  if (c.secrets_size() > 64) {
    return InvalidArgument("INVALID_CREDENTIALS", "at most 64 named secrets");
  }
  for (const auto& [name, value] : c.secrets()) {
    if (!ValidateId("secret name", name).ok()) {
      return InvalidArgument("INVALID_CREDENTIALS",
                             "secret names must be lowercase ids such as client-cert");
    }
  }
  return absl::OkStatus();
}
}  // namespace

absl::StatusOr<crypto::Secret> CredentialVault::Unwrap(const DataKeyRow& row) const {
  return keyring_.Unwrap(row.master_key_id, row.wrapped, DataKeyAad(row.owner, row.version));
}

absl::StatusOr<crypto::Secret> CredentialVault::LoadOrCreateServerKey(absl::string_view name) {
  const std::string owner = absl::StrCat("$", name);
  std::optional<DataKeyRow> row;
  SY_RETURN_IF_ERROR(store_.Write([&](Transaction& tx) -> absl::Status {
    SY_ASSIGN_OR_RETURN(std::vector<DataKeyRow> rows, tx.ListDataKeys(owner));
    if (!rows.empty()) {
      row = rows.back();
      return absl::OkStatus();
    }
    crypto::Secret key = crypto::RandomSecret(crypto::kAes256KeySize);
    SY_ASSIGN_OR_RETURN(std::string wrapped, keyring_.Wrap(key, DataKeyAad(owner, 1)));
    row = DataKeyRow{owner, 1, keyring_.primary_id(), std::move(wrapped), clock_.Now()};
    return tx.InsertDataKey(*row);
  }));
  return Unwrap(*row);
}

absl::StatusOr<CredentialVault::DataKey> CredentialVault::CurrentKeyInTx(
    Transaction& tx, absl::string_view tenant_id, absl::Time now) {
  SY_ASSIGN_OR_RETURN(std::vector<DataKeyRow> rows, tx.ListDataKeys(tenant_id));
  if (!rows.empty()) {
    SY_ASSIGN_OR_RETURN(crypto::Secret key, Unwrap(rows.back()));
    return DataKey{rows.back().version, std::move(key)};
  }
  crypto::Secret key = crypto::RandomSecret(crypto::kAes256KeySize);
  SY_ASSIGN_OR_RETURN(std::string wrapped, keyring_.Wrap(key, DataKeyAad(tenant_id, 1)));
  SY_RETURN_IF_ERROR(tx.InsertDataKey(
      DataKeyRow{std::string(tenant_id), 1, keyring_.primary_id(), std::move(wrapped), now}));
  return DataKey{1, std::move(key)};
}

absl::StatusOr<crypto::Secret> CredentialVault::KeyVersionInTx(Transaction& tx,
                                                               absl::string_view tenant_id,
                                                               int64_t version) {
  SY_ASSIGN_OR_RETURN(std::vector<DataKeyRow> rows, tx.ListDataKeys(tenant_id));
  for (const DataKeyRow& row : rows) {
    if (row.version == version) return Unwrap(row);
  }
  return Error(absl::StatusCode::kDataLoss, "DATA_KEY_DESTROYED",
               "the data key that sealed these credentials no longer exists");
}

absl::StatusOr<CredentialsRow> CredentialVault::SealRow(absl::string_view tenant_id,
                                                        absl::string_view connection_id,
                                                        const ConnectionCredentials& credentials,
                                                        const DataKey& key, absl::Time now) const {
  crypto::Secret plaintext(credentials.SerializeAsString());
  SY_ASSIGN_OR_RETURN(std::string sealed,
                      crypto::Seal(key.key, plaintext.view(),
                                   CredentialsAad(tenant_id, connection_id, key.version)));
  return CredentialsRow{std::string(tenant_id),
                        std::string(connection_id),
                        key.version,
                        std::move(sealed),
                        Summarize(credentials).SerializeAsString(),
                        now};
}

absl::StatusOr<ConnectionCredentials> CredentialVault::OpenRow(Transaction& tx,
                                                               const CredentialsRow& row) {
  SY_ASSIGN_OR_RETURN(crypto::Secret key, KeyVersionInTx(tx, row.tenant_id, row.key_version));
  SY_ASSIGN_OR_RETURN(
      crypto::Secret plaintext,
      crypto::Open(key, row.sealed,
                   CredentialsAad(row.tenant_id, row.connection_id, row.key_version)));
  ConnectionCredentials credentials;
  if (!credentials.ParseFromArray(plaintext.view().data(),
                                  static_cast<int>(plaintext.view().size()))) {
    return Error(absl::StatusCode::kDataLoss, "DECRYPTION_FAILED",
                 "decrypted credentials do not parse");
  }
  return credentials;
}

absl::StatusOr<ConnectionCredentials> CredentialVault::Set(
    const v1::SetConnectionCredentialsRequest& req, const Scope& scope) {
  SY_ASSIGN_OR_RETURN(ConnectionRef ref, ParseCredentialsName(req.credentials().name()));
  SY_RETURN_IF_ERROR(ValidateCredentials(req.credentials()));
  ConnectionCredentials clean = req.credentials();
  clean.clear_name();
  clean.clear_secret_fields();
  clean.clear_key_version();
  clean.clear_update_time();
  const absl::Time now = clock_.Now();
  ConnectionCredentials result;
  absl::Status status = store_.Write([&](Transaction& tx) -> absl::Status {
    SY_RETURN_IF_ERROR(CheckConnection(tx, ref, scope, /*must_be_live=*/true));
    SY_ASSIGN_OR_RETURN(DataKey key, CurrentKeyInTx(tx, ref.tenant_id, now));
    SY_ASSIGN_OR_RETURN(CredentialsRow row,
                        SealRow(ref.tenant_id, ref.connection_id, clean, key, now));
    SY_RETURN_IF_ERROR(tx.PutCredentials(row));
    result = Summarize(clean);
    result.set_key_version(row.key_version);
    return absl::OkStatus();
  });
  WipeSecrets(clean);
  SY_RETURN_IF_ERROR(status);
  result.set_name(ref.name);
  ToProto(now, result.mutable_update_time());
  return result;
}

absl::StatusOr<ConnectionCredentials> CredentialVault::Get(
    const v1::GetConnectionCredentialsRequest& req, const Scope& scope, bool can_reveal) {
  if (req.reveal_secrets() && !can_reveal) {
    return Error(absl::StatusCode::kPermissionDenied, "PERMISSION_DENIED",
                 "revealing secrets needs a key with can_reveal_credentials");
  }
  SY_ASSIGN_OR_RETURN(ConnectionRef ref, ParseCredentialsName(req.name()));
  const absl::Time now = clock_.Now();
  ConnectionCredentials result;
  auto read = [&](Transaction& tx) -> absl::Status {
    SY_RETURN_IF_ERROR(CheckConnection(tx, ref, scope, /*must_be_live=*/false));
    SY_ASSIGN_OR_RETURN(std::optional<CredentialsRow> row,
                        tx.GetCredentials(ref.tenant_id, ref.connection_id));
    if (!row.has_value()) return CredentialsNotFound(ref.name);
    if (!req.reveal_secrets()) {
      if (!result.ParseFromString(row->summary)) {
        return Error(absl::StatusCode::kDataLoss, "CREDENTIALS_CORRUPT",
                     "stored credentials summary does not parse");
      }
      result.set_key_version(row->key_version);
      ToProto(row->update_time, result.mutable_update_time());
      return absl::OkStatus();
    }
    SY_ASSIGN_OR_RETURN(result, OpenRow(tx, *row));
    // Until the plaintext is handed back, any early return wipes it.
    auto wipe_result = absl::MakeCleanup([&] { WipeSecrets(result); });
    *result.mutable_secret_fields() = Summarize(result).secret_fields();
    // Lazy re-encryption: credentials sealed under an older data key move to
    // the newest one when revealed.
    SY_ASSIGN_OR_RETURN(DataKey current, CurrentKeyInTx(tx, ref.tenant_id, now));
    if (current.version != row->key_version) {
      ConnectionCredentials plain = result;
      auto wipe_plain = absl::MakeCleanup([&] { WipeSecrets(plain); });
      plain.clear_secret_fields();
      SY_ASSIGN_OR_RETURN(CredentialsRow fresh, SealRow(ref.tenant_id, ref.connection_id, plain,
                                                        current, row->update_time));
      SY_RETURN_IF_ERROR(tx.PutCredentials(fresh));
    }
    result.set_key_version(current.version);
    ToProto(row->update_time, result.mutable_update_time());
    std::move(wipe_result).Cancel();
    return absl::OkStatus();
  };
  // Revealing may re-encrypt, so it runs as a write.
  SY_RETURN_IF_ERROR(req.reveal_secrets() ? store_.Write(read) : store_.Read(read));
  result.set_name(ref.name);
  return result;
}

absl::Status CredentialVault::Delete(const v1::DeleteConnectionCredentialsRequest& req,
                                     const Scope& scope) {
  SY_ASSIGN_OR_RETURN(ConnectionRef ref, ParseCredentialsName(req.name()));
  return store_.Write([&](Transaction& tx) -> absl::Status {
    SY_RETURN_IF_ERROR(CheckConnection(tx, ref, scope, /*must_be_live=*/false));
    SY_ASSIGN_OR_RETURN(std::optional<CredentialsRow> row,
                        tx.GetCredentials(ref.tenant_id, ref.connection_id));
    if (!row.has_value()) return CredentialsNotFound(ref.name);
    return tx.DeleteCredentials(ref.tenant_id, ref.connection_id);
  });
}

absl::StatusOr<v1::RotateTenantDataKeyResponse> CredentialVault::RotateTenantKey(
    const v1::RotateTenantDataKeyRequest& req) {
  SY_ASSIGN_OR_RETURN(std::vector<std::string> ids, ParseName("name", req.name(), {"tenants"}));
  const std::string& tenant_id = ids[0];
  const absl::Time now = clock_.Now();
  v1::RotateTenantDataKeyResponse response;
  SY_RETURN_IF_ERROR(store_.Write([&](Transaction& tx) -> absl::Status {
    response.Clear();  // the store may run this more than once
    SY_ASSIGN_OR_RETURN(std::optional<storage::TenantRow> tenant, tx.GetTenant(tenant_id));
    if (!tenant.has_value() || tenant->deleted) {
      return NotFound("TENANT_NOT_FOUND", absl::StrCat(req.name(), " does not exist"));
    }
    SY_ASSIGN_OR_RETURN(std::vector<DataKeyRow> rows, tx.ListDataKeys(tenant_id));
    const int64_t version = rows.empty() ? 1 : rows.back().version + 1;
    DataKey fresh{version, crypto::RandomSecret(crypto::kAes256KeySize)};
    SY_ASSIGN_OR_RETURN(std::string wrapped,
                        keyring_.Wrap(fresh.key, DataKeyAad(tenant_id, version)));
    SY_RETURN_IF_ERROR(tx.InsertDataKey(
        DataKeyRow{tenant_id, version, keyring_.primary_id(), std::move(wrapped), now}));
    response.set_key_version(version);
    if (!req.reencrypt()) return absl::OkStatus();
    std::string after;
    while (true) {
      SY_ASSIGN_OR_RETURN(std::vector<CredentialsRow> page,
                          tx.ListCredentials(tenant_id, after, 200));
      for (const CredentialsRow& row : page) {
        SY_ASSIGN_OR_RETURN(ConnectionCredentials plain, OpenRow(tx, row));
        auto wipe_plain = absl::MakeCleanup([&] { WipeSecrets(plain); });
        SY_ASSIGN_OR_RETURN(CredentialsRow sealed,
                            SealRow(tenant_id, row.connection_id, plain, fresh, row.update_time));
        SY_RETURN_IF_ERROR(tx.PutCredentials(sealed));
        response.set_reencrypted(response.reencrypted() + 1);
      }
      if (page.size() < 200) break;
      after = page.back().connection_id;
    }
    // The connections' webhook signing secrets too; expired ones go.
    SY_ASSIGN_OR_RETURN(int64_t secrets, ReencryptWebhookSecretsInTx(tx, tenant_id, fresh, now));
    response.set_reencrypted(response.reencrypted() + secrets);
    // Nothing is sealed under the older versions any more: destroy them.
    return tx.DeleteDataKeys(tenant_id, version);
  }));
  return response;
}

absl::StatusOr<v1::RewrapDataKeysResponse> CredentialVault::RewrapDataKeys() {
  v1::RewrapDataKeysResponse response;
  response.set_primary_master_key_id(keyring_.primary_id());
  while (true) {
    int64_t batch = 0;
    SY_RETURN_IF_ERROR(store_.Write([&](Transaction& tx) -> absl::Status {
      SY_ASSIGN_OR_RETURN(std::vector<DataKeyRow> rows,
                          tx.ListDataKeysNotWrappedBy(keyring_.primary_id(), 200));
      for (DataKeyRow& row : rows) {
        SY_ASSIGN_OR_RETURN(crypto::Secret key, Unwrap(row));
        SY_ASSIGN_OR_RETURN(row.wrapped, keyring_.Wrap(key, DataKeyAad(row.owner, row.version)));
        row.master_key_id = keyring_.primary_id();
        SY_RETURN_IF_ERROR(tx.UpdateDataKey(row));
      }
      batch = static_cast<int64_t>(rows.size());
      return absl::OkStatus();
    }));
    response.set_rewrapped(response.rewrapped() + batch);
    if (batch < 200) return response;
  }
}

void CredentialVault::ChangesAnnounced(const std::vector<storage::ChangeNotice>& changes) {
  for (const storage::ChangeNotice& c : changes) {
    if (c.topic == storage::kEverythingChanged) {
      // Every connection's version moves past what was cached.
      absl::MutexLock lock(&versions_mu_);
      versions_.clear();
      floor_version_ = ++last_version_;
    } else if (c.topic == kWebhookSecretTopic) {
      WebhookSecretsChanged(c.id);
    }
  }
}

void CredentialVault::WebhookSecretsChanged(const std::string& connection_key) {
  absl::MutexLock lock(&versions_mu_);
  versions_[connection_key] = ++last_version_;
}

uint64_t CredentialVault::WebhookSecretVersion(absl::string_view tenant_id,
                                               absl::string_view connection_id) const {
  const std::string key = absl::StrCat(tenant_id, "/", connection_id);
  absl::ReaderMutexLock lock(&versions_mu_);
  auto it = versions_.find(key);
  return it == versions_.end() ? floor_version_ : it->second;
}

absl::Status CredentialVault::DeleteCredentialsInTx(Transaction& tx, absl::string_view tenant_id,
                                                    absl::string_view connection_id) {
  SY_RETURN_IF_ERROR(tx.DeleteWebhookSecrets(tenant_id, connection_id));
  tx.AnnounceChange(kWebhookSecretTopic, absl::StrCat(tenant_id, "/", connection_id));
  return tx.DeleteCredentials(tenant_id, connection_id);
}

// --- Webhook signing secrets ----------------------------------------------------

namespace {
std::string WebhookSecretAad(const storage::WebhookSecretRow& row) {
  return absl::StrCat("switchyard/webhook-secret/v1|", row.tenant_id, "|", row.connection_id, "|",
                      row.version, "|", row.key_version);
}

absl::StatusOr<ConnectionRef> ParseWebhookSecretName(absl::string_view name) {
  return ParseConnectionChild(name, "webhookSecret");
}

absl::Status NeedsReveal() {
  return Error(absl::StatusCode::kPermissionDenied, "PERMISSION_DENIED",
               "webhook secrets are returned only to keys with can_reveal_credentials");
}
}  // namespace

absl::StatusOr<std::vector<std::pair<crypto::Secret, absl::Time>>>
CredentialVault::ValidWebhookSecretsInTx(Transaction& tx, absl::string_view tenant_id,
                                         absl::string_view connection_id, absl::Time now) {
  SY_ASSIGN_OR_RETURN(std::vector<storage::WebhookSecretRow> rows,
                      tx.ListWebhookSecrets(tenant_id, connection_id));
  std::vector<std::pair<crypto::Secret, absl::Time>> out;
  for (auto it = rows.rbegin(); it != rows.rend(); ++it) {
    if (it->expire_time != absl::InfinitePast() && it->expire_time <= now) continue;
    SY_ASSIGN_OR_RETURN(crypto::Secret key, KeyVersionInTx(tx, tenant_id, it->key_version));
    SY_ASSIGN_OR_RETURN(crypto::Secret secret,
                        crypto::Open(key, it->sealed, WebhookSecretAad(*it)));
    out.emplace_back(std::move(secret), it->expire_time);
  }
  return out;
}

absl::StatusOr<int64_t> CredentialVault::ReencryptWebhookSecretsInTx(Transaction& tx,
                                                                     absl::string_view tenant_id,
                                                                     const DataKey& fresh,
                                                                     absl::Time now) {
  int64_t count = 0;
  std::string after;
  while (true) {
    SY_ASSIGN_OR_RETURN(std::vector<storage::ConnectionRow> page,
                        tx.ListConnections(tenant_id, storage::ConnectionFilter{}, after, 200));
    for (const storage::ConnectionRow& connection : page) {
      SY_ASSIGN_OR_RETURN(std::vector<storage::WebhookSecretRow> rows,
                          tx.ListWebhookSecrets(tenant_id, connection.id));
      if (rows.empty()) continue;
      // Rewritten as a whole: the rows that are still valid, resealed.
      SY_RETURN_IF_ERROR(tx.DeleteWebhookSecrets(tenant_id, connection.id));
      for (storage::WebhookSecretRow& row : rows) {
        if (row.expire_time != absl::InfinitePast() && row.expire_time <= now) continue;
        SY_ASSIGN_OR_RETURN(crypto::Secret key, KeyVersionInTx(tx, tenant_id, row.key_version));
        SY_ASSIGN_OR_RETURN(crypto::Secret secret,
                            crypto::Open(key, row.sealed, WebhookSecretAad(row)));
        row.key_version = fresh.version;
        SY_ASSIGN_OR_RETURN(row.sealed,
                            crypto::Seal(fresh.key, secret.view(), WebhookSecretAad(row)));
        SY_RETURN_IF_ERROR(tx.PutWebhookSecret(row));
        ++count;
      }
    }
    if (page.size() < 200) return count;
    after = page.back().id;
  }
}

absl::StatusOr<v1::WebhookSecret> CredentialVault::RotateWebhookSecret(
    const v1::RotateWebhookSecretRequest& req, const Scope& scope, bool can_reveal) {
  if (!can_reveal) return NeedsReveal();
  SY_ASSIGN_OR_RETURN(ConnectionRef ref, ParseWebhookSecretName(req.name()));
  absl::Duration grace = absl::Hours(24);
  if (req.has_grace_period()) {
    grace = FromProto(req.grace_period());
    if (grace < absl::ZeroDuration() || grace > absl::Hours(24 * 7)) {
      return InvalidArgument("INVALID_GRACE_PERIOD", "grace_period must be between 0 and 7 days");
    }
  }
  const absl::Time now = clock_.Now();
  v1::WebhookSecret result;
  SY_RETURN_IF_ERROR(store_.Write([&](Transaction& tx) -> absl::Status {
    // The store may run this more than once (PostgreSQL, after a conflict):
    // only the secrets of the run that commits are answered.
    result.Clear();
    SY_RETURN_IF_ERROR(CheckConnection(tx, ref, scope, /*must_be_live=*/true));
    SY_ASSIGN_OR_RETURN(std::vector<storage::WebhookSecretRow> rows,
                        tx.ListWebhookSecrets(ref.tenant_id, ref.connection_id));
    int64_t version = 1;
    for (storage::WebhookSecretRow& row : rows) {
      version = std::max(version, row.version + 1);
      if (row.expire_time == absl::InfinitePast() || row.expire_time > now + grace) {
        row.expire_time = now + grace;
        SY_RETURN_IF_ERROR(tx.PutWebhookSecret(row));
      }
    }
    SY_ASSIGN_OR_RETURN(DataKey key, CurrentKeyInTx(tx, ref.tenant_id, now));
    crypto::Secret secret = webhooks::GenerateSecret();
    storage::WebhookSecretRow row{ref.tenant_id, ref.connection_id,   version, key.version, "",
                                  now,           absl::InfinitePast()};
    SY_ASSIGN_OR_RETURN(row.sealed, crypto::Seal(key.key, secret.view(), WebhookSecretAad(row)));
    SY_RETURN_IF_ERROR(tx.PutWebhookSecret(row));
    tx.AnnounceChange(kWebhookSecretTopic, absl::StrCat(ref.tenant_id, "/", ref.connection_id));
    SY_ASSIGN_OR_RETURN(auto valid,
                        ValidWebhookSecretsInTx(tx, ref.tenant_id, ref.connection_id, now));
    for (const auto& [s, expire] : valid) {
      result.add_secrets(webhooks::FormatSecret(s));
      ToProto(expire, result.add_expire_times());
    }
    return absl::OkStatus();
  }));
  WebhookSecretsChanged(absl::StrCat(ref.tenant_id, "/", ref.connection_id));
  result.set_name(ref.name);
  result.set_webhook_path(
      absl::StrCat("/webhooks/tenants/", ref.tenant_id, "/connections/", ref.connection_id));
  return result;
}

absl::StatusOr<v1::WebhookSecret> CredentialVault::GetWebhookSecret(
    const v1::GetWebhookSecretRequest& req, const Scope& scope, bool can_reveal) {
  if (!can_reveal) return NeedsReveal();
  SY_ASSIGN_OR_RETURN(ConnectionRef ref, ParseWebhookSecretName(req.name()));
  const absl::Time now = clock_.Now();
  v1::WebhookSecret result;
  SY_RETURN_IF_ERROR(store_.Read([&](Transaction& tx) -> absl::Status {
    SY_RETURN_IF_ERROR(CheckConnection(tx, ref, scope, /*must_be_live=*/false));
    SY_ASSIGN_OR_RETURN(auto valid,
                        ValidWebhookSecretsInTx(tx, ref.tenant_id, ref.connection_id, now));
    for (const auto& [s, expire] : valid) {
      result.add_secrets(webhooks::FormatSecret(s));
      ToProto(expire, result.add_expire_times());
    }
    return absl::OkStatus();
  }));
  result.set_name(ref.name);
  result.set_webhook_path(
      absl::StrCat("/webhooks/tenants/", ref.tenant_id, "/connections/", ref.connection_id));
  return result;
}

absl::Status CredentialVault::RevokeWebhookSecret(const v1::RevokeWebhookSecretRequest& req,
                                                  const Scope& scope) {
  SY_ASSIGN_OR_RETURN(ConnectionRef ref, ParseWebhookSecretName(req.name()));
  absl::Status status = store_.Write([&](Transaction& tx) -> absl::Status {
    SY_RETURN_IF_ERROR(CheckConnection(tx, ref, scope, /*must_be_live=*/false));
    tx.AnnounceChange(kWebhookSecretTopic, absl::StrCat(ref.tenant_id, "/", ref.connection_id));
    return tx.DeleteWebhookSecrets(ref.tenant_id, ref.connection_id);
  });
  WebhookSecretsChanged(absl::StrCat(ref.tenant_id, "/", ref.connection_id));
  return status;
}

absl::StatusOr<CredentialVault::WebhookKeys> CredentialVault::LoadWebhookKeys(
    absl::string_view tenant_id, absl::string_view connection_id) {
  const absl::Time now = clock_.Now();
  WebhookKeys keys;
  SY_RETURN_IF_ERROR(store_.Read([&](Transaction& tx) -> absl::Status {
    SY_ASSIGN_OR_RETURN(std::optional<storage::TenantRow> tenant, tx.GetTenant(tenant_id));
    if (!tenant.has_value() || tenant->deleted) return absl::OkStatus();
    SY_ASSIGN_OR_RETURN(std::optional<storage::ConnectionRow> connection,
                        tx.GetConnection(tenant_id, connection_id));
    if (!connection.has_value()) return absl::OkStatus();
    keys.found = true;
    keys.disconnected = connection->state == v1::Connection::DISCONNECTED;
    SY_ASSIGN_OR_RETURN(auto valid, ValidWebhookSecretsInTx(tx, tenant_id, connection_id, now));
    for (auto& [secret, expire] : valid) {
      keys.signers.push_back(std::make_shared<const crypto::HmacSha256Signer>(secret));
      keys.expire_times.push_back(expire);
    }
    return absl::OkStatus();
  }));
  return keys;
}

absl::Status CredentialVault::DestroyTenantInTx(Transaction& tx, absl::string_view tenant_id) {
  std::string after;
  while (true) {
    SY_ASSIGN_OR_RETURN(std::vector<CredentialsRow> page,
                        tx.ListCredentials(tenant_id, after, 500));
    for (const CredentialsRow& row : page) {
      SY_RETURN_IF_ERROR(tx.DeleteCredentials(tenant_id, row.connection_id));
    }
    if (page.size() < 500) break;
    after = page.back().connection_id;
  }
  return tx.DeleteDataKeys(tenant_id, std::numeric_limits<int64_t>::max());
}

}  // namespace switchyard::vault
