#ifndef SWITCHYARD_SERVER_STORAGE_WRITE_QUEUE_H_
#define SWITCHYARD_SERVER_STORAGE_WRITE_QUEUE_H_

// The writes waiting for a store's writer threads, shared by the stores:
// synchronous ones (the caller waits for the result) and asynchronous ones
// (answered through a callback), handed out in fair order (FairQueue).
// Thread-safe.

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "server/storage/fair_queue.h"
#include "server/storage/store.h"

namespace switchyard::storage {

class WriteQueue {
 public:
  // One write. A writer runs `fn` and sets `result`; the queue answers it.
  struct Task {
    explicit Task(absl::FunctionRef<absl::Status(Transaction&)> f) : fn(f) {}
    absl::FunctionRef<absl::Status(Transaction&)> fn;
    absl::Status result;
    std::string key;        // fairness key; "" for synchronous writes
    bool finished = false;  // a synchronous write's caller waits for it
    // An asynchronous write owns its function (which `fn` refers to) and is
    // answered through `done`; Finish deletes it.
    std::unique_ptr<std::function<absl::Status(Transaction&)>> owned;
    std::function<void(absl::Status)> done;
  };

  // Queues `fn` under the key "" and waits until a writer finished it;
  // returns its result. kUnavailable (SHUTTING_DOWN) once stopped.
  absl::Status Write(absl::FunctionRef<absl::Status(Transaction&)> fn) ABSL_LOCKS_EXCLUDED(mu_);
  // Queues `fn` under `key`; `done` gets its result from the writer thread
  // that ran it, or at once kUnavailable (SHUTTING_DOWN) once stopped.
  void WriteAsync(std::function<absl::Status(Transaction&)> fn,
                  std::function<void(absl::Status)> done, absl::string_view key)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Waits for writes and takes up to `max`, keys taking turns. With `hold`, a
  // key taken is handed out to no other writer until Finish (for several
  // writer threads); without, a batch may hold several writes of one key, in
  // order. Returns an empty batch once stopped and drained.
  std::vector<Task*> Take(size_t max, bool hold) ABSL_LOCKS_EXCLUDED(mu_);
  // Answers every task of `batch` (taken by Take; results set) and releases
  // the keys it held. Calls the asynchronous callbacks on this thread.
  void Finish(const std::vector<Task*>& batch, bool hold) ABSL_LOCKS_EXCLUDED(mu_);

  // New writes fail from now on; Take still hands out those waiting.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  absl::Mutex mu_;
  FairQueue<Task*> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace switchyard::storage

#endif  // SWITCHYARD_SERVER_STORAGE_WRITE_QUEUE_H_
