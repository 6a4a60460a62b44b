#include "repo/manifest.h"

#include <zstd.h>

#include <algorithm>
#include <cstring>

#include "common/bytes.h"
#include "repo/chunk_codec.h"
#include "repo/envelope.h"

namespace kindling::repo {
namespace {

constexpr std::uint32_t kManifestPayloadVersion = 2;
constexpr std::uint8_t kKindHole = 0;
constexpr std::uint8_t kKindData = 1;

std::string Context(std::string_view volume_id, std::string_view backup_id) {
  return "manifest:" + ManifestKey(volume_id, backup_id);
}

}  // namespace

std::uint64_t ChunkCount(std::uint64_t image_size, std::uint32_t chunk_size) {
  return chunk_size == 0 ? 0 : (image_size + chunk_size - 1) / chunk_size;
}

std::uint64_t Manifest::ChunkLength(std::size_t index) const {
  const std::uint64_t offset = ChunkOffset(index);
  return std::min<std::uint64_t>(chunk_size, image_size - offset);
}

Result<std::string> EncodeManifest(const DataKeys& keys, const Manifest& m,
                                   std::uint64_t max_payload) {
  if (m.volume_id.size() > 0xffff || m.backup_id.size() > 0xffff)
    return InvalidArgument("manifest ids longer than 65535 bytes");
  // The payload's size is known before writing it: refuse rather than build
  // (or truncate) a manifest no decoder accepts.
  std::uint64_t data_chunks = 0;
  for (const ChunkRef& c : m.chunks) data_chunks += c.is_hole ? 0 : 1;
  const std::uint64_t payload_size = 4 + 2 + m.volume_id.size() + 2 + m.backup_id.size() + 8 + 4 +
                                     8 + 32 + 8 * 8 + 8 + m.chunks.size() + data_chunks * (32 + 4);
  if (payload_size > max_payload || payload_size > kMaxManifestPayload)
    return InvalidArgument("manifest of backup " + m.backup_id + " would be " +
                           std::to_string(payload_size) + " bytes, over the format's limit of " +
                           std::to_string(max_payload) + " (" + std::to_string(m.chunks.size()) +
                           " chunks); use a larger chunk size");
  std::string payload;
  payload.reserve(static_cast<std::size_t>(payload_size));
  ByteWriter w(payload);
  w.U32(kManifestPayloadVersion);
  w.ShortString(m.volume_id);
  w.ShortString(m.backup_id);
  w.U64(m.image_size);
  w.U32(m.chunk_size);
  w.U64(m.created_unix_ms);
  w.Raw(crypto::DigestBytes(m.image_digest));
  const BackupStats& s = m.stats;
  for (std::uint64_t v : {s.chunks_data, s.chunks_hole, s.chunks_uploaded, s.bytes_read,
                          s.bytes_data, s.bytes_uploaded, s.bytes_referenced, s.duration_ms})
    w.U64(v);
  w.U64(m.chunks.size());
  for (const ChunkRef& c : m.chunks) {
    w.U8(c.is_hole ? kKindHole : kKindData);
    if (!c.is_hole) {
      w.Raw(crypto::DigestBytes(c.id));
      w.U32(c.stored_size);
    }
  }
  if (payload.size() != payload_size)
    return InternalError("manifest payload is " + std::to_string(payload.size()) +
                         " bytes, expected " + std::to_string(payload_size));
  std::string compressed(ZSTD_compressBound(payload.size()), '\0');
  const std::size_t n =
      ZSTD_compress(compressed.data(), compressed.size(), payload.data(), payload.size(), 3);
  if (ZSTD_isError(n))
    return InternalError(std::string("manifest compression failed: ") + ZSTD_getErrorName(n));
  compressed.resize(n);
  std::string object;
  // payload.size() <= kMaxManifestPayload < 2^32: the u32 header field holds it.
  EnvelopeHeader header{ObjectType::kManifest, kFormatVersion, Codec::kZstd,
                        static_cast<std::uint32_t>(payload.size())};
  SealEnvelope(keys.data_key, header, compressed, Context(m.volume_id, m.backup_id), object);
  return object;
}

Result<Manifest> DecodeManifest(const DataKeys& keys, std::string_view object,
                                std::string_view volume_id, std::string_view backup_id) {
  const std::string key = ManifestKey(volume_id, backup_id);
  auto fail = [&](std::string_view why) {
    return Corruption("manifest " + key + " is corrupt: " + std::string(why));
  };
  std::string body;
  auto header = OpenEnvelope(keys.data_key, object, ObjectType::kManifest,
                             Context(volume_id, backup_id), body);
  if (!header) return fail(header.error().message());
  if (header->codec != Codec::kZstd || header->plain_size > kMaxManifestPayload)
    return fail("bad header");
  std::string payload(header->plain_size, '\0');
  const std::size_t n = ZSTD_decompress(payload.data(), payload.size(), body.data(), body.size());
  if (ZSTD_isError(n) || n != payload.size()) return fail("payload does not decompress");

  ByteReader r(payload);
  Manifest m;
  auto version = r.U32();
  auto vid = r.ShortString();
  auto bid = r.ShortString();
  auto image_size = r.U64();
  auto chunk_size = r.U32();
  auto created = r.U64();
  auto digest = r.Raw(32);
  if (version && *version != kManifestPayloadVersion)
    return fail("payload version " + std::to_string(*version) +
                " is not supported (this build reads " + std::to_string(kManifestPayloadVersion) +
                ")");
  if (!version || !vid || !bid || !image_size || !chunk_size || !created || !digest)
    return fail("truncated header fields");
  if (*vid != volume_id || *bid != backup_id) return fail("ids do not match the key");
  if (*chunk_size < kMinChunkSize || *chunk_size > kMaxChunkSize) return fail("bad chunk size");
  m.volume_id = std::string(*vid);
  m.backup_id = std::string(*bid);
  m.image_size = *image_size;
  m.chunk_size = *chunk_size;
  m.created_unix_ms = *created;
  std::memcpy(m.image_digest.data(), digest->data(), 32);
  std::uint64_t* stats[] = {&m.stats.chunks_data,      &m.stats.chunks_hole,
                            &m.stats.chunks_uploaded,  &m.stats.bytes_read,
                            &m.stats.bytes_data,       &m.stats.bytes_uploaded,
                            &m.stats.bytes_referenced, &m.stats.duration_ms};
  for (std::uint64_t* field : stats) {
    auto v = r.U64();
    if (!v) return fail("truncated statistics");
    *field = *v;
  }
  auto count = r.U64();
  if (!count || *count != ChunkCount(m.image_size, m.chunk_size))
    return fail("chunk count mismatch");
  if (*count > r.remaining()) return fail("chunk table truncated");
  m.chunks.resize(*count);
  for (ChunkRef& c : m.chunks) {
    auto kind = r.U8();
    if (!kind || (*kind != kKindHole && *kind != kKindData)) return fail("bad chunk entry");
    c.is_hole = *kind == kKindHole;
    if (!c.is_hole) {
      auto id = r.Raw(32);
      auto stored = r.U32();
      if (!id || !stored) return fail("chunk table truncated");
      std::memcpy(c.id.data(), id->data(), 32);
      c.stored_size = *stored;
    }
  }
  if (r.remaining() != 0) return fail("trailing bytes");
  return m;
}

}  // namespace kindling::repo
