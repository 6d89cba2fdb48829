#ifndef SWITCHYARD_SERVER_API_GRPC_METRICS_INTERCEPTOR_H_
#define SWITCHYARD_SERVER_API_GRPC_METRICS_INTERCEPTOR_H_

// Records every gRPC call's method, status code and duration in the metrics
// registry, as the status is sent.

#include <grpcpp/support/server_interceptor.h>

#include <memory>

#include "server/common/clock.h"
#include "server/metrics/metrics.h"

namespace switchyard::api {

// Thread-safe. Borrows `registry` and `clock`, which must outlive the server.
class MetricsInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  MetricsInterceptorFactory(metrics::Registry& registry, Clock& clock)
      : registry_(registry), clock_(clock) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

 private:
  metrics::Registry& registry_;
  Clock& clock_;
};

}  // namespace switchyard::api

#endif  // SWITCHYARD_SERVER_API_GRPC_METRICS_INTERCEPTOR_H_
