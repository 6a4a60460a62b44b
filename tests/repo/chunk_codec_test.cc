#include "repo/chunk_codec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <span>
#include <string>
#include <vector>

#include "repo/envelope.h"
#include "testutil/sparse_image.h"

namespace kindling::repo {
namespace {

using ::testing::HasSubstr;

class ChunkCodecTest : public ::testing::Test {
 protected:
  ChunkCodecTest() : codec_(keys_, 1) {}

  static DataKeys MakeKeys() {
    DataKeys keys;
    keys.store_id = "00112233445566778899aabbccddeeff";
    keys.chunk_id_key = crypto::RandomKey();
    keys.data_key = crypto::RandomKey();
    return keys;
  }

  std::string Encode(std::string_view plaintext) {
    std::string object;
    codec_.Encode(plaintext, *codec_.Id(plaintext), object);
    return object;
  }

  // Decodes `object` as `id` and expects a corruption error naming the id.
  void ExpectCorrupt(std::string_view object, const ChunkId& id, const std::string& what) {
    std::string plaintext;
    auto st = codec_.Decode(object, id, plaintext);
    ASSERT_FALSE(st) << what << ": decoded";
    EXPECT_EQ(st.error().kind(), ErrorKind::kCorruption) << what;
    EXPECT_THAT(st.error().message(), HasSubstr(crypto::DigestHex(id))) << what;
    // DecodeInto refuses it the same way.
    auto into = codec_.DecodeInto(object, id, out_);
    ASSERT_FALSE(into) << what << ": decoded into a buffer";
    EXPECT_EQ(into.error().kind(), ErrorKind::kCorruption) << what;
    EXPECT_THAT(into.error().message(), HasSubstr(crypto::DigestHex(id))) << what;
  }

  std::vector<char> out_ = std::vector<char>(2 * kMinChunkSize);

  DataKeys keys_ = MakeKeys();
  ChunkCodec codec_;
};

TEST_F(ChunkCodecTest, IdIsKeyedOverThePlaintextsSha256AndDecodeReturnsIt) {
  const std::string plain = testutil::RandomData(100000, 3);
  const crypto::Digest sha = crypto::Sha256Of(plain);
  EXPECT_EQ(*codec_.Id(plain), *codec_.IdOf(sha));
  EXPECT_NE(*codec_.Id(plain), sha);  // keyed: not the bare hash
  const std::string object = Encode(plain);
  std::string decoded;
  crypto::Digest got{};
  ASSERT_TRUE(codec_.Decode(object, *codec_.Id(plain), decoded, &got));
  EXPECT_EQ(got, sha);
  std::vector<char> out(plain.size());
  crypto::Digest got_into{};
  auto n = codec_.DecodeInto(object, *codec_.Id(plain), std::span<char>(out), &got_into);
  ASSERT_TRUE(n);
  EXPECT_EQ(got_into, sha);
}

TEST_F(ChunkCodecTest, IdIsKeyedHmacOfThePlaintextsSha256) {
  const std::string data = "some chunk";
  EXPECT_EQ(*codec_.Id(data), crypto::HmacSha256(crypto::KeyBytes(keys_.chunk_id_key),
                                                 crypto::DigestBytes(crypto::Sha256Of(data))));
  EXPECT_NE(*codec_.Id(data), crypto::Sha256Of(data));
  EXPECT_NE(*codec_.Id(data), *codec_.Id("some chunK"));
}

TEST_F(ChunkCodecTest, CompressibleRoundTrip) {
  const std::string text = testutil::TextData(kMinChunkSize, 5);
  const ChunkId id = *codec_.Id(text);
  std::string object;
  codec_.Encode(text, id, object);
  EXPECT_LT(object.size(), text.size() / 2);
  auto header = ParseEnvelopeHeader(object, ObjectType::kChunk);
  ASSERT_TRUE(header);
  EXPECT_EQ(header->codec, Codec::kZstd);
  EXPECT_EQ(header->plain_size, text.size());
  std::string plaintext;
  ASSERT_TRUE(codec_.Decode(object, id, plaintext));
  EXPECT_EQ(plaintext, text);
}

TEST_F(ChunkCodecTest, IncompressibleStoredUncompressed) {
  const std::string random = testutil::RandomData(kMinChunkSize, 6);
  const ChunkId id = *codec_.Id(random);
  std::string object;
  codec_.Encode(random, id, object);
  EXPECT_EQ(object.size(), kEnvelopeHeaderSize + random.size() + crypto::kSealOverhead);
  auto header = ParseEnvelopeHeader(object, ObjectType::kChunk);
  ASSERT_TRUE(header);
  EXPECT_EQ(header->codec, Codec::kNone);
  std::string plaintext;
  ASSERT_TRUE(codec_.Decode(object, id, plaintext));
  EXPECT_EQ(plaintext, random);
}

TEST_F(ChunkCodecTest, ZeroChunkCompressesToAlmostNothing) {
  const std::string zeros(kMaxChunkSize, '\0');
  const std::string object = Encode(zeros);
  EXPECT_LT(object.size(), 64u * 1024);
  std::string plaintext;
  ASSERT_TRUE(codec_.Decode(object, *codec_.Id(zeros), plaintext));
  EXPECT_EQ(plaintext, zeros);
}

TEST_F(ChunkCodecTest, OddSizesRoundTrip) {
  for (std::size_t size : {std::size_t{1}, std::size_t{100}, std::size_t{kMinChunkSize - 1},
                           std::size_t{kMinChunkSize + 1}, std::size_t{3u << 20}}) {
    for (testutil::Fill fill : {testutil::Fill::kRandom, testutil::Fill::kText}) {
      const std::string data = testutil::FillData(fill, size, size);
      const ChunkId id = *codec_.Id(data);
      std::string object;
      codec_.Encode(data, id, object);
      std::string plaintext;
      ASSERT_TRUE(codec_.Decode(object, id, plaintext)) << size;
      EXPECT_EQ(plaintext, data) << size;
    }
  }
}

TEST_F(ChunkCodecTest, CodecIsReusableAcrossCalls) {
  // One codec serves a worker thread for many chunks: the reused buffers must
  // not leak data from one call into the next.
  const std::string big = testutil::TextData(1 << 20, 1);
  const std::string small = testutil::RandomData(1000, 2);
  const std::string big_object = Encode(big);
  const std::string small_object = Encode(small);
  std::string plaintext;
  ASSERT_TRUE(codec_.Decode(big_object, *codec_.Id(big), plaintext));
  EXPECT_EQ(plaintext, big);
  ASSERT_TRUE(codec_.Decode(small_object, *codec_.Id(small), plaintext));
  EXPECT_EQ(plaintext, small);
  ASSERT_TRUE(codec_.Decode(big_object, *codec_.Id(big), plaintext));
  EXPECT_EQ(plaintext, big);
}

TEST_F(ChunkCodecTest, DecodeIntoRoundTripsCompressedAndStoredChunks) {
  for (testutil::Fill fill : {testutil::Fill::kText, testutil::Fill::kRandom}) {
    const std::string data = testutil::FillData(fill, kMinChunkSize - 3, 21);
    const ChunkId id = *codec_.Id(data);
    auto n = codec_.DecodeInto(Encode(data), id, out_);
    ASSERT_TRUE(n) << n.error().message();
    ASSERT_EQ(*n, data.size());
    EXPECT_TRUE(std::string_view(out_.data(), *n) == data);
  }
}

TEST_F(ChunkCodecTest, DecodeIntoTooSmallBufferIsCorruption) {
  for (testutil::Fill fill : {testutil::Fill::kText, testutil::Fill::kRandom}) {
    const std::string data = testutil::FillData(fill, 10000, 22);
    const ChunkId id = *codec_.Id(data);
    const std::string object = Encode(data);
    auto n = codec_.DecodeInto(object, id, std::span<char>(out_.data(), data.size() - 1));
    ASSERT_FALSE(n);
    EXPECT_EQ(n.error().kind(), ErrorKind::kCorruption);
    auto exact = codec_.DecodeInto(object, id, std::span<char>(out_.data(), data.size()));
    ASSERT_TRUE(exact) << exact.error().message();
    EXPECT_EQ(*exact, data.size());
  }
}

TEST_F(ChunkCodecTest, ObjectsAreEncrypted) {
  const std::string text = "a fairly distinctive plaintext string " + std::string(200, 'z');
  const std::string object = Encode(text);
  EXPECT_EQ(object.find("distinctive"), std::string::npos);
  // Fresh nonce each time: the same chunk encodes to different bytes.
  EXPECT_NE(Encode(text), object);
}

TEST_F(ChunkCodecTest, TamperedByteIsCorruption) {
  for (testutil::Fill fill : {testutil::Fill::kRandom, testutil::Fill::kText}) {
    const std::string data = testutil::FillData(fill, kMinChunkSize, 9);
    const ChunkId id = *codec_.Id(data);
    std::string object;
    codec_.Encode(data, id, object);
    const std::size_t nonce = kEnvelopeHeaderSize;
    const std::size_t body = nonce + crypto::kNonceSize;
    const std::size_t tag = object.size() - crypto::kTagSize;
    // Every header byte, the nonce, the body's first, middle and last bytes,
    // and every tag byte.
    std::vector<std::pair<std::size_t, std::string>> offsets;
    for (std::size_t i = 0; i < kEnvelopeHeaderSize; ++i) offsets.push_back({i, "header"});
    for (std::size_t i = nonce; i < body; ++i) offsets.push_back({i, "nonce"});
    offsets.push_back({body, "body start"});
    offsets.push_back({(body + tag) / 2, "body middle"});
    offsets.push_back({tag - 1, "body end"});
    for (std::size_t i = tag; i < object.size(); ++i) offsets.push_back({i, "tag"});
    for (const auto& [offset, region] : offsets) {
      for (unsigned char mask : {0x01, 0x80}) {
        std::string tampered = object;
        tampered[offset] = static_cast<char>(tampered[offset] ^ mask);
        ExpectCorrupt(tampered, id, region + " byte " + std::to_string(offset));
      }
    }
  }
}

TEST_F(ChunkCodecTest, TruncatedOrExtendedIsCorruption) {
  const std::string data = testutil::RandomData(5000, 3);
  const ChunkId id = *codec_.Id(data);
  const std::string object = Encode(data);
  ExpectCorrupt("", id, "empty");
  ExpectCorrupt(std::string_view(object).substr(0, kEnvelopeHeaderSize), id, "header only");
  ExpectCorrupt(std::string_view(object).substr(0, object.size() - 1), id, "short by one");
  ExpectCorrupt(object + '\0', id, "one extra byte");
}

TEST_F(ChunkCodecTest, WrongIdIsCorruption) {
  const std::string a = testutil::RandomData(4096, 1);
  const std::string b = testutil::RandomData(4096, 2);
  // An object stored under another chunk's key.
  ExpectCorrupt(Encode(a), *codec_.Id(b), "object of chunk a read as chunk b");
  ChunkId zero{};
  ExpectCorrupt(Encode(a), zero, "all-zero id");
}

TEST_F(ChunkCodecTest, OtherStoreKeysAreCorruption) {
  const std::string data = testutil::TextData(10000, 4);
  const std::string object = Encode(data);
  DataKeys other = MakeKeys();
  other.chunk_id_key = keys_.chunk_id_key;  // same id, different data key
  ChunkCodec other_codec(other, 1);
  std::string plaintext;
  auto st = other_codec.Decode(object, *codec_.Id(data), plaintext);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().kind(), ErrorKind::kCorruption);
}

TEST_F(ChunkCodecTest, ObjectWithMatchingAuthButWrongContentIsCorruption) {
  // A sealed object whose content does not hash to its id (e.g. written by a
  // buggy client holding the keys) is still refused by the id check.
  const std::string data = "the real content";
  const ChunkId id = *codec_.Id(data);
  std::string forged;
  SealEnvelope(keys_.data_key, EnvelopeHeader{ObjectType::kChunk, kFormatVersion, Codec::kNone, 16},
               "not the content!", crypto::DigestBytes(id), forged);
  ExpectCorrupt(forged, id, "forged content");
  std::string bad_length;
  SealEnvelope(keys_.data_key, EnvelopeHeader{ObjectType::kChunk, kFormatVersion, Codec::kNone, 99},
               data, crypto::DigestBytes(id), bad_length);
  ExpectCorrupt(bad_length, id, "declared length mismatch");
  std::string bad_zstd;
  SealEnvelope(keys_.data_key, EnvelopeHeader{ObjectType::kChunk, kFormatVersion, Codec::kZstd, 16},
               "definitely not zstd", crypto::DigestBytes(id), bad_zstd);
  ExpectCorrupt(bad_zstd, id, "bad zstd frame");
  std::string too_big;
  SealEnvelope(keys_.data_key,
               EnvelopeHeader{ObjectType::kChunk, kFormatVersion, Codec::kZstd, kMaxChunkSize + 1},
               "x", crypto::DigestBytes(id), too_big);
  ExpectCorrupt(too_big, id, "declared size too large");
}

}  // namespace
}  // namespace kindling::repo
