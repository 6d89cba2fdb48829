#include "server/polling/feed_poller.h"

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/common/status.h"
#include "tests/support/domain_fixture.h"

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

TEST(ParseFeedPageTest, KeepsDataExactlyAsSent) {
  // Numbers beyond 2^53, formatting and escapes survive; a "data" key inside
  // a string or another member does not confuse it.
  auto page =
      ParseFeedPage(R"({ "note": "\"data\": 1", "events" : [ {"id":"a", "meta":{"data":[1,2]},)"
                    R"( "data": {"id": 9007199254740993, "x": 1.50, "s": "q\"}]"} },)"
                    R"( {"id":"b","data":[ 1 ,"two"]}, {"id":"c"} ] })");
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->events.size(), 3u);
  EXPECT_EQ(page->events[0].body, R"({"id": 9007199254740993, "x": 1.50, "s": "q\"}]"})");
  EXPECT_EQ(page->events[1].body, R"([ 1 ,"two"])");
  EXPECT_EQ(page->events[2].body, "{}");
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

// Answers every fetch at once with an empty page, recording the URLs.
class EmptyFeed final : public health::HttpProber {
 public:
  void Get(const std::string& url, absl::Duration, size_t,
           std::function<void(health::ProbeResult)> done) override {
    urls.push_back(url);
    done({200, absl::Milliseconds(1), "", R"({"events":[],"next_cursor":"c1"})"});
  }
  std::vector<std::string> urls;
};

class FeedPollerTest : public testing::DomainTest {
 protected:
  void SetUp() override {
    DomainTest::SetUp();
    CreatePool("main", 20);
    CreateTenant("acme", "main");
    ASSERT_TRUE(Connect("acme", "erp", "netsuite", v1::CLOUD).ok());
  }
};

TEST_F(FeedPollerTest, WhenWebhooksFlowASilentModeFeedIsNotFetched) {
  EmptyFeed http;
  absl::Time last_webhook = clock_.Now();  // a webhook just arrived (a duplicate, say)
  FeedPoller poller(*store_, clock_, http, absl::Seconds(5), false,
                    [&](const std::string&, const std::string&) { return last_webhook; });
  v1::SetConnectionChangeFeedRequest req;
  req.mutable_feed()->set_name("tenants/acme/connections/erp/changeFeed");
  req.mutable_feed()->set_url("https://erp.acme.example/changes");
  req.mutable_feed()->mutable_interval()->set_seconds(10);
  req.mutable_feed()->set_mode(v1::ChangeFeed::WHEN_WEBHOOKS_SILENT);
  req.mutable_feed()->mutable_silence_threshold()->set_seconds(60);
  ASSERT_TRUE(poller.Set(req, Scope::All()).ok());
  poller.Tick();
  EXPECT_TRUE(http.urls.empty());
  clock_.Advance(absl::Minutes(2));  // silent for longer than the threshold
  poller.Tick();
  poller.Tick();
  ASSERT_EQ(http.urls.size(), 1u);
  EXPECT_EQ(http.urls[0], "https://erp.acme.example/changes");
  auto feed = poller.Get("tenants/acme/connections/erp/changeFeed", Scope::All());
  ASSERT_TRUE(feed.ok());
  EXPECT_EQ(feed->cursor(), "c1");
  clock_.Advance(absl::Seconds(11));
  poller.Tick();
  ASSERT_EQ(http.urls.size(), 2u);
  EXPECT_EQ(http.urls[1], "https://erp.acme.example/changes?cursor=c1");
  // Tenant keys of other tenants cannot see it; private addresses are refused.
  EXPECT_EQ(poller.Get("tenants/acme/connections/erp/changeFeed", Scope::Tenant("globex"))
                .status()
                .code(),
            absl::StatusCode::kNotFound);
  req.mutable_feed()->set_url("http://169.254.169.254/latest");
  EXPECT_EQ(ReasonOf(poller.Set(req, Scope::All()).status()), "URL_NOT_ALLOWED");
}

// Answers every fetch at once with HTTP 500, recording the URLs.
class BrokenFeed final : public health::HttpProber {
 public:
  void Get(const std::string& url, absl::Duration, size_t,
           std::function<void(health::ProbeResult)> done) override {
    urls.push_back(url);
    done({500, absl::Milliseconds(1), "", ""});
  }
  std::vector<std::string> urls;
};

TEST_F(FeedPollerTest, ADisconnectedConnectionIsPolledNoMoreEvenWhileItsFeedFails) {
  BrokenFeed http;
  FeedPoller poller(*store_, clock_, http, absl::Seconds(5), false,
                    [](const std::string&, const std::string&) { return absl::InfinitePast(); });
  v1::SetConnectionChangeFeedRequest req;
  req.mutable_feed()->set_name("tenants/acme/connections/erp/changeFeed");
  req.mutable_feed()->set_url("https://erp.acme.example/changes");
  req.mutable_feed()->mutable_interval()->set_seconds(10);
  ASSERT_TRUE(poller.Set(req, Scope::All()).ok());
  poller.Tick();
  poller.Tick();
  ASSERT_EQ(http.urls.size(), 1u);
  ASSERT_TRUE(Disconnect("tenants/acme/connections/erp").ok());
  clock_.Advance(absl::Seconds(11));
  poller.Tick();  // fails, and finds the connection gone
  poller.Tick();
  EXPECT_EQ(http.urls.size(), 2u);
  for (int i = 0; i < 3; ++i) {
    clock_.Advance(absl::Minutes(5));
    poller.Tick();
    poller.Tick();
  }
  EXPECT_EQ(http.urls.size(), 2u);
}

}  // namespace
}  // namespace switchyard::polling
