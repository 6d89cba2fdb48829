#ifndef SWITCHYARD_TESTS_SUPPORT_REPLICA_SET_H_
#define SWITCHYARD_TESTS_SUPPORT_REPLICA_SET_H_

// Several server processes sharing one store, for benchmarks: the embedded
// store (one replica) or a PostgreSQL database. Not thread-safe.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tests/support/server_process.h"
#include "tests/support/temp_dir.h"

namespace switchyard::testing {

class ReplicaSet {
 public:
  // Starts `count` replicas with `flags`. With an empty `database_url` the
  // replica uses the embedded store in its data directory (`count` must be
  // 1); otherwise every replica uses the database, with the password in
  // `password_file`, and the same master key and operator key.
  static absl::StatusOr<std::unique_ptr<ReplicaSet>> Start(int count,
                                                           const std::string& database_url,
                                                           const std::string& password_file,
                                                           const std::vector<std::string>& flags);

  int size() const { return static_cast<int>(servers_.size()); }
  ServerProcess& replica(int i) { return *servers_[static_cast<size_t>(i)]; }
  // The gRPC target of every replica.
  std::vector<std::string> targets() const;
  // The pids of every replica, for CPU accounting.
  std::vector<int> pids() const;

 private:
  ReplicaSet() = default;
  std::vector<std::unique_ptr<TempDir>> dirs_;
  std::vector<std::unique_ptr<ServerProcess>> servers_;
};

}  // namespace switchyard::testing

#endif  // SWITCHYARD_TESTS_SUPPORT_REPLICA_SET_H_
