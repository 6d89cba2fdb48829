#include "server/storage/sqlite/sqlite_store.h"

#include <algorithm>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/barrier.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "server/common/status.h"
#include "tests/support/temp_dir.h"

namespace switchyard::storage {
namespace {

class SqliteStoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<SqliteStore> Open() {
    SqliteStoreOptions options;
    options.path = dir_.path() + "/store.db";
    auto store = SqliteStore::Open(options);
    EXPECT_TRUE(store.ok()) << store.status();
    return *std::move(store);
  }

  static PoolRow Pool(const std::string& id, int64_t capacity) {
    PoolRow row;
    row.id = id;
    row.capacity = capacity;
    return row;
  }

  testing::TempDir dir_;
};

TEST_F(SqliteStoreTest, ConcurrentWritersShareCommits) {
  auto store = Open();
  constexpr int kWriters = 32;
  absl::Barrier* barrier = new absl::Barrier(kWriters);
  std::vector<std::thread> threads;
  for (int i = 0; i < kWriters; ++i) {
    threads.emplace_back([&, i] {
      if (barrier->Block()) delete barrier;
      EXPECT_TRUE(
          store
              ->Write([&](Transaction& tx) { return tx.InsertPool(Pool(absl::StrCat("p", i), i)); })
              .ok());
    });
  }
  for (auto& t : threads) t.join();
  // Group commit: some of the 32 writers shared a commit.
  EXPECT_LT(store->CommitCountForTest(), kWriters);
}

TEST_F(SqliteStoreTest, BusyKeysTakeTurnsWithQuietOnesInTheCommitPath) {
  SqliteStoreOptions options;
  options.path = dir_.path() + "/store.db";
  options.max_batch = 8;
  auto store = *SqliteStore::Open(options);
  absl::Notification started, release;
  std::vector<std::string> order;  // written by the writer thread only
  absl::BlockingCounter finished(202);
  auto task = [&](std::string key) {
    return [&, key](Transaction&) {
      order.push_back(key);
      return absl::OkStatus();
    };
  };
  // Hold the writer so that everything below queues up behind it.
  store->WriteAsync(
      [&](Transaction&) {
        started.Notify();
        release.WaitForNotification();
        return absl::OkStatus();
      },
      [&](absl::Status) { finished.DecrementCount(); }, "hold");
  started.WaitForNotification();
  for (int i = 0; i < 200; ++i) {
    store->WriteAsync(
        task("noisy"), [&](absl::Status) { finished.DecrementCount(); }, "noisy");
  }
  store->WriteAsync(
      task("quiet"), [&](absl::Status) { finished.DecrementCount(); }, "quiet");
  release.Notify();
  finished.Wait();
  // The quiet key's one write went into the first commit after the hold,
  // not behind the 200 noisy ones.
  auto quiet = std::find(order.begin(), order.end(), "quiet");
  ASSERT_NE(quiet, order.end());
  EXPECT_LT(quiet - order.begin(), options.max_batch);
  EXPECT_EQ(order.size(), 201u);
}

}  // namespace
}  // namespace switchyard::storage
