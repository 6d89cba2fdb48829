#include "server/delivery/engine.h"

#include <atomic>
#include <deque>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/proto_time.h"
#include "server/common/status.h"
#include "server/delivery/subscriptions.h"
#include "server/events/event_log.h"
#include "tests/support/domain_fixture.h"
#include "tests/support/store_decorators.h"

namespace switchyard::delivery {
namespace {

using ::testing::ElementsAre;

// Records what the engine sends to one stream.
class RecordingSink final : public StreamSink {
 public:
  void Send(v1::StreamEventsResponse response) override {
    message_bytes.push_back(response.ByteSizeLong());
    for (const auto& r : response.received_events()) received.push_back(r);
  }
  void End(absl::Status status) override {
    EXPECT_FALSE(ended.has_value()) << "ended twice";
    ended = std::move(status);
  }
  // Takes what was received so far.
  std::vector<v1::ReceivedEvent> Take() {
    std::vector<v1::ReceivedEvent> out(received.begin(), received.end());
    received.clear();
    return out;
  }

  std::deque<v1::ReceivedEvent> received;
  std::vector<size_t> message_bytes;  // of every message sent
  std::optional<absl::Status> ended;
};

// What the engine thread sends to one stream, for tests that wait on it.
class WaitingSink final : public StreamSink {
 public:
  void Send(v1::StreamEventsResponse response) override {
    absl::MutexLock lock(&mu_);
    for (const auto& r : response.received_events()) ids_.push_back(r.event().event_id());
  }
  void End(absl::Status status) override {
    absl::MutexLock lock(&mu_);
    ended_ = std::move(status);
  }
  // Waits until the event `id` was received; false if it is not within a
  // minute (a failure, not a timing).
  bool AwaitEvent(const std::string& id) {
    absl::MutexLock lock(&mu_);
    auto received = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return std::find(ids_.begin(), ids_.end(), id) != ids_.end();
    };
    return mu_.AwaitWithTimeout(absl::Condition(&received), absl::Minutes(1));
  }
  // Waits until the stream ended and returns how; nullopt if it does not
  // within a minute.
  std::optional<absl::Status> AwaitEnd() {
    absl::MutexLock lock(&mu_);
    auto ended = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return ended_.has_value(); };
    mu_.AwaitWithTimeout(absl::Condition(&ended), absl::Minutes(1));
    return ended_;
  }
  bool ended() {
    absl::MutexLock lock(&mu_);
    return ended_.has_value();
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> ids_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Status> ended_ ABSL_GUARDED_BY(mu_);
};

// A credential check the test holds, as a read of a slow store would hold
// it: Wait (in an Authorizer) returns once the test calls Answer.
class HeldCheck {
 public:
  void Wait() {
    {
      absl::MutexLock lock(&mu_);
      if (!started_.HasBeenNotified()) started_.Notify();
    }
    answer_.WaitForNotification();
  }
  // Whether a Wait began within a minute.
  bool AwaitStarted() { return started_.WaitForNotificationWithTimeout(absl::Minutes(1)); }
  // Lets every Wait return. Idempotent.
  void Answer() {
    absl::MutexLock lock(&mu_);
    if (!answer_.HasBeenNotified()) answer_.Notify();
  }

 private:
  absl::Mutex mu_;
  absl::Notification started_;
  absl::Notification answer_;
};

std::vector<std::string> EventIds(const std::vector<v1::ReceivedEvent>& received) {
  std::vector<std::string> ids;
  for (const auto& r : received) ids.push_back(r.event().event_id());
  return ids;
}

class EngineTest : public testing::DomainTest {
 protected:
  void SetUp() override {
    DomainTest::SetUp();
    CreatePool("main", 100);
    CreateTenant("acme", "main");
    CreateTenant("globex", "main");
    ASSERT_TRUE(Connect("acme", "erp", "netsuite", v1::CLOUD).ok());
    ASSERT_TRUE(Connect("acme", "cmms", "maintainx", v1::CLOUD).ok());
    ASSERT_TRUE(Connect("globex", "sap", "sap-s4hana", v1::CLOUD).ok());
    log_ = std::make_unique<events::EventLog>(*store_);
    StartEngine();
  }

  void TearDown() override {
    for (auto& check : held_) check->Answer();
    if (engine_ != nullptr) engine_->Shutdown();
    store_->SetCommitListener(nullptr);
  }

  void StartEngine(EngineOptions options = {}) {
    engine_ = std::make_unique<DeliveryEngine>(*store_, clock_, options);
    store_->SetCommitListener(engine_.get());
    subscriptions_ = std::make_unique<SubscriptionManager>(
        *store_, clock_, [this](const std::string& name) { engine_->Invalidate(name); },
        [this](const std::string& name) { engine_->ReplayDeadLetters(name); },
        [this] { return engine_->Checkpoint(); });
  }

  // Replaces the engine with one on its own thread and the wall clock, as
  // the server runs it.
  void StartThreadedEngine(EngineOptions options = {}) {
    engine_->Shutdown();
    engine_ = std::make_unique<DeliveryEngine>(*store_, SystemClock(), options);
    store_->SetCommitListener(engine_.get());
    engine_->Start();
  }

  // A check the test holds; answered at the latest in TearDown, before the
  // engine's Shutdown joins the thread that waits in it.
  std::shared_ptr<HeldCheck> HoldCheck() {
    held_.push_back(std::make_shared<HeldCheck>());
    return held_.back();
  }

  // Opens a stream on tenants/acme/subscriptions/all of the threaded engine,
  // checked by `authorize` (none: its scope is known, all), and sends its
  // first request.
  DeliveryEngine::StreamId OpenAll(std::shared_ptr<WaitingSink> sink,
                                   std::optional<DeliveryEngine::Authorizer> authorize,
                                   int max_events = 0) {
    const DeliveryEngine::StreamId id = authorize.has_value()
                                            ? engine_->Open(sink, *std::move(authorize))
                                            : engine_->Open(sink, Scope::All());
    v1::StreamEventsRequest first;
    first.set_subscription("tenants/acme/subscriptions/all");
    first.set_max_outstanding_events(max_events);
    engine_->Handle(id, first);
    return id;
  }

  // Simulates a restart: the old engine writes what it has and goes away.
  void RestartEngine() {
    engine_->Shutdown();
    StartEngine();
  }

  void CreateSubscription(const std::string& parent, const std::string& id,
                          v1::Subscription config = {}) {
    v1::CreateSubscriptionRequest req;
    req.set_parent(parent);
    req.set_subscription_id(id);
    *req.mutable_subscription() = config;
    auto created = subscriptions_->Create(req, Scope::All());
    ASSERT_TRUE(created.ok()) << created.status();
  }

  void Publish(const std::string& connection, std::vector<std::string> ids,
               const std::string& type = "order.updated") {
    v1::PublishEventsRequest req;
    req.set_parent(connection);
    for (const std::string& id : ids) {
      auto* e = req.add_events();
      e->set_event_id(id);
      e->set_type(type);
      e->set_body("{\"id\":\"" + id + "\"}");
    }
    auto published = log_->Publish(req, Scope::All(), clock_.Now());
    ASSERT_TRUE(published.ok()) << published.status();
  }

  struct OpenStream {
    std::shared_ptr<RecordingSink> sink;
    DeliveryEngine::StreamId id;
  };
  OpenStream Open(const std::string& subscription, int max_events = 0,
                  const Scope& scope = Scope::All()) {
    return Open(
        subscription, [scope]() -> absl::StatusOr<Scope> { return scope; }, max_events);
  }
  // A stream whose credential is checked by `authorize`, as the transport
  // does, at the start and again later.
  OpenStream Open(const std::string& subscription, DeliveryEngine::Authorizer authorize,
                  int max_events = 0) {
    return OpenOn(*engine_, subscription, std::move(authorize), max_events);
  }
  // The same on `engine` (another replica).
  static OpenStream OpenOn(
      DeliveryEngine& engine, const std::string& subscription,
      DeliveryEngine::Authorizer authorize = [] { return absl::StatusOr<Scope>(Scope::All()); },
      int max_events = 0) {
    auto sink = std::make_shared<RecordingSink>();
    const DeliveryEngine::StreamId id = engine.Open(sink, std::move(authorize));
    v1::StreamEventsRequest first;
    first.set_subscription(subscription);
    first.set_max_outstanding_events(max_events);
    engine.Handle(id, first);
    engine.Pump();
    return {sink, id};
  }

  void Ack(const OpenStream& stream, const std::vector<v1::ReceivedEvent>& received) {
    v1::StreamEventsRequest req;
    for (const auto& r : received) req.add_ack_ids(r.ack_id());
    engine_->Handle(stream.id, req);
    engine_->Pump();
  }

  void Nack(const OpenStream& stream, const std::vector<v1::ReceivedEvent>& received) {
    v1::StreamEventsRequest req;
    for (const auto& r : received) req.add_nack_ids(r.ack_id());
    engine_->Handle(stream.id, req);
    engine_->Pump();
  }

  std::vector<v1::DeadLetter> DeadLetters(const std::string& subscription) {
    v1::ListDeadLettersRequest req;
    req.set_subscription(subscription);
    auto list = subscriptions_->ListDeadLetters(req, Scope::All());
    EXPECT_TRUE(list.ok()) << list.status();
    return {list->dead_letters().begin(), list->dead_letters().end()};
  }

  std::unique_ptr<events::EventLog> log_;
  std::unique_ptr<DeliveryEngine> engine_;
  std::vector<std::shared_ptr<HeldCheck>> held_;  // see HoldCheck
  std::unique_ptr<SubscriptionManager> subscriptions_;
};

constexpr char kErp[] = "tenants/acme/connections/erp";
constexpr char kCmms[] = "tenants/acme/connections/cmms";
constexpr char kSap[] = "tenants/globex/connections/sap";
constexpr char kSub[] = "tenants/acme/subscriptions/orders";

TEST_F(EngineTest, DeliversEventsStoredAfterCreationInOrderAndAcksSurviveARestart) {
  Publish(kErp, {"before"});
  CreateSubscription("tenants/acme", "orders");
  OpenStream stream = Open(kSub);
  Publish(kErp, {"e1", "e2", "e3"});
  engine_->Pump();
  std::vector<v1::ReceivedEvent> got = stream.sink->Take();
  ASSERT_THAT(EventIds(got), ElementsAre("e1", "e2", "e3"));
  EXPECT_EQ(got[0].delivery_attempt(), 1);
  EXPECT_EQ(got[0].event().name(), "tenants/acme/connections/erp/events/3");
  Ack(stream, {got[0], got[1]});  // e3 stays unacknowledged

  RestartEngine();
  EXPECT_EQ(stream.sink->ended->code(), absl::StatusCode::kUnavailable);
  OpenStream again = Open(kSub);
  got = again.sink->Take();
  ASSERT_THAT(EventIds(got), ElementsAre("e3"));  // only what was not acknowledged
  Ack(again, got);
  Publish(kErp, {"e4"});
  engine_->Pump();
  EXPECT_THAT(EventIds(again.sink->Take()), ElementsAre("e4"));
}

TEST_F(EngineTest, UnacknowledgedEventsComeBackAfterTheDeadlineWithTheNextAttempt) {
  v1::Subscription config;
  config.mutable_ack_deadline()->set_seconds(10);
  CreateSubscription("tenants/acme", "orders", config);
  OpenStream stream = Open(kSub);
  Publish(kErp, {"e1"});
  engine_->Pump();
  ASSERT_EQ(stream.sink->Take().size(), 1u);
  clock_.Advance(absl::Seconds(9));
  engine_->Pump();
  EXPECT_TRUE(stream.sink->Take().empty());
  clock_.Advance(absl::Seconds(2));
  engine_->Pump();
  std::vector<v1::ReceivedEvent> got = stream.sink->Take();
  ASSERT_THAT(EventIds(got), ElementsAre("e1"));
  EXPECT_EQ(got[0].delivery_attempt(), 2);

  // Extending the deadline keeps it away; acks are idempotent.
  v1::StreamEventsRequest extend;
  extend.add_modify_deadline_ack_ids(got[0].ack_id());
  extend.add_modify_deadline_seconds(60);
  engine_->Handle(stream.id, extend);
  clock_.Advance(absl::Seconds(30));
  engine_->Pump();
  EXPECT_TRUE(stream.sink->Take().empty());
  Ack(stream, got);
  Ack(stream, got);
  clock_.Advance(absl::Minutes(5));
  engine_->Pump();
  EXPECT_TRUE(stream.sink->Take().empty());
  EXPECT_EQ(engine_->Stats().acked, 1);
}

TEST_F(EngineTest, ADeadlineMovedLaterOrEarlierExpiresAtItsLastValue) {
  CreateSubscription("tenants/acme", "orders");
  OpenStream stream = Open(kSub);
  Publish(kErp, {"e1"});
  engine_->Pump();
  std::vector<v1::ReceivedEvent> got = stream.sink->Take();
  ASSERT_EQ(got.size(), 1u);
  auto modify = [&](int seconds) {
    v1::StreamEventsRequest request;
    request.add_modify_deadline_ack_ids(got[0].ack_id());
    request.add_modify_deadline_seconds(seconds);
    engine_->Handle(stream.id, request);
    engine_->Pump();
  };
  // Extended many times: it comes back once, at the last deadline (t=100s).
  for (int i = 0; i < 50; ++i) modify(100);
  clock_.Advance(absl::Seconds(99));
  engine_->Pump();
  EXPECT_TRUE(stream.sink->Take().empty());
  clock_.Advance(absl::Seconds(2));
  engine_->Pump();
  got = stream.sink->Take();
  ASSERT_THAT(EventIds(got), ElementsAre("e1"));
  EXPECT_EQ(got[0].delivery_attempt(), 2);
  // Moved later, then earlier: the earlier one counts.
  modify(300);
  modify(20);
  clock_.Advance(absl::Seconds(21));
  engine_->Pump();
  got = stream.sink->Take();
  ASSERT_THAT(EventIds(got), ElementsAre("e1"));
  EXPECT_EQ(got[0].delivery_attempt(), 3);
  EXPECT_EQ(engine_->Stats().redelivered, 2);
}

TEST_F(EngineTest, EventsOutOfAttemptsBecomeDeadLettersThatCanBeReplayed) {
  v1::Subscription config;
  config.set_max_delivery_attempts(2);
  CreateSubscription("tenants/acme", "orders", config);
  OpenStream stream = Open(kSub);
  Publish(kErp, {"poison", "fine"});
  engine_->Pump();
  std::vector<v1::ReceivedEvent> got = stream.sink->Take();
  ASSERT_THAT(EventIds(got), ElementsAre("poison", "fine"));
  Ack(stream, {got[1]});
  Nack(stream, {got[0]});
  got = stream.sink->Take();
  ASSERT_THAT(EventIds(got), ElementsAre("poison"));
  EXPECT_EQ(got[0].delivery_attempt(), 2);
  Nack(stream, got);
  EXPECT_TRUE(stream.sink->Take().empty());
  ASSERT_TRUE(engine_->Checkpoint().ok());
  std::vector<v1::DeadLetter> dead = DeadLetters(kSub);
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].event().event_id(), "poison");
  EXPECT_EQ(dead[0].delivery_attempts(), 2);
  EXPECT_FALSE(dead[0].replaying());
  EXPECT_EQ(engine_->Stats().dead_lettered, 1);

  v1::ReplayDeadLettersRequest replay;
  replay.set_subscription(kSub);
  auto replayed = subscriptions_->ReplayDeadLetters(replay, Scope::All());
  ASSERT_TRUE(replayed.ok()) << replayed.status();
  EXPECT_EQ(replayed->replayed(), 1);
  engine_->Pump();
  got = stream.sink->Take();
  ASSERT_THAT(EventIds(got), ElementsAre("poison"));
  EXPECT_EQ(got[0].delivery_attempt(), 1);
  Ack(stream, got);
  ASSERT_TRUE(engine_->Checkpoint().ok());
  EXPECT_TRUE(DeadLetters(kSub).empty());
}

TEST_F(EngineTest, AttemptCountsGoOnAfterARestartSoTheMaximumHolds) {
  v1::Subscription config;
  config.set_max_delivery_attempts(3);
  config.set_ordered(true);  // only the delivery in flight settles an event
  CreateSubscription("tenants/acme", "orders", config);
  OpenStream stream = Open(kSub);
  Publish(kErp, {"poison"});
  engine_->Pump();
  std::vector<v1::ReceivedEvent> got = stream.sink->Take();
  ASSERT_THAT(EventIds(got), ElementsAre("poison"));
  Nack(stream, got);  // attempt 1 used
  got = stream.sink->Take();
  ASSERT_THAT(EventIds(got), ElementsAre("poison"));
  EXPECT_EQ(got[0].delivery_attempt(), 2);
  const v1::ReceivedEvent before_restart = got[0];

  // Attempt 2 is outstanding at the restart: it used up no attempt, but its
  // number is taken.
  RestartEngine();
  OpenStream again = Open(kSub);
  got = again.sink->Take();
  ASSERT_THAT(EventIds(got), ElementsAre("poison"));
  EXPECT_EQ(got[0].delivery_attempt(), 3);
  // The ack of the delivery before the restart settles nothing now.
  Ack(again, {before_restart});
  Nack(again, got);  // attempt 3: the second used
  got = again.sink->Take();
  ASSERT_THAT(EventIds(got), ElementsAre("poison"));
  EXPECT_EQ(got[0].delivery_attempt(), 4);

  RestartEngine();  // counted again, from the store
  OpenStream third = Open(kSub);
  got = third.sink->Take();
  ASSERT_THAT(EventIds(got), ElementsAre("poison"));
  EXPECT_EQ(got[0].delivery_attempt(), 5);
  Nack(third, got);  // the third used: out of attempts
  EXPECT_TRUE(third.sink->Take().empty());
  ASSERT_TRUE(engine_->Checkpoint().ok());
  std::vector<v1::DeadLetter> dead = DeadLetters(kSub);
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].delivery_attempts(), 3);

  // Resolved: the counts are gone from the store, and a seek starts over.
  std::vector<storage::DeliveryAttemptRow> counts;
  ASSERT_TRUE(store_
                  ->Read([&](storage::Transaction& tx) -> absl::Status {
                    SY_ASSIGN_OR_RETURN(counts, tx.ListDeliveryAttempts("acme", "orders"));
                    return absl::OkStatus();
                  })
                  .ok());
  EXPECT_TRUE(counts.empty());
  v1::SeekSubscriptionRequest seek;
  seek.set_subscription(kSub);
  seek.mutable_position()->set_connection(kErp);
  seek.mutable_position()->set_after_sequence(dead[0].event().sequence() - 1);
  ASSERT_TRUE(subscriptions_->Seek(seek, Scope::All()).ok());
  engine_->Pump();
  got = third.sink->Take();
  ASSERT_THAT(EventIds(got), ElementsAre("poison"));
  EXPECT_EQ(got[0].delivery_attempt(), 1);
}

TEST_F(EngineTest, PagesOfLargeDeadLettersStayReceivable) {
  v1::Subscription config;
  config.set_max_delivery_attempts(1);
  CreateSubscription("tenants/acme", "orders", config);
  OpenStream stream = Open(kSub);
  // Webhook bodies may be up to 3 MiB: two of 2 MiB would make a 4 MiB page.
  ASSERT_TRUE(store_
                  ->Write([&](storage::Transaction& tx) -> absl::Status {
                    for (int i = 0; i < 3; ++i) {
                      storage::EventRow row;
                      row.tenant_id = "acme";
                      row.connection_id = "erp";
                      row.event_id = absl::StrCat("huge-", i);
                      row.source = v1::Event::WEBHOOK;
                      row.source_time = clock_.Now();
                      row.receive_time = clock_.Now();
                      row.content_type = "application/octet-stream";
                      row.body = std::string(size_t{2} << 20, 'x');
                      SY_RETURN_IF_ERROR(events::EventLog::AppendInTx(tx, std::move(row)).status());
                    }
                    return absl::OkStatus();
                  })
                  .ok());
  engine_->Pump();
  std::vector<v1::ReceivedEvent> got = stream.sink->Take();
  ASSERT_EQ(got.size(), 3u);
  Nack(stream, got);
  ASSERT_TRUE(engine_->Checkpoint().ok());
  v1::ListDeadLettersRequest req;
  req.set_subscription(kSub);
  req.set_page_size(1000);
  size_t letters = 0;
  for (int pages = 0; pages < 10; ++pages) {
    auto page = subscriptions_->ListDeadLetters(req, Scope::All());
    ASSERT_TRUE(page.ok()) << page.status();
    EXPECT_LT(page->ByteSizeLong(), size_t{4} << 20);
    letters += static_cast<size_t>(page->dead_letters_size());
    if (page->next_page_token().empty()) break;
    req.set_page_token(page->next_page_token());
  }
  EXPECT_EQ(letters, 3u);
}

TEST_F(EngineTest, LargeEventsGoInMessagesAClientCanReceive) {
  CreateSubscription("tenants/acme", "orders");
  OpenStream stream = Open(kSub);
  v1::PublishEventsRequest publish;
  publish.set_parent(kErp);
  for (int i = 0; i < 5; ++i) {
    auto* e = publish.add_events();
    e->set_event_id(absl::StrCat("big-", i));
    e->set_body(std::string(900 << 10, 'x'));
  }
  ASSERT_TRUE(log_->Publish(publish, Scope::All(), clock_.Now()).ok());
  engine_->Pump();
  EXPECT_THAT(EventIds(stream.sink->Take()),
              ElementsAre("big-0", "big-1", "big-2", "big-3", "big-4"));
  // Five events of 900 KiB would make one 4.5 MiB message, above gRPC's
  // usual 4 MiB limit for what a client receives.
  EXPECT_GE(stream.sink->message_bytes.size(), 2u);
  for (size_t bytes : stream.sink->message_bytes) EXPECT_LT(bytes, size_t{4} << 20);
}

TEST_F(EngineTest, AStreamWhoseCredentialFailsEndsAndItsEventsComeBackWithoutUsingAnAttempt) {
  v1::Subscription config;
  config.set_max_delivery_attempts(1);
  CreateSubscription("tenants/acme", "orders", config);
  // A credential that stops being valid, as a revoked or expired key does.
  auto valid = std::make_shared<std::atomic<bool>>(true);
  auto open_checked = [&] {
    return Open(kSub, [valid]() -> absl::StatusOr<Scope> {
      if (valid->load()) return Scope::All();
      return Error(absl::StatusCode::kUnauthenticated, "REVOKED_CREDENTIAL", "revoked");
    });
  };
  OpenStream checked = open_checked();
  Publish(kErp, {"e1"});
  engine_->Pump();
  ASSERT_THAT(EventIds(checked.sink->Take()), ElementsAre("e1"));

  // A check that cannot be made (the store unreachable) keeps the stream.
  auto unreachable = std::make_shared<std::atomic<bool>>(false);
  {
    OpenStream kept = Open(kSub, [unreachable]() -> absl::StatusOr<Scope> {
      if (!unreachable->load()) return Scope::All();
      return Error(absl::StatusCode::kUnavailable, "STORE_UNAVAILABLE", "store down");
    });
    unreachable->store(true);
    engine_->KeysChanged();
    engine_->Pump();
    EXPECT_FALSE(kept.sink->ended.has_value());
    engine_->Close(kept.id, /*cancelled=*/false);
    engine_->Pump();
  }

  // Told that keys changed: checked at once.
  valid->store(false);
  engine_->KeysChanged();
  engine_->Pump();
  ASSERT_TRUE(checked.sink->ended.has_value());
  EXPECT_EQ(checked.sink->ended->code(), absl::StatusCode::kUnauthenticated);
  // e1 used no attempt: with one allowed, it is delivered again, not dead.
  OpenStream other = Open(kSub);
  std::vector<v1::ReceivedEvent> got = other.sink->Take();
  ASSERT_THAT(EventIds(got), ElementsAre("e1"));
  Ack(other, got);

  // Not told (a key that expires): checked within the interval.
  valid->store(true);
  OpenStream later = open_checked();
  valid->store(false);
  clock_.Advance(absl::Seconds(30));
  engine_->Pump();
  EXPECT_FALSE(later.sink->ended.has_value());
  clock_.Advance(absl::Seconds(31));
  engine_->Pump();
  ASSERT_TRUE(later.sink->ended.has_value());
  EXPECT_EQ(later.sink->ended->code(), absl::StatusCode::kUnauthenticated);
  EXPECT_FALSE(other.sink->ended.has_value());
}

TEST_F(EngineTest, ACredentialCheckWaitingOnTheStoreDoesNotHoldUpDelivery) {
  CreateSubscription("tenants/acme", "all");
  // No periodic check comes within the test: KeysChanged starts the one
  // that waits.
  EngineOptions options;
  options.reauthorize_interval = absl::Hours(1);
  StartThreadedEngine(options);
  std::shared_ptr<HeldCheck> check = HoldCheck();
  auto revoked = std::make_shared<std::atomic<bool>>(false);
  auto sink = std::make_shared<WaitingSink>();
  OpenAll(sink, [check, revoked]() -> absl::StatusOr<Scope> {
    if (!revoked->load()) return Scope::All();
    check->Wait();
    return Error(absl::StatusCode::kUnauthenticated, "REVOKED_CREDENTIAL", "revoked");
  });
  Publish("tenants/acme/connections/erp", {"e1"});
  ASSERT_TRUE(sink->AwaitEvent("e1"));

  revoked->store(true);
  engine_->KeysChanged();
  ASSERT_TRUE(check->AwaitStarted());
  // While the check waits, events still flow.
  Publish("tenants/acme/connections/cmms", {"e2"});
  ASSERT_TRUE(sink->AwaitEvent("e2")) << "delivery waited for the credential check";
  EXPECT_FALSE(sink->ended());

  check->Answer();
  std::optional<absl::Status> ended = sink->AwaitEnd();
  ASSERT_TRUE(ended.has_value());
  EXPECT_EQ(ended->code(), absl::StatusCode::kUnauthenticated);
}

TEST_F(EngineTest, ANewStreamWhoseCheckWaitsHoldsUpNoOtherAndKeepsItsEarlyRequests) {
  CreateSubscription("tenants/acme", "all");
  StartThreadedEngine();
  // The slow stream's key is not cached: its check waits. Its first
  // request (one event at most) arrives meanwhile.
  std::shared_ptr<HeldCheck> check = HoldCheck();
  auto slow = std::make_shared<WaitingSink>();
  OpenAll(
      slow,
      [check]() -> absl::StatusOr<Scope> {
        check->Wait();
        return Scope::All();
      },
      /*max_events=*/1);
  ASSERT_TRUE(check->AwaitStarted());

  // Another stream opens and gets events while that check waits.
  auto quick = std::make_shared<WaitingSink>();
  OpenAll(quick, std::nullopt, /*max_events=*/1);
  Publish("tenants/acme/connections/erp", {"e1"});
  ASSERT_TRUE(quick->AwaitEvent("e1")) << "a new stream waited for another's check";

  // Checked: the slow stream attaches with the request it sent early, and
  // takes the other connection's events (the quick one holds one already).
  check->Answer();
  Publish("tenants/acme/connections/cmms", {"e2"});
  ASSERT_TRUE(slow->AwaitEvent("e2"));
  EXPECT_FALSE(slow->ended());
}

TEST_F(EngineTest, KeysThatChangeDuringAStreamsFirstCheckAreCheckedAgainAfterIt) {
  CreateSubscription("tenants/acme", "all");
  EngineOptions options;
  options.reauthorize_interval = absl::Hours(1);  // only KeysChanged checks
  StartThreadedEngine(options);
  std::shared_ptr<HeldCheck> check = HoldCheck();
  auto calls = std::make_shared<std::atomic<int>>(0);
  auto sink = std::make_shared<WaitingSink>();
  OpenAll(sink, [check, calls]() -> absl::StatusOr<Scope> {
    if (calls->fetch_add(1) == 0) {
      // The first check read the key while it was still valid...
      check->Wait();
      return Scope::All();
    }
    return Error(absl::StatusCode::kUnauthenticated, "REVOKED_CREDENTIAL", "revoked");
  });
  ASSERT_TRUE(check->AwaitStarted());
  // ...and it is revoked before that check answers.
  engine_->KeysChanged();
  check->Answer();
  std::optional<absl::Status> ended = sink->AwaitEnd();
  ASSERT_TRUE(ended.has_value()) << "the stream outlived its revoked key";
  EXPECT_EQ(ended->code(), absl::StatusCode::kUnauthenticated);
}

TEST_F(EngineTest, AStreamNotCheckedYetCannotPileUpRequests) {
  CreateSubscription("tenants/acme", "all");
  StartThreadedEngine();
  std::shared_ptr<HeldCheck> check = HoldCheck();
  auto sink = std::make_shared<WaitingSink>();
  const DeliveryEngine::StreamId id = OpenAll(sink, [check]() -> absl::StatusOr<Scope> {
    check->Wait();
    return Scope::All();
  });
  ASSERT_TRUE(check->AwaitStarted());
  v1::StreamEventsRequest ack;
  ack.add_ack_ids("tenants/acme/subscriptions/all/1/2/3");
  for (int i = 0; i < 300; ++i) engine_->Handle(id, ack);
  std::optional<absl::Status> ended = sink->AwaitEnd();
  ASSERT_TRUE(ended.has_value());
  EXPECT_EQ(ended->code(), absl::StatusCode::kResourceExhausted) << *ended;
  EXPECT_EQ(ReasonOf(*ended), "TOO_MANY_EARLY_REQUESTS");
}

TEST_F(EngineTest, AClientThatClosesBeforeItsFirstCheckIsToldTheCheck) {
  CreateSubscription("tenants/acme", "all");
  StartThreadedEngine();
  std::shared_ptr<HeldCheck> check = HoldCheck();
  auto sink = std::make_shared<WaitingSink>();
  const DeliveryEngine::StreamId id = OpenAll(sink, [check]() -> absl::StatusOr<Scope> {
    check->Wait();
    return Error(absl::StatusCode::kUnauthenticated, "REVOKED_CREDENTIAL", "revoked");
  });
  engine_->Close(id, /*cancelled=*/false);  // a half-close, while the key is checked
  check->Answer();
  std::optional<absl::Status> ended = sink->AwaitEnd();
  ASSERT_TRUE(ended.has_value());
  EXPECT_EQ(ended->code(), absl::StatusCode::kUnauthenticated) << *ended;
}

// A store whose next synchronous write takes `stall` of the clock's time
// and then fails, as a write does when the database is in trouble.
class StallingStore final : public testing::ForwardingStore {
 public:
  StallingStore(storage::Store& inner, ManualClock& clock)
      : ForwardingStore(inner), clock_(clock) {}
  absl::Status Write(absl::FunctionRef<absl::Status(storage::Transaction&)> fn) override {
    if (stall_next.exchange(false)) {
      clock_.Advance(stall);
      return Error(absl::StatusCode::kUnavailable, "STORE_UNAVAILABLE", "timed out");
    }
    return inner_.Write(fn);
  }
  std::atomic<bool> stall_next{false};
  absl::Duration stall;

 private:
  ManualClock& clock_;
};

TEST_F(EngineTest, NothingNewIsSentOnceALeaseRenewalBlockedNearlyToItsExpiry) {
  StallingStore stalling(*store_, clock_);
  engine_->Shutdown();
  EngineOptions options;
  options.lease_ttl = absl::Seconds(15);
  engine_ = std::make_unique<DeliveryEngine>(stalling, clock_, options);
  // The engine goes before the store it borrows.
  absl::Cleanup stop = [this] {
    engine_->Shutdown();
    engine_.reset();
  };
  store_->SetCommitListener(engine_.get());
  CreateSubscription("tenants/acme", "orders");
  OpenStream stream = Open(kSub);
  Publish(kErp, {"e1"});
  engine_->Pump();
  std::vector<v1::ReceivedEvent> got = stream.sink->Take();
  ASSERT_THAT(EventIds(got), ElementsAre("e1"));
  Ack(stream, got);

  // The renewal due after a third of the TTL blocks for 11 s and fails:
  // 4 s of the lease are left, less than the fifth kept in reserve.
  clock_.Advance(absl::Seconds(5));
  stalling.stall = absl::Seconds(11);
  stalling.stall_next = true;
  Publish(kErp, {"e2"});
  engine_->Pump();
  EXPECT_TRUE(stream.sink->Take().empty()) << "sent on a lease about to expire";
  // The retried renewal succeeds: e2 goes out.
  engine_->Pump();
  EXPECT_THAT(EventIds(stream.sink->Take()), ElementsAre("e2"));
}

TEST_F(EngineTest, AStreamPastItsAgeDrainsThenEndsSoThatItsClientReconnects) {
  engine_->Shutdown();
  EngineOptions options;
  options.max_stream_age = absl::Minutes(5);
  options.stream_drain = absl::Seconds(60);
  StartEngine(options);
  v1::Subscription config;
  config.set_max_delivery_attempts(1);
  config.mutable_ack_deadline()->set_seconds(600);
  CreateSubscription("tenants/acme", "orders", config);
  OpenStream old = Open(kSub);
  Publish(kErp, {"e1"});
  engine_->Pump();
  std::vector<v1::ReceivedEvent> e1 = old.sink->Take();
  ASSERT_THAT(EventIds(e1), ElementsAre("e1"));

  // Past its age it gets nothing new, and waits for what is outstanding.
  clock_.Advance(absl::Minutes(5));
  engine_->Pump();
  Publish(kErp, {"e2"});
  engine_->Pump();
  EXPECT_TRUE(old.sink->Take().empty());
  EXPECT_FALSE(old.sink->ended.has_value());
  Ack(old, e1);
  ASSERT_TRUE(old.sink->ended.has_value());
  EXPECT_EQ(old.sink->ended->code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(old.sink->ended->ToString().find("STREAM_RENEWAL"), std::string::npos)
      << *old.sink->ended;
  OpenStream fresh = Open(kSub);
  std::vector<v1::ReceivedEvent> e2 = fresh.sink->Take();
  ASSERT_THAT(EventIds(e2), ElementsAre("e2"));

  // A consumer that holds its events past the drain: the stream ends
  // anyway, and the events come back without using an attempt (one allowed).
  clock_.Advance(absl::Minutes(5));
  engine_->Pump();
  EXPECT_FALSE(fresh.sink->ended.has_value());
  clock_.Advance(absl::Seconds(61));
  engine_->Pump();
  ASSERT_TRUE(fresh.sink->ended.has_value());
  EXPECT_EQ(fresh.sink->ended->code(), absl::StatusCode::kUnavailable);
  OpenStream third = Open(kSub);
  EXPECT_THAT(EventIds(third.sink->Take()), ElementsAre("e2"));
}

TEST_F(EngineTest, OrderedSubscriptionsKeepOneEventPerConnectionOutstanding) {
  v1::Subscription config;
  config.set_ordered(true);
  CreateSubscription("tenants/acme", "orders", config);
  OpenStream stream = Open(kSub);
  Publish(kErp, {"a1", "a2", "a3"});
  Publish(kCmms, {"b1", "b2"});
  engine_->Pump();
  std::vector<v1::ReceivedEvent> got = stream.sink->Take();
  ASSERT_EQ(got.size(), 2u);  // one per connection, in parallel
  EXPECT_THAT(EventIds(got), ::testing::UnorderedElementsAre("a1", "b1"));
  const v1::ReceivedEvent a1 = got[0].event().event_id() == "a1" ? got[0] : got[1];
  const v1::ReceivedEvent b1 = got[0].event().event_id() == "a1" ? got[1] : got[0];
  Nack(stream, {a1});  // a redelivery keeps its place before a2
  got = stream.sink->Take();
  ASSERT_THAT(EventIds(got), ElementsAre("a1"));
  Ack(stream, got);
  EXPECT_THAT(EventIds(stream.sink->Take()), ElementsAre("a2"));
  Ack(stream, {b1});
  EXPECT_THAT(EventIds(stream.sink->Take()), ElementsAre("b2"));
}

TEST_F(EngineTest, ALateAckOfAnEarlierDeliverySettlesNotTheOneInFlight) {
  v1::Subscription config;
  config.set_ordered(true);
  CreateSubscription("tenants/acme", "orders", config);
  OpenStream first = Open(kSub);
  Publish(kErp, {"e1", "e2"});
  engine_->Pump();
  std::vector<v1::ReceivedEvent> early = first.sink->Take();
  ASSERT_THAT(EventIds(early), ElementsAre("e1"));
  OpenStream second = Open(kSub);
  // The first consumer leaves without acking: e1 goes to the second one, as
  // a delivery of its own.
  engine_->Close(first.id, /*cancelled=*/false);
  engine_->Pump();
  std::vector<v1::ReceivedEvent> again = second.sink->Take();
  ASSERT_THAT(EventIds(again), ElementsAre("e1"));
  EXPECT_NE(again[0].ack_id(), early[0].ack_id());
  EXPECT_EQ(again[0].delivery_attempt(), 2);
  // The first delivery's ack, arriving late, does not let e2 overtake the
  // e1 still being processed.
  Ack(second, early);
  EXPECT_TRUE(second.sink->Take().empty());
  Ack(second, again);
  EXPECT_THAT(EventIds(second.sink->Take()), ElementsAre("e2"));
}

TEST_F(EngineTest, StreamsShareConnectionsStickilyAndTakeOverWhenOneEnds) {
  CreateSubscription("tenants/acme", "orders");
  OpenStream one = Open(kSub);
  OpenStream two = Open(kSub);
  Publish(kErp, {"a1"});
  engine_->Pump();
  Publish(kCmms, {"b1"});
  engine_->Pump();
  Publish(kErp, {"a2"});
  engine_->Pump();
  std::vector<v1::ReceivedEvent> got_one = one.sink->Take();
  std::vector<v1::ReceivedEvent> got_two = two.sink->Take();
  // erp went to one stream and stays there while it has events outstanding;
  // cmms went to the other, less loaded one.
  const bool erp_on_one = !got_one.empty() && got_one[0].event().event_id() == "a1";
  auto& erp = erp_on_one ? got_one : got_two;
  auto& cmms = erp_on_one ? got_two : got_one;
  EXPECT_THAT(EventIds(erp), ElementsAre("a1", "a2"));
  EXPECT_THAT(EventIds(cmms), ElementsAre("b1"));

  // The erp stream goes away: its events move to the other, as attempt 2.
  OpenStream& erp_stream = erp_on_one ? one : two;
  OpenStream& other = erp_on_one ? two : one;
  engine_->Close(erp_stream.id, /*cancelled=*/true);
  engine_->Pump();
  EXPECT_TRUE(erp_stream.sink->ended->ok());
  std::vector<v1::ReceivedEvent> moved = other.sink->Take();
  ASSERT_THAT(EventIds(moved), ElementsAre("a1", "a2"));
  EXPECT_EQ(moved[0].delivery_attempt(), 2);

  // Acks are accepted on any stream of the subscription: the cmms event's
  // ack id is acknowledged again here (idempotent) together with the rest.
  Ack(other, moved);
  Ack(other, cmms);
  clock_.Advance(absl::Minutes(5));
  engine_->Pump();
  EXPECT_TRUE(other.sink->Take().empty());
}

TEST_F(EngineTest, AHalfClosedStreamReturnsItsEventsWithoutUsingAnAttempt) {
  v1::Subscription config;
  config.set_max_delivery_attempts(1);
  CreateSubscription("tenants/acme", "orders", config);
  OpenStream first = Open(kSub);
  Publish(kErp, {"e1"});
  engine_->Pump();
  ASSERT_EQ(first.sink->Take().size(), 1u);
  engine_->Close(first.id, /*cancelled=*/false);
  engine_->Pump();
  OpenStream second = Open(kSub);
  std::vector<v1::ReceivedEvent> got = second.sink->Take();
  ASSERT_THAT(EventIds(got), ElementsAre("e1"));
  // The next attempt number, though the first used up no attempt.
  EXPECT_EQ(got[0].delivery_attempt(), 2);
  // A consumer that breaks off instead uses the attempt up: a dead letter.
  engine_->Close(second.id, /*cancelled=*/true);
  engine_->Pump();
  ASSERT_TRUE(engine_->Checkpoint().ok());
  EXPECT_EQ(DeadLetters(kSub).size(), 1u);
}

TEST_F(EngineTest, AcksMadeBeforeASeekDoNotSettleTheDeliveriesAfterIt) {
  v1::Subscription config;
  config.mutable_ack_deadline()->set_seconds(10);
  CreateSubscription("tenants/acme", "orders", config);
  OpenStream stream = Open(kSub);
  Publish(kErp, {"e1"});
  engine_->Pump();
  std::vector<v1::ReceivedEvent> before = stream.sink->Take();
  ASSERT_EQ(before.size(), 1u);
  v1::SeekSubscriptionRequest seek;
  seek.set_subscription(kSub);
  seek.mutable_position()->set_connection(kErp);
  seek.mutable_position()->set_after_sequence(1);  // just before e1
  ASSERT_TRUE(subscriptions_->Seek(seek, Scope::All()).ok());
  engine_->Pump();
  std::vector<v1::ReceivedEvent> after = stream.sink->Take();
  ASSERT_THAT(EventIds(after), ElementsAre("e1"));
  EXPECT_NE(after[0].ack_id(), before[0].ack_id());
  Ack(stream, before);  // the old delivery's ack: ignored
  clock_.Advance(absl::Seconds(11));
  engine_->Pump();
  std::vector<v1::ReceivedEvent> again = stream.sink->Take();
  ASSERT_THAT(EventIds(again), ElementsAre("e1"));
  EXPECT_EQ(again[0].delivery_attempt(), 2);
}

TEST_F(EngineTest, InAnOrderedSubscriptionALateAckOfAnEarlierAttemptDoesNotReleaseTheNext) {
  v1::Subscription config;
  config.set_ordered(true);
  config.mutable_ack_deadline()->set_seconds(10);
  CreateSubscription("tenants/acme", "orders", config);
  OpenStream stream = Open(kSub);
  Publish(kErp, {"a1", "a2"});
  engine_->Pump();
  std::vector<v1::ReceivedEvent> first = stream.sink->Take();
  ASSERT_THAT(EventIds(first), ElementsAre("a1"));
  clock_.Advance(absl::Seconds(11));
  engine_->Pump();
  std::vector<v1::ReceivedEvent> second = stream.sink->Take();
  ASSERT_THAT(EventIds(second), ElementsAre("a1"));
  Ack(stream, first);  // attempt 1, late: attempt 2 is being processed
  EXPECT_TRUE(stream.sink->Take().empty());
  Ack(stream, second);
  EXPECT_THAT(EventIds(stream.sink->Take()), ElementsAre("a2"));
}

TEST_F(EngineTest, ReplayingADeadLetterLeavesOutstandingEventsAlone) {
  v1::Subscription config;
  config.set_max_delivery_attempts(1);
  CreateSubscription("tenants/acme", "orders", config);
  OpenStream stream = Open(kSub);
  Publish(kErp, {"e1", "e2"});
  engine_->Pump();
  std::vector<v1::ReceivedEvent> got = stream.sink->Take();
  ASSERT_THAT(EventIds(got), ElementsAre("e1", "e2"));
  Nack(stream, {got[1]});  // e2 dies while e1 is still outstanding
  ASSERT_TRUE(engine_->Checkpoint().ok());
  ASSERT_EQ(DeadLetters(kSub).size(), 1u);
  v1::ReplayDeadLettersRequest replay;
  replay.set_subscription(kSub);
  ASSERT_TRUE(subscriptions_->ReplayDeadLetters(replay, Scope::All()).ok());
  engine_->Pump();
  std::vector<v1::ReceivedEvent> replayed = stream.sink->Take();
  ASSERT_THAT(EventIds(replayed), ElementsAre("e2"));  // e1 is not sent again
  Ack(stream, {got[0], replayed[0]});
  ASSERT_TRUE(engine_->Checkpoint().ok());
  EXPECT_TRUE(DeadLetters(kSub).empty());
  RestartEngine();
  OpenStream later = Open(kSub);
  EXPECT_TRUE(later.sink->Take().empty());
}

TEST_F(EngineTest, FlowControlLimitsOutstandingEventsPerStream) {
  CreateSubscription("tenants/acme", "orders");
  OpenStream stream = Open(kSub, /*max_events=*/2);
  Publish(kErp, {"e1", "e2", "e3", "e4", "e5"});
  engine_->Pump();
  std::vector<v1::ReceivedEvent> got = stream.sink->Take();
  ASSERT_THAT(EventIds(got), ElementsAre("e1", "e2"));
  Ack(stream, {got[0]});
  EXPECT_THAT(EventIds(stream.sink->Take()), ElementsAre("e3"));
}

TEST_F(EngineTest, FiltersSelectConnectionsSystemsAndEventTypes) {
  v1::Subscription by_type;
  by_type.mutable_filter()->add_event_types("order.*");
  CreateSubscription("tenants/acme", "orders", by_type);
  v1::Subscription by_system;
  by_system.mutable_filter()->add_systems("maintainx");
  CreateSubscription("tenants/acme", "cmms", by_system);
  v1::Subscription operator_wide;
  operator_wide.mutable_filter()->add_connections(kSap);
  CreateSubscription("", "sap", operator_wide);
  CreateSubscription("", "everything");

  OpenStream orders = Open(kSub);
  OpenStream cmms = Open("tenants/acme/subscriptions/cmms");
  OpenStream sap = Open("subscriptions/sap");
  OpenStream all = Open("subscriptions/everything");
  Publish(kErp, {"o1"}, "order.created");
  Publish(kErp, {"i1"}, "invoice.created");
  Publish(kCmms, {"w1"}, "work_order.closed");
  Publish(kSap, {"s1"}, "order.created");
  engine_->Pump();
  EXPECT_THAT(EventIds(orders.sink->Take()), ElementsAre("o1"));  // no w1: not order.*
  EXPECT_THAT(EventIds(cmms.sink->Take()), ElementsAre("w1"));
  EXPECT_THAT(EventIds(sap.sink->Take()), ElementsAre("s1"));
  EXPECT_THAT(EventIds(all.sink->Take()), ::testing::UnorderedElementsAre("o1", "i1", "w1", "s1"));
}

TEST_F(EngineTest, SeekReplaysFromATimeOrASequence) {
  CreateSubscription("tenants/acme", "orders");
  OpenStream stream = Open(kSub);
  Publish(kErp, {"e1"});
  clock_.Advance(absl::Minutes(1));
  const absl::Time middle = clock_.Now();
  Publish(kErp, {"e2"});
  Publish(kCmms, {"c1"});
  engine_->Pump();
  Ack(stream, stream.sink->Take());

  v1::SeekSubscriptionRequest seek;
  seek.set_subscription(kSub);
  ToProto(middle, seek.mutable_time());
  ASSERT_TRUE(subscriptions_->Seek(seek, Scope::All()).ok());
  engine_->Pump();
  std::vector<v1::ReceivedEvent> got = stream.sink->Take();
  EXPECT_THAT(EventIds(got), ::testing::UnorderedElementsAre("e2", "c1"));
  Ack(stream, got);

  seek.mutable_position()->set_connection(kErp);
  seek.mutable_position()->set_after_sequence(0);
  ASSERT_TRUE(subscriptions_->Seek(seek, Scope::All()).ok());
  engine_->Pump();
  // Sequence 1 of erp is the gateway's own connection.created event.
  EXPECT_THAT(EventIds(stream.sink->Take()), ElementsAre(::testing::_, "e1", "e2"));
}

TEST_F(EngineTest, StreamsOutsideTheCallersScopeOrMalformedEndWithClearErrors) {
  CreateSubscription("tenants/acme", "orders");
  OpenStream foreign = Open(kSub, 0, Scope::Tenant("globex"));
  ASSERT_TRUE(foreign.sink->ended.has_value());
  EXPECT_EQ(foreign.sink->ended->code(), absl::StatusCode::kNotFound);
  OpenStream missing = Open("tenants/acme/subscriptions/nope");
  ASSERT_TRUE(missing.sink->ended.has_value());
  EXPECT_EQ(missing.sink->ended->code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ReasonOf(*missing.sink->ended), "SUBSCRIPTION_NOT_FOUND");
  // The missing one and the foreign one read the same.
  EXPECT_EQ(foreign.sink->ended->message(), "tenants/acme/subscriptions/orders does not exist");

  // Not five parts; and five parts whose tenant or connection is no id (such
  // text could not be passed on to another replica).
  for (const char* text : {"not-an-ack-id", "acme/mx 1/1/1/1", "acme\nE/mx1/1/1/1", "/mx1/1/1/1"}) {
    OpenStream stream = Open(kSub);
    v1::StreamEventsRequest bad;
    bad.add_ack_ids(text);
    engine_->Handle(stream.id, bad);
    engine_->Pump();
    ASSERT_TRUE(stream.sink->ended.has_value()) << text;
    EXPECT_EQ(stream.sink->ended->code(), absl::StatusCode::kInvalidArgument) << text;
  }

  auto nameless = std::make_shared<RecordingSink>();
  auto id = engine_->Open(nameless, Scope::All());
  engine_->Handle(id, v1::StreamEventsRequest());
  engine_->Pump();
  ASSERT_TRUE(nameless->ended.has_value());
  EXPECT_EQ(nameless->ended->code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(EngineTest, DeletingASubscriptionEndsItsStreams) {
  CreateSubscription("tenants/acme", "orders");
  OpenStream stream = Open(kSub);
  ASSERT_TRUE(subscriptions_->Delete(kSub, Scope::All()).ok());
  engine_->Pump();
  ASSERT_TRUE(stream.sink->ended.has_value());
  EXPECT_EQ(stream.sink->ended->code(), absl::StatusCode::kNotFound);
}

TEST_F(EngineTest, SubscriptionsValidateTheirSettingsAndOwners) {
  v1::CreateSubscriptionRequest req;
  req.set_parent("tenants/acme");
  req.set_subscription_id("s");
  req.mutable_subscription()->mutable_ack_deadline()->set_seconds(0);
  req.mutable_subscription()->mutable_ack_deadline()->set_nanos(1000);
  EXPECT_EQ(ReasonOf(subscriptions_->Create(req, Scope::All()).status()), "INVALID_ACK_DEADLINE");
  req.mutable_subscription()->clear_ack_deadline();
  req.mutable_subscription()->set_max_delivery_attempts(101);
  EXPECT_EQ(ReasonOf(subscriptions_->Create(req, Scope::All()).status()),
            "INVALID_MAX_DELIVERY_ATTEMPTS");
  req.mutable_subscription()->set_max_delivery_attempts(0);
  req.mutable_subscription()->mutable_filter()->add_connections(kSap);
  EXPECT_EQ(ReasonOf(subscriptions_->Create(req, Scope::All()).status()), "INVALID_FILTER");
  req.mutable_subscription()->mutable_filter()->clear_connections();
  req.mutable_subscription()->mutable_filter()->add_event_types("a*b");
  EXPECT_EQ(ReasonOf(subscriptions_->Create(req, Scope::All()).status()), "INVALID_FILTER");
  req.mutable_subscription()->mutable_filter()->clear_event_types();

  // A tenant key cannot subscribe to every tenant, nor to another tenant.
  v1::CreateSubscriptionRequest wide = req;
  wide.set_parent("");
  EXPECT_EQ(subscriptions_->Create(wide, Scope::Tenant("acme")).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(subscriptions_->Create(req, Scope::Tenant("globex")).status().code(),
            absl::StatusCode::kNotFound);

  auto created = subscriptions_->Create(req, Scope::Tenant("acme"));
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(created->name(), "tenants/acme/subscriptions/s");
  EXPECT_EQ(created->ack_deadline().seconds(), 30);
  EXPECT_EQ(created->max_delivery_attempts(), 5);
  EXPECT_EQ(ReasonOf(subscriptions_->Create(req, Scope::All()).status()), "SUBSCRIPTION_EXISTS");
  EXPECT_EQ(
      subscriptions_->Get("tenants/acme/subscriptions/s", Scope::Tenant("globex")).status().code(),
      absl::StatusCode::kNotFound);
}

// Hands committed events to several engines, as NOTIFY does for replicas.
class Fanout final : public storage::CommitListener {
 public:
  explicit Fanout(std::vector<DeliveryEngine*> engines) : engines_(std::move(engines)) {}
  void EventsCommitted(const std::vector<storage::EventNotice>& notices) override {
    for (DeliveryEngine* e : engines_) e->EventsCommitted(notices);
  }

 private:
  std::vector<DeliveryEngine*> engines_;
};

// Two replicas, "replica-a" and "replica-b", with 15 s leases on one store,
// both told of its commits. Shuts them down when it goes.
class TwoReplicas {
 public:
  TwoReplicas(storage::Store& store, ManualClock& clock)
      : store_(store),
        a(store, clock, Options("replica-a")),
        b(store, clock, Options("replica-b")),
        fanout_({&a, &b}) {
    store_.SetCommitListener(&fanout_);
  }
  ~TwoReplicas() {
    b.Shutdown();
    a.Shutdown();
    store_.SetCommitListener(nullptr);
  }

 private:
  static EngineOptions Options(const std::string& replica_id) {
    EngineOptions options;
    options.lease_ttl = absl::Seconds(15);
    options.replica_id = replica_id;
    return options;
  }
  storage::Store& store_;

 public:
  DeliveryEngine a;
  DeliveryEngine b;

 private:
  Fanout fanout_;
};

TEST_F(EngineTest, ReplicasShareASubscriptionsConnectionsAndTakeOverWhenOneDies) {
  engine_->Shutdown();
  TwoReplicas replicas(*store_, clock_);
  DeliveryEngine& a = replicas.a;
  DeliveryEngine& b = replicas.b;
  CreateSubscription("tenants/acme", "orders");
  auto open = [&](DeliveryEngine& engine) { return OpenOn(engine, kSub); };
  auto ack = [&](DeliveryEngine& engine, const OpenStream& stream,
                 const std::vector<v1::ReceivedEvent>& received) {
    v1::StreamEventsRequest req;
    for (const auto& r : received) req.add_ack_ids(r.ack_id());
    engine.Handle(stream.id, req);
    engine.Pump();
  };
  auto pump = [&] {
    a.Pump();
    b.Pump();
  };

  // A comes first and takes both connections; B joins and gets none yet.
  OpenStream on_a = open(a);
  OpenStream on_b = open(b);
  Publish(kErp, {"e1", "e2"});
  Publish(kCmms, {"c1", "c2"});
  pump();
  std::vector<v1::ReceivedEvent> got = on_a.sink->Take();
  EXPECT_THAT(EventIds(got), ::testing::UnorderedElementsAre("e1", "e2", "c1", "c2"));
  EXPECT_TRUE(on_b.sink->Take().empty());
  ack(a, on_a, got);
  ASSERT_TRUE(a.Checkpoint().ok());  // the acknowledgements are written

  // At the next renewal A gives back its share's extra, and B takes it.
  clock_.Advance(absl::Seconds(5));
  pump();
  pump();
  Publish(kErp, {"e3"});
  Publish(kCmms, {"c3"});
  pump();
  std::vector<v1::ReceivedEvent> at_a = on_a.sink->Take();
  std::vector<v1::ReceivedEvent> at_b = on_b.sink->Take();
  ASSERT_EQ(at_a.size(), 1u);
  ASSERT_EQ(at_b.size(), 1u);
  // Each connection goes to one replica, and nothing is delivered twice.
  EXPECT_NE(at_a[0].event().name().substr(0, 28), at_b[0].event().name().substr(0, 28));
  const bool a_has_erp = at_a[0].event().event_id() == "e3";
  const OpenStream& erp_stream = a_has_erp ? on_a : on_b;
  DeliveryEngine& cmms_engine = a_has_erp ? b : a;
  const OpenStream& cmms_stream = a_has_erp ? on_b : on_a;
  ack(cmms_engine, cmms_stream, a_has_erp ? at_b : at_a);
  // e3 stays unacknowledged: nacked once, then sent again.
  DeliveryEngine& erp_engine = a_has_erp ? a : b;
  v1::StreamEventsRequest nack;
  nack.add_nack_ids((a_has_erp ? at_a : at_b)[0].ack_id());
  erp_engine.Handle(erp_stream.id, nack);
  erp_engine.Pump();
  got = erp_stream.sink->Take();
  ASSERT_THAT(EventIds(got), ElementsAre("e3"));
  EXPECT_EQ(got[0].delivery_attempt(), 2);
  ASSERT_TRUE(a.Checkpoint().ok());
  ASSERT_TRUE(b.Checkpoint().ok());

  // The replica holding erp dies (it stops renewing). Once its lease
  // expires, the other one takes erp over from its last written cursor: e3
  // again, then e4, in order. e3's failed attempt moved with it; the second
  // delivery was not written (the replica died with it outstanding), so its
  // number comes again.
  Publish(kErp, {"e4"});
  clock_.Advance(absl::Seconds(16));
  cmms_engine.Pump();
  cmms_engine.Pump();
  got = cmms_stream.sink->Take();
  ASSERT_THAT(EventIds(got), ElementsAre("e3", "e4"));
  EXPECT_EQ(got[0].delivery_attempt(), 2);
  EXPECT_EQ(got[1].delivery_attempt(), 1);
  erp_stream.sink->Take();

  // An hour later the dead replica is forgotten: only one member is left.
  auto members = [&] {
    std::vector<storage::DeliveryMemberRow> rows;
    EXPECT_TRUE(store_
                    ->Read([&](storage::Transaction& tx) -> absl::Status {
                      SY_ASSIGN_OR_RETURN(rows, tx.ListDeliveryMembers("acme", "orders"));
                      return absl::OkStatus();
                    })
                    .ok());
    return rows.size();
  };
  EXPECT_EQ(members(), 2u);
  clock_.Advance(absl::Minutes(61));
  cmms_engine.Pump();
  EXPECT_EQ(members(), 1u);
}

TEST_F(EngineTest, AReplicaThatLostALaneWritesNoDeadLetterForIt) {
  engine_->Shutdown();
  TwoReplicas replicas(*store_, clock_);
  DeliveryEngine& a = replicas.a;
  DeliveryEngine& b = replicas.b;
  v1::Subscription config;
  config.set_max_delivery_attempts(1);
  config.mutable_ack_deadline()->set_seconds(600);
  CreateSubscription("tenants/acme", "orders", config);
  auto open = [&](DeliveryEngine& engine) { return OpenOn(engine, kSub); };

  // A delivers e1, then stalls; its lease expires and B takes erp over.
  OpenStream on_a = open(a);
  Publish(kErp, {"e1"});
  a.Pump();
  std::vector<v1::ReceivedEvent> got = on_a.sink->Take();
  ASSERT_THAT(EventIds(got), ElementsAre("e1"));
  OpenStream on_b = open(b);
  clock_.Advance(absl::Seconds(16));
  b.Pump();
  b.Pump();
  ASSERT_THAT(EventIds(on_b.sink->Take()), ElementsAre("e1"));

  // A comes back to a nack of its (only) attempt: e1 is B's to deliver now,
  // not a dead letter.
  v1::StreamEventsRequest nack;
  nack.add_nack_ids(got[0].ack_id());
  a.Handle(on_a.id, nack);
  a.Pump();
  ASSERT_TRUE(a.Checkpoint().ok());
  std::vector<storage::DeadLetterRow> dead;
  ASSERT_TRUE(store_
                  ->Read([&](storage::Transaction& tx) -> absl::Status {
                    SY_ASSIGN_OR_RETURN(dead, tx.ListDeadLetters("acme", "orders", 0, 10, false));
                    return absl::OkStatus();
                  })
                  .ok());
  EXPECT_TRUE(dead.empty()) << dead.size() << " dead letters";
}

TEST_F(EngineTest, ASeekThroughAnotherReplicaReachesTheReplicaThatDelivers) {
  engine_->Shutdown();
  EngineOptions options;
  options.replica_id = "replica-b";
  DeliveryEngine b(*store_, clock_, options);
  store_->SetCommitListener(&b);
  CreateSubscription("tenants/acme", "orders");
  // The seek is served by a replica with no streams: B hears of it only
  // through the store.
  SubscriptionManager elsewhere(
      *store_, clock_, [](const std::string&) {}, [](const std::string&) {},
      [] { return absl::OkStatus(); });
  auto sink = std::make_shared<RecordingSink>();
  const DeliveryEngine::StreamId id = b.Open(sink, Scope::All());
  v1::StreamEventsRequest first;
  first.set_subscription(kSub);
  b.Handle(id, first);
  Publish(kErp, {"e1", "e2"});
  b.Pump();
  std::vector<v1::ReceivedEvent> got = sink->Take();
  ASSERT_THAT(EventIds(got), ElementsAre("e1", "e2"));
  v1::StreamEventsRequest acks;
  for (const auto& r : got) acks.add_ack_ids(r.ack_id());
  b.Handle(id, acks);
  b.Pump();
  ASSERT_TRUE(b.Checkpoint().ok());

  v1::SeekSubscriptionRequest seek;
  seek.set_subscription(kSub);
  seek.mutable_position()->set_connection(kErp);
  seek.mutable_position()->set_after_sequence(1);  // after connection.created
  ASSERT_TRUE(elsewhere.Seek(seek, Scope::All()).ok());
  clock_.Advance(absl::Seconds(6));  // B's next lease renewal
  b.Pump();
  b.Pump();
  EXPECT_THAT(EventIds(sink->Take()), ElementsAre("e1", "e2"));
  b.Shutdown();
  store_->SetCommitListener(nullptr);
}

}  // namespace
}  // namespace switchyard::delivery
