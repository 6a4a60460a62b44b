#include "repo/image_digest.h"

#include <algorithm>
#include <string>

#include "common/bytes.h"

namespace kindling::repo {
namespace {
constexpr std::string_view kDomain{"kindling image digest v1\0", 25};
}  // namespace

Result<crypto::Digest> ZeroBytesSha256(std::uint64_t length) {
  crypto::Sha256 sha;
  sha.UpdateZeros(length);
  return sha.Finish();
}

ImageDigest::ImageDigest(std::uint64_t image_size, std::uint32_t chunk_size)
    : image_size_(image_size),
      chunk_size_(chunk_size),
      chunks_(static_cast<std::size_t>((image_size + chunk_size - 1) / chunk_size)) {
  auto zeros = [&](std::uint64_t length, crypto::Digest& into) {
    auto digest = ZeroBytesSha256(length);
    if (digest)
      into = *digest;
    else
      zeros_ok_ = std::unexpected(digest.error());
  };
  if (image_size_ >= chunk_size_) zeros(chunk_size_, zero_full_);
  if (const std::uint64_t tail = image_size_ % chunk_size_; tail != 0) zeros(tail, zero_tail_);
}

std::uint64_t ImageDigest::ChunkLength(std::size_t index) const {
  const std::uint64_t offset = std::uint64_t{chunk_size_} * index;
  return std::min<std::uint64_t>(chunk_size_, image_size_ - offset);
}

void ImageDigest::SetZeroChunk(std::size_t index) {
  chunks_[index] = ChunkLength(index) == chunk_size_ ? zero_full_ : zero_tail_;
}

Result<crypto::Digest> ImageDigest::Finish() const {
  KINDLING_RETURN_IF_ERROR(zeros_ok_);
  std::string header;
  ByteWriter w(header);
  w.Raw(kDomain);
  w.U64(image_size_);
  w.U32(chunk_size_);
  crypto::Sha256 sha;
  sha.Update(header);
  for (const crypto::Digest& d : chunks_) sha.Update(d.data(), d.size());
  return sha.Finish();
}

}  // namespace kindling::repo
