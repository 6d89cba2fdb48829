#include "server/polling/feed_poller.h"

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/common/status.h"

namespace switchyard::polling {
namespace {

TEST(ParseFeedPageTest, ReadsTheContract) {
  auto page = ParseFeedPage(
      R"({"events":[{"id":"e1","type":"wo.closed","time":"2026-11-28T06:00:00Z","data":{"wo":7}},)"
      R"({"id":"e2"}],"next_cursor":"c2","has_more":true})");
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->events.size(), 2u);
  EXPECT_EQ(page->events[0].event_id, "e1");
  EXPECT_EQ(page->events[0].type, "wo.closed");
  EXPECT_EQ(page->events[0].source_time, absl::FromUnixSeconds(1795845600));
  EXPECT_EQ(page->events[0].body, R"({"wo":7})");
  EXPECT_EQ(page->events[1].body, "{}");
  EXPECT_EQ(page->next_cursor, "c2");
  EXPECT_TRUE(page->has_more);
  auto empty = ParseFeedPage("{}");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->events.empty());
}

TEST(ParseFeedPageTest, RefusesAnswersThatBreakIt) {
  std::string many = R"({"events":[)";
  for (int i = 0; i < 501; ++i) absl::StrAppend(&many, i ? "," : "", R"({"id":"e)", i, R"("})");
  many += "]}";
  for (const std::string& bad :
       {std::string("[]"), std::string("not json"), std::string(R"({"events":{}})"),
        std::string(R"({"events":[{"type":"x"}]})"), std::string(R"({"events":[{"id":""}]})"),
        std::string(R"({"events":[{"id":"e1","time":"yesterday"}]})"),
        std::string(R"({"events":[],"has_more":"yes"})"), many}) {
    auto page = ParseFeedPage(bad);
    EXPECT_FALSE(page.ok()) << bad;
    EXPECT_EQ(ReasonOf(page.status()), "INVALID_FEED") << bad;
  }
}

}  // namespace
}  // namespace switchyard::polling
