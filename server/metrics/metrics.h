#ifndef SWITCHYARD_SERVER_METRICS_METRICS_H_
#define SWITCHYARD_SERVER_METRICS_METRICS_H_

// The gateway's Prometheus metrics, served as text on the HTTP listener's
// /metrics. RPC metrics are recorded as calls finish; everything else is read
// from the domain modules' own counters and the store when scraped, through
// sources. Prometheus types stay inside metrics.cc.
//
// Naming follows Prometheus conventions: a switchyard_ prefix, _total for
// counters, base units (_seconds). Labels have bounded values: methods,
// status codes, reasons, states, pools and subscriptions, never events.

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace switchyard::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;

// Collects the samples of one scrape. Not thread-safe: used by one scrape.
class Writer {
 public:
  Writer();
  ~Writer();
  // Declares a family; its samples follow. Declaring one without samples
  // still exports its name and type.
  void Counter(absl::string_view name, absl::string_view help);
  void Gauge(absl::string_view name, absl::string_view help);
  // A sample of the family declared last.
  void Sample(double value, Labels labels = {});

  struct Families;
  Families& families() { return *families_; }

 private:
  std::unique_ptr<Families> families_;
};

// Thread-safe.
class Registry {
 public:
  Registry();
  ~Registry();

  // A finished RPC: full method name ("/switchyard.v1.Gateway/GetTenant"), its
  // status code name ("OK", "NOT_FOUND") and duration.
  void RecordRpc(absl::string_view method, absl::string_view code, absl::Duration duration);
  // A webhook answered with HTTP `status` `duration` after its request was
  // read (for a 200, that includes the durable commit).
  void RecordWebhook(int status, absl::Duration duration);

  // Adds a source, called at every scrape (on the scraping thread; it may
  // read the store but should be quick).
  using Source = std::function<void(Writer&)>;
  void AddSource(Source source) ABSL_LOCKS_EXCLUDED(mu_);

  // The Prometheus text exposition (version 0.0.4) of every metric.
  std::string Scrape() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Rpc;
  std::unique_ptr<Rpc> rpc_;
  absl::Mutex mu_;
  std::vector<Source> sources_ ABSL_GUARDED_BY(mu_);
};

}  // namespace switchyard::metrics

#endif  // SWITCHYARD_SERVER_METRICS_METRICS_H_
