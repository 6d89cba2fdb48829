#include "server/startup_keys.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "server/auth/token_format.h"
#include "server/common/log.h"
#include "server/common/status.h"
#include "server/crypto/secret.h"

namespace switchyard {
namespace {
absl::StatusOr<std::string> ReadFile(const std::string& path, absl::string_view what) {
  struct stat info;
  // Group access is allowed: Kubernetes gives mounted secrets to the pod's
  // group (fsGroup).
  if (::stat(path.c_str(), &info) == 0 && (info.st_mode & 007) != 0) {
    log::Warning("key file is readable by every user; make it mode 0600 or 0640",
                 {{"file", path}, {"what", what}});
  }
  // Read straight into one string (no stream buffers left holding copies
  // of the key); the caller wipes it.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NotFound("KEY_FILE_UNREADABLE", absl::StrCat("cannot read ", what, " ", path));
  std::string text;
  text.reserve(64 << 10);
  char chunk[4096];
  bool failed = false;
  while (true) {
    const ssize_t n = ::read(fd, chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      failed = n < 0;
      break;
    }
    if (text.size() + static_cast<size_t>(n) > text.capacity()) {
      failed = true;  // key files are small; this is something else
      break;
    }
    text.append(chunk, static_cast<size_t>(n));
  }
  OPENSSL_cleanse(chunk, sizeof(chunk));
  ::close(fd);
  if (failed) {
    crypto::Wipe(text);
    return NotFound("KEY_FILE_UNREADABLE",
                    absl::StrCat("cannot read ", what, " ", path, " (or it is over 64 KiB)"));
  }
  return text;
}

// Reads `path`, or creates it (mode 0600) with `make()` when missing.
template <typename Make>
absl::StatusOr<std::string> ReadOrCreate(const std::string& path, Make make) {
  if (std::filesystem::exists(path)) return ReadFile(path, "dev key file");
  // Written whole to a temporary file and renamed, so that a crash never
  // leaves a partial key behind.
  std::string text = make();
  const std::string tmp = path + ".tmp";
  ::unlink(tmp.c_str());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  const bool ok = fd >= 0 &&
                  ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                  ::fsync(fd) == 0;
  if (fd >= 0) ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return Error(absl::StatusCode::kUnavailable, "KEY_FILE_UNWRITABLE",
                 absl::StrCat("cannot write ", path));
  }
  return text;
}
}  // namespace

absl::StatusOr<StartupKeys> LoadStartupKeys(const KeySources& sources) {
  StartupKeys keys;
  std::string keyring_text;
  if (!sources.master_key_file.empty()) {
    SY_ASSIGN_OR_RETURN(keyring_text, ReadFile(sources.master_key_file, "master key file"));
  } else if (!sources.master_key_env.empty()) {
    keyring_text = sources.master_key_env;
  } else if (sources.dev_mode) {
    const std::string path = sources.data_dir + "/dev-master-keyring";
    SY_ASSIGN_OR_RETURN(keyring_text, ReadOrCreate(path, [] {
                          auto generated = crypto::MasterKeyring::Generate("dev1");
                          return std::string(generated.second.view());
                        }));
    log::Warning(
        "DEV MODE: using a generated master key stored beside the data it protects. Secrets "
        "in this store are NOT protected. Never use --dev_mode in production.",
        {{"master_key_file", path}});
  } else {
    return FailedPrecondition(
        "NO_MASTER_KEY",
        "no master key: set SWITCHYARD_MASTER_KEY or --master_key_file (entries ID:BASE64KEY of "
        "32 random bytes, for example from 'openssl rand -base64 32'); for a throwaway local "
        "setup only, use --dev_mode");
  }
  absl::StatusOr<std::unique_ptr<crypto::MasterKeyring>> keyring =
      crypto::MasterKeyring::Parse(keyring_text);
  crypto::Wipe(keyring_text);
  SY_RETURN_IF_ERROR(keyring.status());
  keys.keyring = *std::move(keyring);

  if (!sources.operator_key_file.empty()) {
    SY_ASSIGN_OR_RETURN(keys.bootstrap_operator_key,
                        ReadFile(sources.operator_key_file, "operator key file"));
  } else if (!sources.operator_key_env.empty()) {
    keys.bootstrap_operator_key = sources.operator_key_env;
  } else if (sources.dev_mode) {
    const std::string path = sources.data_dir + "/dev-operator-key";
    SY_ASSIGN_OR_RETURN(keys.bootstrap_operator_key, ReadOrCreate(path, [] {
                          return auth::MintToken(auth::TokenKind::kOperator) + "\n";
                        }));
    log::Warning("DEV MODE: operator key written to a file; use it as the bearer credential",
                 {{"operator_key_file", path}});
  }
  std::string stripped(absl::StripAsciiWhitespace(keys.bootstrap_operator_key));
  crypto::Wipe(keys.bootstrap_operator_key);
  keys.bootstrap_operator_key = std::move(stripped);
  return keys;
}

absl::StatusOr<std::string> LoadDatabasePassword(const std::string& file,
                                                 const std::string& env_value) {
  if (file.empty()) return env_value;
  SY_ASSIGN_OR_RETURN(std::string password, ReadFile(file, "database password file"));
  while (!password.empty() && (password.back() == '\n' || password.back() == '\r')) {
    password.pop_back();
  }
  return password;
}

}  // namespace switchyard
