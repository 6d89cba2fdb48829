#include "server/api/grpc/status_mapping.h"

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "server/common/status.h"

namespace switchyard::api {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  google::rpc::ErrorInfo info;
  info.set_reason(ReasonOf(status));
  info.set_domain("switchyard.v1");
  ForEachMetadata(status, [&](absl::string_view key, absl::string_view value) {
    (*info.mutable_metadata())[std::string(key)] = std::string(value);
  });
  google::rpc::Status details;
  details.set_code(static_cast<int>(status.code()));
  details.set_message(std::string(status.message()));
  details.add_details()->PackFrom(info);
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()),
                      details.SerializeAsString());
}

}  // namespace switchyard::api
