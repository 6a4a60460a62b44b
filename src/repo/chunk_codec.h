// ChunkCodec turns a chunk's plaintext into its stored object and back.
//
// Chunk id: HMAC-SHA-256(chunk_id_key, SHA-256(plaintext)), so the store
// cannot confirm guesses of content; the plain SHA-256 is the chunk's share of
// the image digest (repo/image_digest.h), so each byte is hashed once. Stored object: envelope(type
// chunk, context = id) around the zstd-compressed plaintext, or the plaintext itself when
// compression does not shrink it. Decode authenticates, decompresses, checks the length and
// recomputes the id: a chunk that decodes is exactly the chunk that was stored.
//
// Not thread-safe (it reuses zstd contexts and buffers): one per worker thread.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "common/result.h"
#include "crypto/sha256.h"
#include "repo/envelope.h"
#include "repo/layout.h"
#include "repo/store_keys.h"

namespace kindling::repo {

// Largest chunk any manifest may declare; bounds memory on corrupt input.
inline constexpr std::uint32_t kMaxChunkSize = 64u << 20;
inline constexpr std::uint32_t kMinChunkSize = 64u << 10;

class ChunkCodec {
 public:
  // REQUIRES: 1 <= zstd_level <= 19. `keys` must outlive the codec.
  ChunkCodec(const DataKeys& keys, int zstd_level);
  ~ChunkCodec();
  ChunkCodec(const ChunkCodec&) = delete;
  ChunkCodec& operator=(const ChunkCodec&) = delete;

  // kInternal when hashing fails (crypto/sha256.h): never a made-up id.
  [[nodiscard]] Result<ChunkId> Id(std::string_view plaintext) const;
  // The id of a chunk whose plaintext has SHA-256 `plain_sha256`.
  [[nodiscard]] Result<ChunkId> IdOf(const crypto::Digest& plain_sha256) const;

  // Replaces `object` with the stored form of `plaintext`.
  // REQUIRES: plaintext.size() <= kMaxChunkSize; id == Id(plaintext).
  void Encode(std::string_view plaintext, const ChunkId& id, std::string& object);

  // Replaces `plaintext` with the content of `object`. kCorruption (naming the
  // chunk id) when the object fails authentication, decompression, the length
  // or the id check. When `plain_sha256` is not null it receives the
  // plaintext's SHA-256 (computed for the id check anyway).
  [[nodiscard]] Status Decode(std::string_view object, const ChunkId& id, std::string& plaintext,
                              crypto::Digest* plain_sha256 = nullptr);

  // As Decode, into `out`; returns the plaintext's length. kCorruption too
  // when the plaintext would not fit in `out`.
  [[nodiscard]] Result<std::size_t> DecodeInto(std::string_view object, const ChunkId& id,
                                               std::span<char> out,
                                               crypto::Digest* plain_sha256 = nullptr);

 private:
  // Authenticates `object` into scratch_ and checks its declared size.
  [[nodiscard]] Result<EnvelopeHeader> Open(std::string_view object, const ChunkId& id);
  // The id check shared by Decode and DecodeInto.
  [[nodiscard]] Status CheckId(std::string_view plaintext, const ChunkId& id,
                               crypto::Digest* plain_sha256) const;

  struct ZstdContexts;
  const DataKeys& keys_;
  int level_;
  std::unique_ptr<ZstdContexts> zstd_;
  std::string scratch_;
};

}  // namespace kindling::repo
