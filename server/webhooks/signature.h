#ifndef SWITCHYARD_SERVER_WEBHOOKS_SIGNATURE_H_
#define SWITCHYARD_SERVER_WEBHOOKS_SIGNATURE_H_

// Webhook signatures in the Standard Webhooks format
// (https://www.standardwebhooks.com):
//
//   webhook-id:         unique message id (the deduplication key)
//   webhook-timestamp:  seconds since the epoch
//   webhook-signature:  space-separated "v1,<base64 HMAC-SHA256>" entries
//
// The HMAC is over "<id>.<timestamp>.<body>" under the secret's bytes; the
// secret is written "whsec_<base64>". Several signatures may be sent (for
// example while the sender rotates secrets) and several secrets may be valid
// at once (while the gateway rotates); one match is enough. Comparisons are
// constant-time. Thread-safe (no shared state).

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/crypto/aead.h"
#include "server/crypto/secret.h"

namespace switchyard::webhooks {

struct SignedRequest {
  absl::string_view id;         // webhook-id
  absl::string_view timestamp;  // webhook-timestamp
  absl::string_view signature;  // webhook-signature
  absl::string_view body;
};

// A new random secret (24 bytes, as the reference libraries make).
crypto::Secret GenerateSecret();

// "whsec_" + base64 of `secret`.
std::string FormatSecret(const crypto::Secret& secret);

// The bytes of a "whsec_..." secret (the prefix is optional).
// INVALID_ARGUMENT / INVALID_WEBHOOK_SECRET when it is not base64 or empty.
absl::StatusOr<crypto::Secret> ParseSecret(absl::string_view text);

// The "v1,<base64>" signature of a message.
std::string Sign(const crypto::Secret& secret, absl::string_view id, absl::string_view timestamp,
                 absl::string_view body);

// The source timestamp of `request` once it verifies against any of
// `secrets`. Errors, with reasons:
//   INVALID_ARGUMENT  MISSING_HEADER, INVALID_WEBHOOK_ID, INVALID_TIMESTAMP,
//                     INVALID_SIGNATURE_HEADER
//   UNAUTHENTICATED   TIMESTAMP_OUT_OF_TOLERANCE (further than `tolerance`
//                     from `now` either way), SIGNATURE_MISMATCH
absl::StatusOr<absl::Time> Verify(const std::vector<crypto::Secret>& secrets,
                                  const SignedRequest& request, absl::Time now,
                                  absl::Duration tolerance);

// The same with signers prepared from the secrets (the ingest path keeps
// them, so that no key is set up per webhook).
absl::StatusOr<absl::Time> Verify(
    const std::vector<std::shared_ptr<const crypto::HmacSha256Signer>>& signers,
    const SignedRequest& request, absl::Time now, absl::Duration tolerance);

}  // namespace switchyard::webhooks

#endif  // SWITCHYARD_SERVER_WEBHOOKS_SIGNATURE_H_
