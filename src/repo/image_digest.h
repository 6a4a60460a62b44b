// The image digest: the whole-image checksum a manifest records and restore
// checks ("image_sha256" in the CLI's and the API's output).
//
// It is SHA-256 over the SHA-256 of each chunk, not SHA-256 over the bytes:
//
//   image_digest = SHA-256( "kindling image digest v1" 0x00
//                           || u64le image_size || u32le chunk_size
//                           || SHA-256(chunk 0) || ... || SHA-256(chunk n-1) )
//
// where chunk i is the image's bytes [i * chunk_size, min((i + 1) * chunk_size,
// image_size)), holes read as zeros, and n = ceil(image_size / chunk_size).
// The chunk digests can be computed in any order and in parallel, a hole's is
// known without reading or hashing it, and a chunk's digest is also what its
// keyed id is derived from, so backup and restore hash each data byte once and
// never hash holes. `kindling image digest` computes it for any file; it is
// not what `sha256sum` prints.
#pragma once

#include <cstdint>
#include <vector>

#include "crypto/sha256.h"

namespace kindling::repo {

class ImageDigest {
 public:
  // REQUIRES: chunk_size > 0.
  ImageDigest(std::uint64_t image_size, std::uint32_t chunk_size);

  std::size_t chunk_count() const { return chunks_.size(); }
  std::uint64_t ChunkLength(std::size_t index) const;

  // Records chunk `index`'s SHA-256. Safe to call concurrently for distinct
  // indexes. REQUIRES: index < chunk_count().
  void SetChunk(std::size_t index, const crypto::Digest& chunk_sha256) {
    chunks_[index] = chunk_sha256;
  }
  // Records chunk `index` as all zeros (a hole). Same contract as SetChunk.
  void SetZeroChunk(std::size_t index);

  // The chunk digests recorded so far, by index (a chunk not recorded yet
  // reads as all zero bytes, not as a zero chunk's digest).
  const std::vector<crypto::Digest>& chunk_digests() const { return chunks_; }

  // The digest; kInternal when hashing failed (here or for the zero chunks'
  // digests in the constructor). REQUIRES: every chunk recorded, and no
  // concurrent Set*.
  [[nodiscard]] Result<crypto::Digest> Finish() const;

 private:
  std::uint64_t image_size_;
  std::uint32_t chunk_size_;
  Status zeros_ok_;             // hashing the zero chunks below succeeded
  crypto::Digest zero_full_{};  // SHA-256 of chunk_size zero bytes
  crypto::Digest zero_tail_{};  // SHA-256 of the shorter last chunk's zeros
  std::vector<crypto::Digest> chunks_;
};

// SHA-256 of `length` zero bytes; kInternal when hashing fails.
[[nodiscard]] Result<crypto::Digest> ZeroBytesSha256(std::uint64_t length);

}  // namespace kindling::repo
