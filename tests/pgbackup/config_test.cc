#include "pgbackup/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace kindling::pgbackup {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

crypto::Key FixedKey(std::uint8_t fill) {
  crypto::Key key;
  key.fill(fill);
  return key;
}

ClusterConfig DevLike() {
  ClusterConfig config;
  config.config_file = "/var/tmp/kindling-dev/pgbackrest.conf";
  config.data_dir = "/var/tmp/kindling-dev/postgres/data";
  config.socket_dir = "/var/tmp/kindling-dev/postgres";
  config.port = 5432;
  config.spool_dir = "/var/tmp/kindling-dev/pgbackrest-spool";
  config.log_dir = "/var/tmp/kindling-dev/logs/pgbackrest";
  config.lock_dir = "/var/tmp/kindling-dev/pgbackrest-spool/lock";
  config.repository.path = "/var/tmp/kindling-dev/pgbackrest";
  config.cipher_passphrase = RepositoryPassphrase(FixedKey(7));
  return config;
}

TEST(PgBackupConfigTest, RendersTheLocalRepositoryConfiguration) {
  const ClusterConfig config = DevLike();
  ASSERT_TRUE(Validate(config));
  const std::string expected =
      "# Written by `kindling admin control-plane configure` (mode 0640, owned by the\n"
      "# PostgreSQL user): run it again rather than editing this file. PostgreSQL's\n"
      "# side (wal_level, archive_mode, archive_command, archive_timeout) is in the\n"
      "# data directory's postgresql.auto.conf. This file is not in any backup: the\n"
      "# repository passphrase is derived from the cluster master key.\n"
      "[global]\n"
      "repo1-path=/var/tmp/kindling-dev/pgbackrest\n"
      "repo1-retention-full=2\n"
      "repo1-cipher-type=aes-256-cbc\n"
      "repo1-cipher-pass=" +
      std::string(config.cipher_passphrase.Reveal()) +
      "\n"
      "compress-type=zst\n"
      "process-max=2\n"
      "start-fast=y\n"
      "archive-async=y\n"
      "spool-path=/var/tmp/kindling-dev/pgbackrest-spool\n"
      "archive-push-queue-max=4GiB\n"
      "archive-timeout=30\n"
      "io-timeout=15\n"
      "db-timeout=600\n"
      "protocol-timeout=630\n"
      "lock-path=/var/tmp/kindling-dev/pgbackrest-spool/lock\n"
      "log-path=/var/tmp/kindling-dev/logs/pgbackrest\n"
      "log-level-console=warn\n"
      "log-level-file=info\n"
      "\n"
      "[kindling]\n"
      "pg1-path=/var/tmp/kindling-dev/postgres/data\n"
      "pg1-socket-path=/var/tmp/kindling-dev/postgres\n"
      "pg1-port=5432\n";
  EXPECT_EQ(RenderConfig(config).Reveal(), expected);
}

TEST(PgBackupConfigTest, RendersAnS3Repository) {
  ClusterConfig config = DevLike();
  config.repository.path = "/prod";
  config.repository.s3 = S3Repository{.bucket = "kindling-pg",
                                      .endpoint = "https://s3.example.com:9000",
                                      .region = "eu-west-1",
                                      .key = "AKIAEXAMPLE",
                                      .key_secret = Secret::FromView("secret/value+1"),
                                      .uri_style = "path",
                                      .verify_tls = true,
                                      .ca_file = "/etc/ssl/certs/internal-ca.pem"};
  ASSERT_TRUE(Validate(config));
  const std::string text(RenderConfig(config).Reveal());
  EXPECT_THAT(text, HasSubstr("repo1-type=s3\n"
                              "repo1-s3-bucket=kindling-pg\n"
                              "repo1-s3-endpoint=s3.example.com\n"
                              "repo1-s3-region=eu-west-1\n"
                              "repo1-s3-key=AKIAEXAMPLE\n"
                              "repo1-s3-key-secret=secret/value+1\n"
                              "repo1-s3-uri-style=path\n"
                              "repo1-storage-port=9000\n"
                              "repo1-storage-ca-file=/etc/ssl/certs/internal-ca.pem\n"
                              "repo1-path=/prod\n"));
  EXPECT_THAT(text, Not(HasSubstr("verify-tls")));
  EXPECT_EQ(DescribeRepository(config.repository),
            "s3://kindling-pg/prod (https://s3.example.com:9000)");

  config.repository.s3->endpoint = "http://s3.example.com";
  EXPECT_FALSE(Validate(config));
  config.repository.s3->endpoint = "s3.example.com";
  config.repository.s3->key_secret = Secret();
  EXPECT_FALSE(Validate(config));
}

TEST(PgBackupConfigTest, ValidationRefusesWhatTheFileOrTheShellCannotCarry) {
  ClusterConfig config = DevLike();
  config.data_dir = "relative/data";
  EXPECT_FALSE(Validate(config));
  config = DevLike();
  config.config_file = "/etc/kindling/pg backrest.conf";
  EXPECT_FALSE(Validate(config));
  config = DevLike();
  config.repository.path = "/srv/100%";
  EXPECT_FALSE(Validate(config));
  config = DevLike();
  config.repository.path.clear();
  EXPECT_FALSE(Validate(config));
  config = DevLike();
  config.cipher_passphrase = Secret::FromView("short");
  EXPECT_FALSE(Validate(config));
  config = DevLike();
  config.archive_push_queue_max = "1GiB\nrepo1-path=/elsewhere";
  EXPECT_FALSE(Validate(config));
}

TEST(PgBackupConfigTest, ParsesWhatItRenders) {
  ClusterConfig config = DevLike();
  config.port = 6543;
  auto parsed = ParseConfig(RenderConfig(config).Reveal(), config.config_file);
  ASSERT_TRUE(parsed) << parsed.error().message();
  EXPECT_EQ(parsed->stanza, "kindling");
  EXPECT_EQ(parsed->data_dir, config.data_dir);
  EXPECT_EQ(parsed->socket_dir, config.socket_dir);
  EXPECT_EQ(parsed->port, 6543);
  EXPECT_EQ(parsed->spool_dir, config.spool_dir);
  EXPECT_EQ(parsed->log_dir, config.log_dir);
  EXPECT_EQ(parsed->lock_dir, config.lock_dir);
  EXPECT_EQ(parsed->repository.path, config.repository.path);
  EXPECT_FALSE(parsed->repository.s3);
  EXPECT_TRUE(parsed->cipher_passphrase.empty()) << "the passphrase comes from the master key";
  EXPECT_FALSE(ParseConfig("[global]\nrepo1-path=/x\n", "/etc/x.conf"));

  // An S3 repository comes back whole, so configure can write it again.
  config.repository.path = "/prod";
  config.repository.s3 = S3Repository{.bucket = "b",
                                      .endpoint = "s3.example.com:9000",
                                      .region = "r",
                                      .key = "AKIA1",
                                      .key_secret = Secret::FromView("s3cr3t"),
                                      .uri_style = "path",
                                      .verify_tls = false,
                                      .ca_file = "/etc/ca.pem"};
  auto s3 = ParseConfig(RenderConfig(config).Reveal(), config.config_file);
  ASSERT_TRUE(s3) << s3.error().message();
  ASSERT_TRUE(s3->repository.s3);
  EXPECT_EQ(s3->repository.path, "/prod");
  EXPECT_EQ(s3->repository.s3->bucket, "b");
  EXPECT_EQ(s3->repository.s3->endpoint, "s3.example.com:9000");
  EXPECT_EQ(s3->repository.s3->key, "AKIA1");
  EXPECT_EQ(s3->repository.s3->key_secret.Reveal(), "s3cr3t");
  EXPECT_EQ(s3->repository.s3->uri_style, "path");
  EXPECT_FALSE(s3->repository.s3->verify_tls);
  EXPECT_EQ(s3->repository.s3->ca_file, "/etc/ca.pem");
  s3->cipher_passphrase = config.cipher_passphrase;
  EXPECT_EQ(RenderConfig(*s3).Reveal(), RenderConfig(config).Reveal());
}

TEST(PgBackupConfigTest, ArchiveCommandAndServerSettings) {
  const ClusterConfig config = DevLike();
  EXPECT_EQ(ArchiveCommand(config),
            "/usr/bin/pgbackrest --config=/var/tmp/kindling-dev/pgbackrest.conf "
            "--stanza=kindling archive-push %p");
  const auto settings = ServerSettings(config);
  ASSERT_EQ(settings.size(), 4u);
  EXPECT_EQ(settings[0], std::make_pair(std::string("wal_level"), std::string("logical")));
  EXPECT_EQ(settings[1], std::make_pair(std::string("archive_mode"), std::string("on")));
  EXPECT_EQ(settings[2].first, "archive_command");
  EXPECT_EQ(settings[3], std::make_pair(std::string("archive_timeout"), std::string("60")));
  const auto without = ServerSettings(config, /*archiving=*/false);
  ASSERT_EQ(without.size(), 1u);
  EXPECT_EQ(without[0].first, "wal_level");
}

TEST(PgBackupConfigTest, PassphraseIsDerivedFromTheMasterKey) {
  const Secret passphrase = RepositoryPassphrase(FixedKey(1));
  const std::string a(passphrase.Reveal());
  EXPECT_EQ(a.size(), 64u);
  EXPECT_EQ(a, RepositoryPassphrase(FixedKey(1)).Reveal());
  EXPECT_NE(a, RepositoryPassphrase(FixedKey(2)).Reveal());
  // Not the master key itself.
  EXPECT_NE(a, std::string(64, '0') + "");
  EXPECT_EQ(a.find("0101010101010101"), std::string::npos);
}

TEST(PgBackupConfigTest, RecoveryTargetsBecomeUtcMilliseconds) {
  auto utc = ParseRecoveryTarget("2025-01-31T12:00:00Z");
  ASSERT_TRUE(utc) << utc.error().message();
  EXPECT_EQ(utc->text, "2025-01-31 12:00:00.000+00");
  auto offset = ParseRecoveryTarget("2025-01-01T00:30:00.250123+01:00");
  ASSERT_TRUE(offset) << offset.error().message();
  EXPECT_EQ(offset->text, "2024-12-31 23:30:00.250+00");
  EXPECT_EQ(offset->rfc3339, "2024-12-31T23:30:00.250Z");
  EXPECT_EQ(offset->time.time_since_epoch().count(), 1735687800250);
  auto negative = ParseRecoveryTarget("2025-03-01t01:02:03.5-02:30");
  ASSERT_TRUE(negative);
  EXPECT_EQ(negative->text, "2025-03-01 03:32:03.500+00");
  EXPECT_EQ(negative->rfc3339, "2025-03-01T03:32:03.500Z");
  for (const char* bad : {"2025-01-31 12:00:00", "2025-01-31T12:00Z", "2025-02-30T00:00:00Z",
                          "2025-01-31T24:00:00Z", "yesterday", "2025-01-31T12:00:00+0100",
                          "2025-01-31T12:00:00.Z", "2025-01-31T12:00:00Zjunk"})
    EXPECT_FALSE(ParseRecoveryTarget(bad)) << bad;
}

}  // namespace
}  // namespace kindling::pgbackup
