#ifndef SWITCHYARD_SERVER_COMMON_IDEMPOTENCY_H_
#define SWITCHYARD_SERVER_COMMON_IDEMPOTENCY_H_

// Idempotent retries of create calls by request_id (AIP-155), inside a store
// transaction: the first call records which resource it created; a retry with
// the same key and fingerprint finds that resource again.

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/storage/store.h"

namespace switchyard {

struct IdempotencyKey {
  std::string key;          // empty when the call carries no request_id
  std::string fingerprint;  // of the call's parameters
  bool empty() const { return key.empty(); }
};

// Builds the key of a call to `method` under `parent` with `request_id`.
IdempotencyKey MakeIdempotencyKey(absl::string_view method, absl::string_view parent,
                                  absl::string_view request_id, std::string fingerprint);

// The resource name recorded for `key`, std::nullopt when there is none (or
// `key` is empty), or ABORTED / REQUEST_ID_REUSED when the record was made by
// a call with other parameters.
absl::StatusOr<std::optional<std::string>> FindIdempotentResult(storage::Transaction& tx,
                                                                const IdempotencyKey& key);

// Records that the call `key` created `resource` (no-op for an empty key).
absl::Status RecordIdempotentResult(storage::Transaction& tx, const IdempotencyKey& key,
                                    absl::string_view resource, absl::Time now);

}  // namespace switchyard

#endif  // SWITCHYARD_SERVER_COMMON_IDEMPOTENCY_H_
