#include "tests/support/test_store.h"

#include <libpq-fe.h>
#include <sqlite3.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "server/storage/postgres/pg_store.h"
#include "server/storage/sqlite/sqlite_store.h"
#include "tests/support/temp_dir.h"

namespace switchyard::testing {
namespace {

// Creates schema `name` through an admin connection.
absl::Status CreateSchema(const std::string& name) {
  const std::string dir = TestPostgresDir();
  const std::string url = ReadTrimmedFile(dir + "/url");
  const std::string password = ReadTrimmedFile(dir + "/password");
  const char* keys[] = {"dbname", "password", nullptr};
  const char* values[] = {url.c_str(), password.c_str(), nullptr};
  PGconn* conn = PQconnectdbParams(keys, values, 1);
  absl::Status status;
  if (PQstatus(conn) != CONNECTION_OK) {
    status = absl::UnavailableError(absl::StrCat("test PostgreSQL: ", PQerrorMessage(conn)));
  } else {
    PGresult* res = PQexec(conn, absl::StrCat("CREATE SCHEMA ", name).c_str());
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
      status = absl::InternalError(absl::StrCat("CREATE SCHEMA: ", PQresultErrorMessage(res)));
    }
    PQclear(res);
  }
  PQfinish(conn);
  return status;
}

}  // namespace

std::string TestPostgresDir() {
  const char* dir = std::getenv("SWITCHYARD_TEST_POSTGRES");
  return dir == nullptr ? std::string() : std::string(dir);
}

bool TestStoreIsPostgres() { return !TestPostgresDir().empty(); }

absl::StatusOr<std::string> TestPostgresUrl(const std::string& dir) {
  const std::string pg = TestPostgresDir();
  if (pg.empty()) return absl::FailedPreconditionError("tests are not running on PostgreSQL");
  const std::string saved = dir + "/postgres.url";
  if (std::filesystem::exists(saved)) return ReadTrimmedFile(saved);
  absl::BitGen gen;
  const std::string schema =
      absl::StrCat("t", absl::Hex(absl::Uniform<uint64_t>(gen), absl::kZeroPad16));
  if (absl::Status s = CreateSchema(schema); !s.ok()) return s;
  const std::string base = ReadTrimmedFile(pg + "/url");
  const std::string url = absl::StrCat(base, base.find('?') == std::string::npos ? "?" : "&",
                                       "options=-csearch_path%3D", schema);
  std::ofstream(saved) << url << "\n";
  return url;
}

absl::StatusOr<std::unique_ptr<storage::Store>> OpenTestStore(const std::string& dir) {
  if (!TestStoreIsPostgres()) {
    storage::SqliteStoreOptions options;
    options.path = dir + "/store.db";
    auto store = storage::SqliteStore::Open(options);
    if (!store.ok()) return store.status();
    return std::unique_ptr<storage::Store>(std::move(*store));
  }
  auto url = TestPostgresUrl(dir);
  if (!url.ok()) return url.status();
  storage::PgStoreOptions options;
  options.url = *url;
  options.password = ReadTrimmedFile(TestPostgresDir() + "/password");
  options.pool_size = 4;
  auto store = storage::PgStore::Open(options);
  if (!store.ok()) return store.status();
  return std::unique_ptr<storage::Store>(std::move(*store));
}

std::string TestStoreFileBytes(const std::string& dir) {
  std::vector<std::string> files;
  if (!TestStoreIsPostgres()) {
    files = {dir + "/store.db", dir + "/store.db-wal"};
  } else {
    for (const auto& entry : std::filesystem::recursive_directory_iterator(
             ReadTrimmedFile(TestPostgresDir() + "/cluster") + "/data")) {
      if (entry.is_regular_file()) files.push_back(entry.path().string());
    }
  }
  std::string bytes;
  for (const std::string& path : files) bytes += ReadFile(path);
  return bytes;
}

absl::StatusOr<std::unique_ptr<StoreWriteBlock>> StoreWriteBlock::Hold(const std::string& dir) {
  std::unique_ptr<StoreWriteBlock> block(new StoreWriteBlock());
  if (!TestStoreIsPostgres()) {
    const std::string path = dir + "/switchyard.db";
    if (sqlite3_open_v2(path.c_str(), &block->sqlite_, SQLITE_OPEN_READWRITE, nullptr) !=
            SQLITE_OK ||
        sqlite3_exec(block->sqlite_, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr) != SQLITE_OK) {
      return absl::InternalError(absl::StrCat(path, ": ", sqlite3_errmsg(block->sqlite_)));
    }
    return block;
  }
  auto url = TestPostgresUrl(dir);
  if (!url.ok()) return url.status();
  const std::string password = ReadTrimmedFile(TestPostgresDir() + "/password");
  const char* keys[] = {"dbname", "password", nullptr};
  const char* values[] = {url->c_str(), password.c_str(), nullptr};
  block->pg_ = PQconnectdbParams(keys, values, 1);
  if (PQstatus(block->pg_) != CONNECTION_OK) {
    return absl::UnavailableError(absl::StrCat("test PostgreSQL: ", PQerrorMessage(block->pg_)));
  }
  PGresult* res = PQexec(block->pg_, "BEGIN; LOCK TABLE pools IN ACCESS EXCLUSIVE MODE");
  const bool locked = PQresultStatus(res) == PGRES_COMMAND_OK;
  const std::string error = PQresultErrorMessage(res);
  PQclear(res);
  if (!locked) return absl::InternalError(absl::StrCat("LOCK TABLE pools: ", error));
  return block;
}

void StoreWriteBlock::Release() {
  if (sqlite_ != nullptr) {
    sqlite3_exec(sqlite_, "COMMIT", nullptr, nullptr, nullptr);
    sqlite3_close(sqlite_);
    sqlite_ = nullptr;
  }
  if (pg_ != nullptr) {
    PQclear(PQexec(pg_, "COMMIT"));
    PQfinish(pg_);
    pg_ = nullptr;
  }
}

std::vector<std::string> TestStoreServerFlags(const std::string& dir) {
  if (!TestStoreIsPostgres()) return {};
  auto url = TestPostgresUrl(dir);
  if (!url.ok()) return {"--database_url=unavailable:" + url.status().ToString()};
  return {"--database_url=" + *url, "--database_password_file=" + TestPostgresDir() + "/password"};
}

}  // namespace switchyard::testing
