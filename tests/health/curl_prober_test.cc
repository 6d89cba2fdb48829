#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "server/api/http/http_server.h"
#include "server/health/prober.h"

namespace switchyard::health {
namespace {

class Answer final : public api::HttpHandler {
 public:
  void Handle(api::HttpRequest request, Respond respond) override {
    api::HttpResponse response;
    response.body = R"({"ok":true})";
    respond(std::move(response));
  }
};

ProbeResult Fetch(HttpProber& http, const std::string& url, size_t max_body) {
  absl::Notification done;
  ProbeResult out;
  http.Get(url, absl::Seconds(10), max_body, [&](ProbeResult r) {
    out = std::move(r);
    done.Notify();
  });
  done.WaitForNotification();
  return out;
}

TEST(CurlProberTest, FetchesOverRealHttpAndRefusesPrivateAddressesUnlessAllowed) {
  Answer answer;
  api::HttpServerOptions options;
  options.listen_address = "127.0.0.1:0";
  auto server = api::HttpServer::Start(options, answer);
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string url = absl::StrCat("http://127.0.0.1:", (*server)->port(), "/x");

  auto allowed = NewCurlProber(/*allow_private=*/true);
  ASSERT_TRUE(allowed.ok());
  ProbeResult ok = Fetch(**allowed, url, 1024);
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.body, R"({"ok":true})");
  EXPECT_EQ(Fetch(**allowed, url, 0).body, "");  // discarded
  ProbeResult small = Fetch(**allowed, url, 4);
  EXPECT_EQ(small.status, 0);
  EXPECT_EQ(small.error, "body too large");

  // Whatever the URL says, a private address is not connected to.
  auto guarded = NewCurlProber(/*allow_private=*/false);
  ASSERT_TRUE(guarded.ok());
  ProbeResult refused = Fetch(**guarded, url, 1024);
  EXPECT_EQ(refused.status, 0);
  EXPECT_EQ(refused.error, "address not allowed");
}

}  // namespace
}  // namespace switchyard::health
