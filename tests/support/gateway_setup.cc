#include "tests/support/gateway_setup.h"

namespace switchyard::testing {

absl::Status CreateTenantWithConnection(client::GatewayClient& op, const std::string& pool,
                                        int64_t capacity, const std::string& tenant,
                                        const std::string& connection, const std::string& system) {
  v1::CreateCreditPoolRequest p;
  p.set_credit_pool_id(pool);
  p.mutable_credit_pool()->set_capacity(capacity);
  if (auto made = op.CreateCreditPool(p); !made.ok()) return made.status();
  v1::CreateTenantRequest t;
  t.set_tenant_id(tenant);
  t.mutable_tenant()->set_credit_pool("creditPools/" + pool);
  if (auto made = op.CreateTenant(t); !made.ok()) return made.status();
  v1::CreateConnectionRequest c;
  c.set_parent("tenants/" + tenant);
  c.set_connection_id(connection);
  c.mutable_connection()->set_system("systems/" + system);
  c.mutable_connection()->set_deployment(v1::CLOUD);
  return op.CreateConnection(c).status();
}

}  // namespace switchyard::testing
