#include "server/auth/token_format.h"

#include <array>
#include <cstdint>

#include "server/common/status.h"
#include "server/crypto/secret.h"

namespace switchyard::auth {
namespace {
constexpr char kAlphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
constexpr size_t kRandomChars = 30;
constexpr size_t kChecksumChars = 6;

uint32_t Crc32(absl::string_view data) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char ch : data) crc = table[(crc ^ ch) & 0xFF] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

std::string Checksum(absl::string_view data) {
  uint32_t crc = Crc32(data);
  std::string out(kChecksumChars, '0');
  for (size_t i = kChecksumChars; i-- > 0;) {
    out[i] = kAlphabet[crc % 62];
    crc /= 62;
  }
  return out;
}

const char* Prefix(TokenKind kind) {
  switch (kind) {
    case TokenKind::kOperator:
      return "syo_";
    case TokenKind::kTenant:
      return "syt_";
    case TokenKind::kConnection:
      return "syc_";
  }
  return "syx_";
}

bool IsBase62(char c) {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}
}  // namespace

std::string MintToken(TokenKind kind) {
  std::string token = Prefix(kind);
  while (token.size() < 4 + kRandomChars) {
    crypto::Secret bytes = crypto::RandomSecret(32);
    for (unsigned char b : bytes.view()) {
      // Rejection sampling keeps the characters uniform: 248 = 4 * 62.
      if (b < 248 && token.size() < 4 + kRandomChars) token.push_back(kAlphabet[b % 62]);
    }
  }
  token += Checksum(token);
  return token;
}

absl::StatusOr<TokenKind> ParseToken(absl::string_view token) {
  auto malformed = [] {
    return Error(absl::StatusCode::kUnauthenticated, "MALFORMED_CREDENTIAL",
                 "the bearer credential is not a well-formed Switchyard key or token");
  };
  if (token.size() != kTokenLength) return malformed();
  TokenKind kind;
  const absl::string_view prefix = token.substr(0, 4);
  if (prefix == "syo_") {
    kind = TokenKind::kOperator;
  } else if (prefix == "syt_") {
    kind = TokenKind::kTenant;
  } else if (prefix == "syc_") {
    kind = TokenKind::kConnection;
  } else {
    return malformed();
  }
  for (char c : token.substr(4)) {
    if (!IsBase62(c)) return malformed();
  }
  const absl::string_view body = token.substr(0, token.size() - kChecksumChars);
  if (!crypto::ConstantTimeEquals(Checksum(body), token.substr(body.size()))) return malformed();
  return kind;
}

std::string TokenHint(absl::string_view token) {
  return std::string(token.size() >= 4 ? token.substr(token.size() - 4) : "");
}

}  // namespace switchyard::auth
