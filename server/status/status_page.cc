#include "server/status/status_page.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "server/common/proto_time.h"
#include "server/common/status.h"
#include "server/incidents/incidents.h"

namespace switchyard::status {
namespace {

using StatusReport = v1::StatusReport;

std::string Escape(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string FormatTime(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return "";
  return absl::FormatTime("%Y-%m-%d %H:%M UTC", FromProto(t), absl::UTCTimeZone());
}

std::string HumanDuration(absl::Duration d) {
  const int64_t minutes = absl::ToInt64Minutes(d);
  if (minutes < 1) return absl::StrCat(absl::ToInt64Seconds(d), " s");
  if (minutes < 120) return absl::StrCat(minutes, " min");
  return absl::StrCat(minutes / 60, " h ", minutes % 60, " min");
}

const char* OverallText(StatusReport::Overall overall) {
  switch (overall) {
    case StatusReport::OPERATIONAL:
      return "All systems operational";
    case StatusReport::DEGRADED:
      return "Partially degraded";
    case StatusReport::OUTAGE:
      return "Service disruption";
    default:
      return "Unknown";
  }
}

}  // namespace

absl::StatusOr<StatusReport> StatusPage::Report() {
  const absl::Time now = clock_.Now();
  {
    absl::MutexLock lock(&mu_);
    if (now - cached_at_ < options_.cache_for) return cached_;
  }
  SY_ASSIGN_OR_RETURN(v1::StatusReport report, Build());
  absl::MutexLock lock(&mu_);
  cached_ = report;
  cached_at_ = now;
  return report;
}

absl::StatusOr<StatusReport> StatusPage::Build() {
  const absl::Time now = clock_.Now();
  StatusReport report;
  ToProto(now, report.mutable_generate_time());
  for (auto& c : components_()) *report.add_components() = std::move(c);

  std::vector<storage::Transaction::SystemHealthCount> counts;
  std::vector<storage::IncidentRow> open, resolved;
  std::map<std::string, std::string> system_of;  // connection name -> system id
  SY_RETURN_IF_ERROR(store_.Read([&](storage::Transaction& tx) -> absl::Status {
    SY_ASSIGN_OR_RETURN(counts, tx.CountLiveConnectionsBySystem());
    SY_ASSIGN_OR_RETURN(open, tx.ListIncidents(v1::Incident::OPEN, 0, 100));
    SY_ASSIGN_OR_RETURN(resolved, tx.ListIncidents(v1::Incident::RESOLVED, 0, 50));
    for (const auto* list : {&open, &resolved}) {
      for (const storage::IncidentRow& row : *list) {
        std::vector<std::string> parts = absl::StrSplit(row.component, '/');
        if (parts.size() != 4 || parts[0] != "tenants" || system_of.count(row.component)) continue;
        SY_ASSIGN_OR_RETURN(std::optional<storage::ConnectionRow> c,
                            tx.GetConnection(parts[1], parts[3]));
        system_of[row.component] = c.has_value() ? c->system_id : "";
      }
    }
    return absl::OkStatus();
  }));

  std::map<std::string, StatusReport::SystemHealth> systems;
  for (const auto& c : counts) {
    StatusReport::SystemHealth& s = systems[c.system_id];
    s.set_system("systems/" + c.system_id);
    switch (c.health) {
      case v1::ConnectionHealth::ONLINE:
        s.set_online(s.online() + c.count);
        break;
      case v1::ConnectionHealth::DEGRADED:
        s.set_degraded(s.degraded() + c.count);
        break;
      case v1::ConnectionHealth::OFFLINE:
        s.set_offline(s.offline() + c.count);
        break;
      case v1::ConnectionHealth::AUTH_REQUIRED:
        s.set_auth_required(s.auth_required() + c.count);
        break;
      case v1::ConnectionHealth::UNKNOWN:
        s.set_unknown(s.unknown() + c.count);
        break;
      default:
        s.set_unchecked(s.unchecked() + c.count);
    }
  }
  for (auto& [id, s] : systems) {
    auto system = catalog_.Get("systems/" + id);
    s.set_display_name(system.ok() ? absl::StrCat(system->vendor(), " ", system->product()) : id);
    *report.add_systems() = std::move(s);
  }

  auto shown = [&](const storage::IncidentRow& row) {
    v1::Incident incident = incidents::IncidentLog::ToProto(row);
    incident.clear_notes();
    auto it = system_of.find(row.component);
    if (!options_.show_tenants && it != system_of.end()) {
      auto system = catalog_.Get("systems/" + it->second);
      const std::string name =
          system.ok() ? absl::StrCat(system->vendor(), " ", system->product()) : "connected system";
      incident.set_component("systems/" + it->second);
      incident.set_title(absl::StrCat("A ", name, " connection is unavailable"));
    }
    return incident;
  };
  bool critical = false;
  for (const auto& row : open) {
    critical = critical || row.severity == v1::Incident::CRITICAL;
    *report.add_open_incidents() = shown(row);
  }
  for (const auto& row : resolved) *report.add_resolved_incidents() = shown(row);

  bool component_down = false;
  for (const auto& c : report.components()) component_down = component_down || !c.healthy();
  report.set_overall(component_down || critical ? StatusReport::OUTAGE
                     : !open.empty()            ? StatusReport::DEGRADED
                                                : StatusReport::OPERATIONAL);
  return report;
}

std::string StatusPage::Html(const StatusReport& report) const {
  const char* color = report.overall() == StatusReport::OPERATIONAL ? "#1a7f37"
                      : report.overall() == StatusReport::DEGRADED  ? "#b35900"
                                                                    : "#b42318";
  std::string html = absl::StrCat(R"(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="30">
<title>)",
                                  Escape(options_.title), R"(</title>
<style>
  :root { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2328; }
  body { margin: 0 auto; padding: 1rem; max-width: 72rem; font-size: clamp(0.95rem, 0.8rem + 0.6vw, 1.35rem); }
  h1 { font-size: 1.6em; margin: 0.2em 0 0.6em; }
  h2 { font-size: 1.15em; margin: 1.4em 0 0.5em; }
  .banner { color: #fff; border-radius: 0.5rem; padding: 0.9em 1.1em; font-weight: 600; font-size: 1.2em; }
  .grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(15rem, 1fr)); gap: 0.6rem; }
  .card { border: 1px solid #d0d7de; border-radius: 0.5rem; padding: 0.7em 0.9em; }
  .ok { color: #1a7f37; } .bad { color: #b42318; } .warn { color: #b35900; }
  table { width: 100%; border-collapse: collapse; }
  th, td { text-align: left; padding: 0.35em 0.5em; border-bottom: 1px solid #d0d7de; }
  td.n { text-align: right; font-variant-numeric: tabular-nums; }
  .muted { color: #59636e; font-size: 0.85em; }
  .scroll { overflow-x: auto; }
</style>
</head>
<body>
<h1>)",
                                  Escape(options_.title), R"(</h1>
<div class="banner" id="overall" style="background:)",
                                  color, R"(">)", OverallText(report.overall()), R"(</div>
<p class="muted">Updated )",
                                  FormatTime(report.generate_time()),
                                  R"(; this page refreshes every 30 seconds.</p>
<h2>Gateway</h2>
<div class="grid" id="components">
)");
  for (const auto& c : report.components()) {
    absl::StrAppend(&html, R"(<div class="card"><strong>)", Escape(c.name()),
                    "</strong><br><span class=\"",
                    c.healthy() ? "ok\">Operational" : "bad\">Failing", "</span>",
                    c.detail().empty()
                        ? ""
                        : absl::StrCat("<br><span class=\"muted\">", Escape(c.detail()), "</span>"),
                    "</div>\n");
  }
  absl::StrAppend(&html, R"(</div>
<h2>Connected systems</h2>
<div class="scroll"><table id="systems">
<tr><th>System</th><th>Online</th><th>Degraded</th><th>Offline</th><th>Needs sign-in</th><th>Checking</th><th>Not monitored</th></tr>
)");
  if (report.systems().empty()) {
    absl::StrAppend(&html,
                    "<tr><td colspan=\"7\" class=\"muted\">No connected systems.</td></tr>\n");
  }
  for (const auto& s : report.systems()) {
    absl::StrAppend(&html, "<tr><td>", Escape(s.display_name()), "</td><td class=\"n ok\">",
                    s.online(), "</td><td class=\"n warn\">", s.degraded(),
                    "</td><td class=\"n bad\">", s.offline(), "</td><td class=\"n bad\">",
                    s.auth_required(), "</td><td class=\"n\">", s.unknown(),
                    "</td><td class=\"n\">", s.unchecked(), "</td></tr>\n");
  }
  absl::StrAppend(&html, "</table></div>\n<h2>Open incidents</h2>\n<div id=\"open-incidents\">\n");
  if (report.open_incidents().empty()) {
    absl::StrAppend(&html, "<p class=\"ok\">No open incidents.</p>\n");
  }
  const absl::Time now = FromProto(report.generate_time());
  for (const auto& i : report.open_incidents()) {
    absl::StrAppend(&html, R"(<div class="card incident"><strong>)", Escape(i.title()),
                    "</strong><br><span class=\"muted\">",
                    Escape(v1::Incident::Severity_Name(i.severity())), " &middot; ",
                    Escape(i.component()), " &middot; since ", FormatTime(i.start_time()), " (",
                    HumanDuration(now - FromProto(i.start_time())), ")</span></div>\n");
  }
  absl::StrAppend(&html, R"(</div>
<h2>Incident history</h2>
<div class="scroll"><table id="history">
<tr><th>Incident</th><th>Started</th><th>Ended</th><th>Duration</th></tr>
)");
  if (report.resolved_incidents().empty()) {
    absl::StrAppend(&html, "<tr><td colspan=\"4\" class=\"muted\">No past incidents.</td></tr>\n");
  }
  for (const auto& i : report.resolved_incidents()) {
    absl::StrAppend(&html, "<tr><td>", Escape(i.title()), "</td><td>", FormatTime(i.start_time()),
                    "</td><td>", FormatTime(i.end_time()), "</td><td>",
                    HumanDuration(FromProto(i.end_time()) - FromProto(i.start_time())),
                    "</td></tr>\n");
  }
  absl::StrAppend(&html, "</table></div>\n</body>\n</html>\n");
  return html;
}

}  // namespace switchyard::status
