#include "server/api/http/http_server.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "tests/support/http_client.h"

namespace switchyard::api {
namespace {

using testing::HttpConnection;
using testing::HttpReply;

// Echoes the request: method, target, the x-echo header and the body. A
// request to /hold is answered only by Release, from the test's thread; a
// request to /inject answers with a header value carrying CR LF.
class EchoHandler final : public HttpHandler {
 public:
  void Handle(HttpRequest request, Respond respond) override {
    if (request.target == "/hold") {
      absl::MutexLock lock(&mu_);
      held_.push_back(std::move(respond));
      return;
    }
    HttpResponse response;
    response.content_type = "text/plain";
    if (request.target == "/drop") return;  // never answered
    if (request.target == "/inject") {
      response.headers.emplace_back("X-Note", "a\r\nX-Injected: 1");
    }
    auto echo = request.headers.find("x-echo");
    response.body =
        absl::StrCat(request.method, " ", request.target, " ",
                     echo == request.headers.end() ? "-" : echo->second, " ", request.body);
    respond(std::move(response));
  }

  // Waits until `n` requests are held.
  void AwaitHeld(size_t n) {
    absl::MutexLock lock(&mu_);
    auto held = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return held_.size() >= n; };
    mu_.Await(absl::Condition(&held));
  }

  // Answers the held requests from a thread of the test.
  void Release(int status) {
    std::vector<Respond> held;
    {
      absl::MutexLock lock(&mu_);
      held.swap(held_);
    }
    std::thread([held = std::move(held), status]() mutable {
      for (Respond& respond : held) {
        HttpResponse response;
        response.status = status;
        response.body = "released";
        respond(std::move(response));
      }
    }).join();
  }

 private:
  absl::Mutex mu_;
  std::vector<Respond> held_ ABSL_GUARDED_BY(mu_);
};

class HttpServerTest : public ::testing::Test {
 protected:
  void Start(HttpServerOptions options = {}) {
    options.listen_address = "127.0.0.1:0";
    auto server = HttpServer::Start(options, handler_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }

  EchoHandler handler_;
  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpServerTest, KeepAliveConnectionServesRequestsInTurn) {
  Start();
  HttpConnection http(server_->port());
  for (int i = 0; i < 3; ++i) {
    HttpReply reply =
        http.Send("POST", absl::StrCat("/x?i=", i), {{"X-Echo", absl::StrCat("v", i)}}, "body");
    EXPECT_EQ(reply.status, 200);
    EXPECT_EQ(reply.body, absl::StrCat("POST /x?i=", i, " v", i, " body"));
    EXPECT_EQ(reply.headers["Content-Type"], "text/plain");
    EXPECT_EQ(reply.headers["Server"], "switchyard");
    EXPECT_EQ(reply.headers.count("Connection"), 0u);
  }
}

TEST_F(HttpServerTest, PipelinedRequestsAreAnsweredInOrder) {
  Start();
  HttpConnection http(server_->port());
  http.SendRaw(
      "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
      "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"
      "GET /c HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(http.Read().body, "GET /a - ");
  EXPECT_EQ(http.Read().body, "POST /b - hi");
  EXPECT_EQ(http.Read().body, "GET /c - ");
}

TEST_F(HttpServerTest, AnswersFromAnotherThreadReachTheirConnections) {
  Start();
  HttpConnection first(server_->port());
  HttpConnection second(server_->port());
  first.SendRaw("GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
  second.SendRaw("GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
  handler_.AwaitHeld(2);
  handler_.Release(202);
  EXPECT_EQ(first.Read().status, 202);
  EXPECT_EQ(second.Read().status, 202);
  // Both connections stay usable.
  EXPECT_EQ(first.Send("GET", "/after", {}, "").body, "GET /after - ");
  EXPECT_EQ(second.Send("GET", "/after", {}, "").body, "GET /after - ");
}

TEST_F(HttpServerTest, HeadAnswersCarryNoBody) {
  Start();
  HttpConnection http(server_->port());
  // The answer to HEAD announces the length of the body GET would get, but
  // sends none: the next answer on the connection parses cleanly.
  http.SendRaw("HEAD /h HTTP/1.1\r\nHost: x\r\n\r\nGET /g HTTP/1.1\r\nHost: x\r\n\r\n");
  HttpReply head = http.Read(/*head=*/true);
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.headers["Content-Length"], absl::StrCat(std::string("HEAD /h - ").size()));
  EXPECT_EQ(head.body, "");
  EXPECT_EQ(http.Read().body, "GET /g - ");
}

TEST_F(HttpServerTest, AnErrorAnswerAfterAHeadAnswerCarriesItsBody) {
  Start();
  HttpConnection http(server_->port());
  http.SendRaw("HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(http.Read(/*head=*/true).status, 200);
  http.SendRaw("NOT HTTP\r\n\r\n");
  HttpReply reply = http.Read();
  EXPECT_EQ(reply.status, 400);
  EXPECT_NE(reply.body.find("MALFORMED_REQUEST"), std::string::npos);
}

TEST_F(HttpServerTest, OptionsOutOfRangeAreRefused) {
  HttpServerOptions options;
  options.listen_address = "127.0.0.1:0";
  options.request_timeout = absl::ZeroDuration();
  EXPECT_EQ(HttpServer::Start(options, handler_).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.request_timeout = absl::InfiniteDuration();
  EXPECT_EQ(HttpServer::Start(options, handler_).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.request_timeout = absl::Seconds(1);
  options.io_threads = 0;
  EXPECT_EQ(HttpServer::Start(options, handler_).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(HttpServerTest, ADroppedAnswerEndsItsConnectionAndShutdownIsSafeFromTwoThreads) {
  Start();
  HttpConnection http(server_->port());
  // The handler drops this request's `respond` unanswered: the session ends
  // (on its worker), closing the connection, and counts as answered.
  http.SendRaw("GET /drop HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(http.Read().status, 0);
  std::thread other([&] { server_->Shutdown(); });
  server_->Shutdown();
  other.join();
  server_.reset();  // a third Shutdown, from the destructor
}

TEST_F(HttpServerTest, HandlerHeaderValuesCannotEndTheHeaderSection) {
  Start();
  HttpConnection http(server_->port());
  HttpReply reply = http.Send("GET", "/inject", {}, "");
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.headers.count("X-Injected"), 0u);
  EXPECT_EQ(reply.headers["X-Note"], "a  X-Injected: 1");
}

TEST_F(HttpServerTest, OversizedAndMalformedRequestsAreAnsweredAndClosed) {
  HttpServerOptions options;
  options.max_body_bytes = 16;
  options.max_header_bytes = 256;
  Start(options);
  {
    HttpConnection http(server_->port());
    HttpReply reply = http.Send("POST", "/big", {}, std::string(17, 'x'));
    EXPECT_EQ(reply.status, 413);
    EXPECT_NE(reply.body.find("BODY_TOO_LARGE"), std::string::npos);
    EXPECT_EQ(reply.headers["Connection"], "close");
    EXPECT_EQ(http.Read().status, 0);  // closed
  }
  {
    HttpConnection http(server_->port());
    HttpReply reply = http.Send("GET", "/", {{"X-Long", std::string(400, 'h')}}, "");
    EXPECT_EQ(reply.status, 431);
    EXPECT_NE(reply.body.find("HEADERS_TOO_LARGE"), std::string::npos);
  }
  {
    HttpConnection http(server_->port());
    http.SendRaw("THIS IS NOT HTTP\r\n\r\n");
    HttpReply reply = http.Read();
    EXPECT_EQ(reply.status, 400);
    EXPECT_NE(reply.body.find("MALFORMED_REQUEST"), std::string::npos);
    EXPECT_EQ(http.Read().status, 0);
  }
  {
    // The client ends its side in the middle of the body.
    HttpConnection http(server_->port());
    http.SendRaw("POST /cut HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{\"a\"");
    http.CloseSend();
    HttpReply reply = http.Read();
    EXPECT_EQ(reply.status, 400);
    EXPECT_NE(reply.body.find("INCOMPLETE_REQUEST"), std::string::npos) << reply.body;
    EXPECT_EQ(http.Read().status, 0);
  }
  // A request within the limits on a new connection is served.
  HttpConnection http(server_->port());
  EXPECT_EQ(http.Send("POST", "/ok", {}, "small").status, 200);
}

TEST_F(HttpServerTest, ABodyFarOverTheLimitStillGetsItsAnswer) {
  HttpServerOptions options;
  options.max_body_bytes = 1024;
  Start(options);
  // Most of the body is still unread when the server answers and closes; the
  // answer must not be lost to a reset of the connection.
  for (int i = 0; i < 3; ++i) {
    HttpConnection http(server_->port());
    HttpReply reply = http.Send("POST", "/big", {}, std::string(4 << 20, 'x'));
    EXPECT_EQ(reply.status, 413);
  }
}

TEST_F(HttpServerTest, ExpectContinueGetsAGoAheadBeforeTheBody) {
  HttpServerOptions options;
  options.max_body_bytes = 16;
  Start(options);
  HttpConnection http(server_->port());
  // Only the header: the client waits for "100 Continue" before its body (a
  // server that waits for the body instead answers 408 at its deadline).
  http.SendRaw(
      "POST /expect HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
  EXPECT_EQ(http.Read().status, 100);
  http.SendRaw("hello");
  HttpReply reply = http.Read();
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.body, "POST /expect - hello");
  // The connection stays usable.
  EXPECT_EQ(http.Send("POST", "/next", {}, "more").body, "POST /next - more");

  // A body announced over the limit is refused before it is sent.
  HttpConnection big(server_->port());
  big.SendRaw(
      "POST /big HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 17\r\n\r\n");
  reply = big.Read();
  EXPECT_EQ(reply.status, 413);
  EXPECT_NE(reply.body.find("BODY_TOO_LARGE"), std::string::npos);

  // HTTP/1.0 expectations are ignored (RFC 9110): the body is read at once.
  HttpConnection old(server_->port());
  old.SendRaw(
      "POST /old HTTP/1.0\r\nHost: x\r\nExpect: something-else\r\nContent-Length: 3\r\n\r\n"
      "old");
  reply = old.Read();
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.body, "POST /old - old");

  // An expectation the server does not know is refused (RFC 9110).
  HttpConnection odd(server_->port());
  odd.SendRaw(
      "POST /odd HTTP/1.1\r\nHost: x\r\nExpect: something-else\r\nContent-Length: 2\r\n\r\nhi");
  reply = odd.Read();
  EXPECT_EQ(reply.status, 417);
  EXPECT_NE(reply.body.find("EXPECTATION_FAILED"), std::string::npos);
  EXPECT_EQ(odd.Read().status, 0);  // closed
}

TEST_F(HttpServerTest, RequestsCutShortAreAnswered408AndIdleConnectionsClose) {
  HttpServerOptions options;
  options.request_timeout = absl::Milliseconds(200);
  Start(options);
  HttpConnection partial(server_->port());
  partial.SendRaw("POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{");
  HttpConnection idle(server_->port());
  EXPECT_EQ(idle.Send("GET", "/once", {}, "").status, 200);
  // Each read returns when the server acts on the deadline.
  HttpReply reply = partial.Read();
  EXPECT_EQ(reply.status, 408);
  EXPECT_NE(reply.body.find("REQUEST_TIMEOUT"), std::string::npos);
  EXPECT_EQ(partial.Read().status, 0);
  EXPECT_EQ(idle.Read().status, 0);  // closed without an answer
}

TEST_F(HttpServerTest, ConnectionCloseIsHonoured) {
  Start();
  HttpConnection http(server_->port());
  HttpReply reply = http.Send("GET", "/bye", {{"Connection", "close"}}, "");
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.headers["Connection"], "close");
  EXPECT_EQ(http.Read().status, 0);
}

TEST_F(HttpServerTest, ShutdownWritesTheAnswersOfRequestsBeingHandled) {
  Start();
  HttpConnection http(server_->port());
  http.SendRaw("GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
  handler_.AwaitHeld(1);
  std::thread shutdown([&] { server_->Shutdown(); });
  // Once the server is shutting down, new connections are refused (or,
  // accepted just before, answered 503).
  while (true) {
    HttpConnection probe(server_->port());
    const int status = probe.Send("GET", "/probe", {}, "").status;
    if (status == 0 || status == 503) break;
  }
  handler_.Release(200);
  HttpReply reply = http.Read();
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.body, "released");
  EXPECT_EQ(reply.headers["Connection"], "close");
  shutdown.join();
  EXPECT_EQ(http.Read().status, 0);
}

}  // namespace
}  // namespace switchyard::api
