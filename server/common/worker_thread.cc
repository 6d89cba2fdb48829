#include "server/common/worker_thread.h"

#include <utility>

namespace switchyard {

WorkerThread::WorkerThread(size_t max_queued)
    : max_queued_(max_queued), thread_([this] { Run(); }) {}

WorkerThread::~WorkerThread() { Stop(); }

bool WorkerThread::Post(std::function<void()> task) {
  absl::MutexLock lock(&mu_);
  if (stopping_ || queue_.size() >= max_queued_) return false;
  queue_.push_back(std::move(task));
  return true;
}

void WorkerThread::Stop() {
  absl::MutexLock stop(&stop_mu_);  // a second caller waits for the first
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void WorkerThread::Run() {
  while (true) {
    std::function<void()> task;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]()
                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !queue_.empty() || stopping_; };
      mu_.Await(absl::Condition(&ready));
      if (queue_.empty()) return;  // stopping, and nothing left
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    task();
  }
}

}  // namespace switchyard
