#ifndef SWITCHYARD_TESTS_SUPPORT_SERVER_PROCESS_H_
#define SWITCHYARD_TESTS_SUPPORT_SERVER_PROCESS_H_

// Runs the real switchyard-server binary as a child process on 127.0.0.1 with
// port 0, for integration tests and benchmarks.

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace switchyard::testing {

// Not thread-safe.
class ServerProcess {
 public:
  // Starts the server with `data_dir` and `extra_flags`, and returns once it
  // serves gRPC (its health check answers). Its stderr goes to
  // `data_dir`/server.log. kDeadlineExceeded when it is not ready in 30s.
  static absl::StatusOr<std::unique_ptr<ServerProcess>> Start(
      const std::string& data_dir, const std::vector<std::string>& extra_flags = {});

  // Kills the process (SIGKILL) if it still runs.
  ~ServerProcess();

  int port() const { return port_; }
  std::string target() const { return "127.0.0.1:" + std::to_string(port_); }
  pid_t pid() const { return pid_; }

  // Sends SIGKILL and reaps the process.
  void Kill();
  // Sends SIGTERM and waits for the exit; returns the exit status (or -1 when
  // it died of a signal).
  int Terminate();

  // The path of the binary under test.
  static std::string BinaryPath();

 private:
  ServerProcess(pid_t pid, int port) : pid_(pid), port_(port) {}
  pid_t pid_;
  int port_;
};

}  // namespace switchyard::testing

#endif  // SWITCHYARD_TESTS_SUPPORT_SERVER_PROCESS_H_
