// switchyardctl: command-line client of the Switchyard gateway.
//
//   switchyardctl [--target=HOST:PORT] [--json] [--timeout=10s] RESOURCE VERB [ARGS] [--flags]
//
// Resources and verbs (ids are short ids, for example "acme", not full names):
//   tenants       create ID --pool=POOL [--display_name=..] [--credit_limit=N]
//                 get ID | list | update ID [--display_name=..] [--credit_limit=N]
//                 delete ID [--force]
//   systems       list | get ID
//   pools         create ID --capacity=N [--display_name=..] | get ID | list
//                 set-capacity ID N
//   reservations  reserve TENANT --amount=N [--ttl=10m] [--id=ID]
//                 get|commit|release TENANT ID | list TENANT [--state=PENDING]
//   connections   create TENANT ID --system=SYSTEM [--deployment=cloud|on-premises]
//                   [--display_name=..] [--metadata=k=v,k=v] [--reservation=ID]
//                 get TENANT ID | list TENANT [--system=..] [--state=..]
//                 update TENANT ID [--display_name=..] [--metadata=..]
//                 activate|deactivate|delete TENANT ID
//   ledger        list POOL [--tenant=TENANT]
//   keys          create [TENANT] [--display_name=..] [--can_reveal] [--ttl=..]
//                 list [TENANT [CONNECTION]] | rotate NAME [--grace=1h] | revoke NAME
//                 rewrap (re-wrap data keys with the primary master key)
//                 rotate-tenant-key TENANT [--reencrypt]
//   credentials   set TENANT CONNECTION [--base_url=..] [--username=..] [--password=..]
//                   [--oauth_client_id=..] [--oauth_client_secret=..]
//                   [--oauth_refresh_token=..] [--secret_api_key=..]
//                 get TENANT CONNECTION [--reveal] | delete TENANT CONNECTION
//   webhooks      rotate-secret TENANT CONNECTION [--grace=24h] | secret TENANT CONNECTION
//                 revoke-secret TENANT CONNECTION
//   events        list TENANT CONNECTION [--after=SEQUENCE]
//   subscriptions create SUB [--ordered] [--ack_deadline=30s] [--max_attempts=5]
//                   [--connections=TENANT/CONN,..] [--systems=ID,..] [--types=TYPE,..]
//                 get SUB | list [TENANT] | delete SUB
//                 seek SUB --time=RFC3339 | seek SUB --connection=TENANT/CONN [--after=N]
//                 tail SUB [--count=N] [--no_ack | --nack] [--max_events=N]
//                 dead-letters SUB | replay SUB [--connection=TENANT/CONN]
//                 (SUB is TENANT/ID for a tenant's subscription, ID for an operator's)
//   health        get TENANT CONNECTION
//                 set TENANT CONNECTION --url=URL [--interval=30s] [--probe_timeout=5s]
//                   [--expected_status=200]    (--url= empty removes the check)
//   feeds         get TENANT CONNECTION
//                 set TENANT CONNECTION --url=URL [--interval=1m] [--when_silent=10m]
//                   (--url= empty stops polling; --when_silent polls only while webhooks
//                   have been silent that long)
//   incidents     list [--state=OPEN|RESOLVED] | get N | annotate N TEXT | resolve N [TEXT]
//                 create --title=.. [--component=..] [--severity=MINOR|MAJOR|CRITICAL]
//   health        check
//
// The credential comes from --api_key or the SWITCHYARD_API_KEY environment
// variable (preferred: flags show in process lists). TLS: --tls with
// --tls_ca_file, and --tls_cert_file/--tls_key_file for mutual TLS.
//
// Output is a table by default and JSON with --json. Exit status: 0 on
// success, 1 when the gateway answered with an error, 2 for usage errors.

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "client/gateway_client.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/util/json_util.h"

ABSL_FLAG(std::string, target, "localhost:50051", "gateway address HOST:PORT");
ABSL_FLAG(bool, json, false, "print JSON instead of tables");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(10), "deadline of each call");
ABSL_FLAG(std::string, pool, "", "credit pool id (tenants create)");
ABSL_FLAG(std::string, display_name, "", "display name");
ABSL_FLAG(int64_t, credit_limit, -1, "tenant credit limit; 0 removes the limit");
ABSL_FLAG(bool, force, false, "tenants delete: disconnect everything first");
ABSL_FLAG(int64_t, capacity, 0, "pool capacity in credits");
ABSL_FLAG(int64_t, amount, 0, "credits to reserve");
ABSL_FLAG(absl::Duration, ttl, absl::ZeroDuration(), "reservation TTL (0: server default)");
ABSL_FLAG(std::string, id, "", "reservation id (generated when empty)");
ABSL_FLAG(std::string, system, "", "system id, for example sap-s4hana");
ABSL_FLAG(std::string, deployment, "cloud", "cloud or on-premises");
ABSL_FLAG(std::vector<std::string>, metadata, {}, "connection metadata k=v,k=v");
ABSL_FLAG(std::string, reservation, "", "reservation id to consume (connections create)");
ABSL_FLAG(std::string, state, "", "connection state filter, for example ACTIVE");
ABSL_FLAG(std::string, tenant, "", "tenant id filter (ledger list)");
ABSL_FLAG(std::string, request_id, "", "request id for idempotent retries");
ABSL_FLAG(std::string, api_key, "",
          "bearer credential (operator key, tenant key or connection token); default: the "
          "SWITCHYARD_API_KEY environment variable");
ABSL_FLAG(bool, tls, false, "connect with TLS");
ABSL_FLAG(std::string, tls_ca_file, "", "PEM roots to verify the server (default: system roots)");
ABSL_FLAG(std::string, tls_cert_file, "", "PEM client certificate for mutual TLS");
ABSL_FLAG(std::string, tls_key_file, "", "PEM client key for mutual TLS");
ABSL_FLAG(bool, can_reveal, false, "keys create: the key may reveal credential secrets");
ABSL_FLAG(absl::Duration, grace, absl::ZeroDuration(),
          "keys rotate: how long the old token keeps working");
ABSL_FLAG(bool, reencrypt, false, "rotate-tenant-key: re-encrypt every secret now");
ABSL_FLAG(bool, reveal, false, "credentials get: include secret values");
ABSL_FLAG(int64_t, after, 0, "events list: only events after this sequence");
ABSL_FLAG(std::string, base_url, "", "credentials set: base URL of the system");
ABSL_FLAG(std::string, username, "", "credentials set: user name");
ABSL_FLAG(std::string, password, "", "credentials set: password (prefer stdin-fed env vars)");
ABSL_FLAG(std::string, oauth_client_id, "", "credentials set: OAuth client id");
ABSL_FLAG(std::string, oauth_client_secret, "", "credentials set: OAuth client secret");
ABSL_FLAG(std::string, oauth_refresh_token, "", "credentials set: OAuth refresh token");
ABSL_FLAG(std::string, secret_api_key, "", "credentials set: the system's API key");
ABSL_FLAG(bool, ordered, false, "subscriptions create: one event per connection at a time");
ABSL_FLAG(absl::Duration, ack_deadline, absl::ZeroDuration(),
          "subscriptions create: time to acknowledge (0: server default, 30s)");
ABSL_FLAG(int32_t, max_attempts, 0, "subscriptions create: deliveries before dead-lettering");
ABSL_FLAG(std::vector<std::string>, connections, {},
          "subscriptions create: only these connections, TENANT/CONNECTION,..");
ABSL_FLAG(std::vector<std::string>, systems, {}, "subscriptions create: only these system ids");
ABSL_FLAG(std::vector<std::string>, types, {},
          "subscriptions create: only these event types (a trailing * matches a prefix)");
ABSL_FLAG(std::string, time, "", "subscriptions seek: RFC 3339 time to restart from");
ABSL_FLAG(std::string, connection, "",
          "subscriptions seek/replay: the connection, TENANT/CONNECTION");
ABSL_FLAG(int64_t, count, 0, "subscriptions tail: stop after this many events (0: never)");
ABSL_FLAG(bool, no_ack, false,
          "subscriptions tail: do not acknowledge (events come back after their deadline)");
ABSL_FLAG(bool, nack, false,
          "subscriptions tail: negatively acknowledge (events come back at once, using up an "
          "attempt; after the last one they become dead letters)");
ABSL_FLAG(int32_t, max_events, 0, "subscriptions tail: events outstanding at most");
ABSL_FLAG(std::string, url, "", "health set: the URL probed");
ABSL_FLAG(absl::Duration, interval, absl::ZeroDuration(), "health set: between probes");
ABSL_FLAG(absl::Duration, probe_timeout, absl::ZeroDuration(), "health set: per probe");
ABSL_FLAG(int32_t, expected_status, 0, "health set: healthy HTTP status (default 200)");
ABSL_FLAG(absl::Duration, when_silent, absl::ZeroDuration(),
          "feeds set: poll only while no webhook arrived for this long (0: always)");
ABSL_FLAG(std::string, title, "", "incidents create: title");
ABSL_FLAG(std::string, component, "", "incidents create: what is affected");
ABSL_FLAG(std::string, severity, "MAJOR", "incidents create: MINOR, MAJOR or CRITICAL");

namespace switchyard::ctl {
namespace {
namespace pb = google::protobuf;

struct UsageError {
  std::string message;
};

[[noreturn]] void Usage(const std::string& message) { throw UsageError{message}; }

// The value of one field, readable in a table cell.
std::string FieldText(const pb::Message& m, const pb::FieldDescriptor* f) {
  const pb::Reflection* r = m.GetReflection();
  if (f->is_map()) {
    std::vector<std::string> parts;
    for (int i = 0; i < r->FieldSize(m, f); ++i) {
      const pb::Message& entry = r->GetRepeatedMessage(m, f, i);
      const pb::Descriptor* d = entry.GetDescriptor();
      parts.push_back(
          absl::StrCat(FieldText(entry, d->field(0)), "=", FieldText(entry, d->field(1))));
    }
    return absl::StrJoin(parts, ",");
  }
  if (f->is_repeated()) {
    std::vector<std::string> parts;
    for (int i = 0; i < r->FieldSize(m, f); ++i) {
      if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_ENUM) {
        parts.push_back(r->GetRepeatedEnum(m, f, i)->name());
      } else if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_STRING) {
        parts.push_back(r->GetRepeatedString(m, f, i));
      }
    }
    return absl::StrJoin(parts, ",");
  }
  switch (f->cpp_type()) {
    case pb::FieldDescriptor::CPPTYPE_STRING:
      return r->GetString(m, f);
    case pb::FieldDescriptor::CPPTYPE_INT64:
      return absl::StrCat(r->GetInt64(m, f));
    case pb::FieldDescriptor::CPPTYPE_INT32:
      return absl::StrCat(r->GetInt32(m, f));
    case pb::FieldDescriptor::CPPTYPE_BOOL:
      return r->GetBool(m, f) ? "true" : "false";
    case pb::FieldDescriptor::CPPTYPE_ENUM:
      return r->GetEnum(m, f)->name();
    case pb::FieldDescriptor::CPPTYPE_MESSAGE: {
      if (!r->HasField(m, f)) return "";
      const pb::Message& sub = r->GetMessage(m, f);
      if (sub.GetDescriptor()->full_name() == "google.protobuf.Timestamp") {
        const pb::Descriptor* d = sub.GetDescriptor();
        const int64_t seconds = sub.GetReflection()->GetInt64(sub, d->FindFieldByName("seconds"));
        return absl::FormatTime("%Y-%m-%d %H:%M:%S", absl::FromUnixSeconds(seconds),
                                absl::UTCTimeZone());
      }
      return sub.ShortDebugString();
    }
    default:
      return "";
  }
}

// Prints `rows` (messages of one type) as a table of `columns`.
void PrintTable(const std::vector<const pb::Message*>& rows,
                const std::vector<std::string>& columns) {
  if (rows.empty()) {
    std::cout << "(none)\n";
    return;
  }
  std::vector<std::vector<std::string>> cells;
  std::vector<size_t> widths;
  std::vector<std::string> header;
  for (const std::string& c : columns) {
    std::string h = c;
    for (char& ch : h) ch = static_cast<char>(ch == '_' ? ' ' : std::toupper(ch));
    header.push_back(h);
    widths.push_back(h.size());
  }
  for (const pb::Message* m : rows) {
    std::vector<std::string> line;
    for (size_t i = 0; i < columns.size(); ++i) {
      const pb::FieldDescriptor* f = m->GetDescriptor()->FindFieldByName(columns[i]);
      line.push_back(f ? FieldText(*m, f) : "");
      widths[i] = std::max(widths[i], line.back().size());
    }
    cells.push_back(std::move(line));
  }
  auto print = [&](const std::vector<std::string>& line) {
    std::string out;
    for (size_t i = 0; i < line.size(); ++i) {
      out += line[i];
      if (i + 1 < line.size()) out += std::string(widths[i] - line[i].size() + 2, ' ');
    }
    std::cout << out << "\n";
  };
  print(header);
  for (const auto& line : cells) print(line);
}

// Prints one resource: every set field on its own line, or JSON.
void PrintOne(const pb::Message& m) {
  if (absl::GetFlag(FLAGS_json)) {
    std::string json;
    pb::util::JsonPrintOptions options;
    options.add_whitespace = true;
    options.preserve_proto_field_names = true;
    (void)pb::util::MessageToJsonString(m, &json, options);
    std::cout << json << "\n";
    return;
  }
  const pb::Descriptor* d = m.GetDescriptor();
  size_t width = 0;
  for (int i = 0; i < d->field_count(); ++i) width = std::max(width, d->field(i)->name().size());
  for (int i = 0; i < d->field_count(); ++i) {
    std::string text = FieldText(m, d->field(i));
    if (text.empty()) continue;
    std::cout << d->field(i)->name() << std::string(width - d->field(i)->name().size() + 2, ' ')
              << text << "\n";
  }
}

// Prints a list of resources as a table, or JSON lines.
template <typename T>
void PrintList(const std::vector<T>& items, const std::vector<std::string>& columns) {
  if (absl::GetFlag(FLAGS_json)) {
    pb::util::JsonPrintOptions options;
    options.preserve_proto_field_names = true;
    for (const T& item : items) {
      std::string json;
      (void)pb::util::MessageToJsonString(item, &json, options);
      std::cout << json << "\n";
    }
    return;
  }
  std::vector<const pb::Message*> rows;
  for (const T& item : items) rows.push_back(&item);
  PrintTable(rows, columns);
}

// Fetches every page of a List call.
template <typename Request, typename Response, typename Item, typename Fetch, typename Items>
absl::StatusOr<std::vector<Item>> ListAll(Request request, Fetch fetch, Items items) {
  std::vector<Item> out;
  request.set_page_size(1000);
  while (true) {
    absl::StatusOr<Response> page = fetch(request);
    if (!page.ok()) return page.status();
    for (const Item& item : items(*page)) out.push_back(item);
    if (page->next_page_token().empty()) return out;
    request.set_page_token(page->next_page_token());
  }
}

const std::string& Arg(const std::vector<std::string>& args, size_t i, const char* what) {
  if (i >= args.size()) Usage(absl::StrCat("missing ", what));
  return args[i];
}

// Prints an error from the gateway and returns the exit status.
int Fail(const absl::Status& status) {
  std::string reason = client::ErrorReason(status);
  std::cerr << "error: " << absl::StatusCodeToString(status.code()) << ": " << status.message();
  if (!reason.empty()) std::cerr << " [" << reason << "]";
  std::cerr << "\n";
  return 1;
}

template <typename T>
int Show(const absl::StatusOr<T>& result) {
  if (!result.ok()) return Fail(result.status());
  PrintOne(*result);
  return 0;
}

template <typename T>
int ShowList(const absl::StatusOr<std::vector<T>>& result,
             const std::vector<std::string>& columns) {
  if (!result.ok()) return Fail(result.status());
  PrintList(*result, columns);
  return 0;
}

std::string TenantName(const std::string& id) { return "tenants/" + id; }

// TENANT/ID -> tenants/TENANT/subscriptions/ID; ID -> subscriptions/ID.
std::string SubscriptionName(const std::string& short_name) {
  const size_t slash = short_name.find('/');
  if (slash == std::string::npos) return "subscriptions/" + short_name;
  return absl::StrCat(TenantName(short_name.substr(0, slash)), "/subscriptions/",
                      short_name.substr(slash + 1));
}

// TENANT/CONNECTION -> tenants/TENANT/connections/CONNECTION.
std::string ConnectionName(const std::string& short_name) {
  const size_t slash = short_name.find('/');
  if (slash == std::string::npos) Usage("a connection is TENANT/CONNECTION");
  return absl::StrCat(TenantName(short_name.substr(0, slash)), "/connections/",
                      short_name.substr(slash + 1));
}

// One human-readable line per delivered event.
// Text from event senders, safe for a terminal: control characters (C0,
// DEL and the C1 range in UTF-8), which could drive the terminal, become '.';
// line breaks and tabs become spaces.
std::string Printable(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == '\n' || c == '\r' || c == '\t') {
      out.push_back(' ');
    } else if (c < 0x20 || c == 0x7f) {
      out.push_back('.');
    } else if (c == 0xc2 && i + 1 < text.size() &&
               static_cast<unsigned char>(text[i + 1]) >= 0x80 &&
               static_cast<unsigned char>(text[i + 1]) <= 0x9f) {
      out.push_back('.');
      ++i;
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

void PrintDelivery(const v1::ReceivedEvent& r) {
  if (absl::GetFlag(FLAGS_json)) {
    std::string json;
    pb::util::JsonPrintOptions options;
    options.preserve_proto_field_names = true;
    (void)pb::util::MessageToJsonString(r, &json, options);
    std::cout << json << std::endl;
    return;
  }
  const v1::Event& e = r.event();
  const std::string body = Printable(e.body().substr(0, 120));
  const std::string& name = e.name();
  std::cout << absl::FormatTime("%Y-%m-%d %H:%M:%S",
                                absl::FromUnixSeconds(e.receive_time().seconds()),
                                absl::UTCTimeZone())
            << "  " << name.substr(0, name.rfind("/events/")) << "  #" << e.sequence() << "  "
            << (e.type().empty() ? "-" : Printable(e.type())) << "  " << e.event_id()
            << "  attempt " << r.delivery_attempt() << "  " << body
            << (e.body().size() > 120 ? "..." : "") << std::endl;
}

// Ctrl-C (or SIGTERM) during a tail: the handler only writes to a pipe; a
// thread of Tail reads it and half-closes the stream, so that the server
// ends it cleanly and the events not acknowledged go elsewhere without using
// up an attempt (a killed client would use one for each).
int interrupt_pipe[2] = {-1, -1};
void OnInterrupt(int signal) {
  const int saved = errno;
  const char byte = 1;
  (void)!::write(interrupt_pipe[1], &byte, 1);
  // A second one ends the process, should the server never answer.
  struct sigaction fallback = {};
  fallback.sa_handler = SIG_DFL;
  ::sigaction(signal, &fallback, nullptr);
  errno = saved;
}

// Tails a subscription until --count events, an interrupt, or an error that
// is not UNAVAILABLE or CANCELLED: a stream the server ended for a restart or
// a renewal, or a lost connection, is opened again after a backoff.
int Tail(client::GatewayClient& c, const std::string& name) {
  const int64_t count = absl::GetFlag(FLAGS_count);
  const bool ack = !absl::GetFlag(FLAGS_no_ack) && !absl::GetFlag(FLAGS_nack);
  const bool nack = absl::GetFlag(FLAGS_nack);
  if (::pipe2(interrupt_pipe, O_CLOEXEC) != 0) return Fail(absl::InternalError("pipe failed"));
  struct sigaction action = {};
  action.sa_handler = OnInterrupt;
  action.sa_flags = SA_RESTART;
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);
  absl::Mutex mu;
  client::EventStream* current = nullptr;  // guarded by mu
  absl::Notification interrupted;
  std::thread watcher([&] {
    char byte = 0;
    while (::read(interrupt_pipe[0], &byte, 1) < 0 && errno == EINTR) {
    }
    if (byte != 1) return;  // Tail is done
    interrupted.Notify();
    absl::MutexLock lock(&mu);
    if (current != nullptr) current->Close();
  });
  auto finish = [&](int code) {
    const char done = 0;
    (void)!::write(interrupt_pipe[1], &done, 1);
    watcher.join();
    return code;
  };
  int64_t seen = 0;
  absl::Duration backoff = absl::Milliseconds(500);
  while (true) {
    auto stream = c.StreamEvents(name, absl::GetFlag(FLAGS_max_events));
    {
      absl::MutexLock lock(&mu);
      current = stream.get();
      if (interrupted.HasBeenNotified()) stream->Close();
    }
    v1::StreamEventsResponse response;
    while (stream->Next(&response)) {
      backoff = absl::Milliseconds(500);
      std::vector<std::string> ack_ids;
      for (const v1::ReceivedEvent& r : response.received_events()) {
        PrintDelivery(r);
        ack_ids.push_back(r.ack_id());
        if (count > 0 && ++seen >= count) break;
      }
      if (ack) stream->Ack(ack_ids);
      if (nack) stream->Nack(ack_ids);
      if (count > 0 && seen >= count) {
        stream->Close();  // the server ends the stream; what was not acked goes elsewhere
        while (stream->Next(&response)) {
        }
        break;
      }
    }
    {
      absl::MutexLock lock(&mu);
      current = nullptr;
    }
    const absl::Status status = stream->Finish();
    if (interrupted.HasBeenNotified()) return finish(0);
    // UNAVAILABLE: the server restarts or renews the stream, or the
    // connection broke; CANCELLED (this side never cancels): a server
    // shutting down cancelled the call as it arrived.
    const bool again = status.code() == absl::StatusCode::kUnavailable ||
                       status.code() == absl::StatusCode::kCancelled;
    if ((count > 0 && seen >= count) || !again) return finish(status.ok() ? 0 : Fail(status));
    std::cerr << "switchyardctl: the stream ended (" << status.message() << "); reconnecting in "
              << absl::FormatDuration(backoff) << std::endl;
    if (interrupted.WaitForNotificationWithTimeout(backoff)) return finish(0);
    backoff = std::min(backoff * 2, absl::Seconds(8));
  }
}

int Subscriptions(client::GatewayClient& c, const std::vector<std::string>& args,
                  const std::string& verb) {
  const std::vector<std::string> columns = {"name", "ordered", "max_delivery_attempts",
                                            "ack_deadline", "create_time"};
  if (verb == "list") {
    v1::ListSubscriptionsRequest r;
    if (args.size() > 2) r.set_parent(TenantName(args[2]));
    return ShowList(
        ListAll<v1::ListSubscriptionsRequest, v1::ListSubscriptionsResponse, v1::Subscription>(
            r, [&](const auto& req) { return c.ListSubscriptions(req); },
            [](const auto& p) { return p.subscriptions(); }),
        columns);
  }
  const std::string name = SubscriptionName(Arg(args, 2, "SUB"));
  if (verb == "create") {
    v1::CreateSubscriptionRequest r;
    const size_t slash = name.find("/subscriptions/");
    if (absl::StartsWith(name, "tenants/")) r.set_parent(name.substr(0, slash));
    r.set_subscription_id(name.substr(name.rfind('/') + 1));
    r.set_request_id(absl::GetFlag(FLAGS_request_id));
    v1::Subscription& s = *r.mutable_subscription();
    s.set_display_name(absl::GetFlag(FLAGS_display_name));
    s.set_ordered(absl::GetFlag(FLAGS_ordered));
    s.set_max_delivery_attempts(absl::GetFlag(FLAGS_max_attempts));
    if (absl::GetFlag(FLAGS_ack_deadline) > absl::ZeroDuration()) {
      s.mutable_ack_deadline()->set_seconds(
          absl::ToInt64Seconds(absl::GetFlag(FLAGS_ack_deadline)));
    }
    for (const std::string& conn : absl::GetFlag(FLAGS_connections)) {
      s.mutable_filter()->add_connections(ConnectionName(conn));
    }
    for (const std::string& system : absl::GetFlag(FLAGS_systems)) {
      s.mutable_filter()->add_systems(system);
    }
    for (const std::string& type : absl::GetFlag(FLAGS_types)) {
      s.mutable_filter()->add_event_types(type);
    }
    return Show(c.CreateSubscription(r));
  }
  if (verb == "get") {
    v1::GetSubscriptionRequest r;
    r.set_name(name);
    return Show(c.GetSubscription(r));
  }
  if (verb == "delete") {
    v1::DeleteSubscriptionRequest r;
    r.set_name(name);
    absl::Status s = c.DeleteSubscription(r);
    if (!s.ok()) return Fail(s);
    std::cout << "deleted " << name << "\n";
    return 0;
  }
  if (verb == "seek") {
    v1::SeekSubscriptionRequest r;
    r.set_subscription(name);
    if (!absl::GetFlag(FLAGS_time).empty()) {
      absl::Time t;
      std::string error;
      if (!absl::ParseTime(absl::RFC3339_full, absl::GetFlag(FLAGS_time), &t, &error)) {
        Usage("--time: an RFC 3339 time such as 2026-11-28T06:00:00Z");
      }
      r.mutable_time()->set_seconds(absl::ToUnixSeconds(t));
    } else if (!absl::GetFlag(FLAGS_connection).empty()) {
      r.mutable_position()->set_connection(ConnectionName(absl::GetFlag(FLAGS_connection)));
      r.mutable_position()->set_after_sequence(absl::GetFlag(FLAGS_after));
    } else {
      Usage("seek needs --time or --connection");
    }
    auto result = c.SeekSubscription(r);
    if (!result.ok()) return Fail(result.status());
    std::cout << "moved " << name << "\n";
    return 0;
  }
  if (verb == "dead-letters") {
    v1::ListDeadLettersRequest r;
    r.set_subscription(name);
    auto letters = ListAll<v1::ListDeadLettersRequest, v1::ListDeadLettersResponse, v1::DeadLetter>(
        r, [&](const auto& req) { return c.ListDeadLetters(req); },
        [](const auto& p) { return p.dead_letters(); });
    if (!letters.ok()) return Fail(letters.status());
    if (absl::GetFlag(FLAGS_json)) {
      PrintList(*letters, {});
      return 0;
    }
    if (letters->empty()) std::cout << "(none)\n";
    for (const v1::DeadLetter& d : *letters) {
      std::cout << d.event().name() << "  " << d.event().event_id() << "  "
                << (d.event().type().empty() ? "-" : Printable(d.event().type())) << "  attempts "
                << d.delivery_attempts() << "  dead since "
                << absl::FormatTime("%Y-%m-%d %H:%M:%S",
                                    absl::FromUnixSeconds(d.dead_time().seconds()),
                                    absl::UTCTimeZone())
                << (d.replaying() ? "  (replaying)" : "") << "\n";
    }
    return 0;
  }
  if (verb == "replay") {
    v1::ReplayDeadLettersRequest r;
    r.set_subscription(name);
    if (!absl::GetFlag(FLAGS_connection).empty()) {
      r.set_connection(ConnectionName(absl::GetFlag(FLAGS_connection)));
    }
    auto result = c.ReplayDeadLetters(r);
    if (!result.ok()) return Fail(result.status());
    std::cout << "replaying " << result->replayed() << " dead letters of " << name << "\n";
    return 0;
  }
  if (verb == "tail") return Tail(c, name);
  Usage(absl::StrCat("unknown command: subscriptions ", verb));
}

int Run(client::GatewayClient& c, const std::vector<std::string>& args) {
  const std::string& resource = Arg(args, 0, "RESOURCE");
  const std::string& verb = Arg(args, 1, "VERB");
  const std::string display_name = absl::GetFlag(FLAGS_display_name);

  if (resource == "health" && verb == "check") {
    auto r = c.CheckHealth("");
    if (!r.ok()) return Fail(r.status());
    std::cout << grpc::health::v1::HealthCheckResponse::ServingStatus_Name(r->status()) << "\n";
    return r->status() == grpc::health::v1::HealthCheckResponse::SERVING ? 0 : 1;
  }

  if (resource == "tenants") {
    const std::vector<std::string> columns = {"name",
                                              "display_name",
                                              "credit_pool",
                                              "credit_limit",
                                              "reserved_credits",
                                              "consumed_credits",
                                              "connection_count"};
    if (verb == "create") {
      v1::CreateTenantRequest r;
      r.set_tenant_id(Arg(args, 2, "ID"));
      if (absl::GetFlag(FLAGS_pool).empty()) Usage("--pool is required");
      r.mutable_tenant()->set_credit_pool("creditPools/" + absl::GetFlag(FLAGS_pool));
      r.mutable_tenant()->set_display_name(display_name);
      r.mutable_tenant()->set_credit_limit(std::max<int64_t>(0, absl::GetFlag(FLAGS_credit_limit)));
      r.set_request_id(absl::GetFlag(FLAGS_request_id));
      return Show(c.CreateTenant(r));
    }
    if (verb == "get") {
      v1::GetTenantRequest r;
      r.set_name(TenantName(Arg(args, 2, "ID")));
      return Show(c.GetTenant(r));
    }
    if (verb == "list") {
      return ShowList(ListAll<v1::ListTenantsRequest, v1::ListTenantsResponse, v1::Tenant>(
                          {}, [&](const auto& r) { return c.ListTenants(r); },
                          [](const auto& p) { return p.tenants(); }),
                      columns);
    }
    if (verb == "update") {
      v1::UpdateTenantRequest r;
      r.mutable_tenant()->set_name(TenantName(Arg(args, 2, "ID")));
      if (!display_name.empty()) {
        r.mutable_tenant()->set_display_name(display_name);
        r.mutable_update_mask()->add_paths("display_name");
      }
      if (absl::GetFlag(FLAGS_credit_limit) >= 0) {
        r.mutable_tenant()->set_credit_limit(absl::GetFlag(FLAGS_credit_limit));
        r.mutable_update_mask()->add_paths("credit_limit");
      }
      if (r.update_mask().paths().empty()) Usage("nothing to update");
      return Show(c.UpdateTenant(r));
    }
    if (verb == "delete") {
      v1::DeleteTenantRequest r;
      r.set_name(TenantName(Arg(args, 2, "ID")));
      r.set_force(absl::GetFlag(FLAGS_force));
      absl::Status s = c.DeleteTenant(r);
      if (!s.ok()) return Fail(s);
      std::cout << "deleted " << r.name() << "\n";
      return 0;
    }
  }

  if (resource == "systems") {
    if (verb == "list") {
      return ShowList(ListAll<v1::ListSystemsRequest, v1::ListSystemsResponse, v1::System>(
                          {}, [&](const auto& r) { return c.ListSystems(r); },
                          [](const auto& p) { return p.systems(); }),
                      {"name", "vendor", "product", "tier", "category", "credits_by_deployment"});
    }
    if (verb == "get") {
      v1::GetSystemRequest r;
      r.set_name("systems/" + Arg(args, 2, "ID"));
      return Show(c.GetSystem(r));
    }
  }

  if (resource == "pools") {
    if (verb == "create") {
      v1::CreateCreditPoolRequest r;
      r.set_credit_pool_id(Arg(args, 2, "ID"));
      r.mutable_credit_pool()->set_capacity(absl::GetFlag(FLAGS_capacity));
      r.mutable_credit_pool()->set_display_name(display_name);
      r.set_request_id(absl::GetFlag(FLAGS_request_id));
      return Show(c.CreateCreditPool(r));
    }
    if (verb == "get") {
      v1::GetCreditPoolRequest r;
      r.set_name("creditPools/" + Arg(args, 2, "ID"));
      return Show(c.GetCreditPool(r));
    }
    if (verb == "list") {
      return ShowList(
          ListAll<v1::ListCreditPoolsRequest, v1::ListCreditPoolsResponse, v1::CreditPool>(
              {}, [&](const auto& r) { return c.ListCreditPools(r); },
              [](const auto& p) { return p.credit_pools(); }),
          {"name", "display_name", "capacity", "available", "reserved", "consumed"});
    }
    if (verb == "set-capacity") {
      v1::SetCreditPoolCapacityRequest r;
      r.set_name("creditPools/" + Arg(args, 2, "ID"));
      int64_t capacity = 0;
      if (!absl::SimpleAtoi(Arg(args, 3, "CAPACITY"), &capacity)) Usage("CAPACITY: a number");
      r.set_capacity(capacity);
      return Show(c.SetCreditPoolCapacity(r));
    }
  }

  if (resource == "reservations") {
    if (verb == "reserve") {
      v1::ReserveCreditsRequest r;
      r.set_parent(TenantName(Arg(args, 2, "TENANT")));
      r.set_amount(absl::GetFlag(FLAGS_amount));
      r.set_reservation_id(absl::GetFlag(FLAGS_id));
      r.set_request_id(absl::GetFlag(FLAGS_request_id));
      if (absl::Duration ttl = absl::GetFlag(FLAGS_ttl); ttl > absl::ZeroDuration()) {
        r.mutable_ttl()->set_seconds(absl::ToInt64Seconds(ttl));
      }
      return Show(c.ReserveCredits(r));
    }
    if (verb == "list") {
      v1::ListCreditReservationsRequest r;
      r.set_parent(TenantName(Arg(args, 2, "TENANT")));
      if (!absl::GetFlag(FLAGS_state).empty()) {
        v1::CreditReservation::State state;
        if (!v1::CreditReservation::State_Parse(absl::GetFlag(FLAGS_state), &state)) {
          Usage("--state: PENDING, COMMITTED, RELEASED or EXPIRED");
        }
        r.set_state(state);
      }
      return ShowList(ListAll<v1::ListCreditReservationsRequest, v1::ListCreditReservationsResponse,
                              v1::CreditReservation>(
                          r, [&](const auto& req) { return c.ListCreditReservations(req); },
                          [](const auto& p) { return p.credit_reservations(); }),
                      {"name", "amount", "state", "expire_time", "connection"});
    }
    const std::string name = absl::StrCat(TenantName(Arg(args, 2, "TENANT")),
                                          "/creditReservations/", Arg(args, 3, "ID"));
    if (verb == "get") {
      v1::GetCreditReservationRequest r;
      r.set_name(name);
      return Show(c.GetCreditReservation(r));
    }
    if (verb == "commit") {
      v1::CommitCreditReservationRequest r;
      r.set_name(name);
      return Show(c.CommitCreditReservation(r));
    }
    if (verb == "release") {
      v1::ReleaseCreditReservationRequest r;
      r.set_name(name);
      return Show(c.ReleaseCreditReservation(r));
    }
  }

  if (resource == "connections") {
    const std::string tenant = TenantName(Arg(args, 2, "TENANT"));
    auto metadata = [](v1::Connection* conn) {
      for (const std::string& kv : absl::GetFlag(FLAGS_metadata)) {
        std::pair<std::string, std::string> p = absl::StrSplit(kv, absl::MaxSplits('=', 1));
        (*conn->mutable_metadata())[p.first] = p.second;
      }
    };
    if (verb == "list") {
      v1::ListConnectionsRequest r;
      r.set_parent(tenant);
      if (!absl::GetFlag(FLAGS_system).empty())
        r.set_system("systems/" + absl::GetFlag(FLAGS_system));
      if (!absl::GetFlag(FLAGS_state).empty()) {
        v1::Connection::State state;
        if (!v1::Connection::State_Parse(absl::GetFlag(FLAGS_state), &state)) {
          Usage("--state: PENDING, ACTIVE, INACTIVE, ERROR or DISCONNECTED");
        }
        r.set_state(state);
      }
      return ShowList(
          ListAll<v1::ListConnectionsRequest, v1::ListConnectionsResponse, v1::Connection>(
              r, [&](const auto& req) { return c.ListConnections(req); },
              [](const auto& p) { return p.connections(); }),
          {"name", "system", "deployment", "state", "credits", "display_name"});
    }
    const std::string name = absl::StrCat(tenant, "/connections/", Arg(args, 3, "ID"));
    if (verb == "create") {
      v1::CreateConnectionRequest r;
      r.set_parent(tenant);
      r.set_connection_id(args[3]);
      if (absl::GetFlag(FLAGS_system).empty()) Usage("--system is required");
      r.mutable_connection()->set_system("systems/" + absl::GetFlag(FLAGS_system));
      const std::string deployment = absl::GetFlag(FLAGS_deployment);
      if (deployment == "cloud") {
        r.mutable_connection()->set_deployment(v1::CLOUD);
      } else if (deployment == "on-premises" || deployment == "on-prem") {
        r.mutable_connection()->set_deployment(v1::ON_PREMISES);
      } else {
        Usage("--deployment: cloud or on-premises");
      }
      r.mutable_connection()->set_display_name(display_name);
      metadata(r.mutable_connection());
      if (!absl::GetFlag(FLAGS_reservation).empty()) {
        r.set_credit_reservation(
            absl::StrCat(tenant, "/creditReservations/", absl::GetFlag(FLAGS_reservation)));
      }
      r.set_request_id(absl::GetFlag(FLAGS_request_id));
      return Show(c.CreateConnection(r));
    }
    if (verb == "get") {
      v1::GetConnectionRequest r;
      r.set_name(name);
      return Show(c.GetConnection(r));
    }
    if (verb == "update") {
      v1::UpdateConnectionRequest r;
      r.mutable_connection()->set_name(name);
      if (!display_name.empty()) {
        r.mutable_connection()->set_display_name(display_name);
        r.mutable_update_mask()->add_paths("display_name");
      }
      if (!absl::GetFlag(FLAGS_metadata).empty()) {
        metadata(r.mutable_connection());
        r.mutable_update_mask()->add_paths("metadata");
      }
      if (r.update_mask().paths().empty()) Usage("nothing to update");
      return Show(c.UpdateConnection(r));
    }
    if (verb == "activate") {
      v1::ActivateConnectionRequest r;
      r.set_name(name);
      return Show(c.ActivateConnection(r));
    }
    if (verb == "deactivate") {
      v1::DeactivateConnectionRequest r;
      r.set_name(name);
      return Show(c.DeactivateConnection(r));
    }
    if (verb == "delete") {
      v1::DeleteConnectionRequest r;
      r.set_name(name);
      return Show(c.DeleteConnection(r));
    }
  }

  if (resource == "keys") {
    const std::vector<std::string> columns = {
        "name",        "kind",          "display_name", "hint", "state", "can_reveal_credentials",
        "expire_time", "last_used_time"};
    auto show_new = [](const absl::StatusOr<v1::CreateApiKeyResponse>& r) {
      if (!r.ok()) return Fail(r.status());
      PrintOne(r->api_key());
      if (!absl::GetFlag(FLAGS_json)) {
        std::cout << "\ntoken: " << r->token()
                  << "\n(shown once: store it now; only a hash is kept)\n";
      }
      return 0;
    };
    if (verb == "create") {
      v1::CreateApiKeyRequest r;
      if (args.size() > 2) r.set_parent(TenantName(args[2]));
      r.set_display_name(display_name);
      r.set_can_reveal_credentials(absl::GetFlag(FLAGS_can_reveal));
      if (absl::Duration ttl = absl::GetFlag(FLAGS_ttl); ttl > absl::ZeroDuration()) {
        r.mutable_ttl()->set_seconds(absl::ToInt64Seconds(ttl));
      }
      return show_new(c.CreateApiKey(r));
    }
    if (verb == "list") {
      v1::ListApiKeysRequest r;
      if (args.size() > 2) r.set_parent(TenantName(args[2]));
      if (args.size() > 3) r.set_parent(absl::StrCat(r.parent(), "/connections/", args[3]));
      return ShowList(ListAll<v1::ListApiKeysRequest, v1::ListApiKeysResponse, v1::ApiKey>(
                          r, [&](const auto& req) { return c.ListApiKeys(req); },
                          [](const auto& p) { return p.api_keys(); }),
                      columns);
    }
    if (verb == "rotate") {
      v1::RotateApiKeyRequest r;
      r.set_name(Arg(args, 2, "NAME"));
      r.mutable_grace_period()->set_seconds(absl::ToInt64Seconds(absl::GetFlag(FLAGS_grace)));
      return show_new(c.RotateApiKey(r));
    }
    if (verb == "revoke") {
      v1::RevokeApiKeyRequest r;
      r.set_name(Arg(args, 2, "NAME"));
      return Show(c.RevokeApiKey(r));
    }
    if (verb == "rewrap") return Show(c.RewrapDataKeys({}));
    if (verb == "rotate-tenant-key") {
      v1::RotateTenantDataKeyRequest r;
      r.set_name(TenantName(Arg(args, 2, "TENANT")));
      r.set_reencrypt(absl::GetFlag(FLAGS_reencrypt));
      return Show(c.RotateTenantDataKey(r));
    }
  }

  if (resource == "credentials") {
    const std::string name = absl::StrCat(TenantName(Arg(args, 2, "TENANT")), "/connections/",
                                          Arg(args, 3, "CONNECTION"), "/credentials");
    if (verb == "set") {
      v1::SetConnectionCredentialsRequest r;
      v1::ConnectionCredentials* cr = r.mutable_credentials();
      cr->set_name(name);
      cr->set_base_url(absl::GetFlag(FLAGS_base_url));
      cr->set_username(absl::GetFlag(FLAGS_username));
      cr->set_password(absl::GetFlag(FLAGS_password));
      cr->set_oauth_client_id(absl::GetFlag(FLAGS_oauth_client_id));
      cr->set_oauth_client_secret(absl::GetFlag(FLAGS_oauth_client_secret));
      cr->set_oauth_refresh_token(absl::GetFlag(FLAGS_oauth_refresh_token));
      cr->set_api_key(absl::GetFlag(FLAGS_secret_api_key));
      return Show(c.SetConnectionCredentials(r));
    }
    if (verb == "get") {
      v1::GetConnectionCredentialsRequest r;
      r.set_name(name);
      r.set_reveal_secrets(absl::GetFlag(FLAGS_reveal));
      return Show(c.GetConnectionCredentials(r));
    }
    if (verb == "delete") {
      v1::DeleteConnectionCredentialsRequest r;
      r.set_name(name);
      absl::Status s = c.DeleteConnectionCredentials(r);
      if (!s.ok()) return Fail(s);
      std::cout << "deleted " << name << "\n";
      return 0;
    }
  }

  if (resource == "webhooks") {
    const std::string name = absl::StrCat(TenantName(Arg(args, 2, "TENANT")), "/connections/",
                                          Arg(args, 3, "CONNECTION"), "/webhookSecret");
    if (verb == "rotate-secret") {
      v1::RotateWebhookSecretRequest r;
      r.set_name(name);
      if (absl::GetFlag(FLAGS_grace) > absl::ZeroDuration()) {
        r.mutable_grace_period()->set_seconds(absl::ToInt64Seconds(absl::GetFlag(FLAGS_grace)));
      }
      return Show(c.RotateWebhookSecret(r));
    }
    if (verb == "secret") {
      v1::GetWebhookSecretRequest r;
      r.set_name(name);
      return Show(c.GetWebhookSecret(r));
    }
    if (verb == "revoke-secret") {
      v1::RevokeWebhookSecretRequest r;
      r.set_name(name);
      absl::Status s = c.RevokeWebhookSecret(r);
      if (!s.ok()) return Fail(s);
      std::cout << "revoked every signing secret of " << name << "\n";
      return 0;
    }
  }

  if (resource == "events" && verb == "list") {
    v1::ListEventsRequest r;
    r.set_parent(absl::StrCat(TenantName(Arg(args, 2, "TENANT")), "/connections/",
                              Arg(args, 3, "CONNECTION")));
    r.set_after_sequence(absl::GetFlag(FLAGS_after));
    r.set_page_size(1000);
    std::vector<v1::Event> events;
    while (true) {
      auto page = c.ListEvents(r);
      if (!page.ok()) return Fail(page.status());
      if (page->events().empty()) break;
      events.insert(events.end(), page->events().begin(), page->events().end());
      r.set_after_sequence(page->last_sequence());
    }
    PrintList(events,
              {"sequence", "event_id", "source", "source_time", "receive_time", "content_type"});
    return 0;
  }

  if (resource == "subscriptions") return Subscriptions(c, args, verb);

  if (resource == "health") {
    const std::string name = absl::StrCat(TenantName(Arg(args, 2, "TENANT")), "/connections/",
                                          Arg(args, 3, "CONNECTION"), "/health");
    if (verb == "get") {
      v1::GetConnectionHealthRequest r;
      r.set_name(name);
      return Show(c.GetConnectionHealth(r));
    }
    if (verb == "set") {
      v1::SetConnectionHealthCheckRequest r;
      r.set_name(name);
      r.mutable_check()->set_url(absl::GetFlag(FLAGS_url));
      auto duration = [](absl::Duration d, google::protobuf::Duration* out) {
        const int64_t nanos = absl::ToInt64Nanoseconds(d);
        out->set_seconds(nanos / 1000000000);
        out->set_nanos(static_cast<int32_t>(nanos % 1000000000));
      };
      // Zero (the flag's default) leaves the server's default.
      duration(absl::GetFlag(FLAGS_interval), r.mutable_check()->mutable_interval());
      duration(absl::GetFlag(FLAGS_probe_timeout), r.mutable_check()->mutable_timeout());
      r.mutable_check()->set_expected_status(absl::GetFlag(FLAGS_expected_status));
      return Show(c.SetConnectionHealthCheck(r));
    }
  }

  if (resource == "feeds") {
    const std::string name = absl::StrCat(TenantName(Arg(args, 2, "TENANT")), "/connections/",
                                          Arg(args, 3, "CONNECTION"), "/changeFeed");
    if (verb == "get") {
      v1::GetConnectionChangeFeedRequest r;
      r.set_name(name);
      return Show(c.GetConnectionChangeFeed(r));
    }
    if (verb == "set") {
      v1::SetConnectionChangeFeedRequest r;
      v1::ChangeFeed& feed = *r.mutable_feed();
      feed.set_name(name);
      feed.set_url(absl::GetFlag(FLAGS_url));
      feed.mutable_interval()->set_seconds(absl::ToInt64Seconds(absl::GetFlag(FLAGS_interval)));
      const absl::Duration silent = absl::GetFlag(FLAGS_when_silent);
      feed.set_mode(silent > absl::ZeroDuration() ? v1::ChangeFeed::WHEN_WEBHOOKS_SILENT
                                                  : v1::ChangeFeed::ALWAYS);
      feed.mutable_silence_threshold()->set_seconds(absl::ToInt64Seconds(silent));
      return Show(c.SetConnectionChangeFeed(r));
    }
  }

  if (resource == "incidents") {
    if (verb == "list") {
      v1::ListIncidentsRequest r;
      const std::string state = absl::GetFlag(FLAGS_state);
      if (!state.empty()) {
        v1::Incident::State parsed;
        if (!v1::Incident::State_Parse(state, &parsed)) Usage("--state: OPEN or RESOLVED");
        r.set_state(parsed);
      }
      return ShowList(
          ListAll<v1::ListIncidentsRequest, v1::ListIncidentsResponse, v1::Incident>(
              r, [&](const auto& req) { return c.ListIncidents(req); },
              [](const auto& p) { return p.incidents(); }),
          {"name", "state", "severity", "title", "component", "start_time", "end_time"});
    }
    if (verb == "create") {
      v1::CreateIncidentRequest r;
      r.mutable_incident()->set_title(absl::GetFlag(FLAGS_title));
      r.mutable_incident()->set_component(absl::GetFlag(FLAGS_component));
      v1::Incident::Severity severity;
      if (!v1::Incident::Severity_Parse(absl::GetFlag(FLAGS_severity), &severity)) {
        Usage("--severity: MINOR, MAJOR or CRITICAL");
      }
      r.mutable_incident()->set_severity(severity);
      r.set_request_id(absl::GetFlag(FLAGS_request_id));
      return Show(c.CreateIncident(r));
    }
    const std::string name = "incidents/" + Arg(args, 2, "N");
    if (verb == "get") {
      v1::GetIncidentRequest r;
      r.set_name(name);
      return Show(c.GetIncident(r));
    }
    if (verb == "annotate") {
      v1::AnnotateIncidentRequest r;
      r.set_name(name);
      r.set_text(Arg(args, 3, "TEXT"));
      return Show(c.AnnotateIncident(r));
    }
    if (verb == "resolve") {
      v1::ResolveIncidentRequest r;
      r.set_name(name);
      if (args.size() > 3) r.set_text(args[3]);
      return Show(c.ResolveIncident(r));
    }
  }

  if (resource == "ledger" && verb == "list") {
    v1::ListLedgerEntriesRequest r;
    r.set_parent("creditPools/" + Arg(args, 2, "POOL"));
    if (!absl::GetFlag(FLAGS_tenant).empty()) r.set_tenant(TenantName(absl::GetFlag(FLAGS_tenant)));
    return ShowList(
        ListAll<v1::ListLedgerEntriesRequest, v1::ListLedgerEntriesResponse, v1::LedgerEntry>(
            r, [&](const auto& req) { return c.ListLedgerEntries(req); },
            [](const auto& p) { return p.entries(); }),
        {"sequence", "time", "kind", "amount", "tenant", "connection", "credit_reservation",
         "capacity_after", "reserved_after", "consumed_after"});
  }
  Usage(absl::StrCat("unknown command: ", resource, " ", verb));
}

}  // namespace
}  // namespace switchyard::ctl

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "switchyardctl [--target=HOST:PORT] [--json] RESOURCE VERB [ARGS] [--flags]\n"
      "Resources: tenants, systems, pools, reservations, connections, ledger, keys, "
      "credentials, webhooks, events, subscriptions, health, feeds, incidents.\n"
      "See the header of client/switchyardctl.cc or README.md for every verb.");
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  std::vector<std::string> args(positional.begin() + 1, positional.end());
  switchyard::client::ClientOptions options;
  options.target = absl::GetFlag(FLAGS_target);
  options.deadline = absl::GetFlag(FLAGS_timeout);
  options.api_key = absl::GetFlag(FLAGS_api_key);
  if (const char* env = std::getenv("SWITCHYARD_API_KEY"); options.api_key.empty() && env) {
    options.api_key = env;
  }
  options.tls = absl::GetFlag(FLAGS_tls);
  auto read = [](const std::string& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  };
  if (!absl::GetFlag(FLAGS_tls_ca_file).empty()) {
    options.tls_root_certs = read(absl::GetFlag(FLAGS_tls_ca_file));
  }
  if (!absl::GetFlag(FLAGS_tls_cert_file).empty()) {
    options.tls_client_cert = read(absl::GetFlag(FLAGS_tls_cert_file));
    options.tls_client_key = read(absl::GetFlag(FLAGS_tls_key_file));
  }
  auto client = switchyard::client::GatewayClient::Create(options);
  try {
    return switchyard::ctl::Run(*client, args);
  } catch (const switchyard::ctl::UsageError& e) {
    std::cerr << "usage error: " << e.message << "\n"
              << "run 'switchyardctl --help' for usage\n";
    return 2;
  }
}
