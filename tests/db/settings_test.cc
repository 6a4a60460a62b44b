#include "db/settings.h"

#include <gtest/gtest.h>

#include "db/notifications.h"
#include "db_test_util.h"

namespace kindling::db {
namespace {

class SettingsTest : public DbTest {
 protected:
  crypto::Key master_ = crypto::RandomKey();
};

TEST_F(SettingsTest, PutGetListDelete) {
  ASSERT_OK_AND_ASSIGN(std::optional<std::string> missing, db().Transact([](Tx& tx) {
    return GetSetting(tx, "volume_backup_s3_bucket");
  }));
  EXPECT_FALSE(missing);

  ASSERT_OK_AND_ASSIGN(bool changed, db().Transact([](Tx& tx) {
    return PutSetting(tx, "volume_backup_s3_bucket", "backups");
  }));
  EXPECT_TRUE(changed);
  ASSERT_OK_AND_ASSIGN(bool unchanged, db().Transact([](Tx& tx) {
    return PutSetting(tx, "volume_backup_s3_bucket", "backups");
  }));
  EXPECT_FALSE(unchanged);
  ASSERT_OK_AND_ASSIGN(bool changed_again, db().Transact([](Tx& tx) {
    return PutSetting(tx, "volume_backup_s3_bucket", "other");
  }));
  EXPECT_TRUE(changed_again);
  ASSERT_OK(db().Transact([](Tx& tx) { return PutSetting(tx, "volume_backup_s3_region", "eu"); }));

  ASSERT_OK_AND_ASSIGN(auto settings, db().Transact([](Tx& tx) { return ListSettings(tx); }));
  ASSERT_EQ(settings.size(), 2u);
  EXPECT_EQ(settings.at("volume_backup_s3_bucket").value, "other");

  ASSERT_OK_AND_ASSIGN(bool deleted, db().Transact([](Tx& tx) {
    return DeleteSetting(tx, "volume_backup_s3_region");
  }));
  EXPECT_TRUE(deleted);
  ASSERT_OK_AND_ASSIGN(bool deleted_again, db().Transact([](Tx& tx) {
    return DeleteSetting(tx, "volume_backup_s3_region");
  }));
  EXPECT_FALSE(deleted_again);
}

TEST_F(SettingsTest, SecretsAreStoredEncrypted) {
  const std::string plaintext = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
  ASSERT_OK_AND_ASSIGN(bool rotated, db().Transact([&](Tx& tx) {
    return PutSecret(tx, master_, "volume_backup_s3_secret_access_key", plaintext);
  }));
  EXPECT_FALSE(rotated);

  const pqxx::result raw = Sql("SELECT ciphertext FROM cluster_secrets");
  ASSERT_EQ(raw.size(), 1u);
  const std::string sealed = pqxx::binarystring(raw[0][0]).str();
  EXPECT_EQ(sealed.size(), plaintext.size() + crypto::kSealOverhead);
  EXPECT_EQ(sealed.find(plaintext), std::string::npos);
  EXPECT_EQ(sealed.find("wJalrXUtnFEMI"), std::string::npos);
  // The format is nonce || ciphertext || tag: crypto::Open reads it directly.
  std::string opened;
  ASSERT_TRUE(crypto::Open(master_, sealed, "", opened));
  EXPECT_EQ(opened, plaintext);

  ASSERT_OK_AND_ASSIGN(std::optional<std::string> value, db().Transact([&](Tx& tx) {
    return GetSecret(tx, master_, "volume_backup_s3_secret_access_key");
  }));
  EXPECT_EQ(value, plaintext);
}

TEST_F(SettingsTest, SecretsOpenOnlyWithTheirMasterKey) {
  ASSERT_OK(db().Transact([&](Tx& tx) { return PutSecret(tx, master_, "k", "v"); }));
  const crypto::Key other = crypto::RandomKey();
  auto wrong = db().Transact([&](Tx& tx) { return GetSecret(tx, other, "k"); });
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().kind(), ErrorKind::kWrongKey);
  EXPECT_NE(wrong.error().message().find("master key"), std::string::npos);

  // An altered row is refused too, not returned as garbage.
  Sql("UPDATE cluster_secrets SET ciphertext = set_byte(ciphertext, 20, get_byte(ciphertext, 20) # "
      "1)");
  EXPECT_ERROR_KIND(db().Transact([&](Tx& tx) { return GetSecret(tx, master_, "k"); }),
                    ErrorKind::kWrongKey);
}

TEST_F(SettingsTest, RotationReEncryptsAndListingShowsNoValues) {
  ASSERT_OK(db().Transact([&](Tx& tx) { return PutSecret(tx, master_, "a_key", "one"); }));
  const std::string before =
      pqxx::binarystring(Sql("SELECT ciphertext FROM cluster_secrets")[0][0]).str();
  ASSERT_OK_AND_ASSIGN(
      bool rotated, db().Transact([&](Tx& tx) { return PutSecret(tx, master_, "a_key", "one"); }));
  EXPECT_TRUE(rotated);
  const std::string after =
      pqxx::binarystring(Sql("SELECT ciphertext FROM cluster_secrets")[0][0]).str();
  EXPECT_NE(before, after);  // a fresh nonce every time

  ASSERT_OK(db().Transact([&](Tx& tx) { return PutSecret(tx, master_, "b_key", "two"); }));
  ASSERT_OK_AND_ASSIGN(std::vector<SecretInfo> secrets,
                       db().Transact([](Tx& tx) { return ListSecrets(tx); }));
  ASSERT_EQ(secrets.size(), 2u);
  EXPECT_EQ(secrets[0].key, "a_key");
  EXPECT_EQ(secrets[1].key, "b_key");

  ASSERT_OK_AND_ASSIGN(bool deleted,
                       db().Transact([](Tx& tx) { return DeleteSecret(tx, "a_key"); }));
  EXPECT_TRUE(deleted);
  ASSERT_OK_AND_ASSIGN(std::optional<std::string> gone,
                       db().Transact([&](Tx& tx) { return GetSecret(tx, master_, "a_key"); }));
  EXPECT_FALSE(gone);
}

TEST_F(SettingsTest, ChangesAreAnnouncedOnCommitOnly) {
  ASSERT_OK_AND_ASSIGN(auto listener, Listener::Open(dsn(), {kConfigChannel}));

  // A rolled-back change announces nothing.
  auto rolled_back = db().Transact([&](Tx& tx) -> Status {
    KINDLING_RETURN_IF_ERROR(PutSetting(tx, "public_base_url", "https://x"));
    return InvalidArgument("abort");
  });
  ASSERT_FALSE(rolled_back);
  ASSERT_OK_AND_ASSIGN(auto none, listener->Wait(std::chrono::milliseconds(200)));
  EXPECT_TRUE(none.empty());

  ASSERT_OK(db().Transact([&](Tx& tx) -> Status {
    KINDLING_RETURN_IF_ERROR(PutSetting(tx, "public_base_url", "https://x"));
    KINDLING_RETURN_IF_ERROR(
        PutSecret(tx, master_, "volume_backup_s3_access_key_id", "AKIASECRETVALUE"));
    return {};
  }));
  std::vector<Notification> got;
  for (int i = 0; i < 20 && got.size() < 2; ++i) {
    ASSERT_OK_AND_ASSIGN(auto batch, listener->Wait(std::chrono::milliseconds(500)));
    got.insert(got.end(), batch.begin(), batch.end());
  }
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].channel, kConfigChannel);
  EXPECT_EQ(got[0].payload, "cluster_settings:public_base_url");
  EXPECT_EQ(got[1].payload, "cluster_secrets:volume_backup_s3_access_key_id");

  // Re-putting the same setting value changes nothing and stays quiet.
  ASSERT_OK(db().Transact([&](Tx& tx) { return PutSetting(tx, "public_base_url", "https://x"); }));
  ASSERT_OK_AND_ASSIGN(auto quiet, listener->Wait(std::chrono::milliseconds(200)));
  EXPECT_TRUE(quiet.empty());
}

}  // namespace
}  // namespace kindling::db
