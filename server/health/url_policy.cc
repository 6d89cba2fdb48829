#include "server/health/url_policy.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "server/common/status.h"

namespace switchyard::health {
namespace {

bool PrivateV4(const unsigned char a[4]) {
  return a[0] == 0 || a[0] == 10 || a[0] == 127 || (a[0] == 169 && a[1] == 254) ||
         (a[0] == 172 && (a[1] & 0xf0) == 16) || (a[0] == 192 && a[1] == 168) ||
         (a[0] == 100 && (a[1] & 0xc0) == 64) ||
         (a[0] == 192 && a[1] == 0 && a[2] == 0) ||  // 192.0.0.0/24 protocol assignments
         (a[0] == 198 && (a[1] & 0xfe) == 18) ||     // 198.18.0.0/15 benchmarking
         a[0] >= 224;                                // multicast, reserved, broadcast
}

bool PrivateV6(const unsigned char a[16]) {
  static const unsigned char kZero[16] = {};
  unsigned char loopback[16] = {};
  loopback[15] = 1;
  if (std::memcmp(a, kZero, 16) == 0 || std::memcmp(a, loopback, 16) == 0) return true;
  if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) return true;  // fe80::/10 link-local
  if (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0) return true;  // fec0::/10 site-local
  if ((a[0] & 0xfe) == 0xfc) return true;                  // fc00::/7 unique local
  if (a[0] == 0xff) return true;                           // ff00::/8 multicast
  static const unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(a, kMapped, 12) == 0) return PrivateV4(a + 12);
  // 64:ff9b::/96 (NAT64) reaches the IPv4 address in its last four bytes.
  static const unsigned char kNat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
  if (std::memcmp(a, kNat64, 12) == 0) return PrivateV4(a + 12);
  return false;
}

}  // namespace

bool IsPrivateAddress(const struct sockaddr* address) {
  if (address->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(address);
    return PrivateV4(reinterpret_cast<const unsigned char*>(&in->sin_addr));
  }
  if (address->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(address);
    return PrivateV6(reinterpret_cast<const unsigned char*>(&in6->sin6_addr));
  }
  return true;  // other families are never fetched
}

absl::Status CheckOutboundUrl(absl::string_view url, bool allow_private) {
  bool printable = !url.empty() && url.size() <= 2048;
  for (char c : url) printable = printable && c > 0x20 && c < 0x7f;
  absl::string_view rest;
  if (absl::StartsWith(url, "http://")) {
    rest = url.substr(strlen("http://"));
  } else if (absl::StartsWith(url, "https://")) {
    rest = url.substr(strlen("https://"));
  }
  if (!printable || rest.empty()) {
    return InvalidArgument("INVALID_URL", "url must be an http:// or https:// URL");
  }
  if (absl::StrContains(url, '#')) {
    // Never sent by clients, and it would hide a query added after it.
    return InvalidArgument("INVALID_URL", "url must not have a #fragment");
  }
  absl::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
  if (const size_t at = authority.rfind('@'); at != absl::string_view::npos) {
    authority.remove_prefix(at + 1);
  }
  std::string host;
  if (!authority.empty() && authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == absl::string_view::npos) {
      return InvalidArgument("INVALID_URL", "url has a malformed IPv6 host");
    }
    host = std::string(authority.substr(1, close - 1));
  } else {
    host = std::string(authority.substr(0, authority.find(':')));
  }
  if (host.empty()) return InvalidArgument("INVALID_URL", "url has no host");
  if (allow_private) return absl::OkStatus();
  host = absl::AsciiStrToLower(host);
  unsigned char v4[4], v6[16];
  const bool refused = host == "localhost" || absl::EndsWith(host, ".localhost") ||
                       (inet_pton(AF_INET, host.c_str(), v4) == 1 && PrivateV4(v4)) ||
                       (inet_pton(AF_INET6, host.c_str(), v6) == 1 && PrivateV6(v6));
  if (refused) {
    return InvalidArgument("URL_NOT_ALLOWED",
                           "the gateway does not fetch loopback, private or link-local addresses");
  }
  return absl::OkStatus();
}

}  // namespace switchyard::health
