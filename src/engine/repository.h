// Repository: an unlocked store (object store + data keys) and the queries on
// its backups. Thread-safe: holds no mutable state beyond the store's own.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "crypto/aead.h"
#include "engine/damage.h"
#include "repo/manifest.h"
#include "repo/store_keys.h"
#include "storage/object_store.h"

namespace kindling::engine {

// A backup as listed: the manifest without its chunk table, and the chunks
// it references that are recorded damaged (engine/damage.h).
struct BackupInfo {
  std::string volume_id;
  std::string backup_id;
  std::uint64_t image_size = 0;
  std::uint32_t chunk_size = 0;
  std::uint64_t created_unix_ms = 0;
  std::string image_digest_hex;  // repo/image_digest.h ("image_sha256" in outputs)
  repo::BackupStats stats;
  // Empty: the backup is restorable as far as anyone has found ("ok");
  // otherwise it is "damaged" until a backup stores those chunks again.
  std::vector<DamagedChunkUse> damaged_chunks;

  bool damaged() const { return !damaged_chunks.empty(); }
};

// The listing of `manifest`; damaged_chunks from `damage`.
BackupInfo InfoOf(const repo::Manifest& manifest, const DamageMap& damage = {});

class Repository {
 public:
  // Creates the store's keys (store init). kAlreadyExists when initialised.
  [[nodiscard]] static Result<Repository> Init(storage::ObjectStore& store,
                                               const crypto::Key& key_file_key,
                                               std::uint32_t default_chunk_size = 4u << 20);
  // Unlocks an initialised store. kNotFound / kWrongKey / kCorruption as
  // repo::OpenStoreKeys.
  [[nodiscard]] static Result<Repository> Open(storage::ObjectStore& store,
                                               const crypto::Key& key_file_key);

  storage::ObjectStore& store() const { return *store_; }
  const repo::DataKeys& keys() const { return *keys_; }

  // Backups of one volume (or all), newest first, each with the recorded
  // damaged chunks it references (one List of the damage records, and a Get
  // per record). A manifest that fails to authenticate is an error naming its
  // key, not silently skipped.
  [[nodiscard]] Result<std::vector<BackupInfo>> ListBackups(
      std::optional<std::string_view> volume_id = std::nullopt) const;

  [[nodiscard]] Result<repo::Manifest> LoadManifest(std::string_view volume_id,
                                                    std::string_view backup_id) const;
  // Finds a backup by id alone (any volume). kNotFound when none.
  [[nodiscard]] Result<repo::Manifest> FindBackup(std::string_view backup_id) const;

  // Deletes a backup's manifest (its chunks stay until a garbage collection,
  // engine/gc.h, finds no other manifest referencing them). Idempotent.
  [[nodiscard]] Status DeleteBackup(std::string_view volume_id, std::string_view backup_id) const;

 private:
  Repository(storage::ObjectStore& store, repo::DataKeys keys)
      : store_(&store), keys_(std::make_shared<repo::DataKeys>(std::move(keys))) {}

  storage::ObjectStore* store_;
  std::shared_ptr<const repo::DataKeys> keys_;  // stable address for ChunkCodec
};

}  // namespace kindling::engine
