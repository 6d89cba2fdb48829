#ifndef SWITCHYARD_SERVER_COMMON_PROTO_TIME_H_
#define SWITCHYARD_SERVER_COMMON_PROTO_TIME_H_

// Conversions between absl time types and google.protobuf well-known types.

#include "absl/time/time.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/timestamp.pb.h"

namespace switchyard {

// Sets `out` to `t`; clears it when `t` is absl::InfinitePast() (unset).
void ToProto(absl::Time t, google::protobuf::Timestamp* out);

// Sets `out` to `d` (finite durations).
void ToProto(absl::Duration d, google::protobuf::Duration* out);

absl::Duration FromProto(const google::protobuf::Duration& d);
absl::Time FromProto(const google::protobuf::Timestamp& t);

}  // namespace switchyard

#endif  // SWITCHYARD_SERVER_COMMON_PROTO_TIME_H_
