#ifndef SWITCHYARD_SERVER_STORAGE_POSTGRES_PG_STORE_H_
#define SWITCHYARD_SERVER_STORAGE_POSTGRES_PG_STORE_H_

// The PostgreSQL store: the same tables and transactions as the embedded
// store, shared by every gateway replica connected to one database.
//
// - Writes go through a writer thread that groups the writes waiting at that
//   moment into one transaction (group commit), each in its own SAVEPOINT so
//   that a failing write rolls back alone; every caller is answered after the
//   COMMIT. Write transactions run SERIALIZABLE, so that concurrent replicas
//   reading a balance and writing it back cannot overdraw it; a transaction
//   that loses a serialization conflict runs again from the start, with every
//   write of its group (a write's function runs once per attempt, up to
//   `max_attempts`).
// - A pool of connections serves transactions; statements are prepared once
//   per connection. A connection that breaks is dropped and replaced on next
//   use, so the store recovers by itself when the database comes back.
// - Committed events are announced to this replica's listener at once and to
//   the other replicas through NOTIFY on a channel named after the schema; a
//   dedicated LISTEN connection hands other replicas' notices to the listener.
// - Schema migrations run in one transaction under an advisory lock, so
//   replicas starting together apply each migration once.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "server/storage/store.h"
#include "server/storage/write_queue.h"

namespace switchyard::storage {

class PgConn;

struct PgStoreOptions {
  // A libpq connection string or URI, for example
  // "postgresql://switchyard@db:5432/switchyard". Tables live in the first
  // schema of the search path (set it with `options=-csearch_path=...`).
  // Required.
  std::string url;
  // The password, when `url` has none (read from a file or the environment by
  // the caller). Empty: libpq's own sources (PGPASSWORD, ~/.pgpass).
  std::string password;
  // Connections for transactions (the writers' and the readers'). Reads use
  // at most pool_size - writers of them (at least one), so that reads
  // cannot hold up writes. Default 8.
  int pool_size = 8;
  // Writer threads. One per replica avoids conflicts between the replica's
  // own writes (which would each run again); more overlap their round trips.
  // Writes of one fairness key never run in two groups at once. Default 1.
  int writers = 1;
  // Most writes grouped into one transaction. Default 64.
  int max_batch = 64;
  // Longest wait for a new connection to be established.
  absl::Duration connect_timeout = absl::Seconds(5);
  // Longest a statement may run, and longest a caller waits for a free
  // connection of the pool.
  absl::Duration statement_timeout = absl::Seconds(10);
  // Runs of a write transaction that keeps losing serialization conflicts
  // before it fails with kAborted. Conflicts are expected on hot rows (a
  // pool's balance); attempts back off with jitter.
  int max_attempts = 30;
  // After a failed connect, how long callers fail fast instead of each
  // waiting for a connect of its own.
  absl::Duration reconnect_backoff = absl::Milliseconds(500);
};

// Thread-safe.
class PgStore final : public Store {
 public:
  // Connects, applies pending migrations and starts the LISTEN thread; returns
  // once that thread listens (or after connect_timeout), so that no commit of
  // another replica made after Open goes unannounced.
  // kUnavailable when the database cannot be reached; kFailedPrecondition
  // when its schema is newer than this binary or the search path names no
  // existing schema.
  static absl::StatusOr<std::unique_ptr<PgStore>> Open(const PgStoreOptions& options);

  // Finishes queued asynchronous writes, then closes every connection.
  ~PgStore() override;

  absl::Status Write(absl::FunctionRef<absl::Status(Transaction&)> fn) override;
  void WriteAsync(std::function<absl::Status(Transaction&)> fn,
                  std::function<void(absl::Status)> done, absl::string_view fairness_key) override;
  absl::Status Read(absl::FunctionRef<absl::Status(Transaction&)> fn) override;
  void SetCommitListener(CommitListener* listener) override;
  void SetChangeListener(ChangeListener* listener) override;
  bool Shared() const override { return true; }

  // Write transactions run again after a serialization conflict, so far.
  int64_t ConflictRetries() const { return conflict_retries_.load(std::memory_order_relaxed); }

 private:
  PgStore(PgStoreOptions options, std::string schema, std::string channel);

  // One connection of the pool, waiting up to statement_timeout for a free
  // slot (for a `read`, within the readers' share: see pool_size).
  // kUnavailable when none frees up or the database cannot be reached.
  absl::StatusOr<std::unique_ptr<PgConn>> Acquire(bool read = false) ABSL_LOCKS_EXCLUDED(pool_mu_);
  // Gives back a connection of Acquire (with the same `read`).
  void Release(std::unique_ptr<PgConn> conn, bool read = false) ABSL_LOCKS_EXCLUDED(pool_mu_);
  // Runs `batch` as one transaction and sets each task's result.
  void RunBatch(const std::vector<WriteQueue::Task*>& batch);
  // The connection broke during the COMMIT of transaction `xid` (0: not
  // known) with `failure`: asks a fresh connection whether it took effect.
  // OK when it did; UNAVAILABLE / STORE_UNAVAILABLE when it did not;
  // UNAVAILABLE / STORE_COMMIT_UNKNOWN when that cannot be told.
  absl::Status CommitOutcome(int64_t xid, const absl::Status& failure)
      ABSL_LOCKS_EXCLUDED(pool_mu_);
  // After a commit whose outcome stayed unknown: tells the commit listener
  // the newest event the database now has for each connection in
  // `inserted` (this replica hears of its own commits only directly). When
  // that cannot be read either, the listening connection's catch-up after
  // its reconnect tells it.
  void AnnounceNewest(const std::vector<EventNotice>& inserted) ABSL_LOCKS_EXCLUDED(pool_mu_);
  // Sends `notices` and `changes` to the other replicas when the transaction
  // commits.
  absl::Status Notify(PgConn& conn, const std::vector<EventNotice>& notices,
                      const std::vector<ChangeNotice>& changes);
  void WriterLoop();
  void ListenLoop();
  // Waits on the stop pipe and `fd` (-1: none) up to `timeout`; false when
  // stopping.
  bool WaitReadable(int fd, absl::Duration timeout);

  // Constant after construction.
  const PgStoreOptions options_;
  const std::string schema_;
  const std::string channel_;     // NOTIFY channel of this schema's events
  const std::string replica_id_;  // marks this process's own notifications

  absl::Mutex pool_mu_;
  std::vector<std::unique_ptr<PgConn>> idle_ ABSL_GUARDED_BY(pool_mu_);
  int open_ ABSL_GUARDED_BY(pool_mu_) = 0;
  int reading_ ABSL_GUARDED_BY(pool_mu_) = 0;  // connections held by reads
  // After a failed connect, callers fail fast until then (reconnect_backoff).
  absl::Time down_until_ ABSL_GUARDED_BY(pool_mu_) = absl::InfinitePast();

  WriteQueue writes_;

  std::atomic<CommitListener*> listener_{nullptr};
  std::atomic<ChangeListener*> change_listener_{nullptr};
  std::atomic<int64_t> conflict_retries_{0};
  std::atomic<bool> listen_stopping_{false};
  absl::Notification listening_;  // the first LISTEN succeeded
  int stop_pipe_[2] = {-1, -1};   // written once to wake the LISTEN thread

  std::vector<std::thread> writers_;
  std::thread listen_thread_;
};

}  // namespace switchyard::storage

#endif  // SWITCHYARD_SERVER_STORAGE_POSTGRES_PG_STORE_H_
