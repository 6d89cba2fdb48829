#ifndef SWITCHYARD_TESTS_SUPPORT_POSTGRES_SERVER_H_
#define SWITCHYARD_TESTS_SUPPORT_POSTGRES_SERVER_H_

// A private PostgreSQL cluster for one test (scripts/postgres-test.sh), for
// tests that stop and restart the database without disturbing the shared test
// server. Not thread-safe.

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace switchyard::testing {

class PostgresServer {
 public:
  // Creates and starts a cluster in a new directory under $TMPDIR (or /tmp).
  static absl::StatusOr<std::unique_ptr<PostgresServer>> Start();
  // Stops the cluster and removes its directory.
  ~PostgresServer();

  // Fast shutdown: sessions are ended, committed data is kept.
  absl::Status Stop();
  // Starts the stopped cluster again on the same port.
  absl::Status Resume();

  // Admin connection URI and password.
  const std::string& url() const { return url_; }
  const std::string& password() const { return password_; }

 private:
  PostgresServer(std::string base, std::string dir)
      : base_(std::move(base)), dir_(std::move(dir)) {}
  absl::Status Run(const char* command);

  const std::string base_;  // removed with everything in it
  const std::string dir_;   // the cluster, inside base_
  std::string url_;
  std::string password_;
};

}  // namespace switchyard::testing

#endif  // SWITCHYARD_TESTS_SUPPORT_POSTGRES_SERVER_H_
