#ifndef SWITCHYARD_SERVER_COMMON_SCOPE_H_
#define SWITCHYARD_SERVER_COMMON_SCOPE_H_

// What a caller may see. Domain code treats anything outside the scope
// exactly as if it did not exist, so that errors cannot reveal whether
// another tenant's resources exist.

#include <string>

#include "absl/strings/string_view.h"

namespace switchyard {

struct Scope {
  // When set, only this tenant is visible.
  std::string tenant_id;
  // When set (with tenant_id), only this connection is visible.
  std::string connection_id;

  // Everything is visible (operators, and the server itself).
  static Scope All() { return Scope{}; }
  static Scope Tenant(absl::string_view tenant) { return Scope{std::string(tenant), ""}; }

  bool AllowsTenant(absl::string_view tenant) const {
    return tenant_id.empty() || tenant_id == tenant;
  }
  // Whether tenant-wide resources (other than the one connection) are visible.
  bool AllowsWholeTenant(absl::string_view tenant) const {
    return AllowsTenant(tenant) && connection_id.empty();
  }
  bool AllowsConnection(absl::string_view tenant, absl::string_view connection) const {
    return AllowsTenant(tenant) && (connection_id.empty() || connection_id == connection);
  }
};

}  // namespace switchyard

#endif  // SWITCHYARD_SERVER_COMMON_SCOPE_H_
