#include "server/storage/sqlite/sqlite_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <tuple>
#include <unordered_map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/log.h"
#include "server/common/status.h"

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
};

constexpr int kSchemaVersion = sizeof(kMigrations) / sizeof(kMigrations[0]);

int64_t ToMicros(absl::Time t) { return absl::ToUnixMicros(t); }

}  // namespace

// One SQLite connection with its prepared statements. Not thread-safe.
class SqliteDb {
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

  ~SqliteDb() {
    for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
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
    auto stmt = Prepare(sql);
    if (!stmt.ok()) return stmt.status();
    int rc = sqlite3_step(*stmt);
    sqlite3_reset(*stmt);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) return StatusFrom(rc, sql);
    return absl::OkStatus();
  }

  // Returns the cached prepared statement for `sql`.
  absl::StatusOr<sqlite3_stmt*> Prepare(const char* sql) {
    auto it = statements_.find(sql);
    if (it != statements_.end()) return it->second;
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) return StatusFrom(rc, "prepare");
    statements_.emplace(sql, stmt);
    return stmt;
  }

 private:
  explicit SqliteDb(sqlite3* db) : db_(db) {}
  sqlite3* db_;
  // Keyed by the address of the SQL literal: every statement text is a
  // constant in this file.
  std::unordered_map<const char*, sqlite3_stmt*> statements_;
};

namespace {

// A prepared statement in use: binds parameters in order, steps, reads
// columns, and resets itself when it goes out of scope.
class Query {
 public:
  Query(SqliteDb& db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  ~Query() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;

  Query& Bind(absl::string_view v) {
    sqlite3_bind_text(stmt_, ++index_, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Query& Bind(const std::string& v) { return Bind(absl::string_view(v)); }
  // Bytes that are not text.
  struct Blob {
    absl::string_view bytes;
  };
  Query& Bind(Blob v) {
    sqlite3_bind_blob(stmt_, ++index_, v.bytes.data(), static_cast<int>(v.bytes.size()),
                      SQLITE_TRANSIENT);
    return *this;
  }
  Query& Bind(const char* v) { return Bind(absl::string_view(v)); }
  Query& Bind(int64_t v) {
    sqlite3_bind_int64(stmt_, ++index_, v);
    return *this;
  }
  Query& Bind(int v) { return Bind(static_cast<int64_t>(v)); }
  Query& Bind(bool v) { return Bind(static_cast<int64_t>(v ? 1 : 0)); }
  Query& Bind(absl::Time t) {
    ++index_;
    if (t == absl::InfinitePast()) {
      sqlite3_bind_null(stmt_, index_);
    } else {
      sqlite3_bind_int64(stmt_, index_, ToMicros(t));
    }
    return *this;
  }
  template <typename... Args>
  Query& BindAll(const Args&... args) {
    (Bind(args), ...);
    return *this;
  }

  // true: a row is available; false: done.
  absl::StatusOr<bool> Step() {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return db_.StatusFrom(rc, sqlite3_sql(stmt_));
  }
  // Runs a statement that returns no rows.
  absl::Status Run() {
    auto r = Step();
    return r.ok() ? absl::OkStatus() : r.status();
  }
  int Changes() const { return sqlite3_changes(db_.handle()); }

  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  std::string Text(int col) const {
    const unsigned char* p = sqlite3_column_text(stmt_, col);
    return p ? std::string(reinterpret_cast<const char*>(p),
                           static_cast<size_t>(sqlite3_column_bytes(stmt_, col)))
             : std::string();
  }
  std::string Bytes(int col) const {
    const void* p = sqlite3_column_blob(stmt_, col);
    return p ? std::string(static_cast<const char*>(p),
                           static_cast<size_t>(sqlite3_column_bytes(stmt_, col)))
             : std::string();
  }
  absl::Time Time(int col) const {
    if (sqlite3_column_type(stmt_, col) == SQLITE_NULL) return absl::InfinitePast();
    return absl::FromUnixMicros(sqlite3_column_int64(stmt_, col));
  }

 private:
  SqliteDb& db_;
  sqlite3_stmt* stmt_;
  int index_ = 0;
};

// --- Column lists and row readers ------------------------------------------

#define POOL_COLS "id, display_name, capacity, reserved, consumed, create_time, update_time"
PoolRow ReadPool(const Query& q) {
  PoolRow r;
  r.id = q.Text(0);
  r.display_name = q.Text(1);
  r.capacity = q.Int(2);
  r.reserved = q.Int(3);
  r.consumed = q.Int(4);
  r.create_time = q.Time(5);
  r.update_time = q.Time(6);
  return r;
}

#define TENANT_COLS                                                                          \
  "id, display_name, pool_id, credit_limit, reserved, consumed, connection_count, deleted, " \
  "create_time, update_time"
TenantRow ReadTenant(const Query& q) {
  TenantRow r;
  r.id = q.Text(0);
  r.display_name = q.Text(1);
  r.pool_id = q.Text(2);
  r.credit_limit = q.Int(3);
  r.reserved = q.Int(4);
  r.consumed = q.Int(5);
  r.connection_count = q.Int(6);
  r.deleted = q.Int(7) != 0;
  r.create_time = q.Time(8);
  r.update_time = q.Time(9);
  return r;
}

#define RESERVATION_COLS                                                            \
  "tenant_id, id, pool_id, amount, state, expire_time, create_time, resolve_time, " \
  "connection_id"
ReservationRow ReadReservation(const Query& q) {
  ReservationRow r;
  r.tenant_id = q.Text(0);
  r.id = q.Text(1);
  r.pool_id = q.Text(2);
  r.amount = q.Int(3);
  r.state = static_cast<int>(q.Int(4));
  r.expire_time = q.Time(5);
  r.create_time = q.Time(6);
  r.resolve_time = q.Time(7);
  r.connection_id = q.Text(8);
  return r;
}

#define CONNECTION_COLS                                                           \
  "tenant_id, id, system_id, deployment, display_name, state, credits, pool_id, " \
  "reservation_id, create_time, update_time, disconnect_time"
ConnectionRow ReadConnection(const Query& q) {
  ConnectionRow r;
  r.tenant_id = q.Text(0);
  r.id = q.Text(1);
  r.system_id = q.Text(2);
  r.deployment = static_cast<int>(q.Int(3));
  r.display_name = q.Text(4);
  r.state = static_cast<int>(q.Int(5));
  r.credits = q.Int(6);
  r.pool_id = q.Text(7);
  r.reservation_id = q.Text(8);
  r.create_time = q.Time(9);
  r.update_time = q.Time(10);
  r.disconnect_time = q.Time(11);
  return r;
}

#define DATA_KEY_COLS "owner, version, master_key_id, wrapped, create_time"
DataKeyRow ReadDataKey(const Query& q) {
  return DataKeyRow{q.Text(0), q.Int(1), q.Text(2), q.Bytes(3), q.Time(4)};
}

#define API_KEY_COLS                                                                           \
  "id, kind, tenant_id, connection_id, hash, hint, display_name, rights, state, create_time, " \
  "expire_time, last_used_time, revoke_time, superseded_by"
ApiKeyRow ReadApiKey(const Query& q) {
  ApiKeyRow r;
  r.id = q.Text(0);
  r.kind = static_cast<int>(q.Int(1));
  r.tenant_id = q.Text(2);
  r.connection_id = q.Text(3);
  r.hash = q.Bytes(4);
  r.hint = q.Text(5);
  r.display_name = q.Text(6);
  r.rights = q.Int(7);
  r.state = static_cast<int>(q.Int(8));
  r.create_time = q.Time(9);
  r.expire_time = q.Time(10);
  r.last_used_time = q.Time(11);
  r.revoke_time = q.Time(12);
  r.superseded_by = q.Text(13);
  return r;
}

#define CREDENTIALS_COLS "tenant_id, connection_id, key_version, sealed, summary, update_time"
CredentialsRow ReadCredentials(const Query& q) {
  return CredentialsRow{q.Text(0), q.Text(1), q.Int(2), q.Bytes(3), q.Bytes(4), q.Time(5)};
}

#define EVENT_INSERT_COLS                                                                   \
  "tenant_id, connection_id, sequence, event_id, type, source, source_time, receive_time, " \
  "content_type, body"
#define EVENT_COLS EVENT_INSERT_COLS ", position"
EventRow ReadEvent(const Query& q) {
  EventRow r;
  r.position = q.Int(10);
  r.tenant_id = q.Text(0);
  r.connection_id = q.Text(1);
  r.sequence = q.Int(2);
  r.event_id = q.Text(3);
  r.type = q.Text(4);
  r.source = static_cast<int>(q.Int(5));
  r.source_time = q.Time(6);
  r.receive_time = q.Time(7);
  r.content_type = q.Text(8);
  r.body = q.Bytes(9);
  return r;
}

#define SUBSCRIPTION_COLS "tenant_id, id, config, start_position, generation, create_time"
SubscriptionRow ReadSubscription(const Query& q) {
  return SubscriptionRow{q.Text(0), q.Text(1), q.Bytes(2), q.Int(3), q.Int(4), q.Time(5)};
}

#define DEAD_LETTER_COLS                                                                    \
  "subscription_tenant_id, subscription_id, position, tenant_id, connection_id, sequence, " \
  "attempts, dead_time, replaying"
DeadLetterRow ReadDeadLetter(const Query& q) {
  DeadLetterRow r;
  r.subscription_tenant_id = q.Text(0);
  r.subscription_id = q.Text(1);
  r.position = q.Int(2);
  r.tenant_id = q.Text(3);
  r.connection_id = q.Text(4);
  r.sequence = q.Int(5);
  r.attempts = static_cast<int>(q.Int(6));
  r.dead_time = q.Time(7);
  r.replaying = q.Int(8) != 0;
  return r;
}

#define HEALTH_COLS                                                                  \
  "tenant_id, connection_id, url, interval_ms, timeout_ms, expected_status, state, " \
  "state_change_time, last_check_time, last_result, consecutive_failures, consecutive_successes"
ConnectionHealthRow ReadHealth(const Query& q) {
  ConnectionHealthRow r;
  r.tenant_id = q.Text(0);
  r.connection_id = q.Text(1);
  r.url = q.Text(2);
  r.interval_ms = q.Int(3);
  r.timeout_ms = q.Int(4);
  r.expected_status = static_cast<int>(q.Int(5));
  r.state = static_cast<int>(q.Int(6));
  r.state_change_time = q.Time(7);
  r.last_check_time = q.Time(8);
  r.last_result = q.Text(9);
  r.consecutive_failures = static_cast<int>(q.Int(10));
  r.consecutive_successes = static_cast<int>(q.Int(11));
  return r;
}

#define FEED_COLS                                                                          \
  "tenant_id, connection_id, url, interval_ms, mode, silence_ms, cursor, last_poll_time, " \
  "last_result, events_stored"
ChangeFeedRow ReadFeed(const Query& q) {
  ChangeFeedRow r;
  r.tenant_id = q.Text(0);
  r.connection_id = q.Text(1);
  r.url = q.Text(2);
  r.interval_ms = q.Int(3);
  r.mode = static_cast<int>(q.Int(4));
  r.silence_ms = q.Int(5);
  r.cursor = q.Text(6);
  r.last_poll_time = q.Time(7);
  r.last_result = q.Text(8);
  r.events_stored = q.Int(9);
  return r;
}

#define INCIDENT_COLS \
  "id, title, component, severity, state, start_time, end_time, automatic, notes"
IncidentRow ReadIncident(const Query& q) {
  IncidentRow r;
  r.id = q.Int(0);
  r.title = q.Text(1);
  r.component = q.Text(2);
  r.severity = static_cast<int>(q.Int(3));
  r.state = static_cast<int>(q.Int(4));
  r.start_time = q.Time(5);
  r.end_time = q.Time(6);
  r.automatic = q.Int(7) != 0;
  r.notes = q.Bytes(8);
  return r;
}

#define WEBHOOK_SECRET_COLS \
  "tenant_id, connection_id, version, key_version, sealed, create_time, expire_time"
WebhookSecretRow ReadWebhookSecret(const Query& q) {
  return WebhookSecretRow{q.Text(0),  q.Text(1), q.Int(2), q.Int(3),
                          q.Bytes(4), q.Time(5), q.Time(6)};
}

#define JOURNAL_COLS                                                                  \
  "sequence, kind, amount, time, pool_id, tenant_id, connection_id, reservation_id, " \
  "request_id, capacity_after, reserved_after, consumed_after"
JournalRow ReadJournal(const Query& q) {
  JournalRow r;
  r.sequence = q.Int(0);
  r.kind = static_cast<int>(q.Int(1));
  r.amount = q.Int(2);
  r.time = q.Time(3);
  r.pool_id = q.Text(4);
  r.tenant_id = q.Text(5);
  r.connection_id = q.Text(6);
  r.reservation_id = q.Text(7);
  r.request_id = q.Text(8);
  r.capacity_after = q.Int(9);
  r.reserved_after = q.Int(10);
  r.consumed_after = q.Int(11);
  return r;
}

// Runs the query and collects every row with `read`.
template <typename Row, typename Reader>
absl::StatusOr<std::vector<Row>> Collect(Query& q, Reader read) {
  std::vector<Row> rows;
  while (true) {
    SY_ASSIGN_OR_RETURN(bool has_row, q.Step());
    if (!has_row) return rows;
    rows.push_back(read(q));
  }
}

template <typename Row, typename Reader>
absl::StatusOr<std::optional<Row>> One(Query& q, Reader read) {
  SY_ASSIGN_OR_RETURN(bool has_row, q.Step());
  if (!has_row) return std::optional<Row>();
  return std::optional<Row>(read(q));
}

class SqliteTransaction final : public Transaction {
 public:
  // `inserted` (optional) collects the events inserted.
  explicit SqliteTransaction(SqliteDb& db, std::vector<EventNotice>* inserted = nullptr)
      : db_(db), inserted_(inserted) {}

  absl::StatusOr<std::optional<PoolRow>> GetPool(absl::string_view id) override {
    static constexpr const char* kSql = "SELECT " POOL_COLS " FROM pools WHERE id = ?";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    q.BindAll(id);
    return One<PoolRow>(q, ReadPool);
  }
  absl::StatusOr<std::vector<PoolRow>> ListPools(absl::string_view after, int limit) override {
    static constexpr const char* kSql =
        "SELECT " POOL_COLS " FROM pools WHERE id > ? ORDER BY id LIMIT ?";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    q.BindAll(after, limit);
    return Collect<PoolRow>(q, ReadPool);
  }
  absl::Status InsertPool(const PoolRow& r) override {
    static constexpr const char* kSql =
        "INSERT INTO pools (" POOL_COLS ") VALUES (?, ?, ?, ?, ?, ?, ?)";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    return q
        .BindAll(r.id, r.display_name, r.capacity, r.reserved, r.consumed, r.create_time,
                 r.update_time)
        .Run();
  }
  absl::Status UpdatePool(const PoolRow& r) override {
    static constexpr const char* kSql =
        "UPDATE pools SET display_name = ?, capacity = ?, reserved = ?, consumed = ?, "
        "create_time = ?, update_time = ? WHERE id = ?";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    q.BindAll(r.display_name, r.capacity, r.reserved, r.consumed, r.create_time, r.update_time,
              r.id);
    return RunUpdate(q, "pool");
  }

  absl::StatusOr<std::optional<TenantRow>> GetTenant(absl::string_view id) override {
    static constexpr const char* kSql = "SELECT " TENANT_COLS " FROM tenants WHERE id = ?";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    q.BindAll(id);
    return One<TenantRow>(q, ReadTenant);
  }
  absl::StatusOr<std::vector<TenantRow>> ListTenants(absl::string_view after, int limit) override {
    static constexpr const char* kSql = "SELECT " TENANT_COLS
                                        " FROM tenants WHERE id > ? AND deleted = 0 "
                                        "ORDER BY id LIMIT ?";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    q.BindAll(after, limit);
    return Collect<TenantRow>(q, ReadTenant);
  }
  absl::Status InsertTenant(const TenantRow& r) override {
    static constexpr const char* kSql =
        "INSERT INTO tenants (" TENANT_COLS ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    return q
        .BindAll(r.id, r.display_name, r.pool_id, r.credit_limit, r.reserved, r.consumed,
                 r.connection_count, r.deleted, r.create_time, r.update_time)
        .Run();
  }
  absl::Status UpdateTenant(const TenantRow& r) override {
    static constexpr const char* kSql =
        "UPDATE tenants SET display_name = ?, pool_id = ?, credit_limit = ?, reserved = ?, "
        "consumed = ?, connection_count = ?, deleted = ?, create_time = ?, update_time = ? "
        "WHERE id = ?";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    q.BindAll(r.display_name, r.pool_id, r.credit_limit, r.reserved, r.consumed, r.connection_count,
              r.deleted, r.create_time, r.update_time, r.id);
    return RunUpdate(q, "tenant");
  }

  absl::StatusOr<std::optional<ReservationRow>> GetReservation(absl::string_view tenant_id,
                                                               absl::string_view id) override {
    static constexpr const char* kSql =
        "SELECT " RESERVATION_COLS " FROM reservations WHERE tenant_id = ? AND id = ?";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    q.BindAll(tenant_id, id);
    return One<ReservationRow>(q, ReadReservation);
  }
  absl::Status InsertReservation(const ReservationRow& r) override {
    static constexpr const char* kSql =
        "INSERT INTO reservations (" RESERVATION_COLS ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    return q
        .BindAll(r.tenant_id, r.id, r.pool_id, r.amount, r.state, r.expire_time, r.create_time,
                 r.resolve_time, r.connection_id)
        .Run();
  }
  absl::Status UpdateReservation(const ReservationRow& r) override {
    static constexpr const char* kSql =
        "UPDATE reservations SET pool_id = ?, amount = ?, state = ?, expire_time = ?, "
        "create_time = ?, resolve_time = ?, connection_id = ? WHERE tenant_id = ? AND id = ?";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    q.BindAll(r.pool_id, r.amount, r.state, r.expire_time, r.create_time, r.resolve_time,
              r.connection_id, r.tenant_id, r.id);
    return RunUpdate(q, "reservation");
  }
  absl::StatusOr<std::vector<ReservationRow>> ListReservationsExpiringBy(absl::string_view pool_id,
                                                                         int state, absl::Time now,
                                                                         int limit) override {
    static constexpr const char* kAllPools =
        "SELECT " RESERVATION_COLS
        " FROM reservations WHERE state = ? AND expire_time <= ? ORDER BY expire_time LIMIT ?";
    static constexpr const char* kOnePool =
        "SELECT " RESERVATION_COLS
        " FROM reservations WHERE pool_id = ? AND state = ? AND expire_time <= ? "
        "ORDER BY expire_time LIMIT ?";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(pool_id.empty() ? kAllPools : kOnePool));
    Query q(db_, s);
    if (!pool_id.empty()) q.Bind(pool_id);
    q.BindAll(state, now, limit);
    return Collect<ReservationRow>(q, ReadReservation);
  }
  absl::StatusOr<std::vector<ReservationRow>> ListReservations(absl::string_view tenant_id,
                                                               int state, absl::string_view after,
                                                               int limit) override {
    static constexpr const char* kSql =
        "SELECT " RESERVATION_COLS
        " FROM reservations WHERE tenant_id = ? AND id > ? AND (? = 0 OR state = ?) "
        "ORDER BY id LIMIT ?";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    q.BindAll(tenant_id, after, state, state, limit);
    return Collect<ReservationRow>(q, ReadReservation);
  }

  absl::StatusOr<std::optional<ConnectionRow>> GetConnection(absl::string_view tenant_id,
                                                             absl::string_view id) override {
    static constexpr const char* kSql =
        "SELECT " CONNECTION_COLS " FROM connections WHERE tenant_id = ? AND id = ?";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    q.BindAll(tenant_id, id);
    SY_ASSIGN_OR_RETURN(std::optional<ConnectionRow> row, One<ConnectionRow>(q, ReadConnection));
    if (row.has_value()) SY_RETURN_IF_ERROR(LoadMetadata(*row));
    return row;
  }
  absl::StatusOr<std::optional<int>> GetConnectionState(absl::string_view tenant_id,
                                                        absl::string_view id) override {
    static constexpr const char* kSql =
        "SELECT state FROM connections WHERE tenant_id = ? AND id = ?";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    q.BindAll(tenant_id, id);
    return One<int>(q, [](const Query& q) { return static_cast<int>(q.Int(0)); });
  }
  absl::Status InsertConnection(const ConnectionRow& r) override {
    static constexpr const char* kSql =
        "INSERT INTO connections (" CONNECTION_COLS ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    {
      Query q(db_, s);
      SY_RETURN_IF_ERROR(q.BindAll(r.tenant_id, r.id, r.system_id, r.deployment, r.display_name,
                                   r.state, r.credits, r.pool_id, r.reservation_id, r.create_time,
                                   r.update_time, r.disconnect_time)
                             .Run());
    }
    return StoreMetadata(r);
  }
  absl::Status UpdateConnection(const ConnectionRow& r) override {
    static constexpr const char* kSql =
        "UPDATE connections SET system_id = ?, deployment = ?, display_name = ?, state = ?, "
        "credits = ?, pool_id = ?, reservation_id = ?, create_time = ?, update_time = ?, "
        "disconnect_time = ? WHERE tenant_id = ? AND id = ?";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    {
      Query q(db_, s);
      q.BindAll(r.system_id, r.deployment, r.display_name, r.state, r.credits, r.pool_id,
                r.reservation_id, r.create_time, r.update_time, r.disconnect_time, r.tenant_id,
                r.id);
      SY_RETURN_IF_ERROR(RunUpdate(q, "connection"));
    }
    return StoreMetadata(r);
  }
  absl::StatusOr<std::vector<ConnectionRow>> ListConnections(absl::string_view tenant_id,
                                                             const ConnectionFilter& filter,
                                                             absl::string_view after,
                                                             int limit) override {
    static constexpr const char* kSql =
        "SELECT " CONNECTION_COLS
        " FROM connections WHERE tenant_id = ? AND id > ? AND (? = '' OR system_id = ?) "
        "AND (? = 0 OR state = ?) ORDER BY id LIMIT ?";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    std::vector<ConnectionRow> rows;
    {
      Query q(db_, s);
      q.BindAll(tenant_id, after, filter.system_id, filter.system_id, filter.state, filter.state,
                limit);
      SY_ASSIGN_OR_RETURN(rows, Collect<ConnectionRow>(q, ReadConnection));
    }
    for (ConnectionRow& row : rows) SY_RETURN_IF_ERROR(LoadMetadata(row));
    return rows;
  }

  absl::StatusOr<int64_t> AppendJournal(const JournalRow& r) override {
    static constexpr const char* kSql =
        "INSERT INTO journal (kind, amount, time, pool_id, tenant_id, connection_id, "
        "reservation_id, request_id, capacity_after, reserved_after, consumed_after) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    SY_RETURN_IF_ERROR(q.BindAll(r.kind, r.amount, r.time, r.pool_id, r.tenant_id, r.connection_id,
                                 r.reservation_id, r.request_id, r.capacity_after, r.reserved_after,
                                 r.consumed_after)
                           .Run());
    return static_cast<int64_t>(sqlite3_last_insert_rowid(db_.handle()));
  }
  absl::StatusOr<std::vector<JournalRow>> ListJournal(absl::string_view pool_id,
                                                      absl::string_view tenant_id, int64_t after,
                                                      int limit) override {
    static constexpr const char* kAll = "SELECT " JOURNAL_COLS
                                        " FROM journal WHERE pool_id = ? AND sequence > ? "
                                        "ORDER BY sequence LIMIT ?";
    static constexpr const char* kTenant =
        "SELECT " JOURNAL_COLS
        " FROM journal WHERE pool_id = ? AND tenant_id = ? AND sequence > ? "
        "ORDER BY sequence LIMIT ?";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(tenant_id.empty() ? kAll : kTenant));
    Query q(db_, s);
    q.Bind(pool_id);
    if (!tenant_id.empty()) q.Bind(tenant_id);
    q.BindAll(after, limit);
    return Collect<JournalRow>(q, ReadJournal);
  }

  absl::StatusOr<std::vector<DataKeyRow>> ListDataKeys(absl::string_view owner) override {
    static constexpr const char* kSql =
        "SELECT " DATA_KEY_COLS " FROM data_keys WHERE owner = ? ORDER BY version";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    q.BindAll(owner);
    return Collect<DataKeyRow>(q, ReadDataKey);
  }
  absl::StatusOr<std::vector<DataKeyRow>> ListDataKeysNotWrappedBy(absl::string_view master_key_id,
                                                                   int limit) override {
    static constexpr const char* kSql = "SELECT " DATA_KEY_COLS
                                        " FROM data_keys WHERE master_key_id <> ? "
                                        "ORDER BY owner, version LIMIT ?";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    q.BindAll(master_key_id, limit);
    return Collect<DataKeyRow>(q, ReadDataKey);
  }
  absl::Status InsertDataKey(const DataKeyRow& r) override {
    static constexpr const char* kSql =
        "INSERT INTO data_keys (" DATA_KEY_COLS ") VALUES (?, ?, ?, ?, ?)";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    return q.BindAll(r.owner, r.version, r.master_key_id, Query::Blob{r.wrapped}, r.create_time)
        .Run();
  }
  absl::Status UpdateDataKey(const DataKeyRow& r) override {
    static constexpr const char* kSql =
        "UPDATE data_keys SET master_key_id = ?, wrapped = ? WHERE owner = ? AND version = ?";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    q.BindAll(r.master_key_id, Query::Blob{r.wrapped}, r.owner, r.version);
    return RunUpdate(q, "data key");
  }
  absl::Status DeleteDataKeys(absl::string_view owner, int64_t below_version) override {
    static constexpr const char* kSql = "DELETE FROM data_keys WHERE owner = ? AND version < ?";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    return q.BindAll(owner, below_version).Run();
  }

  absl::StatusOr<std::optional<ApiKeyRow>> GetApiKey(absl::string_view id) override {
    static constexpr const char* kSql = "SELECT " API_KEY_COLS " FROM api_keys WHERE id = ?";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    q.BindAll(id);
    return One<ApiKeyRow>(q, ReadApiKey);
  }
  absl::StatusOr<std::optional<ApiKeyRow>> GetApiKeyByHash(absl::string_view hash) override {
    static constexpr const char* kSql = "SELECT " API_KEY_COLS " FROM api_keys WHERE hash = ?";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    q.Bind(Query::Blob{hash});
    return One<ApiKeyRow>(q, ReadApiKey);
  }
  absl::Status InsertApiKey(const ApiKeyRow& r) override {
    static constexpr const char* kSql =
        "INSERT INTO api_keys (" API_KEY_COLS ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    return q
        .BindAll(r.id, r.kind, r.tenant_id, r.connection_id, Query::Blob{r.hash}, r.hint,
                 r.display_name, r.rights, r.state, r.create_time, r.expire_time, r.last_used_time,
                 r.revoke_time, r.superseded_by)
        .Run();
  }
  absl::Status UpdateApiKey(const ApiKeyRow& r) override {
    static constexpr const char* kSql =
        "UPDATE api_keys SET display_name = ?, rights = ?, state = ?, expire_time = ?, "
        "last_used_time = ?, revoke_time = ?, superseded_by = ? WHERE id = ?";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    q.BindAll(r.display_name, r.rights, r.state, r.expire_time, r.last_used_time, r.revoke_time,
              r.superseded_by, r.id);
    return RunUpdate(q, "api key");
  }
  absl::StatusOr<std::vector<ApiKeyRow>> ListApiKeys(int kind, absl::string_view tenant_id,
                                                     absl::string_view connection_id,
                                                     absl::string_view after, int limit) override {
    // One statement per filter shape, so that each can use the owner index
    // (an "? = '' OR column = ?" condition would force a full scan).
    static constexpr const char* kAny = "SELECT " API_KEY_COLS
                                        " FROM api_keys WHERE (? = 0 OR kind = ?) AND id > ? "
                                        "ORDER BY id LIMIT ?";
    static constexpr const char* kTenant =
        "SELECT " API_KEY_COLS
        " FROM api_keys WHERE tenant_id = ? AND (? = 0 OR kind = ?) AND id > ? "
        "ORDER BY id LIMIT ?";
    static constexpr const char* kConnection =
        "SELECT " API_KEY_COLS
        " FROM api_keys WHERE tenant_id = ? AND connection_id = ? AND (? = 0 OR kind = ?) "
        "AND id > ? ORDER BY id LIMIT ?";
    const char* sql = tenant_id.empty() ? kAny : connection_id.empty() ? kTenant : kConnection;
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(sql));
    Query q(db_, s);
    if (!tenant_id.empty()) q.Bind(tenant_id);
    if (!tenant_id.empty() && !connection_id.empty()) q.Bind(connection_id);
    q.BindAll(kind, kind, after, limit);
    return Collect<ApiKeyRow>(q, ReadApiKey);
  }

  absl::StatusOr<std::optional<CredentialsRow>> GetCredentials(
      absl::string_view tenant_id, absl::string_view connection_id) override {
    static constexpr const char* kSql =
        "SELECT " CREDENTIALS_COLS " FROM credentials WHERE tenant_id = ? AND connection_id = ?";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    q.BindAll(tenant_id, connection_id);
    return One<CredentialsRow>(q, ReadCredentials);
  }
  absl::Status PutCredentials(const CredentialsRow& r) override {
    static constexpr const char* kSql =
        "INSERT OR REPLACE INTO credentials (" CREDENTIALS_COLS ") VALUES (?, ?, ?, ?, ?, ?)";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    return q
        .BindAll(r.tenant_id, r.connection_id, r.key_version, Query::Blob{r.sealed},
                 Query::Blob{r.summary}, r.update_time)
        .Run();
  }
  absl::Status DeleteCredentials(absl::string_view tenant_id,
                                 absl::string_view connection_id) override {
    static constexpr const char* kSql =
        "DELETE FROM credentials WHERE tenant_id = ? AND connection_id = ?";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    return q.BindAll(tenant_id, connection_id).Run();
  }
  absl::StatusOr<std::vector<CredentialsRow>> ListCredentials(absl::string_view tenant_id,
                                                              absl::string_view after,
                                                              int limit) override {
    static constexpr const char* kSql =
        "SELECT " CREDENTIALS_COLS
        " FROM credentials WHERE tenant_id = ? AND connection_id > ? ORDER BY connection_id "
        "LIMIT ?";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    q.BindAll(tenant_id, after, limit);
    return Collect<CredentialsRow>(q, ReadCredentials);
  }

  absl::StatusOr<std::optional<EventRow>> GetEventById(absl::string_view tenant_id,
                                                       absl::string_view connection_id,
                                                       absl::string_view event_id) override {
    static constexpr const char* kSql =
        "SELECT " EVENT_COLS
        " FROM events WHERE tenant_id = ? AND connection_id = ? AND event_id = ?";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    q.BindAll(tenant_id, connection_id, event_id);
    return One<EventRow>(q, ReadEvent);
  }
  absl::StatusOr<int64_t> LastEventSequence(absl::string_view tenant_id,
                                            absl::string_view connection_id) override {
    static constexpr const char* kSql =
        "SELECT MAX(sequence) FROM events WHERE tenant_id = ? AND connection_id = ?";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    q.BindAll(tenant_id, connection_id);
    SY_ASSIGN_OR_RETURN(bool has_row, q.Step());
    return has_row ? q.Int(0) : int64_t{0};
  }
  absl::Status InsertEvent(const EventRow& r) override {
    static constexpr const char* kSql =
        "INSERT INTO events (" EVENT_INSERT_COLS ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    SY_RETURN_IF_ERROR(q.BindAll(r.tenant_id, r.connection_id, r.sequence, r.event_id, r.type,
                                 r.source, r.source_time, r.receive_time, r.content_type,
                                 Query::Blob{r.body})
                           .Run());
    if (inserted_ != nullptr) inserted_->push_back({r.tenant_id, r.connection_id, r.sequence});
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<EventRow>> ListEvents(absl::string_view tenant_id,
                                                   absl::string_view connection_id, int64_t after,
                                                   int limit) override {
    static constexpr const char* kSql =
        "SELECT " EVENT_COLS
        " FROM events WHERE tenant_id = ? AND connection_id = ? AND sequence > ? "
        "ORDER BY sequence LIMIT ?";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    q.BindAll(tenant_id, connection_id, after, limit);
    return Collect<EventRow>(q, ReadEvent);
  }

  absl::StatusOr<std::optional<ConnectionHealthRow>> GetConnectionHealth(
      absl::string_view tenant_id, absl::string_view connection_id) override {
    static constexpr const char* kSql =
        "SELECT " HEALTH_COLS " FROM connection_health WHERE tenant_id = ? AND connection_id = ?";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    q.BindAll(tenant_id, connection_id);
    return One<ConnectionHealthRow>(q, ReadHealth);
  }
  absl::Status PutConnectionHealth(const ConnectionHealthRow& r) override {
    static constexpr const char* kSql = "INSERT OR REPLACE INTO connection_health (" HEALTH_COLS
                                        ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    return q
        .BindAll(r.tenant_id, r.connection_id, r.url, r.interval_ms, r.timeout_ms,
                 r.expected_status, r.state, r.state_change_time, r.last_check_time, r.last_result,
                 r.consecutive_failures, r.consecutive_successes)
        .Run();
  }
  absl::Status DeleteConnectionHealth(absl::string_view tenant_id,
                                      absl::string_view connection_id) override {
    static constexpr const char* kSql =
        "DELETE FROM connection_health WHERE tenant_id = ? AND connection_id = ?";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    return q.BindAll(tenant_id, connection_id).Run();
  }
  absl::StatusOr<std::vector<ConnectionHealthRow>> ListConnectionHealth() override {
    static constexpr const char* kSql =
        "SELECT " HEALTH_COLS " FROM connection_health ORDER BY tenant_id, connection_id";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    return Collect<ConnectionHealthRow>(q, ReadHealth);
  }
  absl::StatusOr<std::optional<ChangeFeedRow>> GetChangeFeed(
      absl::string_view tenant_id, absl::string_view connection_id) override {
    static constexpr const char* kSql =
        "SELECT " FEED_COLS " FROM change_feeds WHERE tenant_id = ? AND connection_id = ?";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    q.BindAll(tenant_id, connection_id);
    return One<ChangeFeedRow>(q, ReadFeed);
  }
  absl::Status PutChangeFeed(const ChangeFeedRow& r) override {
    static constexpr const char* kSql =
        "INSERT OR REPLACE INTO change_feeds (" FEED_COLS ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    return q
        .BindAll(r.tenant_id, r.connection_id, r.url, r.interval_ms, r.mode, r.silence_ms, r.cursor,
                 r.last_poll_time, r.last_result, r.events_stored)
        .Run();
  }
  absl::Status DeleteChangeFeed(absl::string_view tenant_id,
                                absl::string_view connection_id) override {
    static constexpr const char* kSql =
        "DELETE FROM change_feeds WHERE tenant_id = ? AND connection_id = ?";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    return q.BindAll(tenant_id, connection_id).Run();
  }
  absl::StatusOr<std::vector<ChangeFeedRow>> ListChangeFeeds() override {
    static constexpr const char* kSql =
        "SELECT " FEED_COLS " FROM change_feeds ORDER BY tenant_id, connection_id";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    return Collect<ChangeFeedRow>(q, ReadFeed);
  }
  absl::StatusOr<absl::Time> LastEventReceiveTime(absl::string_view tenant_id,
                                                  absl::string_view connection_id,
                                                  int source) override {
    static constexpr const char* kSql =
        "SELECT receive_time FROM events WHERE tenant_id = ? AND connection_id = ? AND "
        "source = ? ORDER BY sequence DESC LIMIT 1";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    q.BindAll(tenant_id, connection_id, source);
    SY_ASSIGN_OR_RETURN(bool has_row, q.Step());
    return has_row ? q.Time(0) : absl::InfinitePast();
  }

  absl::StatusOr<int64_t> InsertIncident(const IncidentRow& r) override {
    static constexpr const char* kSql =
        "INSERT INTO incidents (title, component, severity, state, start_time, end_time, "
        "automatic, notes) VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    SY_RETURN_IF_ERROR(q.BindAll(r.title, r.component, r.severity, r.state, r.start_time,
                                 r.end_time, r.automatic, Query::Blob{r.notes})
                           .Run());
    return static_cast<int64_t>(sqlite3_last_insert_rowid(db_.handle()));
  }
  absl::Status UpdateIncident(const IncidentRow& r) override {
    static constexpr const char* kSql =
        "UPDATE incidents SET title = ?, component = ?, severity = ?, state = ?, start_time = ?, "
        "end_time = ?, automatic = ?, notes = ? WHERE id = ?";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    q.BindAll(r.title, r.component, r.severity, r.state, r.start_time, r.end_time, r.automatic,
              Query::Blob{r.notes}, r.id);
    return RunUpdate(q, "incident");
  }
  absl::StatusOr<std::optional<IncidentRow>> GetIncident(int64_t id) override {
    static constexpr const char* kSql = "SELECT " INCIDENT_COLS " FROM incidents WHERE id = ?";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    q.BindAll(id);
    return One<IncidentRow>(q, ReadIncident);
  }
  absl::StatusOr<std::vector<IncidentRow>> ListIncidents(int state, int64_t before,
                                                         int limit) override {
    static constexpr const char* kSql =
        "SELECT " INCIDENT_COLS
        " FROM incidents WHERE (? = 0 OR state = ?) AND (? = 0 OR id < ?) ORDER BY id DESC "
        "LIMIT ?";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    q.BindAll(state, state, before, before, limit);
    return Collect<IncidentRow>(q, ReadIncident);
  }
  absl::StatusOr<std::optional<IncidentRow>> FindOpenIncident(
      absl::string_view component) override {
    static constexpr const char* kSql =
        "SELECT " INCIDENT_COLS " FROM incidents WHERE component = ? AND state = 1 LIMIT 1";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    q.BindAll(component);
    return One<IncidentRow>(q, ReadIncident);
  }

  absl::StatusOr<std::vector<SystemHealthCount>> CountLiveConnectionsBySystem() override {
    static constexpr const char* kSql =
        "SELECT c.system_id, COALESCE(h.state, 0), COUNT(*) FROM connections c "
        "LEFT JOIN connection_health h ON h.tenant_id = c.tenant_id AND h.connection_id = c.id "
        "WHERE c.state != 5 GROUP BY 1, 2 ORDER BY 1, 2";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    return Collect<SystemHealthCount>(q, [](const Query& q) {
      return SystemHealthCount{q.Text(0), static_cast<int>(q.Int(1)), q.Int(2)};
    });
  }

  absl::StatusOr<std::map<int, int64_t>> CountConnectionsByState() override {
    static constexpr const char* kSql = "SELECT state, COUNT(*) FROM connections GROUP BY state";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    std::map<int, int64_t> counts;
    while (true) {
      SY_ASSIGN_OR_RETURN(bool has_row, q.Step());
      if (!has_row) return counts;
      counts[static_cast<int>(q.Int(0))] = q.Int(1);
    }
  }

  absl::StatusOr<std::optional<EventRow>> GetEvent(absl::string_view tenant_id,
                                                   absl::string_view connection_id,
                                                   int64_t sequence) override {
    static constexpr const char* kSql =
        "SELECT " EVENT_COLS
        " FROM events WHERE tenant_id = ? AND connection_id = ? AND sequence = ?";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    q.BindAll(tenant_id, connection_id, sequence);
    return One<EventRow>(q, ReadEvent);
  }
  absl::StatusOr<int64_t> FirstEventSequenceAfter(absl::string_view tenant_id,
                                                  absl::string_view connection_id,
                                                  int64_t position) override {
    static constexpr const char* kSql =
        "SELECT sequence FROM events WHERE tenant_id = ? AND connection_id = ? AND position > ? "
        "ORDER BY sequence LIMIT 1";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    q.BindAll(tenant_id, connection_id, position);
    SY_ASSIGN_OR_RETURN(bool has_row, q.Step());
    return has_row ? q.Int(0) : int64_t{0};
  }
  absl::StatusOr<int64_t> LastEventPosition() override {
    static constexpr const char* kSql = "SELECT MAX(position) FROM events";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    SY_ASSIGN_OR_RETURN(bool has_row, q.Step());
    return has_row ? q.Int(0) : int64_t{0};
  }
  absl::StatusOr<int64_t> FirstEventPositionAt(absl::Time time) override {
    static constexpr const char* kSql = "SELECT MIN(position) FROM events WHERE receive_time >= ?";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    q.BindAll(time);
    SY_ASSIGN_OR_RETURN(bool has_row, q.Step());
    return has_row ? q.Int(0) : int64_t{0};
  }
  absl::StatusOr<EventSweep> SweepEvents(absl::Time cutoff, int64_t after_position,
                                         int limit) override {
    static constexpr const char* kScan =
        "SELECT position, tenant_id, connection_id, sequence, receive_time FROM events "
        "WHERE position > ? ORDER BY position LIMIT ?";
    static constexpr const char* kDelete = "DELETE FROM events WHERE position = ?";
    struct Candidate {
      int64_t position;
      std::string tenant_id, connection_id;
      int64_t sequence;
      absl::Time receive_time;
    };
    std::vector<Candidate> candidates;
    {
      SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kScan));
      Query q(db_, s);
      q.BindAll(after_position, limit);
      while (true) {
        SY_ASSIGN_OR_RETURN(bool has_row, q.Step());
        if (!has_row) break;
        candidates.push_back({q.Int(0), q.Text(1), q.Text(2), q.Int(3), q.Time(4)});
      }
    }
    EventSweep sweep;
    sweep.next_position = after_position;
    sweep.done = static_cast<int>(candidates.size()) < limit;
    for (const Candidate& c : candidates) {
      if (c.receive_time >= cutoff) {
        sweep.done = true;
        break;
      }
      SY_ASSIGN_OR_RETURN(int64_t last, LastEventSequence(c.tenant_id, c.connection_id));
      if (c.sequence < last) {
        SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kDelete));
        Query q(db_, s);
        SY_RETURN_IF_ERROR(q.BindAll(c.position).Run());
        ++sweep.deleted;
      }
      sweep.next_position = c.position;
    }
    return sweep;
  }

  absl::StatusOr<std::optional<SubscriptionRow>> GetSubscription(absl::string_view tenant_id,
                                                                 absl::string_view id) override {
    static constexpr const char* kSql =
        "SELECT " SUBSCRIPTION_COLS " FROM subscriptions WHERE tenant_id = ? AND id = ?";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    q.BindAll(tenant_id, id);
    return One<SubscriptionRow>(q, ReadSubscription);
  }
  absl::Status InsertSubscription(const SubscriptionRow& r) override {
    static constexpr const char* kSql =
        "INSERT INTO subscriptions (" SUBSCRIPTION_COLS ") VALUES (?, ?, ?, ?, ?, ?)";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    return q
        .BindAll(r.tenant_id, r.id, Query::Blob{r.config}, r.start_position, r.generation,
                 r.create_time)
        .Run();
  }
  absl::Status UpdateSubscription(const SubscriptionRow& r) override {
    static constexpr const char* kSql =
        "UPDATE subscriptions SET config = ?, start_position = ?, generation = ?, "
        "create_time = ? WHERE tenant_id = ? AND id = ?";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    q.BindAll(Query::Blob{r.config}, r.start_position, r.generation, r.create_time, r.tenant_id,
              r.id);
    return RunUpdate(q, "subscription");
  }
  absl::Status DeleteSubscription(absl::string_view tenant_id, absl::string_view id) override {
    static constexpr const char* kSql[] = {
        "DELETE FROM subscriptions WHERE tenant_id = ? AND id = ?",
        "DELETE FROM subscription_cursors WHERE subscription_tenant_id = ? AND "
        "subscription_id = ?",
        "DELETE FROM dead_letters WHERE subscription_tenant_id = ? AND subscription_id = ?",
    };
    for (const char* sql : kSql) {
      SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(sql));
      Query q(db_, s);
      SY_RETURN_IF_ERROR(q.BindAll(tenant_id, id).Run());
    }
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<SubscriptionRow>> ListSubscriptions(absl::string_view tenant_id,
                                                                 absl::string_view after,
                                                                 int limit) override {
    static constexpr const char* kSql =
        "SELECT " SUBSCRIPTION_COLS
        " FROM subscriptions WHERE tenant_id = ? AND id > ? ORDER BY id LIMIT ?";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    q.BindAll(tenant_id, after, limit);
    return Collect<SubscriptionRow>(q, ReadSubscription);
  }
  absl::StatusOr<std::vector<SubscriptionCursorRow>> ListSubscriptionCursors(
      absl::string_view subscription_tenant_id, absl::string_view subscription_id) override {
    static constexpr const char* kSql =
        "SELECT subscription_tenant_id, subscription_id, tenant_id, connection_id, "
        "resolved_through FROM subscription_cursors WHERE subscription_tenant_id = ? AND "
        "subscription_id = ? ORDER BY tenant_id, connection_id";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    q.BindAll(subscription_tenant_id, subscription_id);
    return Collect<SubscriptionCursorRow>(q, [](const Query& q) {
      return SubscriptionCursorRow{q.Text(0), q.Text(1), q.Text(2), q.Text(3), q.Int(4)};
    });
  }
  absl::Status PutSubscriptionCursor(const SubscriptionCursorRow& r) override {
    static constexpr const char* kSql =
        "INSERT OR REPLACE INTO subscription_cursors (subscription_tenant_id, subscription_id, "
        "tenant_id, connection_id, resolved_through) VALUES (?, ?, ?, ?, ?)";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    return q
        .BindAll(r.subscription_tenant_id, r.subscription_id, r.tenant_id, r.connection_id,
                 r.resolved_through)
        .Run();
  }
  absl::Status DeleteSubscriptionCursors(absl::string_view subscription_tenant_id,
                                         absl::string_view subscription_id) override {
    static constexpr const char* kSql =
        "DELETE FROM subscription_cursors WHERE subscription_tenant_id = ? AND "
        "subscription_id = ?";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    return q.BindAll(subscription_tenant_id, subscription_id).Run();
  }
  absl::Status PutDeadLetter(const DeadLetterRow& r) override {
    static constexpr const char* kSql = "INSERT OR REPLACE INTO dead_letters (" DEAD_LETTER_COLS
                                        ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    return q
        .BindAll(r.subscription_tenant_id, r.subscription_id, r.position, r.tenant_id,
                 r.connection_id, r.sequence, r.attempts, r.dead_time, r.replaying)
        .Run();
  }
  absl::Status DeleteDeadLetter(absl::string_view subscription_tenant_id,
                                absl::string_view subscription_id, int64_t position) override {
    static constexpr const char* kSql =
        "DELETE FROM dead_letters WHERE subscription_tenant_id = ? AND subscription_id = ? AND "
        "position = ?";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    return q.BindAll(subscription_tenant_id, subscription_id, position).Run();
  }
  absl::StatusOr<std::vector<DeadLetterRow>> ListDeadLetters(
      absl::string_view subscription_tenant_id, absl::string_view subscription_id, int64_t after,
      int limit, bool replaying_only) override {
    static constexpr const char* kSql =
        "SELECT " DEAD_LETTER_COLS
        " FROM dead_letters WHERE subscription_tenant_id = ? AND subscription_id = ? AND "
        "position > ? AND replaying >= ? ORDER BY position LIMIT ?";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    q.BindAll(subscription_tenant_id, subscription_id, after, replaying_only ? 1 : 0, limit);
    return Collect<DeadLetterRow>(q, ReadDeadLetter);
  }

  absl::StatusOr<std::vector<WebhookSecretRow>> ListWebhookSecrets(
      absl::string_view tenant_id, absl::string_view connection_id) override {
    static constexpr const char* kSql =
        "SELECT " WEBHOOK_SECRET_COLS
        " FROM webhook_secrets WHERE tenant_id = ? AND connection_id = ? ORDER BY version";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    q.BindAll(tenant_id, connection_id);
    return Collect<WebhookSecretRow>(q, ReadWebhookSecret);
  }
  absl::Status PutWebhookSecret(const WebhookSecretRow& r) override {
    static constexpr const char* kSql =
        "INSERT OR REPLACE INTO webhook_secrets (" WEBHOOK_SECRET_COLS
        ") VALUES (?, ?, ?, ?, ?, ?, ?)";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    return q
        .BindAll(r.tenant_id, r.connection_id, r.version, r.key_version, Query::Blob{r.sealed},
                 r.create_time, r.expire_time)
        .Run();
  }
  absl::Status DeleteWebhookSecrets(absl::string_view tenant_id,
                                    absl::string_view connection_id) override {
    static constexpr const char* kSql =
        "DELETE FROM webhook_secrets WHERE tenant_id = ? AND connection_id = ?";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    return q.BindAll(tenant_id, connection_id).Run();
  }

  absl::StatusOr<std::optional<IdempotencyRow>> GetIdempotency(absl::string_view key) override {
    static constexpr const char* kSql =
        "SELECT key, fingerprint, response, create_time FROM idempotency WHERE key = ?";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    q.BindAll(key);
    return One<IdempotencyRow>(q, [](const Query& q) {
      return IdempotencyRow{q.Text(0), q.Text(1), q.Bytes(2), q.Time(3)};
    });
  }
  absl::Status PutIdempotency(const IdempotencyRow& r) override {
    static constexpr const char* kSql =
        "INSERT OR REPLACE INTO idempotency (key, fingerprint, response, create_time) "
        "VALUES (?, ?, ?, ?)";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    return q.BindAll(r.key, r.fingerprint, Query::Blob{r.response}, r.create_time).Run();
  }
  absl::StatusOr<int64_t> DeleteIdempotencyBefore(absl::Time cutoff) override {
    static constexpr const char* kSql = "DELETE FROM idempotency WHERE create_time < ?";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    SY_RETURN_IF_ERROR(q.BindAll(cutoff).Run());
    return static_cast<int64_t>(q.Changes());
  }

 private:
  // An UPDATE of a row that must exist: no match means the domain code wrote
  // a row it never read, which is a bug.
  absl::Status RunUpdate(Query& q, absl::string_view what) {
    SY_RETURN_IF_ERROR(q.Run());
    if (q.Changes() != 1) {
      return Error(absl::StatusCode::kInternal, "STORE_ERROR",
                   absl::StrCat("store: update of a missing ", what));
    }
    return absl::OkStatus();
  }

  absl::Status LoadMetadata(ConnectionRow& row) {
    static constexpr const char* kSql =
        "SELECT key, value FROM connection_metadata WHERE tenant_id = ? AND connection_id = ?";
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kSql));
    Query q(db_, s);
    q.BindAll(row.tenant_id, row.id);
    row.metadata.clear();
    while (true) {
      SY_ASSIGN_OR_RETURN(bool has_row, q.Step());
      if (!has_row) return absl::OkStatus();
      row.metadata.emplace(q.Text(0), q.Text(1));
    }
  }

  absl::Status StoreMetadata(const ConnectionRow& row) {
    static constexpr const char* kDelete =
        "DELETE FROM connection_metadata WHERE tenant_id = ? AND connection_id = ?";
    static constexpr const char* kInsert =
        "INSERT INTO connection_metadata (tenant_id, connection_id, key, value) "
        "VALUES (?, ?, ?, ?)";
    {
      SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kDelete));
      Query q(db_, s);
      SY_RETURN_IF_ERROR(q.BindAll(row.tenant_id, row.id).Run());
    }
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db_.Prepare(kInsert));
    for (const auto& [key, value] : row.metadata) {
      Query q(db_, s);
      SY_RETURN_IF_ERROR(q.BindAll(row.tenant_id, row.id, key, value).Run());
    }
    return absl::OkStatus();
  }

  SqliteDb& db_;
  std::vector<EventNotice>* inserted_;
};

// One notice per connection: the highest sequence inserted.
std::vector<EventNotice> MergeNotices(std::vector<EventNotice> inserted) {
  std::sort(inserted.begin(), inserted.end(), [](const EventNotice& a, const EventNotice& b) {
    return std::tie(a.tenant_id, a.connection_id, b.sequence) <
           std::tie(b.tenant_id, b.connection_id, a.sequence);
  });
  std::vector<EventNotice> merged;
  for (EventNotice& n : inserted) {
    if (!merged.empty() && merged.back().tenant_id == n.tenant_id &&
        merged.back().connection_id == n.connection_id) {
      continue;  // sorted by descending sequence within a connection
    }
    merged.push_back(std::move(n));
  }
  return merged;
}

absl::Status Migrate(SqliteDb& db) {
  SY_RETURN_IF_ERROR(db.Exec("BEGIN IMMEDIATE"));
  auto migrate = [&]() -> absl::Status {
    SY_RETURN_IF_ERROR(db.Exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER)"));
    SY_ASSIGN_OR_RETURN(sqlite3_stmt * s, db.Prepare("SELECT MAX(version) FROM schema_version"));
    int64_t version = 0;
    {
      Query q(db, s);
      SY_ASSIGN_OR_RETURN(bool has_row, q.Step());
      if (has_row) version = q.Int(0);
    }
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

struct SqliteStore::Task {
  explicit Task(absl::FunctionRef<absl::Status(Transaction&)> f) : fn(f) {}
  absl::FunctionRef<absl::Status(Transaction&)> fn;
  absl::Status result;
  bool done = false;
  // An asynchronous write owns its function (which `fn` refers to) and is
  // answered through `on_done`; the writer thread deletes it.
  std::unique_ptr<std::function<absl::Status(Transaction&)>> owned;
  std::function<void(absl::Status)> on_done;
};

absl::StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(const SqliteStoreOptions& options) {
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
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  writer_thread_.join();
}

absl::Status SqliteStore::Write(absl::FunctionRef<absl::Status(Transaction&)> fn) {
  Task task(fn);
  absl::MutexLock lock(&mu_);
  if (stopping_) {
    return Error(absl::StatusCode::kUnavailable, "SHUTTING_DOWN", "store is shutting down");
  }
  Enqueue("", &task);
  mu_.Await(absl::Condition(&task.done));
  return task.result;
}

void SqliteStore::Enqueue(absl::string_view key, Task* task) {
  auto [it, added] = waiting_.try_emplace(key);
  if (it->second.empty()) turns_.emplace_back(key);
  it->second.push_back(task);
  ++queued_;
}

void SqliteStore::WriteAsync(std::function<absl::Status(Transaction&)> fn,
                             std::function<void(absl::Status)> done,
                             absl::string_view fairness_key) {
  auto owned = std::make_unique<std::function<absl::Status(Transaction&)>>(std::move(fn));
  auto* task = new Task(*owned);
  task->owned = std::move(owned);
  task->on_done = std::move(done);
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      Enqueue(fairness_key, task);
      return;
    }
  }
  task->on_done(Error(absl::StatusCode::kUnavailable, "SHUTTING_DOWN", "store is shutting down"));
  delete task;
}

void SqliteStore::WriterLoop() {
  std::vector<Task*> batch;
  while (true) {
    batch.clear();
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](SqliteStore* s)
               ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu_) { return s->queued_ > 0 || s->stopping_; },
          this));
      if (queued_ == 0) return;  // stopping, and nothing left to do
      // One write per key per round, keys in turn.
      while (!turns_.empty() && static_cast<int>(batch.size()) < options_.max_batch) {
        std::string key = std::move(turns_.front());
        turns_.pop_front();
        auto it = waiting_.find(key);
        batch.push_back(it->second.front());
        it->second.pop_front();
        --queued_;
        if (it->second.empty()) {
          waiting_.erase(it);
        } else {
          turns_.push_back(std::move(key));
        }
      }
    }
    RunBatch(batch);
    std::vector<Task*> async;
    {
      absl::MutexLock lock(&mu_);
      ++commits_;
      for (Task* task : batch) {
        if (task->on_done) {
          async.push_back(task);
        } else {
          task->done = true;  // the waiting caller owns it
        }
      }
    }
    for (Task* task : async) {
      task->on_done(task->result);
      delete task;
    }
  }
}

void SqliteStore::RunBatch(const std::vector<Task*>& batch) {
  SqliteDb& db = *writer_;
  auto fail_all = [&](const absl::Status& status) {
    for (Task* task : batch) task->result = status;
  };
  if (absl::Status begin = db.ExecCached("BEGIN IMMEDIATE"); !begin.ok()) {
    log::Error("store begin failed", {{"error", begin.ToString()}});
    fail_all(begin);
    return;
  }
  std::vector<EventNotice> inserted;
  SqliteTransaction tx(db, &inserted);
  for (Task* task : batch) {
    const size_t inserted_before = inserted.size();
    absl::Status status = db.ExecCached("SAVEPOINT task");
    if (status.ok()) status = task->fn(tx);
    if (sqlite3_get_autocommit(db.handle())) {
      // SQLite rolled the whole transaction back (I/O error, disk full):
      // nothing of this batch persists.
      log::Error("store transaction aborted", {{"error", status.ToString()}});
      fail_all(Error(absl::StatusCode::kUnavailable, "STORE_UNAVAILABLE",
                     "store transaction aborted; retry"));
      return;
    }
    if (!status.ok()) {
      db.ExecCached("ROLLBACK TO task").IgnoreError();
      inserted.resize(inserted_before);
    }
    absl::Status release = db.ExecCached("RELEASE task");
    if (!release.ok() && status.ok()) {
      // Answered with an error, so nothing of it may commit.
      db.ExecCached("ROLLBACK TO task").IgnoreError();
      db.ExecCached("RELEASE task").IgnoreError();
      inserted.resize(inserted_before);
    }
    task->result = release.ok() ? status : release;
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
    SqliteTransaction tx(*db);
    status = fn(tx);
    absl::Status end = db->Exec(status.ok() ? "COMMIT" : "ROLLBACK");
    if (status.ok()) status = end;
  }
  ReturnReader(std::move(db));
  return status;
}

int64_t SqliteStore::CommitCountForTest() const {
  absl::MutexLock lock(&mu_);
  return commits_;
}

}  // namespace switchyard::storage
