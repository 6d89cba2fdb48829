#include "server/api/http/http_server.h"

// clang-format off
#include "server/api/http/beast.h"
// clang-format on

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <optional>
#include <string_view>
#include <thread>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
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
using SteadyTime = std::chrono::steady_clock::time_point;

class Session;

// One I/O thread with its own event loop. A connection stays on the worker
// that accepted it, so its handlers never run concurrently and need no
// strand. Deadlines are checked by one periodic sweep per worker instead of
// a timer armed and cancelled for every request.
struct Worker {
  Worker() : ioc(1), sweep(ioc) {}
  // The worker's open connections; touched only on its thread. Declared
  // first: sessions still pending when the loop is destroyed leave it then.
  absl::flat_hash_set<Session*> sessions;
  // Where lingering connections' input is read to be dropped.
  std::array<char, 16 * 1024> scratch;
  asio::io_context ioc;
  asio::steady_timer sweep;
  std::thread thread;
};

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
  Impl(const HttpServerOptions& o, HttpHandler& h)
      : options(o), handler(h), accept_ioc(1), acceptor(accept_ioc), accept_pause(accept_ioc) {}

  const HttpServerOptions options;
  HttpHandler& handler;
  // The acceptor has its own loop and thread: accepting never waits behind a
  // busy worker.
  asio::io_context accept_ioc;
  tcp::acceptor acceptor;
  asio::steady_timer accept_pause;  // after a failed accept
  std::thread accept_thread;
  // Held for the whole of Shutdown: a second caller waits for the first.
  absl::Mutex shutdown_mu;
  // Before the workers: sessions destroyed with them still count down.
  absl::Mutex mu;
  int in_flight ABSL_GUARDED_BY(mu) = 0;  // requests handed to the handler, not answered
  // Kept until the server is destroyed: an answer that comes after Shutdown
  // is queued on a stopped loop and dropped with it.
  std::vector<std::unique_ptr<Worker>> workers;
  size_t next_worker = 0;  // accept thread only
  std::atomic<bool> stopping{false};
  bool stopped ABSL_GUARDED_BY(shutdown_mu) = false;
  int port = 0;

  void Accept();
  void Sweep(Worker& worker);
  // How often deadlines are checked: a quarter of the request timeout, at
  // most a second.
  std::chrono::steady_clock::duration SweepInterval() const {
    return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        absl::ToChronoNanoseconds(
            std::clamp(options.request_timeout / 4, absl::Milliseconds(10), absl::Seconds(1))));
  }
};

namespace {

// The status line's reason phrase.
absl::string_view Reason(int status) {
  const auto reason = http::obsolete_reason(static_cast<http::status>(status));
  return reason.empty() ? absl::string_view("Unknown")
                        : absl::string_view(reason.data(), reason.size());
}

// Header names and values come from handlers; a CR or LF in them would let a
// value end the header section early.
void AppendHeaderText(std::string& out, absl::string_view text) {
  for (char c : text) out.push_back(c == '\r' || c == '\n' ? ' ' : c);
}

// One client connection: read a request, hand it to the handler, write the
// answer, repeat while kept alive. Runs only on its worker's thread. Owned by
// the shared_ptrs of its pending operations; it ends when none is left.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, Worker& worker, HttpServer::Impl& server)
      : socket_(std::move(socket)), worker_(worker), server_(server) {
    worker_.sessions.insert(this);
  }
  ~Session() {
    worker_.sessions.erase(this);
    if (answering_) Answered();
  }

  void Start() { Read(); }

  // Closes the connection at once (shutdown).
  void CloseSocket() {
    beast::error_code ignored;
    socket_.close(ignored);
  }

  // Called by the sweep of the session's worker.
  void CheckDeadline(SteadyTime now) {
    if (state_ == State::kHandling || now < deadline_) return;
    if (state_ == State::kReading) {
      timed_out_ = true;
      beast::error_code ignored;
      socket_.cancel(ignored);  // OnRead answers 408 or closes
      return;
    }
    // A client that does not read its answer, or keeps sending after it:
    // give up on it.
    beast::error_code ignored;
    socket_.close(ignored);
  }

 private:
  enum class State { kReading, kHandling, kWriting, kLingering };
  static constexpr std::chrono::seconds kLingerTime{5};

  void Read() {
    head_ = false;
    parser_.emplace();
    parser_->body_limit(server_.options.max_body_bytes);
    parser_->header_limit(static_cast<std::uint32_t>(server_.options.max_header_bytes));
    state_ = State::kReading;
    deadline_ = std::chrono::steady_clock::now() + Timeout();
    // The header first: a client that sent "Expect: 100-continue" waits for
    // a go-ahead before it sends the body.
    http::async_read_header(
        socket_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  void OnHeader(beast::error_code ec) {
    if (ec || parser_->is_done()) return OnRead(ec);
    const http::request<http::string_body>& req = parser_->get();
    head_ = req.method() == http::verb::head;
    const auto expect = req.find(http::field::expect);
    // RFC 9110 section 10.1.1: HTTP/1.0 requests' expectations are ignored.
    if (expect == req.end() || req.version() < 11) return ReadBody();
    if (!beast::iequals(expect->value(), "100-continue")) {
      // An expectation the server cannot meet.
      return Refuse(417, "EXPECTATION_FAILED", "only \"Expect: 100-continue\" is supported");
    }
    // A body announced over the limit (Content-Length) was refused with the
    // header (413) and never gets here; a chunked one is refused when its
    // chunks pass the limit. Now the client may send it.
    static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    asio::async_write(socket_, asio::buffer(kContinue.data(), kContinue.size()),
                      [self = shared_from_this()](beast::error_code ec, size_t) {
                        if (!ec) return self->ReadBody();
                        // The sweep's cancel answers 408; any other failure
                        // means the client is gone.
                        if (self->timed_out_ && ec == asio::error::operation_aborted) {
                          return self->OnRead(ec);
                        }
                        self->Close();
                      });
  }

  void ReadBody() {
    http::async_read(
        socket_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  std::chrono::steady_clock::duration Timeout() const {
    return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        absl::ToChronoNanoseconds(server_.options.request_timeout));
  }

  void OnRead(beast::error_code ec) {
    // A read that completed before the sweep's cancel reached it is served.
    if (timed_out_ && ec == asio::error::operation_aborted) {
      // Idle keep-alive connections just close; a request cut short is told.
      if (parser_->got_some() || buffer_.size() > 0) {
        return Refuse(408, "REQUEST_TIMEOUT", "the request did not arrive in time");
      }
      return Close();
    }
    timed_out_ = false;
    if (ec == http::error::partial_message) {
      // The client ended its side inside a request; it may still read.
      return Refuse(400, "INCOMPLETE_REQUEST", "the request ended before it was complete");
    }
    if (ec == http::error::end_of_stream || ec == asio::error::operation_aborted ||
        (ec && ec.category() == boost::system::system_category())) {
      return Close();  // the client went away, or its connection broke
    }
    if (ec == http::error::body_limit) {
      return Refuse(
          413, "BODY_TOO_LARGE",
          absl::StrCat("bodies are limited to ", server_.options.max_body_bytes, " bytes"));
    }
    if (ec == http::error::header_limit) {
      return Refuse(431, "HEADERS_TOO_LARGE", "the request headers are too large");
    }
    if (ec) {
      return Refuse(400, "MALFORMED_REQUEST", "the request is not valid HTTP/1.1");
    }
    http::request<http::string_body>& req = parser_->get();
    keep_alive_ = req.keep_alive();
    head_ = req.method() == http::verb::head;
    bool stopping = false;
    {
      absl::MutexLock lock(&server_.mu);
      stopping = server_.stopping.load();
      if (!stopping) ++server_.in_flight;  // Shutdown waits for its answer
    }
    if (stopping) {
      return Refuse(503, "SHUTTING_DOWN", "the gateway is shutting down");
    }
    answering_ = true;
    HttpRequest request;
    request.method = std::string(req.method_string());
    request.target = std::string(req.target());
    request.headers.reserve(16);
    for (const auto& field : req) {
      std::string name(field.name_string());
      absl::AsciiStrToLower(&name);
      const absl::string_view value(field.value().data(), field.value().size());
      const bool webhook_header = absl::StartsWith(name, "webhook-");
      auto [it, inserted] = request.headers.try_emplace(std::move(name), value);
      if (inserted) continue;
      if (webhook_header) {
        absl::StrAppend(&it->second, " ", value);
      } else {
        it->second = std::string(value);  // as before: the last one
      }
    }
    request.body = std::move(req.body());
    state_ = State::kHandling;
    server_.handler.Handle(std::move(request), Answer(shared_from_this()));
  }

  // The handler's `respond`: takes the answer to the session's worker. The
  // session's reference always goes back to the worker's thread, so that the
  // session ends there, never on a thread of the handler; also when the
  // handler drops a copy without calling it.
  class Answer {
   public:
    explicit Answer(std::shared_ptr<Session> session) : session_(std::move(session)) {}
    Answer(const Answer&) = default;
    Answer(Answer&&) = default;
    Answer& operator=(const Answer&) = delete;
    Answer& operator=(Answer&&) = delete;
    ~Answer() {
      if (session_ == nullptr) return;
      asio::io_context& ioc = session_->worker_.ioc;
      asio::post(ioc, [session = std::move(session_)] {});
    }
    void operator()(HttpResponse response) {
      std::shared_ptr<Session> session = std::move(session_);
      if (session == nullptr) return;  // answered already
      asio::io_context& ioc = session->worker_.ioc;
      // Runs inline when the handler answers on this worker's thread.
      asio::dispatch(ioc, [session = std::move(session), response = std::move(response)] {
        session->Write(response, /*close=*/false);
      });
    }

   private:
    std::shared_ptr<Session> session_;
  };

  // The answer of a request handed to the handler is written (or failed).
  void Answered() {
    answering_ = false;
    absl::MutexLock lock(&server_.mu);
    --server_.in_flight;
  }

  // Answers a request the server refuses itself, and closes the connection.
  void Refuse(int status, absl::string_view reason, absl::string_view message) {
    const absl::string_view target =
        parser_.has_value() && parser_->is_header_done()
            ? absl::string_view(parser_->get().target().data(), parser_->get().target().size())
            : absl::string_view();
    server_.handler.Refused(target, status, reason);
    Reply(status, HttpErrorBody(reason, message), /*close=*/true);
  }

  void Reply(int status, std::string body, bool close) {
    HttpResponse response;
    response.status = status;
    response.body = std::move(body);
    Write(response, close);
  }

  // Serializes the whole answer into one buffer: one send per answer.
  void Write(const HttpResponse& response, bool close) {
    close_after_write_ = close || !keep_alive_ || server_.stopping.load(std::memory_order_relaxed);
    out_.clear();
    absl::StrAppend(&out_, "HTTP/1.1 ", response.status, " ", Reason(response.status),
                    "\r\nServer: switchyard\r\nContent-Type: ");
    AppendHeaderText(out_, response.content_type);
    for (const auto& [name, value] : response.headers) {
      out_ += "\r\n";
      AppendHeaderText(out_, name);
      out_ += ": ";
      AppendHeaderText(out_, value);
    }
    absl::StrAppend(&out_, "\r\nContent-Length: ", response.body.size(),
                    close_after_write_ ? "\r\nConnection: close\r\n\r\n" : "\r\n\r\n");
    if (!head_) out_ += response.body;
    state_ = State::kWriting;
    deadline_ = std::chrono::steady_clock::now() + Timeout();
    asio::async_write(socket_, asio::buffer(out_),
                      [self = shared_from_this()](beast::error_code ec, size_t) {
                        if (self->answering_) self->Answered();
                        if (ec) return self->Close();
                        if (self->close_after_write_) return self->Linger();
                        self->Read();
                      });
  }

  // No operation is left pending: the session ends, closing its socket.
  void Close() {
    beast::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
  }

  // After an answer that ends the connection: sends the end of the stream,
  // then reads and drops what the client still sends (the rest of a body too
  // large, say) until it closes or kLingerTime passes. Closing at once would
  // make the kernel reset the connection, and the client lose the answer.
  void Linger() {
    beast::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    state_ = State::kLingering;
    deadline_ = std::chrono::steady_clock::now() +
                std::min<std::chrono::steady_clock::duration>(Timeout(), kLingerTime);
    Drain();
  }

  void Drain() {
    socket_.async_read_some(asio::buffer(worker_.scratch),
                            [self = shared_from_this()](beast::error_code ec, size_t) {
                              // The end of the stream, an error, or the
                              // sweep: the session ends.
                              if (!ec) self->Drain();
                            });
  }

  tcp::socket socket_;
  Worker& worker_;
  HttpServer::Impl& server_;
  State state_ = State::kReading;
  SteadyTime deadline_;
  bool timed_out_ = false;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::string out_;
  bool answering_ = false;  // counted in the server's in_flight
  bool keep_alive_ = false;
  bool head_ = false;
  bool close_after_write_ = false;
};

}  // namespace

void HttpServer::Impl::Accept() {
  Worker& worker = *workers[next_worker];
  next_worker = (next_worker + 1) % workers.size();
  acceptor.async_accept(worker.ioc, [this, &worker](beast::error_code ec, tcp::socket socket) {
    if (ec) {
      if (stopping.load()) return;
      // Out of file descriptors, say: the listening socket stays readable,
      // so try again after a pause instead of at once.
      log::Warning("http accept failed", {{"error", ec.message()}});
      accept_pause.expires_after(std::chrono::milliseconds(100));
      accept_pause.async_wait([this](beast::error_code ec) {
        if (!ec && !stopping.load()) Accept();
      });
      return;
    }
    // The session is made on its worker's thread, which owns its state.
    asio::post(worker.ioc, [this, &worker, socket = std::move(socket)]() mutable {
      beast::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      std::make_shared<Session>(std::move(socket), worker, *this)->Start();
    });
    Accept();
  });
}

void HttpServer::Impl::Sweep(Worker& worker) {
  worker.sweep.expires_after(SweepInterval());
  worker.sweep.async_wait([this, &worker](beast::error_code ec) {
    if (ec) return;
    const SteadyTime now = std::chrono::steady_clock::now();
    for (Session* session : worker.sessions) session->CheckDeadline(now);
    Sweep(worker);
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
  if (options.request_timeout <= absl::ZeroDuration() || options.request_timeout > absl::Hours(1)) {
    return InvalidArgument("INVALID_OPTION",
                           absl::StrCat("HTTP request timeout must be above 0 and at most 1h, got ",
                                        absl::FormatDuration(options.request_timeout)));
  }
  if (options.io_threads < 1 || options.io_threads > 64) {
    return InvalidArgument("INVALID_OPTION", absl::StrCat("HTTP I/O threads must be 1 to 64, got ",
                                                          options.io_threads));
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
  for (int i = 0; i < options.io_threads; ++i) {
    impl->workers.push_back(std::make_unique<Worker>());
  }
  for (auto& worker : impl->workers) {
    impl->Sweep(*worker);
    worker->thread = std::thread([w = worker.get()] { w->ioc.run(); });
  }
  impl->Accept();
  impl->accept_thread = std::thread([raw = impl.get()] { raw->accept_ioc.run(); });
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

int HttpServer::port() const { return impl_->port; }

void HttpServer::Shutdown(absl::Duration wait) {
  absl::MutexLock shutdown(&impl_->shutdown_mu);
  if (impl_->stopped) return;
  impl_->stopped = true;
  {
    // Under mu: a request is either counted before this, or sees stopping.
    absl::MutexLock lock(&impl_->mu);
    impl_->stopping = true;
  }
  asio::post(impl_->accept_ioc, [impl = impl_.get()] {
    beast::error_code ignored;
    impl->acceptor.close(ignored);
    impl->accept_pause.cancel();
  });
  impl_->accept_thread.join();  // its loop ends with the acceptor
  // Answers of requests being handled are written; then I/O stops.
  {
    absl::MutexLock lock(&impl_->mu);
    auto idle = [impl = impl_.get()]()
                    ABSL_EXCLUSIVE_LOCKS_REQUIRED(impl->mu) { return impl->in_flight == 0; };
    impl_->mu.AwaitWithTimeout(absl::Condition(&idle), wait);
  }
  for (auto& worker : impl_->workers) {
    asio::post(worker->ioc, [w = worker.get()] {
      w->sweep.cancel();
      for (Session* session : w->sessions) session->CloseSocket();
      w->ioc.stop();
    });
  }
  for (auto& worker : impl_->workers) worker->thread.join();
}

HttpServer::~HttpServer() { Shutdown(); }

}  // namespace switchyard::api
