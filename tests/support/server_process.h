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
  // `data_dir`/server.log. With `default_keys`, a master keyring and an
  // operator key are made in `data_dir` (once; restarts reuse them) and
  // passed to the server. With `check_health`, also waits for a plaintext
  // health check to answer. kInternal when it does not start in 30s.
  static absl::StatusOr<std::unique_ptr<ServerProcess>> Start(
      const std::string& data_dir, const std::vector<std::string>& extra_flags = {},
      bool default_keys = true, bool check_health = true);

  // The operator key made for `data_dir` by Start.
  static std::string OperatorKey(const std::string& data_dir);

  // Kills the process (SIGKILL) if it still runs.
  ~ServerProcess();

  int port() const { return port_; }
  std::string target() const { return "127.0.0.1:" + std::to_string(port_); }
  const std::string& operator_key() const { return operator_key_; }
  // The HTTP (webhook) port, from the server's log.
  int http_port() const { return http_port_; }
  pid_t pid() const { return pid_; }

  // Sends SIGKILL and reaps the process.
  void Kill();
  // Sends SIGTERM and waits for the exit; returns the exit status (or -1 when
  // it died of a signal).
  int Terminate();

  // The path of the binary under test.
  static std::string BinaryPath();

 private:
  ServerProcess(pid_t pid, int port, std::string operator_key)
      : pid_(pid), port_(port), operator_key_(std::move(operator_key)) {}
  pid_t pid_;
  int port_;
  std::string operator_key_;
  int http_port_ = 0;
};

}  // namespace switchyard::testing

#endif  // SWITCHYARD_TESTS_SUPPORT_SERVER_PROCESS_H_
