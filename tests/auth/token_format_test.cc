#include "server/auth/token_format.h"

#include <set>

#include "gtest/gtest.h"
#include "server/common/status.h"

namespace switchyard::auth {
namespace {

TEST(TokenFormatTest, MintedTokensHaveTheirPrefixLengthAndParse) {
  const std::pair<TokenKind, const char*> kinds[] = {{TokenKind::kOperator, "syo_"},
                                                     {TokenKind::kTenant, "syt_"},
                                                     {TokenKind::kConnection, "syc_"}};
  for (const auto& [kind, prefix] : kinds) {
    std::string token = MintToken(kind);
    EXPECT_EQ(token.size(), kTokenLength);
    EXPECT_EQ(token.substr(0, 4), prefix);
    auto parsed = ParseToken(token);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, kind);
  }
}

TEST(TokenFormatTest, TokensAreDistinct) {
  std::set<std::string> seen;
  for (int i = 0; i < 2000; ++i) EXPECT_TRUE(seen.insert(MintToken(TokenKind::kTenant)).second);
}

TEST(TokenFormatTest, EverySingleCharacterChangeIsRejectedByTheChecksum) {
  const std::string token = MintToken(TokenKind::kConnection);
  int rejected = 0, total = 0;
  for (size_t i = 4; i < token.size(); ++i) {
    std::string typo = token;
    typo[i] = token[i] == 'x' ? 'y' : 'x';
    ++total;
    rejected += !ParseToken(typo).ok();
  }
  EXPECT_EQ(rejected, total);
}

TEST(TokenFormatTest, MalformedTokensFailUnauthenticatedWithoutEchoingThem) {
  const std::string token = MintToken(TokenKind::kOperator);
  for (const std::string& bad :
       {std::string(""), token.substr(0, token.size() - 1), token + "0", "syx_" + token.substr(4),
        "SYO_" + token.substr(4), token.substr(0, 20) + "-" + token.substr(21),
        std::string(kTokenLength, 'a')}) {
    auto parsed = ParseToken(bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kUnauthenticated);
    EXPECT_EQ(ReasonOf(parsed.status()), "MALFORMED_CREDENTIAL");
    if (bad.size() > 8) {
      EXPECT_EQ(std::string(parsed.status().message()).find(bad.substr(4, 8)), std::string::npos);
    }
  }
}

TEST(TokenFormatTest, HintIsTheLastFourCharacters) { EXPECT_EQ(TokenHint("syo_abcdefgh"), "efgh"); }

}  // namespace
}  // namespace switchyard::auth
