#ifndef SWITCHYARD_SERVER_STARTUP_KEYS_H_
#define SWITCHYARD_SERVER_STARTUP_KEYS_H_

// Where the master keyring and the first operator key come from at start-up.

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/crypto/keyring.h"

namespace switchyard {

struct KeySources {
  // File holding the master keyring (see crypto/keyring.h).
  std::string master_key_file;
  // The keyring text itself, from the SWITCHYARD_MASTER_KEY environment variable.
  std::string master_key_env;
  // File holding the first operator key (syo_...).
  std::string operator_key_file;
  // The first operator key, from the SWITCHYARD_OPERATOR_KEY environment variable.
  std::string operator_key_env;
  // Generate a master key and an operator key into `data_dir` when none is
  // given. For local use only: the master key then sits beside the data it
  // protects.
  bool dev_mode = false;
  std::string data_dir;
};

struct StartupKeys {
  std::unique_ptr<crypto::MasterKeyring> keyring;
  // Empty when none was supplied.
  std::string bootstrap_operator_key;
};

// FAILED_PRECONDITION / NO_MASTER_KEY when no master key is configured and
// dev mode is off; INVALID_ARGUMENT for a malformed keyring; NOT_FOUND when a
// named file cannot be read. Never falls back to something insecure.
absl::StatusOr<StartupKeys> LoadStartupKeys(const KeySources& sources);

// The PostgreSQL password: the content of `file` without its trailing line
// break when a file is named, else `env_value` (from the
// SWITCHYARD_DATABASE_PASSWORD environment variable); empty when neither is
// set. NOT_FOUND / KEY_FILE_UNREADABLE when the file cannot be read.
absl::StatusOr<std::string> LoadDatabasePassword(const std::string& file,
                                                 const std::string& env_value);

}  // namespace switchyard

#endif  // SWITCHYARD_SERVER_STARTUP_KEYS_H_
