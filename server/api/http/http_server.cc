#include "server/api/http/http_server.h"

// clang-format off
#include "server/api/http/beast.h"
// clang-format on

#include <atomic>
#include <optional>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "server/common/log.h"
#include "server/common/status.h"

namespace switchyard::api {
namespace {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

}  // namespace

std::string HttpErrorBody(absl::string_view reason, absl::string_view message) {
  std::string out = "{\"error\":{\"reason\":";
  log::AppendJsonString(out, reason);
  out += ",\"message\":";
  log::AppendJsonString(out, message);
  out += "}}";
  return out;
}

struct HttpServer::Impl {
  Impl(const HttpServerOptions& o, HttpHandler& h) : options(o), handler(h), acceptor(ioc) {}

  const HttpServerOptions options;
  HttpHandler& handler;
  asio::io_context ioc;
  tcp::acceptor acceptor;
  absl::Mutex mu;
  int in_flight ABSL_GUARDED_BY(mu) = 0;  // requests handed to the handler, not answered
  std::vector<std::thread> io_threads;
  std::atomic<bool> stopping{false};
  std::atomic<bool> stopped{false};
  int port = 0;

  void Accept();
};

namespace {

// One client connection: read a request, hand it to a worker, write the
// answer, repeat while kept alive. Owned by the shared_ptrs of its pending
// operations; it ends when none is left.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, HttpServer::Impl& server)
      : stream_(std::move(socket)), server_(server), timer_(stream_.get_executor()) {}

  void Start() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->Read(); });
  }

 private:
  void Read() {
    parser_.emplace();
    parser_->body_limit(server_.options.max_body_bytes);
    parser_->header_limit(static_cast<std::uint32_t>(server_.options.max_header_bytes));
    // Our own deadline rather than the stream's: the stream would close the
    // socket, and a request cut short deserves a 408 first.
    stream_.expires_never();
    timer_.expires_after(absl::ToChronoNanoseconds(server_.options.request_timeout));
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (!ec) self->OnDeadline();
    });
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  void OnDeadline() {
    timed_out_ = true;
    // Idle keep-alive connections just close; a request cut short is told.
    if (parser_->got_some() || buffer_.size() > 0) {
      return Reply(408, HttpErrorBody("REQUEST_TIMEOUT", "the request did not arrive in time"),
                   /*close=*/true);
    }
    beast::error_code ignored;
    stream_.socket().close(ignored);
  }

  void OnRead(beast::error_code ec) {
    timer_.cancel();
    if (timed_out_) return;  // OnDeadline answered or closed
    if (ec == http::error::end_of_stream || ec == asio::error::connection_reset ||
        ec == asio::error::operation_aborted) {
      return Close();
    }
    if (ec == http::error::body_limit) {
      return Reply(
          413,
          HttpErrorBody("BODY_TOO_LARGE", absl::StrCat("bodies are limited to ",
                                                       server_.options.max_body_bytes, " bytes")),
          true);
    }
    if (ec == http::error::header_limit) {
      return Reply(431, HttpErrorBody("HEADERS_TOO_LARGE", "the request headers are too large"),
                   true);
    }
    if (ec == http::error::partial_message) return Close();  // the client went away
    if (ec) {
      return Reply(400, HttpErrorBody("MALFORMED_REQUEST", "the request is not valid HTTP/1.1"),
                   true);
    }
    http::request<http::string_body> req = parser_->release();
    keep_alive_ = req.keep_alive();
    if (server_.stopping.load()) {
      return Reply(503, HttpErrorBody("SHUTTING_DOWN", "the gateway is shutting down"), true);
    }
    HttpRequest request;
    request.method = std::string(req.method_string());
    request.target = std::string(req.target());
    for (const auto& field : req) {
      std::string name(field.name_string());
      absl::AsciiStrToLower(&name);
      request.headers[name] = std::string(field.value());
    }
    request.body = std::move(req.body());
    {
      absl::MutexLock lock(&server_.mu);
      ++server_.in_flight;
    }
    server_.handler.Handle(std::move(request), [self = shared_from_this()](HttpResponse response) {
      asio::post(self->stream_.get_executor(), [self, response = std::move(response)]() mutable {
        self->Write(std::move(response), /*close=*/false);
        absl::MutexLock lock(&self->server_.mu);
        --self->server_.in_flight;
      });
    });
  }

  void Reply(int status, std::string body, bool close) {
    HttpResponse response;
    response.status = status;
    response.body = std::move(body);
    Write(std::move(response), close);
  }

  void Write(HttpResponse response, bool close) {
    response_ = {};
    response_.version(11);
    response_.result(static_cast<unsigned>(response.status));
    response_.set(http::field::server, "switchyard");
    response_.set(http::field::content_type, response.content_type);
    for (const auto& [name, value] : response.headers) response_.set(name, value);
    response_.body() = std::move(response.body);
    close_after_write_ = close || !keep_alive_ || server_.stopping.load();
    response_.keep_alive(!close_after_write_);
    response_.prepare_payload();
    stream_.expires_after(absl::ToChronoNanoseconds(server_.options.request_timeout));
    http::async_write(stream_, response_,
                      [self = shared_from_this()](beast::error_code ec, size_t) {
                        if (ec || self->close_after_write_) return self->Close();
                        self->Read();
                      });
  }

  void Close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
  }

  beast::tcp_stream stream_;
  HttpServer::Impl& server_;
  asio::steady_timer timer_;
  bool timed_out_ = false;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> response_;
  bool keep_alive_ = false;
  bool close_after_write_ = false;
};

}  // namespace

void HttpServer::Impl::Accept() {
  acceptor.async_accept(asio::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (ec) {
      if (!stopping.load()) {
        log::Warning("http accept failed", {{"error", ec.message()}});
        Accept();
      }
      return;
    }
    std::make_shared<Session>(std::move(socket), *this)->Start();
    Accept();
  });
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpServerOptions& options,
                                                              HttpHandler& handler) {
  const size_t colon = options.listen_address.rfind(':');
  int port = -1;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(options.listen_address.substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return InvalidArgument(
        "INVALID_OPTION",
        absl::StrCat("HTTP listen address must be host:port, got ", options.listen_address));
  }
  std::string host = options.listen_address.substr(0, colon);
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  auto impl = std::make_unique<Impl>(options, handler);
  beast::error_code ec;
  const auto address = asio::ip::make_address(host, ec);
  if (ec) {
    return InvalidArgument("INVALID_OPTION", absl::StrCat("HTTP listen host must be an IP "
                                                          "address, got ",
                                                          host));
  }
  const tcp::endpoint endpoint(address, static_cast<unsigned short>(port));
  impl->acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(endpoint, ec);
  if (!ec) impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return Error(absl::StatusCode::kUnavailable, "LISTEN_FAILED",
                 absl::StrCat("cannot listen on ", options.listen_address, ": ", ec.message()));
  }
  impl->port = impl->acceptor.local_endpoint().port();
  impl->Accept();
  for (int i = 0; i < options.io_threads; ++i) {
    impl->io_threads.emplace_back([raw = impl.get()] { raw->ioc.run(); });
  }
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

int HttpServer::port() const { return impl_->port; }

void HttpServer::Shutdown() {
  if (impl_->stopped.exchange(true)) return;
  impl_->stopping = true;
  asio::post(impl_->ioc, [impl = impl_.get()] {
    beast::error_code ignored;
    impl->acceptor.close(ignored);
  });
  // Answers of requests being handled are written; then I/O stops.
  {
    absl::MutexLock lock(&impl_->mu);
    auto idle = [impl = impl_.get()]()
                    ABSL_EXCLUSIVE_LOCKS_REQUIRED(impl->mu) { return impl->in_flight == 0; };
    impl_->mu.AwaitWithTimeout(absl::Condition(&idle), absl::Seconds(10));
  }
  impl_->ioc.stop();
  for (std::thread& t : impl_->io_threads) t.join();
}

HttpServer::~HttpServer() { Shutdown(); }

}  // namespace switchyard::api
