#ifndef SWITCHYARD_SERVER_CATALOG_CATALOG_H_
#define SWITCHYARD_SERVER_CATALOG_CATALOG_H_

// The catalog of system types that can be connected (SAP S/4HANA, Maximo,
// MaintainX, ...) and what one connection to each costs.

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "switchyard/v1/gateway.pb.h"

namespace switchyard::catalog {

// Immutable after creation; thread-safe.
class SystemCatalog {
 public:
  // Builds the catalog from `config`. INVALID_ARGUMENT / INVALID_CATALOG when
  // an entry has a bad or duplicate id, a tier outside 1..number of
  // tier_credits, no deployments, or when credits are not positive. Missing
  // tier_credits default to [1, 2, 4] and a missing multiplier to 2.
  static absl::StatusOr<std::unique_ptr<SystemCatalog>> Create(
      const v1::SystemCatalogConfig& config);

  // Parses `text` (protobuf text format of SystemCatalogConfig), then Create.
  static absl::StatusOr<std::unique_ptr<SystemCatalog>> FromText(absl::string_view text);

  // Reads the file at `path`, then FromText. NOT_FOUND when it cannot be read.
  static absl::StatusOr<std::unique_ptr<SystemCatalog>> FromFile(const std::string& path);

  // The catalog shipped with the server (config/catalog.textproto, compiled in).
  static absl::string_view DefaultText();

  // Systems ordered by id.
  const std::vector<v1::System>& systems() const { return systems_; }

  // The system with `id`, or nullptr. The pointer lives as long as the catalog.
  const v1::System* Find(absl::string_view id) const;

  // The ListSystems and GetSystem calls. INVALID_ARGUMENT for a bad name or
  // page token; NOT_FOUND / SYSTEM_NOT_FOUND.
  absl::StatusOr<v1::ListSystemsResponse> List(const v1::ListSystemsRequest& request) const;
  absl::StatusOr<v1::System> Get(absl::string_view name) const;

  // Credits one connection to `system` with `deployment` costs, or
  // FAILED_PRECONDITION / DEPLOYMENT_NOT_SUPPORTED when the system does not
  // support it and INVALID_ARGUMENT / INVALID_DEPLOYMENT when unspecified.
  absl::StatusOr<int64_t> Cost(const v1::System& system, v1::Deployment deployment) const;

 private:
  SystemCatalog() = default;
  std::vector<v1::System> systems_;
  std::map<std::string, size_t, std::less<>> index_;
  std::vector<int64_t> tier_credits_;
  int64_t on_premises_multiplier_ = 2;
};

}  // namespace switchyard::catalog

#endif  // SWITCHYARD_SERVER_CATALOG_CATALOG_H_
