#include <curl/curl.h>
#include <sys/socket.h>

#include <deque>
#include <map>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "server/common/status.h"
#include "server/health/prober.h"
#include "server/health/url_policy.h"

namespace switchyard::health {
namespace {

struct Body {
  std::string data;
  size_t limit = 0;
  bool too_large = false;
  bool blocked = false;  // the address was not allowed
};

// CURLOPT_OPENSOCKETFUNCTION: refuses private addresses.
curl_socket_t OpenPublicSocket(void* user, curlsocktype, struct curl_sockaddr* address) {
  if (IsPrivateAddress(&address->addr)) {
    static_cast<Body*>(user)->blocked = true;
    return CURL_SOCKET_BAD;
  }
  return socket(address->family, address->socktype, address->protocol);
}

size_t Collect(char* bytes, size_t size, size_t count, void* user) {
  Body& body = *static_cast<Body*>(user);
  const size_t n = size * count;
  if (body.limit == 0) return n;  // discarded
  if (body.data.size() + n > body.limit) {
    body.too_large = true;
    return 0;  // aborts the transfer
  }
  body.data.append(bytes, n);
  return n;
}

class CurlProber final : public HttpProber {
 public:
  CurlProber(CURLM* multi, bool allow_private)
      : multi_(multi), allow_private_(allow_private), thread_([this] { Loop(); }) {}

  ~CurlProber() override {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    curl_multi_wakeup(multi_);
    thread_.join();
    for (auto& [easy, request] : running_) {
      curl_multi_remove_handle(multi_, easy);
      curl_easy_cleanup(easy);
      request.done(ProbeResult{0, absl::ZeroDuration(), "shutting down", ""});
    }
    // Queued, never started: answered too (each request exactly once).
    std::deque<Request> pending;
    {
      absl::MutexLock lock(&mu_);
      pending.swap(pending_);
    }
    for (Request& request : pending) {
      request.done(ProbeResult{0, absl::ZeroDuration(), "shutting down", ""});
    }
    curl_multi_cleanup(multi_);
  }

  void Get(const std::string& url, absl::Duration timeout, size_t max_body,
           std::function<void(ProbeResult)> done) override {
    {
      absl::MutexLock lock(&mu_);
      if (!stopping_) {
        pending_.push_back(Request{url, timeout, std::move(done), nullptr});
        pending_.back().body = std::make_unique<Body>();
        pending_.back().body->limit = max_body;
        curl_multi_wakeup(multi_);
        return;
      }
    }
    done(ProbeResult{0, absl::ZeroDuration(), "shutting down", ""});
  }

 private:
  struct Request {
    std::string url;
    absl::Duration timeout;
    std::function<void(ProbeResult)> done;
    std::unique_ptr<Body> body;  // stable address for libcurl
  };

  void Start(Request request) {
    CURL* easy = curl_easy_init();
    if (easy == nullptr) {
      request.done(ProbeResult{0, absl::ZeroDuration(), "cannot create an HTTP request", ""});
      return;
    }
    curl_easy_setopt(easy, CURLOPT_URL, request.url.c_str());
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS,
                     static_cast<long>(absl::ToInt64Milliseconds(request.timeout)));
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    // No proxy from the environment: it would resolve and reach the target
    // itself, past the address check below.
    curl_easy_setopt(easy, CURLOPT_PROXY, "");
    // A request abandoned during a name lookup that hangs does not wait for
    // the resolver thread, which would stall every other probe.
    curl_easy_setopt(easy, CURLOPT_QUICK_EXIT, 1L);
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_USERAGENT, "switchyard-health/1");
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &Collect);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, request.body.get());
    if (!allow_private_) {
      curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, &OpenPublicSocket);
      curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, request.body.get());
    }
    curl_multi_add_handle(multi_, easy);
    running_.emplace(easy, std::move(request));
  }

  void Finish(CURL* easy, CURLcode code) {
    auto it = running_.find(easy);
    if (it == running_.end()) return;
    Request request = std::move(it->second);
    running_.erase(it);
    ProbeResult result;
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    double seconds = 0;
    curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME, &seconds);
    result.latency = absl::Seconds(seconds);
    if (code == CURLE_OK) {
      result.status = static_cast<int>(status);
      result.body = std::move(request.body->data);
    } else if (request.body->too_large) {
      result.error = "body too large";
    } else if (request.body->blocked) {
      result.error = "address not allowed";
    } else {
      result.error = code == CURLE_OPERATION_TIMEDOUT ? "timed out" : curl_easy_strerror(code);
    }
    curl_multi_remove_handle(multi_, easy);
    curl_easy_cleanup(easy);
    request.done(std::move(result));
  }

  void Loop() {
    while (true) {
      std::deque<Request> starting;
      {
        absl::MutexLock lock(&mu_);
        if (stopping_) return;
        starting.swap(pending_);
      }
      for (Request& r : starting) Start(std::move(r));
      int running = 0;
      curl_multi_perform(multi_, &running);
      int left = 0;
      while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
        if (msg->msg == CURLMSG_DONE) Finish(msg->easy_handle, msg->data.result);
      }
      curl_multi_poll(multi_, nullptr, 0, 1000, nullptr);
    }
  }

  CURLM* const multi_;  // used by the loop thread (and the destructor after it)
  const bool allow_private_;
  std::map<CURL*, Request> running_;  // loop thread only
  absl::Mutex mu_;
  std::deque<Request> pending_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // last: starts after the rest exists
};

}  // namespace

absl::StatusOr<std::unique_ptr<HttpProber>> NewCurlProber(bool allow_private) {
  static const CURLcode global = curl_global_init(CURL_GLOBAL_DEFAULT);
  if (global != CURLE_OK) {
    return Error(absl::StatusCode::kInternal, "HTTP_CLIENT_UNAVAILABLE",
                 absl::StrCat("libcurl: ", curl_easy_strerror(global)));
  }
  CURLM* multi = curl_multi_init();
  if (multi == nullptr) {
    return Error(absl::StatusCode::kInternal, "HTTP_CLIENT_UNAVAILABLE", "libcurl multi init");
  }
  return std::unique_ptr<HttpProber>(new CurlProber(multi, allow_private));
}

}  // namespace switchyard::health
