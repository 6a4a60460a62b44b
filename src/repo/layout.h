// Where objects live in a store (keys are relative to the store's prefix):
//
//   kindling-store/config                                  sealed data keys
//   chunks/<id[0:2]>/<id>                                  one chunk per object
//   project-volumes/<volume_id>/backups/<backup_id>.manifest
//
// Concurrency: any number of backups, restores and verifies may run at once on
// one store, from any number of hosts. Chunks are content-addressed and written
// whole (Put is atomic), so two backups writing the same chunk write the same
// bytes. A backup writes its manifest only after every chunk it references is
// stored, so a reader that finds a manifest finds its chunks. Deleting chunks
// (garbage collection) must not run concurrently with a backup that may rely on
// them; until a gc with a grace period exists, chunks are never deleted.
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

}  // namespace kindling::repo
