// switchyardctl against the real server: subscriptions, a live tail, dead
// letters and their replay, as an operator would use them.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/gateway_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/gateway_setup.h"
#include "tests/support/server_process.h"
#include "tests/support/temp_dir.h"

namespace switchyard {
namespace {

using ::testing::HasSubstr;

struct Output {
  int exit_code = -1;
  std::string text;
};

class SwitchyardctlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = testing::ServerProcess::Start(dir_.path());
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    client::ClientOptions options;
    options.target = server_->target();
    options.api_key = server_->operator_key();
    client_ = client::GatewayClient::Create(options);
    ASSERT_TRUE(
        testing::CreateTenantWithConnection(*client_, "main", 10, "acme", "mx", "maintainx").ok());
  }

  // Runs switchyardctl with `args`; the key comes from the environment.
  Output Ctl(const std::string& args) {
    const std::string command =
        absl::StrCat("SWITCHYARD_API_KEY=", server_->operator_key(), " ", SWITCHYARD_CTL_PATH,
                     " --target=", server_->target(), " ", args, " 2>&1");
    Output out;
    FILE* pipe = ::popen(command.c_str(), "r");
    if (pipe == nullptr) return out;
    char buffer[4096];
    size_t n;
    while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) out.text.append(buffer, n);
    const int status = ::pclose(pipe);
    out.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return out;
  }

  void Publish(const std::vector<std::string>& ids) {
    v1::PublishEventsRequest req;
    req.set_parent("tenants/acme/connections/mx");
    for (const std::string& id : ids) {
      auto* e = req.add_events();
      e->set_event_id(id);
      e->set_type("work_order.closed");
      e->set_body("{\"wo\":\"" + id + "\"}");
    }
    ASSERT_TRUE(client_->PublishEvents(req).ok());
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::ServerProcess> server_;
  std::unique_ptr<client::GatewayClient> client_;
};

TEST_F(SwitchyardctlTest, TailsASubscriptionAndHandlesDeadLetters) {
  Output created =
      Ctl("subscriptions create acme/wo --types=work_order.* --max_attempts=1 --ordered");
  ASSERT_EQ(created.exit_code, 0) << created.text;
  EXPECT_THAT(created.text, HasSubstr("tenants/acme/subscriptions/wo"));
  Output listed = Ctl("subscriptions list acme");
  EXPECT_THAT(listed.text, HasSubstr("tenants/acme/subscriptions/wo"));

  Publish({"wo-1", "wo-2"});
  // A human-readable line per event, acknowledged.
  Output tail = Ctl("subscriptions tail acme/wo --count=1");
  ASSERT_EQ(tail.exit_code, 0) << tail.text;
  EXPECT_THAT(tail.text, HasSubstr("tenants/acme/connections/mx"));
  EXPECT_THAT(tail.text, HasSubstr("work_order.closed  wo-1  attempt 1"));

  // Refused once, the one attempt allowed runs out: a dead letter. (wo-2
  // may have reached the first tail just before it closed: that delivery
  // used no attempt, but took number 1.)
  Output unacked = Ctl("subscriptions tail acme/wo --count=1 --nack --json");
  ASSERT_EQ(unacked.exit_code, 0) << unacked.text;
  EXPECT_THAT(unacked.text, HasSubstr("\"event_id\":\"wo-2\""));
  EXPECT_THAT(unacked.text, ::testing::ContainsRegex("\"delivery_attempt\":[12]}"));

  // The dead letter is written asynchronously after the stream ends; the
  // listing converges within a few tries of the CLI itself.
  Output dead;
  for (int i = 0; i < 200; ++i) {
    dead = Ctl("subscriptions dead-letters acme/wo");
    if (dead.text.find("wo-2") != std::string::npos) break;
  }
  ASSERT_EQ(dead.exit_code, 0) << dead.text;
  EXPECT_THAT(dead.text, HasSubstr("wo-2  work_order.closed  attempts 1"));

  Output replay = Ctl("subscriptions replay acme/wo");
  EXPECT_THAT(replay.text, HasSubstr("replaying 1 dead letters"));
  Output again = Ctl("subscriptions tail acme/wo --count=1");
  EXPECT_THAT(again.text, HasSubstr("wo-2  attempt 1"));

  Output bad = Ctl("subscriptions get acme/missing");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_THAT(bad.text, HasSubstr("SUBSCRIPTION_NOT_FOUND"));
  EXPECT_EQ(Ctl("subscriptions seek acme/wo").exit_code, 2);  // needs --time or --connection
  EXPECT_EQ(Ctl("subscriptions seek acme/wo --connection=acme/mx --after=0").exit_code, 0);
  EXPECT_EQ(Ctl("subscriptions delete acme/wo").exit_code, 0);
}

TEST_F(SwitchyardctlTest, TailedTextFromSendersCannotDriveTheTerminal) {
  ASSERT_EQ(Ctl("subscriptions create acme/raw").exit_code, 0);
  v1::PublishEventsRequest req;
  req.set_parent("tenants/acme/connections/mx");
  auto* e = req.add_events();
  e->set_event_id("esc-1");
  e->set_type("work_order.\x1b[31mred");
  // A title change (OSC), a screen clear, a C1 control in UTF-8, DEL.
  e->set_body("\x1b]0;owned\x07{\"a\":\"\x1b[2J\xc2\x9b\x7f hello\"}");
  ASSERT_TRUE(client_->PublishEvents(req).ok());
  Output tail = Ctl("subscriptions tail acme/raw --count=1");
  ASSERT_EQ(tail.exit_code, 0) << tail.text;
  EXPECT_THAT(tail.text, HasSubstr("esc-1"));
  EXPECT_THAT(tail.text, HasSubstr("hello"));
  EXPECT_EQ(tail.text.find('\x1b'), std::string::npos);
  EXPECT_EQ(tail.text.find('\x07'), std::string::npos);
  EXPECT_EQ(tail.text.find('\x7f'), std::string::npos);
  EXPECT_EQ(tail.text.find("\xc2\x9b"), std::string::npos);
}

TEST_F(SwitchyardctlTest, CtrlCEndsATailCleanlySoItsEventsUseNoAttempt) {
  ASSERT_EQ(Ctl("subscriptions create acme/live --max_attempts=1").exit_code, 0);
  Publish({"wo-live"});
  // A live tail that does not acknowledge, read line by line.
  int out[2];
  ASSERT_EQ(::pipe(out), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::dup2(out[1], 1);
    ::dup2(out[1], 2);
    ::close(out[0]);
    ::setenv("SWITCHYARD_API_KEY", server_->operator_key().c_str(), 1);
    const std::string target = "--target=" + server_->target();
    ::execl(SWITCHYARD_CTL_PATH, SWITCHYARD_CTL_PATH, target.c_str(), "subscriptions", "tail",
            "acme/live", "--no_ack", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(out[1]);
  FILE* lines = ::fdopen(out[0], "r");
  ASSERT_NE(lines, nullptr);
  std::string text;
  char line[4096];
  while (text.find("wo-live") == std::string::npos && std::fgets(line, sizeof(line), lines)) {
    text += line;
  }
  ASSERT_NE(text.find("wo-live  attempt 1"), std::string::npos) << text;
  ::kill(pid, SIGINT);
  while (std::fgets(line, sizeof(line), lines)) text += line;
  std::fclose(lines);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << text;
  EXPECT_EQ(WEXITSTATUS(status), 0) << text;
  // Half-closed, not cancelled: with one attempt allowed, the event comes
  // again instead of becoming a dead letter.
  Output again = Ctl("subscriptions tail acme/live --count=1");
  EXPECT_THAT(again.text, HasSubstr("wo-live  attempt 2"));
}

TEST_F(SwitchyardctlTest, ManagesHealthChecksAndIncidents) {
  Output set = Ctl("health set acme mx --url=https://mx.acme.example/health --interval=1m");
  ASSERT_EQ(set.exit_code, 0) << set.text;
  EXPECT_THAT(set.text, HasSubstr("https://mx.acme.example/health"));
  EXPECT_THAT(set.text, HasSubstr("UNKNOWN"));
  EXPECT_EQ(Ctl("health set acme mx --url=ftp://nope").exit_code, 1);
  Output feed =
      Ctl("feeds set acme mx --url=https://mx.acme.example/changes --interval=2m "
          "--when_silent=15m");
  ASSERT_EQ(feed.exit_code, 0) << feed.text;
  EXPECT_THAT(feed.text, HasSubstr("WHEN_WEBHOOKS_SILENT"));
  Output get = Ctl("health get acme mx");
  EXPECT_THAT(get.text, HasSubstr("tenants/acme/connections/mx/health"));

  Output created = Ctl("incidents create --title='Slow webhooks' --severity=MINOR");
  ASSERT_EQ(created.exit_code, 0) << created.text;
  EXPECT_THAT(created.text, HasSubstr("incidents/1"));
  EXPECT_EQ(Ctl("incidents annotate 1 'looking into it'").exit_code, 0);
  Output listed = Ctl("incidents list --state=OPEN");
  EXPECT_THAT(listed.text, HasSubstr("Slow webhooks"));
  Output resolved = Ctl("incidents resolve 1 'fixed'");
  EXPECT_THAT(resolved.text, HasSubstr("RESOLVED"));
  EXPECT_THAT(Ctl("incidents list --state=OPEN").text, HasSubstr("(none)"));
  Output again = Ctl("incidents resolve 1");
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_THAT(again.text, HasSubstr("INCIDENT_RESOLVED"));
}

}  // namespace
}  // namespace switchyard
