#include "engine/repository.h"

#include <algorithm>

#include "repo/chunk_codec.h"
#include "repo/layout.h"

namespace kindling::engine {

BackupInfo InfoOf(const repo::Manifest& m, const DamageMap& damage) {
  BackupInfo info;
  info.volume_id = m.volume_id;
  info.backup_id = m.backup_id;
  info.image_size = m.image_size;
  info.chunk_size = m.chunk_size;
  info.created_unix_ms = m.created_unix_ms;
  info.image_digest_hex = crypto::DigestHex(m.image_digest);
  info.stats = m.stats;
  info.damaged_chunks = DamagedChunksOf(m, damage);
  return info;
}

Result<Repository> Repository::Init(storage::ObjectStore& store, const crypto::Key& key_file_key,
                                    std::uint32_t default_chunk_size) {
  if (default_chunk_size < repo::kMinChunkSize || default_chunk_size > repo::kMaxChunkSize ||
      default_chunk_size % 4096 != 0)
    return InvalidArgument("chunk size must be a multiple of 4096 between 64 KiB and 64 MiB");
  KINDLING_ASSIGN_OR_RETURN(repo::DataKeys keys,
                            repo::InitStoreKeys(store, key_file_key, default_chunk_size));
  return Repository(store, std::move(keys));
}

Result<Repository> Repository::Open(storage::ObjectStore& store, const crypto::Key& key_file_key) {
  KINDLING_ASSIGN_OR_RETURN(repo::DataKeys keys, repo::OpenStoreKeys(store, key_file_key));
  return Repository(store, std::move(keys));
}

Result<repo::Manifest> Repository::LoadManifest(std::string_view volume_id,
                                                std::string_view backup_id) const {
  const std::string key = repo::ManifestKey(volume_id, backup_id);
  auto object = store_->Get(key);
  if (!object) {
    if (object.error().is_not_found())
      return NotFound("backup " + std::string(backup_id) + " of volume " + std::string(volume_id) +
                      " not found (no " + key + ")");
    return std::unexpected(object.error().WithContext("read " + key));
  }
  return repo::DecodeManifest(*keys_, *object, volume_id, backup_id);
}

Result<std::vector<BackupInfo>> Repository::ListBackups(
    std::optional<std::string_view> volume_id) const {
  const std::string prefix =
      volume_id ? repo::VolumeBackupsPrefix(*volume_id) : std::string(repo::kVolumesPrefix);
  KINDLING_ASSIGN_OR_RETURN(auto objects, store_->List(prefix));
  KINDLING_ASSIGN_OR_RETURN(const DamageMap damage, LoadDamage(*this));
  std::vector<BackupInfo> out;
  for (const auto& object : objects) {
    auto name = repo::ParseManifestKey(object.key);
    if (!name) continue;
    KINDLING_ASSIGN_OR_RETURN(repo::Manifest m, LoadManifest(name->volume_id, name->backup_id));
    out.push_back(InfoOf(m, damage));
  }
  std::sort(out.begin(), out.end(), [](const BackupInfo& a, const BackupInfo& b) {
    if (a.created_unix_ms != b.created_unix_ms) return a.created_unix_ms > b.created_unix_ms;
    return a.backup_id > b.backup_id;
  });
  return out;
}

Result<repo::Manifest> Repository::FindBackup(std::string_view backup_id) const {
  KINDLING_ASSIGN_OR_RETURN(auto objects, store_->List(repo::kVolumesPrefix));
  std::optional<repo::ManifestName> found;
  for (const auto& object : objects) {
    auto name = repo::ParseManifestKey(object.key);
    if (!name || name->backup_id != backup_id) continue;
    if (found)
      return InvalidArgument("backup id " + std::string(backup_id) + " exists in volumes " +
                             found->volume_id + " and " + name->volume_id + "; name the volume");
    found = std::move(name);
  }
  if (!found)
    return NotFound("backup " + std::string(backup_id) + " not found in " + store_->Describe());
  return LoadManifest(found->volume_id, found->backup_id);
}

Status Repository::DeleteBackup(std::string_view volume_id, std::string_view backup_id) const {
  return store_->Delete(repo::ManifestKey(volume_id, backup_id));
}

}  // namespace kindling::engine
