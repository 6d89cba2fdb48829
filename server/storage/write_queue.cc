#include "server/storage/write_queue.h"

#include <utility>

#include "server/common/status.h"

namespace switchyard::storage {
namespace {

absl::Status ShuttingDown() {
  return Error(absl::StatusCode::kUnavailable, "SHUTTING_DOWN", "store is shutting down");
}

}  // namespace

absl::Status WriteQueue::Write(absl::FunctionRef<absl::Status(Transaction&)> fn) {
  Task task(fn);
  absl::MutexLock lock(&mu_);
  if (stopping_) return ShuttingDown();
  queue_.Push("", &task);
  mu_.Await(absl::Condition(&task.finished));
  return task.result;
}

void WriteQueue::WriteAsync(std::function<absl::Status(Transaction&)> fn,
                            std::function<void(absl::Status)> done, absl::string_view key) {
  auto owned = std::make_unique<std::function<absl::Status(Transaction&)>>(std::move(fn));
  auto* task = new Task(*owned);
  task->owned = std::move(owned);
  task->done = std::move(done);
  task->key = std::string(key);
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      queue_.Push(key, task);
      return;
    }
  }
  task->done(ShuttingDown());
  delete task;
}

std::vector<WriteQueue::Task*> WriteQueue::Take(size_t max, bool hold) {
  std::vector<Task*> batch;
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](WriteQueue* q) ABSL_EXCLUSIVE_LOCKS_REQUIRED(q->mu_) {
        return q->queue_.ready() || (q->stopping_ && q->queue_.empty());
      },
      this));
  while (queue_.ready() && batch.size() < max) {
    batch.push_back(hold ? queue_.PopHolding().second : queue_.Pop());
  }
  return batch;
}

void WriteQueue::Finish(const std::vector<Task*>& batch, bool hold) {
  std::vector<Task*> async;
  {
    absl::MutexLock lock(&mu_);
    for (Task* task : batch) {
      if (hold) queue_.Resume(task->key);
      if (task->done) {
        async.push_back(task);
      } else {
        task->finished = true;  // the waiting caller owns it
      }
    }
  }
  for (Task* task : async) {
    task->done(task->result);
    delete task;
  }
}

void WriteQueue::Stop() {
  absl::MutexLock lock(&mu_);
  stopping_ = true;
}

}  // namespace switchyard::storage
