#include "server/polling/feed_poller.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/common/names.h"
#include "server/common/proto_time.h"
#include "server/common/status.h"
#include "server/events/event_log.h"
#include "server/health/url_policy.h"

namespace switchyard::polling {
namespace {

constexpr int kMaxEvents = 500;
constexpr size_t kMaxBody = 4 << 20;

absl::Status Invalid(absl::string_view why) {
  return InvalidArgument("INVALID_FEED", absl::StrCat("change feed answer: ", why));
}

absl::Status ConnectionMissing(absl::string_view name) {
  return NotFound("CONNECTION_NOT_FOUND", absl::StrCat(name, " does not exist"));
}

std::string Key(absl::string_view tenant_id, absl::string_view connection_id) {
  return absl::StrCat(tenant_id, "/", connection_id);
}

// `url` with the cursor as a query parameter (percent-encoded).
std::string WithCursor(const std::string& url, const std::string& cursor) {
  if (cursor.empty()) return url;
  std::string out = url + (url.find('?') == std::string::npos ? "?cursor=" : "&cursor=");
  for (unsigned char c : cursor) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      absl::StrAppend(&out, "%", absl::Hex(c, absl::kZeroPad2));
    }
  }
  return out;
}

// A scanner over JSON already known to be valid, to recover the exact text
// of each event's "data" (parsing into google.protobuf.Struct turns numbers
// into doubles, which would change large ids).
class RawJson {
 public:
  explicit RawJson(absl::string_view text) : text_(text) {}

  // The raw "data" values of the objects in the top-level "events" array, in
  // order (std::nullopt for an event without one).
  std::vector<std::optional<absl::string_view>> EventData() {
    std::vector<std::optional<absl::string_view>> out;
    Space();
    if (!Eat('{')) return out;
    while (true) {
      Space();
      if (Eat('}') || pos_ >= text_.size()) return out;
      const absl::string_view key = String();
      Space();
      Eat(':');
      Space();
      if (key == "\"events\"" && Peek() == '[') {
        out.clear();
        Eat('[');
        while (true) {
          Space();
          if (Eat(']') || pos_ >= text_.size()) break;
          out.push_back(ObjectMember("\"data\""));
          Space();
          Eat(',');
        }
      } else {
        Value();
      }
      Space();
      Eat(',');
    }
  }

 private:
  char Peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  bool Eat(char c) {
    if (Peek() != c) return false;
    ++pos_;
    return true;
  }
  void Space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\n' ||
                                   text_[pos_] == '\r' || text_[pos_] == '\t')) {
      ++pos_;
    }
  }
  // A string with its quotes.
  absl::string_view String() {
    const size_t start = pos_;
    ++pos_;  // opening quote
    while (pos_ < text_.size() && text_[pos_] != '"') pos_ += text_[pos_] == '\\' ? 2 : 1;
    ++pos_;  // closing quote
    return text_.substr(start, std::min(pos_, text_.size()) - start);
  }
  // Skips any value and returns its text.
  absl::string_view Value() {
    const size_t start = pos_;
    if (Peek() == '"') {
      String();
    } else if (Peek() == '{' || Peek() == '[') {
      int depth = 0;
      do {
        if (Peek() == '"') {
          String();
          continue;
        }
        if (Peek() == '{' || Peek() == '[') ++depth;
        if (Peek() == '}' || Peek() == ']') --depth;
        ++pos_;
      } while (depth > 0 && pos_ < text_.size());
    } else {
      while (pos_ < text_.size() && !absl::ascii_isspace(text_[pos_]) && Peek() != ',' &&
             Peek() != '}' && Peek() != ']') {
        ++pos_;
      }
    }
    return text_.substr(start, pos_ - start);
  }
  // The raw value of member `key` (quoted) of the object at the cursor.
  std::optional<absl::string_view> ObjectMember(absl::string_view key) {
    std::optional<absl::string_view> found;
    if (!Eat('{')) {
      Value();
      return found;
    }
    while (true) {
      Space();
      if (Eat('}') || pos_ >= text_.size()) return found;
      const absl::string_view name = String();
      Space();
      Eat(':');
      Space();
      const absl::string_view value = Value();
      if (name == key) found = value;
      Space();
      Eat(',');
    }
  }

  absl::string_view text_;
  size_t pos_ = 0;
};

bool SameSettings(const storage::ChangeFeedRow& a, const storage::ChangeFeedRow& b) {
  return a.url == b.url && a.interval_ms == b.interval_ms && a.mode == b.mode &&
         a.silence_ms == b.silence_ms;
}

}  // namespace

absl::StatusOr<FeedPage> ParseFeedPage(absl::string_view body) {
  google::protobuf::Struct root;
  if (body.empty() || body.front() != '{' ||
      !google::protobuf::util::JsonStringToMessage(std::string(body), &root).ok()) {
    return Invalid("not a JSON object");
  }
  FeedPage page;
  const auto& fields = root.fields();
  if (auto it = fields.find("next_cursor"); it != fields.end()) {
    if (!it->second.has_string_value() || it->second.string_value().size() > 1024) {
      return Invalid("next_cursor must be a string of at most 1024 characters");
    }
    page.next_cursor = it->second.string_value();
  }
  if (auto it = fields.find("has_more"); it != fields.end()) {
    if (it->second.kind_case() != google::protobuf::Value::kBoolValue) {
      return Invalid("has_more must be true or false");
    }
    page.has_more = it->second.bool_value();
  }
  auto events = fields.find("events");
  if (events == fields.end()) return page;
  if (!events->second.has_list_value()) return Invalid("events must be a list");
  const auto& list = events->second.list_value().values();
  if (list.size() > kMaxEvents) return Invalid(absl::StrCat("more than ", kMaxEvents, " events"));
  const std::vector<std::optional<absl::string_view>> raw = RawJson(body).EventData();
  for (const google::protobuf::Value& value : list) {
    const size_t index = page.events.size();
    if (!value.has_struct_value()) return Invalid("every event must be an object");
    const auto& e = value.struct_value().fields();
    storage::EventRow row;
    auto id = e.find("id");
    if (id == e.end() || !id->second.has_string_value()) return Invalid("an event has no id");
    row.event_id = id->second.string_value();
    bool printable = !row.event_id.empty() && row.event_id.size() <= 256;
    for (char c : row.event_id) printable = printable && c > 0x20 && c < 0x7f;
    if (!printable) return Invalid("event ids are 1 to 256 printable characters");
    if (auto type = e.find("type"); type != e.end()) {
      if (!type->second.has_string_value() || type->second.string_value().size() > 128) {
        return Invalid("type must be a string of at most 128 characters");
      }
      row.type = type->second.string_value();
    }
    if (auto time = e.find("time"); time != e.end()) {
      std::string error;
      if (!time->second.has_string_value() ||
          !absl::ParseTime(absl::RFC3339_full, time->second.string_value(), &row.source_time,
                           &error)) {
        return Invalid("time must be an RFC 3339 timestamp");
      }
    }
    row.content_type = "application/json";
    if (auto data = e.find("data"); data != e.end()) {
      if (raw.size() == static_cast<size_t>(list.size()) && raw[index].has_value()) {
        row.body = std::string(*raw[index]);  // exactly as sent
      } else if (!google::protobuf::util::MessageToJsonString(data->second, &row.body).ok()) {
        return Invalid("data cannot be stored");
      }
    } else {
      row.body = "{}";
    }
    page.events.push_back(std::move(row));
  }
  return page;
}

FeedPoller::~FeedPoller() { Shutdown(); }

v1::ChangeFeed FeedPoller::ToProto(const storage::ChangeFeedRow& row) {
  v1::ChangeFeed feed;
  feed.set_name(
      absl::StrCat("tenants/", row.tenant_id, "/connections/", row.connection_id, "/changeFeed"));
  feed.set_url(row.url);
  switchyard::ToProto(absl::Milliseconds(row.interval_ms), feed.mutable_interval());
  feed.set_mode(static_cast<v1::ChangeFeed::Mode>(row.mode));
  switchyard::ToProto(absl::Milliseconds(row.silence_ms), feed.mutable_silence_threshold());
  feed.set_cursor(row.cursor);
  if (row.last_poll_time != absl::InfinitePast()) {
    switchyard::ToProto(row.last_poll_time, feed.mutable_last_poll_time());
  }
  feed.set_last_result(row.last_result);
  feed.set_events_stored(row.events_stored);
  return feed;
}

absl::Status FeedPoller::Load() {
  std::vector<storage::ChangeFeedRow> rows;
  SY_RETURN_IF_ERROR(store_.Read([&](storage::Transaction& tx) -> absl::Status {
    SY_ASSIGN_OR_RETURN(rows, tx.ListChangeFeeds());
    return absl::OkStatus();
  }));
  const absl::Time now = clock_.Now();
  absl::MutexLock lock(&mu_);
  for (storage::ChangeFeedRow& row : rows) {
    Entry entry;
    entry.next_due = now;
    entry.generation = next_generation_++;
    const std::string key = Key(row.tenant_id, row.connection_id);
    entry.row = std::move(row);
    entries_[key] = std::move(entry);
  }
  return absl::OkStatus();
}

void FeedPoller::Start(absl::Duration period) {
  ticker_.Start(period, [this] { Tick(); });
}

void FeedPoller::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  ticker_.Stop();
}

absl::StatusOr<bool> FeedPoller::Store(storage::ChangeFeedRow& row,
                                       const health::ProbeResult& result, absl::Time now,
                                       bool& gone) {
  gone = false;
  row.last_poll_time = now;
  absl::StatusOr<FeedPage> page = Invalid("no answer");
  if (result.status == 200) {
    page = ParseFeedPage(result.body);
  } else if (result.status != 0) {
    page = Invalid(absl::StrCat("HTTP ", result.status));
  } else {
    page = Invalid(result.error);
  }
  if (!page.ok()) {
    row.last_result = std::string(page.status().message());
    SY_RETURN_IF_ERROR(store_.Write([&](storage::Transaction& tx) -> absl::Status {
      gone = false;
      SY_ASSIGN_OR_RETURN(std::optional<storage::ChangeFeedRow> stored,
                          tx.GetChangeFeed(row.tenant_id, row.connection_id));
      if (!stored.has_value() || !SameSettings(*stored, row)) return absl::OkStatus();
      // A disconnected connection is polled no more, whether or not its
      // system still answers.
      SY_ASSIGN_OR_RETURN(std::optional<int> state,
                          tx.GetConnectionState(row.tenant_id, row.connection_id));
      if (!state.has_value() || *state == v1::Connection::DISCONNECTED) {
        gone = true;
        return tx.DeleteChangeFeed(row.tenant_id, row.connection_id);
      }
      return tx.PutChangeFeed(row);
    }));
    return false;
  }
  int64_t added = 0;
  storage::ChangeFeedRow updated = row;
  SY_RETURN_IF_ERROR(store_.Write([&](storage::Transaction& tx) -> absl::Status {
    added = 0;
    updated = row;
    gone = false;
    SY_ASSIGN_OR_RETURN(std::optional<storage::ChangeFeedRow> stored,
                        tx.GetChangeFeed(row.tenant_id, row.connection_id));
    if (!stored.has_value() || !SameSettings(*stored, row)) return absl::OkStatus();  // changed
    SY_ASSIGN_OR_RETURN(std::optional<int> state,
                        tx.GetConnectionState(row.tenant_id, row.connection_id));
    if (!state.has_value() || *state == v1::Connection::DISCONNECTED) {
      gone = true;
      return tx.DeleteChangeFeed(row.tenant_id, row.connection_id);
    }
    for (const storage::EventRow& found : page->events) {
      storage::EventRow event = found;
      event.tenant_id = row.tenant_id;
      event.connection_id = row.connection_id;
      event.source = v1::Event::POLL;
      event.receive_time = now;
      if (event.source_time == absl::InfinitePast()) event.source_time = now;
      SY_ASSIGN_OR_RETURN(events::EventLog::Appended appended,
                          events::EventLog::AppendInTx(tx, std::move(event)));
      if (!appended.duplicate) ++added;
    }
    if (!page->next_cursor.empty()) updated.cursor = page->next_cursor;
    updated.events_stored += added;
    updated.last_result =
        absl::StrCat("HTTP 200: ", page->events.size(), " events, ", added, " new");
    return tx.PutChangeFeed(updated);
  }));
  const bool moved = !page->next_cursor.empty() && page->next_cursor != row.cursor;
  row = std::move(updated);
  // Another page only when the feed says so and the cursor moved (a feed
  // that never advances is not fetched in a loop).
  return page->has_more && moved && !page->events.empty();
}

void FeedPoller::Tick() {
  std::vector<Finished> finished;
  {
    absl::MutexLock lock(&mu_);
    finished.swap(finished_);
  }
  const absl::Time now = clock_.Now();
  for (Finished& f : finished) {
    storage::ChangeFeedRow row;
    {
      absl::MutexLock lock(&mu_);
      auto it = entries_.find(f.key);
      if (it == entries_.end() || it->second.generation != f.generation) continue;
      row = it->second.row;
    }
    bool gone = false;
    absl::StatusOr<bool> more = Store(row, f.result, now, gone);
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(f.key);
    if (it == entries_.end() || it->second.generation != f.generation) continue;
    if (more.ok() && gone) {
      entries_.erase(it);
      continue;
    }
    it->second.in_flight = false;
    if (!more.ok()) {
      it->second.next_due = now + absl::Seconds(1);  // the store failed; try again soon
      continue;
    }
    it->second.row = row;
    it->second.next_due = *more ? now : now + absl::Milliseconds(row.interval_ms);
  }

  struct Due {
    std::string key;
    uint64_t generation;
    storage::ChangeFeedRow row;
  };
  std::vector<Due> due;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    for (auto& [key, entry] : entries_) {
      if (entry.in_flight || entry.next_due > now) continue;
      entry.in_flight = true;
      due.push_back({key, entry.generation, entry.row});
    }
  }
  for (Due& d : due) {
    if (d.row.mode == v1::ChangeFeed::WHEN_WEBHOOKS_SILENT) {
      absl::Time last = absl::InfinitePast();
      absl::Status read = store_.Read([&](storage::Transaction& tx) -> absl::Status {
        SY_ASSIGN_OR_RETURN(last, tx.LastEventReceiveTime(d.row.tenant_id, d.row.connection_id,
                                                          v1::Event::WEBHOOK));
        return absl::OkStatus();
      });
      // A webhook that was a duplicate (its event came by the feed first)
      // is not stored, but still shows that webhooks flow.
      if (last_webhook_) last = std::max(last, last_webhook_(d.row.tenant_id, d.row.connection_id));
      if (read.ok() && now - last < absl::Milliseconds(d.row.silence_ms)) {
        // Webhooks are flowing: look again after an interval.
        absl::MutexLock lock(&mu_);
        auto it = entries_.find(d.key);
        if (it != entries_.end() && it->second.generation == d.generation) {
          it->second.in_flight = false;
          it->second.next_due = now + absl::Milliseconds(d.row.interval_ms);
        }
        continue;
      }
    }
    const absl::Duration timeout =
        std::min(absl::Seconds(30), absl::Milliseconds(d.row.interval_ms));
    http_.Get(WithCursor(d.row.url, d.row.cursor), timeout, kMaxBody,
              [this, key = d.key, generation = d.generation](health::ProbeResult result) {
                absl::MutexLock lock(&mu_);
                finished_.push_back({key, generation, std::move(result)});
              });
  }
}

absl::StatusOr<v1::ChangeFeed> FeedPoller::Set(const v1::SetConnectionChangeFeedRequest& req,
                                               const Scope& scope) {
  const v1::ChangeFeed& feed = req.feed();
  SY_ASSIGN_OR_RETURN(std::vector<std::string> ids,
                      ParseConnectionChild(feed.name(), "changeFeed"));
  const std::string connection = absl::StrCat("tenants/", ids[0], "/connections/", ids[1]);
  if (!scope.AllowsConnection(ids[0], ids[1])) return ConnectionMissing(connection);
  storage::ChangeFeedRow row;
  row.tenant_id = ids[0];
  row.connection_id = ids[1];
  const bool remove = feed.url().empty();
  if (!remove) {
    const std::string& url = feed.url();
    SY_RETURN_IF_ERROR(health::CheckOutboundUrl(url, allow_private_));
    const absl::Duration given = FromProto(feed.interval());
    const absl::Duration interval = given == absl::ZeroDuration() ? absl::Minutes(1) : given;
    if (interval < min_interval_ || interval > absl::Hours(1)) {
      return InvalidArgument(
          "INVALID_INTERVAL",
          absl::StrCat("interval must be ", absl::FormatDuration(min_interval_), " to 1h"));
    }
    const v1::ChangeFeed::Mode mode =
        feed.mode() == v1::ChangeFeed::MODE_UNSPECIFIED ? v1::ChangeFeed::ALWAYS : feed.mode();
    if (!v1::ChangeFeed::Mode_IsValid(mode)) {
      return InvalidArgument("INVALID_MODE", "mode must be ALWAYS or WHEN_WEBHOOKS_SILENT");
    }
    const absl::Duration silence_given = FromProto(feed.silence_threshold());
    const absl::Duration silence =
        silence_given == absl::ZeroDuration() ? absl::Minutes(10) : silence_given;
    if (silence < absl::Seconds(1) || silence > absl::Hours(24)) {
      return InvalidArgument("INVALID_THRESHOLD", "silence_threshold must be 1s to 24h");
    }
    row.url = url;
    row.interval_ms = absl::ToInt64Milliseconds(interval);
    row.mode = mode;
    row.silence_ms = absl::ToInt64Milliseconds(silence);
  }
  SY_RETURN_IF_ERROR(store_.Write([&](storage::Transaction& tx) -> absl::Status {
    SY_ASSIGN_OR_RETURN(std::optional<storage::TenantRow> tenant, tx.GetTenant(ids[0]));
    SY_ASSIGN_OR_RETURN(std::optional<int> state, tx.GetConnectionState(ids[0], ids[1]));
    if (!tenant.has_value() || tenant->deleted || !state.has_value()) {
      return ConnectionMissing(connection);
    }
    if (*state == v1::Connection::DISCONNECTED) {
      return FailedPrecondition("CONNECTION_DISCONNECTED", "the connection is disconnected");
    }
    if (remove) return tx.DeleteChangeFeed(ids[0], ids[1]);
    SY_ASSIGN_OR_RETURN(std::optional<storage::ChangeFeedRow> existing,
                        tx.GetChangeFeed(ids[0], ids[1]));
    if (existing.has_value() && existing->url == row.url) {
      // Same feed: keep where polling got to.
      row.cursor = existing->cursor;
      row.last_poll_time = existing->last_poll_time;
      row.last_result = existing->last_result;
      row.events_stored = existing->events_stored;
    }
    return tx.PutChangeFeed(row);
  }));
  const std::string key = Key(ids[0], ids[1]);
  absl::MutexLock lock(&mu_);
  if (remove) {
    entries_.erase(key);
  } else {
    Entry& entry = entries_[key];
    entry.row = row;
    entry.next_due = clock_.Now();
    entry.in_flight = false;
    entry.generation = next_generation_++;
  }
  return ToProto(row);
}

absl::StatusOr<v1::ChangeFeed> FeedPoller::Get(absl::string_view name, const Scope& scope) {
  SY_ASSIGN_OR_RETURN(std::vector<std::string> ids, ParseConnectionChild(name, "changeFeed"));
  const std::string connection = absl::StrCat("tenants/", ids[0], "/connections/", ids[1]);
  if (!scope.AllowsConnection(ids[0], ids[1])) return ConnectionMissing(connection);
  std::optional<storage::ChangeFeedRow> row;
  SY_RETURN_IF_ERROR(store_.Read([&](storage::Transaction& tx) -> absl::Status {
    SY_ASSIGN_OR_RETURN(std::optional<storage::TenantRow> tenant, tx.GetTenant(ids[0]));
    SY_ASSIGN_OR_RETURN(std::optional<int> state, tx.GetConnectionState(ids[0], ids[1]));
    if (!tenant.has_value() || tenant->deleted || !state.has_value()) {
      return ConnectionMissing(connection);
    }
    SY_ASSIGN_OR_RETURN(row, tx.GetChangeFeed(ids[0], ids[1]));
    return absl::OkStatus();
  }));
  if (!row.has_value()) {
    v1::ChangeFeed none;
    none.set_name(absl::StrCat(connection, "/changeFeed"));
    return none;
  }
  return ToProto(*row);
}

}  // namespace switchyard::polling
