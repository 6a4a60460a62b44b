#include "repo/manifest.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <zstd.h>

#include <string>

#include "repo/chunk_codec.h"
#include "repo/envelope.h"
#include "repo/layout.h"

namespace kindling::repo {
namespace {

using ::testing::HasSubstr;

class ManifestTest : public ::testing::Test {
 protected:
  static DataKeys MakeKeys() {
    DataKeys keys;
    keys.store_id = "feedfacefeedfacefeedfacefeedface";
    keys.chunk_id_key = crypto::RandomKey();
    keys.data_key = crypto::RandomKey();
    return keys;
  }

  // A manifest whose chunk table alternates data and holes.
  static Manifest Sample(std::uint64_t image_size, std::uint32_t chunk_size) {
    Manifest m;
    m.volume_id = "vol-1";
    m.backup_id = "01890a5d-ac96-774b-bcce-b302099a8057";
    m.image_size = image_size;
    m.chunk_size = chunk_size;
    m.created_unix_ms = 1700000000123;
    m.image_digest = crypto::Sha256Of("image");
    m.stats = BackupStats{1, 2, 3, 4, 5, 6, 7, 8};
    const std::uint64_t count = ChunkCount(image_size, chunk_size);
    for (std::uint64_t i = 0; i < count; ++i) {
      ChunkRef ref;
      ref.is_hole = i % 3 == 1;
      if (!ref.is_hole) {
        ref.id = crypto::Sha256Of("chunk " + std::to_string(i));
        ref.stored_size = static_cast<std::uint32_t>(1000 + i);
      }
      m.chunks.push_back(ref);
    }
    return m;
  }

  static void ExpectEqual(const Manifest& a, const Manifest& b) {
    EXPECT_EQ(a.volume_id, b.volume_id);
    EXPECT_EQ(a.backup_id, b.backup_id);
    EXPECT_EQ(a.image_size, b.image_size);
    EXPECT_EQ(a.chunk_size, b.chunk_size);
    EXPECT_EQ(a.created_unix_ms, b.created_unix_ms);
    EXPECT_EQ(a.image_digest, b.image_digest);
    EXPECT_EQ(a.stats.chunks_data, b.stats.chunks_data);
    EXPECT_EQ(a.stats.chunks_hole, b.stats.chunks_hole);
    EXPECT_EQ(a.stats.chunks_uploaded, b.stats.chunks_uploaded);
    EXPECT_EQ(a.stats.bytes_read, b.stats.bytes_read);
    EXPECT_EQ(a.stats.bytes_data, b.stats.bytes_data);
    EXPECT_EQ(a.stats.bytes_uploaded, b.stats.bytes_uploaded);
    EXPECT_EQ(a.stats.bytes_referenced, b.stats.bytes_referenced);
    EXPECT_EQ(a.stats.duration_ms, b.stats.duration_ms);
    ASSERT_EQ(a.chunks.size(), b.chunks.size());
    for (std::size_t i = 0; i < a.chunks.size(); ++i) {
      EXPECT_EQ(a.chunks[i].is_hole, b.chunks[i].is_hole) << i;
      if (!a.chunks[i].is_hole) {
        EXPECT_EQ(a.chunks[i].id, b.chunks[i].id) << i;
        EXPECT_EQ(a.chunks[i].stored_size, b.chunks[i].stored_size) << i;
      }
    }
  }

  Result<Manifest> Decode(std::string_view object, const Manifest& m) {
    return DecodeManifest(keys_, object, m.volume_id, m.backup_id);
  }

  void ExpectCorrupt(const Result<Manifest>& r, const Manifest& m, const std::string& what) {
    ASSERT_FALSE(r) << what << ": decoded";
    EXPECT_EQ(r.error().kind(), ErrorKind::kCorruption) << what;
    EXPECT_THAT(r.error().message(), HasSubstr(ManifestKey(m.volume_id, m.backup_id))) << what;
  }

  DataKeys keys_ = MakeKeys();
};

TEST_F(ManifestTest, ChunkCountAndLengths) {
  EXPECT_EQ(ChunkCount(0, kMinChunkSize), 0u);
  EXPECT_EQ(ChunkCount(1, kMinChunkSize), 1u);
  EXPECT_EQ(ChunkCount(kMinChunkSize, kMinChunkSize), 1u);
  EXPECT_EQ(ChunkCount(kMinChunkSize + 1, kMinChunkSize), 2u);
  EXPECT_EQ(ChunkCount(32ull << 40, 4u << 20), 8u << 20);
  EXPECT_EQ(ChunkCount(5, 0), 0u);
  Manifest m = Sample(2 * kMinChunkSize + 10, kMinChunkSize);
  EXPECT_EQ(m.ChunkOffset(2), 2u * kMinChunkSize);
  EXPECT_EQ(m.ChunkLength(0), kMinChunkSize);
  EXPECT_EQ(m.ChunkLength(2), 10u);
}

TEST_F(ManifestTest, RoundTripWithHolesAndData) {
  for (std::uint64_t size : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{kMinChunkSize - 1},
                             std::uint64_t{kMinChunkSize}, std::uint64_t{kMinChunkSize + 1},
                             std::uint64_t{37} * kMinChunkSize + 12345}) {
    const Manifest m = Sample(size, kMinChunkSize);
    auto decoded = Decode(*EncodeManifest(keys_, m), m);
    ASSERT_TRUE(decoded) << size << ": " << decoded.error().message();
    ExpectEqual(*decoded, m);
  }
}

TEST_F(ManifestTest, LargeChunkSizeAndSparseImage) {
  // 1 TiB of 4 MiB chunks, all holes but one: the manifest stays small.
  Manifest m = Sample(0, 4u << 20);
  m.image_size = 1ull << 40;
  m.chunks.assign(ChunkCount(m.image_size, m.chunk_size), ChunkRef{});
  m.chunks[1000].is_hole = false;
  m.chunks[1000].id = crypto::Sha256Of("x");
  m.chunks[1000].stored_size = 77;
  const std::string object = *EncodeManifest(keys_, m);
  EXPECT_LT(object.size(), 4096u);
  auto decoded = Decode(object, m);
  ASSERT_TRUE(decoded) << decoded.error().message();
  ExpectEqual(*decoded, m);
}

TEST_F(ManifestTest, ObjectIsAManifestEnvelope) {
  const Manifest m = Sample(kMinChunkSize * 3, kMinChunkSize);
  const std::string object = *EncodeManifest(keys_, m);
  auto header = ParseEnvelopeHeader(object, ObjectType::kManifest);
  ASSERT_TRUE(header) << header.error().message();
  EXPECT_EQ(object.find("vol-1"), std::string::npos);
}

TEST_F(ManifestTest, TamperedByteIsCorruptionNamingTheKey) {
  const Manifest m = Sample(kMinChunkSize * 10 + 5, kMinChunkSize);
  const std::string object = *EncodeManifest(keys_, m);
  for (std::size_t i = 0; i < object.size(); ++i) {
    std::string tampered = object;
    tampered[i] = static_cast<char>(tampered[i] ^ 0x04);
    ExpectCorrupt(Decode(tampered, m), m, "byte " + std::to_string(i));
  }
}

TEST_F(ManifestTest, TruncatedIsCorruption) {
  const Manifest m = Sample(kMinChunkSize * 4, kMinChunkSize);
  const std::string object = *EncodeManifest(keys_, m);
  for (std::size_t len : {std::size_t{0}, std::size_t{12}, object.size() / 2, object.size() - 1})
    ExpectCorrupt(Decode(std::string_view(object).substr(0, len), m), m, std::to_string(len));
}

TEST_F(ManifestTest, DecodingUnderAnotherNameIsCorruption) {
  const Manifest m = Sample(kMinChunkSize * 4, kMinChunkSize);
  const std::string object = *EncodeManifest(keys_, m);
  Manifest other_volume = m;
  other_volume.volume_id = "vol-2";
  ExpectCorrupt(Decode(object, other_volume), other_volume, "other volume");
  Manifest other_backup = m;
  other_backup.backup_id = "01890a5d-ac96-774b-bcce-b302099a8058";
  ExpectCorrupt(Decode(object, other_backup), other_backup, "other backup");
}

TEST_F(ManifestTest, OtherStoreKeysAreCorruption) {
  const Manifest m = Sample(kMinChunkSize * 4, kMinChunkSize);
  const std::string object = *EncodeManifest(keys_, m);
  const DataKeys other = MakeKeys();
  auto r = DecodeManifest(other, object, m.volume_id, m.backup_id);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), ErrorKind::kCorruption);
}

TEST_F(ManifestTest, InconsistentContentIsCorruption) {
  // Authenticated but self-inconsistent manifests (as a buggy writer might
  // produce) are refused too.
  Manifest bad_count = Sample(kMinChunkSize * 4, kMinChunkSize);
  bad_count.chunks.pop_back();
  ExpectCorrupt(Decode(*EncodeManifest(keys_, bad_count), bad_count), bad_count, "chunk count");

  Manifest small_chunks = Sample(kMinChunkSize * 4, kMinChunkSize);
  small_chunks.chunk_size = kMinChunkSize / 2;
  small_chunks.chunks.resize(ChunkCount(small_chunks.image_size, small_chunks.chunk_size));
  ExpectCorrupt(Decode(*EncodeManifest(keys_, small_chunks), small_chunks), small_chunks,
                "chunk size below minimum");

  Manifest huge_chunks = Sample(kMinChunkSize * 4, kMinChunkSize);
  huge_chunks.chunk_size = kMaxChunkSize * 2;
  huge_chunks.chunks.resize(ChunkCount(huge_chunks.image_size, huge_chunks.chunk_size));
  ExpectCorrupt(Decode(*EncodeManifest(keys_, huge_chunks), huge_chunks), huge_chunks,
                "chunk size above maximum");
}

TEST_F(ManifestTest, EarlierPayloadVersionIsRefusedByName) {
  // A version 1 payload (whole-image SHA-256, plaintext chunk ids), sealed
  // with the right key: refused, and the message says why.
  const Manifest m = Sample(kMinChunkSize * 4, kMinChunkSize);
  const std::string context = "manifest:" + ManifestKey(m.volume_id, m.backup_id);
  std::string body;
  auto header =
      OpenEnvelope(keys_.data_key, *EncodeManifest(keys_, m), ObjectType::kManifest, context, body);
  ASSERT_TRUE(header) << header.error().message();
  std::string payload(header->plain_size, '\0');
  ASSERT_EQ(ZSTD_decompress(payload.data(), payload.size(), body.data(), body.size()),
            payload.size());
  ASSERT_EQ(payload[0], 2);
  payload[0] = 1;
  std::string compressed(ZSTD_compressBound(payload.size()), '\0');
  compressed.resize(
      ZSTD_compress(compressed.data(), compressed.size(), payload.data(), payload.size(), 1));
  std::string object;
  SealEnvelope(keys_.data_key, *header, compressed, context, object);
  auto decoded = Decode(object, m);
  ASSERT_FALSE(decoded);
  EXPECT_EQ(decoded.error().kind(), ErrorKind::kCorruption);
  EXPECT_THAT(decoded.error().message(), HasSubstr("payload version 1 is not supported"));
}

// The payload bound is exact for the worst case (longest ids, every chunk
// data): a manifest of MaxManifestChunks(limit) chunks encodes within
// `limit`, one more chunk is refused with an error, never truncated. A small
// injected limit stands for the real 2 GiB.
TEST_F(ManifestTest, EncoderRefusesManifestsOverTheLimit) {
  constexpr std::uint64_t kLimit = kMaxManifestFixedPart + 100 * kManifestBytesPerChunk;
  ASSERT_EQ(MaxManifestChunks(kLimit), 100u);
  Manifest m;
  m.volume_id = std::string(65535, 'v');
  m.backup_id = std::string(65535, 'b');
  m.chunk_size = kMinChunkSize;
  m.image_size = 100ull * kMinChunkSize;
  m.chunks.resize(100);
  for (ChunkRef& c : m.chunks) c.is_hole = false;
  auto fits = EncodeManifest(keys_, m, kLimit);
  ASSERT_TRUE(fits) << fits.error().message();

  m.image_size += 1;
  m.chunks.emplace_back();
  m.chunks.back().is_hole = false;
  auto over = EncodeManifest(keys_, m, kLimit);
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_THAT(over.error().message(), HasSubstr("use a larger chunk size"));
}

TEST_F(ManifestTest, LimitsMatchTheFormat) {
  // About 58 M chunks: 16 TiB at 512 KiB chunks, and the payload's size fits
  // the envelope header's u32.
  EXPECT_GT(kMaxManifestChunks, 58'000'000u);
  EXPECT_LT(kMaxManifestChunks, 58'100'000u);
  EXPECT_LE(ChunkCount(16ull << 40, 512u << 10), kMaxManifestChunks);
  EXPECT_LT(kMaxManifestPayload, 1ull << 32);
}

TEST_F(ManifestTest, EncoderRefusesIdsItCannotRecord) {
  Manifest m = Sample(10 * kMinChunkSize, kMinChunkSize);
  m.backup_id = std::string(65536, 'b');
  auto encoded = EncodeManifest(keys_, m);
  ASSERT_FALSE(encoded);
  EXPECT_EQ(encoded.error().kind(), ErrorKind::kInvalidArgument);
}

}  // namespace
}  // namespace kindling::repo
