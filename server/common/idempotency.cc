#include "server/common/idempotency.h"

#include "absl/strings/str_cat.h"
#include "server/common/status.h"

namespace switchyard {

IdempotencyKey MakeIdempotencyKey(absl::string_view method, absl::string_view parent,
                                  absl::string_view request_id, std::string fingerprint) {
  if (request_id.empty()) return {};
  return {absl::StrCat(method, "|", parent, "|", request_id), std::move(fingerprint)};
}

absl::StatusOr<std::optional<std::string>> FindIdempotentResult(storage::Transaction& tx,
                                                                const IdempotencyKey& key) {
  if (key.empty()) return std::optional<std::string>();
  SY_ASSIGN_OR_RETURN(std::optional<storage::IdempotencyRow> row, tx.GetIdempotency(key.key));
  if (!row.has_value()) return std::optional<std::string>();
  if (row->fingerprint != key.fingerprint) {
    return Error(absl::StatusCode::kAborted, "REQUEST_ID_REUSED",
                 "request_id was already used for a call with different parameters; use a new "
                 "request_id for a new request");
  }
  return std::optional<std::string>(row->resource);
}

absl::Status RecordIdempotentResult(storage::Transaction& tx, const IdempotencyKey& key,
                                    absl::string_view resource, absl::Time now) {
  if (key.empty()) return absl::OkStatus();
  return tx.PutIdempotency({key.key, key.fingerprint, std::string(resource), now});
}

}  // namespace switchyard
