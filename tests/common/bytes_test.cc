#include "common/bytes.h"

#include <gtest/gtest.h>

#include <limits>
#include <string>

namespace kindling {
namespace {

class BytesTest : public ::testing::Test {};

TEST_F(BytesTest, RoundTrip) {
  std::string buf;
  ByteWriter w(buf);
  w.U8(0xfe);
  w.U16(0xbeef);
  w.U32(0xdeadbeef);
  w.U64(0x0123456789abcdefull);
  w.U64(std::numeric_limits<std::uint64_t>::max());
  w.ShortString("volume");
  w.ShortString("");
  w.Raw("xyz");
  EXPECT_EQ(buf.size(), 1u + 2 + 4 + 8 + 8 + (2 + 6) + 2 + 3);

  ByteReader r(buf);
  EXPECT_EQ(r.U8(), 0xfe);
  EXPECT_EQ(r.U16(), 0xbeef);
  EXPECT_EQ(r.U32(), 0xdeadbeefu);
  EXPECT_EQ(r.U64(), 0x0123456789abcdefull);
  EXPECT_EQ(r.U64(), std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(r.ShortString(), "volume");
  EXPECT_EQ(r.ShortString(), "");
  EXPECT_EQ(r.Raw(3), "xyz");
  EXPECT_EQ(r.remaining(), 0u);
  EXPECT_EQ(r.U8(), std::nullopt);
}

TEST_F(BytesTest, LittleEndianLayout) {
  std::string buf;
  ByteWriter w(buf);
  w.U16(0x0102);
  w.U32(0x01020304);
  w.U64(0x0102030405060708ull);
  EXPECT_EQ(buf, std::string("\x02\x01"
                             "\x04\x03\x02\x01"
                             "\x08\x07\x06\x05\x04\x03\x02\x01",
                             14));
}

TEST_F(BytesTest, ShortStringHasU16LengthPrefix) {
  std::string buf;
  ByteWriter(buf).ShortString(std::string(300, 'a'));
  ASSERT_EQ(buf.size(), 302u);
  EXPECT_EQ(static_cast<unsigned char>(buf[0]), 300 & 0xff);
  EXPECT_EQ(static_cast<unsigned char>(buf[1]), 300 >> 8);
}

TEST_F(BytesTest, HighBytesAreNotSignExtended) {
  const std::string buf("\xff\xff\xff\xff\xff\xff\xff\x80", 8);
  EXPECT_EQ(ByteReader(buf).U64(), 0x80ffffffffffffffull);
  EXPECT_EQ(ByteReader(buf).U32(), 0xffffffffu);
  EXPECT_EQ(ByteReader(buf).U8(), 0xff);
}

TEST_F(BytesTest, TruncationGivesNullopt) {
  const std::string buf("\x01\x02\x03", 3);
  {
    ByteReader r(buf);
    EXPECT_EQ(r.U32(), std::nullopt);
    // A failed read consumes nothing.
    EXPECT_EQ(r.remaining(), 3u);
    EXPECT_EQ(r.U16(), 0x0201);
    EXPECT_EQ(r.U16(), std::nullopt);
    EXPECT_EQ(r.U8(), 0x03);
    EXPECT_EQ(r.U8(), std::nullopt);
  }
  EXPECT_EQ(ByteReader(buf).U64(), std::nullopt);
  EXPECT_EQ(ByteReader(buf).Raw(4), std::nullopt);
  EXPECT_EQ(ByteReader(buf).Raw(3), buf);
  EXPECT_EQ(ByteReader("").U8(), std::nullopt);
  EXPECT_EQ(ByteReader("").Raw(0), "");
}

TEST_F(BytesTest, ShortStringTruncated) {
  std::string buf;
  ByteWriter(buf).ShortString("abcdef");
  buf.pop_back();
  EXPECT_EQ(ByteReader(buf).ShortString(), std::nullopt);
  EXPECT_EQ(ByteReader(std::string_view("\x05", 1)).ShortString(), std::nullopt);
}

TEST_F(BytesTest, HugeRawLengthDoesNotOverflow) {
  ByteReader r("abc");
  EXPECT_EQ(r.Raw(std::numeric_limits<std::size_t>::max()), std::nullopt);
  EXPECT_EQ(r.remaining(), 3u);
}

}  // namespace
}  // namespace kindling
