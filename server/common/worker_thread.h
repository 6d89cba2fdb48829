#ifndef SWITCHYARD_SERVER_COMMON_WORKER_THREAD_H_
#define SWITCHYARD_SERVER_COMMON_WORKER_THREAD_H_

// One thread that runs posted tasks in order: for work that may wait (a
// store read) and must not run on an event loop.

#include <cstddef>
#include <deque>
#include <functional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace switchyard {

// Thread-safe.
class WorkerThread {
 public:
  // At most `max_queued` tasks wait (besides the one running).
  explicit WorkerThread(size_t max_queued);
  WorkerThread(const WorkerThread&) = delete;
  WorkerThread& operator=(const WorkerThread&) = delete;
  // Stops.
  ~WorkerThread();

  // Queues `task`. false, and `task` is dropped unrun, when `max_queued`
  // tasks are waiting or the worker is stopped: the caller answers "busy".
  bool Post(std::function<void()> task) ABSL_LOCKS_EXCLUDED(mu_);

  // Runs the tasks already queued, then ends the thread; later posts fail.
  // Idempotent; a concurrent caller returns once the thread has ended. Not
  // from a task.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_, stop_mu_);

 private:
  void Run() ABSL_LOCKS_EXCLUDED(mu_);

  const size_t max_queued_;
  absl::Mutex stop_mu_;  // held by Stop
  absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // last: starts once the above exist
};

}  // namespace switchyard

#endif  // SWITCHYARD_SERVER_COMMON_WORKER_THREAD_H_
