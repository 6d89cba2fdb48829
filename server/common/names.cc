#include "server/common/names.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstdlib>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/common/status.h"

namespace switchyard {
namespace {
constexpr absl::string_view kTokenVersion = "p1";

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// Printable form of untrusted text for error messages: bounded and quoted.
std::string Quote(absl::string_view s) {
  std::string out = absl::CHexEscape(s.substr(0, 80));
  if (s.size() > 80) out += "...";
  return absl::StrCat("\"", out, "\"");
}
}  // namespace

absl::Status ValidateId(absl::string_view field, absl::string_view id) {
  bool ok = !id.empty() && id.size() <= 63 && id.front() >= 'a' && id.front() <= 'z' &&
            IsLowerAlnum(id.back());
  for (size_t i = 0; ok && i < id.size(); ++i) ok = IsLowerAlnum(id[i]) || id[i] == '-';
  if (ok) return absl::OkStatus();
  return InvalidArgument(
      "INVALID_ID", absl::StrCat(field, " must be 1-63 characters of a-z, 0-9 and '-', start ",
                                 "with a letter and end with a letter or digit; got ", Quote(id)));
}

std::string GenerateId(absl::string_view prefix) {
  unsigned char bytes[10];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
    // The CSPRNG failing is not recoverable for a server that issues ids.
    std::abort();
  }
  return absl::StrCat(prefix, absl::BytesToHexString(absl::string_view(
                                  reinterpret_cast<const char*>(bytes), sizeof(bytes))));
}

absl::StatusOr<std::vector<std::string>> ParseName(
    absl::string_view field, absl::string_view name,
    std::initializer_list<absl::string_view> collections) {
  std::string pattern;
  for (absl::string_view c : collections) {
    if (!pattern.empty()) pattern += "/";
    absl::string_view singular = c.substr(0, c.size() - 1);
    absl::StrAppend(&pattern, c, "/{", singular, "}");
  }
  auto bad = [&] {
    return InvalidArgument("INVALID_NAME", absl::StrCat(field, " must look like ", pattern,
                                                        " with valid ids; got ", Quote(name)));
  };
  std::vector<absl::string_view> parts = absl::StrSplit(name, '/');
  if (parts.size() != 2 * collections.size()) return bad();
  std::vector<std::string> ids;
  size_t i = 0;
  for (absl::string_view c : collections) {
    if (parts[i] != c || !ValidateId(field, parts[i + 1]).ok()) return bad();
    ids.emplace_back(parts[i + 1]);
    i += 2;
  }
  return ids;
}

absl::Status ValidateRequestId(absl::string_view request_id) {
  bool ok = request_id.size() <= 128;
  for (char c : request_id) ok = ok && c > 0x20 && c < 0x7f;
  if (ok) return absl::OkStatus();
  return InvalidArgument(
      "INVALID_REQUEST_ID",
      "request_id must be at most 128 printable ASCII characters without spaces");
}

std::string Fingerprint(std::initializer_list<absl::string_view> parts) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  for (absl::string_view p : parts) {
    std::string len = absl::StrCat(p.size(), ":");
    EVP_DigestUpdate(ctx, len.data(), len.size());
    EVP_DigestUpdate(ctx, p.data(), p.size());
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_DigestFinal_ex(ctx, digest, &size);
  EVP_MD_CTX_free(ctx);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), static_cast<size_t>(size)));
}

absl::StatusOr<int> NormalizePageSize(int page_size) {
  if (page_size < 0) {
    return InvalidArgument("INVALID_PAGE_SIZE", "page_size must not be negative");
  }
  if (page_size == 0) return 50;
  return page_size > 1000 ? 1000 : page_size;
}

std::string EncodePageToken(absl::string_view scope, absl::string_view last_key) {
  return absl::WebSafeBase64Escape(
      absl::StrCat(kTokenVersion, "|", Fingerprint({scope}).substr(0, 16), "|", last_key));
}

absl::StatusOr<std::string> DecodePageToken(absl::string_view token, absl::string_view scope) {
  if (token.empty()) return std::string();
  std::string raw;
  auto bad = [] {
    return InvalidArgument("INVALID_PAGE_TOKEN",
                           "page_token is malformed or belongs to a different query; start again "
                           "without a page_token");
  };
  if (token.size() > 1024 || !absl::WebSafeBase64Unescape(token, &raw)) return bad();
  std::vector<std::string> parts = absl::StrSplit(raw, absl::MaxSplits('|', 2));
  if (parts.size() != 3 || parts[0] != kTokenVersion ||
      parts[1] != Fingerprint({scope}).substr(0, 16) || parts[2].empty()) {
    return bad();
  }
  return parts[2];
}

absl::StatusOr<std::vector<std::string>> ParseConnectionChild(absl::string_view name,
                                                              absl::string_view child) {
  const std::string suffix = absl::StrCat("/", child);
  auto bad = [&] {
    return InvalidArgument(
        "INVALID_NAME",
        absl::StrCat("name must look like tenants/{tenant}/connections/{connection}", suffix));
  };
  if (!absl::EndsWith(name, suffix)) return bad();
  auto ids =
      ParseName("name", name.substr(0, name.size() - suffix.size()), {"tenants", "connections"});
  if (!ids.ok()) return bad();
  return *std::move(ids);
}

}  // namespace switchyard
