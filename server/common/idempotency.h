#ifndef SWITCHYARD_SERVER_COMMON_IDEMPOTENCY_H_
#define SWITCHYARD_SERVER_COMMON_IDEMPOTENCY_H_

// Idempotent retries of create calls by request_id (AIP-155), inside a store
// transaction: the first call records its response; a retry with the same key
// and the same parameters gets that response again, byte for byte.

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/message.h"
#include "server/common/status.h"
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

// The serialized response recorded for `key`; std::nullopt when there is none
// (or `key` is empty); ABORTED / REQUEST_ID_REUSED when the record was made
// by a call with other parameters.
absl::StatusOr<std::optional<std::string>> FindIdempotentBytes(storage::Transaction& tx,
                                                               const IdempotencyKey& key);

// The typed form of FindIdempotentBytes. kDataLoss when the record does not
// parse as a `Response`.
template <typename Response>
absl::StatusOr<std::optional<Response>> FindIdempotentResponse(storage::Transaction& tx,
                                                               const IdempotencyKey& key) {
  SY_ASSIGN_OR_RETURN(std::optional<std::string> bytes, FindIdempotentBytes(tx, key));
  if (!bytes.has_value()) return std::optional<Response>();
  Response response;
  if (!response.ParseFromString(*bytes)) {
    return Error(absl::StatusCode::kDataLoss, "IDEMPOTENCY_RECORD_CORRUPT",
                 "the recorded response of this request_id cannot be read");
  }
  return std::optional<Response>(std::move(response));
}

// Records `response` as the answer to the call `key` (no-op for an empty key).
absl::Status RecordIdempotentResponse(storage::Transaction& tx, const IdempotencyKey& key,
                                      const google::protobuf::Message& response, absl::Time now);

}  // namespace switchyard

#endif  // SWITCHYARD_SERVER_COMMON_IDEMPOTENCY_H_
