#include "repo/image_digest.h"

#include <gtest/gtest.h>

#include <string>

#include "common/bytes.h"
#include "testutil/sparse_image.h"

namespace kindling::repo {
namespace {

constexpr std::uint32_t kChunk = 64u << 10;

// The definition in repo/image_digest.h, spelled out over an in-memory image.
crypto::Digest ByDefinition(const std::string& image, std::uint32_t chunk_size) {
  std::string input("kindling image digest v1", 24);
  input.push_back('\0');
  ByteWriter w(input);
  w.U64(image.size());
  w.U32(chunk_size);
  for (std::size_t offset = 0; offset < image.size(); offset += chunk_size)
    input +=
        crypto::DigestBytes(crypto::Sha256Of(std::string_view(image).substr(offset, chunk_size)));
  return crypto::Sha256Of(input);
}

// Fills an ImageDigest from `image`, treating all-zero chunks as holes, in
// reverse order (the digest does not depend on the order of the calls).
crypto::Digest ByBuilder(const std::string& image, std::uint32_t chunk_size) {
  ImageDigest digest(image.size(), chunk_size);
  for (std::size_t i = digest.chunk_count(); i-- > 0;) {
    const std::string_view chunk =
        std::string_view(image).substr(i * std::size_t{chunk_size}, chunk_size);
    if (chunk.find_first_not_of('\0') == std::string_view::npos)
      digest.SetZeroChunk(i);
    else
      digest.SetChunk(i, crypto::Sha256Of(chunk));
  }
  return *digest.Finish();
}

TEST(ImageDigestTest, MatchesItsDefinitionForEverySizeShape) {
  for (std::size_t size :
       {std::size_t{0}, std::size_t{1}, std::size_t{kChunk - 1}, std::size_t{kChunk},
        std::size_t{kChunk + 1}, std::size_t{5 * kChunk + 123}}) {
    SCOPED_TRACE(size);
    std::string image = testutil::RandomData(size, size + 1);
    // Zero out the second chunk (when there is one) so holes are exercised.
    if (size > 2 * kChunk) image.replace(kChunk, kChunk, std::string(kChunk, '\0'));
    EXPECT_EQ(ByBuilder(image, kChunk), ByDefinition(image, kChunk));
  }
}

TEST(ImageDigestTest, AllHoleImageIncludingAShortTail) {
  const std::string image(3 * kChunk + 4097, '\0');
  EXPECT_EQ(ByBuilder(image, kChunk), ByDefinition(image, kChunk));
}

TEST(ImageDigestTest, DependsOnSizeChunkSizeOrderAndContent) {
  const std::string a = testutil::RandomData(4 * kChunk, 7);
  std::string swapped = a.substr(kChunk, kChunk) + a.substr(0, kChunk) + a.substr(2 * kChunk);
  std::string flipped = a;
  flipped[3 * kChunk + 5] ^= 1;
  const crypto::Digest base = ByBuilder(a, kChunk);
  EXPECT_NE(ByBuilder(swapped, kChunk), base);
  EXPECT_NE(ByBuilder(flipped, kChunk), base);
  EXPECT_NE(ByBuilder(a, 2 * kChunk), base);
  EXPECT_NE(ByBuilder(a + std::string(1, '\0'), kChunk), base);
  // Not the plain SHA-256 of the bytes (a different, documented value).
  EXPECT_NE(base, crypto::Sha256Of(a));
}

TEST(ImageDigestTest, ZeroBytesSha256) {
  EXPECT_EQ(crypto::DigestHex(*ZeroBytesSha256(0)),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(*ZeroBytesSha256(100000), crypto::Sha256Of(std::string(100000, '\0')));
}

}  // namespace
}  // namespace kindling::repo
