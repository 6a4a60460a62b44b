#include "crypto/aead.h"

#include <gtest/gtest.h>

#include <string>

namespace kindling::crypto {
namespace {

class AeadTest : public ::testing::Test {
 protected:
  static Key FixedKey(std::uint8_t fill) {
    Key key{};
    key.fill(fill);
    return key;
  }
  Key key_ = FixedKey(0x42);
};

TEST_F(AeadTest, RoundTrip) {
  for (std::size_t size : {0u, 1u, 15u, 16u, 17u, 1000u, 1u << 20}) {
    const std::string plaintext(size, 'p');
    std::string sealed;
    SealAppend(key_, plaintext, "aad", sealed);
    EXPECT_EQ(sealed.size(), size + kSealOverhead);
    std::string out = "stale content";
    ASSERT_TRUE(Open(key_, sealed, "aad", out)) << size;
    EXPECT_EQ(out, plaintext);
  }
}

TEST_F(AeadTest, EmptyAad) {
  std::string sealed;
  SealAppend(key_, "secret", "", sealed);
  std::string out;
  ASSERT_TRUE(Open(key_, sealed, "", out));
  EXPECT_EQ(out, "secret");
  auto st = Open(key_, sealed, "x", out);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().kind(), ErrorKind::kCorruption);
}

TEST_F(AeadTest, SealAppendKeepsPrefix) {
  std::string out = "HEADER";
  SealAppend(key_, "body", "", out);
  ASSERT_EQ(out.substr(0, 6), "HEADER");
  std::string plain;
  ASSERT_TRUE(Open(key_, std::string_view(out).substr(6), "", plain));
  EXPECT_EQ(plain, "body");
}

TEST_F(AeadTest, CiphertextHidesPlaintextAndNoncesDiffer) {
  const std::string plaintext(64, 'A');
  std::string a, b;
  SealAppend(key_, plaintext, "", a);
  SealAppend(key_, plaintext, "", b);
  EXPECT_NE(a, b);
  EXPECT_NE(a.substr(0, kNonceSize), b.substr(0, kNonceSize));
  EXPECT_EQ(a.find(std::string(8, 'A')), std::string::npos);
}

TEST_F(AeadTest, WrongKeyIsCorruption) {
  std::string sealed;
  SealAppend(key_, "secret", "aad", sealed);
  std::string out;
  auto st = Open(FixedKey(0x43), sealed, "aad", out);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().kind(), ErrorKind::kCorruption);
}

TEST_F(AeadTest, WrongAadIsCorruption) {
  std::string sealed;
  SealAppend(key_, "secret", "context-a", sealed);
  std::string out;
  auto st = Open(key_, sealed, "context-b", out);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().kind(), ErrorKind::kCorruption);
}

TEST_F(AeadTest, EveryFlippedByteIsCorruption) {
  std::string sealed;
  SealAppend(key_, "a short secret message", "aad", sealed);
  for (std::size_t i = 0; i < sealed.size(); ++i) {
    for (unsigned char mask : {0x01, 0x80}) {
      std::string tampered = sealed;
      tampered[i] = static_cast<char>(tampered[i] ^ mask);
      std::string out;
      auto st = Open(key_, tampered, "aad", out);
      ASSERT_FALSE(st) << "byte " << i;
      EXPECT_EQ(st.error().kind(), ErrorKind::kCorruption);
    }
  }
}

TEST_F(AeadTest, TruncatedOrExtendedIsCorruption) {
  std::string sealed;
  SealAppend(key_, "secret", "", sealed);
  std::string out;
  for (std::size_t len :
       {std::size_t{0}, std::size_t{1}, kSealOverhead - 1, kSealOverhead, sealed.size() - 1}) {
    auto st = Open(key_, std::string_view(sealed).substr(0, len), "", out);
    ASSERT_FALSE(st) << len;
    EXPECT_EQ(st.error().kind(), ErrorKind::kCorruption);
  }
  auto st = Open(key_, sealed + "x", "", out);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().kind(), ErrorKind::kCorruption);
}

TEST_F(AeadTest, RandomKeysDiffer) {
  EXPECT_NE(RandomKey(), RandomKey());
  EXPECT_EQ(KeyBytes(key_).size(), kKeySize);
  EXPECT_EQ(KeyBytes(key_)[0], '\x42');
}

// OpenSSL's EVP_*Update take int lengths: longer data and associated data
// are fed in pieces. Small pieces here stand for INT_MAX, so that the loop is
// exercised without gigabytes of memory; either side may cut differently.
TEST_F(AeadTest, DataAndAadFedInPiecesRoundTrip) {
  std::string plaintext(1000, '\0');
  for (std::size_t i = 0; i < plaintext.size(); ++i) plaintext[i] = static_cast<char>(i * 7);
  const std::string aad(37, 'a');
  for (std::size_t piece : {1u, 7u, 16u, 999u, 1000u, 4096u}) {
    std::string sealed;
    internal::SealAppendInPieces(key_, plaintext, aad, sealed, piece);
    ASSERT_EQ(sealed.size(), plaintext.size() + kSealOverhead);
    std::string opened;
    ASSERT_TRUE(Open(key_, sealed, aad, opened)) << piece;
    EXPECT_EQ(opened, plaintext) << piece;

    std::string whole;
    SealAppend(key_, plaintext, aad, whole);
    ASSERT_TRUE(internal::OpenInPieces(key_, whole, aad, opened, piece)) << piece;
    EXPECT_EQ(opened, plaintext) << piece;
    whole[kNonceSize + 500] ^= 1;
    EXPECT_FALSE(internal::OpenInPieces(key_, whole, aad, opened, piece)) << piece;
    EXPECT_FALSE(internal::OpenInPieces(key_, sealed, aad.substr(1), opened, piece)) << piece;
  }
}

}  // namespace
}  // namespace kindling::crypto
