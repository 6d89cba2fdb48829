#include "server/webhooks/signature.h"

#include "gtest/gtest.h"
#include "server/common/status.h"

namespace switchyard::webhooks {
namespace {

// The example of the Standard Webhooks specification.
constexpr char kSecret[] = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
constexpr char kId[] = "msg_p5jXN8AQM9LWM0D4loKWxJek";
constexpr char kTimestamp[] = "1614265330";
constexpr char kBody[] = R"({"test": 2432232314})";
constexpr char kSignature[] = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
const absl::Time kNow = absl::FromUnixSeconds(1614265330);

std::vector<crypto::Secret> Secrets(std::initializer_list<const char*> texts) {
  std::vector<crypto::Secret> out;
  for (const char* t : texts) out.push_back(*ParseSecret(t));
  return out;
}

TEST(SignatureTest, TheSpecificationExampleSignsAndVerifies) {
  auto secret = ParseSecret(kSecret);
  ASSERT_TRUE(secret.ok());
  EXPECT_EQ(Sign(*secret, kId, kTimestamp, kBody), kSignature);
  auto sent =
      Verify(Secrets({kSecret}), {kId, kTimestamp, kSignature, kBody}, kNow, absl::Minutes(5));
  ASSERT_TRUE(sent.ok()) << sent.status();
  EXPECT_EQ(*sent, kNow);
  EXPECT_EQ(FormatSecret(*secret), kSecret);
}

TEST(SignatureTest, TamperedVariantsFail) {
  const auto secrets = Secrets({kSecret});
  struct Case {
    const char* what;
    SignedRequest request;
  };
  const std::string other_body = R"({"test": 2432232315})";
  const Case cases[] = {
      {"body", {kId, kTimestamp, kSignature, other_body}},
      {"id", {"msg_p5jXN8AQM9LWM0D4loKWxJeK", kTimestamp, kSignature, kBody}},
      {"timestamp", {kId, "1614265331", kSignature, kBody}},
      {"signature", {kId, kTimestamp, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OF=", kBody}},
      {"version", {kId, kTimestamp, "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", kBody}},
  };
  for (const Case& c : cases) {
    auto r = Verify(secrets, c.request, kNow, absl::Minutes(5));
    EXPECT_FALSE(r.ok()) << c.what;
  }
  auto wrong_secret = Verify(Secrets({"whsec_AAAA9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}),
                             {kId, kTimestamp, kSignature, kBody}, kNow, absl::Minutes(5));
  EXPECT_EQ(ReasonOf(wrong_secret.status()), "SIGNATURE_MISMATCH");
  EXPECT_EQ(wrong_secret.status().code(), absl::StatusCode::kUnauthenticated);
}

TEST(SignatureTest, AnyOfSeveralSignaturesAndSecretsMayMatch) {
  const std::string header = std::string("v1,bm90IHRoaXMgb25l ") + kSignature;
  EXPECT_TRUE(
      Verify(Secrets({kSecret}), {kId, kTimestamp, header, kBody}, kNow, absl::Minutes(5)).ok());
  // A rotating gateway holds the new and the old secret.
  EXPECT_TRUE(Verify(Secrets({"whsec_AAAA9r8GKYqrTwjUPD8ILPZIo2LaLaSw", kSecret}),
                     {kId, kTimestamp, kSignature, kBody}, kNow, absl::Minutes(5))
                  .ok());
}

TEST(SignatureTest, TimestampsOutsideTheToleranceAreRefused) {
  const auto secrets = Secrets({kSecret});
  const SignedRequest request{kId, kTimestamp, kSignature, kBody};
  EXPECT_TRUE(Verify(secrets, request, kNow + absl::Minutes(5), absl::Minutes(5)).ok());
  auto late =
      Verify(secrets, request, kNow + absl::Minutes(5) + absl::Seconds(1), absl::Minutes(5));
  EXPECT_EQ(ReasonOf(late.status()), "TIMESTAMP_OUT_OF_TOLERANCE");
  auto early = Verify(secrets, request, kNow - absl::Minutes(6), absl::Minutes(5));
  EXPECT_EQ(ReasonOf(early.status()), "TIMESTAMP_OUT_OF_TOLERANCE");
}

TEST(SignatureTest, MalformedHeadersAreInvalidArguments) {
  const auto secrets = Secrets({kSecret});
  auto check = [&](SignedRequest r, const char* reason) {
    auto v = Verify(secrets, r, kNow, absl::Minutes(5));
    EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument) << reason;
    EXPECT_EQ(ReasonOf(v.status()), reason);
  };
  check({"", kTimestamp, kSignature, kBody}, "MISSING_HEADER");
  check({kId, "", kSignature, kBody}, "MISSING_HEADER");
  check({kId, kTimestamp, "", kBody}, "MISSING_HEADER");
  check({kId, "yesterday", kSignature, kBody}, "INVALID_TIMESTAMP");
  check({kId, "-5", kSignature, kBody}, "INVALID_TIMESTAMP");
  check({kId, kTimestamp, "g0hM9SsE", kBody}, "INVALID_SIGNATURE_HEADER");
  check({"has space", kTimestamp, kSignature, kBody}, "INVALID_WEBHOOK_ID");
  EXPECT_FALSE(ParseSecret("whsec_").ok());
  EXPECT_FALSE(ParseSecret("whsec_!!!").ok());
}

}  // namespace
}  // namespace switchyard::webhooks
