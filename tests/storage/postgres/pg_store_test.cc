#include "server/storage/postgres/pg_store.h"

#include <libpq-fe.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/status.h"
#include "tests/support/postgres_server.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_store.h"

namespace switchyard::storage {
namespace {

using ::testing::ElementsAre;

// What only the PostgreSQL store does: several replicas on one database,
// conflicts, notifications between replicas, database restarts. Runs against
// the shared test server (a schema per test) or a private cluster.
class PgStoreTest : public ::testing::Test {
 protected:
  PgStoreOptions Options() {
    auto url = testing::TestPostgresUrl(dir_.path());
    EXPECT_TRUE(url.ok()) << url.status();
    PgStoreOptions options;
    options.url = url.ok() ? *url : "";
    options.password = testing::ReadTrimmedFile(testing::TestPostgresDir() + "/password");
    options.pool_size = 4;
    return options;
  }

  // A replica: another store on the same schema.
  std::unique_ptr<PgStore> Replica() {
    auto store = PgStore::Open(Options());
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }

  static PoolRow Pool(const std::string& id, int64_t capacity) {
    PoolRow row;
    row.id = id;
    row.capacity = capacity;
    return row;
  }

  static absl::StatusOr<int64_t> Capacity(Store& store, const std::string& id) {
    int64_t capacity = -1;
    SY_RETURN_IF_ERROR(store.Read([&](Transaction& tx) -> absl::Status {
      SY_ASSIGN_OR_RETURN(std::optional<PoolRow> row, tx.GetPool(id));
      if (row.has_value()) capacity = row->capacity;
      return absl::OkStatus();
    }));
    return capacity;
  }

  testing::TempDir dir_;
};

TEST_F(PgStoreTest, ReplicasUpdatingOneRowNeverLoseAnUpdate) {
  auto a = Replica();
  auto b = Replica();
  ASSERT_TRUE(a->Write([](Transaction& tx) { return tx.InsertPool(Pool("p", 0)); }).ok());
  constexpr int kThreadsPerReplica = 4;
  constexpr int kIncrements = 40;
  std::vector<std::thread> threads;
  for (PgStore* store : {a.get(), b.get()}) {
    for (int t = 0; t < kThreadsPerReplica; ++t) {
      threads.emplace_back([store, t] {
        for (int i = 0; i < kIncrements; ++i) {
          // Read, then write back: the pattern of every balance update. Each
          // thread writes under its own key, so that no lock of the store
          // keeps the transactions apart and they collide in the database.
          absl::Notification done;
          absl::Status result;
          store->WriteAsync(
              [](Transaction& tx) -> absl::Status {
                SY_ASSIGN_OR_RETURN(std::optional<PoolRow> row, tx.GetPool("p"));
                if (!row.has_value()) return absl::NotFoundError("pool p is missing");
                row->capacity += 1;
                return tx.UpdatePool(*row);
              },
              [&](absl::Status s) {
                result = s;
                done.Notify();
              },
              absl::StrCat("thread-", t));
          done.WaitForNotification();
          EXPECT_TRUE(result.ok()) << result;
        }
      });
    }
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(*Capacity(*a, "p"), 2 * kThreadsPerReplica * kIncrements);
}

TEST_F(PgStoreTest, AWriteThatLosesAConflictRunsAgainOnWhatTheOtherCommitted) {
  auto a = Replica();
  auto b = Replica();
  ASSERT_TRUE(a->Write([](Transaction& tx) { return tx.InsertPool(Pool("p", 0)); }).ok());
  auto increment = [](Transaction& tx) -> absl::Status {
    SY_ASSIGN_OR_RETURN(std::optional<PoolRow> row, tx.GetPool("p"));
    if (!row.has_value()) return absl::NotFoundError("pool p is missing");
    row->capacity += 1;
    return tx.UpdatePool(*row);
  };
  // A reads the row, then waits while B updates and commits it; A's update
  // then conflicts, and A runs again and sees B's.
  absl::Notification a_read, b_committed, a_done;
  std::atomic<int> a_runs{0};
  absl::Status a_status;
  a->WriteAsync(
      [&](Transaction& tx) -> absl::Status {
        SY_ASSIGN_OR_RETURN(std::optional<PoolRow> row, tx.GetPool("p"));
        if (a_runs.fetch_add(1) == 0) {
          a_read.Notify();
          b_committed.WaitForNotification();
        }
        if (!row.has_value()) return absl::NotFoundError("pool p is missing");
        row->capacity += 1;
        return tx.UpdatePool(*row);
      },
      [&](absl::Status s) {
        a_status = s;
        a_done.Notify();
      },
      "replica-a");
  a_read.WaitForNotification();
  ASSERT_TRUE(b->Write(increment).ok());
  b_committed.Notify();
  a_done.WaitForNotification();
  EXPECT_TRUE(a_status.ok()) << a_status;
  EXPECT_EQ(a_runs.load(), 2);
  EXPECT_EQ(a->ConflictRetries(), 1);
  EXPECT_EQ(*Capacity(*a, "p"), 2);
}

class Listener final : public CommitListener {
 public:
  void EventsCommitted(const std::vector<EventNotice>& notices) override {
    absl::MutexLock lock(&mu);
    for (const auto& n : notices) seen.push_back(absl::StrCat(n.connection_id, "@", n.sequence));
  }
  // Waits until `count` notices arrived (at most 30 s); returns them.
  std::vector<std::string> WaitFor(size_t count) {
    absl::MutexLock lock(&mu);
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return seen.size() >= count; };
    mu.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(30));
    return seen;
  }
  absl::Mutex mu;
  std::vector<std::string> seen ABSL_GUARDED_BY(mu);
};

// Records the topics of the changes announced to it.
class Changes final : public ChangeListener {
 public:
  void ChangesAnnounced(const std::vector<ChangeNotice>& changes) override {
    absl::MutexLock lock(&mu);
    for (const auto& c : changes) topics.push_back(c.topic);
  }
  // Waits until a change of `topic` arrived (at most 30 s); whether it did.
  bool WaitFor(absl::string_view topic) {
    absl::MutexLock lock(&mu);
    auto seen = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      return std::find(topics.begin(), topics.end(), topic) != topics.end();
    };
    mu.AwaitWithTimeout(absl::Condition(&seen), absl::Seconds(30));
    return seen();
  }
  absl::Mutex mu;
  std::vector<std::string> topics ABSL_GUARDED_BY(mu);
};

EventRow Event(const std::string& connection, int64_t sequence) {
  EventRow row;
  row.tenant_id = "t";
  row.connection_id = connection;
  row.sequence = sequence;
  row.event_id = absl::StrCat(connection, "-", sequence);
  row.receive_time = absl::FromUnixSeconds(1800000000);
  row.body = "{}";
  return row;
}

TEST_F(PgStoreTest, EventsCommittedOnOneReplicaAreAnnouncedOnTheOthers) {
  auto a = Replica();
  auto b = Replica();
  Listener on_a, on_b;
  a->SetCommitListener(&on_a);
  b->SetCommitListener(&on_b);
  ASSERT_TRUE(a->Write([](Transaction& tx) -> absl::Status {
                 SY_RETURN_IF_ERROR(tx.InsertEvent(Event("x", 1)));
                 SY_RETURN_IF_ERROR(tx.InsertEvent(Event("x", 2)));
                 return tx.InsertEvent(Event("y", 1));
               }).ok());
  EXPECT_THAT(on_b.WaitFor(2), ElementsAre("x@2", "y@1"));
  ASSERT_TRUE(b->Write([](Transaction& tx) { return tx.InsertEvent(Event("x", 3)); }).ok());
  // A replica hears of its own commits once, directly, and not again by
  // NOTIFY: notifications arrive in commit order, so an echo of a's own
  // commit would come before b's x@3.
  EXPECT_THAT(on_a.WaitFor(3), ElementsAre("x@2", "y@1", "x@3"));
  EXPECT_THAT(on_b.WaitFor(3), ElementsAre("x@2", "y@1", "x@3"));
  a->SetCommitListener(nullptr);
  b->SetCommitListener(nullptr);
}

TEST_F(PgStoreTest, ReadsLeaveAConnectionForTheWriter) {
  PgStoreOptions options = Options();
  options.pool_size = 2;  // one writer: reads get one connection
  options.statement_timeout = absl::Seconds(1);
  auto store = PgStore::Open(options);
  ASSERT_TRUE(store.ok()) << store.status();
  absl::Notification inside;
  absl::Notification done;
  std::thread reader([&] {
    (*store)
        ->Read([&](Transaction&) {
          inside.Notify();
          done.WaitForNotification();
          return absl::OkStatus();
        })
        .IgnoreError();
  });
  absl::Cleanup finish = [&] {
    done.Notify();
    reader.join();
  };
  ASSERT_TRUE(inside.WaitForNotificationWithTimeout(absl::Seconds(30)));
  // A second read waits for the first one's connection, up to its limit.
  absl::Status second = (*store)->Read([](Transaction&) { return absl::OkStatus(); });
  EXPECT_EQ(ReasonOf(second), "STORE_BUSY") << second;
  // A write still gets one.
  EXPECT_TRUE((*store)->Write([](Transaction& tx) { return tx.InsertPool(Pool("p", 1)); }).ok());
}

TEST_F(PgStoreTest, ReplicasStartingTogetherApplyEachMigrationOnce) {
  PgStoreOptions options = Options();
  std::vector<std::thread> threads;
  std::vector<absl::Status> results(4);
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] { results[i] = PgStore::Open(options).status(); });
  }
  for (auto& t : threads) t.join();
  for (const absl::Status& s : results) EXPECT_TRUE(s.ok()) << s;
  const char* keys[] = {"dbname", "password", nullptr};
  const char* values[] = {options.url.c_str(), options.password.c_str(), nullptr};
  PGconn* conn = PQconnectdbParams(keys, values, 1);
  ASSERT_EQ(PQstatus(conn), CONNECTION_OK) << PQerrorMessage(conn);
  PGresult* res =
      PQexec(conn, "SELECT COUNT(*), COUNT(DISTINCT version), MAX(version) FROM schema_version");
  ASSERT_EQ(PQresultStatus(res), PGRES_TUPLES_OK) << PQresultErrorMessage(res);
  EXPECT_STREQ(PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));  // no version twice
  EXPECT_STREQ(PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 2));
  PQclear(res);
  PQfinish(conn);
}

TEST_F(PgStoreTest, AFunctionThatIgnoresAFailedStatementCommitsNothing) {
  auto store = Replica();
  ASSERT_TRUE(store->Write([](Transaction& tx) { return tx.InsertPool(Pool("p", 1)); }).ok());
  absl::Status status = store->Write([](Transaction& tx) -> absl::Status {
    SY_RETURN_IF_ERROR(tx.InsertPool(Pool("q", 1)));
    tx.InsertPool(Pool("p", 2)).IgnoreError();  // taken: PostgreSQL aborts the transaction
    return absl::OkStatus();
  });
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal) << status;
  EXPECT_EQ(*Capacity(*store, "q"), -1);  // not half committed
  // A read that goes on past a failed statement is not reported as done.
  absl::Status read = store->Read([](Transaction& tx) -> absl::Status {
    tx.InsertPool(Pool("r", 1)).IgnoreError();  // a read-only transaction refuses it
    return absl::OkStatus();
  });
  EXPECT_EQ(read.code(), absl::StatusCode::kInternal) << read;
}

TEST_F(PgStoreTest, AsynchronousWritesOfOneKeyRunInOrderWhileKeysRunInParallel) {
  // Several writers: a key is held by one group at a time.
  PgStoreOptions options = Options();
  options.writers = 3;
  options.max_batch = 4;
  auto opened = PgStore::Open(options);
  ASSERT_TRUE(opened.ok()) << opened.status();
  auto store = *std::move(opened);
  absl::Mutex mu;
  std::vector<int> order;  // of key "k"
  int done = 0;
  constexpr int kWrites = 100;
  for (int i = 0; i < kWrites; ++i) {
    store->WriteAsync(
        [&, i](Transaction& tx) -> absl::Status {
          SY_RETURN_IF_ERROR(tx.InsertPool(Pool(absl::StrCat("k", i), i)));
          absl::MutexLock lock(&mu);
          order.push_back(i);
          return absl::OkStatus();
        },
        [&](absl::Status s) {
          EXPECT_TRUE(s.ok()) << s;
          absl::MutexLock lock(&mu);
          ++done;
        },
        "k");
    store->WriteAsync([i](Transaction& tx) { return tx.InsertPool(Pool(absl::StrCat("o", i), i)); },
                      [&](absl::Status s) {
                        EXPECT_TRUE(s.ok()) << s;
                        absl::MutexLock lock(&mu);
                        ++done;
                      },
                      absl::StrCat("other", i % 7));
  }
  absl::MutexLock lock(&mu);
  mu.Await(absl::Condition(
      +[](int* d) { return *d == 2 * kWrites; }, &done));
  ASSERT_EQ(order.size(), static_cast<size_t>(kWrites));
  for (int i = 0; i < kWrites; ++i) EXPECT_EQ(order[i], i);
}

// A store of its own on `server`, reconnecting without delay.
PgStoreOptions OwnServerOptions(const testing::PostgresServer& server) {
  PgStoreOptions options;
  options.url = server.url();
  options.password = server.password();
  options.pool_size = 2;
  options.reconnect_backoff = absl::ZeroDuration();
  return options;
}

TEST_F(PgStoreTest, ADatabaseRestartFailsCallsClearlyAndTheStoreRecoversByItself) {
  auto server = testing::PostgresServer::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  PgStoreOptions options = OwnServerOptions(**server);
  options.connect_timeout = absl::Seconds(2);
  // Before the store, which calls them from its listening thread.
  Changes changes;
  Listener events;
  auto store = PgStore::Open(options);
  ASSERT_TRUE(store.ok()) << store.status();
  (*store)->SetChangeListener(&changes);
  ASSERT_TRUE((*store)->Write([](Transaction& tx) { return tx.InsertPool(Pool("p", 1)); }).ok());
  ASSERT_TRUE((*store)
                  ->Write([](Transaction& tx) -> absl::Status {
                    ConnectionRow connection;
                    connection.tenant_id = "t";
                    connection.id = "x";
                    connection.system_id = "maintainx";
                    connection.pool_id = "p";
                    SY_RETURN_IF_ERROR(tx.InsertConnection(connection));
                    SY_RETURN_IF_ERROR(tx.InsertEvent(Event("x", 1)));
                    return tx.InsertEvent(Event("x", 2));
                  })
                  .ok());
  (*store)->SetCommitListener(&events);
  // What a catch-up may have told before the restart does not count.
  const size_t before = events.WaitFor(0).size();

  ASSERT_TRUE((*server)->Stop().ok());
  absl::Status down = (*store)->Write([](Transaction& tx) { return tx.InsertPool(Pool("q", 1)); });
  EXPECT_EQ(down.code(), absl::StatusCode::kUnavailable) << down;
  EXPECT_EQ(ReasonOf(down), "STORE_UNAVAILABLE");
  EXPECT_EQ(Capacity(**store, "p").status().code(), absl::StatusCode::kUnavailable);

  ASSERT_TRUE((*server)->Resume().ok());
  // The same store object serves again: broken connections were replaced.
  EXPECT_EQ(*Capacity(**store, "p"), 1);
  EXPECT_TRUE((*store)->Write([](Transaction& tx) { return tx.InsertPool(Pool("q", 2)); }).ok());
  EXPECT_EQ(*Capacity(**store, "q"), 2);
  // Announcements made while the listening connection was down are lost:
  // the listeners are told to drop what they cached, and each connection's
  // newest event is announced.
  EXPECT_TRUE(changes.WaitFor(kEverythingChanged));
  std::vector<std::string> seen = events.WaitFor(before + 1);
  EXPECT_THAT(
      std::vector<std::string>(
          seen.begin() + static_cast<std::ptrdiff_t>(std::min(before, seen.size())), seen.end()),
      ::testing::Contains("x@2"));
  (*store)->SetChangeListener(nullptr);
  (*store)->SetCommitListener(nullptr);
}

// Runs `sql` on `conn`; the first row's first column, or "" (no rows).
std::string AdminQuery(PGconn* conn, const char* sql) {
  PGresult* res = PQexec(conn, sql);
  EXPECT_TRUE(PQresultStatus(res) == PGRES_TUPLES_OK || PQresultStatus(res) == PGRES_COMMAND_OK)
      << sql << ": " << PQresultErrorMessage(res);
  std::string out =
      PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0 && !PQgetisnull(res, 0, 0)
          ? PQgetvalue(res, 0, 0)
          : "";
  PQclear(res);
  return out;
}

TEST_F(PgStoreTest, ACommitWhoseConnectionBreaksIsAnsweredByWhatBecameOfIt) {
  auto server = testing::PostgresServer::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  const PgStoreOptions options = OwnServerOptions(**server);
  ASSERT_TRUE(PgStore::Open(options).ok());  // the schema, made while commits do not wait
  const char* keys[] = {"dbname", "password", nullptr};
  const char* values[] = {options.url.c_str(), options.password.c_str(), nullptr};
  PGconn* admin = PQconnectdbParams(keys, values, 1);
  ASSERT_EQ(PQstatus(admin), CONNECTION_OK) << PQerrorMessage(admin);
  // A pause between looks at the server (there is no event to wait on).
  auto pause = [] {
    absl::Mutex mu;
    absl::MutexLock lock(&mu);
    const bool never = false;
    mu.AwaitWithTimeout(absl::Condition(&never), absl::Milliseconds(20));
  };

  // Every commit now waits for a synchronous standby that never comes: it
  // is made durable here first. Connections made from now on know it.
  AdminQuery(admin, "ALTER SYSTEM SET synchronous_standby_names = 'nobody'");
  AdminQuery(admin, "SELECT pg_reload_conf()");
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  while (AdminQuery(admin, "SELECT current_setting('synchronous_standby_names')") != "nobody" &&
         absl::Now() < give_up) {
    PQfinish(admin);  // a fresh server process reads the reloaded settings
    admin = PQconnectdbParams(keys, values, 1);
    pause();
  }
  // One connection in the pool: the outcome is asked on a new one, after
  // the broken one went back.
  PgStoreOptions one = options;
  one.pool_size = 1;
  auto store = PgStore::Open(one);
  ASSERT_TRUE(store.ok()) << store.status();
  absl::Status written;
  std::thread writer([&] {
    written = (*store)->Write([](Transaction& tx) { return tx.InsertPool(Pool("p", 7)); });
  });
  std::string pid;
  while (pid.empty() && absl::Now() < give_up) {
    pid =
        AdminQuery(admin, "SELECT pid FROM pg_stat_activity WHERE wait_event = 'SyncRep' LIMIT 1");
    if (pid.empty()) pause();
  }
  EXPECT_FALSE(pid.empty()) << "no commit waited for the standby";
  // The connection breaks while the commit waits (its server process ends).
  if (!pid.empty()) {
    AdminQuery(admin, absl::StrCat("SELECT pg_terminate_backend(", pid, ")").c_str());
  }
  AdminQuery(admin, "ALTER SYSTEM RESET synchronous_standby_names");
  AdminQuery(admin, "SELECT pg_reload_conf()");  // also releases a commit still waiting
  writer.join();
  // It had taken effect: the write is answered OK, not "retry".
  EXPECT_TRUE(written.ok()) << written;
  EXPECT_EQ(*Capacity(**store, "p"), 7);
  PQfinish(admin);
}

}  // namespace
}  // namespace switchyard::storage
