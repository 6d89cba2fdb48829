#include "server/storage/sqlite/sqlite_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <tuple>
#include <unordered_map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/log.h"
#include "server/common/status.h"
#include "server/storage/sql/sql_transaction.h"

namespace switchyard::storage {
namespace {

// Each entry moves the schema from version i to i+1. Never edit an entry that
// has shipped; append a new one.
constexpr const char* kMigrations[] = {
    R"sql(
CREATE TABLE pools (
  id TEXT PRIMARY KEY,
  display_name TEXT NOT NULL,
  capacity INTEGER NOT NULL,
  reserved INTEGER NOT NULL,
  consumed INTEGER NOT NULL,
  create_time INTEGER,
  update_time INTEGER,
  CHECK (reserved >= 0 AND consumed >= 0 AND reserved + consumed <= capacity)
) WITHOUT ROWID;
CREATE TABLE tenants (
  id TEXT PRIMARY KEY,
  display_name TEXT NOT NULL,
  pool_id TEXT NOT NULL REFERENCES pools(id),
  credit_limit INTEGER NOT NULL,
  reserved INTEGER NOT NULL,
  consumed INTEGER NOT NULL,
  connection_count INTEGER NOT NULL,
  deleted INTEGER NOT NULL,
  create_time INTEGER,
  update_time INTEGER,
  CHECK (reserved >= 0 AND consumed >= 0 AND connection_count >= 0)
) WITHOUT ROWID;
CREATE TABLE reservations (
  tenant_id TEXT NOT NULL,
  id TEXT NOT NULL,
  pool_id TEXT NOT NULL,
  amount INTEGER NOT NULL CHECK (amount > 0),
  state INTEGER NOT NULL,
  expire_time INTEGER,
  create_time INTEGER,
  resolve_time INTEGER,
  connection_id TEXT NOT NULL,
  PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;
CREATE INDEX reservations_by_expiry ON reservations (state, expire_time);
CREATE INDEX reservations_by_pool_expiry ON reservations (pool_id, state, expire_time);
CREATE TABLE connections (
  tenant_id TEXT NOT NULL,
  id TEXT NOT NULL,
  system_id TEXT NOT NULL,
  deployment INTEGER NOT NULL,
  display_name TEXT NOT NULL,
  state INTEGER NOT NULL,
  credits INTEGER NOT NULL,
  pool_id TEXT NOT NULL,
  reservation_id TEXT NOT NULL,
  create_time INTEGER,
  update_time INTEGER,
  disconnect_time INTEGER,
  PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;
CREATE TABLE connection_metadata (
  tenant_id TEXT NOT NULL,
  connection_id TEXT NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (tenant_id, connection_id, key)
) WITHOUT ROWID;
CREATE TABLE journal (
  sequence INTEGER PRIMARY KEY AUTOINCREMENT,
  kind INTEGER NOT NULL,
  amount INTEGER NOT NULL,
  time INTEGER,
  pool_id TEXT NOT NULL,
  tenant_id TEXT NOT NULL,
  connection_id TEXT NOT NULL,
  reservation_id TEXT NOT NULL,
  request_id TEXT NOT NULL,
  capacity_after INTEGER NOT NULL,
  reserved_after INTEGER NOT NULL,
  consumed_after INTEGER NOT NULL
);
CREATE INDEX journal_by_pool ON journal (pool_id, sequence);
CREATE INDEX journal_by_pool_tenant ON journal (pool_id, tenant_id, sequence);
CREATE TABLE idempotency (
  key TEXT PRIMARY KEY,
  fingerprint TEXT NOT NULL,
  response BLOB NOT NULL,
  create_time INTEGER
) WITHOUT ROWID;
CREATE INDEX idempotency_by_time ON idempotency (create_time);
)sql",
    R"sql(
CREATE TABLE data_keys (
  owner TEXT NOT NULL,
  version INTEGER NOT NULL,
  master_key_id TEXT NOT NULL,
  wrapped BLOB NOT NULL,
  create_time INTEGER,
  PRIMARY KEY (owner, version)
) WITHOUT ROWID;
CREATE INDEX data_keys_by_master ON data_keys (master_key_id);
CREATE TABLE api_keys (
  id TEXT PRIMARY KEY,
  kind INTEGER NOT NULL,
  tenant_id TEXT NOT NULL,
  connection_id TEXT NOT NULL,
  hash BLOB NOT NULL UNIQUE,
  hint TEXT NOT NULL,
  display_name TEXT NOT NULL,
  rights INTEGER NOT NULL,
  state INTEGER NOT NULL,
  create_time INTEGER,
  expire_time INTEGER,
  last_used_time INTEGER,
  revoke_time INTEGER,
  superseded_by TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX api_keys_by_owner ON api_keys (tenant_id, connection_id, id);
CREATE TABLE credentials (
  tenant_id TEXT NOT NULL,
  connection_id TEXT NOT NULL,
  key_version INTEGER NOT NULL,
  sealed BLOB NOT NULL,
  summary BLOB NOT NULL,
  update_time INTEGER,
  PRIMARY KEY (tenant_id, connection_id)
) WITHOUT ROWID;
)sql",
    R"sql(
CREATE TABLE events (
  tenant_id TEXT NOT NULL,
  connection_id TEXT NOT NULL,
  sequence INTEGER NOT NULL,
  event_id TEXT NOT NULL,
  type TEXT NOT NULL,
  source INTEGER NOT NULL,
  source_time INTEGER,
  receive_time INTEGER,
  content_type TEXT NOT NULL,
  body BLOB NOT NULL,
  PRIMARY KEY (tenant_id, connection_id, sequence)
);  -- a rowid table: rows carry bodies, too large for WITHOUT ROWID
CREATE UNIQUE INDEX events_by_id ON events (tenant_id, connection_id, event_id);
CREATE TABLE webhook_secrets (
  tenant_id TEXT NOT NULL,
  connection_id TEXT NOT NULL,
  version INTEGER NOT NULL,
  key_version INTEGER NOT NULL,
  sealed BLOB NOT NULL,
  create_time INTEGER,
  expire_time INTEGER,
  PRIMARY KEY (tenant_id, connection_id, version)
) WITHOUT ROWID;
)sql",
    R"sql(
CREATE TABLE events_v4 (
  position INTEGER PRIMARY KEY AUTOINCREMENT,
  tenant_id TEXT NOT NULL,
  connection_id TEXT NOT NULL,
  sequence INTEGER NOT NULL,
  event_id TEXT NOT NULL,
  type TEXT NOT NULL,
  source INTEGER NOT NULL,
  source_time INTEGER,
  receive_time INTEGER,
  content_type TEXT NOT NULL,
  body BLOB NOT NULL
);
INSERT INTO events_v4 (position, tenant_id, connection_id, sequence, event_id, type, source,
                       source_time, receive_time, content_type, body)
  SELECT rowid, tenant_id, connection_id, sequence, event_id, type, source, source_time,
         receive_time, content_type, body FROM events ORDER BY rowid;
DROP TABLE events;
ALTER TABLE events_v4 RENAME TO events;
CREATE UNIQUE INDEX events_by_sequence ON events (tenant_id, connection_id, sequence);
CREATE UNIQUE INDEX events_by_id ON events (tenant_id, connection_id, event_id);
CREATE TABLE subscriptions (
  tenant_id TEXT NOT NULL,
  id TEXT NOT NULL,
  config BLOB NOT NULL,
  start_position INTEGER NOT NULL,
  generation INTEGER NOT NULL,
  create_time INTEGER,
  PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;
CREATE TABLE subscription_cursors (
  subscription_tenant_id TEXT NOT NULL,
  subscription_id TEXT NOT NULL,
  tenant_id TEXT NOT NULL,
  connection_id TEXT NOT NULL,
  resolved_through INTEGER NOT NULL,
  PRIMARY KEY (subscription_tenant_id, subscription_id, tenant_id, connection_id)
) WITHOUT ROWID;
CREATE TABLE dead_letters (
  subscription_tenant_id TEXT NOT NULL,
  subscription_id TEXT NOT NULL,
  position INTEGER NOT NULL,
  tenant_id TEXT NOT NULL,
  connection_id TEXT NOT NULL,
  sequence INTEGER NOT NULL,
  attempts INTEGER NOT NULL,
  dead_time INTEGER,
  replaying INTEGER NOT NULL,
  PRIMARY KEY (subscription_tenant_id, subscription_id, position)
) WITHOUT ROWID;
)sql",
    R"sql(
CREATE TABLE connection_health (
  tenant_id TEXT NOT NULL,
  connection_id TEXT NOT NULL,
  url TEXT NOT NULL,
  interval_ms INTEGER NOT NULL,
  timeout_ms INTEGER NOT NULL,
  expected_status INTEGER NOT NULL,
  state INTEGER NOT NULL,
  state_change_time INTEGER,
  last_check_time INTEGER,
  last_result TEXT NOT NULL,
  consecutive_failures INTEGER NOT NULL,
  consecutive_successes INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, connection_id)
) WITHOUT ROWID;
CREATE TABLE incidents (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  title TEXT NOT NULL,
  component TEXT NOT NULL,
  severity INTEGER NOT NULL,
  state INTEGER NOT NULL,
  start_time INTEGER,
  end_time INTEGER,
  automatic INTEGER NOT NULL,
  notes BLOB NOT NULL
);
CREATE INDEX incidents_open ON incidents (component, state);
)sql",
    R"sql(
CREATE TABLE change_feeds (
  tenant_id TEXT NOT NULL,
  connection_id TEXT NOT NULL,
  url TEXT NOT NULL,
  interval_ms INTEGER NOT NULL,
  mode INTEGER NOT NULL,
  silence_ms INTEGER NOT NULL,
  cursor TEXT NOT NULL,
  last_poll_time INTEGER,
  last_result TEXT NOT NULL,
  events_stored INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, connection_id)
) WITHOUT ROWID;
)sql",
    R"sql(
CREATE TABLE delivery_leases (
  subscription_tenant_id TEXT NOT NULL,
  subscription_id TEXT NOT NULL,
  tenant_id TEXT NOT NULL,
  connection_id TEXT NOT NULL,
  holder TEXT NOT NULL,
  expire_time INTEGER,
  PRIMARY KEY (subscription_tenant_id, subscription_id, tenant_id, connection_id)
) WITHOUT ROWID;
CREATE TABLE delivery_members (
  subscription_tenant_id TEXT NOT NULL,
  subscription_id TEXT NOT NULL,
  holder TEXT NOT NULL,
  expire_time INTEGER,
  PRIMARY KEY (subscription_tenant_id, subscription_id, holder)
) WITHOUT ROWID;
)sql",
    R"sql(
CREATE TABLE delivery_attempts (
  subscription_tenant_id TEXT NOT NULL,
  subscription_id TEXT NOT NULL,
  tenant_id TEXT NOT NULL,
  connection_id TEXT NOT NULL,
  sequence INTEGER NOT NULL,
  attempts INTEGER NOT NULL,
  free_attempts INTEGER NOT NULL,
  PRIMARY KEY (subscription_tenant_id, subscription_id, tenant_id, connection_id, sequence)
) WITHOUT ROWID;
)sql",
};

constexpr int kSchemaVersion = sizeof(kMigrations) / sizeof(kMigrations[0]);

}  // namespace

class SqliteDb;

// One prepared SQLite statement.
class SqliteStatement final : public SqlStatement {
 public:
  SqliteStatement(SqliteDb& db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  ~SqliteStatement() override { sqlite3_finalize(stmt_); }

  void BindText(int index, absl::string_view v) override {
    sqlite3_bind_text(stmt_, index, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  void BindBlob(int index, absl::string_view v) override {
    // Not copied (see SqlStatement::BindBlob): bodies are the large values.
    sqlite3_bind_blob(stmt_, index, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
  }
  void BindInt(int index, int64_t v) override { sqlite3_bind_int64(stmt_, index, v); }
  void BindNullInt(int index) override { sqlite3_bind_null(stmt_, index); }
  absl::StatusOr<bool> Step() override;
  int64_t Changes() override;
  bool IsNull(int col) override { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  int64_t Int(int col) override { return sqlite3_column_int64(stmt_, col); }
  absl::string_view Bytes(int col) override {
    const void* p = sqlite3_column_blob(stmt_, col);
    if (p == nullptr) return absl::string_view();
    return absl::string_view(static_cast<const char*>(p),
                             static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
  }
  void Reset() override {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }

 private:
  SqliteDb& db_;
  sqlite3_stmt* stmt_;
};

// One SQLite connection with its prepared statements. Not thread-safe.
class SqliteDb final : public SqlConnection {
 public:
  static absl::StatusOr<std::unique_ptr<SqliteDb>> Open(const std::string& path, bool read_only) {
    sqlite3* db = nullptr;
    int flags = read_only ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    flags |= SQLITE_OPEN_NOMUTEX;
    int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
    auto out = std::unique_ptr<SqliteDb>(new SqliteDb(db));
    if (rc != SQLITE_OK) {
      return Error(absl::StatusCode::kUnavailable, "STORE_UNAVAILABLE",
                   absl::StrCat("cannot open database ", path, ": ",
                                db ? sqlite3_errmsg(db) : sqlite3_errstr(rc)));
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, 10000);
    return out;
  }

  ~SqliteDb() override {
    statements_.clear();  // finalized before the connection closes
    sqlite3_close_v2(db_);
  }

  sqlite3* handle() const { return db_; }

  absl::Status StatusFrom(int rc, absl::string_view what) const {
    std::string message = absl::StrCat("store: ", what, ": ", sqlite3_errmsg(db_));
    int primary = rc & 0xff;
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE) {
      return Error(absl::StatusCode::kAlreadyExists, "ALREADY_EXISTS", message);
    }
    if (primary == SQLITE_CONSTRAINT) {
      // A CHECK constraint guards an invariant the domain code must keep.
      return Error(absl::StatusCode::kInternal, "STORE_INVARIANT_VIOLATED", message);
    }
    if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED || primary == SQLITE_IOERR ||
        primary == SQLITE_FULL || primary == SQLITE_CANTOPEN || primary == SQLITE_READONLY) {
      return Error(absl::StatusCode::kUnavailable, "STORE_UNAVAILABLE", message);
    }
    return Error(absl::StatusCode::kInternal, "STORE_ERROR", message);
  }

  absl::Status Exec(const char* sql) {
    char* err = nullptr;
    int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
    if (err != nullptr) sqlite3_free(err);
    if (rc != SQLITE_OK) return StatusFrom(rc, sql);
    return absl::OkStatus();
  }

  // Runs a statement without results, prepared once (for the statements of
  // every transaction: BEGIN, SAVEPOINT, RELEASE, COMMIT).
  absl::Status ExecCached(const char* sql) {
    SY_ASSIGN_OR_RETURN(SqlStatement * stmt, Prepare(sql));
    absl::StatusOr<bool> stepped = stmt->Step();
    stmt->Reset();
    return stepped.status();
  }

  absl::StatusOr<SqlStatement*> Prepare(const char* sql) override {
    auto it = statements_.find(sql);
    if (it != statements_.end()) return it->second.get();
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) return StatusFrom(rc, "prepare");
    auto [inserted, added] =
        statements_.emplace(sql, std::make_unique<SqliteStatement>(*this, stmt));
    return inserted->second.get();
  }

 private:
  explicit SqliteDb(sqlite3* db) : db_(db) {}
  sqlite3* db_;
  // Keyed by the address of the SQL literal: every statement text is a
  // constant.
  std::unordered_map<const char*, std::unique_ptr<SqliteStatement>> statements_;
};

absl::StatusOr<bool> SqliteStatement::Step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return db_.StatusFrom(rc, sqlite3_sql(stmt_));
}

int64_t SqliteStatement::Changes() { return sqlite3_changes64(db_.handle()); }

namespace {

absl::Status Migrate(SqliteDb& db) {
  SY_RETURN_IF_ERROR(db.Exec("BEGIN IMMEDIATE"));
  auto migrate = [&]() -> absl::Status {
    SY_RETURN_IF_ERROR(db.Exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER)"));
    SY_ASSIGN_OR_RETURN(SqlStatement * s, db.Prepare("SELECT MAX(version) FROM schema_version"));
    int64_t version = 0;
    absl::StatusOr<bool> has_row = s->Step();
    if (has_row.ok() && *has_row) version = s->Int(0);
    s->Reset();
    SY_RETURN_IF_ERROR(has_row.status());
    if (version > kSchemaVersion) {
      return FailedPrecondition(
          "SCHEMA_TOO_NEW",
          absl::StrCat("database schema version ", version, " is newer than this server's ",
                       kSchemaVersion, "; run a newer server"));
    }
    for (int64_t v = version; v < kSchemaVersion; ++v) {
      SY_RETURN_IF_ERROR(db.Exec(kMigrations[v]));
      SY_RETURN_IF_ERROR(db.Exec(
          absl::StrCat("INSERT INTO schema_version (version) VALUES (", v + 1, ")").c_str()));
      log::Info("store schema migrated", {{"version", v + 1}});
    }
    return absl::OkStatus();
  };
  absl::Status status = migrate();
  if (!status.ok()) {
    db.Exec("ROLLBACK").IgnoreError();
    return status;
  }
  return db.Exec("COMMIT");
}

}  // namespace

absl::StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(const SqliteStoreOptions& options) {
  // Before any other use of SQLite: no memory statistics, whose upkeep takes
  // a global mutex on every allocation.
  static const int initialized = [] {
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    return sqlite3_initialize();
  }();
  if (initialized != SQLITE_OK) {
    return Error(absl::StatusCode::kInternal, "STORE_ERROR",
                 absl::StrCat("cannot initialize SQLite: ", sqlite3_errstr(initialized)));
  }
  SY_ASSIGN_OR_RETURN(std::unique_ptr<SqliteDb> db, SqliteDb::Open(options.path, false));
  // WAL lets readers proceed during writes; synchronous=FULL fsyncs the WAL at
  // every commit, so a commit that returned survives a crash or power loss.
  SY_RETURN_IF_ERROR(db->Exec("PRAGMA journal_mode=WAL"));
  SY_RETURN_IF_ERROR(db->Exec("PRAGMA synchronous=FULL"));
  // A larger page cache for the one writer: fewer reads of hot index pages.
  SY_RETURN_IF_ERROR(db->Exec("PRAGMA cache_size=-65536"));
  SY_RETURN_IF_ERROR(db->Exec("PRAGMA foreign_keys=ON"));
  // Deleted rows (destroyed data keys, revoked secrets) are overwritten with
  // zeros instead of lingering in free pages of the file.
  SY_RETURN_IF_ERROR(db->Exec("PRAGMA secure_delete=ON"));
  SY_RETURN_IF_ERROR(Migrate(*db));
  return std::unique_ptr<SqliteStore>(new SqliteStore(options, std::move(db)));
}

SqliteStore::SqliteStore(SqliteStoreOptions options, std::unique_ptr<SqliteDb> writer)
    : options_(std::move(options)),
      writer_(std::move(writer)),
      writer_thread_([this] { WriterLoop(); }) {}

SqliteStore::~SqliteStore() {
  writes_.Stop();
  writer_thread_.join();
}

absl::Status SqliteStore::Write(absl::FunctionRef<absl::Status(Transaction&)> fn) {
  return writes_.Write(fn);
}

void SqliteStore::WriteAsync(std::function<absl::Status(Transaction&)> fn,
                             std::function<void(absl::Status)> done,
                             absl::string_view fairness_key) {
  writes_.WriteAsync(std::move(fn), std::move(done), fairness_key);
}

void SqliteStore::WriterLoop() {
  while (true) {
    std::vector<WriteQueue::Task*> batch =
        writes_.Take(static_cast<size_t>(std::max(1, options_.max_batch)), /*hold=*/false);
    if (batch.empty()) return;  // stopping, and nothing left to do
    RunBatch(batch);
    commits_.fetch_add(1, std::memory_order_relaxed);
    writes_.Finish(batch, /*hold=*/false);
  }
}

void SqliteStore::RunBatch(const std::vector<WriteQueue::Task*>& batch) {
  SqliteDb& db = *writer_;
  auto fail_all = [&](const absl::Status& status) {
    for (WriteQueue::Task* task : batch) task->result = status;
  };
  if (absl::Status begin = db.ExecCached("BEGIN IMMEDIATE"); !begin.ok()) {
    log::Error("store begin failed", {{"error", begin.ToString()}});
    fail_all(begin);
    return;
  }
  std::vector<EventNotice> inserted;
  std::unique_ptr<Transaction> tx = NewSqlTransaction(db, &inserted);
  // SQLite rolled the whole transaction back (I/O error, disk full), or a
  // task's savepoint could not be undone or released: nothing of this batch
  // may persist (a later SAVEPOINT would otherwise start a transaction of
  // its own).
  const auto aborted = [&] { return sqlite3_get_autocommit(db.handle()) != 0; };
  const auto abort_batch = [&](const absl::Status& why) {
    log::Error("store transaction aborted", {{"error", why.ToString()}});
    if (!aborted()) db.Exec("ROLLBACK").IgnoreError();
    fail_all(Error(absl::StatusCode::kUnavailable, "STORE_UNAVAILABLE",
                   "store transaction aborted; retry"));
  };
  for (WriteQueue::Task* task : batch) {
    const size_t inserted_before = inserted.size();
    absl::Status status = db.ExecCached("SAVEPOINT task");
    if (status.ok()) status = task->fn(*tx);
    if (aborted()) return abort_batch(status);
    if (!status.ok()) {
      absl::Status undo = db.ExecCached("ROLLBACK TO task");
      if (!undo.ok() || aborted()) return abort_batch(undo.ok() ? status : undo);
      inserted.resize(inserted_before);
    }
    absl::Status release = db.ExecCached("RELEASE task");
    if (!release.ok() || aborted()) return abort_batch(release.ok() ? status : release);
    task->result = status;
  }
  if (absl::Status commit = db.ExecCached("COMMIT"); !commit.ok()) {
    log::Error("store commit failed", {{"error", commit.ToString()}});
    db.Exec("ROLLBACK").IgnoreError();
    fail_all(Error(absl::StatusCode::kUnavailable, "STORE_UNAVAILABLE",
                   absl::StrCat("store commit failed; retry: ", commit.message())));
    return;
  }
  if (!inserted.empty()) {
    CommitListener* listener = listener_.load(std::memory_order_acquire);
    if (listener != nullptr) listener->EventsCommitted(MergeNotices(std::move(inserted)));
  }
}

void SqliteStore::SetCommitListener(CommitListener* listener) {
  listener_.store(listener, std::memory_order_release);
}

absl::StatusOr<std::unique_ptr<SqliteDb>> SqliteStore::AcquireReader() {
  {
    absl::MutexLock lock(&readers_mu_);
    auto available = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(readers_mu_) {
      return !idle_readers_.empty() || open_readers_ < options_.read_connections;
    };
    readers_mu_.Await(absl::Condition(&available));
    if (!idle_readers_.empty()) {
      std::unique_ptr<SqliteDb> db = std::move(idle_readers_.back());
      idle_readers_.pop_back();
      return db;
    }
    ++open_readers_;
  }
  auto db = SqliteDb::Open(options_.path, true);
  if (!db.ok()) {
    absl::MutexLock lock(&readers_mu_);
    --open_readers_;
  }
  return db;
}

void SqliteStore::ReturnReader(std::unique_ptr<SqliteDb> db) {
  absl::MutexLock lock(&readers_mu_);
  idle_readers_.push_back(std::move(db));
}

absl::Status SqliteStore::Read(absl::FunctionRef<absl::Status(Transaction&)> fn) {
  SY_ASSIGN_OR_RETURN(std::unique_ptr<SqliteDb> db, AcquireReader());
  absl::Status status = db->Exec("BEGIN");
  if (status.ok()) {
    status = fn(*NewSqlTransaction(*db, nullptr));
    absl::Status end = db->Exec(status.ok() ? "COMMIT" : "ROLLBACK");
    if (status.ok()) status = end;
  }
  ReturnReader(std::move(db));
  return status;
}

int64_t SqliteStore::CommitCountForTest() const { return commits_.load(std::memory_order_relaxed); }

}  // namespace switchyard::storage
