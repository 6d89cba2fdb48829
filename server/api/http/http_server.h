#ifndef SWITCHYARD_SERVER_API_HTTP_HTTP_SERVER_H_
#define SWITCHYARD_SERVER_API_HTTP_HTTP_SERVER_H_

// A small HTTP/1.1 server on Boost.Asio with Beast's strict parser: keep-alive,
// header and body limits, and a deadline on every request. Each I/O thread
// runs its own event loop and keeps the connections it accepted, so a
// connection's handlers never run concurrently; deadlines are checked by a
// periodic sweep of each loop's connections (a quarter of the request
// timeout, at most a second). Handlers answer asynchronously, from any
// thread, and never block the I/O threads.

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace switchyard::api {

struct HttpRequest {
  std::string method;  // "POST"
  std::string target;  // path and query
  // Header values by lowercase name. Repeated webhook-* header lines are
  // joined with a space, so that webhook-signature keeps every entry and a
  // repeated webhook-id or webhook-timestamp is malformed rather than
  // silently the last; of other repeated headers, the last one.
  absl::flat_hash_map<std::string, std::string> headers;
  std::string body;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

// The JSON body of every error answer: {"error":{"reason":...,"message":...}}.
std::string HttpErrorBody(absl::string_view reason, absl::string_view message);

// Answers requests. Implementations are thread-safe.
class HttpHandler {
 public:
  using Respond = std::function<void(HttpResponse)>;
  virtual ~HttpHandler() = default;
  // Answers `request` by calling `respond` exactly once, from any thread,
  // before the server is destroyed (after Shutdown the answer is dropped).
  // `respond` may be copied; copies left over are dropped before the server
  // is destroyed too.
  // Runs on an I/O thread: it must not wait for anything slow.
  virtual void Handle(HttpRequest request, Respond respond) = 0;
  // Told about a request the server answered itself, without Handle:
  // malformed, too large, too slow, an unmet expectation, or while shutting
  // down. `target` is the request target when its header was read, else
  // empty; `reason` names the refusal (BODY_TOO_LARGE, ...). For counting:
  // runs on an I/O thread and must be quick.
  virtual void Refused(absl::string_view target, int status, absl::string_view reason) {}
};

struct HttpServerOptions {
  // host:port; port 0 picks a free port. Default "0.0.0.0:8080".
  std::string listen_address = "0.0.0.0:8080";
  // Threads doing socket I/O, each with its own event loop; connections are
  // dealt to them in turn. Default 2.
  int io_threads = 2;
  // Larger bodies are answered 413 without being read. Default 1 MiB.
  size_t max_body_bytes = 1 << 20;
  // Larger header sections are answered 431. Default 16 KiB.
  size_t max_header_bytes = 16 * 1024;
  // Time allowed to receive one request, or to wait for the next one on a
  // kept-alive connection; a request still incomplete then is answered 408.
  // Default 30s.
  absl::Duration request_timeout = absl::Seconds(30);
};

// Thread-safe.
class HttpServer {
 public:
  // Binds and starts serving. kUnavailable when the address cannot be bound;
  // kInvalidArgument for a malformed address, a request timeout outside
  // (0, 1h] or io_threads outside [1, 64]. `handler` must outlive the server.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const HttpServerOptions& options,
                                                           HttpHandler& handler);
  ~HttpServer();

  int port() const;

  // Stops accepting (new requests on open connections are answered 503),
  // waits (up to `wait`) until the answers of requests being handled are
  // written, closes every connection. An answer that comes later is dropped.
  // Idempotent; a concurrent caller returns once the first is done.
  void Shutdown(absl::Duration wait = absl::Seconds(10));

  // The implementation's state (sockets, threads); opaque outside the .cc.
  struct Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace switchyard::api

#endif  // SWITCHYARD_SERVER_API_HTTP_HTTP_SERVER_H_
