#ifndef SWITCHYARD_TESTS_SUPPORT_EVENT_CONSUMER_H_
#define SWITCHYARD_TESTS_SUPPORT_EVENT_CONSUMER_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "client/gateway_client.h"

namespace switchyard::testing {

// Reads a subscription on its own thread, acknowledging everything, and
// records each delivery; Stop ends the stream.
class Consumer {
 public:
  Consumer(client::GatewayClient& client, const std::string& subscription) {
    stream_ = client.StreamEvents(subscription);
    thread_ = std::thread([this] { Run(); });
  }
  ~Consumer() { Stop().IgnoreError(); }

  struct Delivery {
    std::string connection;
    int64_t sequence;
    std::string event_id;
    int attempt;
  };

  // Waits until `done` holds for the deliveries, or `timeout`; false on timeout.
  bool WaitFor(std::function<bool(const std::vector<Delivery>&)> done, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return ended_ || done(deliveries_); };
    mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
    return done(deliveries_);
  }
  std::vector<Delivery> Deliveries() {
    absl::MutexLock lock(&mu_);
    return deliveries_;
  }
  // Ends the stream; returns how it ended.
  absl::Status Stop() {
    if (thread_.joinable()) {
      stream_->Cancel();
      thread_.join();
    }
    return status_;
  }
  // Waits for the server to end the stream.
  absl::Status Join() {
    if (thread_.joinable()) thread_.join();
    return status_;
  }

 private:
  void Run();

  std::unique_ptr<client::EventStream> stream_;
  absl::Mutex mu_;
  std::vector<Delivery> deliveries_ ABSL_GUARDED_BY(mu_);
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status status_;
  std::thread thread_;
};

}  // namespace switchyard::testing

#endif  // SWITCHYARD_TESTS_SUPPORT_EVENT_CONSUMER_H_
