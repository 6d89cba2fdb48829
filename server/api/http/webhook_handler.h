#ifndef SWITCHYARD_SERVER_API_HTTP_WEBHOOK_HANDLER_H_
#define SWITCHYARD_SERVER_API_HTTP_WEBHOOK_HANDLER_H_

// The HTTP routes of the gateway:
//   POST /webhooks/tenants/{tenant}/connections/{connection}   webhook ingest
//   GET  /metrics                                              Prometheus metrics
//   GET  /status, /status.json                                 the status page
// A thin adapter: translate the request, call Ingestor::IngestAsync (or
// scrape the registry), translate the answer (see HttpStatusFor for the
// codes). The metrics and the status page read the store, so they are made
// on a thread of their own, never on the listener's event loops; with more
// than 16 such requests waiting, the next is answered 503 (BUSY).

#include "server/api/http/http_server.h"
#include "server/common/clock.h"
#include "server/common/worker_thread.h"
#include "server/metrics/metrics.h"
#include "server/status/status_page.h"
#include "server/webhooks/ingestor.h"

namespace switchyard::api {

// Thread-safe. Borrows `ingestor`, `metrics` and `status` (nullptr: route
// absent) and `clock` (for the webhook durations in the metrics), which must
// outlive it.
class GatewayHttpHandler final : public HttpHandler {
 public:
  GatewayHttpHandler(webhooks::Ingestor& ingestor, metrics::Registry* metrics,
                     status::StatusPage* status, Clock& clock)
      : ingestor_(ingestor), metrics_(metrics), status_(status), clock_(clock), pages_(16) {}
  void Handle(HttpRequest request, Respond respond) override;
  // Counts the refusals of webhook requests (and of requests whose target
  // was never read) with the ingestor's outcomes.
  void Refused(absl::string_view target, int status, absl::string_view reason) override;

  // Answers the metrics and status requests already taken, then takes no
  // more. Call after HttpServer::Shutdown and before the server is
  // destroyed. Idempotent.
  void Shutdown() { pages_.Stop(); }

 private:
  // The answer to GET /metrics or /status(.json) at `path`.
  HttpResponse Page(const std::string& path);

  webhooks::Ingestor& ingestor_;
  metrics::Registry* const metrics_;
  status::StatusPage* const status_;
  Clock& clock_;
  WorkerThread pages_;  // makes the metrics and status pages
};

// The HTTP status of an ingest error: 400 malformed, 401 signature or
// timestamp, 404 unknown connection, 410 disconnected, 413 too large, 415 not
// JSON, 429 rate limited, 503 store unavailable, 500 otherwise.
int HttpStatusFor(const absl::Status& status);

}  // namespace switchyard::api

#endif  // SWITCHYARD_SERVER_API_HTTP_WEBHOOK_HANDLER_H_
