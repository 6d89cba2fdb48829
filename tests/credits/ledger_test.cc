#include "server/credits/ledger.h"

#include <atomic>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/status.h"
#include "server/storage/store.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_store.h"

namespace switchyard::credits {
namespace {

using ::testing::HasSubstr;
using v1::CreditReservation;
using v1::LedgerEntry;

class LedgerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = switchyard::testing::OpenTestStore(dir_.path());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    ledger_ = *CreditLedger::Create(LedgerOptions{}, *store_, clock_);
    MakePool("main", 20);
    MakeTenant("acme", "main", 0);
  }

  void MakePool(const std::string& id, int64_t capacity) {
    v1::CreateCreditPoolRequest req;
    req.set_credit_pool_id(id);
    req.mutable_credit_pool()->set_capacity(capacity);
    ASSERT_TRUE(ledger_->CreatePool(req).ok());
  }

  // Tenants are normally made by TenantRegistry; the ledger only needs rows.
  void MakeTenant(const std::string& id, const std::string& pool, int64_t limit) {
    ASSERT_TRUE(store_
                    ->Write([&](storage::Transaction& tx) {
                      storage::TenantRow row;
                      row.id = id;
                      row.pool_id = pool;
                      row.credit_limit = limit;
                      return tx.InsertTenant(row);
                    })
                    .ok());
  }

  absl::StatusOr<CreditReservation> Reserve(const std::string& id, int64_t amount,
                                            absl::Duration ttl = absl::Minutes(5),
                                            const std::string& tenant = "acme") {
    v1::ReserveCreditsRequest req;
    req.set_parent("tenants/" + tenant);
    req.set_reservation_id(id);
    req.set_amount(amount);
    req.mutable_ttl()->set_seconds(absl::ToInt64Seconds(ttl));
    return ledger_->Reserve(req, Scope::All());
  }

  absl::StatusOr<CreditReservation> Commit(const std::string& name) {
    v1::CommitCreditReservationRequest req;
    req.set_name(name);
    return ledger_->Commit(req, Scope::All());
  }

  absl::StatusOr<CreditReservation> Release(const std::string& name) {
    v1::ReleaseCreditReservationRequest req;
    req.set_name(name);
    return ledger_->Release(req, Scope::All());
  }

  std::string Name(const std::string& id) { return "tenants/acme/creditReservations/" + id; }

  v1::CreditPool Pool(const std::string& id = "main") {
    return *ledger_->GetPool("creditPools/" + id);
  }

  // Replays the journal of `pool` from zero and checks it against the pool and
  // against each entry's recorded balances.
  void ExpectJournalReplaysTo(const v1::CreditPool& pool) {
    int64_t capacity = 0, reserved = 0, consumed = 0;
    v1::ListLedgerEntriesRequest req;
    req.set_parent(pool.name());
    req.set_page_size(7);  // small pages exercise the page tokens too
    while (true) {
      auto page = ledger_->ListEntries(req);
      ASSERT_TRUE(page.ok()) << page.status();
      for (const LedgerEntry& e : page->entries()) {
        switch (e.kind()) {
          case LedgerEntry::CAPACITY_CHANGE:
            capacity += e.amount();
            break;
          case LedgerEntry::RESERVE:
            reserved += e.amount();
            break;
          case LedgerEntry::COMMIT:
            reserved -= e.amount();
            consumed += e.amount();
            break;
          case LedgerEntry::RELEASE:
          case LedgerEntry::EXPIRE:
            reserved -= e.amount();
            break;
          case LedgerEntry::DISCONNECT_RETURN:
            consumed -= e.amount();
            break;
          default:
            FAIL() << "unexpected kind " << e.kind();
        }
        EXPECT_EQ(e.capacity_after(), capacity);
        EXPECT_EQ(e.reserved_after(), reserved);
        EXPECT_EQ(e.consumed_after(), consumed);
      }
      if (page->next_page_token().empty()) break;
      req.set_page_token(page->next_page_token());
    }
    EXPECT_EQ(capacity, pool.capacity());
    EXPECT_EQ(reserved, pool.reserved());
    EXPECT_EQ(consumed, pool.consumed());
    EXPECT_EQ(pool.capacity(), pool.available() + pool.reserved() + pool.consumed());
  }

  testing::TempDir dir_;
  ManualClock clock_{absl::FromUnixSeconds(1800000000)};
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<CreditLedger> ledger_;
};

TEST_F(LedgerTest, ReserveMovesCreditsFromAvailableToReserved) {
  auto r = Reserve("r1", 6);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->state(), CreditReservation::PENDING);
  EXPECT_EQ(r->name(), Name("r1"));
  EXPECT_EQ(r->credit_pool(), "creditPools/main");
  v1::CreditPool pool = Pool();
  EXPECT_EQ(pool.available(), 14);
  EXPECT_EQ(pool.reserved(), 6);
  ExpectJournalReplaysTo(pool);
}

TEST_F(LedgerTest, ReserveBeyondAvailableFailsWithResourceExhaustedAndChangesNothing) {
  ASSERT_TRUE(Reserve("r1", 15).ok());
  auto r = Reserve("r2", 6);
  ASSERT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ReasonOf(r.status()), "CREDITS_EXHAUSTED");
  EXPECT_THAT(r.status().message(), HasSubstr("5 credits available"));
  EXPECT_EQ(Pool().reserved(), 15);
  EXPECT_EQ(ledger_->GetReservation(Name("r2"), Scope::All()).status().code(),
            absl::StatusCode::kNotFound);
  ExpectJournalReplaysTo(Pool());
}

TEST_F(LedgerTest, TenantCreditLimitCapsWhatATenantHolds) {
  MakeTenant("capped", "main", 5);
  ASSERT_TRUE(Reserve("a", 4, absl::Minutes(5), "capped").ok());
  auto r = Reserve("b", 2, absl::Minutes(5), "capped");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ReasonOf(r.status()), "TENANT_CREDIT_LIMIT");
  EXPECT_TRUE(Reserve("c", 1, absl::Minutes(5), "capped").ok());
}

TEST_F(LedgerTest, CommitMovesReservedToConsumedAndRepeatsHarmlessly) {
  ASSERT_TRUE(Reserve("r1", 4).ok());
  auto c = Commit(Name("r1"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->state(), CreditReservation::COMMITTED);
  auto again = Commit(Name("r1"));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->state(), CreditReservation::COMMITTED);
  v1::CreditPool pool = Pool();
  EXPECT_EQ(pool.reserved(), 0);
  EXPECT_EQ(pool.consumed(), 4);
  ExpectJournalReplaysTo(pool);
}

TEST_F(LedgerTest, ReleaseReturnsCreditsAndCannotBeCommittedAfterwards) {
  ASSERT_TRUE(Reserve("r1", 4).ok());
  auto released = Release(Name("r1"));
  ASSERT_TRUE(released.ok());
  EXPECT_EQ(released->state(), CreditReservation::RELEASED);
  auto c = Commit(Name("r1"));
  EXPECT_EQ(c.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReasonOf(c.status()), "RESERVATION_RELEASED");
  EXPECT_EQ(Pool().available(), 20);
  ExpectJournalReplaysTo(Pool());
}

TEST_F(LedgerTest, CommitAfterTtlFailsAndExpiresTheReservationDurably) {
  ASSERT_TRUE(Reserve("r1", 4, absl::Seconds(30)).ok());
  clock_.Advance(absl::Seconds(31));
  EXPECT_EQ(ledger_->GetReservation(Name("r1"), Scope::All())->state(), CreditReservation::EXPIRED);
  auto c = Commit(Name("r1"));
  EXPECT_EQ(c.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReasonOf(c.status()), "RESERVATION_EXPIRED");
  EXPECT_EQ(Pool().reserved(), 0);
  EXPECT_EQ(*ledger_->ExpireDue(), 0);  // already expired by the commit attempt
  ExpectJournalReplaysTo(Pool());
}

TEST_F(LedgerTest, ExpireDueReleasesOnlyReservationsPastTheirTtl) {
  ASSERT_TRUE(Reserve("short", 3, absl::Seconds(10)).ok());
  ASSERT_TRUE(Reserve("long", 5, absl::Seconds(100)).ok());
  clock_.Advance(absl::Seconds(10));
  EXPECT_EQ(*ledger_->ExpireDue(), 1);
  EXPECT_EQ(ledger_->GetReservation(Name("short"), Scope::All())->state(),
            CreditReservation::EXPIRED);
  EXPECT_EQ(ledger_->GetReservation(Name("long"), Scope::All())->state(),
            CreditReservation::PENDING);
  EXPECT_EQ(Pool().reserved(), 5);
  ExpectJournalReplaysTo(Pool());
}

TEST_F(LedgerTest, ReserveReclaimsExpiredCreditsBeforeDecidingAvailability) {
  ASSERT_TRUE(Reserve("old", 20, absl::Seconds(10)).ok());
  clock_.Advance(absl::Seconds(11));
  auto r = Reserve("new", 20);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(ledger_->GetReservation(Name("old"), Scope::All())->state(),
            CreditReservation::EXPIRED);
  ExpectJournalReplaysTo(Pool());
}

TEST_F(LedgerTest, ReserveIsIdempotentByIdAndRejectsADifferentAmount) {
  ASSERT_TRUE(Reserve("r1", 4).ok());
  auto same = Reserve("r1", 4);
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(Pool().reserved(), 4);
  auto different = Reserve("r1", 5);
  EXPECT_EQ(different.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ReasonOf(different.status()), "RESERVATION_EXISTS");
}

TEST_F(LedgerTest, RequestIdReturnsTheOriginalReservationAndRejectsOtherParameters) {
  v1::ReserveCreditsRequest req;
  req.set_parent("tenants/acme");
  req.set_amount(3);
  req.set_request_id("req-1");
  auto first = ledger_->Reserve(req, Scope::All());
  ASSERT_TRUE(first.ok());
  auto retry = ledger_->Reserve(req, Scope::All());
  ASSERT_TRUE(retry.ok());
  EXPECT_EQ(retry->name(), first->name());  // generated id, found again
  EXPECT_EQ(Pool().reserved(), 3);
  req.set_amount(4);
  auto reused = ledger_->Reserve(req, Scope::All());
  EXPECT_EQ(reused.status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(ReasonOf(reused.status()), "REQUEST_ID_REUSED");
}

TEST_F(LedgerTest, RetryReturnsTheOriginalResponseEvenAfterTheReservationChanged) {
  v1::ReserveCreditsRequest req;
  req.set_parent("tenants/acme");
  req.set_reservation_id("r1");
  req.set_amount(3);
  req.set_request_id("req-1");
  auto first = ledger_->Reserve(req, Scope::All());
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(Commit(Name("r1")).ok());
  auto retry = ledger_->Reserve(req, Scope::All());
  ASSERT_TRUE(retry.ok());
  EXPECT_EQ(retry->SerializeAsString(), first->SerializeAsString());
  EXPECT_EQ(retry->state(), CreditReservation::PENDING);
}

TEST_F(LedgerTest, JournalNamesTheRequestThatCausedEachMovement) {
  v1::ReserveCreditsRequest reserve;
  reserve.set_parent("tenants/acme");
  reserve.set_reservation_id("r1");
  reserve.set_amount(2);
  reserve.set_request_id("reserve-call");
  ASSERT_TRUE(ledger_->Reserve(reserve, Scope::All()).ok());
  v1::ReleaseCreditReservationRequest release;
  release.set_name(Name("r1"));
  release.set_request_id("release-call");
  ASSERT_TRUE(ledger_->Release(release, Scope::All()).ok());
  v1::ListLedgerEntriesRequest list;
  list.set_parent("creditPools/main");
  list.set_tenant("tenants/acme");
  auto entries = ledger_->ListEntries(list);
  ASSERT_TRUE(entries.ok());
  ASSERT_EQ(entries->entries_size(), 2);
  EXPECT_EQ(entries->entries(0).kind(), LedgerEntry::RESERVE);
  EXPECT_EQ(entries->entries(0).request_id(), "reserve-call");
  EXPECT_EQ(entries->entries(0).credit_reservation(), Name("r1"));
  EXPECT_EQ(entries->entries(0).tenant(), "tenants/acme");
  EXPECT_TRUE(entries->entries(0).has_time());
  EXPECT_EQ(entries->entries(1).kind(), LedgerEntry::RELEASE);
  EXPECT_EQ(entries->entries(1).request_id(), "release-call");
}

TEST_F(LedgerTest, ListReservationsFiltersByStateAndPages) {
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(Reserve(absl::StrCat("r", i), 1).ok());
  ASSERT_TRUE(Commit(Name("r1")).ok());
  ASSERT_TRUE(Release(Name("r3")).ok());
  v1::ListCreditReservationsRequest req;
  req.set_parent("tenants/acme");
  req.set_state(CreditReservation::PENDING);
  req.set_page_size(2);
  std::vector<std::string> names;
  while (true) {
    auto page = ledger_->ListReservations(req, Scope::All());
    ASSERT_TRUE(page.ok()) << page.status();
    for (const auto& r : page->credit_reservations()) names.push_back(r.name());
    if (page->next_page_token().empty()) break;
    req.set_page_token(page->next_page_token());
  }
  EXPECT_EQ(names, (std::vector<std::string>{Name("r0"), Name("r2"), Name("r4")}));
}

TEST_F(LedgerTest, InvalidArgumentsAreRejectedWithReasons) {
  EXPECT_EQ(ReasonOf(Reserve("r1", 0).status()), "INVALID_AMOUNT");
  EXPECT_EQ(ReasonOf(Reserve("r1", -3).status()), "INVALID_AMOUNT");
  EXPECT_EQ(ReasonOf(Reserve("Bad_Id", 1).status()), "INVALID_ID");
  EXPECT_EQ(ReasonOf(Reserve("r1", 1, absl::Hours(24 * 30)).status()), "INVALID_TTL");
  v1::ReserveCreditsRequest req;
  req.set_parent("tenants/acme");
  req.set_amount(1);
  req.mutable_ttl()->set_seconds(-5);
  EXPECT_EQ(ReasonOf(ledger_->Reserve(req, Scope::All()).status()), "INVALID_TTL");
  req.set_parent("acme");
  EXPECT_EQ(ReasonOf(ledger_->Reserve(req, Scope::All()).status()), "INVALID_NAME");
  req.set_parent("tenants/nobody");
  req.clear_ttl();
  EXPECT_EQ(ledger_->Reserve(req, Scope::All()).status().code(), absl::StatusCode::kNotFound);
  v1::ListLedgerEntriesRequest list;
  list.set_parent("creditPools/main");
  list.set_page_token("garbage");
  EXPECT_EQ(ReasonOf(ledger_->ListEntries(list).status()), "INVALID_PAGE_TOKEN");
}

TEST_F(LedgerTest, CapacityCanBeLoweredButNotBelowUsage) {
  ASSERT_TRUE(Reserve("r1", 6).ok());
  ASSERT_TRUE(Commit(Name("r1")).ok());
  ASSERT_TRUE(Reserve("r2", 4).ok());
  v1::SetCreditPoolCapacityRequest req;
  req.set_name("creditPools/main");
  req.set_capacity(9);
  auto low = ledger_->SetCapacity(req);
  EXPECT_EQ(low.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReasonOf(low.status()), "CAPACITY_BELOW_USAGE");
  req.set_capacity(10);
  auto ok = ledger_->SetCapacity(req);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->available(), 0);
  req.set_capacity(50);
  EXPECT_EQ(ledger_->SetCapacity(req)->available(), 40);
  ExpectJournalReplaysTo(Pool());
}

TEST_F(LedgerTest, ConcurrentCommitReleaseAndExpiryResolveEachReservationExactlyOnce) {
  constexpr int kReservations = 40;
  v1::SetCreditPoolCapacityRequest capacity;
  capacity.set_name("creditPools/main");
  capacity.set_capacity(kReservations);
  ASSERT_TRUE(ledger_->SetCapacity(capacity).ok());
  for (int i = 0; i < kReservations; ++i) {
    ASSERT_TRUE(Reserve(absl::StrCat("r", i), 1, absl::Seconds(10)).ok());
  }
  // Halfway through, every reservation reaches its TTL while committers and
  // releasers race with the reaper.
  clock_.Advance(absl::Seconds(5));
  std::atomic<int> commits{0}, releases{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kReservations; ++i) {
        const std::string name = Name(absl::StrCat("r", i));
        if (t % 2 == 0) {
          auto c = Commit(name);
          if (c.ok() && c->state() == CreditReservation::COMMITTED) ++commits;
        } else {
          auto r = Release(name);
          if (r.ok() && r->state() == CreditReservation::RELEASED) ++releases;
        }
        if (i == kReservations / 2) clock_.Advance(absl::Seconds(5));
      }
    });
  }
  threads.emplace_back([&] { ASSERT_TRUE(ledger_->ExpireDue().ok()); });
  for (auto& t : threads) t.join();
  ASSERT_TRUE(ledger_->ExpireDue().ok());

  int committed = 0, released = 0, expired = 0;
  for (int i = 0; i < kReservations; ++i) {
    auto r = ledger_->GetReservation(Name(absl::StrCat("r", i)), Scope::All());
    ASSERT_TRUE(r.ok());
    committed += r->state() == CreditReservation::COMMITTED;
    released += r->state() == CreditReservation::RELEASED;
    expired += r->state() == CreditReservation::EXPIRED;
  }
  EXPECT_EQ(committed + released + expired, kReservations);
  v1::CreditPool pool = Pool();
  EXPECT_EQ(pool.reserved(), 0);
  EXPECT_EQ(pool.consumed(), committed);
  // Each reservation was resolved by exactly one journal entry.
  int resolutions = 0;
  v1::ListLedgerEntriesRequest req;
  req.set_parent("creditPools/main");
  req.set_page_size(1000);
  auto entries = ledger_->ListEntries(req);
  ASSERT_TRUE(entries.ok());
  for (const LedgerEntry& e : entries->entries()) {
    resolutions += e.kind() == LedgerEntry::COMMIT || e.kind() == LedgerEntry::RELEASE ||
                   e.kind() == LedgerEntry::EXPIRE;
  }
  EXPECT_EQ(resolutions, kReservations);
  ExpectJournalReplaysTo(pool);
}

TEST_F(LedgerTest, NoOverdraftUnderConcurrentReservations) {
  std::atomic<int> granted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        if (Reserve(absl::StrCat("t", t, "-", i), 1).ok()) ++granted;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(granted.load(), 20);
  EXPECT_EQ(Pool().available(), 0);
  ExpectJournalReplaysTo(Pool());
}

}  // namespace
}  // namespace switchyard::credits
