#include "server/crypto/aead.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>

#include <cstdlib>
#include <memory>

#include "server/common/status.h"

namespace switchyard::crypto {
namespace {
constexpr unsigned char kFormatVersion = 0x01;
constexpr size_t kNonceSize = 12;
constexpr size_t kTagSize = 16;

struct CtxFree {
  void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};
using CtxPtr = std::unique_ptr<EVP_CIPHER_CTX, CtxFree>;

const unsigned char* U(absl::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

absl::Status DecryptionFailed() {
  return Error(absl::StatusCode::kDataLoss, "DECRYPTION_FAILED",
               "ciphertext failed authentication: it was altered, truncated, moved to another "
               "record or sealed under another key");
}
}  // namespace

absl::StatusOr<std::string> Seal(const Secret& key, absl::string_view plaintext,
                                 absl::string_view aad) {
  if (key.size() != kAes256KeySize) {
    return InvalidArgument("INVALID_KEY", "AES-256-GCM needs a 32-byte key");
  }
  Secret nonce = RandomSecret(kNonceSize);
  std::string out;
  out.resize(1 + kNonceSize + plaintext.size() + kTagSize);
  out[0] = static_cast<char>(kFormatVersion);
  std::copy(nonce.view().begin(), nonce.view().end(), out.begin() + 1);
  auto* cipher_out = reinterpret_cast<unsigned char*>(out.data() + 1 + kNonceSize);
  CtxPtr ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  bool ok =
      ctx != nullptr &&
      EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, U(key.view()), U(nonce.view())) ==
          1 &&
      EVP_EncryptUpdate(ctx.get(), nullptr, &len, U(aad), static_cast<int>(aad.size())) == 1 &&
      EVP_EncryptUpdate(ctx.get(), cipher_out, &len, U(plaintext),
                        static_cast<int>(plaintext.size())) == 1 &&
      EVP_EncryptFinal_ex(ctx.get(), cipher_out + len, &len) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagSize,
                          cipher_out + plaintext.size()) == 1;
  if (!ok) return Error(absl::StatusCode::kInternal, "CRYPTO_ERROR", "AES-GCM encryption failed");
  return out;
}

absl::StatusOr<Secret> Open(const Secret& key, absl::string_view sealed, absl::string_view aad) {
  if (key.size() != kAes256KeySize) {
    return InvalidArgument("INVALID_KEY", "AES-256-GCM needs a 32-byte key");
  }
  if (sealed.size() < 1 + kNonceSize + kTagSize ||
      static_cast<unsigned char>(sealed[0]) != kFormatVersion) {
    return DecryptionFailed();
  }
  const absl::string_view nonce = sealed.substr(1, kNonceSize);
  const absl::string_view body =
      sealed.substr(1 + kNonceSize, sealed.size() - 1 - kNonceSize - kTagSize);
  std::string tag(sealed.substr(sealed.size() - kTagSize));
  std::string plain(body.size(), '\0');
  CtxPtr ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  bool ok =
      ctx != nullptr &&
      EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, U(key.view()), U(nonce)) == 1 &&
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, U(aad), static_cast<int>(aad.size())) == 1 &&
      EVP_DecryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(plain.data()), &len, U(body),
                        static_cast<int>(body.size())) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagSize, tag.data()) == 1 &&
      EVP_DecryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(plain.data()) + len, &len) ==
          1;
  if (!ok) {
    Wipe(plain);
    return DecryptionFailed();
  }
  return Secret(std::move(plain));
}

HmacSha256Signer::HmacSha256Signer(const Secret& key) {
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  keyed_ = mac != nullptr ? EVP_MAC_CTX_new(mac) : nullptr;
  EVP_MAC_free(mac);  // the context keeps its own reference
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", const_cast<char*>("SHA256"), 0),
                         OSSL_PARAM_construct_end()};
  if (keyed_ == nullptr || EVP_MAC_init(keyed_, U(key.view()), key.size(), params) != 1) {
    // No HMAC means no authentication at all: stop loudly.
    std::abort();
  }
}

HmacSha256Signer::~HmacSha256Signer() { EVP_MAC_CTX_free(keyed_); }

std::string HmacSha256Signer::Sign(absl::string_view data) const { return Sign({data}); }

std::string HmacSha256Signer::Sign(std::initializer_list<absl::string_view> parts) const {
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_dup(keyed_);
  unsigned char out[EVP_MAX_MD_SIZE];
  size_t len = 0;
  bool ok = ctx != nullptr;
  for (absl::string_view part : parts) {
    ok = ok && EVP_MAC_update(ctx, U(part), part.size()) == 1;
  }
  if (!ok || EVP_MAC_final(ctx, out, &len, sizeof(out)) != 1) {
    std::abort();
  }
  EVP_MAC_CTX_free(ctx);
  return std::string(reinterpret_cast<const char*>(out), len);
}

}  // namespace switchyard::crypto
