// Golden store objects (tests/golden/store/README.md): one checked-in sample
// of every object a store holds, written from fixed keys and inputs. Each is
// decoded with the current code and its content checked, and the current
// encoders' output for the same input is compared with it, so a change of
// the format (or of how ids are derived) cannot pass silently: it fails here
// until the samples are regenerated deliberately, with
//
//   KINDLING_REGENERATE_GOLDEN=1 build/tests/engine_tests --gtest_filter='GoldenObjectsTest.*'
//
// (then review and commit the new files). Sealed objects carry a random
// nonce, so "the same output" means: the same size, the same clear bytes
// (envelope header, key fingerprint) and the same content once opened.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "common/files.h"
#include "common/hex.h"
#include "crypto/key_file.h"
#include "engine/damage.h"
#include "engine/repository.h"
#include "engine/restore.h"
#include "repo/chunk_codec.h"
#include "repo/envelope.h"
#include "repo/image_digest.h"
#include "repo/layout.h"
#include "repo/manifest.h"
#include "repo/store_keys.h"
#include "storage/local_store.h"
#include "testutil/temp_dir.h"

namespace kindling::engine {
namespace {

namespace fs = std::filesystem;

const fs::path kGoldenDir = fs::path(KINDLING_SOURCE_DIR) / "tests/golden/store";
const fs::path kKeyFile = kGoldenDir / "store.key";
const fs::path kObjects = kGoldenDir / "objects";

constexpr std::uint32_t kChunkSize = repo::kMinChunkSize;
constexpr char kVolume[] = "vol-golden";
constexpr char kBackup[] = "01890a5d-ac96-774b-bcce-b302099a8057";

crypto::Key KeyFrom(int start, int step) {
  crypto::Key key{};
  for (std::size_t i = 0; i < key.size(); ++i)
    key[i] = static_cast<std::uint8_t>(start + step * static_cast<int>(i));
  return key;
}

crypto::Key KeyFileKey() { return KeyFrom(0, 1); }

repo::DataKeys Keys() {
  repo::DataKeys keys;
  keys.store_id = "00112233445566778899aabbccddeeff";
  keys.chunk_id_key = KeyFrom(0x11, 0);
  keys.data_key = KeyFrom(7, 3);
  keys.default_chunk_size = kChunkSize;
  return keys;
}

// The image: a compressible chunk, a hole, and a short incompressible tail.
std::string TextChunk() {
  std::string text;
  while (text.size() < kChunkSize) text += "kindling golden chunk, stored zstd-compressed\n";
  text.resize(kChunkSize);
  return text;
}

std::string RandomTail() {
  std::string out(5000, '\0');
  std::uint64_t x = 0x9e3779b97f4a7c15ull;
  for (char& c : out) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    c = static_cast<char>(x >> 56);
  }
  return out;
}

std::string Image() { return TextChunk() + std::string(kChunkSize, '\0') + RandomTail(); }

repo::ChunkId IdOf(const repo::DataKeys& keys, std::string_view plain) {
  repo::ChunkCodec codec(keys, 1);
  auto id = codec.Id(plain);
  if (!id) throw std::runtime_error(id.error().message());
  return *id;
}

std::string EncodeChunk(const repo::DataKeys& keys, std::string_view plain) {
  repo::ChunkCodec codec(keys, 3);
  std::string object;
  codec.Encode(plain, IdOf(keys, plain), object);
  return object;
}

// The manifest of Image(); stored sizes are those of the chunk objects.
repo::Manifest ExpectedManifest(const repo::DataKeys& keys, std::uint32_t text_size,
                                std::uint32_t tail_size) {
  const std::string image = Image();
  repo::Manifest m;
  m.volume_id = kVolume;
  m.backup_id = kBackup;
  m.image_size = image.size();
  m.chunk_size = kChunkSize;
  m.created_unix_ms = 1700000000123;
  repo::ImageDigest digest(m.image_size, kChunkSize);
  digest.SetChunk(0, crypto::Sha256Of(TextChunk()));
  digest.SetZeroChunk(1);
  digest.SetChunk(2, crypto::Sha256Of(RandomTail()));
  m.image_digest = *digest.Finish();
  m.chunks.resize(3);
  m.chunks[0] = repo::ChunkRef{false, IdOf(keys, TextChunk()), text_size};
  m.chunks[2] = repo::ChunkRef{false, IdOf(keys, RandomTail()), tail_size};
  m.stats = repo::BackupStats{2,
                              1,
                              2,
                              kChunkSize + 5000,
                              kChunkSize + 5000,
                              std::uint64_t{text_size} + tail_size,
                              std::uint64_t{text_size} + tail_size,
                              42};
  return m;
}

DamageRecord ExpectedDamage() {
  DamageRecord record;
  record.chunk_id = KeyFrom(0xdd, 0);
  record.problem = DamageProblem::kCorrupt;
  record.detected_unix_ms = 1700000000456;
  record.message = "authentication failed";
  record.volume_id = kVolume;
  record.backup_id = kBackup;
  return record;
}

void Write(const fs::path& path, std::string_view data) {
  ASSERT_TRUE(CreateDirectoriesDurably(path.parent_path()));
  ASSERT_TRUE(WriteFileAtomic(path, data));
}

// Writes every sample from the current encoders (a deliberate format change).
void Regenerate() {
  const repo::DataKeys keys = Keys();
  fs::remove_all(kObjects);
  Write(kKeyFile, HexEncode(crypto::KeyBytes(KeyFileKey())) + "\n");
  auto config = repo::EncodeStoreConfig(keys, KeyFileKey());
  ASSERT_TRUE(config);
  Write(kObjects / repo::kConfigKey, *config);
  const std::string text = EncodeChunk(keys, TextChunk());
  const std::string tail = EncodeChunk(keys, RandomTail());
  Write(kObjects / repo::ChunkKey(IdOf(keys, TextChunk())), text);
  Write(kObjects / repo::ChunkKey(IdOf(keys, RandomTail())), tail);
  auto manifest =
      repo::EncodeManifest(keys, ExpectedManifest(keys, static_cast<std::uint32_t>(text.size()),
                                                  static_cast<std::uint32_t>(tail.size())));
  ASSERT_TRUE(manifest);
  Write(kObjects / repo::ManifestKey(kVolume, kBackup), *manifest);
  Write(kObjects / repo::DamagedChunkKey(ExpectedDamage().chunk_id),
        EncodeDamageRecord(ExpectedDamage()));
}

std::string Golden(const fs::path& path) {
  auto data = ReadFile(path);
  if (!data)
    throw std::runtime_error("golden sample " + path.string() + ": " + data.error().message() +
                             " (regenerate: see tests/golden/store/README.md)");
  return *data;
}

// Same size and the same clear prefix (`clear` bytes): what a sealed object
// of the same input looks like whatever its nonce.
void ExpectSameShape(const std::string& golden, const std::string& fresh, std::size_t clear,
                     const std::string& what) {
  EXPECT_EQ(fresh.size(), golden.size()) << what << ": the encoder's output changed size";
  EXPECT_EQ(HexEncode(std::string_view(fresh).substr(0, clear)),
            HexEncode(std::string_view(golden).substr(0, clear)))
      << what << ": the encoder's clear header changed";
}

class GoldenObjectsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (const char* regenerate = std::getenv("KINDLING_REGENERATE_GOLDEN");
        regenerate != nullptr && std::string(regenerate) == "1")
      Regenerate();
  }
};

TEST_F(GoldenObjectsTest, KeyFile) {
  EXPECT_EQ(Golden(kKeyFile), HexEncode(crypto::KeyBytes(KeyFileKey())) + "\n");
  auto key = crypto::LoadKeyFile(kKeyFile);
  ASSERT_TRUE(key) << key.error().message();
  EXPECT_EQ(*key, KeyFileKey());
}

TEST_F(GoldenObjectsTest, StoreConfig) {
  auto store = storage::LocalStore::Open(kObjects);
  ASSERT_TRUE(store);
  auto keys = repo::OpenStoreKeys(**store, KeyFileKey());
  ASSERT_TRUE(keys) << keys.error().message();
  EXPECT_EQ(keys->store_id, Keys().store_id);
  EXPECT_EQ(keys->chunk_id_key, Keys().chunk_id_key);
  EXPECT_EQ(keys->data_key, Keys().data_key);
  EXPECT_EQ(keys->default_chunk_size, Keys().default_chunk_size);
  auto fresh = repo::EncodeStoreConfig(Keys(), KeyFileKey());
  ASSERT_TRUE(fresh);
  // The envelope header and the key file's fingerprint are in clear.
  ExpectSameShape(Golden(kObjects / repo::kConfigKey), *fresh, repo::kEnvelopeHeaderSize + 8,
                  "store config");
}

TEST_F(GoldenObjectsTest, Chunks) {
  const repo::DataKeys keys = Keys();
  repo::ChunkCodec codec(keys, 1);
  for (const std::string& plain : {TextChunk(), RandomTail()}) {
    // The object's key is its id: a change in how ids are derived shows as
    // a missing sample.
    const repo::ChunkId id = IdOf(keys, plain);
    const std::string golden = Golden(kObjects / repo::ChunkKey(id));
    std::string decoded;
    crypto::Digest sha{};
    auto st = codec.Decode(golden, id, decoded, &sha);
    ASSERT_TRUE(st) << st.error().message();
    EXPECT_EQ(decoded, plain);
    EXPECT_EQ(sha, crypto::Sha256Of(plain));
    ExpectSameShape(golden, EncodeChunk(keys, plain), repo::kEnvelopeHeaderSize,
                    "chunk " + crypto::DigestHex(id));
  }
  // One compressed, one stored as it is.
  auto text_header = repo::ParseEnvelopeHeader(
      Golden(kObjects / repo::ChunkKey(IdOf(keys, TextChunk()))), repo::ObjectType::kChunk);
  ASSERT_TRUE(text_header);
  EXPECT_EQ(text_header->codec, repo::Codec::kZstd);
  auto tail_header = repo::ParseEnvelopeHeader(
      Golden(kObjects / repo::ChunkKey(IdOf(keys, RandomTail()))), repo::ObjectType::kChunk);
  ASSERT_TRUE(tail_header);
  EXPECT_EQ(tail_header->codec, repo::Codec::kNone);
}

TEST_F(GoldenObjectsTest, Manifest) {
  const repo::DataKeys keys = Keys();
  const auto text_size =
      static_cast<std::uint32_t>(Golden(kObjects / repo::ChunkKey(IdOf(keys, TextChunk()))).size());
  const auto tail_size = static_cast<std::uint32_t>(
      Golden(kObjects / repo::ChunkKey(IdOf(keys, RandomTail()))).size());
  const repo::Manifest expected = ExpectedManifest(keys, text_size, tail_size);
  const std::string golden = Golden(kObjects / repo::ManifestKey(kVolume, kBackup));
  auto m = repo::DecodeManifest(keys, golden, kVolume, kBackup);
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_EQ(m->volume_id, expected.volume_id);
  EXPECT_EQ(m->backup_id, expected.backup_id);
  EXPECT_EQ(m->image_size, expected.image_size);
  EXPECT_EQ(m->chunk_size, expected.chunk_size);
  EXPECT_EQ(m->created_unix_ms, expected.created_unix_ms);
  EXPECT_EQ(m->image_digest, expected.image_digest);
  EXPECT_EQ(m->stats.chunks_data, 2u);
  EXPECT_EQ(m->stats.chunks_hole, 1u);
  EXPECT_EQ(m->stats.bytes_referenced, expected.stats.bytes_referenced);
  EXPECT_EQ(m->stats.duration_ms, 42u);
  ASSERT_EQ(m->chunks.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(m->chunks[i].is_hole, expected.chunks[i].is_hole) << i;
    EXPECT_EQ(m->chunks[i].id, expected.chunks[i].id) << i;
    EXPECT_EQ(m->chunks[i].stored_size, expected.chunks[i].stored_size) << i;
  }
  auto fresh = repo::EncodeManifest(keys, expected);
  ASSERT_TRUE(fresh);
  ExpectSameShape(golden, *fresh, repo::kEnvelopeHeaderSize, "manifest");
}

TEST_F(GoldenObjectsTest, DamageRecord) {
  const DamageRecord expected = ExpectedDamage();
  const std::string golden = Golden(kObjects / repo::DamagedChunkKey(expected.chunk_id));
  // Stored in clear: the encoder's output is compared byte for byte.
  EXPECT_EQ(EncodeDamageRecord(expected), golden);
  auto record = DecodeDamageRecord(golden, expected.chunk_id);
  ASSERT_TRUE(record) << record.error().message();
  EXPECT_EQ(record->problem, expected.problem);
  EXPECT_EQ(record->detected_unix_ms, expected.detected_unix_ms);
  EXPECT_EQ(record->message, expected.message);
  EXPECT_EQ(record->volume_id, expected.volume_id);
  EXPECT_EQ(record->backup_id, expected.backup_id);
}

// The samples form a store: the backup in it restores to the image, with
// the key file beside it. The store holds nothing but the samples above.
TEST_F(GoldenObjectsTest, SamplesFormARestorableStore) {
  testutil::TempDir dir;
  fs::copy(kObjects, dir / "store", fs::copy_options::recursive);
  auto store = storage::LocalStore::Open(dir / "store");
  ASSERT_TRUE(store);
  auto listed = (*store)->List("");
  ASSERT_TRUE(listed);
  std::vector<std::string> keys;
  for (const auto& object : *listed) keys.push_back(object.key);
  const repo::DataKeys data_keys = Keys();
  std::vector<std::string> expected = {
      std::string(repo::kConfigKey), repo::ChunkKey(IdOf(data_keys, TextChunk())),
      repo::ChunkKey(IdOf(data_keys, RandomTail())), repo::ManifestKey(kVolume, kBackup),
      repo::DamagedChunkKey(ExpectedDamage().chunk_id)};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(keys, expected);

  auto key = crypto::LoadKeyFile(kKeyFile);
  ASSERT_TRUE(key);
  auto repository = Repository::Open(**store, *key);
  ASSERT_TRUE(repository) << repository.error().message();
  auto m = repository->LoadManifest(kVolume, kBackup);
  ASSERT_TRUE(m) << m.error().message();
  RestoreOptions options;
  options.destination = dir / "restored.img";
  auto restored = RestoreBackup(*repository, *m, options);
  ASSERT_TRUE(restored) << restored.error().message();
  EXPECT_EQ(testutil::ReadFileOrDie(dir / "restored.img"), Image());
}

}  // namespace
}  // namespace kindling::engine
