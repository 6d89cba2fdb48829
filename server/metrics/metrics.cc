#include "server/metrics/metrics.h"

#include <prometheus/client_metric.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <map>

#include "absl/strings/str_cat.h"

namespace switchyard::metrics {

struct Writer::Families {
  std::vector<prometheus::MetricFamily> list;
};

Writer::Writer() : families_(std::make_unique<Families>()) {}
Writer::~Writer() = default;

void Writer::Counter(absl::string_view name, absl::string_view help) {
  families_->list.push_back(
      {std::string(name), std::string(help), prometheus::MetricType::Counter, {}});
}

void Writer::Gauge(absl::string_view name, absl::string_view help) {
  families_->list.push_back(
      {std::string(name), std::string(help), prometheus::MetricType::Gauge, {}});
}

void Writer::Sample(double value, Labels labels) {
  if (families_->list.empty()) return;
  prometheus::MetricFamily& family = families_->list.back();
  prometheus::ClientMetric metric;
  for (auto& [name, label_value] : labels) {
    metric.label.push_back({std::move(name), std::move(label_value)});
  }
  if (family.type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  family.metric.push_back(std::move(metric));
}

struct Registry::Rpc {
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  prometheus::Family<prometheus::Counter>& requests =
      prometheus::BuildCounter()
          .Name("switchyard_grpc_requests_total")
          .Help("gRPC calls finished, by service, method and status code")
          .Register(*registry);
  prometheus::Family<prometheus::Histogram>& durations =
      prometheus::BuildHistogram()
          .Name("switchyard_grpc_request_duration_seconds")
          .Help("gRPC call durations (for streams: the stream's lifetime), by service and method")
          .Register(*registry);
  prometheus::Family<prometheus::Histogram>& webhooks =
      prometheus::BuildHistogram()
          .Name("switchyard_webhook_duration_seconds")
          .Help(
              "time from a webhook's request read to its answer (a 200 includes the durable "
              "commit), by HTTP status code")
          .Register(*registry);
};

namespace {
const prometheus::Histogram::BucketBoundaries& DurationBuckets() {
  static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  return *buckets;
}
}  // namespace

Registry::Registry() : rpc_(std::make_unique<Rpc>()) {
  // Exported from the start (at zero), before the first webhook.
  rpc_->webhooks.Add({{"code", "200"}}, DurationBuckets());
}
Registry::~Registry() = default;

void Registry::RecordRpc(absl::string_view method, absl::string_view code,
                         absl::Duration duration) {
  // "/switchyard.v1.Gateway/GetTenant" -> service, method.
  absl::string_view service = method;
  if (!service.empty() && service.front() == '/') service.remove_prefix(1);
  const size_t slash = service.find('/');
  const std::string name(slash == absl::string_view::npos ? service : service.substr(slash + 1));
  const std::string service_name(slash == absl::string_view::npos ? "" : service.substr(0, slash));
  rpc_->requests.Add({{"service", service_name}, {"method", name}, {"code", std::string(code)}})
      .Increment();
  rpc_->durations.Add({{"service", service_name}, {"method", name}}, DurationBuckets())
      .Observe(absl::ToDoubleSeconds(duration));
}

void Registry::RecordWebhook(int status, absl::Duration duration) {
  rpc_->webhooks.Add({{"code", absl::StrCat(status)}}, DurationBuckets())
      .Observe(absl::ToDoubleSeconds(duration));
}

void Registry::AddSource(Source source) {
  absl::MutexLock lock(&mu_);
  sources_.push_back(std::move(source));
}

std::string Registry::Scrape() {
  std::vector<prometheus::MetricFamily> families = rpc_->registry->Collect();
  Writer writer;
  {
    absl::MutexLock lock(&mu_);
    for (const Source& source : sources_) source(writer);
  }
  for (auto& family : writer.families().list) families.push_back(std::move(family));
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace switchyard::metrics
