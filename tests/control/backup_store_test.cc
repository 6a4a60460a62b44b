#include "control/backup_store.h"

#include <gtest/gtest.h>

#include <type_traits>
#include <utility>

#include "control/admin_service.h"
#include "db/db_test_util.h"
#include "testutil/s3_test_server.h"
#include "testutil/temp_dir.h"

namespace kindling::control {
namespace {

class BackupStoreTest : public db::DbTest {
 protected:
  crypto::Key master_key_ = crypto::RandomKey();
};

TEST(BackupStoreSettingsTest, MissingReasonAndUrl) {
  BackupStoreSettings s;
  EXPECT_EQ(s.MissingReason(), "volume_backup_s3_bucket is not set");
  s.local_directory = "relative";
  EXPECT_NE(s.MissingReason(), "");
  s.local_directory = "/srv/backups";
  EXPECT_EQ(s.MissingReason(), "");
  EXPECT_EQ(s.Url(), "file:///srv/backups");
  s.s3_bucket = "b";
  s.s3_prefix = "/p/q/";
  EXPECT_EQ(s.MissingReason(), "volume_backup_s3_access_key_id is not set");
  s.s3_access_key_id = "AKID";
  s.s3_secret_access_key = Secret::FromView("sekret");
  EXPECT_EQ(s.MissingReason(), "");
  EXPECT_EQ(s.Url(), "s3://b/p/q");
}

// The secret access key is a Secret: settings and updates move, never copy.
static_assert(!std::is_copy_constructible_v<BackupStoreSettings>);
static_assert(!std::is_copy_constructible_v<BackupSettingsUpdate>);
static_assert(std::is_nothrow_move_constructible_v<BackupStoreSettings>);

TEST(BackupStoreSettingsTest, MovingLeavesNoSecretBehind) {
  BackupStoreSettings s{.s3_bucket = "b",
                        .s3_access_key_id = "AKID",
                        .s3_secret_access_key = Secret::FromView("sekret-value")};
  const BackupStoreSettings moved = std::move(s);
  EXPECT_EQ(moved.s3_bucket, "b");
  EXPECT_EQ(moved.s3_access_key_id, "AKID");
  EXPECT_EQ(moved.s3_secret_access_key.Reveal(), "sekret-value");
  EXPECT_TRUE(s.s3_secret_access_key.empty());  // NOLINT(bugprone-use-after-move)
}

TEST(BackupStoreSettingsTest, MergeMovesTheUpdatesSecretIn) {
  auto saved = [] {
    return BackupStoreSettings{.s3_bucket = "b",
                               .s3_access_key_id = "AKID",
                               .s3_secret_access_key = Secret::FromView("old-secret")};
  };
  auto kept = MergeBackupSettings(saved(), BackupSettingsUpdate{.s3_prefix = "p"});
  ASSERT_TRUE(kept);
  EXPECT_EQ(kept->s3_secret_access_key.Reveal(), "old-secret");
  EXPECT_EQ(kept->s3_prefix, "p");

  BackupSettingsUpdate rotate{.s3_secret_access_key = Secret::FromView("new-secret")};
  auto rotated = MergeBackupSettings(saved(), std::move(rotate));
  ASSERT_TRUE(rotated);
  EXPECT_EQ(rotated->s3_secret_access_key.Reveal(), "new-secret");
  // NOLINTNEXTLINE(bugprone-use-after-move): the secret moved on, none stays
  EXPECT_TRUE(!rotate.s3_secret_access_key || rotate.s3_secret_access_key->empty());

  auto cleared =
      MergeBackupSettings(saved(), BackupSettingsUpdate{.s3_secret_access_key = Secret()});
  ASSERT_TRUE(cleared);
  EXPECT_TRUE(cleared->s3_secret_access_key.empty());
  EXPECT_EQ(cleared->MissingReason(), "volume_backup_s3_secret_access_key is not set");
}

TEST_F(BackupStoreTest, SavedSettingsLoadWithSecretsAndAuditNoValues) {
  const std::string secret = "very-secret-value-4711";
  auto saved =
      UpdateBackupSettings(db(), master_key_, Actor{},
                           BackupSettingsUpdate{.s3_bucket = "bkt",
                                                .s3_region = "eu-west-1",
                                                .s3_access_key_id = "AKIDEXAMPLE",
                                                .s3_secret_access_key = Secret::FromView(secret)});
  ASSERT_TRUE(saved) << saved.error().message;
  EXPECT_EQ(saved->s3_secret_access_key.Reveal(), secret);
  auto loaded = Must([&](db::Tx& tx) { return LoadBackupStoreSettings(tx, master_key_); });
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded->s3_bucket, "bkt");
  EXPECT_EQ(loaded->s3_access_key_id, "AKIDEXAMPLE");
  EXPECT_EQ(loaded->s3_secret_access_key.Reveal(), secret);

  auto rows = Sql("SELECT action, details::text FROM cluster_audit_events ORDER BY action");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0][0].as<std::string>(), "cluster.secrets.update");
  EXPECT_EQ(rows[1][0].as<std::string>(), "volume_backup_settings.update");
  for (const auto& row : rows) {
    EXPECT_EQ(row[1].as<std::string>().find(secret), std::string::npos);
    EXPECT_EQ(row[1].as<std::string>().find("AKIDEXAMPLE"), std::string::npos);
  }
  EXPECT_NE(rows[0][1].as<std::string>().find("volume_backup_s3_secret_access_key"),
            std::string::npos);

  // A different master key cannot read the secrets.
  auto wrong =
      db().Transact([&](db::Tx& tx) { return LoadBackupStoreSettings(tx, crypto::RandomKey()); });
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().kind(), ErrorKind::kWrongKey);
}

TEST_F(BackupStoreTest, OpenInitialisesOnceAndReopens) {
  testutil::TempDir dir;
  BackupStoreSettings settings{.local_directory = (dir.path() / "store").string()};
  auto no_init = OpenBackupStore(settings, master_key_, nullptr);
  ASSERT_FALSE(no_init);
  EXPECT_TRUE(no_init.error().is_not_found()) << no_init.error().message();

  auto first = OpenBackupStore(settings, master_key_, &db());
  ASSERT_TRUE(first) << first.error().message();
  EXPECT_EQ(first->url, "file://" + settings.local_directory);
  auto second = OpenBackupStore(settings, master_key_, nullptr);
  ASSERT_TRUE(second) << second.error().message();

  auto wrong = OpenBackupStore(settings, crypto::RandomKey(), &db());
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().kind(), ErrorKind::kWrongKey);
}

TEST_F(BackupStoreTest, ProbeLocalDirectory) {
  testutil::TempDir dir;
  EXPECT_TRUE(ProbeBackupStore(BackupStoreSettings{.local_directory = dir.path().string()}));
  auto unconfigured = ProbeBackupStore(BackupStoreSettings{});
  ASSERT_FALSE(unconfigured);
  EXPECT_NE(unconfigured.error().message().find("not configured"), std::string::npos);
  // A path under a regular file cannot be written.
  testutil::WriteFile(dir.path() / "file", "x");
  auto blocked = ProbeBackupStore(
      BackupStoreSettings{.local_directory = (dir.path() / "file" / "sub").string()});
  ASSERT_FALSE(blocked);
}

TEST_F(BackupStoreTest, ProbeS3ReportsStepWithoutSecret) {
  testutil::S3TestServer s3;
  BackupStoreSettings settings{
      .s3_bucket = s3.options().bucket,
      .s3_region = "us-east-1",
      .s3_endpoint = s3.endpoint(),
      .s3_prefix = "kindling",
      .s3_access_key_id = s3.options().access_key_id,
      .s3_secret_access_key = Secret::FromView(s3.options().secret_access_key)};
  auto ok = ProbeBackupStore(settings);
  EXPECT_TRUE(ok) << ok.error().message();

  settings.s3_secret_access_key = Secret::FromView("wrong-secret-value-99");
  auto bad = ProbeBackupStore(settings);
  ASSERT_FALSE(bad);
  EXPECT_TRUE(bad.error().message().starts_with("write probe object")) << bad.error().message();
  EXPECT_EQ(bad.error().message().find("wrong-secret-value-99"), std::string::npos);
}

}  // namespace
}  // namespace kindling::control
