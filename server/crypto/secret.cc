#include "server/crypto/secret.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <cstdlib>

namespace switchyard::crypto {

void Wipe(std::string& s) {
  // The whole allocation, not only the current size: an earlier, longer
  // value may linger past size().
  s.resize(s.capacity());
  if (!s.empty()) OPENSSL_cleanse(s.data(), s.size());
  s.clear();
}

Secret RandomSecret(size_t n) {
  std::string bytes(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(bytes.data()), static_cast<int>(n)) != 1) {
    std::abort();
  }
  return Secret(std::move(bytes));
}

bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace switchyard::crypto
