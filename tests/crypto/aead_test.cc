#include "server/crypto/aead.h"

#include "gtest/gtest.h"
#include "server/common/status.h"
#include "server/crypto/keyring.h"

namespace switchyard::crypto {
namespace {

TEST(AeadTest, SealThenOpenRoundTrips) {
  Secret key = RandomSecret(kAes256KeySize);
  auto sealed = Seal(key, "s3cret", "aad");
  ASSERT_TRUE(sealed.ok());
  EXPECT_EQ(sealed->find("s3cret"), std::string::npos);
  auto opened = Open(key, *sealed, "aad");
  ASSERT_TRUE(opened.ok());
  EXPECT_EQ(opened->view(), "s3cret");
}

TEST(AeadTest, SealingTwiceGivesDifferentCiphertexts) {
  Secret key = RandomSecret(kAes256KeySize);
  EXPECT_NE(*Seal(key, "same", "aad"), *Seal(key, "same", "aad"));
}

TEST(AeadTest, EveryTamperingFailsWithDataLoss) {
  Secret key = RandomSecret(kAes256KeySize);
  Secret other = RandomSecret(kAes256KeySize);
  const std::string sealed = *Seal(key, "credentials of tenant a", "tenant-a|conn-1|v1");
  std::vector<std::pair<std::string, absl::StatusOr<Secret>>> cases;
  for (size_t i = 0; i < sealed.size(); ++i) {
    std::string flipped = sealed;
    flipped[i] = static_cast<char>(flipped[i] ^ 0x01);
    auto r = Open(key, flipped, "tenant-a|conn-1|v1");
    EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << "bit flip at " << i;
  }
  for (size_t n : {size_t{0}, size_t{5}, sealed.size() - 1}) {
    auto r = Open(key, sealed.substr(0, n), "tenant-a|conn-1|v1");
    EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << "truncated to " << n;
  }
  EXPECT_EQ(Open(other, sealed, "tenant-a|conn-1|v1").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(Open(key, sealed, "tenant-b|conn-1|v1").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(ReasonOf(Open(key, sealed, "tenant-a|conn-2|v1").status()), "DECRYPTION_FAILED");
}

TEST(AeadTest, RejectsKeysOfTheWrongSize) {
  Secret short_key = RandomSecret(16);
  EXPECT_EQ(Seal(short_key, "x", "").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(MasterKeyringTest, ParsesEntriesAndUsesTheFirstAsPrimary) {
  std::string a(MasterKeyring::Generate("k2").second.view());
  std::string b(MasterKeyring::Generate("k1").second.view());
  auto ring = MasterKeyring::Parse("# rotated 2026-11\n" + a + b);
  ASSERT_TRUE(ring.ok()) << ring.status();
  EXPECT_EQ((*ring)->primary_id(), "k2");
  EXPECT_EQ((*ring)->ids(), (std::vector<std::string>{"k2", "k1"}));
}

TEST(MasterKeyringTest, CommentLinesAreDroppedWholeCommasAndAll) {
  std::string a(MasterKeyring::Generate("k2").second.view());
  std::string b(MasterKeyring::Generate("k1").second.view());
  a.pop_back();  // the line end
  b.pop_back();
  // A comment with a comma, and a retired key in a commented-out line.
  auto ring = MasterKeyring::Parse("# retired 2026-05, remove after rewrap\n" + a +
                                   "\n# k0:" + b.substr(3) + "," + b + "\n");
  ASSERT_TRUE(ring.ok()) << ring.status();
  EXPECT_EQ((*ring)->ids(), (std::vector<std::string>{"k2"}));
  // Several entries on one line still count.
  auto both = MasterKeyring::Parse(a + ", " + b);
  ASSERT_TRUE(both.ok()) << both.status();
  EXPECT_EQ((*both)->ids(), (std::vector<std::string>{"k2", "k1"}));
}

TEST(MasterKeyringTest, RejectsMalformedKeyringsWithoutEchoingKeys) {
  for (const char* bad : {"", "# only a comment\n", "k1:not-base64!", "k1:c2hvcnQ=",
                          "K1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "nocolon"}) {
    auto ring = MasterKeyring::Parse(bad);
    EXPECT_EQ(ring.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  auto dup = MasterKeyring::Parse(
      "k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nk1:"
      "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
  EXPECT_EQ(dup.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(dup.status().message()).find("AAAA"), std::string::npos);
}

TEST(MasterKeyringTest, OlderKeysStillUnwrapAfterRotation) {
  auto [old_ring, old_text] = MasterKeyring::Generate("k1");
  Secret data_key = RandomSecret(kAes256KeySize);
  std::string wrapped = *old_ring->Wrap(data_key, "tenant-a|1");
  std::string rotated =
      std::string(MasterKeyring::Generate("k2").second.view()) + std::string(old_text.view());
  auto ring = *MasterKeyring::Parse(rotated);
  auto unwrapped = ring->Unwrap("k1", wrapped, "tenant-a|1");
  ASSERT_TRUE(unwrapped.ok()) << unwrapped.status();
  EXPECT_EQ(unwrapped->view(), data_key.view());
  auto without_old =
      *MasterKeyring::Parse(std::string(MasterKeyring::Generate("k3").second.view()));
  EXPECT_EQ(ReasonOf(without_old->Unwrap("k1", wrapped, "tenant-a|1").status()),
            "MASTER_KEY_UNAVAILABLE");
}

}  // namespace
}  // namespace switchyard::crypto
