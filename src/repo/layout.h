// Where objects live in a store (keys are relative to the store's prefix):
//
//   kindling-store/config                                  sealed data keys
//   chunks/<id[0:2]>/<id>                                  one chunk per object
//   project-volumes/<volume_id>/backups/<backup_id>.manifest
//   damaged-chunks/<id>                                    a chunk found missing
//                                                          or corrupt (JSON, clear)
//
// Concurrency: any number of backups, restores and verifies may run at once on
// one store, from any number of hosts. Chunks are content-addressed and written
// whole (Put is atomic), so two backups writing the same chunk id write
// objects that decode to the same plaintext (not the same bytes: the nonce is
// random and the compression level may differ), and whichever Put lands last
// is as good as the other. A backup writes its manifest only after every chunk it references is
// stored, so a reader that finds a manifest finds its chunks. Garbage
// collection deletes chunks no manifest references; writer markers and a sweep
// marker keep it from deleting a chunk a running backup relies on
// (engine/gc.h, docs/store-format.md).
//
// Damage records (engine/damage.h) are written by restore and verify when a
// chunk object is missing or corrupt, after fetching it once more, and deleted
// by a backup once it has stored the chunk again. A backup never trusts a
// recorded chunk and lists the records again just before its manifest, so it
// does not commit a reference to a chunk recorded damaged by then. A record
// that races a heal (written from a fetch made before the healing Put) is
// stale: it costs the next backup one upload of that chunk, nothing else.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "crypto/sha256.h"

namespace kindling::repo {

using ChunkId = crypto::Digest;

inline constexpr std::string_view kConfigKey = "kindling-store/config";
inline constexpr std::string_view kVolumesPrefix = "project-volumes/";
inline constexpr std::string_view kManifestSuffix = ".manifest";
inline constexpr std::string_view kDamagedChunksPrefix = "damaged-chunks/";

std::string ChunkKey(const ChunkId& id);
std::string ManifestKey(std::string_view volume_id, std::string_view backup_id);
// "project-volumes/<volume_id>/backups/"
std::string VolumeBackupsPrefix(std::string_view volume_id);

struct ManifestName {
  std::string volume_id;
  std::string backup_id;
};
// Inverse of ManifestKey; nullopt for any other key.
std::optional<ManifestName> ParseManifestKey(std::string_view key);

// "damaged-chunks/<id as 64 lower-case hex characters>"
std::string DamagedChunkKey(const ChunkId& id);
// Inverse of DamagedChunkKey; nullopt for any other key.
std::optional<ChunkId> ParseDamagedChunkKey(std::string_view key);
// A chunk id from its 64 lower-case hex characters (as crypto::DigestHex
// prints it); nullopt for anything else.
std::optional<ChunkId> ParseChunkIdHex(std::string_view hex);

}  // namespace kindling::repo
