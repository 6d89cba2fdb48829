#include "server/common/worker_thread.h"

#include <gtest/gtest.h>

#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"

namespace switchyard {
namespace {

TEST(WorkerThreadTest, RunsTasksInOrder) {
  absl::Mutex mu;
  std::vector<int> ran;
  {
    WorkerThread worker(100);
    for (int i = 0; i < 50; ++i) {
      ASSERT_TRUE(worker.Post([&, i] {
        absl::MutexLock lock(&mu);
        ran.push_back(i);
      }));
    }
  }  // the destructor runs what is queued
  ASSERT_EQ(ran.size(), 50u);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(ran[static_cast<size_t>(i)], i);
}

TEST(WorkerThreadTest, RefusesTasksBeyondItsQueueAndAfterStop) {
  WorkerThread worker(2);
  absl::Notification running, release;
  ASSERT_TRUE(worker.Post([&] {
    running.Notify();
    release.WaitForNotification();
  }));
  running.WaitForNotification();  // the first task left the queue
  int ran = 0;
  EXPECT_TRUE(worker.Post([&] { ++ran; }));
  EXPECT_TRUE(worker.Post([&] { ++ran; }));
  EXPECT_FALSE(worker.Post([&] { ++ran; }));  // two are waiting
  release.Notify();
  worker.Stop();
  EXPECT_EQ(ran, 2);
  EXPECT_FALSE(worker.Post([&] { ++ran; }));
  EXPECT_EQ(ran, 2);
}

}  // namespace
}  // namespace switchyard
