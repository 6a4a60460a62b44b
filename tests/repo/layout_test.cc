#include "repo/layout.h"

#include <gtest/gtest.h>

#include <cctype>

#include "storage/object_store.h"

namespace kindling::repo {
namespace {

class LayoutTest : public ::testing::Test {
 protected:
  static ChunkId SampleId() {
    ChunkId id{};
    for (std::size_t i = 0; i < id.size(); ++i) id[i] = static_cast<std::uint8_t>(0xa0 + i);
    return id;
  }
};

TEST_F(LayoutTest, ChunkKeyIsFannedOutByFirstByte) {
  const ChunkId id = SampleId();
  const std::string hex = crypto::DigestHex(id);
  EXPECT_EQ(ChunkKey(id), "chunks/a0/" + hex);
  EXPECT_TRUE(storage::IsValidObjectKey(ChunkKey(id)));
  EXPECT_FALSE(ParseManifestKey(ChunkKey(id)));
}

TEST_F(LayoutTest, ManifestKeyShape) {
  EXPECT_EQ(ManifestKey("vol-1", "0190-abc"), "project-volumes/vol-1/backups/0190-abc.manifest");
  EXPECT_EQ(VolumeBackupsPrefix("vol-1"), "project-volumes/vol-1/backups/");
  EXPECT_TRUE(ManifestKey("vol-1", "b").starts_with(VolumeBackupsPrefix("vol-1")));
  EXPECT_TRUE(storage::IsValidObjectKey(ManifestKey("vol-1", "b-1")));
}

TEST_F(LayoutTest, ParseManifestKeyRoundTrip) {
  auto name = ParseManifestKey(ManifestKey("vol_A.1", "01890a5d-ac96-774b-bcce-b302099a8057"));
  ASSERT_TRUE(name);
  EXPECT_EQ(name->volume_id, "vol_A.1");
  EXPECT_EQ(name->backup_id, "01890a5d-ac96-774b-bcce-b302099a8057");
}

TEST_F(LayoutTest, ParseManifestKeyRejectsOtherKeys) {
  for (std::string_view key : {
           "",
           "kindling-store/config",
           "project-volumes/vol/backups/b.manifest.tmp",
           "project-volumes/vol/backups/b",
           "project-volumes/vol/backups/.manifest",
           "project-volumes//backups/b.manifest",
           "project-volumes/vol/b.manifest",
           "project-volumes/vol/other/b.manifest",
           "project-volumes/vol/backups/sub/b.manifest",
           "other/vol/backups/b.manifest",
           "project-volumes/b.manifest",
       }) {
    EXPECT_FALSE(ParseManifestKey(key)) << key;
  }
}

TEST_F(LayoutTest, VolumesPrefixesDoNotOverlap) {
  // Listing one volume's prefix must not return another volume whose id
  // shares a prefix.
  EXPECT_FALSE(ManifestKey("vol-10", "b").starts_with(VolumeBackupsPrefix("vol-1")));
}

TEST_F(LayoutTest, DamagedChunkKeyRoundTrip) {
  const ChunkId id = SampleId();
  const std::string key = DamagedChunkKey(id);
  EXPECT_EQ(key, "damaged-chunks/" + crypto::DigestHex(id));
  EXPECT_TRUE(key.starts_with(kDamagedChunksPrefix));
  EXPECT_TRUE(storage::IsValidObjectKey(key));
  auto parsed = ParseDamagedChunkKey(key);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(*parsed, id);
  EXPECT_FALSE(ParseManifestKey(key));
  EXPECT_FALSE(ParseDamagedChunkKey(ChunkKey(id)));
}

TEST_F(LayoutTest, ParseDamagedChunkKeyRejectsOtherKeys) {
  const std::string hex = crypto::DigestHex(SampleId());
  std::string upper = hex;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (const std::string& key : {
           std::string(),
           std::string("damaged-chunks/"),
           "damaged-chunks/" + hex.substr(1),
           "damaged-chunks/" + hex + "0",
           "damaged-chunks/" + upper,
           "damaged-chunks/" + hex.substr(0, 63) + "g",
           "damaged-chunks/x/" + hex,
           "damaged-chunks/" + hex + ".tmp",
           "chunks/" + hex,
           hex,
       }) {
    EXPECT_FALSE(ParseDamagedChunkKey(key)) << key;
  }
}

TEST_F(LayoutTest, ParseChunkIdHexIsTheInverseOfDigestHex) {
  const ChunkId id = SampleId();
  auto parsed = ParseChunkIdHex(crypto::DigestHex(id));
  ASSERT_TRUE(parsed);
  EXPECT_EQ(*parsed, id);
  EXPECT_FALSE(ParseChunkIdHex(""));
  EXPECT_FALSE(ParseChunkIdHex(crypto::DigestHex(id).substr(2)));
}

}  // namespace
}  // namespace kindling::repo
