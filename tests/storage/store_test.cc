#include "server/storage/store.h"

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
#include "tests/support/test_store.h"

namespace switchyard::storage {
namespace {

// The behaviour every store shares; runs on SQLite and on PostgreSQL.
class StoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<Store> Open() {
    auto store = testing::OpenTestStore(dir_.path());
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }

  static PoolRow Pool(const std::string& id, int64_t capacity) {
    PoolRow row;
    row.id = id;
    row.capacity = capacity;
    return row;
  }

  testing::TempDir dir_;
};

TEST_F(StoreTest, CommittedWritesSurviveReopening) {
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

TEST_F(StoreTest, AFailingTransactionLeavesNoTrace) {
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

TEST_F(StoreTest, DuplicateKeyIsAlreadyExists) {
  auto store = Open();
  ASSERT_TRUE(store->Write([](Transaction& tx) { return tx.InsertPool(Pool("p", 1)); }).ok());
  absl::Status again = store->Write([](Transaction& tx) { return tx.InsertPool(Pool("p", 1)); });
  EXPECT_EQ(again.code(), absl::StatusCode::kAlreadyExists);
}

TEST_F(StoreTest, BalanceConstraintStopsAnOverdraftEvenIfDomainCodeErred) {
  auto store = Open();
  PoolRow row = Pool("p", 5);
  ASSERT_TRUE(store->Write([&](Transaction& tx) { return tx.InsertPool(row); }).ok());
  row.consumed = 6;
  absl::Status status = store->Write([&](Transaction& tx) { return tx.UpdatePool(row); });
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(ReasonOf(status), "STORE_INVARIANT_VIOLATED");
}

TEST_F(StoreTest, ConcurrentWritersFailuresStayIsolated) {
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
}

TEST_F(StoreTest, ReadTransactionsRejectWrites) {
  auto store = Open();
  absl::Status status = store->Read([](Transaction& tx) { return tx.InsertPool(Pool("p", 1)); });
  EXPECT_FALSE(status.ok());
}

TEST_F(StoreTest, ConnectionMetadataRoundTrips) {
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

class RecordingListener final : public CommitListener {
 public:
  void EventsCommitted(const std::vector<EventNotice>& notices) override {
    absl::MutexLock lock(&mu);
    for (const auto& n : notices) seen.push_back(n);
  }
  absl::Mutex mu;
  std::vector<EventNotice> seen ABSL_GUARDED_BY(mu);
};

EventRow Event(const std::string& connection, int64_t sequence, absl::Time received) {
  EventRow row;
  row.tenant_id = "t";
  row.connection_id = connection;
  row.sequence = sequence;
  row.event_id = absl::StrCat(connection, "-", sequence);
  row.receive_time = received;
  row.body = "{}";
  return row;
}

TEST_F(StoreTest, CommittedEventsAreAnnouncedOncePerConnectionAndRolledBackOnesNot) {
  auto store = Open();
  RecordingListener listener;
  store->SetCommitListener(&listener);
  const absl::Time t = absl::FromUnixSeconds(1800000000);
  ASSERT_TRUE(store
                  ->Write([&](Transaction& tx) -> absl::Status {
                    for (int64_t s = 1; s <= 3; ++s)
                      SY_RETURN_IF_ERROR(tx.InsertEvent(Event("a", s, t)));
                    return tx.InsertEvent(Event("b", 1, t));
                  })
                  .ok());
  EXPECT_FALSE(store
                   ->Write([&](Transaction& tx) -> absl::Status {
                     SY_RETURN_IF_ERROR(tx.InsertEvent(Event("c", 1, t)));
                     return absl::AbortedError("changed my mind");
                   })
                   .ok());
  store->SetCommitListener(nullptr);
  absl::MutexLock lock(&listener.mu);
  ASSERT_EQ(listener.seen.size(), 2u);
  EXPECT_EQ(listener.seen[0].connection_id, "a");
  EXPECT_EQ(listener.seen[0].sequence, 3);
  EXPECT_EQ(listener.seen[1].connection_id, "b");
}

TEST_F(StoreTest, RetentionSweepKeepsEachConnectionsNewestEventAndPositionsGrow) {
  auto store = Open();
  const absl::Time t0 = absl::FromUnixSeconds(1800000000);
  ASSERT_TRUE(store
                  ->Write([&](Transaction& tx) -> absl::Status {
                    for (int64_t s = 1; s <= 3; ++s) {
                      SY_RETURN_IF_ERROR(tx.InsertEvent(Event("a", s, t0 + absl::Seconds(s))));
                    }
                    SY_RETURN_IF_ERROR(tx.InsertEvent(Event("b", 1, t0)));
                    return tx.InsertEvent(Event("a", 4, t0 + absl::Hours(2)));
                  })
                  .ok());
  EventSweep sweep;
  int64_t last_position = 0;
  ASSERT_TRUE(store
                  ->Write([&](Transaction& tx) -> absl::Status {
                    SY_ASSIGN_OR_RETURN(sweep, tx.SweepEvents(t0 + absl::Hours(1), 0, 100));
                    SY_ASSIGN_OR_RETURN(last_position, tx.LastEventPosition());
                    return absl::OkStatus();
                  })
                  .ok());
  EXPECT_EQ(sweep.deleted, 3);  // a1..a3; b1 is b's newest and stays
  EXPECT_TRUE(sweep.done);      // stopped at a4, received after the cutoff
  ASSERT_TRUE(store
                  ->Write([&](Transaction& tx) -> absl::Status {
                    // Sequences continue; positions never go back.
                    SY_ASSIGN_OR_RETURN(int64_t a, tx.LastEventSequence("t", "a"));
                    SY_ASSIGN_OR_RETURN(int64_t b, tx.LastEventSequence("t", "b"));
                    EXPECT_EQ(a, 4);
                    EXPECT_EQ(b, 1);
                    SY_RETURN_IF_ERROR(tx.InsertEvent(Event("a", 5, t0 + absl::Hours(3))));
                    SY_ASSIGN_OR_RETURN(std::optional<EventRow> a5, tx.GetEvent("t", "a", 5));
                    EXPECT_GT(a5->position, last_position);
                    SY_ASSIGN_OR_RETURN(int64_t first, tx.FirstEventSequenceAfter("t", "a", 0));
                    EXPECT_EQ(first, 4);
                    SY_ASSIGN_OR_RETURN(int64_t at, tx.FirstEventPositionAt(t0 + absl::Hours(3)));
                    EXPECT_EQ(at, a5->position);
                    return absl::OkStatus();
                  })
                  .ok());
}

}  // namespace
}  // namespace switchyard::storage
