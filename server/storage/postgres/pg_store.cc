#include "server/storage/postgres/pg_store.h"

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <tuple>
#include <unordered_map>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "server/common/log.h"
#include "server/common/status.h"
#include "server/storage/sql/sql_transaction.h"

namespace switchyard::storage {
namespace {

// Each entry moves the schema from version i to i+1. Never edit an entry that
// has shipped; append a new one. The tables and columns match the embedded
// store's, so that one set of statements serves both. Text keys collate
// bytewise ("C"), as SQLite's do, so that listings page in the same order.
constexpr const char* kMigrations[] = {
    R"sql(
CREATE TABLE pools (
  id TEXT COLLATE "C" PRIMARY KEY,
  display_name TEXT NOT NULL,
  capacity BIGINT NOT NULL,
  reserved BIGINT NOT NULL,
  consumed BIGINT NOT NULL,
  create_time BIGINT,
  update_time BIGINT,
  CHECK (reserved >= 0 AND consumed >= 0 AND reserved + consumed <= capacity)
);
CREATE TABLE tenants (
  id TEXT COLLATE "C" PRIMARY KEY,
  display_name TEXT NOT NULL,
  pool_id TEXT COLLATE "C" NOT NULL REFERENCES pools(id),
  credit_limit BIGINT NOT NULL,
  reserved BIGINT NOT NULL,
  consumed BIGINT NOT NULL,
  connection_count BIGINT NOT NULL,
  deleted BIGINT NOT NULL,
  create_time BIGINT,
  update_time BIGINT,
  CHECK (reserved >= 0 AND consumed >= 0 AND connection_count >= 0)
);
CREATE TABLE reservations (
  tenant_id TEXT COLLATE "C" NOT NULL,
  id TEXT COLLATE "C" NOT NULL,
  pool_id TEXT COLLATE "C" NOT NULL,
  amount BIGINT NOT NULL CHECK (amount > 0),
  state BIGINT NOT NULL,
  expire_time BIGINT,
  create_time BIGINT,
  resolve_time BIGINT,
  connection_id TEXT COLLATE "C" NOT NULL,
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX reservations_by_expiry ON reservations (state, expire_time);
CREATE INDEX reservations_by_pool_expiry ON reservations (pool_id, state, expire_time);
CREATE TABLE connections (
  tenant_id TEXT COLLATE "C" NOT NULL,
  id TEXT COLLATE "C" NOT NULL,
  system_id TEXT COLLATE "C" NOT NULL,
  deployment BIGINT NOT NULL,
  display_name TEXT NOT NULL,
  state BIGINT NOT NULL,
  credits BIGINT NOT NULL,
  pool_id TEXT COLLATE "C" NOT NULL,
  reservation_id TEXT COLLATE "C" NOT NULL,
  create_time BIGINT,
  update_time BIGINT,
  disconnect_time BIGINT,
  PRIMARY KEY (tenant_id, id)
);
CREATE TABLE connection_metadata (
  tenant_id TEXT COLLATE "C" NOT NULL,
  connection_id TEXT COLLATE "C" NOT NULL,
  key TEXT COLLATE "C" NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (tenant_id, connection_id, key)
);
CREATE TABLE journal (
  sequence BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  kind BIGINT NOT NULL,
  amount BIGINT NOT NULL,
  time BIGINT,
  pool_id TEXT COLLATE "C" NOT NULL,
  tenant_id TEXT COLLATE "C" NOT NULL,
  connection_id TEXT COLLATE "C" NOT NULL,
  reservation_id TEXT COLLATE "C" NOT NULL,
  request_id TEXT COLLATE "C" NOT NULL,
  capacity_after BIGINT NOT NULL,
  reserved_after BIGINT NOT NULL,
  consumed_after BIGINT NOT NULL
);
CREATE INDEX journal_by_pool ON journal (pool_id, sequence);
CREATE INDEX journal_by_pool_tenant ON journal (pool_id, tenant_id, sequence);
CREATE TABLE idempotency (
  key TEXT COLLATE "C" PRIMARY KEY,
  fingerprint TEXT NOT NULL,
  response BYTEA NOT NULL,
  create_time BIGINT
);
CREATE INDEX idempotency_by_time ON idempotency (create_time);
CREATE TABLE data_keys (
  owner TEXT COLLATE "C" NOT NULL,
  version BIGINT NOT NULL,
  master_key_id TEXT COLLATE "C" NOT NULL,
  wrapped BYTEA NOT NULL,
  create_time BIGINT,
  PRIMARY KEY (owner, version)
);
CREATE INDEX data_keys_by_master ON data_keys (master_key_id);
CREATE TABLE api_keys (
  id TEXT COLLATE "C" PRIMARY KEY,
  kind BIGINT NOT NULL,
  tenant_id TEXT COLLATE "C" NOT NULL,
  connection_id TEXT COLLATE "C" NOT NULL,
  hash BYTEA NOT NULL UNIQUE,
  hint TEXT NOT NULL,
  display_name TEXT NOT NULL,
  rights BIGINT NOT NULL,
  state BIGINT NOT NULL,
  create_time BIGINT,
  expire_time BIGINT,
  last_used_time BIGINT,
  revoke_time BIGINT,
  superseded_by TEXT COLLATE "C" NOT NULL
);
CREATE INDEX api_keys_by_owner ON api_keys (tenant_id, connection_id, id);
CREATE TABLE credentials (
  tenant_id TEXT COLLATE "C" NOT NULL,
  connection_id TEXT COLLATE "C" NOT NULL,
  key_version BIGINT NOT NULL,
  sealed BYTEA NOT NULL,
  summary BYTEA NOT NULL,
  update_time BIGINT,
  PRIMARY KEY (tenant_id, connection_id)
);
CREATE TABLE events (
  position BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant_id TEXT COLLATE "C" NOT NULL,
  connection_id TEXT COLLATE "C" NOT NULL,
  sequence BIGINT NOT NULL,
  event_id TEXT COLLATE "C" NOT NULL,
  type TEXT COLLATE "C" NOT NULL,
  source BIGINT NOT NULL,
  source_time BIGINT,
  receive_time BIGINT,
  content_type TEXT NOT NULL,
  body BYTEA NOT NULL
);
CREATE UNIQUE INDEX events_by_sequence ON events (tenant_id, connection_id, sequence);
CREATE UNIQUE INDEX events_by_id ON events (tenant_id, connection_id, event_id);
CREATE INDEX events_by_receive_time ON events (receive_time);
CREATE TABLE webhook_secrets (
  tenant_id TEXT COLLATE "C" NOT NULL,
  connection_id TEXT COLLATE "C" NOT NULL,
  version BIGINT NOT NULL,
  key_version BIGINT NOT NULL,
  sealed BYTEA NOT NULL,
  create_time BIGINT,
  expire_time BIGINT,
  PRIMARY KEY (tenant_id, connection_id, version)
);
CREATE TABLE subscriptions (
  tenant_id TEXT COLLATE "C" NOT NULL,
  id TEXT COLLATE "C" NOT NULL,
  config BYTEA NOT NULL,
  start_position BIGINT NOT NULL,
  generation BIGINT NOT NULL,
  create_time BIGINT,
  PRIMARY KEY (tenant_id, id)
);
CREATE TABLE subscription_cursors (
  subscription_tenant_id TEXT COLLATE "C" NOT NULL,
  subscription_id TEXT COLLATE "C" NOT NULL,
  tenant_id TEXT COLLATE "C" NOT NULL,
  connection_id TEXT COLLATE "C" NOT NULL,
  resolved_through BIGINT NOT NULL,
  PRIMARY KEY (subscription_tenant_id, subscription_id, tenant_id, connection_id)
);
CREATE TABLE dead_letters (
  subscription_tenant_id TEXT COLLATE "C" NOT NULL,
  subscription_id TEXT COLLATE "C" NOT NULL,
  position BIGINT NOT NULL,
  tenant_id TEXT COLLATE "C" NOT NULL,
  connection_id TEXT COLLATE "C" NOT NULL,
  sequence BIGINT NOT NULL,
  attempts BIGINT NOT NULL,
  dead_time BIGINT,
  replaying BIGINT NOT NULL,
  PRIMARY KEY (subscription_tenant_id, subscription_id, position)
);
CREATE TABLE connection_health (
  tenant_id TEXT COLLATE "C" NOT NULL,
  connection_id TEXT COLLATE "C" NOT NULL,
  url TEXT NOT NULL,
  interval_ms BIGINT NOT NULL,
  timeout_ms BIGINT NOT NULL,
  expected_status BIGINT NOT NULL,
  state BIGINT NOT NULL,
  state_change_time BIGINT,
  last_check_time BIGINT,
  last_result TEXT NOT NULL,
  consecutive_failures BIGINT NOT NULL,
  consecutive_successes BIGINT NOT NULL,
  PRIMARY KEY (tenant_id, connection_id)
);
CREATE TABLE incidents (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  title TEXT NOT NULL,
  component TEXT COLLATE "C" NOT NULL,
  severity BIGINT NOT NULL,
  state BIGINT NOT NULL,
  start_time BIGINT,
  end_time BIGINT,
  automatic BIGINT NOT NULL,
  notes BYTEA NOT NULL
);
CREATE INDEX incidents_open ON incidents (component, state);
CREATE TABLE change_feeds (
  tenant_id TEXT COLLATE "C" NOT NULL,
  connection_id TEXT COLLATE "C" NOT NULL,
  url TEXT NOT NULL,
  interval_ms BIGINT NOT NULL,
  mode BIGINT NOT NULL,
  silence_ms BIGINT NOT NULL,
  cursor TEXT NOT NULL,
  last_poll_time BIGINT,
  last_result TEXT NOT NULL,
  events_stored BIGINT NOT NULL,
  PRIMARY KEY (tenant_id, connection_id)
);
)sql",
    R"sql(
CREATE TABLE delivery_leases (
  subscription_tenant_id TEXT COLLATE "C" NOT NULL,
  subscription_id TEXT COLLATE "C" NOT NULL,
  tenant_id TEXT COLLATE "C" NOT NULL,
  connection_id TEXT COLLATE "C" NOT NULL,
  holder TEXT COLLATE "C" NOT NULL,
  expire_time BIGINT,
  PRIMARY KEY (subscription_tenant_id, subscription_id, tenant_id, connection_id)
);
CREATE TABLE delivery_members (
  subscription_tenant_id TEXT COLLATE "C" NOT NULL,
  subscription_id TEXT COLLATE "C" NOT NULL,
  holder TEXT COLLATE "C" NOT NULL,
  expire_time BIGINT,
  PRIMARY KEY (subscription_tenant_id, subscription_id, holder)
);
)sql",
    R"sql(
CREATE TABLE delivery_attempts (
  subscription_tenant_id TEXT COLLATE "C" NOT NULL,
  subscription_id TEXT COLLATE "C" NOT NULL,
  tenant_id TEXT COLLATE "C" NOT NULL,
  connection_id TEXT COLLATE "C" NOT NULL,
  sequence BIGINT NOT NULL,
  attempts BIGINT NOT NULL,
  free_attempts BIGINT NOT NULL,
  PRIMARY KEY (subscription_tenant_id, subscription_id, tenant_id, connection_id, sequence)
);
)sql",
};

constexpr int kSchemaVersion = sizeof(kMigrations) / sizeof(kMigrations[0]);

// Type OIDs of the parameters and columns used (pg_type.h).
constexpr Oid kBoolOid = 16;
constexpr Oid kByteaOid = 17;
constexpr Oid kInt8Oid = 20;
constexpr Oid kInt2Oid = 21;
constexpr Oid kInt4Oid = 23;
constexpr Oid kTextOid = 25;

// Notifications carry at most 8000 bytes; notices are sent in chunks below
// that.
constexpr size_t kMaxNotifyPayload = 7000;

// Rewrites `?` parameters as $1, $2, ... outside quoted literals; returns the
// number of parameters.
int NumberParameters(absl::string_view sql, std::string& out) {
  int count = 0;
  bool quoted = false;
  out.reserve(sql.size() + 16);
  for (char c : sql) {
    if (c == '\'') quoted = !quoted;
    if (c == '?' && !quoted) {
      absl::StrAppend(&out, "$", ++count);
    } else {
      out.push_back(c);
    }
  }
  return count;
}

std::string Sqlstate(const PGresult* res) {
  const char* state = res == nullptr ? nullptr : PQresultErrorField(res, PG_DIAG_SQLSTATE);
  return state == nullptr ? std::string() : std::string(state);
}

}  // namespace

class PgStatement;

// One PostgreSQL connection with its prepared statements, and what happened to
// the current transaction. Not thread-safe.
class PgConn final : public SqlConnection {
 public:
  static absl::StatusOr<std::unique_ptr<PgConn>> Connect(const PgStoreOptions& options);
  ~PgConn() override;

  absl::StatusOr<SqlStatement*> Prepare(const char* sql) override;

  // Runs `sql` (no parameters, no rows wanted).
  absl::Status Exec(const char* sql);
  // Runs `sql` and returns its result (owned by the caller) or the error.
  absl::StatusOr<PGresult*> Query(const char* sql, const std::vector<std::string>& params);
  // Runs the statements of `sql` (no parameters) and returns the result of
  // the last (owned by the caller), or the first error.
  absl::StatusOr<PGresult*> Script(const char* sql);

  // Turns a failed result into a status and notes what it means for the
  // transaction. `res` may be null (the connection failed).
  absl::Status Failure(const PGresult* res, absl::string_view what);

  void BeginTransaction() {
    conflict_ = false;
    failed_ = false;
  }
  // The statements of the next write of a group: failed() tells of them.
  void BeginStatementGroup() { failed_ = false; }
  // A statement of the current transaction lost a serialization conflict.
  bool conflict() const { return conflict_; }
  // A statement of the current transaction failed (PostgreSQL then aborts the
  // whole transaction, whatever its function does with the error).
  bool failed() const { return failed_; }
  bool broken() const { return PQstatus(conn_) != CONNECTION_OK; }
  // The connection may hold session state it could not clean up (advisory
  // locks): the pool drops it instead of lending it again.
  void MarkUnusable() { unusable_ = true; }
  bool unusable() const { return unusable_; }
  PGconn* handle() const { return conn_; }

 private:
  explicit PgConn(PGconn* conn) : conn_(conn) {}
  // `res` when it succeeded; else the error (Failure), `res` freed.
  absl::StatusOr<PGresult*> Checked(PGresult* res, const char* sql);

  PGconn* conn_;
  bool conflict_ = false;
  bool failed_ = false;
  bool unusable_ = false;
  int next_statement_ = 0;
  // Keyed by the address of the SQL literal, like the SQLite cache.
  std::unordered_map<const char*, std::unique_ptr<PgStatement>> statements_;
};

// A statement prepared on the server at its first run, with the parameter
// types of that run (every run binds the same types). Parameters and results
// travel in binary form.
class PgStatement final : public SqlStatement {
 public:
  PgStatement(PgConn& conn, std::string name, const char* sql)
      : conn_(conn), name_(std::move(name)) {
    int count = NumberParameters(sql, sql_);
    values_.resize(count);
    types_.assign(count, kInt8Oid);
    nulls_.assign(count, true);
  }
  ~PgStatement() override { Reset(); }

  void BindText(int index, absl::string_view v) override { Set(index, kTextOid, v); }
  void BindBlob(int index, absl::string_view v) override { Set(index, kByteaOid, v); }
  void BindInt(int index, int64_t v) override {
    uint64_t be = htobe64(static_cast<uint64_t>(v));
    Set(index, kInt8Oid, absl::string_view(reinterpret_cast<const char*>(&be), sizeof(be)));
  }
  void BindNullInt(int index) override {
    if (index < 1 || index > static_cast<int>(values_.size())) return;
    types_[index - 1] = kInt8Oid;
    nulls_[index - 1] = true;
  }

  absl::StatusOr<bool> Step() override {
    if (result_ == nullptr) {
      SY_RETURN_IF_ERROR(Execute());
      row_ = -1;
    }
    ++row_;
    return row_ < PQntuples(result_);
  }
  int64_t Changes() override {
    int64_t n = 0;
    if (result_ != nullptr && absl::SimpleAtoi(PQcmdTuples(result_), &n)) return n;
    return 0;
  }
  bool IsNull(int col) override { return PQgetisnull(result_, row_, col) != 0; }
  int64_t Int(int col) override {
    if (IsNull(col)) return 0;
    const char* p = PQgetvalue(result_, row_, col);
    switch (PQftype(result_, col)) {
      case kInt8Oid: {
        uint64_t be;
        std::memcpy(&be, p, sizeof(be));
        return static_cast<int64_t>(be64toh(be));
      }
      case kInt4Oid: {
        uint32_t be;
        std::memcpy(&be, p, sizeof(be));
        return static_cast<int32_t>(be32toh(be));
      }
      case kInt2Oid: {
        uint16_t be;
        std::memcpy(&be, p, sizeof(be));
        return static_cast<int16_t>(be16toh(be));
      }
      case kBoolOid:
        return *p != 0 ? 1 : 0;
      default:
        return 0;  // not an integer column: a bug in the statement
    }
  }
  absl::string_view Bytes(int col) override {
    if (IsNull(col)) return absl::string_view();
    return absl::string_view(PQgetvalue(result_, row_, col),
                             static_cast<size_t>(PQgetlength(result_, row_, col)));
  }
  void Reset() override {
    if (result_ != nullptr) PQclear(result_);
    result_ = nullptr;
    nulls_.assign(nulls_.size(), true);
  }

 private:
  void Set(int index, Oid type, absl::string_view v) {
    if (index < 1 || index > static_cast<int>(values_.size())) return;
    types_[index - 1] = type;
    values_[index - 1].assign(v.data(), v.size());
    nulls_[index - 1] = false;
  }

  absl::Status Execute() {
    const int n = static_cast<int>(values_.size());
    if (!prepared_) {
      PGresult* res = PQprepare(conn_.handle(), name_.c_str(), sql_.c_str(), n, types_.data());
      bool ok = res != nullptr && PQresultStatus(res) == PGRES_COMMAND_OK;
      absl::Status status = ok ? absl::OkStatus() : conn_.Failure(res, "prepare");
      PQclear(res);
      SY_RETURN_IF_ERROR(status);
      prepared_ = true;
    }
    std::vector<const char*> values(n);
    std::vector<int> lengths(n);
    std::vector<int> formats(n, 1);
    for (int i = 0; i < n; ++i) {
      values[i] = nulls_[i] ? nullptr : values_[i].data();
      lengths[i] = static_cast<int>(values_[i].size());
    }
    PGresult* res = PQexecPrepared(conn_.handle(), name_.c_str(), n, values.data(), lengths.data(),
                                   formats.data(), /*resultFormat=*/1);
    ExecStatusType st = res == nullptr ? PGRES_FATAL_ERROR : PQresultStatus(res);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
      absl::Status status = conn_.Failure(res, sql_);
      PQclear(res);
      return status;
    }
    result_ = res;
    return absl::OkStatus();
  }

  PgConn& conn_;
  const std::string name_;
  std::string sql_;
  bool prepared_ = false;
  std::vector<std::string> values_;
  std::vector<Oid> types_;
  std::vector<bool> nulls_;
  PGresult* result_ = nullptr;
  int row_ = -1;
};

absl::StatusOr<std::unique_ptr<PgConn>> PgConn::Connect(const PgStoreOptions& options) {
  const std::string connect_timeout =
      absl::StrCat(std::max<int64_t>(2, absl::ToInt64Seconds(options.connect_timeout)));
  // A dead peer is noticed within the statement timeout even when no packet
  // comes back (TCP connections only; ignored on Unix sockets).
  const std::string user_timeout =
      absl::StrCat(absl::ToInt64Milliseconds(options.statement_timeout + absl::Seconds(5)));
  std::vector<const char*> keys = {"dbname",          "connect_timeout",     "application_name",
                                   "keepalives_idle", "keepalives_interval", "keepalives_count",
                                   "tcp_user_timeout"};
  std::vector<const char*> values = {
      options.url.c_str(), connect_timeout.c_str(), "switchyard", "10", "3", "3",
      user_timeout.c_str()};
  if (!options.password.empty()) {
    keys.push_back("password");
    values.push_back(options.password.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  PGconn* raw = PQconnectdbParams(keys.data(), values.data(), /*expand_dbname=*/1);
  if (raw == nullptr) {
    return Error(absl::StatusCode::kUnavailable, "STORE_UNAVAILABLE",
                 "cannot connect to PostgreSQL: out of memory");
  }
  auto conn = std::unique_ptr<PgConn>(new PgConn(raw));
  if (PQstatus(raw) != CONNECTION_OK) {
    std::string message = PQerrorMessage(raw);
    while (!message.empty() && message.back() == '\n') message.pop_back();
    return Error(absl::StatusCode::kUnavailable, "STORE_UNAVAILABLE",
                 absl::StrCat("cannot connect to PostgreSQL: ", message));
  }
  const std::string settings =
      absl::StrCat("SET statement_timeout = ", absl::ToInt64Milliseconds(options.statement_timeout),
                   "; SET idle_in_transaction_session_timeout = ",
                   absl::ToInt64Milliseconds(options.statement_timeout * 3),
                   "; SET TIME ZONE 'UTC'; SET client_min_messages = warning");
  SY_RETURN_IF_ERROR(conn->Exec(settings.c_str()));
  return conn;
}

PgConn::~PgConn() {
  statements_.clear();
  PQfinish(conn_);
}

absl::StatusOr<SqlStatement*> PgConn::Prepare(const char* sql) {
  auto it = statements_.find(sql);
  if (it != statements_.end()) return it->second.get();
  auto [inserted, added] = statements_.emplace(
      sql, std::make_unique<PgStatement>(*this, absl::StrCat("s", next_statement_++), sql));
  return inserted->second.get();
}

absl::Status PgConn::Exec(const char* sql) {
  PGresult* res = PQexec(conn_, sql);
  ExecStatusType st = res == nullptr ? PGRES_FATAL_ERROR : PQresultStatus(res);
  absl::Status status =
      (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) ? absl::OkStatus() : Failure(res, sql);
  PQclear(res);
  return status;
}

absl::StatusOr<PGresult*> PgConn::Query(const char* sql, const std::vector<std::string>& params) {
  std::vector<const char*> values;
  for (const std::string& p : params) values.push_back(p.c_str());
  return Checked(PQexecParams(conn_, sql, static_cast<int>(values.size()), nullptr, values.data(),
                              nullptr, nullptr, /*resultFormat=*/0),
                 sql);
}

absl::StatusOr<PGresult*> PgConn::Script(const char* sql) {
  return Checked(PQexec(conn_, sql), sql);
}

absl::StatusOr<PGresult*> PgConn::Checked(PGresult* res, const char* sql) {
  ExecStatusType st = res == nullptr ? PGRES_FATAL_ERROR : PQresultStatus(res);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    absl::Status status = Failure(res, sql);
    PQclear(res);
    return status;
  }
  return res;
}

absl::Status PgConn::Failure(const PGresult* res, absl::string_view what) {
  failed_ = true;
  const std::string state = Sqlstate(res);
  std::string detail = res != nullptr ? PQresultErrorMessage(res) : PQerrorMessage(conn_);
  while (!detail.empty() && (detail.back() == '\n' || detail.back() == ' ')) detail.pop_back();
  if (detail.empty()) detail = PQerrorMessage(conn_);
  std::string message = absl::StrCat("store: ", what.substr(0, 120), ": ", detail);
  if (state == "40001" || state == "40P01") {
    conflict_ = true;
    return Error(absl::StatusCode::kAborted, "STORE_CONFLICT", message);
  }
  if (state == "23505") {
    // An event's sequence is the connection's last plus one, and its id was
    // looked up first: a taken one means a concurrent transaction (another
    // replica) stored an event of the same connection since. SERIALIZABLE
    // does not report that as a conflict, so it is treated as one here: run
    // again, and the new run sees the other event.
    const char* constraint =
        res == nullptr ? nullptr : PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);
    const absl::string_view name = constraint == nullptr ? "" : constraint;
    if (name == "events_by_sequence" || name == "events_by_id") {
      conflict_ = true;
      return Error(absl::StatusCode::kAborted, "STORE_CONFLICT", message);
    }
    return Error(absl::StatusCode::kAlreadyExists, "ALREADY_EXISTS", message);
  }
  if (absl::StartsWith(state, "23")) {
    // A constraint guards an invariant the domain code must keep.
    return Error(absl::StatusCode::kInternal, "STORE_INVARIANT_VIOLATED", message);
  }
  if (state == "22021" || state == "22P05") {
    return Error(absl::StatusCode::kInvalidArgument, "TEXT_NOT_STORABLE", message);
  }
  if (state == "57014") return Error(absl::StatusCode::kUnavailable, "STORE_TIMEOUT", message);
  if (state.empty() || broken() || absl::StartsWith(state, "08") ||
      absl::StartsWith(state, "57P") || absl::StartsWith(state, "53") || state == "25P03") {
    return Error(absl::StatusCode::kUnavailable, "STORE_UNAVAILABLE", message);
  }
  return Error(absl::StatusCode::kInternal, "STORE_ERROR", message);
}

namespace {

absl::Status Migrate(PgConn& conn, absl::string_view schema) {
  SY_RETURN_IF_ERROR(conn.Exec("BEGIN"));
  auto migrate = [&]() -> absl::Status {
    // One lock per schema: replicas starting together wait for each other.
    SY_ASSIGN_OR_RETURN(PGresult * locked,
                        conn.Query("SELECT pg_advisory_xact_lock(hashtext($1))",
                                   {absl::StrCat("switchyard-migrate:", schema)}));
    PQclear(locked);
    SY_RETURN_IF_ERROR(conn.Exec("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT)"));
    SY_ASSIGN_OR_RETURN(PGresult * res,
                        conn.Query("SELECT COALESCE(MAX(version), 0) FROM schema_version", {}));
    int64_t version = 0;
    bool parsed = absl::SimpleAtoi(PQgetvalue(res, 0, 0), &version);
    PQclear(res);
    if (!parsed) return Error(absl::StatusCode::kInternal, "STORE_ERROR", "bad schema_version");
    if (version > kSchemaVersion) {
      return FailedPrecondition(
          "SCHEMA_TOO_NEW",
          absl::StrCat("database schema version ", version, " is newer than this server's ",
                       kSchemaVersion, "; run a newer server"));
    }
    for (int64_t v = version; v < kSchemaVersion; ++v) {
      SY_RETURN_IF_ERROR(conn.Exec(kMigrations[v]));
      SY_ASSIGN_OR_RETURN(
          PGresult * done,
          conn.Query("INSERT INTO schema_version (version) VALUES ($1)", {absl::StrCat(v + 1)}));
      PQclear(done);
      log::Info("store schema migrated", {{"version", v + 1}, {"schema", schema}});
    }
    return absl::OkStatus();
  };
  absl::Status status = migrate();
  if (!status.ok()) {
    conn.Exec("ROLLBACK").IgnoreError();
    return status;
  }
  return conn.Exec("COMMIT");
}

std::string RandomReplicaId() {
  absl::BitGen gen;
  return absl::StrCat(absl::Hex(absl::Uniform<uint64_t>(gen), absl::kZeroPad16));
}

}  // namespace

namespace {

// A hash of a fairness key that every replica computes alike (FNV-1a), for
// advisory locks.
int64_t StableKeyHash(absl::string_view key) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : key) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return static_cast<int64_t>(h);
}

}  // namespace

absl::StatusOr<std::unique_ptr<PgStore>> PgStore::Open(const PgStoreOptions& options) {
  if (options.url.empty()) return InvalidArgument("DATABASE_URL_REQUIRED", "no database URL");
  SY_ASSIGN_OR_RETURN(std::unique_ptr<PgConn> conn, PgConn::Connect(options));
  SY_ASSIGN_OR_RETURN(PGresult * res, conn->Query("SELECT current_schema()", {}));
  const bool has_schema = PQntuples(res) == 1 && !PQgetisnull(res, 0, 0);
  std::string schema = has_schema ? PQgetvalue(res, 0, 0) : "";
  PQclear(res);
  if (!has_schema) {
    return FailedPrecondition("SCHEMA_MISSING",
                              "the database search path names no existing schema; create it or "
                              "fix options=-csearch_path in the database URL");
  }
  SY_RETURN_IF_ERROR(Migrate(*conn, schema));
  // At most 63 bytes (NAMEDATALEN). A longer schema name is hashed rather
  // than cut, so that the name stays valid UTF-8 and two schemas that share
  // a prefix never share a channel.
  std::string channel = absl::StrCat("switchyard_events:", schema);
  if (channel.size() > 63) {
    // FNV-1a: the same on every replica (absl::Hash is seeded per process).
    uint64_t fnv = 14695981039346656037ull;
    for (unsigned char c : schema) fnv = (fnv ^ c) * 1099511628211ull;
    channel = absl::StrCat("switchyard_events:", absl::Hex(fnv, absl::kZeroPad16));
  }
  auto store = std::unique_ptr<PgStore>(new PgStore(options, schema, channel));
  {
    absl::MutexLock lock(&store->pool_mu_);
    ++store->open_;  // the migration's connection joins the pool
  }
  store->Release(std::move(conn));
  if (!store->listening_.WaitForNotificationWithTimeout(options.connect_timeout)) {
    log::Warning(
        "store notification listener not ready; events of other replicas may arrive "
        "late until it connects");
  }
  return store;
}

PgStore::PgStore(PgStoreOptions options, std::string schema, std::string channel)
    : options_(std::move(options)),
      schema_(std::move(schema)),
      channel_(std::move(channel)),
      replica_id_(RandomReplicaId()) {
  if (pipe(stop_pipe_) != 0) stop_pipe_[0] = stop_pipe_[1] = -1;
  for (int i = 0; i < std::max(1, options_.writers); ++i) {
    writers_.emplace_back([this] { WriterLoop(); });
  }
  listen_thread_ = std::thread([this] { ListenLoop(); });
}

PgStore::~PgStore() {
  writes_.Stop();
  for (std::thread& t : writers_) t.join();
  listen_stopping_.store(true);
  if (stop_pipe_[1] >= 0) {
    char c = 1;
    (void)!write(stop_pipe_[1], &c, 1);
  }
  listen_thread_.join();
  if (stop_pipe_[0] >= 0) close(stop_pipe_[0]);
  if (stop_pipe_[1] >= 0) close(stop_pipe_[1]);
}

absl::StatusOr<std::unique_ptr<PgConn>> PgStore::Acquire(bool read) {
  {
    absl::MutexLock lock(&pool_mu_);
    const int pool = std::max(1, options_.pool_size);
    const int readers = std::max(1, pool - std::max(1, options_.writers));
    auto available = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(pool_mu_) {
      return (!idle_.empty() || open_ < pool) && (!read || reading_ < readers);
    };
    if (!pool_mu_.AwaitWithTimeout(absl::Condition(&available), options_.statement_timeout)) {
      return Error(absl::StatusCode::kUnavailable, "STORE_BUSY",
                   "store: every database connection stayed busy; retry");
    }
    if (read) ++reading_;
    while (!idle_.empty()) {
      std::unique_ptr<PgConn> conn = std::move(idle_.back());
      idle_.pop_back();
      // A server that shut down or restarted has closed the idle connections;
      // reading what it sent notices that before a statement fails on them.
      if (PQconsumeInput(conn->handle()) != 0 && !conn->broken()) return conn;
      --open_;
    }
    if (absl::Now() < down_until_) {
      if (read) --reading_;
      return Error(absl::StatusCode::kUnavailable, "STORE_UNAVAILABLE",
                   "store: the database was unreachable a moment ago; retry");
    }
    ++open_;
  }
  absl::StatusOr<std::unique_ptr<PgConn>> conn = PgConn::Connect(options_);
  if (!conn.ok()) {
    absl::MutexLock lock(&pool_mu_);
    --open_;
    if (read) --reading_;
    down_until_ = absl::Now() + options_.reconnect_backoff;
  }
  return conn;
}

void PgStore::Release(std::unique_ptr<PgConn> conn, bool read) {
  absl::MutexLock lock(&pool_mu_);
  if (read) --reading_;
  if (conn->broken() || conn->unusable() || PQtransactionStatus(conn->handle()) != PQTRANS_IDLE) {
    --open_;  // dropped; the next Acquire connects anew
    return;
  }
  idle_.push_back(std::move(conn));
}

absl::Status PgStore::Notify(PgConn& conn, const std::vector<EventNotice>& notices,
                             const std::vector<ChangeNotice>& changes) {
  std::string payload = replica_id_;
  auto send = [&]() -> absl::Status {
    SY_ASSIGN_OR_RETURN(PGresult * res,
                        conn.Query("SELECT pg_notify($1, $2)", {channel_, payload}));
    PQclear(res);
    payload = replica_id_;
    return absl::OkStatus();
  };
  // One line per notice: "E\ttenant\tconnection\tsequence" for events,
  // "C\ttopic\tid" for changes.
  std::vector<std::string> lines;
  for (const EventNotice& n : MergeNotices(notices)) {
    lines.push_back(absl::StrCat("\nE\t", n.tenant_id, "\t", n.connection_id, "\t", n.sequence));
  }
  for (const ChangeNotice& c : changes) {
    // A tab or line end would split the line; such a change (a bug of its
    // announcer) is not sent, rather than sent garbled or failing the commit.
    if (c.topic.find_first_of(std::string_view("\t\n\0", 3)) != std::string::npos ||
        c.id.find_first_of(std::string_view("\t\n\0", 3)) != std::string::npos ||
        c.topic.size() + c.id.size() + 8 + replica_id_.size() > kMaxNotifyPayload) {
      log::Error("store: change not announced: not a single line of a notification",
                 {{"topic", c.topic.substr(0, 64)}});
      continue;
    }
    lines.push_back(absl::StrCat("\nC\t", c.topic, "\t", c.id));
  }
  for (const std::string& line : lines) {
    if (payload.size() + line.size() > kMaxNotifyPayload) SY_RETURN_IF_ERROR(send());
    payload += line;
  }
  return payload.size() > replica_id_.size() ? send() : absl::OkStatus();
}

absl::Status PgStore::CommitOutcome(int64_t xid, const absl::Status& failure) {
  const std::string cause(failure.message());
  absl::StatusOr<std::string> state = [&]() -> absl::StatusOr<std::string> {
    if (xid == 0) return std::string();
    SY_ASSIGN_OR_RETURN(std::unique_ptr<PgConn> conn, Acquire());
    absl::StatusOr<PGresult*> res = conn->Query("SELECT txid_status($1)", {absl::StrCat(xid)});
    std::string out;
    if (res.ok()) {
      if (PQntuples(*res) == 1 && !PQgetisnull(*res, 0, 0)) out = PQgetvalue(*res, 0, 0);
      PQclear(*res);
    }
    Release(std::move(conn));
    SY_RETURN_IF_ERROR(res.status());
    return out;
  }();
  if (state.ok() && *state == "committed") {
    log::Warning("store: the connection broke during a commit, which took effect",
                 {{"error", cause}});
    return absl::OkStatus();
  }
  if (state.ok() && *state == "aborted") {
    return Error(absl::StatusCode::kUnavailable, "STORE_UNAVAILABLE",
                 absl::StrCat("store: the commit failed, nothing was stored; retry: ", cause));
  }
  log::Error("store: the connection broke during a commit whose outcome is unknown",
             {{"error", cause}});
  return Error(absl::StatusCode::kUnavailable, "STORE_COMMIT_UNKNOWN",
               absl::StrCat("store: the connection broke during the commit, which may or may not "
                            "have taken effect: ",
                            cause));
}

void PgStore::AnnounceNewest(const std::vector<EventNotice>& inserted) {
  CommitListener* listener = listener_.load(std::memory_order_acquire);
  if (listener == nullptr) return;
  std::vector<EventNotice> newest;
  absl::Status read = Read([&](Transaction& tx) -> absl::Status {
    newest.clear();
    for (const EventNotice& notice : MergeNotices(inserted)) {
      SY_ASSIGN_OR_RETURN(int64_t last,
                          tx.LastEventSequence(notice.tenant_id, notice.connection_id));
      if (last > 0) newest.push_back({notice.tenant_id, notice.connection_id, last});
    }
    return absl::OkStatus();
  });
  if (read.ok() && !newest.empty()) listener->EventsCommitted(newest);
}

void PgStore::RunBatch(const std::vector<WriteQueue::Task*>& batch) {
  absl::BitGen gen;
  auto fail_all = [&](const absl::Status& status) {
    for (WriteQueue::Task* task : batch) task->result = status;
  };
  for (int attempt = 1;; ++attempt) {
    absl::StatusOr<std::unique_ptr<PgConn>> acquired = Acquire();
    if (!acquired.ok()) {
      fail_all(acquired.status());
      return;
    }
    PgConn& conn = **acquired;
    conn.BeginTransaction();
    // Writes of one key from several replicas would conflict on every group:
    // a connection's events (its key), or a pool's balance (synchronous
    // writes, key ""). A session lock per key, taken in one order before the
    // snapshot, runs them one replica after the other instead; writes of
    // different keys still run on every replica at once.
    std::vector<int64_t> keys;
    for (WriteQueue::Task* task : batch) keys.push_back(StableKeyHash(task->key));
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    if (!keys.empty()) {
      absl::StatusOr<PGresult*> locked =
          conn.Query("SELECT pg_advisory_lock(k) FROM unnest($1::bigint[]) AS k ORDER BY k",
                     {absl::StrCat("{", absl::StrJoin(keys, ","), "}")});
      if (!locked.ok()) {
        // Some keys may be locked already (a timeout while waiting for the
        // next): they must not stay locked with the pooled connection.
        if (conn.broken() || !conn.Exec("SELECT pg_advisory_unlock_all()").ok()) {
          conn.MarkUnusable();
        }
        Release(*std::move(acquired));
        fail_all(locked.status());
        return;
      }
      PQclear(*locked);
    }
    std::vector<EventNotice> inserted;
    std::vector<ChangeNotice> changes;
    // A failure that ends the whole group (conflict, broken connection).
    absl::Status aborted;
    // The transaction's id, asked for at once: should the connection break
    // during COMMIT, it tells whether the commit happened.
    int64_t xid = 0;
    {
      absl::StatusOr<PGresult*> begun =
          conn.Script("BEGIN ISOLATION LEVEL SERIALIZABLE; SAVEPOINT task; SELECT txid_current()");
      if (begun.ok()) {
        if (PQntuples(*begun) != 1 || !absl::SimpleAtoi(PQgetvalue(*begun, 0, 0), &xid)) xid = 0;
        PQclear(*begun);
      } else {
        aborted = begun.status();
      }
    }
    for (WriteQueue::Task* task : batch) {
      if (!aborted.ok()) break;
      const size_t mark = inserted.size();
      const size_t changes_mark = changes.size();
      conn.BeginStatementGroup();
      absl::Status status = task->fn(*NewSqlTransaction(conn, &inserted, &changes));
      if (conn.conflict() || conn.broken()) {
        aborted = status.ok() ? Error(absl::StatusCode::kUnavailable, "STORE_UNAVAILABLE",
                                      "store: the connection broke; retry")
                              : status;
        break;
      }
      if (status.ok() && conn.failed()) {
        // The function went on after a failed statement: PostgreSQL aborted
        // its work, so it must not be reported as done.
        status = Error(absl::StatusCode::kInternal, "STORE_ERROR",
                       "store: a statement failed inside a transaction that reported success");
      }
      if (status.ok()) {
        aborted = conn.Exec("RELEASE SAVEPOINT task; SAVEPOINT task");
      } else {
        inserted.resize(mark);
        changes.resize(changes_mark);
        aborted = conn.Exec("ROLLBACK TO SAVEPOINT task");
      }
      task->result = std::move(status);
    }
    if (aborted.ok() && (!inserted.empty() || !changes.empty())) {
      aborted = Notify(conn, inserted, changes);
    }
    bool conflict = false;
    if (aborted.ok()) {
      aborted = conn.Exec("COMMIT");
      conflict = conn.conflict();
      if (!aborted.ok() && !conflict && conn.broken()) {
        // The broken connection goes back first (it is dropped), so that a
        // pool of one has a connection to ask on.
        Release(*std::move(acquired));
        aborted = CommitOutcome(xid, aborted);
      } else if (!aborted.ok() && !conflict) {
        aborted = Error(absl::StatusCode::kUnavailable, "STORE_UNAVAILABLE",
                        absl::StrCat("store: the commit failed, nothing was stored; retry: ",
                                     aborted.message()));
      }
    } else if (!conn.broken()) {
      conn.Exec("ROLLBACK").IgnoreError();
    }
    if (*acquired != nullptr) {
      if (!keys.empty() && !conn.broken() && !conn.Exec("SELECT pg_advisory_unlock_all()").ok()) {
        conn.MarkUnusable();
      }
      conflict = conn.conflict();
      Release(*std::move(acquired));
    }
    if (conflict && batch.size() > 1) {
      // One conflicting write would take its whole group with it on every
      // attempt: the group's writes run again one by one.
      conflict_retries_.fetch_add(1, std::memory_order_relaxed);
      for (WriteQueue::Task* task : batch) RunBatch({task});
      return;
    }
    if (conflict) {
      if (attempt >= options_.max_attempts) {
        fail_all(Error(absl::StatusCode::kAborted, "STORE_CONFLICT",
                       "store: the transaction kept conflicting with concurrent ones; retry"));
        return;
      }
      conflict_retries_.fetch_add(1, std::memory_order_relaxed);
      // Randomized, growing backoff so that the conflicting transactions
      // drift apart: up to 0.4 ms after the first conflict, at most 50 ms.
      const int64_t cap = attempt >= 8 ? 50000 : std::min<int64_t>(int64_t{200} << attempt, 50000);
      absl::SleepFor(absl::Microseconds(absl::Uniform<int64_t>(gen, 0, cap)));
      continue;
    }
    if (!aborted.ok()) {
      if (!inserted.empty() && ReasonOf(aborted) == "STORE_COMMIT_UNKNOWN") {
        AnnounceNewest(inserted);
      }
      fail_all(aborted);
      return;
    }
    if (!inserted.empty()) {
      CommitListener* listener = listener_.load(std::memory_order_acquire);
      if (listener != nullptr) listener->EventsCommitted(MergeNotices(std::move(inserted)));
    }
    return;
  }
}

absl::Status PgStore::Write(absl::FunctionRef<absl::Status(Transaction&)> fn) {
  return writes_.Write(fn);
}

void PgStore::WriteAsync(std::function<absl::Status(Transaction&)> fn,
                         std::function<void(absl::Status)> done, absl::string_view fairness_key) {
  writes_.WriteAsync(std::move(fn), std::move(done), fairness_key);
}

void PgStore::WriterLoop() {
  // With one writer, a group may hold several writes of one key (run in
  // order); with more, a key is held by one group at a time.
  const bool hold = options_.writers > 1;
  while (true) {
    std::vector<WriteQueue::Task*> batch =
        writes_.Take(static_cast<size_t>(std::max(1, options_.max_batch)), hold);
    if (batch.empty()) return;  // stopping, and nothing left to do
    RunBatch(batch);
    writes_.Finish(batch, hold);
  }
}

absl::Status PgStore::Read(absl::FunctionRef<absl::Status(Transaction&)> fn) {
  SY_ASSIGN_OR_RETURN(std::unique_ptr<PgConn> conn, Acquire(/*read=*/true));
  conn->BeginTransaction();
  absl::Status status = conn->Exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
  if (status.ok()) {
    status = fn(*NewSqlTransaction(*conn, nullptr));
    if (status.ok() && conn->failed()) {
      // `fn` went on past a failed statement: what it read is incomplete.
      status = Error(absl::StatusCode::kInternal, "STORE_ERROR",
                     "store: a read went on after a failed statement");
    }
    if (!conn->broken()) {
      absl::Status end = conn->Exec(status.ok() ? "COMMIT" : "ROLLBACK");
      if (status.ok()) status = end;
    }
  }
  Release(std::move(conn), /*read=*/true);
  return status;
}

void PgStore::SetCommitListener(CommitListener* listener) {
  listener_.store(listener, std::memory_order_release);
}

void PgStore::SetChangeListener(ChangeListener* listener) {
  change_listener_.store(listener, std::memory_order_release);
}

bool PgStore::WaitReadable(int fd, absl::Duration timeout) {
  pollfd fds[2] = {{stop_pipe_[0], POLLIN, 0}, {fd, POLLIN, 0}};
  int n = fd >= 0 ? 2 : 1;
  poll(fds, static_cast<nfds_t>(n), static_cast<int>(absl::ToInt64Milliseconds(timeout)));
  return !listen_stopping_.load();
}

void PgStore::ListenLoop() {
  absl::Duration backoff = absl::Milliseconds(100);
  while (!listen_stopping_.load()) {
    absl::StatusOr<std::unique_ptr<PgConn>> conn = PgConn::Connect(options_);
    absl::Status status = conn.status();
    if (status.ok()) {
      char* quoted = PQescapeIdentifier((*conn)->handle(), channel_.data(), channel_.size());
      std::string listen = absl::StrCat("LISTEN ", quoted == nullptr ? "" : quoted);
      PQfreemem(quoted);
      status = (*conn)->Exec(listen.c_str());
    }
    if (!status.ok()) {
      log::Warning("store notification listener cannot connect; retrying",
                   {{"error", status.ToString()}});
      if (!WaitReadable(-1, backoff)) return;
      backoff = std::min(backoff * 2, absl::Seconds(5));
      continue;
    }
    if (!listening_.HasBeenNotified()) listening_.Notify();
    PgConn& c = **conn;
    // Hands what libpq has parsed of the notifications to the listeners.
    auto dispatch = [&] {
      std::vector<EventNotice> notices;
      std::vector<ChangeNotice> changes;
      while (PGnotify* n = PQnotifies(c.handle())) {
        std::vector<absl::string_view> lines = absl::StrSplit(n->extra, '\n');
        if (!lines.empty() && lines[0] != replica_id_) {
          for (size_t i = 1; i < lines.size(); ++i) {
            std::vector<absl::string_view> parts = absl::StrSplit(lines[i], '\t');
            int64_t sequence = 0;
            if (parts.size() == 4 && parts[0] == "E" && absl::SimpleAtoi(parts[3], &sequence)) {
              notices.push_back({std::string(parts[1]), std::string(parts[2]), sequence});
            } else if (parts.size() == 3 && parts[0] == "C") {
              changes.push_back({std::string(parts[1]), std::string(parts[2])});
            }
          }
        }
        PQfreemem(n);
      }
      CommitListener* listener = listener_.load(std::memory_order_acquire);
      if (listener != nullptr && !notices.empty()) listener->EventsCommitted(notices);
      ChangeListener* change_listener = change_listener_.load(std::memory_order_acquire);
      if (change_listener != nullptr && !changes.empty()) {
        change_listener->ChangesAnnounced(changes);
      }
    };
    // Notifications sent while no connection listened are lost: after a
    // reconnect, or when the first LISTEN came after Open stopped waiting
    // for it (so every LISTEN catches up; at the very start nobody listens
    // yet). Changes: the listeners drop everything they cached. Events:
    // announce every connection's newest one so that consumers look again
    // (one index probe per connection). A catch-up that fails is tried again
    // on a new connection.
    ChangeListener* change_listener = change_listener_.load(std::memory_order_acquire);
    if (change_listener != nullptr) {
      change_listener->ChangesAnnounced({ChangeNotice{std::string(kEverythingChanged), ""}});
    }
    absl::StatusOr<PGresult*> res = c.Query(
        "SELECT c.tenant_id, c.id, (SELECT MAX(e.sequence) FROM events e WHERE "
        "e.tenant_id = c.tenant_id AND e.connection_id = c.id) FROM connections c",
        {});
    if (!res.ok()) {
      log::Warning("store notification listener could not announce the newest events; retrying",
                   {{"error", res.status().ToString()}});
      if (!WaitReadable(-1, backoff)) return;
      backoff = std::min(backoff * 2, absl::Seconds(5));
      continue;
    }
    std::vector<EventNotice> newest;
    for (int i = 0; i < PQntuples(*res); ++i) {
      int64_t sequence = 0;
      if (PQgetisnull(*res, i, 2) || !absl::SimpleAtoi(PQgetvalue(*res, i, 2), &sequence)) continue;
      newest.push_back({PQgetvalue(*res, i, 0), PQgetvalue(*res, i, 1), sequence});
    }
    PQclear(*res);
    CommitListener* listener = listener_.load(std::memory_order_acquire);
    if (listener != nullptr && !newest.empty()) listener->EventsCommitted(newest);
    backoff = absl::Milliseconds(100);
    // Notifications read along with LISTEN or the query above wait in libpq,
    // where polling the socket does not see them.
    dispatch();
    while (WaitReadable(PQsocket(c.handle()), absl::Seconds(30))) {
      if (PQconsumeInput(c.handle()) == 0) {
        log::Warning("store notification listener lost its connection; reconnecting",
                     {{"error", std::string(PQerrorMessage(c.handle()))}});
        break;
      }
      dispatch();
    }
  }
}

}  // namespace switchyard::storage
