#ifndef SWITCHYARD_SERVER_VAULT_VAULT_H_
#define SWITCHYARD_SERVER_VAULT_VAULT_H_

// The credential vault: what the gateway needs to reach each connected
// system, encrypted per tenant with envelope encryption.
//
//   master keyring (file or environment, never stored)
//     wraps -> one AES-256 data key per tenant and version (data_keys table)
//       seals -> each connection's credentials (credentials table), bound by
//                associated data to tenant, connection and key version.
//
// A ciphertext copied to another row, connection or tenant fails to decrypt.
// Rotating the master key re-wraps the data keys only (RewrapDataKeys);
// rotating a tenant's data key re-encrypts lazily (when credentials are next
// written or revealed) or at once. Deleting a tenant destroys its data keys.
// Plaintext keys and secrets are wiped from this process's buffers after use.

#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "server/common/clock.h"
#include "server/common/scope.h"
#include "server/crypto/aead.h"
#include "server/crypto/keyring.h"
#include "server/crypto/secret.h"
#include "server/storage/store.h"
#include "switchyard/v1/gateway.pb.h"

namespace switchyard::vault {

// Thread-safe. Borrows its dependencies, which must outlive it.
// The topic of AnnounceChange for a connection's webhook secrets, with
// "tenant/connection".
inline constexpr char kWebhookSecretTopic[] = "webhook_secret";

class CredentialVault final : public storage::ChangeListener {
 public:
  CredentialVault(storage::Store& store, const crypto::MasterKeyring& keyring, Clock& clock)
      : store_(store), keyring_(keyring), clock_(clock) {}

  // The gateway's own 32-byte key `name` (for example the token-hash key),
  // created on first use. FAILED_PRECONDITION / MASTER_KEY_UNAVAILABLE or
  // DATA_LOSS / DECRYPTION_FAILED when the keyring cannot unwrap it (wrong
  // master key).
  absl::StatusOr<crypto::Secret> LoadOrCreateServerKey(absl::string_view name);

  // The vault calls. Connections outside `scope` behave as if they did not
  // exist. Set and Delete need a connection that is not disconnected
  // (FAILED_PRECONDITION / CONNECTION_DISCONNECTED).
  absl::StatusOr<v1::ConnectionCredentials> Set(const v1::SetConnectionCredentialsRequest& request,
                                                const Scope& scope);
  // `reveal_secrets` needs `can_reveal` (PERMISSION_DENIED otherwise).
  absl::StatusOr<v1::ConnectionCredentials> Get(const v1::GetConnectionCredentialsRequest& request,
                                                const Scope& scope, bool can_reveal);
  absl::Status Delete(const v1::DeleteConnectionCredentialsRequest& request, const Scope& scope);
  absl::StatusOr<v1::RotateTenantDataKeyResponse> RotateTenantKey(
      const v1::RotateTenantDataKeyRequest& request);
  absl::StatusOr<v1::RewrapDataKeysResponse> RewrapDataKeys();

  // Webhook signing secrets (see RotateWebhookSecret in gateway.proto),
  // sealed like credentials. Returning secret values needs `can_reveal`.
  absl::StatusOr<v1::WebhookSecret> RotateWebhookSecret(
      const v1::RotateWebhookSecretRequest& request, const Scope& scope, bool can_reveal);
  absl::StatusOr<v1::WebhookSecret> GetWebhookSecret(const v1::GetWebhookSecretRequest& request,
                                                     const Scope& scope, bool can_reveal);
  absl::Status RevokeWebhookSecret(const v1::RevokeWebhookSecretRequest& request,
                                   const Scope& scope);

  // What verifies a connection's webhooks now: whether it exists and is live,
  // and its valid signing secrets. For the ingest path; no scope.
  struct WebhookKeys {
    bool found = false;         // the connection exists (and its tenant)
    bool disconnected = false;  // ... but is disconnected
    // HMAC signers keyed with the valid signing secrets, newest first (the
    // secrets themselves are wiped once the signers hold them).
    std::vector<std::shared_ptr<const crypto::HmacSha256Signer>> signers;
    // When each signer's secret stops verifying (rotated out with a grace
    // period), in the same order; InfinitePast: until rotated.
    std::vector<absl::Time> expire_times;
  };
  absl::StatusOr<WebhookKeys> LoadWebhookKeys(absl::string_view tenant_id,
                                              absl::string_view connection_id);
  // Changes whenever the connection's webhook secrets are rotated or revoked
  // (through this replica, or announced by another), so that its cached keys
  // can be refreshed at once; the other connections' versions stay. Every
  // version changes when announcements may have been missed
  // (storage::kEverythingChanged). 0 for a connection whose secrets never
  // changed while this process ran.
  uint64_t WebhookSecretVersion(absl::string_view tenant_id, absl::string_view connection_id) const
      ABSL_LOCKS_EXCLUDED(versions_mu_);

  // storage::ChangeListener: webhook secrets changed through another replica.
  void ChangesAnnounced(const std::vector<storage::ChangeNotice>& changes) override;

  // Inside another module's transaction: forget one connection's
  // credentials and webhook secrets, or destroy everything a tenant holds
  // (its credentials and every version of its data key).
  absl::Status DeleteCredentialsInTx(storage::Transaction& tx, absl::string_view tenant_id,
                                     absl::string_view connection_id);
  absl::Status DestroyTenantInTx(storage::Transaction& tx, absl::string_view tenant_id);

 private:
  struct DataKey {
    int64_t version = 0;
    crypto::Secret key;
  };
  // The tenant's newest data key, created when it has none.
  absl::StatusOr<DataKey> CurrentKeyInTx(storage::Transaction& tx, absl::string_view tenant_id,
                                         absl::Time now);
  absl::StatusOr<crypto::Secret> KeyVersionInTx(storage::Transaction& tx,
                                                absl::string_view tenant_id, int64_t version);
  absl::StatusOr<crypto::Secret> Unwrap(const storage::DataKeyRow& row) const;
  // Seals `credentials` for (tenant, connection) under `key`.
  absl::StatusOr<storage::CredentialsRow> SealRow(absl::string_view tenant_id,
                                                  absl::string_view connection_id,
                                                  const v1::ConnectionCredentials& credentials,
                                                  const DataKey& key, absl::Time now) const;
  absl::StatusOr<v1::ConnectionCredentials> OpenRow(storage::Transaction& tx,
                                                    const storage::CredentialsRow& row);
  // The valid (unexpired) webhook secrets of a connection, newest first.
  absl::StatusOr<std::vector<std::pair<crypto::Secret, absl::Time>>> ValidWebhookSecretsInTx(
      storage::Transaction& tx, absl::string_view tenant_id, absl::string_view connection_id,
      absl::Time now);
  // Reseals the webhook secrets of every connection of the tenant under
  // `fresh` and drops the expired ones; returns how many were resealed.
  absl::StatusOr<int64_t> ReencryptWebhookSecretsInTx(storage::Transaction& tx,
                                                      absl::string_view tenant_id,
                                                      const DataKey& fresh, absl::Time now);

  storage::Store& store_;
  const crypto::MasterKeyring& keyring_;
  Clock& clock_;
  // A new version for the connection ("tenant/connection") whose webhook
  // secrets changed.
  void WebhookSecretsChanged(const std::string& connection_key) ABSL_LOCKS_EXCLUDED(versions_mu_);

  mutable absl::Mutex versions_mu_;
  uint64_t last_version_ ABSL_GUARDED_BY(versions_mu_) = 0;
  // The version of connections not in versions_: raised when announcements
  // may have been missed, so that every cached entry is stale.
  uint64_t floor_version_ ABSL_GUARDED_BY(versions_mu_) = 0;
  // By "tenant/connection"; only connections whose secrets changed.
  absl::flat_hash_map<std::string, uint64_t> versions_ ABSL_GUARDED_BY(versions_mu_);
};

}  // namespace switchyard::vault

#endif  // SWITCHYARD_SERVER_VAULT_VAULT_H_
