#include "repo/envelope.h"

#include <gtest/gtest.h>

#include <string>

namespace kindling::repo {
namespace {

class EnvelopeTest : public ::testing::Test {
 protected:
  std::string Seal(std::string_view body, EnvelopeHeader header, std::string_view context = "ctx") {
    std::string out;
    SealEnvelope(key_, header, body, context, out);
    return out;
  }
  static EnvelopeHeader ChunkHeader(std::uint32_t plain_size, Codec codec = Codec::kNone) {
    return EnvelopeHeader{ObjectType::kChunk, kFormatVersion, codec, plain_size};
  }
  crypto::Key key_ = crypto::RandomKey();
};

TEST_F(EnvelopeTest, HeaderLayout) {
  const std::string object = Seal("payload", ChunkHeader(7, Codec::kZstd));
  ASSERT_EQ(object.size(), kEnvelopeHeaderSize + 7 + crypto::kSealOverhead);
  EXPECT_EQ(object.substr(0, 4), "KNDL");
  EXPECT_EQ(object[4], 2);  // chunk
  EXPECT_EQ(object[5], 1);  // version
  EXPECT_EQ(object[6], 1);  // zstd
  EXPECT_EQ(object[7], 1);  // AES-256-GCM
  EXPECT_EQ(object.substr(8, 4), std::string("\x07\x00\x00\x00", 4));
}

TEST_F(EnvelopeTest, RoundTrip) {
  for (ObjectType type : {ObjectType::kConfig, ObjectType::kChunk, ObjectType::kManifest}) {
    const EnvelopeHeader in{type, kFormatVersion, Codec::kZstd, 123456};
    const std::string object = Seal("the body", in, "context");
    auto parsed = ParseEnvelopeHeader(object, type);
    ASSERT_TRUE(parsed) << parsed.error().message();
    EXPECT_EQ(parsed->type, type);
    EXPECT_EQ(parsed->codec, Codec::kZstd);
    EXPECT_EQ(parsed->plain_size, 123456u);
    std::string body;
    auto opened = OpenEnvelope(key_, object, type, "context", body);
    ASSERT_TRUE(opened) << opened.error().message();
    EXPECT_EQ(body, "the body");
    EXPECT_EQ(opened->plain_size, 123456u);
    EXPECT_EQ(opened->version, kFormatVersion);
  }
}

TEST_F(EnvelopeTest, EmptyBody) {
  const std::string object = Seal("", ChunkHeader(0));
  std::string body = "stale";
  ASSERT_TRUE(OpenEnvelope(key_, object, ObjectType::kChunk, "ctx", body));
  EXPECT_TRUE(body.empty());
}

TEST_F(EnvelopeTest, WrongTypeIsCorruption) {
  const std::string object = Seal("x", ChunkHeader(1));
  auto parsed = ParseEnvelopeHeader(object, ObjectType::kManifest);
  ASSERT_FALSE(parsed);
  EXPECT_EQ(parsed.error().kind(), ErrorKind::kCorruption);
  std::string body;
  auto opened = OpenEnvelope(key_, object, ObjectType::kConfig, "ctx", body);
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().kind(), ErrorKind::kCorruption);
}

TEST_F(EnvelopeTest, WrongContextIsCorruption) {
  // An object moved to another key (another context) fails authentication.
  const std::string object = Seal("x", ChunkHeader(1), "chunk-a");
  std::string body;
  auto opened = OpenEnvelope(key_, object, ObjectType::kChunk, "chunk-b", body);
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().kind(), ErrorKind::kCorruption);
}

TEST_F(EnvelopeTest, WrongKeyIsCorruption) {
  const std::string object = Seal("x", ChunkHeader(1));
  std::string body;
  auto opened = OpenEnvelope(crypto::RandomKey(), object, ObjectType::kChunk, "ctx", body);
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().kind(), ErrorKind::kCorruption);
}

TEST_F(EnvelopeTest, EveryFlippedByteIsCorruption) {
  const std::string object = Seal("a body of some length", ChunkHeader(21));
  for (std::size_t i = 0; i < object.size(); ++i) {
    std::string tampered = object;
    tampered[i] = static_cast<char>(tampered[i] ^ 0x01);
    std::string body;
    auto opened = OpenEnvelope(key_, tampered, ObjectType::kChunk, "ctx", body);
    ASSERT_FALSE(opened) << "byte " << i;
    EXPECT_EQ(opened.error().kind(), ErrorKind::kCorruption) << "byte " << i;
  }
}

TEST_F(EnvelopeTest, ParseRejectsBadHeaders) {
  const std::string good = Seal("x", ChunkHeader(1));
  auto expect_bad = [&](std::size_t offset, char value) {
    std::string object = good;
    object[offset] = value;
    auto parsed = ParseEnvelopeHeader(object, ObjectType::kChunk);
    ASSERT_FALSE(parsed) << "offset " << offset;
    EXPECT_EQ(parsed.error().kind(), ErrorKind::kCorruption);
  };
  expect_bad(0, 'X');  // magic
  expect_bad(5, 2);    // version
  expect_bad(6, 2);    // codec
  expect_bad(7, 0);    // cipher
  expect_bad(7, 2);
}

TEST_F(EnvelopeTest, TruncatedIsCorruption) {
  const std::string object = Seal("x", ChunkHeader(1));
  for (std::size_t len : {std::size_t{0}, std::size_t{4}, kEnvelopeHeaderSize,
                          kEnvelopeHeaderSize + crypto::kSealOverhead - 1, object.size() - 1}) {
    std::string body;
    auto opened = OpenEnvelope(key_, std::string_view(object).substr(0, len), ObjectType::kChunk,
                               "ctx", body);
    ASSERT_FALSE(opened) << len;
    EXPECT_EQ(opened.error().kind(), ErrorKind::kCorruption);
  }
}

}  // namespace
}  // namespace kindling::repo
