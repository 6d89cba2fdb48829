#ifndef SWITCHYARD_SERVER_AUTH_TOKEN_FORMAT_H_
#define SWITCHYARD_SERVER_AUTH_TOKEN_FORMAT_H_

// The format of API credentials, in the manner of GitHub's tokens:
//
//   PREFIX _ 30 base62 random characters (178 bits from OpenSSL's CSPRNG)
//            6 base62 characters of the CRC-32 of everything before them
//
// PREFIX is "syo" for operator keys, "syt" for tenant keys and "syc" for
// connection tokens, for example syc_4Fq...Zk9Q1x0b. The prefix makes leaked
// tokens recognisable to secret scanners; the checksum rejects mistyped or
// truncated tokens before any lookup.

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace switchyard::auth {

enum class TokenKind { kOperator = 1, kTenant = 2, kConnection = 3 };

inline constexpr size_t kTokenLength = 4 + 30 + 6;

// A new token of `kind`.
std::string MintToken(TokenKind kind);

// The kind of a well-formed `token`, or UNAUTHENTICATED / MALFORMED_CREDENTIAL
// when its prefix, length, alphabet or checksum is wrong. The error never
// repeats the token.
absl::StatusOr<TokenKind> ParseToken(absl::string_view token);

// The last four characters, the only part of a token ever shown.
std::string TokenHint(absl::string_view token);

}  // namespace switchyard::auth

#endif  // SWITCHYARD_SERVER_AUTH_TOKEN_FORMAT_H_
