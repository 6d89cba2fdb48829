// clang-format off
#include "server/api/http/beast.h"
// clang-format on

#include "tests/support/http_client.h"

namespace switchyard::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

struct HttpConnection::Impl {
  asio::io_context ioc;
  tcp::socket socket{ioc};
  beast::flat_buffer buffer;
};

HttpConnection::HttpConnection(int port) : impl_(std::make_unique<Impl>()) {
  beast::error_code ec;
  impl_->socket.connect(
      tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)), ec);
}

HttpConnection::~HttpConnection() = default;

HttpReply HttpConnection::Send(const std::string& method, const std::string& target,
                               const std::vector<std::pair<std::string, std::string>>& headers,
                               const std::string& body) {
  http::request<http::string_body> req(http::string_to_verb(method), target, 11);
  if (req.method() == http::verb::unknown) req.method_string(method);
  req.set(http::field::host, "127.0.0.1");
  for (const auto& [k, v] : headers) req.insert(k, v);  // repeated names stay repeated
  req.body() = body;
  req.prepare_payload();
  beast::error_code ec;
  http::write(impl_->socket, req, ec);
  if (ec) return {};
  return Read();
}

void HttpConnection::CloseSend() {
  beast::error_code ec;
  impl_->socket.shutdown(tcp::socket::shutdown_send, ec);
}

void HttpConnection::SendRaw(const std::string& bytes) {
  beast::error_code ec;
  asio::write(impl_->socket, asio::buffer(bytes), ec);
}

HttpReply HttpConnection::Read(bool head) {
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 << 20);
  parser.skip(head);
  beast::error_code ec;
  http::read(impl_->socket, impl_->buffer, parser, ec);
  if (ec) return {};
  const http::response<http::string_body>& res = parser.get();
  HttpReply reply{static_cast<int>(res.result_int()), res.body(), {}};
  for (const auto& field : res) {
    reply.headers[std::string(field.name_string())] = std::string(field.value());
  }
  return reply;
}

}  // namespace switchyard::testing
