// The credit invariant under concurrent load against the real server, and
// across a kill -9 of the server in the middle of that load.
//
// 64 clients connect, disconnect, reserve, commit and release at random. A
// watcher reads the pool throughout and checks capacity = available +
// reserved + consumed with available >= 0. Afterwards the journal must replay
// to the pool's balances, the tenants' holdings must add up to the pool's, and
// every operation the server acknowledged must be visible.

#include <atomic>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "client/gateway_client.h"
#include "gtest/gtest.h"
#include "tests/support/credit_workload.h"
#include "tests/support/server_process.h"
#include "tests/support/temp_dir.h"

namespace switchyard {
namespace {

constexpr int kClients = 64;

class CreditInvariantTest : public ::testing::Test {
 protected:
  void StartServer() {
    auto server = testing::ServerProcess::Start(dir_.path());
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  std::unique_ptr<client::GatewayClient> NewClient(int attempts) {
    client::ClientOptions options;
    options.target = server_->target();
    options.api_key = server_->operator_key();
    options.max_attempts = attempts;
    options.deadline = absl::Seconds(30);
    return client::GatewayClient::Create(options);
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::ServerProcess> server_;
  testing::CreditWorkload load_{[this](int, int attempts) { return NewClient(attempts); }};
};
TEST_F(CreditInvariantTest, SixtyFourConcurrentClientsNeverOverdrawOrLeakCredits) {
  StartServer();
  load_.CreatePoolAndTenants();
  std::atomic<bool> stop{false};
  std::atomic<int> done{0}, reads{0};
  std::thread watcher([&] { load_.Watch(0, stop, reads); });
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&, i] { load_.RunClient(i, 60, stop, done, 4); });
  }
  for (auto& t : clients) t.join();
  stop = true;
  watcher.join();
  EXPECT_EQ(done.load(), kClients * 60);
  EXPECT_GT(reads.load(), 0);
  load_.VerifyEverything(kClients);
}

TEST_F(CreditInvariantTest, KillNineInTheMiddleOfTheLoadLosesNothingAcknowledged) {
  StartServer();
  load_.CreatePoolAndTenants();
  std::atomic<bool> stop{false};
  std::atomic<int> done{0}, reads{0};
  std::thread watcher([&] { load_.Watch(0, stop, reads); });
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i) {
    // One attempt per call: after the kill, calls fail fast instead of
    // retrying against a dead server.
    clients.emplace_back([&, i] { load_.RunClient(i, 1000000, stop, done, 1); });
  }
  {
    // Kill once a good amount of work has been acknowledged and more is in
    // flight.
    absl::Mutex mu;
    absl::MutexLock lock(&mu);
    auto enough = [&] { return done.load() >= kClients * 25; };
    while (!enough()) mu.AwaitWithTimeout(absl::Condition(&enough), absl::Milliseconds(10));
  }
  server_->Kill();
  stop = true;
  for (auto& t : clients) t.join();
  watcher.join();

  StartServer();
  load_.VerifyEverything(kClients);
}

}  // namespace
}  // namespace switchyard
