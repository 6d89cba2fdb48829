#ifndef SWITCHYARD_TESTS_SUPPORT_CREDIT_WORKLOAD_H_
#define SWITCHYARD_TESTS_SUPPORT_CREDIT_WORKLOAD_H_

// The credit workload of the invariant tests, against one server or several
// replicas: clients connect, disconnect, reserve, commit and release at
// random; a watcher reads the pool throughout and checks capacity = available
// + reserved + consumed with available >= 0; afterwards the journal must
// replay to the pool's balances, the tenants' holdings must add up to the
// pool's, and every operation acknowledged must be visible. Failures are
// reported as GoogleTest failures.

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "client/gateway_client.h"

namespace switchyard::testing {

class CreditWorkload {
 public:
  static constexpr int kTenants = 8;
  static constexpr int64_t kCapacity = 240;

  // Makes the client of worker `id` (any replica), with `attempts` per call.
  using ClientFactory = std::function<std::unique_ptr<client::GatewayClient>(int id, int attempts)>;
  explicit CreditWorkload(ClientFactory client_for) : client_for_(std::move(client_for)) {}

  // The shared pool and kTenants tenants (tenant-0 with a credit limit).
  void CreatePoolAndTenants();
  // One client's random walk. Returns when `ops` operations were made or
  // `stop` is set. Only successful answers are recorded as acknowledged.
  void RunClient(int id, int ops, const std::atomic<bool>& stop, std::atomic<int>& done,
                 int attempts);
  // Reads the pool through client `id` until `stop`, checking the balance at
  // every read that succeeds.
  void Watch(int id, const std::atomic<bool>& stop, std::atomic<int>& reads);
  // Checks the final state against the journal, the tenants and what was
  // acknowledged; `min_entries`: fewer journal entries fail the check.
  void VerifyEverything(int min_entries);

 private:
  ClientFactory client_for_;
  absl::Mutex mu_;
  std::set<std::string> connected_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> disconnected_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> reserved_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, v1::CreditReservation::State> resolved_ ABSL_GUARDED_BY(mu_);
};

}  // namespace switchyard::testing

#endif  // SWITCHYARD_TESTS_SUPPORT_CREDIT_WORKLOAD_H_
