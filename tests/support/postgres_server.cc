#include "tests/support/postgres_server.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "tests/support/temp_dir.h"

namespace switchyard::testing {
absl::StatusOr<std::unique_ptr<PostgresServer>> PostgresServer::Start() {
  const char* tmp = std::getenv("TMPDIR");
  std::string base = absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/sy-pg-XXXXXX");
  if (::mkdtemp(base.data()) == nullptr) return absl::InternalError("mkdtemp failed");
  const std::string dir = base + "/cluster";
  auto server = std::unique_ptr<PostgresServer>(new PostgresServer(base, dir));
  if (absl::Status s = server->Run("start"); !s.ok()) return s;
  server->url_ = ReadTrimmedFile(dir + "/url");
  server->password_ = ReadTrimmedFile(dir + "/password");
  return server;
}

PostgresServer::~PostgresServer() {
  Run("destroy").IgnoreError();
  std::filesystem::remove_all(base_);
}

absl::Status PostgresServer::Stop() { return Run("stop"); }

absl::Status PostgresServer::Resume() { return Run("resume"); }

absl::Status PostgresServer::Run(const char* command) {
  const std::string line = absl::StrCat(SWITCHYARD_SOURCE_DIR, "/scripts/postgres-test.sh ",
                                        command, " '", dir_, "' >>'", base_, "/script.log' 2>&1");
  if (std::system(line.c_str()) != 0) {
    return absl::InternalError(
        absl::StrCat("postgres-test.sh ", command, " failed; see ", base_, "/script.log"));
  }
  return absl::OkStatus();
}

}  // namespace switchyard::testing
