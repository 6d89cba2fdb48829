#ifndef SWITCHYARD_SERVER_HEALTH_PROBER_H_
#define SWITCHYARD_SERVER_HEALTH_PROBER_H_

// Outbound HTTP (health probes, change feeds), behind an interface so that
// tests can substitute it.

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace switchyard::health {

struct ProbeResult {
  int status = 0;  // HTTP status; 0 when no answer arrived
  absl::Duration latency;
  std::string error;  // why no answer arrived ("timed out", "connection refused")
  std::string body;   // up to the max_body asked for
};

class HttpProber {
 public:
  virtual ~HttpProber() = default;
  // Starts a GET of `url`, giving up after `timeout`, and calls `done`
  // exactly once with the outcome, on any thread (possibly before Get
  // returns). Keeps up to `max_body` bytes of the body (0: discards it); a
  // longer body fails the request ("body too large"). Must not block on the network.
  virtual void Get(const std::string& url, absl::Duration timeout, size_t max_body,
                   std::function<void(ProbeResult)> done) = 0;
};

// libcurl's multi interface on one thread: any number of requests in flight,
// none waiting for another. Redirects are not followed. Unless
// `allow_private`, connections to private addresses (IsPrivateAddress) are
// refused whatever name resolved to them ("address not allowed").
// kInternal when libcurl cannot be initialised.
absl::StatusOr<std::unique_ptr<HttpProber>> NewCurlProber(bool allow_private);

}  // namespace switchyard::health

#endif  // SWITCHYARD_SERVER_HEALTH_PROBER_H_
