#include "db/settings.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <memory>

#include "common/hex.h"
#include "crypto/kdf.h"
#include "db/notifications.h"
#include "db_test_util.h"

namespace kindling::db {
namespace {

// The reference's format, written independently of crypto/: nonce ||
// AES-256-GCM(raw master key, no associated data) || tag, with `nonce` chosen.
std::string LegacySeal(const crypto::Key& key, const std::string& nonce,
                       const std::string& plaintext) {
  std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)> ctx(EVP_CIPHER_CTX_new(),
                                                                      EVP_CIPHER_CTX_free);
  std::string out = nonce;
  out.resize(nonce.size() + plaintext.size() + crypto::kTagSize);
  auto* body = reinterpret_cast<unsigned char*>(out.data() + nonce.size());
  int len = 0;
  EXPECT_EQ(nonce.size(), crypto::kNonceSize);
  EXPECT_EQ(EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(),
                               reinterpret_cast<const unsigned char*>(nonce.data())),
            1);
  EXPECT_EQ(EVP_EncryptUpdate(ctx.get(), body, &len,
                              reinterpret_cast<const unsigned char*>(plaintext.data()),
                              static_cast<int>(plaintext.size())),
            1);
  EXPECT_EQ(EVP_EncryptFinal_ex(ctx.get(), body + len, &len), 1);
  EXPECT_EQ(EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(crypto::kTagSize),
                                body + plaintext.size()),
            1);
  return out;
}

class SettingsTest : public DbTest {
 protected:
  void InsertRaw(const std::string& key, const std::string& ciphertext) {
    Sql("INSERT INTO cluster_secrets (key, ciphertext) VALUES ('" + key + "', decode('" +
        HexEncode(ciphertext) + "', 'hex'))");
  }
  std::string RawCiphertext(const std::string& key) {
    return pqxx::binarystring(
               Sql("SELECT ciphertext FROM cluster_secrets WHERE key = '" + key + "'")[0][0])
        .str();
  }

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
  EXPECT_EQ(sealed.size(), 4 + plaintext.size() + crypto::kSealOverhead);
  EXPECT_EQ(sealed.find(plaintext), std::string::npos);
  EXPECT_EQ(sealed.find("wJalrXUtnFEMI"), std::string::npos);
  // Format 2: "kdl" 0x02 || nonce || ciphertext || tag under the
  // cluster-secrets subkey, the marker and the name authenticated; not the
  // raw master key, and not without the name.
  ASSERT_EQ(sealed.substr(0, 4), std::string("kdl\x02", 4));
  const crypto::Key subkey = crypto::DeriveKey(master_, crypto::kClusterSecretsPurpose);
  std::string opened;
  ASSERT_TRUE(crypto::Open(subkey, sealed.substr(4),
                           std::string("kdl\x02", 4) + "volume_backup_s3_secret_access_key",
                           opened));
  EXPECT_EQ(opened, plaintext);
  EXPECT_FALSE(crypto::Open(subkey, sealed.substr(4), "", opened));
  EXPECT_FALSE(crypto::Open(master_, sealed.substr(4), "", opened));
  EXPECT_FALSE(crypto::Open(master_, sealed, "", opened));

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

TEST_F(SettingsTest, SwappedCiphertextsDoNotOpen) {
  ASSERT_OK(db().Transact([&](Tx& tx) -> Status {
    KINDLING_RETURN_IF_ERROR(PutSecret(tx, master_, "volume_backup_s3_access_key_id", "AKIA"));
    KINDLING_RETURN_IF_ERROR(
        PutSecret(tx, master_, "volume_backup_s3_secret_access_key", "the-secret"));
    return {};
  }));
  const std::string id = RawCiphertext("volume_backup_s3_access_key_id");
  const std::string secret = RawCiphertext("volume_backup_s3_secret_access_key");
  Sql("UPDATE cluster_secrets SET ciphertext = decode('" + HexEncode(secret) +
      "', 'hex') WHERE key = 'volume_backup_s3_access_key_id'");
  Sql("UPDATE cluster_secrets SET ciphertext = decode('" + HexEncode(id) +
      "', 'hex') WHERE key = 'volume_backup_s3_secret_access_key'");
  for (const char* key : {"volume_backup_s3_access_key_id", "volume_backup_s3_secret_access_key"}) {
    auto got = db().Transact([&](Tx& tx) { return GetSecret(tx, master_, key); });
    ASSERT_FALSE(got) << key << " opened as " << got->value_or("nothing");
    EXPECT_EQ(got.error().kind(), ErrorKind::kWrongKey);
  }
}

TEST_F(SettingsTest, LegacyRowIsReadAndRewrittenOnChange) {
  std::string nonce(crypto::kNonceSize, '\0');
  crypto::RandomBytes(nonce.data(), nonce.size());
  nonce[0] = 'x';  // not the format-2 marker
  const std::string legacy = LegacySeal(master_, nonce, "old-value");
  InsertRaw("volume_backup_s3_secret_access_key", legacy);

  ASSERT_OK_AND_ASSIGN(std::optional<std::string> value, db().Transact([&](Tx& tx) {
    return GetSecret(tx, master_, "volume_backup_s3_secret_access_key");
  }));
  EXPECT_EQ(value, "old-value");
  EXPECT_EQ(RawCiphertext("volume_backup_s3_secret_access_key"),
            legacy);  // reading rewrites nothing
  // Another key does not open it.
  EXPECT_ERROR_KIND(db().Transact([&](Tx& tx) {
    return GetSecret(tx, crypto::RandomKey(), "volume_backup_s3_secret_access_key");
  }),
                    ErrorKind::kWrongKey);

  ASSERT_OK_AND_ASSIGN(bool rotated, db().Transact([&](Tx& tx) {
    return PutSecret(tx, master_, "volume_backup_s3_secret_access_key", "new-value");
  }));
  EXPECT_TRUE(rotated);
  const std::string rewritten = RawCiphertext("volume_backup_s3_secret_access_key");
  EXPECT_EQ(rewritten.substr(0, 4), std::string("kdl\x02", 4));
  std::string opened;
  EXPECT_FALSE(crypto::Open(master_, rewritten, "", opened));  // no longer the legacy format
  ASSERT_OK_AND_ASSIGN(value, db().Transact([&](Tx& tx) {
    return GetSecret(tx, master_, "volume_backup_s3_secret_access_key");
  }));
  EXPECT_EQ(value, "new-value");
}

TEST_F(SettingsTest, LegacyRowWhoseNonceLooksLikeTheMarkerIsRead) {
  // A legacy nonce is random: 1 in 2^32 starts with the format-2 marker.
  std::string nonce(crypto::kNonceSize, '\0');
  crypto::RandomBytes(nonce.data(), nonce.size());
  nonce.replace(0, 4, std::string("kdl\x02", 4));
  InsertRaw("k", LegacySeal(master_, nonce, "legacy"));
  ASSERT_OK_AND_ASSIGN(std::optional<std::string> value,
                       db().Transact([&](Tx& tx) { return GetSecret(tx, master_, "k"); }));
  EXPECT_EQ(value, "legacy");
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
