#include "server/webhooks/signature.h"

#include <openssl/evp.h>
#include <openssl/params.h>

#include <cstdlib>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/common/status.h"

namespace switchyard::webhooks {
namespace {
constexpr absl::string_view kSecretPrefix = "whsec_";

std::string HmacBase64(const crypto::Secret& secret, absl::string_view id,
                       absl::string_view timestamp, absl::string_view body) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  // HMAC over the three parts without concatenating the body into a copy.
  EVP_MAC* algorithm = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  EVP_MAC_CTX* mac_ctx = EVP_MAC_CTX_new(algorithm);
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", const_cast<char*>("SHA256"), 0),
                         OSSL_PARAM_construct_end()};
  size_t out_len = 0;
  const auto* key = reinterpret_cast<const unsigned char*>(secret.view().data());
  bool ok =
      mac_ctx != nullptr && EVP_MAC_init(mac_ctx, key, secret.size(), params) == 1 &&
      EVP_MAC_update(mac_ctx, reinterpret_cast<const unsigned char*>(id.data()), id.size()) == 1 &&
      EVP_MAC_update(mac_ctx, reinterpret_cast<const unsigned char*>("."), 1) == 1 &&
      EVP_MAC_update(mac_ctx, reinterpret_cast<const unsigned char*>(timestamp.data()),
                     timestamp.size()) == 1 &&
      EVP_MAC_update(mac_ctx, reinterpret_cast<const unsigned char*>("."), 1) == 1 &&
      EVP_MAC_update(mac_ctx, reinterpret_cast<const unsigned char*>(body.data()), body.size()) ==
          1 &&
      EVP_MAC_final(mac_ctx, mac, &out_len, sizeof(mac)) == 1;
  EVP_MAC_CTX_free(mac_ctx);
  EVP_MAC_free(algorithm);
  if (!ok) std::abort();  // HMAC-SHA256 is always available in OpenSSL 3
  return absl::Base64Escape(absl::string_view(reinterpret_cast<const char*>(mac), out_len));
}
}  // namespace

crypto::Secret GenerateSecret() { return crypto::RandomSecret(24); }

std::string FormatSecret(const crypto::Secret& secret) {
  return absl::StrCat(kSecretPrefix, absl::Base64Escape(secret.view()));
}

absl::StatusOr<crypto::Secret> ParseSecret(absl::string_view text) {
  if (absl::StartsWith(text, kSecretPrefix)) text.remove_prefix(kSecretPrefix.size());
  std::string bytes;
  if (text.empty() || !absl::Base64Unescape(text, &bytes) || bytes.empty()) {
    return InvalidArgument("INVALID_WEBHOOK_SECRET", "a webhook secret is whsec_ + base64");
  }
  return crypto::Secret(std::move(bytes));
}

std::string Sign(const crypto::Secret& secret, absl::string_view id, absl::string_view timestamp,
                 absl::string_view body) {
  return absl::StrCat("v1,", HmacBase64(secret, id, timestamp, body));
}

absl::StatusOr<absl::Time> Verify(const std::vector<crypto::Secret>& secrets,
                                  const SignedRequest& request, absl::Time now,
                                  absl::Duration tolerance) {
  std::vector<std::shared_ptr<const crypto::HmacSha256Signer>> signers;
  for (const crypto::Secret& secret : secrets) {
    signers.push_back(std::make_shared<const crypto::HmacSha256Signer>(secret));
  }
  return Verify(signers, request, now, tolerance);
}

absl::StatusOr<absl::Time> Verify(
    const std::vector<std::shared_ptr<const crypto::HmacSha256Signer>>& signers,
    const SignedRequest& request, absl::Time now, absl::Duration tolerance) {
  if (request.id.empty() || request.timestamp.empty() || request.signature.empty()) {
    return InvalidArgument("MISSING_HEADER",
                           "webhook-id, webhook-timestamp and webhook-signature are required");
  }
  if (request.id.size() > 256) {
    return InvalidArgument("INVALID_WEBHOOK_ID", "webhook-id is longer than 256 bytes");
  }
  for (char c : request.id) {
    if (c <= 0x20 || c >= 0x7f) {
      return InvalidArgument("INVALID_WEBHOOK_ID", "webhook-id must be printable ASCII");
    }
  }
  int64_t seconds = 0;
  if (request.timestamp.size() > 12 || !absl::SimpleAtoi(request.timestamp, &seconds) ||
      seconds < 0) {
    return InvalidArgument("INVALID_TIMESTAMP", "webhook-timestamp must be seconds since 1970");
  }
  const absl::Time sent = absl::FromUnixSeconds(seconds);
  if (sent < now - tolerance || sent > now + tolerance) {
    return Error(absl::StatusCode::kUnauthenticated, "TIMESTAMP_OUT_OF_TOLERANCE",
                 absl::StrCat("webhook-timestamp is more than ", absl::FormatDuration(tolerance),
                              " away from the gateway's clock"));
  }
  std::vector<absl::string_view> offered;
  for (absl::string_view entry :
       absl::StrSplit(request.signature, absl::ByAnyChar(" \t"), absl::SkipEmpty())) {
    if (entry.size() > 3 && entry.substr(0, 3) == "v1,") offered.push_back(entry.substr(3));
  }
  if (offered.empty() || offered.size() > 16) {
    return InvalidArgument("INVALID_SIGNATURE_HEADER",
                           "webhook-signature must hold 1 to 16 space-separated v1,<base64> "
                           "signatures");
  }
  bool match = false;
  for (const auto& signer : signers) {
    const std::string mac = signer->Sign({request.id, ".", request.timestamp, ".", request.body});
    const std::string expected = absl::Base64Escape(mac);
    // Every offered signature is compared, match or not, in constant time.
    for (absl::string_view candidate : offered) {
      match |= crypto::ConstantTimeEquals(expected, candidate);
    }
  }
  if (!match) {
    return Error(absl::StatusCode::kUnauthenticated, "SIGNATURE_MISMATCH",
                 "no webhook-signature matches a signing secret of this connection");
  }
  return sent;
}

}  // namespace switchyard::webhooks
