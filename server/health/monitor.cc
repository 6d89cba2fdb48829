#include "server/health/monitor.h"

#include <algorithm>
#include <cstring>

#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/common/names.h"
#include "server/common/proto_time.h"
#include "server/common/status.h"
#include "server/events/event_log.h"
#include "server/health/url_policy.h"
#include "server/incidents/incidents.h"

namespace switchyard::health {
namespace {

using State = v1::ConnectionHealth;

std::string Key(absl::string_view tenant_id, absl::string_view connection_id) {
  return absl::StrCat(tenant_id, "/", connection_id);
}

std::string ConnectionName(const storage::ConnectionHealthRow& row) {
  return absl::StrCat("tenants/", row.tenant_id, "/connections/", row.connection_id);
}

absl::Status ConnectionMissing(absl::string_view name) {
  return NotFound("CONNECTION_NOT_FOUND", absl::StrCat(name, " does not exist"));
}

// The transaction part of a probe result: the row, and on a change the event
// and the incident.
absl::Status WriteResult(storage::Transaction& tx, const storage::ConnectionHealthRow& row,
                         int before, absl::Time now) {
  SY_RETURN_IF_ERROR(tx.PutConnectionHealth(row));
  if (row.state == before) return absl::OkStatus();
  const std::string name = ConnectionName(row);
  const std::string from = State::State_Name(static_cast<State::State>(before));
  const std::string to = State::State_Name(static_cast<State::State>(row.state));
  storage::EventRow event;
  event.tenant_id = row.tenant_id;
  event.connection_id = row.connection_id;
  event.event_id = GenerateId("gw");
  event.type = "switchyard.connection.health_changed";
  event.source = v1::Event::GATEWAY;
  event.source_time = now;
  event.receive_time = now;
  event.content_type = "application/json";
  std::string result = row.last_result;
  for (char& c : result) {
    if (c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20) c = ' ';
  }
  event.body = absl::StrCat("{\"connection\":\"", name, "\",\"from\":\"", from, "\",\"to\":\"", to,
                            "\",\"result\":\"", result, "\"}");
  SY_RETURN_IF_ERROR(events::EventLog::AppendInTx(tx, std::move(event)).status());
  auto down = [](int state) { return state == State::OFFLINE || state == State::AUTH_REQUIRED; };
  if (down(row.state)) {
    return incidents::IncidentLog::OpenInTx(tx, name, absl::StrCat(name, " is ", to),
                                            v1::Incident::MAJOR,
                                            absl::StrCat("health check: ", row.last_result), now);
  }
  if (down(before)) {
    return incidents::IncidentLog::ResolveInTx(
        tx, name, absl::StrCat("now ", to, ": ", row.last_result), now);
  }
  return absl::OkStatus();
}

}  // namespace

void ApplyProbe(storage::ConnectionHealthRow& row, const ProbeResult& result, absl::Time now) {
  const int before = row.state;
  row.last_check_time = now;
  const bool answered = result.status != 0;
  const bool good = answered && result.status == row.expected_status;
  const bool auth = result.status == 401 || result.status == 403;
  const bool auth_before = absl::StartsWith(row.last_result, "HTTP 401 ") ||
                           absl::StartsWith(row.last_result, "HTTP 403 ");
  const bool slow = good && result.latency > absl::Milliseconds(row.timeout_ms) / 2;
  row.last_result = answered ? absl::StrCat("HTTP ", result.status, " in ",
                                            absl::ToInt64Milliseconds(result.latency), " ms")
                             : (result.error.empty() ? std::string("no answer") : result.error);
  if (good) {
    row.consecutive_failures = 0;
    if (slow) {
      // Answers, but slowly: degraded whatever it was.
      row.consecutive_successes = 0;
      row.state = State::DEGRADED;
    } else {
      ++row.consecutive_successes;
      if (row.state == State::UNKNOWN || row.consecutive_successes >= 2) row.state = State::ONLINE;
    }
  } else {
    row.consecutive_successes = 0;
    ++row.consecutive_failures;
    if (auth && auth_before && row.consecutive_failures >= 2) {
      row.state = State::AUTH_REQUIRED;
    } else if (row.consecutive_failures >= 3) {
      row.state = State::OFFLINE;
    } else if (row.state == State::ONLINE || row.state == State::UNKNOWN) {
      row.state = State::DEGRADED;
    }
  }
  if (row.state != before) row.state_change_time = now;
}

absl::Time NextProbe(const storage::ConnectionHealthRow& row, absl::Time now, double jitter) {
  const absl::Duration interval = absl::Milliseconds(row.interval_ms);
  absl::Duration wait = interval;
  if (row.consecutive_failures > 1) {
    const int doublings = std::min(row.consecutive_failures - 1, 3);
    wait = std::max(interval, std::min(interval * (1 << doublings), absl::Minutes(5)));
  }
  return now + wait + wait * (0.1 * std::clamp(jitter, -1.0, 1.0));
}

HealthMonitor::~HealthMonitor() { Shutdown(); }

v1::ConnectionHealth HealthMonitor::ToProto(const storage::ConnectionHealthRow& row) {
  v1::ConnectionHealth h;
  h.set_name(ConnectionName(row) + "/health");
  h.mutable_check()->set_url(row.url);
  switchyard::ToProto(absl::Milliseconds(row.interval_ms), h.mutable_check()->mutable_interval());
  switchyard::ToProto(absl::Milliseconds(row.timeout_ms), h.mutable_check()->mutable_timeout());
  h.mutable_check()->set_expected_status(row.expected_status);
  h.set_state(static_cast<State::State>(row.state));
  if (row.state_change_time != absl::InfinitePast()) {
    switchyard::ToProto(row.state_change_time, h.mutable_state_change_time());
  }
  if (row.last_check_time != absl::InfinitePast()) {
    switchyard::ToProto(row.last_check_time, h.mutable_last_check_time());
  }
  h.set_last_result(row.last_result);
  h.set_consecutive_failures(row.consecutive_failures);
  return h;
}

absl::Status HealthMonitor::Load() {
  std::vector<storage::ConnectionHealthRow> rows;
  SY_RETURN_IF_ERROR(store_.Read([&](storage::Transaction& tx) -> absl::Status {
    SY_ASSIGN_OR_RETURN(rows, tx.ListConnectionHealth());
    return absl::OkStatus();
  }));
  const absl::Time now = clock_.Now();
  absl::BitGen bitgen;
  absl::MutexLock lock(&mu_);
  for (storage::ConnectionHealthRow& row : rows) {
    Entry entry;
    // Spread the first probes after a restart over one interval.
    entry.next_due = now + absl::Milliseconds(row.interval_ms) * absl::Uniform(bitgen, 0.0, 1.0);
    entry.generation = next_generation_++;
    const std::string key = Key(row.tenant_id, row.connection_id);
    entry.row = std::move(row);
    entries_[key] = std::move(entry);
  }
  return absl::OkStatus();
}

void HealthMonitor::Start(absl::Duration period) {
  ticker_.Start(period, [this] { Tick(); });
}

void HealthMonitor::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  ticker_.Stop();
}

void HealthMonitor::Tick() {
  std::vector<Finished> finished;
  {
    absl::MutexLock lock(&mu_);
    finished.swap(finished_);
  }
  const absl::Time now = clock_.Now();
  absl::BitGen bitgen;
  for (Finished& f : finished) {
    storage::ConnectionHealthRow row;
    {
      absl::MutexLock lock(&mu_);
      auto it = entries_.find(f.key);
      if (it == entries_.end() || it->second.generation != f.generation) continue;
      it->second.in_flight = false;
      row = it->second.row;
    }
    const int before = row.state;
    ApplyProbe(row, f.result, now);
    bool gone = false;
    absl::Status written = store_.Write([&](storage::Transaction& tx) -> absl::Status {
      gone = false;
      SY_ASSIGN_OR_RETURN(std::optional<int> state,
                          tx.GetConnectionState(row.tenant_id, row.connection_id));
      if (!state.has_value() || *state == v1::Connection::DISCONNECTED) {
        gone = true;
        SY_RETURN_IF_ERROR(tx.DeleteConnectionHealth(row.tenant_id, row.connection_id));
        return incidents::IncidentLog::ResolveInTx(tx, ConnectionName(row),
                                                   "the connection was disconnected", now);
      }
      // Settings changed (or removed) since this probe started: drop it.
      SY_ASSIGN_OR_RETURN(std::optional<storage::ConnectionHealthRow> stored,
                          tx.GetConnectionHealth(row.tenant_id, row.connection_id));
      if (!stored.has_value() || stored->url != row.url || stored->interval_ms != row.interval_ms ||
          stored->timeout_ms != row.timeout_ms || stored->expected_status != row.expected_status) {
        return absl::OkStatus();
      }
      return WriteResult(tx, row, before, now);
    });
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(f.key);
    if (it == entries_.end() || it->second.generation != f.generation) continue;
    if (!written.ok()) {
      // Try again soon; the state is decided again from the next probe.
      it->second.next_due = now + absl::Seconds(1);
      continue;
    }
    if (gone) {
      entries_.erase(it);
      continue;
    }
    it->second.row = row;
    it->second.next_due = NextProbe(row, now, absl::Uniform(bitgen, -1.0, 1.0));
  }

  struct Due {
    std::string key;
    uint64_t generation;
    std::string url;
    absl::Duration timeout;
  };
  std::vector<Due> due;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    for (auto& [key, entry] : entries_) {
      if (entry.in_flight || entry.next_due > now) continue;
      entry.in_flight = true;
      due.push_back(
          {key, entry.generation, entry.row.url, absl::Milliseconds(entry.row.timeout_ms)});
    }
  }
  for (Due& d : due) {
    prober_.Get(d.url, d.timeout, /*max_body=*/0,
                [this, key = d.key, generation = d.generation](ProbeResult result) {
                  absl::MutexLock lock(&mu_);
                  finished_.push_back({key, generation, std::move(result)});
                });
  }
}

absl::StatusOr<v1::ConnectionHealth> HealthMonitor::Set(
    const v1::SetConnectionHealthCheckRequest& req, const Scope& scope) {
  SY_ASSIGN_OR_RETURN(std::vector<std::string> ids, ParseConnectionChild(req.name(), "health"));
  const std::string connection = absl::StrCat("tenants/", ids[0], "/connections/", ids[1]);
  if (!scope.AllowsConnection(ids[0], ids[1])) return ConnectionMissing(connection);
  const v1::HealthCheck& check = req.check();
  storage::ConnectionHealthRow row;
  row.tenant_id = ids[0];
  row.connection_id = ids[1];
  row.state = State::UNKNOWN;
  const bool remove = check.url().empty();
  if (!remove) {
    const std::string& url = check.url();
    SY_RETURN_IF_ERROR(CheckOutboundUrl(url, allow_private_));
    // Unset or zero: the defaults.
    const absl::Duration given_interval = FromProto(check.interval());
    const absl::Duration given_timeout = FromProto(check.timeout());
    const absl::Duration interval =
        given_interval == absl::ZeroDuration() ? absl::Seconds(30) : given_interval;
    const absl::Duration timeout =
        given_timeout == absl::ZeroDuration() ? absl::Seconds(5) : given_timeout;
    if (interval < min_interval_ || interval > absl::Hours(1)) {
      return InvalidArgument(
          "INVALID_INTERVAL",
          absl::StrCat("interval must be ", absl::FormatDuration(min_interval_), " to 1h"));
    }
    if (timeout < absl::Milliseconds(100) || timeout > absl::Seconds(60) || timeout > interval) {
      return InvalidArgument("INVALID_TIMEOUT",
                             "timeout must be 100ms to 60s and not longer than the interval");
    }
    const int expected = check.expected_status() == 0 ? 200 : check.expected_status();
    if (expected < 100 || expected > 599) {
      return InvalidArgument("INVALID_STATUS", "expected_status must be an HTTP status code");
    }
    row.url = url;
    row.interval_ms = absl::ToInt64Milliseconds(interval);
    row.timeout_ms = absl::ToInt64Milliseconds(timeout);
    row.expected_status = expected;
  }
  const absl::Time now = clock_.Now();
  row.state_change_time = now;
  SY_RETURN_IF_ERROR(store_.Write([&](storage::Transaction& tx) -> absl::Status {
    SY_ASSIGN_OR_RETURN(std::optional<storage::TenantRow> tenant, tx.GetTenant(ids[0]));
    SY_ASSIGN_OR_RETURN(std::optional<int> state, tx.GetConnectionState(ids[0], ids[1]));
    if (!tenant.has_value() || tenant->deleted || !state.has_value()) {
      return ConnectionMissing(connection);
    }
    if (*state == v1::Connection::DISCONNECTED) {
      return FailedPrecondition("CONNECTION_DISCONNECTED", "the connection is disconnected");
    }
    if (remove) {
      SY_RETURN_IF_ERROR(tx.DeleteConnectionHealth(ids[0], ids[1]));
      // Without a check nothing is known: an open incident would never close.
      return incidents::IncidentLog::ResolveInTx(tx, connection, "health check removed", now);
    }
    SY_RETURN_IF_ERROR(tx.PutConnectionHealth(row));
    // The state starts again from UNKNOWN, from which no probe resolves an
    // incident: one left open would stay open.
    return incidents::IncidentLog::ResolveInTx(tx, connection, "health check changed", now);
  }));
  const std::string key = Key(ids[0], ids[1]);
  absl::MutexLock lock(&mu_);
  if (remove) {
    entries_.erase(key);
  } else {
    Entry& entry = entries_[key];
    entry.row = row;
    entry.next_due = now;  // probe at once
    entry.in_flight = false;
    entry.generation = next_generation_++;
  }
  return ToProto(row);
}

absl::StatusOr<v1::ConnectionHealth> HealthMonitor::Get(absl::string_view name,
                                                        const Scope& scope) {
  SY_ASSIGN_OR_RETURN(std::vector<std::string> ids, ParseConnectionChild(name, "health"));
  const std::string connection = absl::StrCat("tenants/", ids[0], "/connections/", ids[1]);
  if (!scope.AllowsConnection(ids[0], ids[1])) return ConnectionMissing(connection);
  std::optional<storage::ConnectionHealthRow> row;
  SY_RETURN_IF_ERROR(store_.Read([&](storage::Transaction& tx) -> absl::Status {
    SY_ASSIGN_OR_RETURN(std::optional<storage::TenantRow> tenant, tx.GetTenant(ids[0]));
    SY_ASSIGN_OR_RETURN(std::optional<int> state, tx.GetConnectionState(ids[0], ids[1]));
    if (!tenant.has_value() || tenant->deleted || !state.has_value()) {
      return ConnectionMissing(connection);
    }
    SY_ASSIGN_OR_RETURN(row, tx.GetConnectionHealth(ids[0], ids[1]));
    return absl::OkStatus();
  }));
  if (!row.has_value()) {
    v1::ConnectionHealth none;
    none.set_name(absl::StrCat(connection, "/health"));
    none.set_state(State::UNKNOWN);
    return none;
  }
  return ToProto(*row);
}

std::map<int, int64_t> HealthMonitor::CountByState() const {
  std::map<int, int64_t> counts;
  absl::MutexLock lock(&mu_);
  for (const auto& [key, entry] : entries_) ++counts[entry.row.state];
  return counts;
}

std::vector<storage::ConnectionHealthRow> HealthMonitor::Snapshot() const {
  std::vector<storage::ConnectionHealthRow> rows;
  absl::MutexLock lock(&mu_);
  for (const auto& [key, entry] : entries_) rows.push_back(entry.row);
  return rows;
}

}  // namespace switchyard::health
