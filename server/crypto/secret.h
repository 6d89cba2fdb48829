#ifndef SWITCHYARD_SERVER_CRYPTO_SECRET_H_
#define SWITCHYARD_SERVER_CRYPTO_SECRET_H_

// Secret material (keys, plaintext credentials) that is wiped when released.

#include <string>
#include <utility>

#include "absl/strings/string_view.h"

namespace switchyard::crypto {

// Overwrites `s` with zeros in a way the compiler cannot drop.
void Wipe(std::string& s);

// Owns secret bytes and wipes them on destruction and on reassignment.
// Move-only; not thread-safe.
class Secret {
 public:
  Secret() = default;
  // Takes `bytes`; a short string's inline copy left in `bytes` is wiped.
  explicit Secret(std::string bytes) : bytes_(std::move(bytes)) { Wipe(bytes); }
  ~Secret() { Wipe(bytes_); }
  Secret(Secret&& other) noexcept : bytes_(std::move(other.bytes_)) { Wipe(other.bytes_); }
  Secret& operator=(Secret&& other) noexcept {
    if (this != &other) {
      Wipe(bytes_);
      bytes_ = std::move(other.bytes_);
      Wipe(other.bytes_);
    }
    return *this;
  }
  Secret(const Secret&) = delete;
  Secret& operator=(const Secret&) = delete;

  absl::string_view view() const { return bytes_; }
  size_t size() const { return bytes_.size(); }
  bool empty() const { return bytes_.empty(); }

 private:
  std::string bytes_;
};

// `n` bytes from OpenSSL's CSPRNG. Aborts if the CSPRNG fails: a server that
// cannot make keys must not continue.
Secret RandomSecret(size_t n);

// Constant-time equality of two byte strings of any length.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b);

}  // namespace switchyard::crypto

#endif  // SWITCHYARD_SERVER_CRYPTO_SECRET_H_
