#ifndef SWITCHYARD_SERVER_COMMON_CLOCK_H_
#define SWITCHYARD_SERVER_COMMON_CLOCK_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace switchyard {

// The source of time for all domain code. Implementations are thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
  // A reading of a clock that never goes back (unlike Now, which follows
  // the wall clock when it is set), from an arbitrary origin: only the
  // difference of two readings means something. For measuring durations.
  virtual absl::Duration Steady() const = 0;
};

// The wall clock. Thread-safe; the returned reference lives forever.
Clock& SystemClock();

// A clock that moves only when told to. Thread-safe.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(absl::Time start) : now_(start) {}
  absl::Time Now() const override ABSL_LOCKS_EXCLUDED(mu_);
  // Moves with Advance, like Now.
  absl::Duration Steady() const override ABSL_LOCKS_EXCLUDED(mu_);
  void Advance(absl::Duration d) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

}  // namespace switchyard

#endif  // SWITCHYARD_SERVER_COMMON_CLOCK_H_
