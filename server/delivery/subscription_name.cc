#include "server/delivery/subscription_name.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/common/names.h"
#include "server/common/status.h"

namespace switchyard::delivery {

std::string SubscriptionKey::Name() const {
  return tenant_id.empty() ? absl::StrCat("subscriptions/", id)
                           : absl::StrCat("tenants/", tenant_id, "/subscriptions/", id);
}

absl::StatusOr<SubscriptionKey> ParseSubscriptionName(absl::string_view field,
                                                      absl::string_view name) {
  if (absl::StartsWith(name, "subscriptions/")) {
    SY_ASSIGN_OR_RETURN(std::vector<std::string> ids, ParseName(field, name, {"subscriptions"}));
    return SubscriptionKey{"", ids[0]};
  }
  SY_ASSIGN_OR_RETURN(std::vector<std::string> ids,
                      ParseName(field, name, {"tenants", "subscriptions"}));
  return SubscriptionKey{ids[0], ids[1]};
}

}  // namespace switchyard::delivery
