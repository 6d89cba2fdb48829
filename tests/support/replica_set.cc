#include "tests/support/replica_set.h"

#include <filesystem>

namespace switchyard::testing {

absl::StatusOr<std::unique_ptr<ReplicaSet>> ReplicaSet::Start(
    int count, const std::string& database_url, const std::string& password_file,
    const std::vector<std::string>& flags) {
  if (count < 1 || (database_url.empty() && count != 1)) {
    return absl::InvalidArgumentError("the embedded store has exactly one replica");
  }
  auto set = std::unique_ptr<ReplicaSet>(new ReplicaSet());
  std::vector<std::string> all = flags;
  if (!database_url.empty()) {
    all.push_back("--database_url=" + database_url);
    all.push_back("--database_password_file=" + password_file);
  }
  for (int i = 0; i < count; ++i) {
    set->dirs_.push_back(std::make_unique<TempDir>());
    const std::string& dir = set->dirs_.back()->path();
    if (i > 0) {
      // Replicas share the keys the first one was started with.
      for (const char* file : {"master.keyring", "operator.key"}) {
        std::error_code ec;
        std::filesystem::copy_file(set->dirs_[0]->path() + "/" + file, dir + "/" + file, ec);
        if (ec) return absl::InternalError("cannot copy " + std::string(file));
      }
    }
    auto server = ServerProcess::Start(dir, all);
    if (!server.ok()) return server.status();
    set->servers_.push_back(*std::move(server));
  }
  return set;
}

std::vector<std::string> ReplicaSet::targets() const {
  std::vector<std::string> out;
  for (const auto& s : servers_) out.push_back(s->target());
  return out;
}

std::vector<int> ReplicaSet::pids() const {
  std::vector<int> out;
  for (const auto& s : servers_) out.push_back(static_cast<int>(s->pid()));
  return out;
}

}  // namespace switchyard::testing
