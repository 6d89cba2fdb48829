#ifndef SWITCHYARD_SERVER_STORAGE_SQLITE_SQLITE_STORE_H_
#define SWITCHYARD_SERVER_STORAGE_SQLITE_SQLITE_STORE_H_

// The embedded store: one SQLite database file in WAL mode with synchronous
// (fsync'd) commits.
//
// Writes go through one writer thread that groups the transactions waiting at
// that moment into one SQLite transaction (group commit): each caller's
// function runs inside its own SAVEPOINT, so a failing function rolls back only
// its own writes, and every caller is answered after the single COMMIT made
// them durable. Reads use a small pool of read-only connections and never wait
// for the writer.

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/storage/store.h"
#include "server/storage/write_queue.h"

struct sqlite3;

namespace switchyard::storage {

class SqliteDb;

struct SqliteStoreOptions {
  // Path of the database file; created with its parent directory missing
  // being an error. Required.
  std::string path;
  // Most write transactions grouped into one commit. Default 256.
  int max_batch = 256;
  // Read-only connections kept open. Default 4.
  int read_connections = 4;
};

// Thread-safe.
class SqliteStore final : public Store {
 public:
  // Opens or creates the database at `options.path`, applies pending schema
  // migrations and starts the writer thread. kUnavailable when the file cannot
  // be opened; kFailedPrecondition when its schema is newer than this binary.
  static absl::StatusOr<std::unique_ptr<SqliteStore>> Open(const SqliteStoreOptions& options);

  // Finishes queued writes, then stops the writer thread and closes the files.
  ~SqliteStore() override;

  absl::Status Write(absl::FunctionRef<absl::Status(Transaction&)> fn) override;
  void WriteAsync(std::function<absl::Status(Transaction&)> fn,
                  std::function<void(absl::Status)> done, absl::string_view fairness_key) override;
  absl::Status Read(absl::FunctionRef<absl::Status(Transaction&)> fn) override
      ABSL_LOCKS_EXCLUDED(readers_mu_);
  void SetCommitListener(CommitListener* listener) override;
  // One replica: no other one ever announces a change.
  void SetChangeListener(ChangeListener*) override {}
  bool Shared() const override { return false; }

  // Number of SQLite commits made so far (for tests of group commit).
  int64_t CommitCountForTest() const;

 private:
  SqliteStore(SqliteStoreOptions options, std::unique_ptr<SqliteDb> writer);
  void WriterLoop();
  void RunBatch(const std::vector<WriteQueue::Task*>& batch);
  absl::StatusOr<std::unique_ptr<SqliteDb>> AcquireReader() ABSL_LOCKS_EXCLUDED(readers_mu_);
  void ReturnReader(std::unique_ptr<SqliteDb> db) ABSL_LOCKS_EXCLUDED(readers_mu_);

  // Constant after construction.
  const SqliteStoreOptions options_;
  // Used by the writer thread only.
  std::unique_ptr<SqliteDb> writer_;

  WriteQueue writes_;
  std::atomic<int64_t> commits_{0};

  absl::Mutex readers_mu_;
  std::vector<std::unique_ptr<SqliteDb>> idle_readers_ ABSL_GUARDED_BY(readers_mu_);
  int open_readers_ ABSL_GUARDED_BY(readers_mu_) = 0;

  std::atomic<CommitListener*> listener_{nullptr};

  std::thread writer_thread_;  // last: start after everything above exists
};

}  // namespace switchyard::storage

#endif  // SWITCHYARD_SERVER_STORAGE_SQLITE_SQLITE_STORE_H_
