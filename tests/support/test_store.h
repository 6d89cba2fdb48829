#ifndef SWITCHYARD_TESTS_SUPPORT_TEST_STORE_H_
#define SWITCHYARD_TESTS_SUPPORT_TEST_STORE_H_

// The store a test runs on. By default the embedded SQLite store in a
// directory of the test; when the environment variable
// SWITCHYARD_TEST_POSTGRES names the directory of a test PostgreSQL server
// (started by scripts/postgres-test.sh, as CTest does for the ".postgres"
// variants of the store tests), a fresh schema of that server instead. The
// same tests thus run, unchanged, on both backends.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/storage/store.h"

struct sqlite3;
struct pg_conn;

namespace switchyard::testing {

// Whether tests run on PostgreSQL.
bool TestStoreIsPostgres();

// The directory of the test PostgreSQL server ("" on SQLite). It holds `url`
// (an admin connection URI), `password`, and `cluster` (where the cluster's
// files are).
std::string TestPostgresDir();

// Opens the store for `dir` (a directory of the test). On PostgreSQL, the
// schema is made for `dir` on first use and reused by later calls with the
// same `dir`, so a reopened store sees the same rows.
absl::StatusOr<std::unique_ptr<storage::Store>> OpenTestStore(const std::string& dir);

// Every byte the store of `dir` keeps on disk: the SQLite database and its
// write-ahead log, or every file of the test PostgreSQL cluster (its WAL holds
// every committed row). For tests that look for what must never be stored.
std::string TestStoreFileBytes(const std::string& dir);

// The server flags selecting the same store for a server whose data
// directory is `dir` (none on SQLite, which lives in the data directory).
std::vector<std::string> TestStoreServerFlags(const std::string& dir);

// A connection URI to the schema of `dir` (made on first use). PostgreSQL
// only.
absl::StatusOr<std::string> TestPostgresUrl(const std::string& dir);

// A lock, held from another connection, that makes the writes of the server
// whose data directory is `dir` wait: SQLite's write lock on its database
// (reads go on), or on PostgreSQL an exclusive lock on the credit pools
// table (reads and writes of pools wait). Until Release or destruction.
// Not thread-safe.
class StoreWriteBlock {
 public:
  static absl::StatusOr<std::unique_ptr<StoreWriteBlock>> Hold(const std::string& dir);
  StoreWriteBlock(const StoreWriteBlock&) = delete;
  StoreWriteBlock& operator=(const StoreWriteBlock&) = delete;
  ~StoreWriteBlock() { Release(); }
  // Lets the writes go on. Idempotent.
  void Release();

 private:
  StoreWriteBlock() = default;
  ::sqlite3* sqlite_ = nullptr;
  ::pg_conn* pg_ = nullptr;
};

}  // namespace switchyard::testing

#endif  // SWITCHYARD_TESTS_SUPPORT_TEST_STORE_H_
