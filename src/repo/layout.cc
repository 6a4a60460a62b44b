#include "repo/layout.h"

#include <algorithm>
#include <cstring>

#include "common/hex.h"

namespace kindling::repo {

std::string ChunkKey(const ChunkId& id) {
  const std::string hex = crypto::DigestHex(id);
  return "chunks/" + hex.substr(0, 2) + "/" + hex;
}

std::string VolumeBackupsPrefix(std::string_view volume_id) {
  return std::string(kVolumesPrefix) + std::string(volume_id) + "/backups/";
}

std::string ManifestKey(std::string_view volume_id, std::string_view backup_id) {
  return VolumeBackupsPrefix(volume_id) + std::string(backup_id) + std::string(kManifestSuffix);
}

std::optional<ManifestName> ParseManifestKey(std::string_view key) {
  if (!key.starts_with(kVolumesPrefix) || !key.ends_with(kManifestSuffix)) return std::nullopt;
  key.remove_prefix(kVolumesPrefix.size());
  key.remove_suffix(kManifestSuffix.size());
  const auto slash = key.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  std::string_view volume = key.substr(0, slash);
  std::string_view rest = key.substr(slash + 1);
  constexpr std::string_view kBackups = "backups/";
  if (!rest.starts_with(kBackups)) return std::nullopt;
  rest.remove_prefix(kBackups.size());
  if (volume.empty() || rest.empty() || rest.find('/') != std::string_view::npos)
    return std::nullopt;
  return ManifestName{std::string(volume), std::string(rest)};
}

std::string DamagedChunkKey(const ChunkId& id) {
  return std::string(kDamagedChunksPrefix) + crypto::DigestHex(id);
}

std::optional<ChunkId> ParseChunkIdHex(std::string_view hex) {
  // Lower case only, so that a key has one spelling per id.
  if (hex.size() != 2 * ChunkId{}.size() || !std::all_of(hex.begin(), hex.end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
      }))
    return std::nullopt;
  const auto bytes = HexDecode(hex);
  if (!bytes) return std::nullopt;
  ChunkId id{};
  std::memcpy(id.data(), bytes->data(), id.size());
  return id;
}

std::optional<ChunkId> ParseDamagedChunkKey(std::string_view key) {
  if (!key.starts_with(kDamagedChunksPrefix)) return std::nullopt;
  key.remove_prefix(kDamagedChunksPrefix.size());
  return ParseChunkIdHex(key);
}

}  // namespace kindling::repo
