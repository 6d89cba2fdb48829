#ifndef SWITCHYARD_SERVER_COMMON_TICKER_H_
#define SWITCHYARD_SERVER_COMMON_TICKER_H_

// Runs a function every period of wall time on its own thread.

#include <functional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace switchyard {

// Thread-safe.
class Ticker {
 public:
  Ticker() = default;
  Ticker(const Ticker&) = delete;
  Ticker& operator=(const Ticker&) = delete;
  // Stops.
  ~Ticker();

  // Starts calling `tick` every `period` (after each call's end) on a thread
  // of its own. Later calls, and calls after Stop, do nothing.
  void Start(absl::Duration period, std::function<void()> tick) ABSL_LOCKS_EXCLUDED(mu_);
  // Stops the thread; a call in progress finishes first. Idempotent.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace switchyard

#endif  // SWITCHYARD_SERVER_COMMON_TICKER_H_
