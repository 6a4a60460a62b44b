// The rendered configuration of an S3 repository, read by the real
// pgBackRest (as the PostgreSQL user when we are root), against the S3 test
// server over HTTPS: the endpoint as host:port, path style, the test CA.
// The control-plane S3 drill (tests/service) runs backups and restores
// through the same configuration; this is its quick, narrow part.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "common/subprocess.h"
#include "pgbackup/config.h"
#include "testutil/require.h"
#include "testutil/s3_test_server.h"
#include "testutil/temp_dir.h"

namespace kindling::pgbackup {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class PgBackRestS3Test : public ::testing::Test {
 protected:
  void SetUp() override {
    KINDLING_REQUIRE_S3_TEST_SERVER();
    KINDLING_REQUIRE(fs::exists(kDefaultBinary), "pgBackRest");
    if (::geteuid() == 0) {
      auto user = LookUpSystemUser("postgres");
      ASSERT_TRUE(user) << user.error().message();
      run_as_ = *user;
    }
    ::chmod(dir_.path().c_str(), 0755);
    for (const char* sub : {"log", "lock", "spool"}) {
      fs::create_directories(dir_ / sub);
      if (run_as_) {
        ASSERT_EQ(::chown((dir_ / sub).c_str(), run_as_->uid, run_as_->gid), 0);
      }
    }
    testutil::S3TestServerOptions options;
    options.tls = true;
    server_.emplace(options);
  }

  ClusterConfig Config() const {
    ClusterConfig config;
    config.config_file = dir_ / "pgbackrest.conf";
    config.data_dir = dir_ / "data";
    config.socket_dir = dir_.path();
    config.spool_dir = dir_ / "spool";
    config.log_dir = dir_ / "log";
    config.lock_dir = dir_ / "lock";
    config.repository.path = "/control-plane";
    config.repository.s3 =
        S3Repository{.bucket = server_->options().bucket,
                     .endpoint = server_->host_port(),
                     .region = "us-east-1",
                     .key = server_->options().access_key_id,
                     .key_secret = Secret::FromView(server_->options().secret_access_key),
                     .uri_style = "path",
                     .ca_file = server_->ca_file()};
    config.cipher_passphrase = Secret(std::string(64, 'a'));
    return config;
  }

  // `pgbackrest repo-ls` with the configuration `config` renders.
  CommandResult RepoLs(const ClusterConfig& config) {
    EXPECT_TRUE(Validate(config));
    testutil::WriteFile(config.config_file, std::string(RenderConfig(config).Reveal()));
    ::chmod(config.config_file.c_str(), 0644);
    CommandOptions options;
    options.args = {kDefaultBinary, "--config=" + config.config_file.string(), "repo-ls"};
    options.run_as = run_as_;
    options.drop_env_prefixes = {"PG"};
    options.timeout = std::chrono::seconds(60);
    auto result = SystemCommandRunner().Run(options);
    EXPECT_TRUE(result) << result.error().message();
    return result ? *result : CommandResult{.exit_status = -1};
  }

  testutil::TempDir dir_;
  std::optional<RunAsUser> run_as_;
  std::optional<testutil::S3TestServer> server_;
};

TEST_F(PgBackRestS3Test, ListsTheBucketOverHttpsWithTheTestCa) {
  EXPECT_EQ(server_->endpoint(), "https://" + server_->host_port());
  EXPECT_TRUE(server_->host_port().starts_with("localhost:"));
  // A bucket-level listing ("GET /bucket/?list-type=2..."): signed right,
  // and the certificate verified against the CA file.
  const CommandResult listed = RepoLs(Config());
  EXPECT_EQ(listed.exit_status, 0) << listed.output << listed.errors;
}

TEST_F(PgBackRestS3Test, WrongSecretAndUnknownCaAreRefused) {
  ClusterConfig wrong_secret = Config();
  wrong_secret.repository.s3->key_secret = Secret::FromView("not-the-secret");
  const CommandResult refused = RepoLs(wrong_secret);
  EXPECT_NE(refused.exit_status, 0);
  EXPECT_THAT(refused.output + refused.errors, HasSubstr("403"));

  // Without the CA file the system's CAs do not know the certificate
  // (pgBackRest tries again until its I/O timeout).
  ClusterConfig system_cas = Config();
  system_cas.repository.s3->ca_file.clear();
  system_cas.io_timeout = std::chrono::seconds(1);
  const CommandResult untrusted = RepoLs(system_cas);
  EXPECT_NE(untrusted.exit_status, 0);
  EXPECT_THAT(untrusted.output + untrusted.errors, HasSubstr("certificate"));
}

}  // namespace
}  // namespace kindling::pgbackup
