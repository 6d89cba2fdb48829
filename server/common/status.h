#ifndef SWITCHYARD_SERVER_COMMON_STATUS_H_
#define SWITCHYARD_SERVER_COMMON_STATUS_H_

// Error construction and propagation for domain code.
//
// Every error the gateway returns carries a machine-readable reason (a stable
// UPPER_SNAKE_CASE string such as "CREDITS_EXHAUSTED") as a payload of the
// absl::Status; the transport edge turns it into a google.rpc.ErrorInfo.

#include <functional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace switchyard {

// Returns a non-OK status with `code`, `message` and `reason` attached.
// `code` must not be kOk.
absl::Status Error(absl::StatusCode code, absl::string_view reason, absl::string_view message);

// Shorthands for the common codes.
absl::Status InvalidArgument(absl::string_view reason, absl::string_view message);
absl::Status NotFound(absl::string_view reason, absl::string_view message);
absl::Status FailedPrecondition(absl::string_view reason, absl::string_view message);

// Returns `status` with `key`=`value` added to the metadata of its ErrorInfo.
absl::Status WithMetadata(absl::Status status, absl::string_view key, absl::string_view value);

// Calls `fn(key, value)` for each metadata entry added by WithMetadata.
void ForEachMetadata(const absl::Status& status,
                     const std::function<void(absl::string_view, absl::string_view)>& fn);

// Returns the reason attached by Error(), or the canonical code name (for
// example "NOT_FOUND") when the status carries none. Empty for OK.
std::string ReasonOf(const absl::Status& status);

}  // namespace switchyard

#define SY_STATUS_CONCAT_INNER_(a, b) a##b
#define SY_STATUS_CONCAT_(a, b) SY_STATUS_CONCAT_INNER_(a, b)

// Returns from the enclosing function when `expr` yields a non-OK status.
#define SY_RETURN_IF_ERROR(expr)             \
  do {                                       \
    ::absl::Status sy_status_ = (expr);      \
    if (!sy_status_.ok()) return sy_status_; \
  } while (false)

// `lhs` = value of the StatusOr `rexpr`, or returns its error.
#define SY_ASSIGN_OR_RETURN(lhs, rexpr) \
  SY_ASSIGN_OR_RETURN_IMPL_(SY_STATUS_CONCAT_(sy_statusor_, __LINE__), lhs, rexpr)
#define SY_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, rexpr) \
  auto tmp = (rexpr);                              \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(tmp).value()

#endif  // SWITCHYARD_SERVER_COMMON_STATUS_H_
