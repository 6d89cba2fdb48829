#include "server/webhooks/ingestor.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/common/status.h"
#include "server/events/event_log.h"
#include "server/webhooks/signature.h"
#include "switchyard/v1/gateway.pb.h"

namespace switchyard::webhooks {
namespace {

// Connections whose secrets are cached, at most.
constexpr size_t kMaxCachedKeys = 100000;
// URLs cached as naming no connection, at most.
constexpr size_t kMaxMissingKeys = 10000;
// Threads reading secrets; a connection's reads all go to one of them.
constexpr int kLoaders = 4;

// JSON only: application/json or application/<anything>+json, with
// parameters such as charset allowed.
bool IsJson(absl::string_view content_type) {
  std::string media(absl::StripAsciiWhitespace(content_type.substr(0, content_type.find(';'))));
  absl::AsciiStrToLower(&media);
  return media == "application/json" ||
         (absl::StartsWith(media, "application/") && absl::EndsWith(media, "+json"));
}

// UNAVAILABLE (BUSY): the sender should retry in a second.
absl::Status Busy(absl::string_view message) {
  return WithMetadata(Error(absl::StatusCode::kUnavailable, "BUSY", message), "retry_after_seconds",
                      "1");
}

using Signers = std::vector<std::shared_ptr<const crypto::HmacSha256Signer>>;

// The signers of `keys` whose secrets have not expired at `now`: a secret
// rotated out stops verifying when its grace period ends, also while cached.
// Usually all of them (keys.signers, not copied); else those, in `scratch`.
const Signers& UnexpiredSigners(const vault::CredentialVault::WebhookKeys& keys, absl::Time now,
                                Signers& scratch) {
  const auto expired = [&](absl::Time t) { return t != absl::InfinitePast() && t <= now; };
  if (std::none_of(keys.expire_times.begin(), keys.expire_times.end(), expired)) {
    return keys.signers;
  }
  scratch.clear();
  for (size_t i = 0; i < keys.signers.size() && i < keys.expire_times.size(); ++i) {
    if (!expired(keys.expire_times[i])) scratch.push_back(keys.signers[i]);
  }
  return scratch;
}

}  // namespace

Ingestor::Ingestor(const IngestOptions& options, storage::Store& store,
                   vault::CredentialVault& vault, Clock& clock)
    : options_(options), store_(store), vault_(vault), clock_(clock) {
  for (int i = 0; i < kLoaders; ++i) {
    // Room for a read per cached connection: only a stopped loader refuses.
    loaders_.push_back(std::make_unique<WorkerThread>(kMaxCachedKeys));
  }
}

Ingestor::~Ingestor() { Shutdown(); }

void Ingestor::Count(const absl::StatusOr<IngestResult>& result) {
  const std::string outcome =
      result.ok() ? (result->duplicate ? "DUPLICATE" : "ACCEPTED") : ReasonOf(result.status());
  absl::MutexLock lock(&mu_);
  ++counters_[outcome];
}

void Ingestor::CountRefused(absl::string_view reason) {
  absl::MutexLock lock(&mu_);
  ++counters_[std::string(reason)];
}

absl::StatusOr<IngestResult> Ingestor::Ingest(const Webhook& webhook) {
  absl::StatusOr<IngestResult> result = [&]() -> absl::StatusOr<IngestResult> {
    SY_ASSIGN_OR_RETURN(std::optional<absl::Time> admitted, Admit(webhook, /*may_read=*/true));
    const absl::Time sent = *admitted;
    const absl::Time now = clock_.Now();
    Appended appended;
    SY_RETURN_IF_ERROR(store_.Write(
        [&](storage::Transaction& tx) { return Append(tx, webhook, sent, now, appended); }));
    SY_RETURN_IF_ERROR(appended.outcome);
    return appended.result;
  }();
  Count(result);
  return result;
}

void Ingestor::IngestAsync(Webhook webhook, Done done) {
  if (stopped_.load(std::memory_order_acquire)) {
    const absl::Status stopping =
        Error(absl::StatusCode::kUnavailable, "SHUTTING_DOWN", "the gateway is stopping");
    Count(stopping);
    return done(stopping);
  }
  auto shared = std::make_shared<const Webhook>(std::move(webhook));
  absl::StatusOr<std::optional<absl::Time>> admitted = Admit(*shared, /*may_read=*/false);
  if (admitted.ok() && !admitted->has_value()) return Park(std::move(shared), std::move(done));
  Store(std::move(shared), admitted, std::move(done));
}

void Ingestor::Park(std::shared_ptr<const Webhook> webhook, Done done) {
  const std::string key = absl::StrCat(webhook->tenant_id, "/", webhook->connection_id);
  absl::Status refused;
  bool start = false;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      refused = Error(absl::StatusCode::kUnavailable, "SHUTTING_DOWN", "the gateway is stopping");
    } else if (const bool known = keys_.contains(key);
               // A quarter of the room is kept for connections known to
               // exist, so that webhooks to made-up URLs cannot fill it.
               parked_count_ >= (known ? options_.max_waiting : options_.max_waiting / 4 * 3) ||
               parked_bytes_ + webhook->body.size() >
                   (known ? options_.max_waiting_bytes : options_.max_waiting_bytes / 4 * 3)) {
      refused = Busy("too many webhooks are waiting for their connection's secrets; retry");
    } else {
      auto [it, inserted] = loading_.try_emplace(key);
      start = inserted;
      ++parked_count_;
      parked_bytes_ += webhook->body.size();
      it->second.push_back(Parked{std::move(webhook), std::move(done)});
    }
  }
  if (!refused.ok()) return Store(std::move(webhook), refused, std::move(done));
  if (start) StartLoad(key);
}

void Ingestor::StartLoad(const std::string& key) {
  WorkerThread& loader = *loaders_[absl::HashOf(key) % loaders_.size()];
  if (loader.Post([this, key] { LoadAndRelease(key); })) return;
  // Only a stopped loader refuses: its queue has room for a read per cached
  // connection.
  LoadAndRelease(key, /*read=*/false);
}

void Ingestor::LoadAndRelease(const std::string& key, bool read) {
  const size_t slash = key.find('/');
  absl::Status loaded;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) read = false;
  }
  if (read) {
    loaded = Load(key, key.substr(0, slash), key.substr(slash + 1)).status();
  } else {
    loaded = Error(absl::StatusCode::kUnavailable, "SHUTTING_DOWN", "the gateway is stopping");
  }
  std::vector<Parked> waiting;
  {
    absl::MutexLock lock(&mu_);
    auto it = loading_.find(key);
    if (it != loading_.end()) {
      waiting = std::move(it->second);
      loading_.erase(it);
    }
    for (const Parked& parked : waiting) {
      --parked_count_;
      parked_bytes_ -= parked.webhook->body.size();
    }
  }
  // With the secrets cached, the checks now read nothing (unless they
  // changed meanwhile; this thread may read).
  for (Parked& parked : waiting) {
    Store(parked.webhook, loaded.ok() ? Admit(*parked.webhook, /*may_read=*/true) : loaded,
          std::move(parked.done));
  }
}

void Ingestor::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  stopped_.store(true, std::memory_order_release);
  // Their queued loads answer their webhooks without reading.
  for (auto& loader : loaders_) loader->Stop();
}

void Ingestor::Store(std::shared_ptr<const Webhook> webhook,
                     const absl::StatusOr<std::optional<absl::Time>>& admitted, Done done) {
  if (!admitted.ok()) {
    Count(admitted.status());
    done(admitted.status());
    return;
  }
  const absl::Time sent = **admitted;
  const absl::Time now = clock_.Now();
  // Bodies on their way to the store are bounded too: a store slower than
  // the senders (a database in trouble) answers BUSY rather than letting
  // them pile up.
  const int64_t size = static_cast<int64_t>(webhook->body.size());
  if (storing_bytes_.fetch_add(size) + size > static_cast<int64_t>(options_.max_storing_bytes) &&
      size > 0) {
    storing_bytes_.fetch_sub(size);
    const absl::Status busy = Busy("too many webhooks are being stored; retry");
    Count(busy);
    return done(busy);
  }
  auto appended = std::make_shared<Appended>();
  const std::string fairness_key = absl::StrCat(webhook->tenant_id, "/", webhook->connection_id);
  store_.WriteAsync(
      [this, webhook, appended, sent, now](storage::Transaction& tx) {
        return Append(tx, *webhook, sent, now, *appended);
      },
      [this, appended, size, done = std::move(done)](absl::Status status) {
        storing_bytes_.fetch_sub(size);
        absl::StatusOr<IngestResult> result = !status.ok() ? absl::StatusOr<IngestResult>(status)
                                              : !appended->outcome.ok()
                                                  ? absl::StatusOr<IngestResult>(appended->outcome)
                                                  : absl::StatusOr<IngestResult>(appended->result);
        Count(result);
        done(std::move(result));
      },
      // Connections take turns in the commit path.
      fairness_key);
}

std::map<std::string, int64_t> Ingestor::Counters() const {
  absl::MutexLock lock(&mu_);
  return counters_;
}

absl::StatusOr<std::shared_ptr<const vault::CredentialVault::WebhookKeys>> Ingestor::Keys(
    const std::string& key, const Webhook& webhook, bool refresh, bool may_read) {
  const absl::Time now = clock_.Now();
  const uint64_t generation = vault_.WebhookSecretVersion(webhook.tenant_id, webhook.connection_id);
  bool revalidate = false;
  std::shared_ptr<const vault::CredentialVault::WebhookKeys> stale;
  {
    absl::MutexLock lock(&mu_);
    const CachedKeys* entry = nullptr;
    if (auto it = keys_.find(key); it != keys_.end()) {
      entry = &it->second;
    } else if (auto m = missing_.find(key); m != missing_.end()) {
      entry = &m->second;
    }
    if (entry != nullptr && entry->generation == generation) {
      const absl::Duration age = now - entry->loaded_at;
      // A refresh after a mismatch is allowed once a second per connection,
      // so that forged webhooks cannot drive a read of the store each.
      if (age < (refresh ? absl::Seconds(1) : options_.secret_cache_ttl)) return entry->keys;
      if (!refresh && !may_read && !stopping_) {
        // Only old, not revoked (that changes the generation): used once
        // more while a load renews it in the background.
        stale = entry->keys;
        revalidate = loading_.try_emplace(key).second;
      }
    }
  }
  if (stale != nullptr) {
    if (revalidate) StartLoad(key);
    return stale;
  }
  if (!may_read) return nullptr;
  return Load(key, webhook.tenant_id, webhook.connection_id);
}

absl::StatusOr<std::shared_ptr<const vault::CredentialVault::WebhookKeys>> Ingestor::Load(
    const std::string& key, absl::string_view tenant_id, absl::string_view connection_id) {
  const absl::Time now = clock_.Now();
  // Read before the secrets: a change announced during the read makes the
  // entry stale at once.
  const uint64_t generation = vault_.WebhookSecretVersion(tenant_id, connection_id);
  SY_ASSIGN_OR_RETURN(vault::CredentialVault::WebhookKeys loaded,
                      vault_.LoadWebhookKeys(tenant_id, connection_id));
  auto shared = std::make_shared<const vault::CredentialVault::WebhookKeys>(std::move(loaded));
  absl::MutexLock lock(&mu_);
  if (!shared->found) {
    // URLs of no connection are cached apart, so that a stream of made-up
    // URLs cannot push real connections out of the cache.
    keys_.erase(key);
    if (missing_.size() >= kMaxMissingKeys && !missing_.contains(key)) missing_.clear();
    missing_[key] = CachedKeys{shared, now, generation};
    return shared;
  }
  missing_.erase(key);
  if (keys_.size() >= kMaxCachedKeys && !keys_.contains(key)) {
    // Bounded: first the stale entries go, then, until a tenth of it is
    // free, any. So a tenth of the cache fills before the next scan, and
    // most live entries stay.
    absl::erase_if(keys_, [&](const auto& entry) {
      return now - entry.second.loaded_at >= options_.secret_cache_ttl;
    });
    for (auto it = keys_.begin();
         it != keys_.end() && keys_.size() > kMaxCachedKeys - kMaxCachedKeys / 10;) {
      keys_.erase(it++);  // other iterators stay valid
    }
  }
  keys_[key] = CachedKeys{shared, now, generation};
  return shared;
}

absl::Status Ingestor::TakeToken(const std::string& key, absl::Time now) {
  absl::MutexLock lock(&mu_);
  Bucket& bucket = buckets_[key];
  if (bucket.updated == absl::InfinitePast()) {
    bucket.tokens = options_.burst;
  } else {
    const double elapsed = std::max(0.0, absl::ToDoubleSeconds(now - bucket.updated));
    bucket.tokens = std::min(options_.burst, bucket.tokens + elapsed * options_.rate_per_second);
  }
  bucket.updated = now;
  if (bucket.tokens >= 1) {
    bucket.tokens -= 1;
    return absl::OkStatus();
  }
  const double wait = (1 - bucket.tokens) / options_.rate_per_second;
  return WithMetadata(Error(absl::StatusCode::kResourceExhausted, "RATE_LIMITED",
                            "this connection sends webhooks faster than its rate limit"),
                      "retry_after_seconds",
                      absl::StrCat(static_cast<int64_t>(std::ceil(std::max(wait, 1.0)))));
}

absl::StatusOr<std::optional<absl::Time>> Ingestor::Admit(const Webhook& webhook, bool may_read) {
  if (webhook.body.size() > options_.max_body_bytes) {
    return Error(absl::StatusCode::kOutOfRange, "BODY_TOO_LARGE",
                 absl::StrCat("webhook bodies are limited to ", options_.max_body_bytes, " bytes"));
  }
  if (!IsJson(webhook.content_type)) {
    return InvalidArgument("UNSUPPORTED_CONTENT_TYPE",
                           "webhooks must be JSON (Content-Type: application/json)");
  }
  const std::string key = absl::StrCat(webhook.tenant_id, "/", webhook.connection_id);
  SY_ASSIGN_OR_RETURN(auto keys, Keys(key, webhook, /*refresh=*/false, may_read));
  if (keys == nullptr) return std::nullopt;  // to be read
  if (!keys->found) {
    return NotFound("UNKNOWN_CONNECTION", "no connection receives webhooks at this URL");
  }
  if (keys->disconnected) {
    return FailedPrecondition("CONNECTION_DISCONNECTED", "the connection is disconnected");
  }
  const absl::Time now = clock_.Now();
  const SignedRequest signed_request{webhook.id, webhook.timestamp, webhook.signature,
                                     webhook.body};
  Signers scratch;
  auto verify = [&](const vault::CredentialVault::WebhookKeys& k) {
    return Verify(UnexpiredSigners(k, now, scratch), signed_request, now, options_.tolerance);
  };
  absl::StatusOr<absl::Time> sent = verify(*keys);
  if (!sent.ok() && ReasonOf(sent.status()) == "SIGNATURE_MISMATCH") {
    // The secret may have been rotated since it was cached: read it again.
    SY_ASSIGN_OR_RETURN(auto fresh, Keys(key, webhook, /*refresh=*/true, may_read));
    if (fresh == nullptr) return std::nullopt;  // to be read
    keys = std::move(fresh);
    sent = verify(*keys);
  }
  if (!sent.ok() && keys->signers.empty() && absl::IsUnauthenticated(sent.status())) {
    return Error(absl::StatusCode::kUnauthenticated, "NO_SIGNING_SECRET",
                 "the connection has no webhook signing secret; rotate one first");
  }
  SY_RETURN_IF_ERROR(sent.status());
  SY_RETURN_IF_ERROR(TakeToken(key, now));
  {
    absl::MutexLock lock(&mu_);
    last_webhook_[key] = now;
  }
  return *sent;
}

absl::Time Ingestor::LastWebhookTime(absl::string_view tenant_id,
                                     absl::string_view connection_id) const {
  absl::MutexLock lock(&mu_);
  auto it = last_webhook_.find(absl::StrCat(tenant_id, "/", connection_id));
  return it == last_webhook_.end() ? absl::InfinitePast() : it->second;
}

absl::Status Ingestor::Append(storage::Transaction& tx, const Webhook& webhook, absl::Time sent,
                              absl::Time now, Appended& appended) {
  appended = Appended();  // the store may run this more than once
  // The connection's state is authoritative here, not in the cache.
  SY_ASSIGN_OR_RETURN(std::optional<int> state,
                      tx.GetConnectionState(webhook.tenant_id, webhook.connection_id));
  if (!state.has_value()) {
    appended.outcome =
        NotFound("UNKNOWN_CONNECTION", "no connection receives webhooks at this URL");
    return absl::OkStatus();
  }
  if (*state == v1::Connection::DISCONNECTED) {
    appended.outcome =
        FailedPrecondition("CONNECTION_DISCONNECTED", "the connection is disconnected");
    return absl::OkStatus();
  }
  storage::EventRow row;
  row.tenant_id = webhook.tenant_id;
  row.connection_id = webhook.connection_id;
  row.event_id = webhook.id;
  row.source = v1::Event::WEBHOOK;
  row.source_time = sent;
  row.receive_time = now;
  row.content_type = webhook.content_type;
  row.body = webhook.body;
  SY_ASSIGN_OR_RETURN(events::EventLog::Appended stored,
                      events::EventLog::AppendInTx(tx, std::move(row)));
  appended.result = IngestResult{stored.sequence, stored.duplicate};
  return absl::OkStatus();
}

}  // namespace switchyard::webhooks
