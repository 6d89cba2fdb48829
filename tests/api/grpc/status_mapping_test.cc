#include "server/api/grpc/status_mapping.h"

#include "client/gateway_client.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"
#include "server/common/status.h"

namespace switchyard::api {
namespace {

TEST(ToGrpcStatusTest, CarriesCodeMessageAndErrorInfo) {
  absl::Status status =
      WithMetadata(Error(absl::StatusCode::kResourceExhausted, "CREDITS_EXHAUSTED", "no credits"),
                   "available", "3");
  grpc::Status mapped = ToGrpcStatus(status);
  EXPECT_EQ(mapped.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(mapped.error_message(), "no credits");
  google::rpc::Status details;
  ASSERT_TRUE(details.ParseFromString(mapped.error_details()));
  EXPECT_EQ(details.code(), static_cast<int>(grpc::StatusCode::RESOURCE_EXHAUSTED));
  ASSERT_EQ(details.details_size(), 1);
  google::rpc::ErrorInfo info;
  ASSERT_TRUE(details.details(0).UnpackTo(&info));
  EXPECT_EQ(info.reason(), "CREDITS_EXHAUSTED");
  EXPECT_EQ(info.domain(), "switchyard.v1");
  EXPECT_EQ(info.metadata().at("available"), "3");
}

TEST(ToGrpcStatusTest, GivesEveryErrorAReasonEvenWithoutOne) {
  grpc::Status mapped = ToGrpcStatus(absl::UnavailableError("down"));
  google::rpc::Status details;
  ASSERT_TRUE(details.ParseFromString(mapped.error_details()));
  google::rpc::ErrorInfo info;
  ASSERT_TRUE(details.details(0).UnpackTo(&info));
  EXPECT_EQ(info.reason(), "UNAVAILABLE");
}

TEST(ToGrpcStatusTest, ClientRecoversTheReason) {
  absl::Status back = client::FromGrpcStatus(
      ToGrpcStatus(Error(absl::StatusCode::kAborted, "REQUEST_ID_REUSED", "reused")));
  EXPECT_EQ(back.code(), absl::StatusCode::kAborted);
  EXPECT_EQ(client::ErrorReason(back), "REQUEST_ID_REUSED");
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
}

}  // namespace
}  // namespace switchyard::api
