#ifndef SWITCHYARD_SERVER_CRYPTO_AEAD_H_
#define SWITCHYARD_SERVER_CRYPTO_AEAD_H_

// AES-256-GCM with OpenSSL 3: authenticated encryption bound to associated
// data. Sealed form: version byte 0x01 | 12-byte random nonce | ciphertext |
// 16-byte tag. Thread-safe (no shared state).

#include <initializer_list>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/crypto/secret.h"

struct evp_mac_ctx_st;  // OpenSSL's EVP_MAC_CTX

namespace switchyard::crypto {

inline constexpr size_t kAes256KeySize = 32;

// Encrypts `plaintext` under `key` (32 bytes) bound to `aad`.
// INVALID_ARGUMENT for a key of the wrong size; INTERNAL if OpenSSL fails.
absl::StatusOr<std::string> Seal(const Secret& key, absl::string_view plaintext,
                                 absl::string_view aad);

// Decrypts what Seal produced. DATA_LOSS / DECRYPTION_FAILED when the sealed
// bytes are truncated, altered, sealed under another key or bound to other
// associated data; nothing of the plaintext is returned then.
absl::StatusOr<Secret> Open(const Secret& key, absl::string_view sealed, absl::string_view aad);

// HMAC-SHA256 under one fixed key, prepared once: each Sign copies a keyed
// context instead of fetching the algorithm and setting the key again, which
// matters on a path every call takes. Thread-safe.
class HmacSha256Signer {
 public:
  // `key` is copied into OpenSSL's context and wiped from `key` by the caller.
  explicit HmacSha256Signer(const Secret& key);
  ~HmacSha256Signer();
  HmacSha256Signer(const HmacSha256Signer&) = delete;
  HmacSha256Signer& operator=(const HmacSha256Signer&) = delete;

  std::string Sign(absl::string_view data) const;
  // The MAC of the concatenation of `parts`, without concatenating them.
  std::string Sign(std::initializer_list<absl::string_view> parts) const;

 private:
  ::evp_mac_ctx_st* keyed_;  // owned
};

}  // namespace switchyard::crypto

#endif  // SWITCHYARD_SERVER_CRYPTO_AEAD_H_
