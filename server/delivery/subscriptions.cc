#include "server/delivery/subscriptions.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/common/idempotency.h"
#include "server/common/names.h"
#include "server/common/proto_time.h"
#include "server/common/status.h"
#include "server/delivery/subscription_name.h"
#include "server/events/event_log.h"

namespace switchyard::delivery {
namespace {

constexpr int kMaxFilterEntries = 100;
constexpr int kMaxReplay = 10000;

absl::Status Missing(absl::string_view name) {
  return NotFound("SUBSCRIPTION_NOT_FOUND", absl::StrCat(name, " does not exist"));
}

// The parent's tenant ("" for operator subscriptions), if `scope` may use it.
absl::StatusOr<std::string> ParentTenant(absl::string_view parent, const Scope& scope) {
  if (parent.empty()) {
    if (!scope.tenant_id.empty()) {
      return Error(absl::StatusCode::kPermissionDenied, "PERMISSION_DENIED",
                   "subscriptions over every tenant need an operator key");
    }
    return std::string();
  }
  SY_ASSIGN_OR_RETURN(std::vector<std::string> ids, ParseName("parent", parent, {"tenants"}));
  if (!scope.AllowsWholeTenant(ids[0])) {
    return NotFound("TENANT_NOT_FOUND", absl::StrCat(parent, " does not exist"));
  }
  return ids[0];
}

// Validates and fills in defaults.
absl::Status Normalize(const std::string& tenant_id, v1::Subscription& s) {
  if (s.display_name().size() > 256) {
    return InvalidArgument("INVALID_DISPLAY_NAME", "display_name is limited to 256 characters");
  }
  const v1::SubscriptionFilter& f = s.filter();
  if (f.connections_size() > kMaxFilterEntries || f.systems_size() > kMaxFilterEntries ||
      f.event_types_size() > kMaxFilterEntries) {
    return InvalidArgument("INVALID_FILTER",
                           absl::StrCat("a filter lists at most ", kMaxFilterEntries,
                                        " connections, systems and event types each"));
  }
  for (const std::string& c : f.connections()) {
    SY_ASSIGN_OR_RETURN(std::vector<std::string> ids,
                        ParseName("filter.connections", c, {"tenants", "connections"}));
    if (!tenant_id.empty() && ids[0] != tenant_id) {
      return InvalidArgument("INVALID_FILTER",
                             absl::StrCat(c, " is not a connection of tenants/", tenant_id));
    }
  }
  for (const std::string& system : f.systems()) {
    SY_RETURN_IF_ERROR(ValidateId("filter.systems", system));
  }
  for (const std::string& type : f.event_types()) {
    const size_t star = type.find('*');
    if (type.empty() || type.size() > 128 ||
        (star != std::string::npos && star != type.size() - 1)) {
      return InvalidArgument("INVALID_FILTER",
                             "event types are 1 to 128 characters, with '*' only at the end");
    }
  }
  if (!s.has_ack_deadline()) {
    s.mutable_ack_deadline()->set_seconds(30);
  } else {
    const absl::Duration d = FromProto(s.ack_deadline());
    if (d < absl::Seconds(1) || d > absl::Minutes(10)) {
      return InvalidArgument("INVALID_ACK_DEADLINE", "ack_deadline must be 1 s to 10 min");
    }
  }
  if (s.max_delivery_attempts() == 0) s.set_max_delivery_attempts(5);
  if (s.max_delivery_attempts() < 1 || s.max_delivery_attempts() > 100) {
    return InvalidArgument("INVALID_MAX_DELIVERY_ATTEMPTS",
                           "max_delivery_attempts must be 1 to 100");
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::Subscription> ToProto(const storage::SubscriptionRow& row) {
  v1::Subscription s;
  if (!s.ParseFromString(row.config)) {
    return Error(absl::StatusCode::kDataLoss, "SUBSCRIPTION_CORRUPT",
                 "a stored subscription cannot be read");
  }
  s.set_name(SubscriptionKey{row.tenant_id, row.id}.Name());
  switchyard::ToProto(row.create_time, s.mutable_create_time());
  return s;
}

}  // namespace

absl::StatusOr<v1::Subscription> SubscriptionManager::Create(
    const v1::CreateSubscriptionRequest& req, const Scope& scope) {
  SY_ASSIGN_OR_RETURN(std::string tenant_id, ParentTenant(req.parent(), scope));
  SY_RETURN_IF_ERROR(ValidateId("subscription_id", req.subscription_id()));
  SY_RETURN_IF_ERROR(ValidateRequestId(req.request_id()));
  v1::Subscription config = req.subscription();
  config.clear_name();
  config.clear_create_time();
  SY_RETURN_IF_ERROR(Normalize(tenant_id, config));
  std::string serialized;
  config.SerializeToString(&serialized);
  IdempotencyKey key = MakeIdempotencyKey("CreateSubscription", req.parent(), req.request_id(),
                                          Fingerprint({req.subscription_id(), serialized}));
  const absl::Time now = clock_.Now();
  v1::Subscription result;
  SY_RETURN_IF_ERROR(store_.Write([&](storage::Transaction& tx) -> absl::Status {
    SY_ASSIGN_OR_RETURN(std::optional<v1::Subscription> previous,
                        FindIdempotentResponse<v1::Subscription>(tx, key));
    if (previous.has_value()) {
      result = *std::move(previous);
      return absl::OkStatus();
    }
    if (!tenant_id.empty()) {
      SY_ASSIGN_OR_RETURN(std::optional<storage::TenantRow> tenant, tx.GetTenant(tenant_id));
      if (!tenant.has_value() || tenant->deleted) {
        return NotFound("TENANT_NOT_FOUND", absl::StrCat(req.parent(), " does not exist"));
      }
    }
    storage::SubscriptionRow row;
    row.tenant_id = tenant_id;
    row.id = req.subscription_id();
    row.config = serialized;
    SY_ASSIGN_OR_RETURN(row.start_position, tx.LastEventPosition());
    // Unique across a delete and a re-creation under the same name, so that
    // writes meant for the old subscription are never applied to the new.
    row.generation = absl::ToUnixMicros(now);
    row.create_time = now;
    absl::Status inserted = tx.InsertSubscription(row);
    if (absl::IsAlreadyExists(inserted)) {
      return Error(absl::StatusCode::kAlreadyExists, "SUBSCRIPTION_EXISTS",
                   absl::StrCat(SubscriptionKey{tenant_id, row.id}.Name(), " already exists"));
    }
    SY_RETURN_IF_ERROR(inserted);
    SY_ASSIGN_OR_RETURN(result, ToProto(row));
    return RecordIdempotentResponse(tx, key, result, now);
  }));
  return result;
}

absl::StatusOr<v1::Subscription> SubscriptionManager::Get(absl::string_view name,
                                                          const Scope& scope) {
  SY_ASSIGN_OR_RETURN(SubscriptionKey key, ParseSubscriptionName("name", name));
  if (!key.VisibleTo(scope)) return Missing(name);
  std::optional<storage::SubscriptionRow> row;
  SY_RETURN_IF_ERROR(store_.Read([&](storage::Transaction& tx) -> absl::Status {
    SY_ASSIGN_OR_RETURN(row, tx.GetSubscription(key.tenant_id, key.id));
    return absl::OkStatus();
  }));
  if (!row.has_value()) return Missing(name);
  return ToProto(*row);
}

absl::StatusOr<v1::ListSubscriptionsResponse> SubscriptionManager::List(
    const v1::ListSubscriptionsRequest& req, const Scope& scope) {
  SY_ASSIGN_OR_RETURN(std::string tenant_id, ParentTenant(req.parent(), scope));
  SY_ASSIGN_OR_RETURN(int page_size, NormalizePageSize(req.page_size()));
  const std::string token_scope = absl::StrCat("subscriptions:", req.parent());
  SY_ASSIGN_OR_RETURN(std::string after, DecodePageToken(req.page_token(), token_scope));
  std::vector<storage::SubscriptionRow> rows;
  SY_RETURN_IF_ERROR(store_.Read([&](storage::Transaction& tx) -> absl::Status {
    if (!tenant_id.empty()) {
      SY_ASSIGN_OR_RETURN(std::optional<storage::TenantRow> tenant, tx.GetTenant(tenant_id));
      if (!tenant.has_value() || tenant->deleted) {
        return NotFound("TENANT_NOT_FOUND", absl::StrCat(req.parent(), " does not exist"));
      }
    }
    SY_ASSIGN_OR_RETURN(rows, tx.ListSubscriptions(tenant_id, after, page_size + 1));
    return absl::OkStatus();
  }));
  v1::ListSubscriptionsResponse response;
  for (int i = 0; i < static_cast<int>(rows.size()) && i < page_size; ++i) {
    SY_ASSIGN_OR_RETURN(*response.add_subscriptions(), ToProto(rows[i]));
  }
  if (static_cast<int>(rows.size()) > page_size) {
    response.set_next_page_token(EncodePageToken(token_scope, rows[page_size - 1].id));
  }
  return response;
}

absl::Status SubscriptionManager::Delete(absl::string_view name, const Scope& scope) {
  SY_ASSIGN_OR_RETURN(SubscriptionKey key, ParseSubscriptionName("name", name));
  if (!key.VisibleTo(scope)) return Missing(name);
  SY_RETURN_IF_ERROR(store_.Write([&](storage::Transaction& tx) -> absl::Status {
    SY_ASSIGN_OR_RETURN(std::optional<storage::SubscriptionRow> row,
                        tx.GetSubscription(key.tenant_id, key.id));
    if (!row.has_value()) return Missing(name);
    return tx.DeleteSubscription(key.tenant_id, key.id);
  }));
  moved_(key.Name());
  return absl::OkStatus();
}

absl::StatusOr<v1::SeekSubscriptionResponse> SubscriptionManager::Seek(
    const v1::SeekSubscriptionRequest& req, const Scope& scope) {
  SY_ASSIGN_OR_RETURN(SubscriptionKey key,
                      ParseSubscriptionName("subscription", req.subscription()));
  if (!key.VisibleTo(scope)) return Missing(req.subscription());
  std::vector<std::string> connection;
  switch (req.target_case()) {
    case v1::SeekSubscriptionRequest::kTime:
      break;
    case v1::SeekSubscriptionRequest::kPosition: {
      SY_ASSIGN_OR_RETURN(connection, ParseName("position.connection", req.position().connection(),
                                                {"tenants", "connections"}));
      if (req.position().after_sequence() < 0) {
        return InvalidArgument("INVALID_SEQUENCE", "after_sequence must not be negative");
      }
      break;
    }
    default:
      return InvalidArgument("INVALID_SEEK_TARGET", "seek to a time or to a connection position");
  }
  SY_RETURN_IF_ERROR(settle_());
  auto connection_missing = [&] {
    return NotFound("CONNECTION_NOT_FOUND",
                    absl::StrCat(req.position().connection(), " does not exist"));
  };
  SY_RETURN_IF_ERROR(store_.Write([&](storage::Transaction& tx) -> absl::Status {
    SY_ASSIGN_OR_RETURN(std::optional<storage::SubscriptionRow> row,
                        tx.GetSubscription(key.tenant_id, key.id));
    if (!row.has_value()) return Missing(req.subscription());
    if (req.target_case() == v1::SeekSubscriptionRequest::kTime) {
      SY_ASSIGN_OR_RETURN(int64_t first, tx.FirstEventPositionAt(FromProto(req.time())));
      if (first > 0) {
        row->start_position = first - 1;
      } else {
        SY_ASSIGN_OR_RETURN(row->start_position, tx.LastEventPosition());
      }
      SY_RETURN_IF_ERROR(tx.DeleteSubscriptionCursors(key.tenant_id, key.id));
    } else {
      if (!key.tenant_id.empty() && connection[0] != key.tenant_id) return connection_missing();
      SY_ASSIGN_OR_RETURN(std::optional<int> state,
                          tx.GetConnectionState(connection[0], connection[1]));
      if (!state.has_value()) return connection_missing();
      SY_RETURN_IF_ERROR(tx.PutSubscriptionCursor(
          {key.tenant_id, key.id, connection[0], connection[1], req.position().after_sequence()}));
    }
    // Attempt counts start over with the replay.
    SY_RETURN_IF_ERROR(tx.DeleteAllDeliveryAttempts(key.tenant_id, key.id));
    ++row->generation;
    return tx.UpdateSubscription(*row);
  }));
  moved_(key.Name());
  return v1::SeekSubscriptionResponse();
}

absl::StatusOr<v1::ListDeadLettersResponse> SubscriptionManager::ListDeadLetters(
    const v1::ListDeadLettersRequest& req, const Scope& scope) {
  SY_ASSIGN_OR_RETURN(SubscriptionKey key,
                      ParseSubscriptionName("subscription", req.subscription()));
  if (!key.VisibleTo(scope)) return Missing(req.subscription());
  SY_ASSIGN_OR_RETURN(int page_size, NormalizePageSize(req.page_size()));
  const std::string token_scope = absl::StrCat("deadLetters:", req.subscription());
  SY_ASSIGN_OR_RETURN(std::string after_text, DecodePageToken(req.page_token(), token_scope));
  int64_t after = 0;
  if (!after_text.empty() && !absl::SimpleAtoi(after_text, &after)) {
    return InvalidArgument("INVALID_PAGE_TOKEN", "page_token is malformed");
  }
  v1::ListDeadLettersResponse response;
  SY_RETURN_IF_ERROR(store_.Read([&](storage::Transaction& tx) -> absl::Status {
    response.Clear();
    SY_ASSIGN_OR_RETURN(std::optional<storage::SubscriptionRow> row,
                        tx.GetSubscription(key.tenant_id, key.id));
    if (!row.has_value()) return Missing(req.subscription());
    SY_ASSIGN_OR_RETURN(std::vector<storage::DeadLetterRow> rows,
                        tx.ListDeadLetters(key.tenant_id, key.id, after, page_size + 1, false));
    // A page stays one message a client can receive: it ends early once its
    // events hold kMaxMessageEventBytes.
    size_t bytes = 0;
    int taken = 0;
    for (int i = 0; i < static_cast<int>(rows.size()) && i < page_size; ++i) {
      const storage::DeadLetterRow& d = rows[i];
      v1::DeadLetter letter;
      SY_ASSIGN_OR_RETURN(std::optional<storage::EventRow> event,
                          tx.GetEvent(d.tenant_id, d.connection_id, d.sequence));
      if (event.has_value()) {
        *letter.mutable_event() = events::EventLog::ToProto(*event);
      } else {  // past retention: the name remains
        letter.mutable_event()->set_name(absl::StrCat("tenants/", d.tenant_id, "/connections/",
                                                      d.connection_id, "/events/", d.sequence));
        letter.mutable_event()->set_sequence(d.sequence);
      }
      letter.set_delivery_attempts(d.attempts);
      switchyard::ToProto(d.dead_time, letter.mutable_dead_time());
      letter.set_replaying(d.replaying);
      // The first one goes whatever its size; a later one that would take
      // the page past the cap waits for the next page.
      const size_t size = letter.ByteSizeLong() + 8;
      if (taken > 0 && bytes + size > kMaxMessageEventBytes) break;
      bytes += size;
      *response.add_dead_letters() = std::move(letter);
      ++taken;
    }
    if (static_cast<int>(rows.size()) > taken) {
      response.set_next_page_token(
          EncodePageToken(token_scope, absl::StrCat(rows[taken - 1].position)));
    }
    return absl::OkStatus();
  }));
  return response;
}

absl::StatusOr<v1::ReplayDeadLettersResponse> SubscriptionManager::ReplayDeadLetters(
    const v1::ReplayDeadLettersRequest& req, const Scope& scope) {
  SY_ASSIGN_OR_RETURN(SubscriptionKey key,
                      ParseSubscriptionName("subscription", req.subscription()));
  if (!key.VisibleTo(scope)) return Missing(req.subscription());
  std::vector<std::string> connection;
  if (!req.connection().empty()) {
    SY_ASSIGN_OR_RETURN(connection,
                        ParseName("connection", req.connection(), {"tenants", "connections"}));
  }
  v1::ReplayDeadLettersResponse response;
  SY_RETURN_IF_ERROR(store_.Write([&](storage::Transaction& tx) -> absl::Status {
    response.Clear();
    SY_ASSIGN_OR_RETURN(std::optional<storage::SubscriptionRow> row,
                        tx.GetSubscription(key.tenant_id, key.id));
    if (!row.has_value()) return Missing(req.subscription());
    int64_t after = 0;
    while (response.replayed() < kMaxReplay) {
      SY_ASSIGN_OR_RETURN(std::vector<storage::DeadLetterRow> rows,
                          tx.ListDeadLetters(key.tenant_id, key.id, after, 1000, false));
      for (storage::DeadLetterRow& d : rows) {
        after = d.position;
        if (d.replaying || response.replayed() >= kMaxReplay) continue;
        if (!connection.empty() &&
            (d.tenant_id != connection[0] || d.connection_id != connection[1])) {
          continue;
        }
        d.replaying = true;
        SY_RETURN_IF_ERROR(tx.PutDeadLetter(d));
        response.set_replayed(response.replayed() + 1);
      }
      if (rows.size() < 1000) break;
    }
    return absl::OkStatus();
  }));
  if (response.replayed() > 0) replayed_(key.Name());
  return response;
}

}  // namespace switchyard::delivery
