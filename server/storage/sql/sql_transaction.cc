#include "server/storage/sql/sql_transaction.h"

#include <algorithm>
#include <optional>
#include <string>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "server/common/status.h"

namespace switchyard::storage {
namespace {

// A prepared statement in use: binds parameters in order, steps, reads
// columns, and resets the statement when it goes out of scope. A statement
// that failed to prepare reports the error from Step.
class Query {
 public:
  Query(SqlConnection& db, const char* sql) {
    auto prepared = db.Prepare(sql);
    if (prepared.ok()) {
      stmt_ = *prepared;
    } else {
      error_ = prepared.status();
    }
  }
  ~Query() {
    if (stmt_ != nullptr) stmt_->Reset();
  }
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;

  Query& Bind(absl::string_view v) {
    ++index_;
    if (stmt_ != nullptr) stmt_->BindText(index_, v);
    return *this;
  }
  Query& Bind(const std::string& v) { return Bind(absl::string_view(v)); }
  // Bytes that are not text.
  struct Blob {
    absl::string_view bytes;
  };
  Query& Bind(Blob v) {
    ++index_;
    if (stmt_ != nullptr) stmt_->BindBlob(index_, v.bytes);
    return *this;
  }
  Query& Bind(const char* v) { return Bind(absl::string_view(v)); }
  Query& Bind(int64_t v) {
    ++index_;
    if (stmt_ != nullptr) stmt_->BindInt(index_, v);
    return *this;
  }
  Query& Bind(int v) { return Bind(static_cast<int64_t>(v)); }
  Query& Bind(bool v) { return Bind(static_cast<int64_t>(v ? 1 : 0)); }
  // Times are microseconds since the epoch; unset is NULL.
  Query& Bind(absl::Time t) {
    if (t == absl::InfinitePast()) {
      ++index_;
      if (stmt_ != nullptr) stmt_->BindNullInt(index_);
      return *this;
    }
    return Bind(static_cast<int64_t>(absl::ToUnixMicros(t)));
  }
  template <typename... Args>
  Query& BindAll(const Args&... args) {
    (Bind(args), ...);
    return *this;
  }

  // true: a row is available; false: done.
  absl::StatusOr<bool> Step() {
    if (stmt_ == nullptr) return error_;
    return stmt_->Step();
  }
  // Runs a statement that returns no rows.
  absl::Status Run() {
    auto r = Step();
    return r.ok() ? absl::OkStatus() : r.status();
  }
  int64_t Changes() const { return stmt_->Changes(); }

  int64_t Int(int col) const { return stmt_->Int(col); }
  std::string Text(int col) const { return std::string(stmt_->Bytes(col)); }
  std::string Bytes(int col) const { return std::string(stmt_->Bytes(col)); }
  absl::Time Time(int col) const {
    if (stmt_->IsNull(col)) return absl::InfinitePast();
    return absl::FromUnixMicros(stmt_->Int(col));
  }

 private:
  SqlStatement* stmt_ = nullptr;
  absl::Status error_;
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

class SqlTransaction final : public Transaction {
 public:
  // `inserted` (optional) collects the events inserted.
  SqlTransaction(SqlConnection& db, std::vector<EventNotice>* inserted,
                 std::vector<ChangeNotice>* changes)
      : db_(db), inserted_(inserted), changes_(changes) {}

  void AnnounceChange(absl::string_view topic, absl::string_view id) override {
    if (changes_ != nullptr) changes_->push_back({std::string(topic), std::string(id)});
  }

  absl::StatusOr<std::optional<PoolRow>> GetPool(absl::string_view id) override {
    static constexpr const char* kSql = "SELECT " POOL_COLS " FROM pools WHERE id = ?";
    Query q(db_, kSql);
    q.BindAll(id);
    return One<PoolRow>(q, ReadPool);
  }
  absl::StatusOr<std::vector<PoolRow>> ListPools(absl::string_view after, int limit) override {
    static constexpr const char* kSql =
        "SELECT " POOL_COLS " FROM pools WHERE id > ? ORDER BY id LIMIT ?";
    Query q(db_, kSql);
    q.BindAll(after, limit);
    return Collect<PoolRow>(q, ReadPool);
  }
  absl::Status InsertPool(const PoolRow& r) override {
    static constexpr const char* kSql =
        "INSERT INTO pools (" POOL_COLS ") VALUES (?, ?, ?, ?, ?, ?, ?)";
    Query q(db_, kSql);
    return q
        .BindAll(r.id, r.display_name, r.capacity, r.reserved, r.consumed, r.create_time,
                 r.update_time)
        .Run();
  }
  absl::Status UpdatePool(const PoolRow& r) override {
    static constexpr const char* kSql =
        "UPDATE pools SET display_name = ?, capacity = ?, reserved = ?, consumed = ?, "
        "create_time = ?, update_time = ? WHERE id = ?";
    Query q(db_, kSql);
    q.BindAll(r.display_name, r.capacity, r.reserved, r.consumed, r.create_time, r.update_time,
              r.id);
    return RunUpdate(q, "pool");
  }

  absl::StatusOr<std::optional<TenantRow>> GetTenant(absl::string_view id) override {
    static constexpr const char* kSql = "SELECT " TENANT_COLS " FROM tenants WHERE id = ?";
    Query q(db_, kSql);
    q.BindAll(id);
    return One<TenantRow>(q, ReadTenant);
  }
  absl::StatusOr<std::vector<TenantRow>> ListTenants(absl::string_view after, int limit) override {
    static constexpr const char* kSql = "SELECT " TENANT_COLS
                                        " FROM tenants WHERE id > ? AND deleted = 0 "
                                        "ORDER BY id LIMIT ?";
    Query q(db_, kSql);
    q.BindAll(after, limit);
    return Collect<TenantRow>(q, ReadTenant);
  }
  absl::Status InsertTenant(const TenantRow& r) override {
    static constexpr const char* kSql =
        "INSERT INTO tenants (" TENANT_COLS ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    Query q(db_, kSql);
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
    Query q(db_, kSql);
    q.BindAll(r.display_name, r.pool_id, r.credit_limit, r.reserved, r.consumed, r.connection_count,
              r.deleted, r.create_time, r.update_time, r.id);
    return RunUpdate(q, "tenant");
  }

  absl::StatusOr<std::optional<ReservationRow>> GetReservation(absl::string_view tenant_id,
                                                               absl::string_view id) override {
    static constexpr const char* kSql =
        "SELECT " RESERVATION_COLS " FROM reservations WHERE tenant_id = ? AND id = ?";
    Query q(db_, kSql);
    q.BindAll(tenant_id, id);
    return One<ReservationRow>(q, ReadReservation);
  }
  absl::Status InsertReservation(const ReservationRow& r) override {
    static constexpr const char* kSql =
        "INSERT INTO reservations (" RESERVATION_COLS ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)";
    Query q(db_, kSql);
    return q
        .BindAll(r.tenant_id, r.id, r.pool_id, r.amount, r.state, r.expire_time, r.create_time,
                 r.resolve_time, r.connection_id)
        .Run();
  }
  absl::Status UpdateReservation(const ReservationRow& r) override {
    static constexpr const char* kSql =
        "UPDATE reservations SET pool_id = ?, amount = ?, state = ?, expire_time = ?, "
        "create_time = ?, resolve_time = ?, connection_id = ? WHERE tenant_id = ? AND id = ?";
    Query q(db_, kSql);
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
    Query q(db_, pool_id.empty() ? kAllPools : kOnePool);
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
    Query q(db_, kSql);
    q.BindAll(tenant_id, after, state, state, limit);
    return Collect<ReservationRow>(q, ReadReservation);
  }

  absl::StatusOr<std::optional<ConnectionRow>> GetConnection(absl::string_view tenant_id,
                                                             absl::string_view id) override {
    static constexpr const char* kSql =
        "SELECT " CONNECTION_COLS " FROM connections WHERE tenant_id = ? AND id = ?";
    Query q(db_, kSql);
    q.BindAll(tenant_id, id);
    SY_ASSIGN_OR_RETURN(std::optional<ConnectionRow> row, One<ConnectionRow>(q, ReadConnection));
    if (row.has_value()) SY_RETURN_IF_ERROR(LoadMetadata(*row));
    return row;
  }
  absl::StatusOr<std::optional<int>> GetConnectionState(absl::string_view tenant_id,
                                                        absl::string_view id) override {
    static constexpr const char* kSql =
        "SELECT state FROM connections WHERE tenant_id = ? AND id = ?";
    Query q(db_, kSql);
    q.BindAll(tenant_id, id);
    return One<int>(q, [](const Query& q) { return static_cast<int>(q.Int(0)); });
  }
  absl::Status InsertConnection(const ConnectionRow& r) override {
    static constexpr const char* kSql =
        "INSERT INTO connections (" CONNECTION_COLS ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    {
      Query q(db_, kSql);
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
    {
      Query q(db_, kSql);
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
    std::vector<ConnectionRow> rows;
    {
      Query q(db_, kSql);
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
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING sequence";
    Query q(db_, kSql);
    q.BindAll(r.kind, r.amount, r.time, r.pool_id, r.tenant_id, r.connection_id, r.reservation_id,
              r.request_id, r.capacity_after, r.reserved_after, r.consumed_after);
    return Returned(q);
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
    Query q(db_, tenant_id.empty() ? kAll : kTenant);
    q.Bind(pool_id);
    if (!tenant_id.empty()) q.Bind(tenant_id);
    q.BindAll(after, limit);
    return Collect<JournalRow>(q, ReadJournal);
  }

  absl::StatusOr<std::vector<DataKeyRow>> ListDataKeys(absl::string_view owner) override {
    static constexpr const char* kSql =
        "SELECT " DATA_KEY_COLS " FROM data_keys WHERE owner = ? ORDER BY version";
    Query q(db_, kSql);
    q.BindAll(owner);
    return Collect<DataKeyRow>(q, ReadDataKey);
  }
  absl::StatusOr<std::vector<DataKeyRow>> ListDataKeysNotWrappedBy(absl::string_view master_key_id,
                                                                   int limit) override {
    static constexpr const char* kSql = "SELECT " DATA_KEY_COLS
                                        " FROM data_keys WHERE master_key_id <> ? "
                                        "ORDER BY owner, version LIMIT ?";
    Query q(db_, kSql);
    q.BindAll(master_key_id, limit);
    return Collect<DataKeyRow>(q, ReadDataKey);
  }
  absl::Status InsertDataKey(const DataKeyRow& r) override {
    static constexpr const char* kSql =
        "INSERT INTO data_keys (" DATA_KEY_COLS ") VALUES (?, ?, ?, ?, ?)";
    Query q(db_, kSql);
    return q.BindAll(r.owner, r.version, r.master_key_id, Query::Blob{r.wrapped}, r.create_time)
        .Run();
  }
  absl::Status UpdateDataKey(const DataKeyRow& r) override {
    static constexpr const char* kSql =
        "UPDATE data_keys SET master_key_id = ?, wrapped = ? WHERE owner = ? AND version = ?";
    Query q(db_, kSql);
    q.BindAll(r.master_key_id, Query::Blob{r.wrapped}, r.owner, r.version);
    return RunUpdate(q, "data key");
  }
  absl::Status DeleteDataKeys(absl::string_view owner, int64_t below_version) override {
    static constexpr const char* kSql = "DELETE FROM data_keys WHERE owner = ? AND version < ?";
    Query q(db_, kSql);
    return q.BindAll(owner, below_version).Run();
  }

  absl::StatusOr<std::optional<ApiKeyRow>> GetApiKey(absl::string_view id) override {
    static constexpr const char* kSql = "SELECT " API_KEY_COLS " FROM api_keys WHERE id = ?";
    Query q(db_, kSql);
    q.BindAll(id);
    return One<ApiKeyRow>(q, ReadApiKey);
  }
  absl::StatusOr<std::optional<ApiKeyRow>> GetApiKeyByHash(absl::string_view hash) override {
    static constexpr const char* kSql = "SELECT " API_KEY_COLS " FROM api_keys WHERE hash = ?";
    Query q(db_, kSql);
    q.Bind(Query::Blob{hash});
    return One<ApiKeyRow>(q, ReadApiKey);
  }
  absl::Status InsertApiKey(const ApiKeyRow& r) override {
    static constexpr const char* kSql =
        "INSERT INTO api_keys (" API_KEY_COLS ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    Query q(db_, kSql);
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
    Query q(db_, kSql);
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
    Query q(db_, sql);
    if (!tenant_id.empty()) q.Bind(tenant_id);
    if (!tenant_id.empty() && !connection_id.empty()) q.Bind(connection_id);
    q.BindAll(kind, kind, after, limit);
    return Collect<ApiKeyRow>(q, ReadApiKey);
  }

  absl::StatusOr<std::optional<CredentialsRow>> GetCredentials(
      absl::string_view tenant_id, absl::string_view connection_id) override {
    static constexpr const char* kSql =
        "SELECT " CREDENTIALS_COLS " FROM credentials WHERE tenant_id = ? AND connection_id = ?";
    Query q(db_, kSql);
    q.BindAll(tenant_id, connection_id);
    return One<CredentialsRow>(q, ReadCredentials);
  }
  absl::Status PutCredentials(const CredentialsRow& r) override {
    static constexpr const char* kSql =
        "INSERT INTO credentials (" CREDENTIALS_COLS
        ") VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (tenant_id, connection_id) DO UPDATE SET key_version = excluded.key_version, "
        "sealed = excluded.sealed, summary = excluded.summary, update_time = excluded.update_time";
    Query q(db_, kSql);
    return q
        .BindAll(r.tenant_id, r.connection_id, r.key_version, Query::Blob{r.sealed},
                 Query::Blob{r.summary}, r.update_time)
        .Run();
  }
  absl::Status DeleteCredentials(absl::string_view tenant_id,
                                 absl::string_view connection_id) override {
    static constexpr const char* kSql =
        "DELETE FROM credentials WHERE tenant_id = ? AND connection_id = ?";
    Query q(db_, kSql);
    return q.BindAll(tenant_id, connection_id).Run();
  }
  absl::StatusOr<std::vector<CredentialsRow>> ListCredentials(absl::string_view tenant_id,
                                                              absl::string_view after,
                                                              int limit) override {
    static constexpr const char* kSql =
        "SELECT " CREDENTIALS_COLS
        " FROM credentials WHERE tenant_id = ? AND connection_id > ? ORDER BY connection_id "
        "LIMIT ?";
    Query q(db_, kSql);
    q.BindAll(tenant_id, after, limit);
    return Collect<CredentialsRow>(q, ReadCredentials);
  }

  absl::StatusOr<std::optional<EventRow>> GetEventById(absl::string_view tenant_id,
                                                       absl::string_view connection_id,
                                                       absl::string_view event_id) override {
    static constexpr const char* kSql =
        "SELECT " EVENT_COLS
        " FROM events WHERE tenant_id = ? AND connection_id = ? AND event_id = ?";
    Query q(db_, kSql);
    q.BindAll(tenant_id, connection_id, event_id);
    return One<EventRow>(q, ReadEvent);
  }
  absl::StatusOr<int64_t> LastEventSequence(absl::string_view tenant_id,
                                            absl::string_view connection_id) override {
    static constexpr const char* kSql =
        "SELECT MAX(sequence) FROM events WHERE tenant_id = ? AND connection_id = ?";
    Query q(db_, kSql);
    q.BindAll(tenant_id, connection_id);
    SY_ASSIGN_OR_RETURN(bool has_row, q.Step());
    return has_row ? q.Int(0) : int64_t{0};
  }
  absl::Status InsertEvent(const EventRow& r) override {
    static constexpr const char* kSql =
        "INSERT INTO events (" EVENT_INSERT_COLS ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    Query q(db_, kSql);
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
    Query q(db_, kSql);
    q.BindAll(tenant_id, connection_id, after, limit);
    return Collect<EventRow>(q, ReadEvent);
  }

  absl::StatusOr<std::vector<DeliveryLeaseRow>> ListDeliveryLeases(
      absl::string_view subscription_tenant_id, absl::string_view subscription_id) override {
    static constexpr const char* kSql =
        "SELECT subscription_tenant_id, subscription_id, tenant_id, connection_id, holder, "
        "expire_time FROM delivery_leases WHERE subscription_tenant_id = ? AND "
        "subscription_id = ? ORDER BY tenant_id, connection_id";
    Query q(db_, kSql);
    q.BindAll(subscription_tenant_id, subscription_id);
    return Collect<DeliveryLeaseRow>(q, [](const Query& q) {
      return DeliveryLeaseRow{q.Text(0), q.Text(1), q.Text(2), q.Text(3), q.Text(4), q.Time(5)};
    });
  }
  absl::Status PutDeliveryLease(const DeliveryLeaseRow& r) override {
    static constexpr const char* kSql =
        "INSERT INTO delivery_leases (subscription_tenant_id, subscription_id, tenant_id, "
        "connection_id, holder, expire_time) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT "
        "(subscription_tenant_id, subscription_id, tenant_id, connection_id) DO UPDATE SET "
        "holder = excluded.holder, expire_time = excluded.expire_time";
    Query q(db_, kSql);
    return q
        .BindAll(r.subscription_tenant_id, r.subscription_id, r.tenant_id, r.connection_id,
                 r.holder, r.expire_time)
        .Run();
  }
  absl::Status DeleteDeliveryLease(absl::string_view subscription_tenant_id,
                                   absl::string_view subscription_id, absl::string_view tenant_id,
                                   absl::string_view connection_id,
                                   absl::string_view holder) override {
    static constexpr const char* kSql =
        "DELETE FROM delivery_leases WHERE subscription_tenant_id = ? AND subscription_id = ? "
        "AND tenant_id = ? AND connection_id = ? AND holder = ?";
    Query q(db_, kSql);
    return q.BindAll(subscription_tenant_id, subscription_id, tenant_id, connection_id, holder)
        .Run();
  }
  absl::StatusOr<std::string> DeliveryLeaseHolder(absl::string_view subscription_tenant_id,
                                                  absl::string_view subscription_id,
                                                  absl::string_view tenant_id,
                                                  absl::string_view connection_id) override {
    static constexpr const char* kSql =
        "SELECT holder FROM delivery_leases WHERE subscription_tenant_id = ? AND "
        "subscription_id = ? AND tenant_id = ? AND connection_id = ?";
    Query q(db_, kSql);
    q.BindAll(subscription_tenant_id, subscription_id, tenant_id, connection_id);
    SY_ASSIGN_OR_RETURN(bool has_row, q.Step());
    return has_row ? q.Text(0) : std::string();
  }
  absl::StatusOr<std::vector<DeliveryMemberRow>> ListDeliveryMembers(
      absl::string_view subscription_tenant_id, absl::string_view subscription_id) override {
    static constexpr const char* kSql =
        "SELECT subscription_tenant_id, subscription_id, holder, expire_time FROM "
        "delivery_members WHERE subscription_tenant_id = ? AND subscription_id = ? ORDER BY "
        "holder";
    Query q(db_, kSql);
    q.BindAll(subscription_tenant_id, subscription_id);
    return Collect<DeliveryMemberRow>(q, [](const Query& q) {
      return DeliveryMemberRow{q.Text(0), q.Text(1), q.Text(2), q.Time(3)};
    });
  }
  absl::Status PutDeliveryMember(const DeliveryMemberRow& r) override {
    static constexpr const char* kSql =
        "INSERT INTO delivery_members (subscription_tenant_id, subscription_id, holder, "
        "expire_time) VALUES (?, ?, ?, ?) ON CONFLICT (subscription_tenant_id, subscription_id, "
        "holder) DO UPDATE SET expire_time = excluded.expire_time";
    Query q(db_, kSql);
    return q.BindAll(r.subscription_tenant_id, r.subscription_id, r.holder, r.expire_time).Run();
  }
  absl::Status LeaveDelivery(absl::string_view subscription_tenant_id,
                             absl::string_view subscription_id, absl::string_view holder) override {
    static constexpr const char* kSql[] = {
        "DELETE FROM delivery_leases WHERE subscription_tenant_id = ? AND subscription_id = ? "
        "AND holder = ?",
        "DELETE FROM delivery_members WHERE subscription_tenant_id = ? AND subscription_id = ? "
        "AND holder = ?",
    };
    for (const char* sql : kSql) {
      Query q(db_, sql);
      SY_RETURN_IF_ERROR(q.BindAll(subscription_tenant_id, subscription_id, holder).Run());
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::optional<ConnectionHealthRow>> GetConnectionHealth(
      absl::string_view tenant_id, absl::string_view connection_id) override {
    static constexpr const char* kSql =
        "SELECT " HEALTH_COLS " FROM connection_health WHERE tenant_id = ? AND connection_id = ?";
    Query q(db_, kSql);
    q.BindAll(tenant_id, connection_id);
    return One<ConnectionHealthRow>(q, ReadHealth);
  }
  absl::Status PutConnectionHealth(const ConnectionHealthRow& r) override {
    static constexpr const char* kSql =
        "INSERT INTO connection_health (" HEALTH_COLS
        ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (tenant_id, connection_id) DO UPDATE SET url = excluded.url, interval_ms = "
        "excluded.interval_ms, timeout_ms = excluded.timeout_ms, expected_status = "
        "excluded.expected_status, state = excluded.state, state_change_time = "
        "excluded.state_change_time, last_check_time = excluded.last_check_time, last_result = "
        "excluded.last_result, consecutive_failures = excluded.consecutive_failures, "
        "consecutive_successes = excluded.consecutive_successes";
    Query q(db_, kSql);
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
    Query q(db_, kSql);
    return q.BindAll(tenant_id, connection_id).Run();
  }
  absl::StatusOr<std::vector<ConnectionHealthRow>> ListConnectionHealth() override {
    static constexpr const char* kSql =
        "SELECT " HEALTH_COLS " FROM connection_health ORDER BY tenant_id, connection_id";
    Query q(db_, kSql);
    return Collect<ConnectionHealthRow>(q, ReadHealth);
  }
  absl::StatusOr<std::optional<ChangeFeedRow>> GetChangeFeed(
      absl::string_view tenant_id, absl::string_view connection_id) override {
    static constexpr const char* kSql =
        "SELECT " FEED_COLS " FROM change_feeds WHERE tenant_id = ? AND connection_id = ?";
    Query q(db_, kSql);
    q.BindAll(tenant_id, connection_id);
    return One<ChangeFeedRow>(q, ReadFeed);
  }
  absl::Status PutChangeFeed(const ChangeFeedRow& r) override {
    static constexpr const char* kSql =
        "INSERT INTO change_feeds (" FEED_COLS
        ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (tenant_id, connection_id) DO UPDATE SET url = excluded.url, interval_ms = "
        "excluded.interval_ms, mode = excluded.mode, silence_ms = excluded.silence_ms, cursor = "
        "excluded.cursor, last_poll_time = excluded.last_poll_time, last_result = "
        "excluded.last_result, events_stored = excluded.events_stored";
    Query q(db_, kSql);
    return q
        .BindAll(r.tenant_id, r.connection_id, r.url, r.interval_ms, r.mode, r.silence_ms, r.cursor,
                 r.last_poll_time, r.last_result, r.events_stored)
        .Run();
  }
  absl::Status DeleteChangeFeed(absl::string_view tenant_id,
                                absl::string_view connection_id) override {
    static constexpr const char* kSql =
        "DELETE FROM change_feeds WHERE tenant_id = ? AND connection_id = ?";
    Query q(db_, kSql);
    return q.BindAll(tenant_id, connection_id).Run();
  }
  absl::StatusOr<std::vector<ChangeFeedRow>> ListChangeFeeds() override {
    static constexpr const char* kSql =
        "SELECT " FEED_COLS " FROM change_feeds ORDER BY tenant_id, connection_id";
    Query q(db_, kSql);
    return Collect<ChangeFeedRow>(q, ReadFeed);
  }
  absl::StatusOr<absl::Time> LastEventReceiveTime(absl::string_view tenant_id,
                                                  absl::string_view connection_id,
                                                  int source) override {
    static constexpr const char* kSql =
        "SELECT receive_time FROM events WHERE tenant_id = ? AND connection_id = ? AND "
        "source = ? ORDER BY sequence DESC LIMIT 1";
    Query q(db_, kSql);
    q.BindAll(tenant_id, connection_id, source);
    SY_ASSIGN_OR_RETURN(bool has_row, q.Step());
    return has_row ? q.Time(0) : absl::InfinitePast();
  }

  absl::StatusOr<int64_t> InsertIncident(const IncidentRow& r) override {
    static constexpr const char* kSql =
        "INSERT INTO incidents (title, component, severity, state, start_time, end_time, "
        "automatic, notes) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id";
    Query q(db_, kSql);
    q.BindAll(r.title, r.component, r.severity, r.state, r.start_time, r.end_time, r.automatic,
              Query::Blob{r.notes});
    return Returned(q);
  }
  absl::Status UpdateIncident(const IncidentRow& r) override {
    static constexpr const char* kSql =
        "UPDATE incidents SET title = ?, component = ?, severity = ?, state = ?, start_time = ?, "
        "end_time = ?, automatic = ?, notes = ? WHERE id = ?";
    Query q(db_, kSql);
    q.BindAll(r.title, r.component, r.severity, r.state, r.start_time, r.end_time, r.automatic,
              Query::Blob{r.notes}, r.id);
    return RunUpdate(q, "incident");
  }
  absl::StatusOr<std::optional<IncidentRow>> GetIncident(int64_t id) override {
    static constexpr const char* kSql = "SELECT " INCIDENT_COLS " FROM incidents WHERE id = ?";
    Query q(db_, kSql);
    q.BindAll(id);
    return One<IncidentRow>(q, ReadIncident);
  }
  absl::StatusOr<std::vector<IncidentRow>> ListIncidents(int state, int64_t before,
                                                         int limit) override {
    static constexpr const char* kSql =
        "SELECT " INCIDENT_COLS
        " FROM incidents WHERE (? = 0 OR state = ?) AND (? = 0 OR id < ?) ORDER BY id DESC "
        "LIMIT ?";
    Query q(db_, kSql);
    q.BindAll(state, state, before, before, limit);
    return Collect<IncidentRow>(q, ReadIncident);
  }
  absl::StatusOr<std::optional<IncidentRow>> FindOpenIncident(
      absl::string_view component) override {
    static constexpr const char* kSql =
        "SELECT " INCIDENT_COLS " FROM incidents WHERE component = ? AND state = 1 LIMIT 1";
    Query q(db_, kSql);
    q.BindAll(component);
    return One<IncidentRow>(q, ReadIncident);
  }

  absl::StatusOr<std::vector<SystemHealthCount>> CountLiveConnectionsBySystem() override {
    static constexpr const char* kSql =
        "SELECT c.system_id, COALESCE(h.state, 0), COUNT(*) FROM connections c "
        "LEFT JOIN connection_health h ON h.tenant_id = c.tenant_id AND h.connection_id = c.id "
        "WHERE c.state != 5 GROUP BY 1, 2 ORDER BY 1, 2";
    Query q(db_, kSql);
    return Collect<SystemHealthCount>(q, [](const Query& q) {
      return SystemHealthCount{q.Text(0), static_cast<int>(q.Int(1)), q.Int(2)};
    });
  }

  absl::StatusOr<std::map<int, int64_t>> CountConnectionsByState() override {
    static constexpr const char* kSql = "SELECT state, COUNT(*) FROM connections GROUP BY state";
    Query q(db_, kSql);
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
    Query q(db_, kSql);
    q.BindAll(tenant_id, connection_id, sequence);
    return One<EventRow>(q, ReadEvent);
  }
  absl::StatusOr<int64_t> FirstEventSequenceAfter(absl::string_view tenant_id,
                                                  absl::string_view connection_id,
                                                  int64_t position) override {
    static constexpr const char* kSql =
        "SELECT sequence FROM events WHERE tenant_id = ? AND connection_id = ? AND position > ? "
        "ORDER BY sequence LIMIT 1";
    Query q(db_, kSql);
    q.BindAll(tenant_id, connection_id, position);
    SY_ASSIGN_OR_RETURN(bool has_row, q.Step());
    return has_row ? q.Int(0) : int64_t{0};
  }
  absl::StatusOr<int64_t> LastEventPosition() override {
    static constexpr const char* kSql = "SELECT MAX(position) FROM events";
    Query q(db_, kSql);
    SY_ASSIGN_OR_RETURN(bool has_row, q.Step());
    return has_row ? q.Int(0) : int64_t{0};
  }
  absl::StatusOr<int64_t> FirstEventPositionAt(absl::Time time) override {
    static constexpr const char* kSql = "SELECT MIN(position) FROM events WHERE receive_time >= ?";
    Query q(db_, kSql);
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
      Query q(db_, kScan);
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
        Query q(db_, kDelete);
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
    Query q(db_, kSql);
    q.BindAll(tenant_id, id);
    return One<SubscriptionRow>(q, ReadSubscription);
  }
  absl::Status InsertSubscription(const SubscriptionRow& r) override {
    static constexpr const char* kSql =
        "INSERT INTO subscriptions (" SUBSCRIPTION_COLS ") VALUES (?, ?, ?, ?, ?, ?)";
    Query q(db_, kSql);
    return q
        .BindAll(r.tenant_id, r.id, Query::Blob{r.config}, r.start_position, r.generation,
                 r.create_time)
        .Run();
  }
  absl::Status UpdateSubscription(const SubscriptionRow& r) override {
    static constexpr const char* kSql =
        "UPDATE subscriptions SET config = ?, start_position = ?, generation = ?, "
        "create_time = ? WHERE tenant_id = ? AND id = ?";
    Query q(db_, kSql);
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
        "DELETE FROM delivery_leases WHERE subscription_tenant_id = ? AND subscription_id = ?",
        "DELETE FROM delivery_members WHERE subscription_tenant_id = ? AND subscription_id = ?",
        "DELETE FROM delivery_attempts WHERE subscription_tenant_id = ? AND subscription_id = ?",
    };
    for (const char* sql : kSql) {
      Query q(db_, sql);
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
    Query q(db_, kSql);
    q.BindAll(tenant_id, after, limit);
    return Collect<SubscriptionRow>(q, ReadSubscription);
  }
  absl::StatusOr<std::vector<SubscriptionCursorRow>> ListSubscriptionCursors(
      absl::string_view subscription_tenant_id, absl::string_view subscription_id) override {
    static constexpr const char* kSql =
        "SELECT subscription_tenant_id, subscription_id, tenant_id, connection_id, "
        "resolved_through FROM subscription_cursors WHERE subscription_tenant_id = ? AND "
        "subscription_id = ? ORDER BY tenant_id, connection_id";
    Query q(db_, kSql);
    q.BindAll(subscription_tenant_id, subscription_id);
    return Collect<SubscriptionCursorRow>(q, [](const Query& q) {
      return SubscriptionCursorRow{q.Text(0), q.Text(1), q.Text(2), q.Text(3), q.Int(4)};
    });
  }
  absl::Status PutSubscriptionCursor(const SubscriptionCursorRow& r) override {
    static constexpr const char* kSql =
        "INSERT INTO subscription_cursors (subscription_tenant_id, subscription_id, "
        "tenant_id, connection_id, resolved_through) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (subscription_tenant_id, subscription_id, tenant_id, connection_id) DO "
        "UPDATE SET resolved_through = excluded.resolved_through";
    Query q(db_, kSql);
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
    Query q(db_, kSql);
    return q.BindAll(subscription_tenant_id, subscription_id).Run();
  }
  absl::StatusOr<std::vector<DeliveryAttemptRow>> ListDeliveryAttempts(
      absl::string_view subscription_tenant_id, absl::string_view subscription_id) override {
    static constexpr const char* kSql =
        "SELECT subscription_tenant_id, subscription_id, tenant_id, connection_id, sequence, "
        "attempts, free_attempts FROM delivery_attempts WHERE subscription_tenant_id = ? AND "
        "subscription_id = ? ORDER BY tenant_id, connection_id, sequence";
    Query q(db_, kSql);
    q.BindAll(subscription_tenant_id, subscription_id);
    return Collect<DeliveryAttemptRow>(q, [](const Query& q) {
      return DeliveryAttemptRow{q.Text(0),
                                q.Text(1),
                                q.Text(2),
                                q.Text(3),
                                q.Int(4),
                                static_cast<int>(q.Int(5)),
                                static_cast<int>(q.Int(6))};
    });
  }
  absl::Status PutDeliveryAttempt(const DeliveryAttemptRow& r) override {
    static constexpr const char* kSql =
        "INSERT INTO delivery_attempts (subscription_tenant_id, subscription_id, tenant_id, "
        "connection_id, sequence, attempts, free_attempts) VALUES (?, ?, ?, ?, ?, ?, ?) ON "
        "CONFLICT "
        "(subscription_tenant_id, subscription_id, tenant_id, connection_id, sequence) DO "
        "UPDATE SET attempts = excluded.attempts, free_attempts = excluded.free_attempts";
    Query q(db_, kSql);
    return q
        .BindAll(r.subscription_tenant_id, r.subscription_id, r.tenant_id, r.connection_id,
                 r.sequence, r.attempts, r.free)
        .Run();
  }
  absl::Status DeleteDeliveryAttempts(absl::string_view subscription_tenant_id,
                                      absl::string_view subscription_id,
                                      absl::string_view tenant_id, absl::string_view connection_id,
                                      int64_t through) override {
    static constexpr const char* kSql =
        "DELETE FROM delivery_attempts WHERE subscription_tenant_id = ? AND subscription_id = ? "
        "AND tenant_id = ? AND connection_id = ? AND sequence <= ?";
    Query q(db_, kSql);
    return q.BindAll(subscription_tenant_id, subscription_id, tenant_id, connection_id, through)
        .Run();
  }
  absl::Status DeleteAllDeliveryAttempts(absl::string_view subscription_tenant_id,
                                         absl::string_view subscription_id) override {
    static constexpr const char* kSql =
        "DELETE FROM delivery_attempts WHERE subscription_tenant_id = ? AND subscription_id = ?";
    Query q(db_, kSql);
    return q.BindAll(subscription_tenant_id, subscription_id).Run();
  }
  absl::Status PutDeadLetter(const DeadLetterRow& r) override {
    static constexpr const char* kSql =
        "INSERT INTO dead_letters (" DEAD_LETTER_COLS
        ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (subscription_tenant_id, subscription_id, position) DO UPDATE SET tenant_id "
        "= excluded.tenant_id, connection_id = excluded.connection_id, sequence = "
        "excluded.sequence, attempts = excluded.attempts, dead_time = excluded.dead_time, "
        "replaying = excluded.replaying";
    Query q(db_, kSql);
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
    Query q(db_, kSql);
    return q.BindAll(subscription_tenant_id, subscription_id, position).Run();
  }
  absl::StatusOr<std::vector<DeadLetterRow>> ListDeadLetters(
      absl::string_view subscription_tenant_id, absl::string_view subscription_id, int64_t after,
      int limit, bool replaying_only) override {
    static constexpr const char* kSql =
        "SELECT " DEAD_LETTER_COLS
        " FROM dead_letters WHERE subscription_tenant_id = ? AND subscription_id = ? AND "
        "position > ? AND replaying >= ? ORDER BY position LIMIT ?";
    Query q(db_, kSql);
    q.BindAll(subscription_tenant_id, subscription_id, after, replaying_only ? 1 : 0, limit);
    return Collect<DeadLetterRow>(q, ReadDeadLetter);
  }

  absl::StatusOr<std::vector<WebhookSecretRow>> ListWebhookSecrets(
      absl::string_view tenant_id, absl::string_view connection_id) override {
    static constexpr const char* kSql =
        "SELECT " WEBHOOK_SECRET_COLS
        " FROM webhook_secrets WHERE tenant_id = ? AND connection_id = ? ORDER BY version";
    Query q(db_, kSql);
    q.BindAll(tenant_id, connection_id);
    return Collect<WebhookSecretRow>(q, ReadWebhookSecret);
  }
  absl::Status PutWebhookSecret(const WebhookSecretRow& r) override {
    static constexpr const char* kSql =
        "INSERT INTO webhook_secrets (" WEBHOOK_SECRET_COLS
        ") VALUES (?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (tenant_id, connection_id, version) DO UPDATE SET key_version = "
        "excluded.key_version, sealed = excluded.sealed, create_time = excluded.create_time, "
        "expire_time = excluded.expire_time";
    Query q(db_, kSql);
    return q
        .BindAll(r.tenant_id, r.connection_id, r.version, r.key_version, Query::Blob{r.sealed},
                 r.create_time, r.expire_time)
        .Run();
  }
  absl::Status DeleteWebhookSecrets(absl::string_view tenant_id,
                                    absl::string_view connection_id) override {
    static constexpr const char* kSql =
        "DELETE FROM webhook_secrets WHERE tenant_id = ? AND connection_id = ?";
    Query q(db_, kSql);
    return q.BindAll(tenant_id, connection_id).Run();
  }

  absl::StatusOr<std::optional<IdempotencyRow>> GetIdempotency(absl::string_view key) override {
    static constexpr const char* kSql =
        "SELECT key, fingerprint, response, create_time FROM idempotency WHERE key = ?";
    Query q(db_, kSql);
    q.BindAll(key);
    return One<IdempotencyRow>(q, [](const Query& q) {
      return IdempotencyRow{q.Text(0), q.Text(1), q.Bytes(2), q.Time(3)};
    });
  }
  absl::Status PutIdempotency(const IdempotencyRow& r) override {
    static constexpr const char* kSql =
        "INSERT INTO idempotency (key, fingerprint, response, create_time) "
        "VALUES (?, ?, ?, ?)"
        " ON CONFLICT (key) DO UPDATE SET fingerprint = excluded.fingerprint, response = "
        "excluded.response, create_time = excluded.create_time";
    Query q(db_, kSql);
    return q.BindAll(r.key, r.fingerprint, Query::Blob{r.response}, r.create_time).Run();
  }
  absl::StatusOr<int64_t> DeleteIdempotencyBefore(absl::Time cutoff) override {
    static constexpr const char* kSql = "DELETE FROM idempotency WHERE create_time < ?";
    Query q(db_, kSql);
    SY_RETURN_IF_ERROR(q.BindAll(cutoff).Run());
    return static_cast<int64_t>(q.Changes());
  }

 private:
  // The value of the RETURNING clause of an INSERT.
  static absl::StatusOr<int64_t> Returned(Query& q) {
    SY_ASSIGN_OR_RETURN(bool has_row, q.Step());
    if (!has_row) {
      return Error(absl::StatusCode::kInternal, "STORE_ERROR", "store: INSERT returned no id");
    }
    return q.Int(0);
  }

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
    Query q(db_, kSql);
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
      Query q(db_, kDelete);
      SY_RETURN_IF_ERROR(q.BindAll(row.tenant_id, row.id).Run());
    }
    for (const auto& [key, value] : row.metadata) {
      Query q(db_, kInsert);
      SY_RETURN_IF_ERROR(q.BindAll(row.tenant_id, row.id, key, value).Run());
    }
    return absl::OkStatus();
  }

  SqlConnection& db_;
  std::vector<EventNotice>* inserted_;
  std::vector<ChangeNotice>* changes_;
};

}  // namespace

std::unique_ptr<Transaction> NewSqlTransaction(SqlConnection& connection,
                                               std::vector<EventNotice>* inserted,
                                               std::vector<ChangeNotice>* changes) {
  return std::make_unique<SqlTransaction>(connection, inserted, changes);
}

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

}  // namespace switchyard::storage
