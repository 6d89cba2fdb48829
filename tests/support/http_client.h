#ifndef SWITCHYARD_TESTS_SUPPORT_HTTP_CLIENT_H_
#define SWITCHYARD_TESTS_SUPPORT_HTTP_CLIENT_H_

// A blocking keep-alive HTTP/1.1 client connection on loopback, for tests and
// benchmarks of the webhook listener. Not thread-safe: one per thread.

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace switchyard::testing {

struct HttpReply {
  int status = 0;  // 0: the connection failed
  std::string body;
  std::map<std::string, std::string> headers;
};

class HttpConnection {
 public:
  // Connects to 127.0.0.1:`port`; a failed connect shows in the first Send.
  explicit HttpConnection(int port);
  ~HttpConnection();

  // Sends a request and waits for its answer. A name given twice in
  // `headers` is sent as two header lines.
  HttpReply Send(const std::string& method, const std::string& target,
                 const std::vector<std::pair<std::string, std::string>>& headers,
                 const std::string& body);
  // Writes raw bytes (for malformed or incomplete requests).
  void SendRaw(const std::string& bytes);
  // Ends the sending side (a FIN); answers can still be read.
  void CloseSend();
  // Reads one answer; `head`: the answer to a HEAD request, which announces
  // a length but has no body. Status 0 when the connection is closed.
  HttpReply Read(bool head = false);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace switchyard::testing

#endif  // SWITCHYARD_TESTS_SUPPORT_HTTP_CLIENT_H_
