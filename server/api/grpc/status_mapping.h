#ifndef SWITCHYARD_SERVER_API_GRPC_STATUS_MAPPING_H_
#define SWITCHYARD_SERVER_API_GRPC_STATUS_MAPPING_H_

// The one place where domain errors become gRPC errors.

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace switchyard::api {

// Maps `status` to a grpc::Status with the same code and message, and a
// google.rpc.Status in the binary details (grpc-status-details-bin) holding
// one google.rpc.ErrorInfo {reason, domain "switchyard.v1", metadata}.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace switchyard::api

#endif  // SWITCHYARD_SERVER_API_GRPC_STATUS_MAPPING_H_
