#include "crypto/kdf.h"

#include <gtest/gtest.h>

#include "crypto/sha256.h"

namespace kindling::crypto {
namespace {

// RFC 5869 without salt, spelled out with HMAC: PRK = HMAC(0^32, IKM),
// OKM = HMAC(PRK, info || 0x01) (one block is all a 32-byte key needs).
Key ReferenceHkdf(const Key& ikm, std::string_view info) {
  const std::string zero_salt(32, '\0');
  const Digest prk = HmacSha256(zero_salt, KeyBytes(ikm));
  std::string t1_input(info);
  t1_input.push_back('\x01');
  const Digest okm = HmacSha256(DigestBytes(prk), t1_input);
  Key out{};
  std::copy(okm.begin(), okm.end(), out.begin());
  return out;
}

TEST(KdfTest, IsHkdfSha256OfThePurpose) {
  Key root{};
  for (std::size_t i = 0; i < root.size(); ++i) root[i] = static_cast<std::uint8_t>(i * 7 + 1);
  EXPECT_EQ(DeriveKey(root, "volume backup store secrets"),
            ReferenceHkdf(root, "kindling volume backup store secrets"));
}

TEST(KdfTest, PurposesAndRootsGiveDifferentKeys) {
  const Key root = RandomKey();
  EXPECT_NE(DeriveKey(root, "a"), DeriveKey(root, "b"));
  EXPECT_NE(DeriveKey(root, "a"), DeriveKey(RandomKey(), "a"));
  EXPECT_NE(DeriveKey(root, "a"), root);
  EXPECT_EQ(DeriveKey(root, "a"), DeriveKey(root, "a"));
}

TEST(KdfTest, MasterKeyPurposesGiveDistinctSubkeys) {
  const Key root = RandomKey();
  const std::string_view purposes[] = {kClusterSecretsPurpose, kBackupStoreHistoryPurpose,
                                       kControlPlaneBackupPurpose, kStoreConfigPurpose};
  for (std::size_t i = 0; i < std::size(purposes); ++i) {
    EXPECT_NE(DeriveKey(root, purposes[i]), root) << purposes[i];
    for (std::size_t j = i + 1; j < std::size(purposes); ++j) {
      EXPECT_NE(purposes[i], purposes[j]);
      EXPECT_NE(DeriveKey(root, purposes[i]), DeriveKey(root, purposes[j]))
          << purposes[i] << " / " << purposes[j];
    }
  }
  // Labels whose keys sealed persisted data before the list existed.
  EXPECT_EQ(kBackupStoreHistoryPurpose, "volume backup store secrets");
  EXPECT_EQ(kControlPlaneBackupPurpose, "control-plane backup repository");
}

}  // namespace
}  // namespace kindling::crypto
