#include "server/common/names.h"

#include "gtest/gtest.h"
#include "server/common/status.h"

namespace switchyard {
namespace {

TEST(ValidateIdTest, AcceptsAipIdsAndRejectsOthers) {
  EXPECT_TRUE(ValidateId("id", "a").ok());
  EXPECT_TRUE(ValidateId("id", "sap-s4hana-eu1").ok());
  EXPECT_TRUE(ValidateId("id", std::string(63, 'a')).ok());
  for (const char* bad : {"", "1abc", "-abc", "abc-", "ABC", "a_b", "a b", "a/b"}) {
    absl::Status s = ValidateId("id", bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(ReasonOf(s), "INVALID_ID") << bad;
  }
  EXPECT_FALSE(ValidateId("id", std::string(64, 'a')).ok());
}

TEST(ParseNameTest, ReturnsIdsOfAWellFormedName) {
  auto ids = ParseName("name", "tenants/acme/connections/sap-eu", {"tenants", "connections"});
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ((*ids)[0], "acme");
  EXPECT_EQ((*ids)[1], "sap-eu");
}

TEST(ParseNameTest, RejectsWrongShapesWithTheExpectedPatternInTheMessage) {
  for (const char* bad :
       {"", "tenants/acme", "tenant/acme/connections/x", "tenants/acme/connections/",
        "tenants/acme/connections/x/y", "tenants/ACME/connections/x"}) {
    auto ids = ParseName("name", bad, {"tenants", "connections"});
    ASSERT_FALSE(ids.ok()) << bad;
    EXPECT_EQ(ReasonOf(ids.status()), "INVALID_NAME");
    EXPECT_NE(ids.status().message().find("tenants/{tenant}/connections/{connection}"),
              absl::string_view::npos);
  }
}

TEST(PageTokenTest, RoundTripsAndIsBoundToItsQuery) {
  std::string token = EncodePageToken("scope-a", "last-key");
  EXPECT_EQ(*DecodePageToken(token, "scope-a"), "last-key");
  EXPECT_EQ(*DecodePageToken("", "scope-a"), "");
  EXPECT_EQ(ReasonOf(DecodePageToken(token, "scope-b").status()), "INVALID_PAGE_TOKEN");
  EXPECT_EQ(ReasonOf(DecodePageToken("!!!", "scope-a").status()), "INVALID_PAGE_TOKEN");
  EXPECT_EQ(ReasonOf(DecodePageToken(token.substr(0, 12), "scope-a").status()),
            "INVALID_PAGE_TOKEN");
}

TEST(PageSizeTest, DefaultsClampsAndRejectsNegative) {
  EXPECT_EQ(*NormalizePageSize(0), 50);
  EXPECT_EQ(*NormalizePageSize(10), 10);
  EXPECT_EQ(*NormalizePageSize(5000), 1000);
  EXPECT_EQ(ReasonOf(NormalizePageSize(-1).status()), "INVALID_PAGE_SIZE");
}

TEST(RequestIdTest, AcceptsPrintableAsciiUpTo128) {
  EXPECT_TRUE(ValidateRequestId("").ok());
  EXPECT_TRUE(ValidateRequestId("0f8e-retry:1").ok());
  EXPECT_FALSE(ValidateRequestId(std::string(129, 'a')).ok());
  EXPECT_FALSE(ValidateRequestId("has space").ok());
  EXPECT_FALSE(ValidateRequestId("tab\t").ok());
}

TEST(GenerateIdTest, ProducesValidDistinctIds) {
  std::string a = GenerateId("r"), b = GenerateId("r");
  EXPECT_NE(a, b);
  EXPECT_TRUE(ValidateId("id", a).ok()) << a;
  EXPECT_EQ(a.size(), 21u);
}

TEST(FingerprintTest, LengthPrefixingSeparatesParts) {
  EXPECT_NE(Fingerprint({"ab", "c"}), Fingerprint({"a", "bc"}));
  EXPECT_EQ(Fingerprint({"ab", "c"}), Fingerprint({"ab", "c"}));
}

}  // namespace
}  // namespace switchyard
