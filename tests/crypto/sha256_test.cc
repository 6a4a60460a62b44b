#include "crypto/sha256.h"

#include <gtest/gtest.h>

#include <string>

namespace kindling::crypto {
namespace {

class Sha256Test : public ::testing::Test {
 protected:
  static std::string Hex(std::string_view data) { return DigestHex(Sha256Of(data)); }
};

// FIPS 180-2 / NIST CAVP vectors.
TEST_F(Sha256Test, NistVectors) {
  EXPECT_EQ(Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(Hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST_F(Sha256Test, IncrementalEqualsOneShot) {
  const std::string data(100000, 'q');
  Sha256 h;
  std::size_t pos = 0;
  for (std::size_t step : {0u, 1u, 63u, 64u, 65u, 4096u, 12345u}) {
    h.Update(std::string_view(data).substr(pos, step));
    pos += step;
  }
  h.Update(std::string_view(data).substr(pos));
  EXPECT_EQ(*h.Finish(), Sha256Of(data));
}

TEST_F(Sha256Test, EmptyIncremental) {
  Sha256 h;
  EXPECT_EQ(DigestHex(*h.Finish()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST_F(Sha256Test, UpdateZerosEqualsHashingAZeroBuffer) {
  for (std::uint64_t count : {0ull, 1ull, 63ull, 64ull, 65536ull, 1048579ull, 5ull << 20}) {
    Sha256 h;
    h.Update("prefix");
    h.UpdateZeros(count);
    h.Update("suffix");
    const std::string expected = "prefix" + std::string(count, '\0') + "suffix";
    EXPECT_EQ(*h.Finish(), Sha256Of(expected)) << count;
  }
}

TEST_F(Sha256Test, DigestHexAndBytes) {
  const Digest d = Sha256Of("abc");
  EXPECT_EQ(DigestBytes(d).size(), 32u);
  EXPECT_EQ(static_cast<unsigned char>(DigestBytes(d)[0]), 0xba);
  EXPECT_EQ(DigestHex(d).size(), 64u);
}

// RFC 4231 test cases 1, 2 and 6 (key longer than the block size).
TEST_F(Sha256Test, HmacRfc4231) {
  EXPECT_EQ(DigestHex(HmacSha256(std::string(20, '\x0b'), "Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  EXPECT_EQ(DigestHex(HmacSha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  EXPECT_EQ(DigestHex(HmacSha256(std::string(131, '\xaa'),
                                 "Test Using Larger Than Block-Size Key - Hash Key First")),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

TEST_F(Sha256Test, HmacDependsOnKey) {
  EXPECT_NE(HmacSha256("key-a", "data"), HmacSha256("key-b", "data"));
  EXPECT_NE(HmacSha256("key-a", "data"), Sha256Of("data"));
}

// Hashing fails closed: a failed step is remembered and Finish reports it,
// never a digest (an all-zero chunk id would merge every chunk into one).
TEST_F(Sha256Test, MisuseFailsClosed) {
  Sha256 h;
  h.Update("abc");
  auto first = h.Finish();
  ASSERT_TRUE(first);
  EXPECT_EQ(*first, Sha256Of("abc"));
  auto again = h.Finish();
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().kind(), ErrorKind::kInternal);

  Sha256 updated_late;
  ASSERT_TRUE(updated_late.Finish());
  updated_late.Update("more");
  EXPECT_FALSE(updated_late.Finish());
}

TEST_F(Sha256Test, CheckedFunctionsMatchTheOthers) {
  auto sha = TrySha256Of("abc");
  ASSERT_TRUE(sha);
  EXPECT_EQ(*sha, Sha256Of("abc"));
  auto mac = TryHmacSha256("Jefe", "what do ya want for nothing?");
  ASSERT_TRUE(mac);
  EXPECT_EQ(*mac, HmacSha256("Jefe", "what do ya want for nothing?"));
}

}  // namespace
}  // namespace kindling::crypto
