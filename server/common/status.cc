#include "server/common/status.h"

#include "absl/strings/cord.h"

namespace switchyard {
namespace {
constexpr absl::string_view kReasonPayload = "switchyard.dev/reason";
constexpr absl::string_view kMetadataPrefix = "switchyard.dev/metadata/";

std::string CodeName(absl::StatusCode code) {
  std::string name = absl::StatusCodeToString(code);
  for (char& c : name) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    if (c == ' ') c = '_';
  }
  return name;
}
}  // namespace

absl::Status Error(absl::StatusCode code, absl::string_view reason, absl::string_view message) {
  absl::Status status(code, message);
  status.SetPayload(kReasonPayload, absl::Cord(reason));
  return status;
}

absl::Status InvalidArgument(absl::string_view reason, absl::string_view message) {
  return Error(absl::StatusCode::kInvalidArgument, reason, message);
}

absl::Status NotFound(absl::string_view reason, absl::string_view message) {
  return Error(absl::StatusCode::kNotFound, reason, message);
}

absl::Status FailedPrecondition(absl::string_view reason, absl::string_view message) {
  return Error(absl::StatusCode::kFailedPrecondition, reason, message);
}

absl::Status WithMetadata(absl::Status status, absl::string_view key, absl::string_view value) {
  status.SetPayload(std::string(kMetadataPrefix) + std::string(key), absl::Cord(value));
  return status;
}

void ForEachMetadata(const absl::Status& status,
                     const std::function<void(absl::string_view, absl::string_view)>& fn) {
  status.ForEachPayload([&](absl::string_view url, const absl::Cord& payload) {
    if (url.substr(0, kMetadataPrefix.size()) == kMetadataPrefix) {
      fn(url.substr(kMetadataPrefix.size()), std::string(payload));
    }
  });
}

std::string ReasonOf(const absl::Status& status) {
  if (status.ok()) return "";
  if (auto payload = status.GetPayload(kReasonPayload); payload.has_value()) {
    return std::string(*payload);
  }
  return CodeName(status.code());
}

}  // namespace switchyard
