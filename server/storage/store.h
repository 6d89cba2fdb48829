#ifndef SWITCHYARD_SERVER_STORAGE_STORE_H_
#define SWITCHYARD_SERVER_STORAGE_STORE_H_

// The store interface: rows of the gateway's durable state and transactions
// over them. Domain code decides what to write; a store only reads and writes
// rows atomically. Implementations: SqliteStore (embedded, one replica) and,
// later, a PostgreSQL store for several replicas.
//
// Enum-valued columns (states, kinds, deployments) hold the numeric values of
// the matching switchyard.v1 enums; the store does not interpret them.
// Times are absl::Time; absl::InfinitePast() means "unset".

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace switchyard::storage {

struct PoolRow {
  std::string id;
  std::string display_name;
  int64_t capacity = 0;
  int64_t reserved = 0;
  int64_t consumed = 0;
  absl::Time create_time = absl::InfinitePast();
  absl::Time update_time = absl::InfinitePast();
};

struct TenantRow {
  std::string id;
  std::string display_name;
  std::string pool_id;
  int64_t credit_limit = 0;  // 0: no limit
  int64_t reserved = 0;
  int64_t consumed = 0;
  int64_t connection_count = 0;  // connections not disconnected
  bool deleted = false;
  absl::Time create_time = absl::InfinitePast();
  absl::Time update_time = absl::InfinitePast();
};

struct ReservationRow {
  std::string tenant_id;
  std::string id;
  std::string pool_id;
  int64_t amount = 0;
  int state = 0;
  absl::Time expire_time = absl::InfinitePast();
  absl::Time create_time = absl::InfinitePast();
  absl::Time resolve_time = absl::InfinitePast();
  std::string connection_id;  // bound connection, or empty
};

struct ConnectionRow {
  std::string tenant_id;
  std::string id;
  std::string system_id;
  int deployment = 0;
  std::string display_name;
  std::map<std::string, std::string> metadata;
  int state = 0;
  int64_t credits = 0;
  std::string pool_id;
  std::string reservation_id;
  absl::Time create_time = absl::InfinitePast();
  absl::Time update_time = absl::InfinitePast();
  absl::Time disconnect_time = absl::InfinitePast();
};

struct JournalRow {
  int64_t sequence = 0;  // assigned by AppendJournal
  int kind = 0;
  int64_t amount = 0;
  absl::Time time = absl::InfinitePast();
  std::string pool_id;
  std::string tenant_id;
  std::string connection_id;
  std::string reservation_id;
  std::string request_id;
  int64_t capacity_after = 0;
  int64_t reserved_after = 0;
  int64_t consumed_after = 0;
};

// A record of a create call made with a request_id.
struct IdempotencyRow {
  std::string key;          // method, parent and request_id
  std::string fingerprint;  // of the call's parameters
  std::string response;     // the serialized response of the first call
  absl::Time create_time = absl::InfinitePast();
};

// A data key wrapped by a master key. `owner` is a tenant id, or a name
// starting with '$' for the gateway's own keys.
struct DataKeyRow {
  std::string owner;
  int64_t version = 0;
  std::string master_key_id;
  std::string wrapped;
  absl::Time create_time = absl::InfinitePast();
};

// An API credential: operator key, tenant key or connection token. Only a
// keyed hash of the token is stored.
struct ApiKeyRow {
  std::string id;
  int kind = 0;               // auth::TokenKind
  std::string tenant_id;      // tenant and connection keys
  std::string connection_id;  // connection tokens
  std::string hash;           // HMAC-SHA256 of the token
  std::string hint;           // last four characters
  std::string display_name;
  int64_t rights = 0;  // bit set of auth rights
  int state = 0;       // v1::ApiKey::State
  absl::Time create_time = absl::InfinitePast();
  absl::Time expire_time = absl::InfinitePast();  // unset: never
  absl::Time last_used_time = absl::InfinitePast();
  absl::Time revoke_time = absl::InfinitePast();
  std::string superseded_by;  // id of the key that replaced it by rotation
};

// Encrypted credentials of one connection.
struct CredentialsRow {
  std::string tenant_id;
  std::string connection_id;
  int64_t key_version = 0;  // tenant data key that sealed `sealed`
  std::string sealed;       // AES-256-GCM, bound to tenant, connection, version
  std::string summary;      // serialized non-secret view
  absl::Time update_time = absl::InfinitePast();
};

// One event of a connection: a webhook, a published event or one of the
// gateway's own. `sequence` orders the events of one connection.
struct EventRow {
  // Order of storage across every connection; assigned by the store, never
  // reused.
  int64_t position = 0;
  std::string tenant_id;
  std::string connection_id;
  int64_t sequence = 0;
  std::string event_id;  // webhook-id or producer id; unique per connection
  std::string type;
  int source = 0;  // v1::Event::Source
  absl::Time source_time = absl::InfinitePast();
  absl::Time receive_time = absl::InfinitePast();
  std::string content_type;
  std::string body;
};

// A webhook signing secret of a connection, sealed like credentials.
struct WebhookSecretRow {
  std::string tenant_id;
  std::string connection_id;
  int64_t version = 0;
  int64_t key_version = 0;  // tenant data key that sealed `sealed`
  std::string sealed;
  absl::Time create_time = absl::InfinitePast();
  absl::Time expire_time = absl::InfinitePast();  // unset: until rotated
};

// A subscription. `config` is its serialized v1::Subscription (filter,
// deadline, attempts, ordering); the store does not interpret it.
struct SubscriptionRow {
  std::string tenant_id;  // empty: an operator subscription (every tenant)
  std::string id;
  std::string config;
  // Connections without a cursor start at their first event stored with a
  // greater position.
  int64_t start_position = 0;
  // Changes with every seek, so that writes prepared before one are dropped.
  int64_t generation = 0;
  absl::Time create_time = absl::InfinitePast();
};

// How far a subscription has got in one connection's events: every event up
// to `resolved_through` is acknowledged, dead-lettered or filtered out.
struct SubscriptionCursorRow {
  std::string subscription_tenant_id;
  std::string subscription_id;
  std::string tenant_id;
  std::string connection_id;
  int64_t resolved_through = 0;
};

// An event that ran out of delivery attempts on a subscription.
struct DeadLetterRow {
  std::string subscription_tenant_id;
  std::string subscription_id;
  int64_t position = 0;  // of the event
  std::string tenant_id;
  std::string connection_id;
  int64_t sequence = 0;
  int attempts = 0;
  absl::Time dead_time = absl::InfinitePast();
  bool replaying = false;  // being delivered again
};

// How often a subscription has delivered one event that is not resolved
// yet (above its connection's cursor), kept once the event is taken back
// (deadline passed, nack, stream ended), so that attempt numbers go on
// increasing and the maximum holds across restarts and replicas.
struct DeliveryAttemptRow {
  std::string subscription_tenant_id;
  std::string subscription_id;
  std::string tenant_id;
  std::string connection_id;
  int64_t sequence = 0;
  int attempts = 0;  // deliveries so far: the last attempt number used
  int free = 0;      // of those, the ones that used up no attempt
};

// Which replica delivers one connection's events to a subscription, until
// when. A replica delivers a connection only while it holds its lease, so
// that streams on several replicas share a subscription's work with each
// connection's events in order.
struct DeliveryLeaseRow {
  std::string subscription_tenant_id;
  std::string subscription_id;
  std::string tenant_id;
  std::string connection_id;
  std::string holder;  // the replica
  absl::Time expire_time = absl::InfinitePast();
};

// A replica with streams on a subscription, until when (renewed with its
// leases): the replicas present share the connections evenly.
struct DeliveryMemberRow {
  std::string subscription_tenant_id;
  std::string subscription_id;
  std::string holder;
  absl::Time expire_time = absl::InfinitePast();
};

// The health check of a connection and what it found.
struct ConnectionHealthRow {
  std::string tenant_id;
  std::string connection_id;
  std::string url;
  int64_t interval_ms = 0;
  int64_t timeout_ms = 0;
  int expected_status = 0;
  int state = 0;  // v1::ConnectionHealth::State
  absl::Time state_change_time = absl::InfinitePast();
  absl::Time last_check_time = absl::InfinitePast();
  std::string last_result;
  int consecutive_failures = 0;
  int consecutive_successes = 0;
};

// A connection's change feed and where polling got to.
struct ChangeFeedRow {
  std::string tenant_id;
  std::string connection_id;
  std::string url;
  int64_t interval_ms = 0;
  int mode = 0;  // v1::ChangeFeed::Mode
  int64_t silence_ms = 0;
  std::string cursor;
  absl::Time last_poll_time = absl::InfinitePast();
  std::string last_result;
  int64_t events_stored = 0;
};

// An incident. `notes` is a serialized v1::Incident holding only its notes.
struct IncidentRow {
  int64_t id = 0;  // assigned by InsertIncident
  std::string title;
  std::string component;
  int severity = 0;  // v1::Incident::Severity
  int state = 0;     // v1::Incident::State
  absl::Time start_time = absl::InfinitePast();
  absl::Time end_time = absl::InfinitePast();
  bool automatic = false;
  std::string notes;
};

// Outcome of one SweepEvents call.
struct EventSweep {
  int64_t deleted = 0;
  int64_t next_position = 0;  // resume the sweep after this position
  bool done = false;          // reached events received at or after the cutoff
};

// Filters for ListConnections; empty / 0 means "any".
struct ConnectionFilter {
  std::string system_id;
  int state = 0;
};

// Reads and writes inside one transaction. Not thread-safe: a transaction
// belongs to the thread running the function given to Store::Write/Read.
// Get* return std::nullopt when the row does not exist. Errors are storage
// failures (kUnavailable, kInternal, kDataLoss) except where noted.
// List* return rows ordered by key, strictly after `after` (empty: from the
// start), at most `limit` rows.
class Transaction {
 public:
  virtual ~Transaction() = default;

  virtual absl::StatusOr<std::optional<PoolRow>> GetPool(absl::string_view id) = 0;
  virtual absl::StatusOr<std::vector<PoolRow>> ListPools(absl::string_view after, int limit) = 0;
  // kAlreadyExists when the id is taken.
  virtual absl::Status InsertPool(const PoolRow& row) = 0;
  virtual absl::Status UpdatePool(const PoolRow& row) = 0;

  virtual absl::StatusOr<std::optional<TenantRow>> GetTenant(absl::string_view id) = 0;
  // Lists tenants that are not deleted.
  virtual absl::StatusOr<std::vector<TenantRow>> ListTenants(absl::string_view after,
                                                             int limit) = 0;
  // kAlreadyExists when the id is taken (also by a deleted tenant).
  virtual absl::Status InsertTenant(const TenantRow& row) = 0;
  virtual absl::Status UpdateTenant(const TenantRow& row) = 0;

  virtual absl::StatusOr<std::optional<ReservationRow>> GetReservation(absl::string_view tenant_id,
                                                                       absl::string_view id) = 0;
  // kAlreadyExists when (tenant_id, id) is taken.
  virtual absl::Status InsertReservation(const ReservationRow& row) = 0;
  virtual absl::Status UpdateReservation(const ReservationRow& row) = 0;
  // Reservations in `state` whose expire_time <= `now`, oldest expiry first.
  // `pool_id` empty means every pool.
  virtual absl::StatusOr<std::vector<ReservationRow>> ListReservationsExpiringBy(
      absl::string_view pool_id, int state, absl::Time now, int limit) = 0;
  // Reservations of a tenant in `state` (0: any), in id order.
  virtual absl::StatusOr<std::vector<ReservationRow>> ListReservations(absl::string_view tenant_id,
                                                                       int state,
                                                                       absl::string_view after,
                                                                       int limit) = 0;

  virtual absl::StatusOr<std::optional<ConnectionRow>> GetConnection(absl::string_view tenant_id,
                                                                     absl::string_view id) = 0;
  // The state of a connection without the rest of its row (hot paths).
  virtual absl::StatusOr<std::optional<int>> GetConnectionState(absl::string_view tenant_id,
                                                                absl::string_view id) = 0;
  // kAlreadyExists when (tenant_id, id) is taken.
  virtual absl::Status InsertConnection(const ConnectionRow& row) = 0;
  virtual absl::Status UpdateConnection(const ConnectionRow& row) = 0;
  virtual absl::StatusOr<std::vector<ConnectionRow>> ListConnections(absl::string_view tenant_id,
                                                                     const ConnectionFilter& filter,
                                                                     absl::string_view after,
                                                                     int limit) = 0;
  // Live (not disconnected) connections counted by system and health state
  // (0 when the connection has no health check).
  struct SystemHealthCount {
    std::string system_id;
    int health = 0;
    int64_t count = 0;
  };
  virtual absl::StatusOr<std::vector<SystemHealthCount>> CountLiveConnectionsBySystem() = 0;
  // How many connections of every tenant are in each state (v1 enum values).
  virtual absl::StatusOr<std::map<int, int64_t>> CountConnectionsByState() = 0;

  // Appends `row` (its sequence is ignored) and returns the sequence given to
  // it; sequences increase with every append.
  virtual absl::StatusOr<int64_t> AppendJournal(const JournalRow& row) = 0;
  // Entries of `pool_id` with sequence > `after`; `tenant_id` empty means all.
  virtual absl::StatusOr<std::vector<JournalRow>> ListJournal(absl::string_view pool_id,
                                                              absl::string_view tenant_id,
                                                              int64_t after, int limit) = 0;

  // Data keys of `owner`, oldest version first.
  virtual absl::StatusOr<std::vector<DataKeyRow>> ListDataKeys(absl::string_view owner) = 0;
  // Data keys not wrapped by master key `master_key_id`, at most `limit`.
  virtual absl::StatusOr<std::vector<DataKeyRow>> ListDataKeysNotWrappedBy(
      absl::string_view master_key_id, int limit) = 0;
  // kAlreadyExists when (owner, version) is taken.
  virtual absl::Status InsertDataKey(const DataKeyRow& row) = 0;
  virtual absl::Status UpdateDataKey(const DataKeyRow& row) = 0;
  // Deletes the data keys of `owner` with version < `below_version`.
  virtual absl::Status DeleteDataKeys(absl::string_view owner, int64_t below_version) = 0;

  virtual absl::StatusOr<std::optional<ApiKeyRow>> GetApiKey(absl::string_view id) = 0;
  virtual absl::StatusOr<std::optional<ApiKeyRow>> GetApiKeyByHash(absl::string_view hash) = 0;
  virtual absl::Status InsertApiKey(const ApiKeyRow& row) = 0;
  virtual absl::Status UpdateApiKey(const ApiKeyRow& row) = 0;
  // Keys of `kind` (0: any) for `tenant_id` (empty: any) and, when
  // `tenant_id` is set, `connection_id` (empty: any), in id order.
  virtual absl::StatusOr<std::vector<ApiKeyRow>> ListApiKeys(int kind, absl::string_view tenant_id,
                                                             absl::string_view connection_id,
                                                             absl::string_view after,
                                                             int limit) = 0;

  virtual absl::StatusOr<std::optional<CredentialsRow>> GetCredentials(
      absl::string_view tenant_id, absl::string_view connection_id) = 0;
  // Inserts or replaces.
  virtual absl::Status PutCredentials(const CredentialsRow& row) = 0;
  virtual absl::Status DeleteCredentials(absl::string_view tenant_id,
                                         absl::string_view connection_id) = 0;
  // Credentials of `tenant_id` in connection id order.
  virtual absl::StatusOr<std::vector<CredentialsRow>> ListCredentials(absl::string_view tenant_id,
                                                                      absl::string_view after,
                                                                      int limit) = 0;

  // The event of a connection with `event_id`, if stored.
  virtual absl::StatusOr<std::optional<EventRow>> GetEventById(absl::string_view tenant_id,
                                                               absl::string_view connection_id,
                                                               absl::string_view event_id) = 0;
  // The highest sequence of a connection's events; 0 when it has none.
  virtual absl::StatusOr<int64_t> LastEventSequence(absl::string_view tenant_id,
                                                    absl::string_view connection_id) = 0;
  // kAlreadyExists when the sequence or the event id is taken; on PostgreSQL,
  // where that means a concurrent writer stored an event of the connection,
  // kAborted (STORE_CONFLICT), and the transaction runs again.
  virtual absl::Status InsertEvent(const EventRow& row) = 0;
  // Events of a connection with sequence > `after`, in sequence order.
  virtual absl::StatusOr<std::vector<EventRow>> ListEvents(absl::string_view tenant_id,
                                                           absl::string_view connection_id,
                                                           int64_t after, int limit) = 0;

  // The event of a connection with `sequence`, if stored.
  virtual absl::StatusOr<std::optional<EventRow>> GetEvent(absl::string_view tenant_id,
                                                           absl::string_view connection_id,
                                                           int64_t sequence) = 0;
  // The lowest sequence of a connection's events stored after `position`;
  // 0 when there is none.
  virtual absl::StatusOr<int64_t> FirstEventSequenceAfter(absl::string_view tenant_id,
                                                          absl::string_view connection_id,
                                                          int64_t position) = 0;
  // The highest position of any event; 0 when there are none.
  virtual absl::StatusOr<int64_t> LastEventPosition() = 0;
  // The lowest position of an event received at or after `time`; 0 when none.
  virtual absl::StatusOr<int64_t> FirstEventPositionAt(absl::Time time) = 0;
  // Deletes events received before `cutoff`, oldest position first, after
  // `after_position`, at most `limit`, keeping the newest event of each
  // connection (its sequence numbers continue from it).
  virtual absl::StatusOr<EventSweep> SweepEvents(absl::Time cutoff, int64_t after_position,
                                                 int limit) = 0;

  virtual absl::StatusOr<std::optional<SubscriptionRow>> GetSubscription(
      absl::string_view tenant_id, absl::string_view id) = 0;
  // kAlreadyExists when (tenant_id, id) is taken.
  virtual absl::Status InsertSubscription(const SubscriptionRow& row) = 0;
  virtual absl::Status UpdateSubscription(const SubscriptionRow& row) = 0;
  // Deletes the subscription with its cursors, dead letters, leases,
  // members and delivery attempts.
  virtual absl::Status DeleteSubscription(absl::string_view tenant_id, absl::string_view id) = 0;
  virtual absl::StatusOr<std::vector<SubscriptionRow>> ListSubscriptions(
      absl::string_view tenant_id, absl::string_view after, int limit) = 0;
  virtual absl::StatusOr<std::vector<SubscriptionCursorRow>> ListSubscriptionCursors(
      absl::string_view subscription_tenant_id, absl::string_view subscription_id) = 0;
  // Inserts or replaces.
  virtual absl::Status PutSubscriptionCursor(const SubscriptionCursorRow& row) = 0;
  virtual absl::Status DeleteSubscriptionCursors(absl::string_view subscription_tenant_id,
                                                 absl::string_view subscription_id) = 0;
  // Every delivery attempt count of the subscription, by tenant, connection
  // and sequence.
  virtual absl::StatusOr<std::vector<DeliveryAttemptRow>> ListDeliveryAttempts(
      absl::string_view subscription_tenant_id, absl::string_view subscription_id) = 0;
  // Inserts or replaces.
  virtual absl::Status PutDeliveryAttempt(const DeliveryAttemptRow& row) = 0;
  // Deletes the counts of one connection's events up to `through`.
  virtual absl::Status DeleteDeliveryAttempts(absl::string_view subscription_tenant_id,
                                              absl::string_view subscription_id,
                                              absl::string_view tenant_id,
                                              absl::string_view connection_id, int64_t through) = 0;
  // Deletes every count of the subscription (a seek starts them over).
  virtual absl::Status DeleteAllDeliveryAttempts(absl::string_view subscription_tenant_id,
                                                 absl::string_view subscription_id) = 0;
  // Inserts or replaces.
  virtual absl::Status PutDeadLetter(const DeadLetterRow& row) = 0;
  virtual absl::Status DeleteDeadLetter(absl::string_view subscription_tenant_id,
                                        absl::string_view subscription_id, int64_t position) = 0;
  // Dead letters with position > `after`, in position order; `replaying_only`
  // lists only those being replayed.
  virtual absl::StatusOr<std::vector<DeadLetterRow>> ListDeadLetters(
      absl::string_view subscription_tenant_id, absl::string_view subscription_id, int64_t after,
      int limit, bool replaying_only) = 0;

  // The delivery leases of a subscription, by tenant and connection.
  virtual absl::StatusOr<std::vector<DeliveryLeaseRow>> ListDeliveryLeases(
      absl::string_view subscription_tenant_id, absl::string_view subscription_id) = 0;
  // Inserts or replaces.
  virtual absl::Status PutDeliveryLease(const DeliveryLeaseRow& row) = 0;
  // Deletes the lease of one connection if `holder` holds it.
  virtual absl::Status DeleteDeliveryLease(absl::string_view subscription_tenant_id,
                                           absl::string_view subscription_id,
                                           absl::string_view tenant_id,
                                           absl::string_view connection_id,
                                           absl::string_view holder) = 0;
  // The holder of one connection's lease ("" when none), expired or not.
  virtual absl::StatusOr<std::string> DeliveryLeaseHolder(absl::string_view subscription_tenant_id,
                                                          absl::string_view subscription_id,
                                                          absl::string_view tenant_id,
                                                          absl::string_view connection_id) = 0;
  virtual absl::StatusOr<std::vector<DeliveryMemberRow>> ListDeliveryMembers(
      absl::string_view subscription_tenant_id, absl::string_view subscription_id) = 0;
  // Inserts or replaces.
  virtual absl::Status PutDeliveryMember(const DeliveryMemberRow& row) = 0;
  // Deletes `holder`'s membership and every lease it holds on the
  // subscription.
  virtual absl::Status LeaveDelivery(absl::string_view subscription_tenant_id,
                                     absl::string_view subscription_id,
                                     absl::string_view holder) = 0;

  virtual absl::StatusOr<std::optional<ConnectionHealthRow>> GetConnectionHealth(
      absl::string_view tenant_id, absl::string_view connection_id) = 0;
  // Inserts or replaces.
  virtual absl::Status PutConnectionHealth(const ConnectionHealthRow& row) = 0;
  virtual absl::Status DeleteConnectionHealth(absl::string_view tenant_id,
                                              absl::string_view connection_id) = 0;
  // Every connection's health row.
  virtual absl::StatusOr<std::vector<ConnectionHealthRow>> ListConnectionHealth() = 0;

  virtual absl::StatusOr<std::optional<ChangeFeedRow>> GetChangeFeed(
      absl::string_view tenant_id, absl::string_view connection_id) = 0;
  // Inserts or replaces.
  virtual absl::Status PutChangeFeed(const ChangeFeedRow& row) = 0;
  virtual absl::Status DeleteChangeFeed(absl::string_view tenant_id,
                                        absl::string_view connection_id) = 0;
  virtual absl::StatusOr<std::vector<ChangeFeedRow>> ListChangeFeeds() = 0;
  // When the newest event of `source` of a connection was received;
  // InfinitePast when there is none.
  virtual absl::StatusOr<absl::Time> LastEventReceiveTime(absl::string_view tenant_id,
                                                          absl::string_view connection_id,
                                                          int source) = 0;

  // Returns the id given to the incident.
  virtual absl::StatusOr<int64_t> InsertIncident(const IncidentRow& row) = 0;
  virtual absl::Status UpdateIncident(const IncidentRow& row) = 0;
  virtual absl::StatusOr<std::optional<IncidentRow>> GetIncident(int64_t id) = 0;
  // Incidents in `state` (0: any) with id < `before` (0: from the newest),
  // newest first.
  virtual absl::StatusOr<std::vector<IncidentRow>> ListIncidents(int state, int64_t before,
                                                                 int limit) = 0;
  // The open incident of `component`, if any.
  virtual absl::StatusOr<std::optional<IncidentRow>> FindOpenIncident(
      absl::string_view component) = 0;

  // A connection's webhook secrets, oldest version first.
  virtual absl::StatusOr<std::vector<WebhookSecretRow>> ListWebhookSecrets(
      absl::string_view tenant_id, absl::string_view connection_id) = 0;
  // Inserts or replaces.
  virtual absl::Status PutWebhookSecret(const WebhookSecretRow& row) = 0;
  virtual absl::Status DeleteWebhookSecrets(absl::string_view tenant_id,
                                            absl::string_view connection_id) = 0;

  virtual absl::StatusOr<std::optional<IdempotencyRow>> GetIdempotency(absl::string_view key) = 0;
  virtual absl::Status PutIdempotency(const IdempotencyRow& row) = 0;
  // Deletes records created before `cutoff`; returns how many.
  virtual absl::StatusOr<int64_t> DeleteIdempotencyBefore(absl::Time cutoff) = 0;

  // Tells the other replicas, once this transaction commits, that `id` of
  // `topic` changed (for example a revoked API key), so that they drop what
  // they cached of it. Does nothing when there are no other replicas (the
  // embedded store) or when the transaction does not commit.
  virtual void AnnounceChange(absl::string_view topic, absl::string_view id) = 0;
};

// Events made durable by one commit: the last sequence of one connection.
struct EventNotice {
  std::string tenant_id;
  std::string connection_id;
  int64_t sequence = 0;
};

// A change announced by a transaction of another replica (AnnounceChange).
struct ChangeNotice {
  std::string topic;
  std::string id;
};

// The topic of a ChangeNotice telling that announcements may have been
// missed (the replica's listening connection was down): listeners drop
// everything they cached.
inline constexpr absl::string_view kEverythingChanged = "*";

// Told about changes other replicas announced.
class ChangeListener {
 public:
  virtual ~ChangeListener() = default;
  // Called on a store thread: must be quick and must not wait for the store.
  virtual void ChangesAnnounced(const std::vector<ChangeNotice>& changes) = 0;
};

// A listener that hands every change to each of `listeners` (borrowed; they
// must outlive it).
std::unique_ptr<ChangeListener> FanOut(std::vector<ChangeListener*> listeners);

// Told about committed events, so consumers need not poll the store.
class CommitListener {
 public:
  virtual ~CommitListener() = default;
  // Called after a commit that inserted events, with one notice per
  // connection, on a store thread: must be quick and must not wait for the
  // store.
  virtual void EventsCommitted(const std::vector<EventNotice>& notices) = 0;
};

// A transactional store. Thread-safe.
class Store {
 public:
  virtual ~Store() = default;

  // Registers the listener of committed events (nullptr: none). Borrowed: it
  // must outlive the store or be unregistered first.
  virtual void SetCommitListener(CommitListener* listener) = 0;
  // Registers the listener of changes announced by other replicas (nullptr:
  // none); borrowed like the commit listener.
  virtual void SetChangeListener(ChangeListener* listener) = 0;
  // Whether other replicas may share the store (and announce changes):
  // false for the embedded store.
  virtual bool Shared() const = 0;

  // Runs `fn` in a read-write transaction. When `fn` returns OK its writes are
  // committed and durable before Write returns OK; when `fn` fails none of its
  // writes persist and its status is returned. A storage failure returns
  // kUnavailable (retryable), kAborted (STORE_CONFLICT: concurrent writers kept
  // conflicting; retryable), kInvalidArgument (TEXT_NOT_STORABLE: text the
  // database cannot hold) or kInternal. `fn` may run on another thread while
  // the caller waits; it must not call back into the store. `fn` may run more
  // than once (a transaction that lost a conflict runs again): it must act
  // only through the transaction and set its results anew on every run.
  virtual absl::Status Write(absl::FunctionRef<absl::Status(Transaction&)> fn) = 0;

  // Write without waiting: runs `fn` as Write does and then calls `done`
  // exactly once with the outcome, after the commit made its writes durable.
  // `done` runs on a store thread: it must be quick and must not wait for the
  // store; handing its result to another executor is the intended use.
  //
  // Writes with the same `fairness_key` run in the order submitted. When more
  // writes wait than one commit takes, keys take turns (one write each per
  // round), so that one busy key (a noisy connection) cannot hold back the
  // others. Write() uses the key "".
  virtual void WriteAsync(std::function<absl::Status(Transaction&)> fn,
                          std::function<void(absl::Status)> done,
                          absl::string_view fairness_key) = 0;

  // Runs `fn` in a read-only transaction that sees one consistent snapshot.
  // Writes inside it fail.
  virtual absl::Status Read(absl::FunctionRef<absl::Status(Transaction&)> fn) = 0;
};

}  // namespace switchyard::storage

#endif  // SWITCHYARD_SERVER_STORAGE_STORE_H_
