// Start-up key handling and TLS of the real server binary.

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/gateway_client.h"
#include "gtest/gtest.h"
#include "server/auth/token_format.h"
#include "server/crypto/keyring.h"
#include "tests/support/server_process.h"
#include "tests/support/temp_dir.h"

namespace switchyard {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class SecurityTest : public ::testing::Test {
 protected:
  std::unique_ptr<client::GatewayClient> Client(const std::string& target,
                                                client::ClientOptions options = {}) {
    options.target = target;
    options.max_attempts = 1;
    options.deadline = absl::Seconds(5);
    return client::GatewayClient::Create(options);
  }

  testing::TempDir dir_;
  const std::string auth_key_ = auth::MintToken(auth::TokenKind::kOperator);
};

TEST_F(SecurityTest, RefusesToStartWithoutAMasterKeyAndSaysHowToGiveOne) {
  auto server = testing::ServerProcess::Start(dir_.path(), {}, /*default_keys=*/false);
  EXPECT_FALSE(server.ok());
  const std::string log = ReadFile(dir_.path() + "/server.log");
  EXPECT_NE(log.find("NO_MASTER_KEY"), std::string::npos) << log;
  EXPECT_NE(log.find("SWITCHYARD_MASTER_KEY"), std::string::npos) << log;
}

TEST_F(SecurityTest, RefusesToStartWithTheWrongMasterKey) {
  {
    auto server = testing::ServerProcess::Start(dir_.path());
    ASSERT_TRUE(server.ok()) << server.status();
    EXPECT_EQ((*server)->Terminate(), 0);
  }
  // Same key id, other key material: the gateway's wrapped keys do not open.
  std::ofstream(dir_.path() + "/master.keyring")
      << crypto::MasterKeyring::Generate("test1").second.view();
  auto server = testing::ServerProcess::Start(dir_.path());
  EXPECT_FALSE(server.ok());
  const std::string log = ReadFile(dir_.path() + "/server.log");
  EXPECT_NE(log.find("is it the right master key"), std::string::npos) << log;
}

TEST_F(SecurityTest, MasterKeyFromTheEnvironmentAndRotationWithoutDowntime) {
  const std::string k1 = std::string(crypto::MasterKeyring::Generate("k1").second.view());
  const std::string k2 = std::string(crypto::MasterKeyring::Generate("k2").second.view());
  const std::string keyring = dir_.path() + "/ring";
  std::ofstream(dir_.path() + "/op.key") << auth_key_;
  const std::vector<std::string> op_flag = {"--bootstrap_operator_key_file=" + dir_.path() +
                                            "/op.key"};
  auto start_with_file = [&] {
    std::vector<std::string> flags = op_flag;
    flags.push_back("--master_key_file=" + keyring);
    return testing::ServerProcess::Start(dir_.path(), flags, /*default_keys=*/false);
  };
  // First start: the keyring comes from the environment, as from a
  // Kubernetes Secret.
  setenv("SWITCHYARD_MASTER_KEY", k1.c_str(), 1);
  auto server = testing::ServerProcess::Start(dir_.path(), op_flag, /*default_keys=*/false);
  unsetenv("SWITCHYARD_MASTER_KEY");
  ASSERT_TRUE(server.ok()) << server.status();
  {
    // The key is gone from the process's environment as others can read it.
    std::ifstream environ_file(absl::StrCat("/proc/", (*server)->pid(), "/environ"));
    const std::string environ_text((std::istreambuf_iterator<char>(environ_file)),
                                   std::istreambuf_iterator<char>());
    ASSERT_FALSE(environ_text.empty());
    EXPECT_EQ(environ_text.find(k1.substr(3, 40)), std::string::npos);
  }
  client::ClientOptions options;
  options.api_key = auth_key_;
  auto c = Client((*server)->target(), options);
  v1::CreateCreditPoolRequest pool;
  pool.set_credit_pool_id("p");
  pool.mutable_credit_pool()->set_capacity(5);
  ASSERT_TRUE(c->CreateCreditPool(pool).ok());
  v1::CreateTenantRequest tenant;
  tenant.set_tenant_id("acme");
  tenant.mutable_tenant()->set_credit_pool("creditPools/p");
  ASSERT_TRUE(c->CreateTenant(tenant).ok());
  v1::CreateConnectionRequest conn;
  conn.set_parent("tenants/acme");
  conn.set_connection_id("mx");
  conn.mutable_connection()->set_system("systems/maintainx");
  conn.mutable_connection()->set_deployment(v1::CLOUD);
  ASSERT_TRUE(c->CreateConnection(conn).ok());
  v1::SetConnectionCredentialsRequest set;
  set.mutable_credentials()->set_name("tenants/acme/connections/mx/credentials");
  set.mutable_credentials()->set_api_key("mx-api-key-1");
  ASSERT_TRUE(c->SetConnectionCredentials(set).ok());
  c.reset();
  EXPECT_EQ((*server)->Terminate(), 0);

  // Rotation: the new key first, the old one kept; restart; rewrap; drop k1.
  std::ofstream(keyring) << k2 << k1;
  server = start_with_file();
  ASSERT_TRUE(server.ok()) << server.status();
  c = Client((*server)->target(), options);
  auto rewrapped = c->RewrapDataKeys({});
  ASSERT_TRUE(rewrapped.ok()) << rewrapped.status();
  EXPECT_EQ(rewrapped->primary_master_key_id(), "k2");
  EXPECT_GE(rewrapped->rewrapped(), 2);
  c.reset();
  EXPECT_EQ((*server)->Terminate(), 0);

  std::ofstream(keyring) << k2;
  server = start_with_file();
  ASSERT_TRUE(server.ok()) << server.status();
  c = Client((*server)->target(), options);
  v1::GetConnectionCredentialsRequest get;
  get.set_name("tenants/acme/connections/mx/credentials");
  get.set_reveal_secrets(true);
  auto creds = c->GetConnectionCredentials(get);
  ASSERT_TRUE(creds.ok()) << creds.status();
  EXPECT_EQ(creds->api_key(), "mx-api-key-1");
}

// A throwaway PKI made with the openssl command: a CA, a server certificate
// for 127.0.0.1 and a client certificate.
class TlsTest : public SecurityTest {
 protected:
  void SetUp() override {
    const std::string d = dir_.path();
    const std::string script = absl::StrCat(
        "set -e; cd ", d, "; ",
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes ",
        "-keyout ca.key -out ca.pem -days 2 -subj /CN=switchyard-test-ca 2>/dev/null; ",
        "for who in server client; do ",
        "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes ",
        "-keyout $who.key -out $who.csr -subj /CN=$who 2>/dev/null; ",
        "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost' > $who.ext; ",
        "openssl x509 -req -in $who.csr -CA ca.pem -CAkey ca.key -CAcreateserial ",
        "-out $who.pem -days 2 -extfile $who.ext 2>/dev/null; done; ",
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes ",
        "-keyout intruder.key -out intruder.pem -days 2 -subj /CN=intruder 2>/dev/null");
    ASSERT_EQ(std::system(("bash -c '" + script + "'").c_str()), 0);
  }

  client::ClientOptions TlsOptions(bool with_client_cert) {
    client::ClientOptions options;
    options.tls = true;
    options.tls_root_certs = ReadFile(dir_.path() + "/ca.pem");
    if (with_client_cert) {
      options.tls_client_cert = ReadFile(dir_.path() + "/client.pem");
      options.tls_client_key = ReadFile(dir_.path() + "/client.key");
    }
    return options;
  }
};

TEST_F(TlsTest, ServesTlsAndStillAuthenticatesCallers) {
  const std::string d = dir_.path();
  auto server = testing::ServerProcess::Start(
      d, {"--tls_cert_file=" + d + "/server.pem", "--tls_key_file=" + d + "/server.key"},
      /*default_keys=*/true, /*check_health=*/false);
  ASSERT_TRUE(server.ok()) << server.status();
  auto tls = Client((*server)->target(), TlsOptions(false));
  auto health = tls->CheckHealth("");
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(tls->ListConnections({}).status().code(), absl::StatusCode::kUnauthenticated);
  client::ClientOptions keyed = TlsOptions(false);
  keyed.api_key = (*server)->operator_key();
  EXPECT_TRUE(Client((*server)->target(), keyed)->ListSystems({}).ok());
  // A plaintext client cannot talk to the TLS port.
  EXPECT_FALSE(Client((*server)->target())->CheckHealth("").ok());
}

TEST_F(TlsTest, ARenewedCertificateIsServedWithoutARestart) {
  const std::string d = dir_.path();
  // The renewal comes from another CA, so that a client can tell the two
  // certificates apart: one trusting only the new CA fails before, and
  // succeeds once the new certificate is served.
  const std::string script = absl::StrCat(
      "set -e; cd ", d, "; ",
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes ",
      "-keyout ca2.key -out ca2.pem -days 2 -subj /CN=switchyard-test-ca-2 2>/dev/null; ",
      "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes ",
      "-keyout renewed.key -out renewed.csr -subj /CN=server 2>/dev/null; ",
      "openssl x509 -req -in renewed.csr -CA ca2.pem -CAkey ca2.key -CAcreateserial ",
      "-out renewed.pem -days 2 -extfile server.ext 2>/dev/null");
  ASSERT_EQ(std::system(("bash -c '" + script + "'").c_str()), 0);
  auto server = testing::ServerProcess::Start(
      d,
      {"--tls_cert_file=" + d + "/server.pem", "--tls_key_file=" + d + "/server.key",
       "--tls_reload_interval=1s"},
      /*default_keys=*/true, /*check_health=*/false);
  ASSERT_TRUE(server.ok()) << server.status();
  client::ClientOptions renewed = TlsOptions(false);
  renewed.tls_root_certs = ReadFile(d + "/ca2.pem");
  ASSERT_TRUE(Client((*server)->target(), TlsOptions(false))->CheckHealth("").ok());
  EXPECT_FALSE(Client((*server)->target(), renewed)->CheckHealth("").ok());

  // As a Secret volume is updated: new files renamed into place.
  std::filesystem::rename(d + "/renewed.key", d + "/server.key");
  std::filesystem::rename(d + "/renewed.pem", d + "/server.pem");
  // The server reads the files every second; each try is a new handshake.
  bool served = false;
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  while (!served && absl::Now() < give_up) {
    served = Client((*server)->target(), renewed)->CheckHealth("").ok();
  }
  EXPECT_TRUE(served);
  EXPECT_FALSE(Client((*server)->target(), TlsOptions(false))->CheckHealth("").ok());
}

TEST_F(TlsTest, AKeyThatIsNotTheCertificatesStopsTheStartAndSaysWhy) {
  const std::string d = dir_.path();
  testing::TempDir other;
  auto server = testing::ServerProcess::Start(
      other.path(), {"--tls_cert_file=" + d + "/server.pem", "--tls_key_file=" + d + "/client.key"},
      /*default_keys=*/true, /*check_health=*/false);
  EXPECT_FALSE(server.ok());
  const std::string log = ReadFile(other.path() + "/server.log");
  EXPECT_NE(log.find("INVALID_TLS_FILE"), std::string::npos) << log;
  EXPECT_NE(log.find("does not belong to the certificate"), std::string::npos) << log;
}

TEST_F(TlsTest, MutualTlsRejectsClientsWithoutACertificateFromTheCa) {
  const std::string d = dir_.path();
  auto server = testing::ServerProcess::Start(
      d,
      {"--tls_cert_file=" + d + "/server.pem", "--tls_key_file=" + d + "/server.key",
       "--tls_client_ca_file=" + d + "/ca.pem"},
      /*default_keys=*/true, /*check_health=*/false);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_FALSE(Client((*server)->target(), TlsOptions(false))->CheckHealth("").ok());
  auto with_cert = Client((*server)->target(), TlsOptions(true));
  auto health = with_cert->CheckHealth("");
  ASSERT_TRUE(health.ok()) << health.status();
  // A certificate from another CA is refused too.
  client::ClientOptions foreign = TlsOptions(false);
  foreign.tls_client_cert = ReadFile(d + "/intruder.pem");
  foreign.tls_client_key = ReadFile(d + "/intruder.key");
  EXPECT_FALSE(Client((*server)->target(), foreign)->CheckHealth("").ok());
}

// The port a log line of the server reports as `field`.
int LoggedPort(const std::string& log, const std::string& field) {
  const std::string key = "\"" + field + "\":";
  size_t at = log.rfind(key);
  return at == std::string::npos ? 0 : std::atoi(log.c_str() + at + key.size());
}

TEST_F(TlsTest, PlaintextStaysAvailableOnLoopbackAndForHealthProbes) {
  const std::string d = dir_.path();
  auto server = testing::ServerProcess::Start(
      d,
      {"--tls_cert_file=" + d + "/server.pem", "--tls_key_file=" + d + "/server.key",
       "--plaintext_listen=127.0.0.1:0", "--health_listen=127.0.0.1:0"},
      /*default_keys=*/true, /*check_health=*/false);
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string log = ReadFile(d + "/server.log");
  const int plaintext = LoggedPort(log, "plaintext_port");
  const int health = LoggedPort(log, "health_port");
  ASSERT_GT(plaintext, 0) << log;
  ASSERT_GT(health, 0) << log;

  client::ClientOptions keyed;
  keyed.api_key = (*server)->operator_key();
  auto loopback = Client("127.0.0.1:" + std::to_string(plaintext), keyed);
  EXPECT_TRUE(loopback->ListSystems({}).ok());

  auto probe = Client("127.0.0.1:" + std::to_string(health), keyed);
  auto serving = probe->CheckHealth("");
  ASSERT_TRUE(serving.ok()) << serving.status();
  EXPECT_EQ(serving->status(), grpc::health::v1::HealthCheckResponse::SERVING);
  EXPECT_EQ(probe->CheckHealth("switchyard.v1.Gateway")->status(),
            grpc::health::v1::HealthCheckResponse::SERVING);
  // The health listener serves nothing else.
  EXPECT_EQ(probe->ListSystems({}).status().code(), absl::StatusCode::kUnimplemented);
}

TEST_F(TlsTest, APlaintextListenerMustBeLoopback) {
  const std::string d = dir_.path();
  for (const char* address : {"0.0.0.0:0", "127.example.com:0", "[::]:0"}) {
    SCOPED_TRACE(address);
    auto server = testing::ServerProcess::Start(
        d,
        {"--tls_cert_file=" + d + "/server.pem", "--tls_key_file=" + d + "/server.key",
         std::string("--plaintext_listen=") + address},
        /*default_keys=*/true, /*check_health=*/false);
    EXPECT_FALSE(server.ok());
    EXPECT_NE(ReadFile(d + "/server.log").find("must be a loopback address"), std::string::npos);
  }
}

TEST_F(TlsTest, IncompleteTlsSettingsStopTheStartWithAClearMessage) {
  const std::string d = dir_.path();
  auto server = testing::ServerProcess::Start(d, {"--tls_cert_file=" + d + "/server.pem"});
  EXPECT_FALSE(server.ok());
  EXPECT_NE(ReadFile(d + "/server.log").find("both a certificate file and a private key"),
            std::string::npos);
}

}  // namespace
}  // namespace switchyard
