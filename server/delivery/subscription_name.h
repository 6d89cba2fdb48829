#ifndef SWITCHYARD_SERVER_DELIVERY_SUBSCRIPTION_NAME_H_
#define SWITCHYARD_SERVER_DELIVERY_SUBSCRIPTION_NAME_H_

// Names of subscriptions: `tenants/{tenant}/subscriptions/{id}` (a tenant's)
// and `subscriptions/{id}` (an operator's, over every tenant).

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/common/scope.h"

namespace switchyard::delivery {

struct SubscriptionKey {
  std::string tenant_id;  // empty: an operator subscription
  std::string id;

  std::string Name() const;
  // Whether a caller with `scope` may use the subscription.
  bool VisibleTo(const Scope& scope) const {
    return tenant_id.empty() ? scope.tenant_id.empty() : scope.AllowsWholeTenant(tenant_id);
  }
  friend bool operator==(const SubscriptionKey& a, const SubscriptionKey& b) {
    return a.tenant_id == b.tenant_id && a.id == b.id;
  }
};

// Parses a subscription name. INVALID_ARGUMENT / INVALID_NAME naming `field`.
absl::StatusOr<SubscriptionKey> ParseSubscriptionName(absl::string_view field,
                                                      absl::string_view name);

}  // namespace switchyard::delivery

#endif  // SWITCHYARD_SERVER_DELIVERY_SUBSCRIPTION_NAME_H_
