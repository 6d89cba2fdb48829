#ifndef SWITCHYARD_TESTS_SUPPORT_STORE_DECORATORS_H_
#define SWITCHYARD_TESTS_SUPPORT_STORE_DECORATORS_H_

// Store decorators for tests. Each borrows the store it wraps and is
// thread-safe as that store is.

#include <atomic>
#include <functional>
#include <utility>

#include "absl/status/status.h"
#include "server/storage/store.h"

namespace switchyard::testing {

// Passes every call to the store it wraps; subclasses change some.
class ForwardingStore : public storage::Store {
 public:
  explicit ForwardingStore(storage::Store& inner) : inner_(inner) {}

  void SetCommitListener(storage::CommitListener* listener) override {
    inner_.SetCommitListener(listener);
  }
  void SetChangeListener(storage::ChangeListener* listener) override {
    inner_.SetChangeListener(listener);
  }
  bool Shared() const override { return inner_.Shared(); }
  absl::Status Write(absl::FunctionRef<absl::Status(storage::Transaction&)> fn) override {
    return inner_.Write(fn);
  }
  void WriteAsync(std::function<absl::Status(storage::Transaction&)> fn,
                  std::function<void(absl::Status)> done, absl::string_view fairness_key) override {
    inner_.WriteAsync(std::move(fn), std::move(done), fairness_key);
  }
  absl::Status Read(absl::FunctionRef<absl::Status(storage::Transaction&)> fn) override {
    return inner_.Read(fn);
  }

 protected:
  storage::Store& inner_;
};

// Runs the function of every synchronous Write twice: first in a
// transaction it rolls back, then for real, as PostgreSQL does when a
// transaction loses a conflict. Domain code that keeps results of a run that
// did not commit (Store::Write says every run must set them anew) shows up on
// any backend.
class RehearsingStore final : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;

  absl::Status Write(absl::FunctionRef<absl::Status(storage::Transaction&)> fn) override {
    inner_
        .Write([&](storage::Transaction& tx) -> absl::Status {
          fn(tx).IgnoreError();
          return absl::AbortedError("rehearsal: rolled back");
        })
        .IgnoreError();
    return inner_.Write(fn);
  }
};

// Counts the read transactions.
class ReadCountingStore final : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;

  absl::Status Read(absl::FunctionRef<absl::Status(storage::Transaction&)> fn) override {
    ++reads;
    return inner_.Read(fn);
  }
  std::atomic<int> reads{0};
};

}  // namespace switchyard::testing

#endif  // SWITCHYARD_TESTS_SUPPORT_STORE_DECORATORS_H_
