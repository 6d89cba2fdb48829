#ifndef SWITCHYARD_SERVER_CRYPTO_KEYRING_H_
#define SWITCHYARD_SERVER_CRYPTO_KEYRING_H_

// The master keyring: the keys that wrap (encrypt) every data key the gateway
// stores. It comes from a file or an environment variable (in production a
// Kubernetes Secret), never from the store.
//
// Text form: entries "ID:BASE64KEY" separated by newlines or commas; '#'
// starts a comment line. Each key is 32 random bytes. The first entry is the
// primary key that wraps new data keys; the others only unwrap, so that a key
// can be rotated without downtime: put the new key first, keep the old one
// until RewrapDataKeys has run, then remove it.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/crypto/secret.h"

namespace switchyard::crypto {

// Immutable after creation; thread-safe.
class MasterKeyring {
 public:
  // INVALID_ARGUMENT / INVALID_MASTER_KEY with a reason naming the entry (never
  // its key material) for a malformed text, a key that is not 32 bytes, a
  // duplicate id or an empty keyring.
  static absl::StatusOr<std::unique_ptr<MasterKeyring>> Parse(absl::string_view text);

  // A keyring with one fresh random key (`id`), and its text form.
  static std::pair<std::unique_ptr<MasterKeyring>, Secret> Generate(absl::string_view id);

  const std::string& primary_id() const { return keys_.front().first; }
  std::vector<std::string> ids() const;

  // Seals `plaintext` under the primary key; the caller stores primary_id()
  // beside the result.
  absl::StatusOr<std::string> Wrap(const Secret& plaintext, absl::string_view aad) const;

  // Opens what Wrap produced under key `key_id`. FAILED_PRECONDITION /
  // MASTER_KEY_UNAVAILABLE when the keyring lacks `key_id`; DATA_LOSS /
  // DECRYPTION_FAILED when the bytes do not authenticate.
  absl::StatusOr<Secret> Unwrap(absl::string_view key_id, absl::string_view sealed,
                                absl::string_view aad) const;

 private:
  MasterKeyring() = default;
  std::vector<std::pair<std::string, Secret>> keys_;
};

}  // namespace switchyard::crypto

#endif  // SWITCHYARD_SERVER_CRYPTO_KEYRING_H_
