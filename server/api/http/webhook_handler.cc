#include "server/api/http/webhook_handler.h"

#include <google/protobuf/util/json_util.h>

#include <memory>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/common/log.h"
#include "server/common/names.h"
#include "server/common/status.h"

namespace switchyard::api {
namespace {

constexpr absl::string_view kWebhookPrefix = "/webhooks/";

HttpResponse ErrorResponse(int status, absl::string_view reason, absl::string_view message) {
  HttpResponse response;
  response.status = status;
  response.body = HttpErrorBody(reason, message);
  return response;
}

std::string Header(const HttpRequest& request, const std::string& name) {
  auto it = request.headers.find(name);
  return it == request.headers.end() ? std::string() : it->second;
}

}  // namespace

int HttpStatusFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
      return ReasonOf(status) == "UNSUPPORTED_CONTENT_TYPE" ? 415 : 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kFailedPrecondition:
      return 410;
    case absl::StatusCode::kOutOfRange:
      return 413;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kAborted:  // the store kept losing conflicts: retry
      return 503;
    default:
      return 500;
  }
}

HttpResponse GatewayHttpHandler::Page(const std::string& path) {
  if (path == "/metrics") {
    HttpResponse response;
    response.content_type = "text/plain; version=0.0.4; charset=utf-8";
    response.body = metrics_->Scrape();
    return response;
  }
  absl::StatusOr<v1::StatusReport> report = status_->Report();
  if (!report.ok()) {
    // The page is public: the details go to the log only.
    log::Warning("status page not built", {{"error", report.status().ToString()}});
    return ErrorResponse(503, "STATUS_UNAVAILABLE", "the status is unavailable; try again");
  }
  HttpResponse response;
  response.headers.emplace_back("Cache-Control", "no-cache");
  if (path == "/status.json") {
    google::protobuf::util::JsonPrintOptions options;
    options.preserve_proto_field_names = true;
    (void)google::protobuf::util::MessageToJsonString(*report, &response.body, options);
  } else {
    response.content_type = "text/html; charset=utf-8";
    response.headers.emplace_back("Content-Security-Policy",
                                  "default-src 'none'; style-src 'unsafe-inline'");
    response.body = status_->Html(*report);
  }
  return response;
}

void GatewayHttpHandler::Refused(absl::string_view target, int status, absl::string_view reason) {
  if (target.empty() || absl::StartsWith(target, kWebhookPrefix)) ingestor_.CountRefused(reason);
}

void GatewayHttpHandler::Handle(HttpRequest request, Respond respond) {
  const std::string path = request.target.substr(0, request.target.find('?'));
  if ((path == "/metrics" && metrics_ != nullptr) ||
      ((path == "/status" || path == "/status.json") && status_ != nullptr)) {
    if (request.method != "GET" && request.method != "HEAD") {
      HttpResponse response = ErrorResponse(405, "METHOD_NOT_ALLOWED", "use GET");
      response.headers.emplace_back("Allow", "GET, HEAD");
      return respond(std::move(response));
    }
    // Shared, so that it outlives a task the worker refuses.
    auto shared = std::make_shared<Respond>(std::move(respond));
    if (!pages_.Post([this, path, shared] { (*shared)(Page(path)); })) {
      HttpResponse response =
          ErrorResponse(503, "BUSY", "too many metrics and status requests are waiting");
      response.headers.emplace_back("Retry-After", "1");
      (*shared)(std::move(response));
    }
    return;
  }
  if (!absl::StartsWith(path, kWebhookPrefix)) {
    return respond(ErrorResponse(404, "NOT_FOUND", "no such path"));
  }
  auto ids = ParseName("path", absl::string_view(path).substr(kWebhookPrefix.size()),
                       {"tenants", "connections"});
  if (!ids.ok()) {
    ingestor_.CountRefused("NOT_FOUND");
    return respond(ErrorResponse(404, "NOT_FOUND", "no such webhook URL"));
  }
  if (request.method != "POST") {
    ingestor_.CountRefused("METHOD_NOT_ALLOWED");
    HttpResponse response =
        ErrorResponse(405, "METHOD_NOT_ALLOWED", "webhooks are delivered with POST");
    response.headers.emplace_back("Allow", "POST");
    return respond(std::move(response));
  }
  webhooks::Webhook webhook;
  webhook.tenant_id = (*ids)[0];
  webhook.connection_id = (*ids)[1];
  webhook.id = Header(request, "webhook-id");
  webhook.timestamp = Header(request, "webhook-timestamp");
  webhook.signature = Header(request, "webhook-signature");
  webhook.content_type = Header(request, "content-type");
  webhook.body = std::move(request.body);
  std::string tenant = webhook.tenant_id, connection = webhook.connection_id;
  const absl::Duration start = clock_.Steady();
  ingestor_.IngestAsync(
      std::move(webhook),
      [this, start, respond = std::move(respond), tenant = std::move(tenant),
       connection = std::move(connection)](absl::StatusOr<webhooks::IngestResult> result) {
        const int code = result.ok() ? 200 : HttpStatusFor(result.status());
        if (metrics_ != nullptr) metrics_->RecordWebhook(code, clock_.Steady() - start);
        if (!result.ok()) {
          const std::string reason = ReasonOf(result.status());
          // Overload and shutdown are counted (rejected, by reason), not
          // logged once per webhook.
          if (code >= 500 && reason != "BUSY" && reason != "SHUTTING_DOWN") {
            log::Error("webhook not stored", {{"tenant", tenant},
                                              {"connection", connection},
                                              {"error", result.status().ToString()}});
          }
          HttpResponse response = ErrorResponse(code, reason, result.status().message());
          ForEachMetadata(result.status(), [&](absl::string_view key, absl::string_view value) {
            if (key == "retry_after_seconds") {
              response.headers.emplace_back("Retry-After", std::string(value));
            }
          });
          return respond(std::move(response));
        }
        HttpResponse response;
        response.body = absl::StrCat("{\"sequence\":", result->sequence,
                                     ",\"duplicate\":", result->duplicate ? "true" : "false", "}");
        respond(std::move(response));
      });
}

}  // namespace switchyard::api
