#include "common/hex.h"

#include <gtest/gtest.h>

#include <string>

namespace kindling {
namespace {

class HexTest : public ::testing::Test {};

TEST_F(HexTest, EncodeLowerCase) {
  EXPECT_EQ(HexEncode(""), "");
  EXPECT_EQ(HexEncode(std::string("\x00\x01\xab\xff", 4)), "0001abff");
  EXPECT_EQ(HexEncode("kindling"), "6b696e646c696e67");
}

TEST_F(HexTest, DecodeAcceptsBothCases) {
  EXPECT_EQ(HexDecode("0001abff"), std::string("\x00\x01\xab\xff", 4));
  EXPECT_EQ(HexDecode("ABFF"), std::string("\xab\xff", 2));
  EXPECT_EQ(HexDecode("aBfF"), std::string("\xab\xff", 2));
  EXPECT_EQ(HexDecode(""), std::string());
}

TEST_F(HexTest, DecodeRejectsOddLength) {
  EXPECT_EQ(HexDecode("abc"), std::nullopt);
  EXPECT_EQ(HexDecode("0"), std::nullopt);
}

TEST_F(HexTest, DecodeRejectsNonHex) {
  for (std::string bad : {"0g", "g0", "zz", " 0", "0 ", "0x", "-1", "\n0"})
    EXPECT_EQ(HexDecode(bad), std::nullopt) << bad;
}

TEST_F(HexTest, RoundTripEveryByte) {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  const std::string hex = HexEncode(all);
  EXPECT_EQ(hex.size(), 512u);
  EXPECT_EQ(hex.substr(0, 6), "000102");
  EXPECT_EQ(hex.substr(506), "fdfeff");
  EXPECT_EQ(HexDecode(hex), all);
}

TEST(PercentEncodeTest, KeepsOnlyUnreservedCharactersAndOptionallySlashes) {
  EXPECT_EQ(PercentEncode("a-b_c.d~e"), "a-b_c.d~e");
  EXPECT_EQ(PercentEncode("a b/+~"), "a%20b%2F%2B~");
  EXPECT_EQ(PercentEncode("/var/tmp/x y", /*keep_slash=*/true), "/var/tmp/x%20y");
  EXPECT_EQ(PercentEncode("=&%"), "%3D%26%25");
  EXPECT_EQ(PercentEncode("\xE1\x88\xB4"), "%E1%88%B4");
}

}  // namespace
}  // namespace kindling
