#ifndef SWITCHYARD_TESTS_SUPPORT_GATEWAY_SETUP_H_
#define SWITCHYARD_TESTS_SUPPORT_GATEWAY_SETUP_H_

// Common setup of integration tests, through the real API.

#include <string>

#include "absl/status/status.h"
#include "client/gateway_client.h"

namespace switchyard::testing {

// Creates pool `pool` (capacity credits), tenant `tenant` drawing from it, and
// cloud connection `connection` of the tenant to `system`, with an operator
// client. Returns the first error.
absl::Status CreateTenantWithConnection(client::GatewayClient& op, const std::string& pool,
                                        int64_t capacity, const std::string& tenant,
                                        const std::string& connection, const std::string& system);

}  // namespace switchyard::testing

#endif  // SWITCHYARD_TESTS_SUPPORT_GATEWAY_SETUP_H_
