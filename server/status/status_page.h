#ifndef SWITCHYARD_SERVER_STATUS_STATUS_PAGE_H_
#define SWITCHYARD_SERVER_STATUS_STATUS_PAGE_H_

// The status page: overall state, the gateway's components, connected
// systems by health (counts only), open incidents and incident history, as
// /status.json and as a self-contained HTML page (no external assets) that
// refreshes itself. Unauthenticated by design, so it shows no tenant data:
// incidents of a tenant's connection are shown by system unless configured.

#include <functional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/catalog/catalog.h"
#include "server/common/clock.h"
#include "server/storage/store.h"
#include "switchyard/v1/gateway.pb.h"

namespace switchyard::status {

struct StatusPageOptions {
  // Show tenant and connection names in incidents. Default off.
  bool show_tenants = false;
  // How long a report is reused. Default 5s.
  absl::Duration cache_for = absl::Seconds(5);
  // Page title. Default "Switchyard status".
  std::string title = "Switchyard status";
};

// Thread-safe. Borrows its dependencies, which must outlive it.
class StatusPage {
 public:
  // `components` returns the gateway components' health now.
  using ComponentsFn = std::function<std::vector<v1::StatusReport::Component>()>;
  StatusPage(storage::Store& store, Clock& clock, const catalog::SystemCatalog& catalog,
             ComponentsFn components, StatusPageOptions options = {})
      : store_(store),
        clock_(clock),
        catalog_(catalog),
        components_(std::move(components)),
        options_(std::move(options)) {}

  // The current report (at most cache_for old). Store errors are returned.
  absl::StatusOr<v1::StatusReport> Report() ABSL_LOCKS_EXCLUDED(mu_);

  // The HTML page of `report`.
  std::string Html(const v1::StatusReport& report) const;

 private:
  absl::StatusOr<v1::StatusReport> Build();

  storage::Store& store_;
  Clock& clock_;
  const catalog::SystemCatalog& catalog_;
  const ComponentsFn components_;
  const StatusPageOptions options_;

  absl::Mutex mu_;
  v1::StatusReport cached_ ABSL_GUARDED_BY(mu_);
  absl::Time cached_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace switchyard::status

#endif  // SWITCHYARD_SERVER_STATUS_STATUS_PAGE_H_
