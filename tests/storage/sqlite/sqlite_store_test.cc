#include "server/storage/sqlite/sqlite_store.h"

#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/barrier.h"
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

TEST_F(SqliteStoreTest, CommittedWritesSurviveReopening) {
  {
    auto store = Open();
    ASSERT_TRUE(store->Write([](Transaction& tx) { return tx.InsertPool(Pool("p", 7)); }).ok());
  }
  auto store = Open();
  std::optional<PoolRow> row;
  ASSERT_TRUE(store
                  ->Read([&](Transaction& tx) -> absl::Status {
                    auto r = tx.GetPool("p");
                    if (!r.ok()) return r.status();
                    row = *r;
                    return absl::OkStatus();
                  })
                  .ok());
  ASSERT_TRUE(row.has_value());
  EXPECT_EQ(row->capacity, 7);
}

TEST_F(SqliteStoreTest, AFailingTransactionLeavesNoTrace) {
  auto store = Open();
  absl::Status status = store->Write([](Transaction& tx) -> absl::Status {
    absl::Status inserted = tx.InsertPool(Pool("p", 1));
    if (!inserted.ok()) return inserted;
    return absl::FailedPreconditionError("changed my mind");
  });
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(store
                  ->Read([](Transaction& tx) -> absl::Status {
                    auto r = tx.GetPool("p");
                    EXPECT_TRUE(r.ok());
                    EXPECT_FALSE(r->has_value());
                    return absl::OkStatus();
                  })
                  .ok());
}

TEST_F(SqliteStoreTest, DuplicateKeyIsAlreadyExists) {
  auto store = Open();
  ASSERT_TRUE(store->Write([](Transaction& tx) { return tx.InsertPool(Pool("p", 1)); }).ok());
  absl::Status again = store->Write([](Transaction& tx) { return tx.InsertPool(Pool("p", 1)); });
  EXPECT_EQ(again.code(), absl::StatusCode::kAlreadyExists);
}

TEST_F(SqliteStoreTest, BalanceConstraintStopsAnOverdraftEvenIfDomainCodeErred) {
  auto store = Open();
  PoolRow row = Pool("p", 5);
  ASSERT_TRUE(store->Write([&](Transaction& tx) { return tx.InsertPool(row); }).ok());
  row.consumed = 6;
  absl::Status status = store->Write([&](Transaction& tx) { return tx.UpdatePool(row); });
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(ReasonOf(status), "STORE_INVARIANT_VIOLATED");
}

TEST_F(SqliteStoreTest, ConcurrentWritersAreGroupedAndFailuresStayIsolated) {
  auto store = Open();
  constexpr int kWriters = 32;
  absl::Barrier* barrier = new absl::Barrier(kWriters);
  std::vector<std::thread> threads;
  std::vector<absl::Status> results(kWriters);
  for (int i = 0; i < kWriters; ++i) {
    threads.emplace_back([&, i] {
      if (barrier->Block()) delete barrier;
      results[i] = store->Write([&](Transaction& tx) -> absl::Status {
        absl::Status s = tx.InsertPool(Pool(absl::StrCat("p", i), i));
        if (!s.ok()) return s;
        // Every third writer fails after writing: its row must not persist
        // while the rows of the others in the same batch do.
        return i % 3 == 0 ? absl::AbortedError("fail") : absl::OkStatus();
      });
    });
  }
  for (auto& t : threads) t.join();
  int persisted = 0;
  ASSERT_TRUE(store
                  ->Read([&](Transaction& tx) -> absl::Status {
                    auto rows = tx.ListPools("", 1000);
                    if (!rows.ok()) return rows.status();
                    persisted = static_cast<int>(rows->size());
                    for (const PoolRow& row : *rows) {
                      EXPECT_NE(row.capacity % 3, 0) << row.id;
                    }
                    return absl::OkStatus();
                  })
                  .ok());
  for (int i = 0; i < kWriters; ++i) {
    EXPECT_EQ(results[i].ok(), i % 3 != 0) << i;
  }
  EXPECT_EQ(persisted, kWriters - (kWriters + 2) / 3);
  EXPECT_LE(store->CommitCountForTest(), kWriters + 1);
}

TEST_F(SqliteStoreTest, ReadTransactionsRejectWrites) {
  auto store = Open();
  absl::Status status = store->Read([](Transaction& tx) { return tx.InsertPool(Pool("p", 1)); });
  EXPECT_FALSE(status.ok());
}

TEST_F(SqliteStoreTest, ConnectionMetadataRoundTrips) {
  auto store = Open();
  ConnectionRow row;
  row.tenant_id = "t";
  row.id = "c";
  row.metadata = {{"region", "eu"}, {"plant", "7"}};
  ASSERT_TRUE(store->Write([&](Transaction& tx) { return tx.InsertConnection(row); }).ok());
  row.metadata = {{"region", "us"}};
  ASSERT_TRUE(store->Write([&](Transaction& tx) { return tx.UpdateConnection(row); }).ok());
  ASSERT_TRUE(store
                  ->Read([&](Transaction& tx) -> absl::Status {
                    auto got = tx.GetConnection("t", "c");
                    EXPECT_TRUE(got.ok() && got->has_value());
                    EXPECT_EQ((*got)->metadata, row.metadata);
                    return absl::OkStatus();
                  })
                  .ok());
}

}  // namespace
}  // namespace switchyard::storage
