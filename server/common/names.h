#ifndef SWITCHYARD_SERVER_COMMON_NAMES_H_
#define SWITCHYARD_SERVER_COMMON_NAMES_H_

// Resource ids, resource names and page tokens (AIP-122, AIP-158).

#include <cstddef>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace switchyard {

// OK when `id` matches ^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$; otherwise
// INVALID_ARGUMENT / INVALID_ID naming `field`.
absl::Status ValidateId(absl::string_view field, absl::string_view id);

// A fresh id: `prefix` followed by 20 random lowercase hex digits (80 bits
// from OpenSSL's CSPRNG). `prefix` must start with a letter.
std::string GenerateId(absl::string_view prefix);

// Parses `name` of the form `{collections[0]}/{id0}/{collections[1]}/{id1}...`
// and returns the ids in order. INVALID_ARGUMENT / INVALID_NAME naming `field`
// when the shape or any id is wrong.
absl::StatusOr<std::vector<std::string>> ParseName(
    absl::string_view field, absl::string_view name,
    std::initializer_list<absl::string_view> collections);

// Parses `tenants/{tenant}/connections/{connection}/{child}` (a singleton
// sub-resource such as "health") and returns {tenant, connection}.
// INVALID_ARGUMENT / INVALID_NAME otherwise.
absl::StatusOr<std::vector<std::string>> ParseConnectionChild(absl::string_view name,
                                                              absl::string_view child);

// OK when `request_id` is empty or 1..128 printable ASCII characters;
// otherwise INVALID_ARGUMENT / INVALID_REQUEST_ID.
absl::Status ValidateRequestId(absl::string_view request_id);

// Hex SHA-256 over the length-prefixed `parts`: a stable fingerprint of a
// request's parameters, used to recognise retries.
std::string Fingerprint(std::initializer_list<absl::string_view> parts);

// Most bytes of events in one list page or stream message: gRPC clients
// receive messages of at most 4 MiB by default, so pages and messages stop
// below that (one event alone may exceed it: bodies are at most 3 MiB).
inline constexpr size_t kMaxMessageEventBytes = size_t{3} << 20;

// A validated page size: 0 becomes 50, values above 1000 become 1000, negative
// values fail with INVALID_ARGUMENT / INVALID_PAGE_SIZE.
absl::StatusOr<int> NormalizePageSize(int page_size);

// Page tokens are opaque to clients. `scope` identifies the list call (parent
// and filters) so that a token is only accepted by the same query.
std::string EncodePageToken(absl::string_view scope, absl::string_view last_key);

// Returns the last key encoded in `token` ("" for an empty token), or
// INVALID_ARGUMENT / INVALID_PAGE_TOKEN when the token is malformed or was
// issued for another query.
absl::StatusOr<std::string> DecodePageToken(absl::string_view token, absl::string_view scope);

}  // namespace switchyard

#endif  // SWITCHYARD_SERVER_COMMON_NAMES_H_
