#include "server/common/ticker.h"

namespace switchyard {

Ticker::~Ticker() { Stop(); }

void Ticker::Start(absl::Duration period, std::function<void()> tick) {
  absl::MutexLock lock(&mu_);
  if (started_ || stopping_) return;
  started_ = true;
  thread_ = std::thread([this, period, tick = std::move(tick)] {
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), period)) return;
      }
      tick();
    }
  });
}

void Ticker::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

}  // namespace switchyard
