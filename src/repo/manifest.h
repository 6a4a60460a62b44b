// The manifest: the object that makes a backup exist.
//
// A backup is committed by writing its manifest, after every chunk it names is
// stored; a backup exists if and only if its manifest exists and
// authenticates. Stored at ManifestKey(volume_id, backup_id) as
// envelope(type manifest, context = "manifest:" + key) around the zstd-
// compressed payload below (all integers little-endian):
//
//   u32 payload version (2; version 1 recorded SHA-256 over the image's bytes
//       and derived chunk ids from the plaintext: not readable any more)
//   u16+bytes volume_id, u16+bytes backup_id
//   u64 image_size, u32 chunk_size, u64 created_unix_ms
//   32  image digest (repo/image_digest.h)
//   u64 x 8 statistics (see BackupStats, in declaration order)
//   u64 chunk count = ceil(image_size / chunk_size)
//   per chunk: u8 kind (0 = hole or all zeros, 1 = data); for data also
//              32-byte chunk id and u32 stored object size
//
// docs/store-format.md describes the whole layout for operators.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"
#include "repo/layout.h"
#include "repo/store_keys.h"

namespace kindling::repo {

struct ChunkRef {
  bool is_hole = true;  // a hole or all-zero chunk: nothing stored
  ChunkId id{};
  std::uint32_t stored_size = 0;
};

struct BackupStats {
  std::uint64_t chunks_data = 0;       // chunks with data
  std::uint64_t chunks_hole = 0;       // holes and all-zero chunks
  std::uint64_t chunks_uploaded = 0;   // data chunks this backup wrote
  std::uint64_t bytes_read = 0;        // image bytes read (holes are not read)
  std::uint64_t bytes_data = 0;        // plaintext bytes in data chunks
  std::uint64_t bytes_uploaded = 0;    // stored bytes this backup wrote
  std::uint64_t bytes_referenced = 0;  // stored bytes of all data chunks
  std::uint64_t duration_ms = 0;
};

struct Manifest {
  std::string volume_id;
  std::string backup_id;
  std::uint64_t image_size = 0;
  std::uint32_t chunk_size = 0;
  std::uint64_t created_unix_ms = 0;
  crypto::Digest image_digest{};  // repo/image_digest.h
  BackupStats stats;
  std::vector<ChunkRef> chunks;

  std::uint64_t ChunkOffset(std::size_t index) const { return std::uint64_t{chunk_size} * index; }
  std::uint64_t ChunkLength(std::size_t index) const;
};

std::uint64_t ChunkCount(std::uint64_t image_size, std::uint32_t chunk_size);

// Limits of the format. The payload's size is a u32 in the envelope header;
// manifests are kept to 2 GiB of payload (decoders refuse more, bounding
// their memory on corrupt input), which with the longest ids and a data
// chunk per entry (37 bytes) holds kMaxManifestChunks chunks: about 58 M, so
// a 16 TiB image needs chunks of about 300 KiB or more.
inline constexpr std::uint64_t kMaxManifestPayload = 1ull << 31;
inline constexpr std::uint64_t kMaxManifestFixedPart =
    4 + 2 * (2 + 65535) + 8 + 4 + 8 + 32 + 8 * 8 + 8;
inline constexpr std::uint64_t kManifestBytesPerChunk = 1 + 32 + 4;
// The most chunks a manifest may have when its payload is bounded by
// `max_payload` bytes.
constexpr std::uint64_t MaxManifestChunks(std::uint64_t max_payload = kMaxManifestPayload) {
  return max_payload <= kMaxManifestFixedPart
             ? 0
             : (max_payload - kMaxManifestFixedPart) / kManifestBytesPerChunk;
}
inline constexpr std::uint64_t kMaxManifestChunks = MaxManifestChunks();

// The stored object for `manifest`. kInvalidArgument when the payload would
// exceed `max_payload` bytes (too many chunks: a larger chunk size is needed)
// or an id exceeds 65535 bytes; kInternal when compression fails. Never
// truncates a field. `max_payload` is a parameter for tests.
// REQUIRES: max_payload <= kMaxManifestPayload.
[[nodiscard]] Result<std::string> EncodeManifest(const DataKeys& keys, const Manifest& manifest,
                                                 std::uint64_t max_payload = kMaxManifestPayload);

// Parses a stored manifest read from ManifestKey(volume_id, backup_id).
// kCorruption (naming the key) on any inconsistency.
[[nodiscard]] Result<Manifest> DecodeManifest(const DataKeys& keys, std::string_view object,
                                              std::string_view volume_id,
                                              std::string_view backup_id);

}  // namespace kindling::repo
