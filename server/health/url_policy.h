#ifndef SWITCHYARD_SERVER_HEALTH_URL_POLICY_H_
#define SWITCHYARD_SERVER_HEALTH_URL_POLICY_H_

// Which URLs the gateway fetches on a tenant's behalf (health checks, change
// feeds).

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

struct sockaddr;

namespace switchyard::health {

// OK for an http:// or https:// URL of printable characters (at most 2048).
// Unless `allow_private`, a host that is "localhost" or a literal loopback,
// private, link-local (cloud metadata), shared or unspecified IPv4/IPv6
// address is refused, so that tenants cannot point the gateway at its own
// network by address. (Host names resolving to such addresses are not
// caught.) INVALID_ARGUMENT / INVALID_URL or URL_NOT_ALLOWED.
absl::Status CheckOutboundUrl(absl::string_view url, bool allow_private);

// Whether `address` (AF_INET or AF_INET6) is loopback, private, link-local,
// shared or unspecified: the addresses the HTTP client refuses to connect to
// unless allowed, whatever name resolved to them.
bool IsPrivateAddress(const struct sockaddr* address);

}  // namespace switchyard::health

#endif  // SWITCHYARD_SERVER_HEALTH_URL_POLICY_H_
