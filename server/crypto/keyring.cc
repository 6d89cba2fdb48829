#include "server/crypto/keyring.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/common/names.h"
#include "server/common/status.h"
#include "server/crypto/aead.h"

namespace switchyard::crypto {
namespace {
absl::Status Invalid(absl::string_view why) {
  return InvalidArgument("INVALID_MASTER_KEY", absl::StrCat("master keyring: ", why));
}
}  // namespace

absl::StatusOr<std::unique_ptr<MasterKeyring>> MasterKeyring::Parse(absl::string_view text) {
  auto ring = std::unique_ptr<MasterKeyring>(new MasterKeyring());
  // Lines first: a comment line is dropped whole, commas and all (a key in a
  // commented-out line must not come back); the others may hold several
  // comma-separated entries.
  std::vector<absl::string_view> entries;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line.front() == '#') continue;
    for (absl::string_view entry : absl::StrSplit(line, ',')) entries.push_back(entry);
  }
  int number = 0;
  for (absl::string_view entry : entries) {
    ++number;
    entry = absl::StripAsciiWhitespace(entry);
    if (entry.empty()) continue;
    std::pair<absl::string_view, absl::string_view> parts =
        absl::StrSplit(entry, absl::MaxSplits(':', 1));
    if (parts.second.empty() || !ValidateId("key id", parts.first).ok()) {
      return Invalid(
          absl::StrCat("entry ", number, " must be ID:BASE64KEY with a lowercase id such as k1"));
    }
    std::string key;
    if (!absl::Base64Unescape(parts.second, &key) || key.size() != kAes256KeySize) {
      Wipe(key);
      return Invalid(absl::StrCat("key ", parts.first, " is not 32 bytes of base64"));
    }
    for (const auto& [id, unused] : ring->keys_) {
      if (id == parts.first) {
        Wipe(key);
        return Invalid(absl::StrCat("duplicate key id ", id));
      }
    }
    ring->keys_.emplace_back(std::string(parts.first), Secret(std::move(key)));
  }
  if (ring->keys_.empty()) return Invalid("no keys");
  return ring;
}

std::pair<std::unique_ptr<MasterKeyring>, Secret> MasterKeyring::Generate(absl::string_view id) {
  Secret key = RandomSecret(kAes256KeySize);
  std::string text = absl::StrCat(id, ":", absl::Base64Escape(key.view()), "\n");
  auto ring = std::unique_ptr<MasterKeyring>(new MasterKeyring());
  ring->keys_.emplace_back(std::string(id), std::move(key));
  return {std::move(ring), Secret(std::move(text))};
}

std::vector<std::string> MasterKeyring::ids() const {
  std::vector<std::string> out;
  for (const auto& [id, unused] : keys_) out.push_back(id);
  return out;
}

absl::StatusOr<std::string> MasterKeyring::Wrap(const Secret& plaintext,
                                                absl::string_view aad) const {
  return Seal(keys_.front().second, plaintext.view(), absl::StrCat(aad, "|", primary_id()));
}

absl::StatusOr<Secret> MasterKeyring::Unwrap(absl::string_view key_id, absl::string_view sealed,
                                             absl::string_view aad) const {
  for (const auto& [id, key] : keys_) {
    if (id == key_id) return Open(key, sealed, absl::StrCat(aad, "|", key_id));
  }
  return FailedPrecondition(
      "MASTER_KEY_UNAVAILABLE",
      absl::StrCat("data key is wrapped by master key ", key_id,
                   ", which is not in the keyring; add it back until RewrapDataKeys has run"));
}

}  // namespace switchyard::crypto
