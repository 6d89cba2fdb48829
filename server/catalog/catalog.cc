#include "server/catalog/catalog.h"

#include <algorithm>
#include <fstream>
#include <iterator>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "google/protobuf/text_format.h"
#include "server/common/names.h"
#include "server/common/status.h"

namespace switchyard::catalog {
namespace {
absl::Status Invalid(absl::string_view message) {
  return InvalidArgument("INVALID_CATALOG", absl::StrCat("system catalog: ", message));
}
}  // namespace

absl::StatusOr<std::unique_ptr<SystemCatalog>> SystemCatalog::Create(
    const v1::SystemCatalogConfig& config) {
  auto catalog = std::unique_ptr<SystemCatalog>(new SystemCatalog());
  catalog->tier_credits_.assign(config.tier_credits().begin(), config.tier_credits().end());
  if (catalog->tier_credits_.empty()) catalog->tier_credits_ = {1, 2, 4};
  for (int64_t credits : catalog->tier_credits_) {
    if (credits <= 0) return Invalid("tier_credits must be positive");
  }
  if (config.on_premises_multiplier() < 0) {
    return Invalid("on_premises_multiplier must be positive");
  }
  if (config.on_premises_multiplier() > 0) {
    catalog->on_premises_multiplier_ = config.on_premises_multiplier();
  }

  std::vector<v1::SystemCatalogConfig::Entry> entries(config.systems().begin(),
                                                      config.systems().end());
  std::sort(entries.begin(), entries.end(),
            [](const auto& a, const auto& b) { return a.id() < b.id(); });
  for (const auto& entry : entries) {
    if (!ValidateId("system id", entry.id()).ok()) {
      return Invalid(absl::StrCat("bad system id \"", entry.id(), "\""));
    }
    if (catalog->index_.count(entry.id()) != 0) {
      return Invalid(absl::StrCat("duplicate system id ", entry.id()));
    }
    if (entry.tier() < 1 || entry.tier() > static_cast<int>(catalog->tier_credits_.size())) {
      return Invalid(absl::StrCat("system ", entry.id(), " has tier ", entry.tier(),
                                  "; tiers are 1..", catalog->tier_credits_.size()));
    }
    if (entry.deployments().empty()) {
      return Invalid(absl::StrCat("system ", entry.id(), " lists no deployments"));
    }
    v1::System system;
    system.set_name(absl::StrCat("systems/", entry.id()));
    system.set_vendor(entry.vendor());
    system.set_product(entry.product());
    system.set_tier(entry.tier());
    system.set_category(entry.category());
    for (int d : entry.deployments()) {
      auto deployment = static_cast<v1::Deployment>(d);
      if (deployment == v1::DEPLOYMENT_UNSPECIFIED) {
        return Invalid(absl::StrCat("system ", entry.id(), " lists DEPLOYMENT_UNSPECIFIED"));
      }
      system.add_deployments(deployment);
    }
    catalog->index_.emplace(entry.id(), catalog->systems_.size());
    catalog->systems_.push_back(std::move(system));
  }
  for (v1::System& system : catalog->systems_) {
    for (int d : system.deployments()) {
      auto deployment = static_cast<v1::Deployment>(d);
      SY_ASSIGN_OR_RETURN(int64_t cost, catalog->Cost(system, deployment));
      (*system.mutable_credits_by_deployment())[v1::Deployment_Name(deployment)] = cost;
    }
  }
  return catalog;
}

absl::StatusOr<std::unique_ptr<SystemCatalog>> SystemCatalog::FromText(absl::string_view text) {
  v1::SystemCatalogConfig config;
  if (!google::protobuf::TextFormat::ParseFromString(std::string(text), &config)) {
    return Invalid("not valid SystemCatalogConfig text format");
  }
  return Create(config);
}

absl::StatusOr<std::unique_ptr<SystemCatalog>> SystemCatalog::FromFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return NotFound("CATALOG_NOT_FOUND", absl::StrCat("cannot read system catalog ", path));
  }
  std::stringstream text;
  text << in.rdbuf();
  return FromText(text.str());
}

const v1::System* SystemCatalog::Find(absl::string_view id) const {
  auto it = index_.find(id);
  return it == index_.end() ? nullptr : &systems_[it->second];
}

absl::StatusOr<v1::ListSystemsResponse> SystemCatalog::List(
    const v1::ListSystemsRequest& request) const {
  SY_ASSIGN_OR_RETURN(int page_size, NormalizePageSize(request.page_size()));
  constexpr absl::string_view kScope = "ListSystems";
  SY_ASSIGN_OR_RETURN(std::string after, DecodePageToken(request.page_token(), kScope));
  v1::ListSystemsResponse response;
  auto it = after.empty() ? index_.begin() : index_.upper_bound(after);
  for (; it != index_.end() && response.systems_size() < page_size; ++it) {
    *response.add_systems() = systems_[it->second];
  }
  if (it != index_.end() && response.systems_size() > 0) {
    response.set_next_page_token(EncodePageToken(kScope, std::prev(it)->first));
  }
  return response;
}

absl::StatusOr<v1::System> SystemCatalog::Get(absl::string_view name) const {
  SY_ASSIGN_OR_RETURN(std::vector<std::string> ids, ParseName("name", name, {"systems"}));
  const v1::System* system = Find(ids[0]);
  if (system == nullptr) {
    return NotFound("SYSTEM_NOT_FOUND", absl::StrCat(name, " is not in the catalog"));
  }
  return *system;
}

absl::StatusOr<int64_t> SystemCatalog::Cost(const v1::System& system,
                                            v1::Deployment deployment) const {
  if (deployment != v1::CLOUD && deployment != v1::ON_PREMISES) {
    return InvalidArgument("INVALID_DEPLOYMENT", "deployment must be CLOUD or ON_PREMISES");
  }
  if (std::find(system.deployments().begin(), system.deployments().end(), deployment) ==
      system.deployments().end()) {
    return FailedPrecondition("DEPLOYMENT_NOT_SUPPORTED",
                              absl::StrCat(system.name(), " does not support ",
                                           v1::Deployment_Name(deployment), " deployments"));
  }
  int64_t cost = tier_credits_[static_cast<size_t>(system.tier() - 1)];
  return deployment == v1::ON_PREMISES ? cost * on_premises_multiplier_ : cost;
}

}  // namespace switchyard::catalog
