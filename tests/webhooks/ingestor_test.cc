#include "server/webhooks/ingestor.h"

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "server/common/status.h"
#include "server/events/event_log.h"
#include "server/webhooks/signature.h"
#include "tests/support/domain_fixture.h"

namespace switchyard::webhooks {
namespace {

class IngestorTest : public testing::DomainTest {
 protected:
  void SetUp() override {
    DomainTest::SetUp();
    CreatePool("main", 20);
    CreateTenant("acme", "main");
    ASSERT_TRUE(Connect("acme", "mx", "maintainx", v1::CLOUD).ok());
    IngestOptions options;
    options.rate_per_second = 5;
    options.burst = 5;
    ingestor_ = std::make_unique<Ingestor>(options, *store_, *vault_, clock_);
    secret_ = Rotate(absl::Hours(24));
  }

  std::string Rotate(absl::Duration grace) {
    v1::RotateWebhookSecretRequest req;
    req.set_name("tenants/acme/connections/mx/webhookSecret");
    req.mutable_grace_period()->set_seconds(absl::ToInt64Seconds(grace));
    auto secret = vault_->RotateWebhookSecret(req, Scope::All(), /*can_reveal=*/true);
    EXPECT_TRUE(secret.ok()) << secret.status();
    return secret->secrets(0);
  }

  Webhook Signed(const std::string& id, const std::string& body, const std::string& secret = "") {
    Webhook w;
    w.tenant_id = "acme";
    w.connection_id = "mx";
    w.id = id;
    w.timestamp = absl::StrCat(absl::ToUnixSeconds(clock_.Now()));
    w.content_type = "application/json";
    w.body = body;
    w.signature = Sign(*ParseSecret(secret.empty() ? secret_ : secret), w.id, w.timestamp, body);
    return w;
  }

  // IngestAsync, waiting for its answer.
  absl::StatusOr<IngestResult> IngestAndWait(Webhook webhook) {
    absl::Notification answered;
    absl::StatusOr<IngestResult> result;
    ingestor_->IngestAsync(std::move(webhook), [&](absl::StatusOr<IngestResult> r) {
      result = std::move(r);
      answered.Notify();
    });
    answered.WaitForNotification();
    return result;
  }

  std::vector<v1::Event> Events() {
    events::EventLog log(*store_);
    v1::ListEventsRequest req;
    req.set_parent("tenants/acme/connections/mx");
    req.set_page_size(1000);
    auto list = log.List(req, Scope::All());
    EXPECT_TRUE(list.ok()) << list.status();
    // Only webhooks; the gateway's own lifecycle events are in the stream too.
    std::vector<v1::Event> webhooks;
    for (const v1::Event& e : list->events()) {
      if (e.source() == v1::Event::WEBHOOK) webhooks.push_back(e);
    }
    return webhooks;
  }

  std::unique_ptr<Ingestor> ingestor_;
  std::string secret_;
};

TEST_F(IngestorTest, StoresWebhooksWithIncreasingSequencesAndTheirSourceTime) {
  auto first = ingestor_->Ingest(Signed("evt-1", R"({"type":"wo.created"})"));
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = ingestor_->Ingest(Signed("evt-2", R"({"type":"wo.closed"})"));
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->sequence, first->sequence + 1);
  auto events = Events();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].event_id(), "evt-1");
  EXPECT_EQ(events[0].body(), R"({"type":"wo.created"})");
  EXPECT_EQ(events[0].source(), v1::Event::WEBHOOK);
  EXPECT_EQ(events[0].source_time().seconds(), absl::ToUnixSeconds(clock_.Now()));
}

TEST_F(IngestorTest, AsyncIngestReadsMissingSecretsAndAnswersEveryWebhook) {
  // The first webhooks find no cached secrets (read on the ingestor's own
  // thread); the later ones find them cached. Every one is answered once.
  ingestor_ = std::make_unique<Ingestor>(IngestOptions(), *store_, *vault_, clock_);
  absl::Mutex mu;
  std::vector<absl::StatusOr<IngestResult>> results;
  auto done = [&](absl::StatusOr<IngestResult> result) {
    absl::MutexLock lock(&mu);
    results.push_back(std::move(result));
  };
  for (int i = 0; i < 20; ++i) {
    ingestor_->IngestAsync(Signed(absl::StrCat("a-", i), "{}"), done);
  }
  Webhook unknown = Signed("u-1", "{}");
  unknown.connection_id = "nope";
  ingestor_->IngestAsync(unknown, done);
  {
    absl::MutexLock lock(&mu);
    auto all = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return results.size() == 21; };
    mu.Await(absl::Condition(&all));
  }
  int stored = 0, unknown_connection = 0;
  for (const auto& r : results) {
    if (r.ok()) ++stored;
    if (!r.ok() && ReasonOf(r.status()) == "UNKNOWN_CONNECTION") ++unknown_connection;
  }
  EXPECT_EQ(stored, 20);
  EXPECT_EQ(unknown_connection, 1);
  EXPECT_EQ(Events().size(), 20u);
  // After Shutdown, webhooks whose secrets must be read are refused.
  ingestor_ = std::make_unique<Ingestor>(IngestOptions(), *store_, *vault_, clock_);
  ingestor_->Shutdown();
  absl::StatusOr<IngestResult> refused;
  ingestor_->IngestAsync(Signed("late", "{}"),
                         [&](absl::StatusOr<IngestResult> r) { refused = r; });
  EXPECT_EQ(ReasonOf(refused.status()), "SHUTTING_DOWN");
  // And so are those whose secrets are cached: nothing is stored any more.
  ingestor_ = std::make_unique<Ingestor>(IngestOptions(), *store_, *vault_, clock_);
  ASSERT_TRUE(ingestor_->Ingest(Signed("cached", "{}")).ok());
  ingestor_->Shutdown();
  absl::Notification answered;
  ingestor_->IngestAsync(Signed("later", "{}"), [&](absl::StatusOr<IngestResult> r) {
    refused = r;
    answered.Notify();
  });
  answered.WaitForNotification();
  EXPECT_EQ(ReasonOf(refused.status()), "SHUTTING_DOWN");
  EXPECT_EQ(Events().size(), 21u);
}

TEST_F(IngestorTest, AsyncIngestNeverAcceptsARevokedSecretButReusesOneOnlyOld) {
  ingestor_ = std::make_unique<Ingestor>(IngestOptions(), *store_, *vault_, clock_);
  const std::string old_secret = secret_;
  ASSERT_TRUE(IngestAndWait(Signed("s-1", "{}")).ok());  // caches the secrets
  // Past the cache TTL (not revoked): still accepted.
  clock_.Advance(absl::Minutes(1));
  EXPECT_TRUE(IngestAndWait(Signed("s-2", "{}")).ok());
  // Rotated without grace: the old secret is revoked at once, though cached.
  secret_ = Rotate(absl::ZeroDuration());
  EXPECT_EQ(ReasonOf(IngestAndWait(Signed("s-3", "{}", old_secret)).status()),
            "SIGNATURE_MISMATCH");
  EXPECT_TRUE(IngestAndWait(Signed("s-4", "{}")).ok());
}

TEST_F(IngestorTest, WhenTooManyWaitForTheirSecretsTheNextIsBusyWithRetryAfter) {
  IngestOptions options;
  options.max_waiting_bytes = 8;  // a body of 9 bytes cannot wait
  ingestor_ = std::make_unique<Ingestor>(options, *store_, *vault_, clock_);
  absl::StatusOr<IngestResult> busy;
  ingestor_->IngestAsync(Signed("big", R"({"a":123})"),
                         [&](absl::StatusOr<IngestResult> r) { busy = std::move(r); });
  EXPECT_EQ(busy.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(ReasonOf(busy.status()), "BUSY");
  std::string retry_after;
  ForEachMetadata(busy.status(), [&](absl::string_view key, absl::string_view value) {
    if (key == "retry_after_seconds") retry_after = std::string(value);
  });
  EXPECT_EQ(retry_after, "1");
  // One that fits waits, and is stored.
  absl::Notification answered;
  absl::StatusOr<IngestResult> stored;
  ingestor_->IngestAsync(Signed("small", "{}"), [&](absl::StatusOr<IngestResult> r) {
    stored = std::move(r);
    answered.Notify();
  });
  answered.WaitForNotification();
  EXPECT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(Events().size(), 1u);
}

TEST_F(IngestorTest, BodiesBeingStoredAreBoundedToo) {
  IngestOptions options;
  options.max_storing_bytes = 8;  // a body of 9 bytes cannot be stored
  ingestor_ = std::make_unique<Ingestor>(options, *store_, *vault_, clock_);
  ASSERT_TRUE(ingestor_->Ingest(Signed("warm", "{}")).ok());  // secrets cached
  EXPECT_EQ(ReasonOf(IngestAndWait(Signed("big", R"({"a":123})")).status()), "BUSY");
  // The room is given back after each commit: small ones keep fitting.
  for (int i = 0; i < 3; ++i) {
    auto stored = IngestAndWait(Signed(absl::StrCat("small-", i), "{}"));
    EXPECT_TRUE(stored.ok()) << stored.status();
  }
}

TEST_F(IngestorTest, AQuarterOfTheWaitingRoomIsKeptForKnownConnections) {
  IngestOptions options;
  options.max_waiting_bytes = 12;  // 9 bytes for connections not in the cache
  ingestor_ = std::make_unique<Ingestor>(options, *store_, *vault_, clock_);
  ASSERT_TRUE(ingestor_->Ingest(Signed("warm", "{}")).ok());  // caches mx
  const std::string body = R"({"a":1234})";                   // 10 bytes
  // A URL of no connection cannot take the room kept for known ones.
  Webhook made_up = Signed("m1", body);
  made_up.connection_id = "nothing";
  EXPECT_EQ(ReasonOf(IngestAndWait(made_up).status()), "BUSY");
  // A known connection whose secrets must be read again (rotated) can.
  secret_ = Rotate(absl::ZeroDuration());
  auto stored = IngestAndWait(Signed("k1", body));
  EXPECT_TRUE(stored.ok()) << stored.status();
}

TEST_F(IngestorTest, DuplicatesAreAnsweredWithTheFirstSequenceAndStoredOnce) {
  auto first = ingestor_->Ingest(Signed("evt-1", "{}"));
  ASSERT_TRUE(first.ok());
  clock_.Advance(absl::Seconds(30));
  auto again = ingestor_->Ingest(Signed("evt-1", "{}"));
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(again->sequence, first->sequence);
  EXPECT_EQ(Events().size(), 1u);
  EXPECT_EQ(ingestor_->Counters()["DUPLICATE"], 1);
}

TEST_F(IngestorTest, BadInputIsRefusedWithReasonsAndStoresNothing) {
  Webhook tampered = Signed("evt-1", R"({"a":1})");
  tampered.body = R"({"a":2})";
  EXPECT_EQ(ReasonOf(ingestor_->Ingest(tampered).status()), "SIGNATURE_MISMATCH");
  Webhook stale = Signed("evt-2", "{}");
  clock_.Advance(absl::Minutes(6));
  EXPECT_EQ(ReasonOf(ingestor_->Ingest(stale).status()), "TIMESTAMP_OUT_OF_TOLERANCE");
  Webhook text = Signed("evt-3", "{}");
  text.content_type = "text/plain";
  EXPECT_EQ(ReasonOf(ingestor_->Ingest(text).status()), "UNSUPPORTED_CONTENT_TYPE");
  Webhook unknown = Signed("evt-4", "{}");
  unknown.connection_id = "nothing";
  EXPECT_EQ(ingestor_->Ingest(unknown).status().code(), absl::StatusCode::kNotFound);
  Webhook huge = Signed("evt-5", std::string(2 << 20, ' '));
  EXPECT_EQ(ReasonOf(ingestor_->Ingest(huge).status()), "BODY_TOO_LARGE");
  EXPECT_TRUE(Events().empty());
}

TEST_F(IngestorTest, ADisconnectedConnectionTakesNoMoreWebhooks) {
  ASSERT_TRUE(ingestor_->Ingest(Signed("evt-1", "{}")).ok());
  ASSERT_TRUE(Disconnect("tenants/acme/connections/mx").ok());
  auto after = ingestor_->Ingest(Signed("evt-2", "{}"));
  EXPECT_EQ(after.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Events().size(), 1u);
}

TEST_F(IngestorTest, RateLimitAnswersWithRetryAfter) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(ingestor_->Ingest(Signed(absl::StrCat("evt-", i), "{}")).ok()) << i;
  }
  auto limited = ingestor_->Ingest(Signed("evt-5", "{}"));
  ASSERT_EQ(limited.status().code(), absl::StatusCode::kResourceExhausted);
  std::string retry_after;
  ForEachMetadata(limited.status(), [&](absl::string_view k, absl::string_view v) {
    if (k == "retry_after_seconds") retry_after = std::string(v);
  });
  EXPECT_EQ(retry_after, "1");
  clock_.Advance(absl::Seconds(1));
  EXPECT_TRUE(ingestor_->Ingest(Signed("evt-6", "{}")).ok());
}

TEST_F(IngestorTest, RotationAcceptsTheNewSecretAtOnceAndTheOldUntilGraceEnds) {
  ASSERT_TRUE(ingestor_->Ingest(Signed("evt-1", "{}")).ok());  // caches the old secret
  const std::string old_secret = secret_;
  const std::string new_secret = Rotate(absl::Minutes(10));
  EXPECT_TRUE(ingestor_->Ingest(Signed("evt-2", "{}", new_secret)).ok());
  EXPECT_TRUE(ingestor_->Ingest(Signed("evt-3", "{}", old_secret)).ok());
  clock_.Advance(absl::Minutes(11));
  EXPECT_EQ(ReasonOf(ingestor_->Ingest(Signed("evt-4", "{}", old_secret)).status()),
            "SIGNATURE_MISMATCH");
  EXPECT_TRUE(ingestor_->Ingest(Signed("evt-5", "{}", new_secret)).ok());
}

TEST_F(IngestorTest, ASecretStopsVerifyingWhenItsGraceEndsEvenWhileCached) {
  IngestOptions options;
  options.secret_cache_ttl = absl::Hours(2);  // the cache outlives the grace period
  ingestor_ = std::make_unique<Ingestor>(options, *store_, *vault_, clock_);
  const std::string old_secret = secret_;
  const std::string new_secret = Rotate(absl::Minutes(10));
  // Caches both secrets, the old one with its end.
  ASSERT_TRUE(ingestor_->Ingest(Signed("evt-1", "{}", old_secret)).ok());
  clock_.Advance(absl::Minutes(11));
  EXPECT_EQ(ReasonOf(ingestor_->Ingest(Signed("evt-2", "{}", old_secret)).status()),
            "SIGNATURE_MISMATCH");
  EXPECT_TRUE(ingestor_->Ingest(Signed("evt-3", "{}", new_secret)).ok());
}

TEST_F(IngestorTest, WithoutASigningSecretWebhooksAreRefused) {
  v1::RevokeWebhookSecretRequest revoke;
  revoke.set_name("tenants/acme/connections/mx/webhookSecret");
  ASSERT_TRUE(vault_->RevokeWebhookSecret(revoke, Scope::All()).ok());
  clock_.Advance(absl::Seconds(11));  // past the secret cache
  EXPECT_EQ(ReasonOf(ingestor_->Ingest(Signed("evt-1", "{}")).status()), "NO_SIGNING_SECRET");
}

}  // namespace
}  // namespace switchyard::webhooks
