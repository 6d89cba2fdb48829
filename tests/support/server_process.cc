#include "tests/support/server_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/gateway_client.h"
#include "server/auth/token_format.h"
#include "server/crypto/keyring.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_store.h"

namespace switchyard::testing {

std::string ServerProcess::BinaryPath() { return SWITCHYARD_SERVER_PATH; }

namespace {

void WriteIfMissing(const std::string& path, const std::string& text) {
  if (std::filesystem::exists(path)) return;
  std::ofstream(path) << text;
}
}  // namespace

std::string ServerProcess::OperatorKey(const std::string& data_dir) {
  return ReadTrimmedFile(data_dir + "/operator.key");
}

absl::StatusOr<std::unique_ptr<ServerProcess>> ServerProcess::Start(
    const std::string& data_dir, const std::vector<std::string>& extra_flags, bool default_keys,
    bool check_health) {
  std::vector<std::string> args = {BinaryPath(), "--listen=127.0.0.1:0", "--data_dir=" + data_dir,
                                   "--port_file=-", "--http_listen=127.0.0.1:0"};
  std::string operator_key;
  if (default_keys) {
    WriteIfMissing(data_dir + "/master.keyring",
                   std::string(crypto::MasterKeyring::Generate("test1").second.view()));
    WriteIfMissing(data_dir + "/operator.key", auth::MintToken(auth::TokenKind::kOperator));
    operator_key = OperatorKey(data_dir);
    args.push_back("--master_key_file=" + data_dir + "/master.keyring");
    args.push_back("--bootstrap_operator_key_file=" + data_dir + "/operator.key");
  }
  for (std::string& flag : TestStoreServerFlags(data_dir)) args.push_back(std::move(flag));
  // A server restarted on the same data directory is the same replica, as a
  // pod restarted in place is.
  args.push_back("--replica_id=" + std::filesystem::path(data_dir).filename().string());
  args.insert(args.end(), extra_flags.begin(), extra_flags.end());
  const std::string log_path = data_dir + "/server.log";
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return absl::InternalError("pipe failed");
  pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    // A test that crashes takes its servers with it instead of leaving them
    // running (the signal comes when the thread that started it exits, and
    // tests start servers from their main thread).
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) ::dup2(fd, STDERR_FILENO);
    ::dup2(pipe_fds[1], STDOUT_FILENO);
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    _exit(127);
  }
  ::close(pipe_fds[1]);
  // The server prints its port once it listens; the pipe closes early if it
  // exits. One bounded wait covers both.
  std::string line;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (line.find('\n') == std::string::npos) {
    pollfd p{pipe_fds[0], POLLIN, 0};
    int timeout_ms = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
    if (timeout_ms <= 0 || ::poll(&p, 1, timeout_ms) <= 0) break;
    char buf[64];
    ssize_t n = ::read(pipe_fds[0], buf, sizeof(buf));
    if (n <= 0) break;
    line.append(buf, static_cast<size_t>(n));
  }
  ::close(pipe_fds[0]);
  int port = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(line), &port) || port <= 0) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return absl::InternalError(absl::StrCat("server did not start; see ", log_path));
  }
  auto process = std::unique_ptr<ServerProcess>(new ServerProcess(pid, port, operator_key));
  {
    // The "serving" log line, written before the port, names the HTTP port.
    const std::string log = ReadFile(log_path);
    const std::string key = "\"http_port\":";
    const size_t at = log.rfind(key);
    if (at != std::string::npos) process->http_port_ = std::atoi(log.c_str() + at + key.size());
  }
  if (!check_health) return process;
  client::ClientOptions options;
  options.target = process->target();
  auto client = client::GatewayClient::Create(options);
  auto health = client->CheckHealth("");
  if (!health.ok()) return health.status();
  return process;
}

ServerProcess::~ServerProcess() { Kill(); }

void ServerProcess::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

int ServerProcess::Terminate() {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace switchyard::testing
