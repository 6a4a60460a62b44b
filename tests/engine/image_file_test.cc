#include "engine/image_file.h"

#include <gtest/gtest.h>

#include "engine/engine_test_base.h"
#include "testutil/temp_dir.h"

namespace kindling::engine {
namespace {

using testutil::Fill;

class ImageFileTest : public EngineTestBase {};

TEST_F(ImageFileTest, DigestOfASparseFileMatchesTheDefinition) {
  const auto image = MakeMixedImage("mixed.img");
  for (int threads : {1, 3}) {
    auto digest = DigestImageFile(image, kChunk, threads);
    ASSERT_TRUE(digest) << digest.error().message();
    EXPECT_EQ(crypto::DigestHex(*digest), testutil::ImageDigestOfFile(image, kChunk)) << threads;
  }
}

TEST_F(ImageFileTest, DigestEqualsTheBackupsImageDigest) {
  const auto image = MakeMixedImage("mixed.img");
  const repo::Manifest m = BackupOrDie(image);
  auto digest = DigestImageFile(image, m.chunk_size);
  ASSERT_TRUE(digest) << digest.error().message();
  EXPECT_EQ(*digest, m.image_digest);
}

TEST_F(ImageFileTest, EmptyAndAllHoleFiles) {
  for (std::uint64_t size : {std::uint64_t{0}, std::uint64_t{1}, 3 * std::uint64_t{kChunk} + 7}) {
    const auto image = MakeImage("holes-" + std::to_string(size) + ".img", size, {});
    auto digest = DigestImageFile(image, kChunk);
    ASSERT_TRUE(digest) << digest.error().message();
    EXPECT_EQ(crypto::DigestHex(*digest), testutil::ImageDigestOfFile(image, kChunk)) << size;
  }
}

TEST_F(ImageFileTest, MissingFileAndBadChunkSizeAreClearErrors) {
  auto missing = DigestImageFile(out_dir() / "nope.img", kChunk);
  ASSERT_FALSE(missing);
  EXPECT_TRUE(missing.error().is_not_found()) << missing.error().message();
  EXPECT_NE(missing.error().message().find("nope.img"), std::string::npos);
  const auto image = MakeImage("one.img", kChunk, {{0, kChunk, Fill::kRandom}});
  auto bad = DigestImageFile(image, 1000);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().kind(), ErrorKind::kInvalidArgument);
}

}  // namespace
}  // namespace kindling::engine
