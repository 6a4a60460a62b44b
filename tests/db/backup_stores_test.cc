#include "db/backup_stores.h"

#include <gtest/gtest.h>

#include "db_test_util.h"

namespace kindling::db {
namespace {

constexpr char kS3Url[] = "s3://bucket/prefix";
constexpr char kOtherS3Url[] = "s3://other-bucket";
constexpr char kLocalUrl[] = "file:///srv/backups";

class BackupStoresTest : public DbTest {
 protected:
  static BackupStoreRecord S3Record(const std::string& url) {
    return BackupStoreRecord{.storage_url = url,
                             .s3_bucket = "bucket",
                             .s3_region = "eu-central-1",
                             .s3_endpoint = "https://minio.internal:9000",
                             .s3_prefix = "prefix",
                             .s3_access_key_id = "AKIAEXAMPLE",
                             .s3_secret_access_key = Secret::FromView("very-secret-value")};
  }

  Result<std::optional<BackupStoreRecord>> Get(const crypto::Key& key, const std::string& url) {
    return db().Transact([&](Tx& tx) { return GetBackupStore(tx, key, url); });
  }

  const crypto::Key key_ = crypto::RandomKey();
};

TEST_F(BackupStoresTest, RoundTripWithSecretsSealed) {
  ASSERT_OK(db().Transact([&](Tx& tx) { return PutBackupStore(tx, key_, S3Record(kS3Url)); }));
  ASSERT_OK_AND_ASSIGN(std::optional<BackupStoreRecord> got, Get(key_, kS3Url));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->storage_url, kS3Url);
  EXPECT_EQ(got->s3_bucket, "bucket");
  EXPECT_EQ(got->s3_region, "eu-central-1");
  EXPECT_EQ(got->s3_endpoint, "https://minio.internal:9000");
  EXPECT_EQ(got->s3_prefix, "prefix");
  EXPECT_EQ(got->local_directory, "");
  EXPECT_EQ(got->s3_access_key_id, "AKIAEXAMPLE");
  EXPECT_EQ(got->s3_secret_access_key.Reveal(), "very-secret-value");
  EXPECT_NE(got->created_at, Timestamp{});

  // The columns hold no plaintext.
  const pqxx::result raw =
      Sql("SELECT encode(s3_access_key_id, 'escape'), encode(s3_secret_access_key, 'escape') "
          "FROM volume_backup_stores");
  ASSERT_EQ(raw.size(), 1u);
  EXPECT_EQ(std::string(raw[0][0].c_str()).find("AKIAEXAMPLE"), std::string::npos);
  EXPECT_EQ(std::string(raw[0][1].c_str()).find("very-secret-value"), std::string::npos);

  // Unknown urls are not an error.
  ASSERT_OK_AND_ASSIGN(std::optional<BackupStoreRecord> none, Get(key_, kOtherS3Url));
  EXPECT_FALSE(none.has_value());
}

TEST_F(BackupStoresTest, PutReplacesAndListLeavesSecretsOut) {
  ASSERT_OK(db().Transact([&](Tx& tx) { return PutBackupStore(tx, key_, S3Record(kS3Url)); }));
  BackupStoreRecord changed = S3Record(kS3Url);
  changed.s3_region = "us-east-1";
  changed.s3_secret_access_key = Secret::FromView("rotated");
  changed.s3_access_key_id = "";  // cleared
  ASSERT_OK(db().Transact([&](Tx& tx) { return PutBackupStore(tx, key_, changed); }));
  ASSERT_OK(db().Transact([&](Tx& tx) {
    return PutBackupStore(
        tx, key_, BackupStoreRecord{.storage_url = kLocalUrl, .local_directory = "/srv/backups"});
  }));
  ASSERT_OK_AND_ASSIGN(std::optional<BackupStoreRecord> got, Get(key_, kS3Url));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->s3_region, "us-east-1");
  EXPECT_EQ(got->s3_secret_access_key.Reveal(), "rotated");
  EXPECT_EQ(got->s3_access_key_id, "");
  ASSERT_OK_AND_ASSIGN(std::optional<BackupStoreRecord> local, Get(key_, kLocalUrl));
  ASSERT_TRUE(local.has_value());
  EXPECT_EQ(local->local_directory, "/srv/backups");
  EXPECT_TRUE(local->s3_secret_access_key.empty());

  ASSERT_OK_AND_ASSIGN(std::vector<BackupStoreRecord> all,
                       db().Transact([&](Tx& tx) { return ListBackupStores(tx); }));
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].storage_url, kLocalUrl);
  EXPECT_EQ(all[1].storage_url, kS3Url);
  for (const BackupStoreRecord& r : all) {
    EXPECT_EQ(r.s3_access_key_id, "") << r.storage_url;
    EXPECT_TRUE(r.s3_secret_access_key.empty()) << r.storage_url;
  }
  EXPECT_EQ(all[1].s3_bucket, "bucket");

  EXPECT_ERROR_KIND(db().Transact([&](Tx& tx) {
    return PutBackupStore(tx, key_, BackupStoreRecord{.s3_bucket = "no-url"});
  }),
                    ErrorKind::kInvalidArgument);
}

TEST_F(BackupStoresTest, AnotherKeyIsTheWrongKey) {
  ASSERT_OK(db().Transact([&](Tx& tx) { return PutBackupStore(tx, key_, S3Record(kS3Url)); }));
  auto wrong = Get(crypto::RandomKey(), kS3Url);
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().kind(), ErrorKind::kWrongKey);
  EXPECT_NE(wrong.error().message().find(kS3Url), std::string::npos) << wrong.error().message();
  EXPECT_EQ(wrong.error().message().find("very-secret-value"), std::string::npos);
}

TEST_F(BackupStoresTest, SealedValuesOpenOnlyForTheirOwnStoreAndField) {
  ASSERT_OK(db().Transact([&](Tx& tx) { return PutBackupStore(tx, key_, S3Record(kS3Url)); }));
  BackupStoreRecord other = S3Record(kOtherS3Url);
  other.s3_secret_access_key = Secret::FromView("other-secret");
  ASSERT_OK(db().Transact([&](Tx& tx) { return PutBackupStore(tx, key_, other); }));

  // The first store's sealed secret copied onto the second store's row.
  Sql(std::string("UPDATE volume_backup_stores SET s3_secret_access_key = "
                  "(SELECT s3_secret_access_key FROM volume_backup_stores WHERE storage_url = '") +
      kS3Url + "') WHERE storage_url = '" + kOtherS3Url + "'");
  EXPECT_ERROR_KIND(Get(key_, kOtherS3Url), ErrorKind::kWrongKey);

  // The access key id's sealed value in the secret's column.
  Sql(std::string("UPDATE volume_backup_stores SET s3_secret_access_key = s3_access_key_id "
                  "WHERE storage_url = '") +
      kS3Url + "'");
  EXPECT_ERROR_KIND(Get(key_, kS3Url), ErrorKind::kWrongKey);
}

}  // namespace
}  // namespace kindling::db
