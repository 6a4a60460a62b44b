#include "repo/chunk_codec.h"

#include <zstd.h>

#include <cstdlib>
#include <cstring>

#include "repo/envelope.h"

namespace kindling::repo {

struct ChunkCodec::ZstdContexts {
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_DCtx* dctx = ZSTD_createDCtx();
  ~ZstdContexts() {
    ZSTD_freeCCtx(cctx);
    ZSTD_freeDCtx(dctx);
  }
};

ChunkCodec::ChunkCodec(const DataKeys& keys, int zstd_level)
    : keys_(keys), level_(zstd_level), zstd_(std::make_unique<ZstdContexts>()) {
  if (zstd_->cctx == nullptr || zstd_->dctx == nullptr) std::abort();
}

ChunkCodec::~ChunkCodec() = default;

Result<ChunkId> ChunkCodec::Id(std::string_view plaintext) const {
  KINDLING_ASSIGN_OR_RETURN(const crypto::Digest sha, crypto::TrySha256Of(plaintext));
  return IdOf(sha);
}

Result<ChunkId> ChunkCodec::IdOf(const crypto::Digest& plain_sha256) const {
  return crypto::TryHmacSha256(crypto::KeyBytes(keys_.chunk_id_key),
                               crypto::DigestBytes(plain_sha256));
}

namespace {
std::string_view IdContext(const ChunkId& id) { return crypto::DigestBytes(id); }
}  // namespace

void ChunkCodec::Encode(std::string_view plaintext, const ChunkId& id, std::string& object) {
  scratch_.resize(ZSTD_compressBound(plaintext.size()));
  const std::size_t compressed = ZSTD_compressCCtx(zstd_->cctx, scratch_.data(), scratch_.size(),
                                                   plaintext.data(), plaintext.size(), level_);
  // Keep the compressed form only when it saves at least 1/64 of the size:
  // decompressing costs time on restore for nothing otherwise.
  const bool use_zstd =
      !ZSTD_isError(compressed) && compressed < plaintext.size() - plaintext.size() / 64;
  std::string_view body = use_zstd ? std::string_view(scratch_.data(), compressed) : plaintext;
  EnvelopeHeader header{ObjectType::kChunk, kFormatVersion, use_zstd ? Codec::kZstd : Codec::kNone,
                        static_cast<std::uint32_t>(plaintext.size())};
  object.clear();
  object.reserve(kEnvelopeHeaderSize + body.size() + crypto::kSealOverhead);
  SealEnvelope(keys_.data_key, header, body, IdContext(id), object);
}

namespace {
std::unexpected<Error> CorruptChunk(const ChunkId& id, std::string_view why) {
  return Corruption("chunk " + crypto::DigestHex(id) + " is corrupt: " + std::string(why));
}
}  // namespace

Result<EnvelopeHeader> ChunkCodec::Open(std::string_view object, const ChunkId& id) {
  auto header = OpenEnvelope(keys_.data_key, object, ObjectType::kChunk, IdContext(id), scratch_);
  if (!header) return CorruptChunk(id, header.error().message());
  if (header->plain_size > kMaxChunkSize) return CorruptChunk(id, "declared size too large");
  if (header->codec != Codec::kZstd && scratch_.size() != header->plain_size)
    return CorruptChunk(id, "length mismatch");
  return header;
}

Status ChunkCodec::CheckId(std::string_view plaintext, const ChunkId& id,
                           crypto::Digest* plain_sha256) const {
  KINDLING_ASSIGN_OR_RETURN(const crypto::Digest sha, crypto::TrySha256Of(plaintext));
  KINDLING_ASSIGN_OR_RETURN(const ChunkId actual, IdOf(sha));
  if (actual != id) return CorruptChunk(id, "content does not match its id");
  if (plain_sha256 != nullptr) *plain_sha256 = sha;
  return OkStatus();
}

Status ChunkCodec::Decode(std::string_view object, const ChunkId& id, std::string& plaintext,
                          crypto::Digest* plain_sha256) {
  KINDLING_ASSIGN_OR_RETURN(EnvelopeHeader header, Open(object, id));
  if (header.codec == Codec::kZstd) {
    plaintext.resize(header.plain_size);
    const std::size_t n = ZSTD_decompressDCtx(zstd_->dctx, plaintext.data(), plaintext.size(),
                                              scratch_.data(), scratch_.size());
    if (ZSTD_isError(n)) return CorruptChunk(id, std::string("zstd: ") + ZSTD_getErrorName(n));
    if (n != header.plain_size) return CorruptChunk(id, "decompressed length mismatch");
  } else {
    plaintext.swap(scratch_);
  }
  return CheckId(plaintext, id, plain_sha256);
}

Result<std::size_t> ChunkCodec::DecodeInto(std::string_view object, const ChunkId& id,
                                           std::span<char> out, crypto::Digest* plain_sha256) {
  KINDLING_ASSIGN_OR_RETURN(EnvelopeHeader header, Open(object, id));
  if (header.plain_size > out.size()) return CorruptChunk(id, "larger than its slot");
  if (header.codec == Codec::kZstd) {
    const std::size_t n = ZSTD_decompressDCtx(zstd_->dctx, out.data(), header.plain_size,
                                              scratch_.data(), scratch_.size());
    if (ZSTD_isError(n)) return CorruptChunk(id, std::string("zstd: ") + ZSTD_getErrorName(n));
    if (n != header.plain_size) return CorruptChunk(id, "decompressed length mismatch");
  } else {
    std::memcpy(out.data(), scratch_.data(), header.plain_size);
  }
  KINDLING_RETURN_IF_ERROR(
      CheckId(std::string_view(out.data(), header.plain_size), id, plain_sha256));
  return std::size_t{header.plain_size};
}

}  // namespace kindling::repo
