#include "server/common/idempotency.h"

#include "absl/strings/str_cat.h"

namespace switchyard {

IdempotencyKey MakeIdempotencyKey(absl::string_view method, absl::string_view parent,
                                  absl::string_view request_id, std::string fingerprint) {
  if (request_id.empty()) return {};
  return {absl::StrCat(method, "|", parent, "|", request_id), std::move(fingerprint)};
}

absl::StatusOr<std::optional<std::string>> FindIdempotentBytes(storage::Transaction& tx,
                                                               const IdempotencyKey& key) {
  if (key.empty()) return std::optional<std::string>();
  SY_ASSIGN_OR_RETURN(std::optional<storage::IdempotencyRow> row, tx.GetIdempotency(key.key));
  if (!row.has_value()) return std::optional<std::string>();
  if (row->fingerprint != key.fingerprint) {
    return Error(absl::StatusCode::kAborted, "REQUEST_ID_REUSED",
                 "request_id was already used for a call with different parameters; use a new "
                 "request_id for a new request");
  }
  return std::optional<std::string>(std::move(row->response));
}

absl::Status RecordIdempotentResponse(storage::Transaction& tx, const IdempotencyKey& key,
                                      const google::protobuf::Message& response, absl::Time now) {
  if (key.empty()) return absl::OkStatus();
  return tx.PutIdempotency({key.key, key.fingerprint, response.SerializeAsString(), now});
}

}  // namespace switchyard
