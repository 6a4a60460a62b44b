// Damage records: chunk objects that a restore or verify found missing or
// corrupt, kept in the store itself (repo::DamagedChunkKey) so that every host
// and the offline CLI see them. No database is involved.
//
// A record is a small JSON document, stored in clear (chunk ids are keyed
// hashes and messages name only ids, keys and offsets, so it holds no secret):
//
//   {"chunk_id": "<64 hex>", "problem": "missing" | "corrupt",
//    "detected_unix_ms": N, "message": "...", "volume_id": "...", "backup_id": "..."}
//
// (volume_id/backup_id: the backup whose restore or verify found the damage.)
// Restore and verify write records through RecordChunkDamage, which fetches
// the object once more first, so a chunk that a concurrent backup has just
// stored again is not recorded. A store error that is not "not found" (a
// transient or permission error) is never evidence of damage. A backup never
// trusts a recorded chunk: it stores it again, which repairs every backup
// that references it (ids are content hashes), then deletes the record
// (engine/backup.h). Listing (Repository::ListBackups, FindDamagedBackups)
// marks every backup that references a recorded chunk.
//
// Thread-safe: free functions over a Repository, no state of their own.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "repo/layout.h"
#include "repo/manifest.h"

namespace kindling::engine {

class Repository;

enum class DamageProblem { kMissing, kCorrupt };

// "missing" or "corrupt", as in the record and the CLI's output.
std::string_view DamageProblemName(DamageProblem problem);

struct DamageRecord {
  repo::ChunkId chunk_id{};
  DamageProblem problem = DamageProblem::kCorrupt;
  std::uint64_t detected_unix_ms = 0;
  std::string message;    // why, e.g. the failed authentication (short)
  std::string volume_id;  // the backup whose restore or verify found it
  std::string backup_id;
};

// Recorded damage by chunk id (ordered, so output is deterministic).
using DamageMap = std::map<repo::ChunkId, DamageRecord>;

// The stored document for `record`, and its inverse for a document read from
// DamagedChunkKey(id). Decode: kCorruption when it is not such a document or
// names another chunk.
std::string EncodeDamageRecord(const DamageRecord& record);
[[nodiscard]] Result<DamageRecord> DecodeDamageRecord(std::string_view document,
                                                      const repo::ChunkId& id);

// Fetches chunk `id` once more and, when it is still missing or corrupt,
// writes its record (replacing any earlier one), naming the backup
// (`volume_id`, `backup_id`) whose restore or verify found it. Returns the
// record written, or nullopt when the object is sound now (nothing written).
// An error, and no record, when the object cannot be fetched for another
// reason than its absence, or when the record cannot be written.
[[nodiscard]] Result<std::optional<DamageRecord>> RecordChunkDamage(const Repository& repository,
                                                                    const repo::ChunkId& id,
                                                                    std::string_view volume_id,
                                                                    std::string_view backup_id);

// RecordChunkDamage for a pipeline that is about to report the damage as its
// own error: a failure to record is logged (warn) and otherwise ignored, so
// that it never replaces the error being reported.
void RecordChunkDamageOrWarn(const Repository& repository, const repo::ChunkId& id,
                             std::string_view volume_id, std::string_view backup_id);

// Writes `record` unconditionally. RecordChunkDamage is the normal way in;
// this one is for tools and tests that already know.
[[nodiscard]] Status WriteDamageRecord(const Repository& repository, const DamageRecord& record);

// The ids of every recorded chunk: one List, no Get (what a backup needs).
[[nodiscard]] Result<std::vector<repo::ChunkId>> ListDamagedChunks(const Repository& repository);

// Every record. A document that does not parse is returned as kCorrupt with
// a message saying so (its key names the chunk, and distrusting a sound chunk
// costs only one upload); a record deleted between the List and its Get is
// left out.
[[nodiscard]] Result<DamageMap> LoadDamage(const Repository& repository);

// Deletes the record of chunk `id`. Idempotent.
[[nodiscard]] Status ClearDamage(const Repository& repository, const repo::ChunkId& id);

// A recorded chunk as one backup uses it.
struct DamagedChunkUse {
  std::string chunk_id_hex;
  DamageProblem problem = DamageProblem::kCorrupt;
  std::vector<std::uint64_t> offsets;  // every image offset that holds it, ascending
};

// The recorded chunks `manifest` references, ordered by first offset.
std::vector<DamagedChunkUse> DamagedChunksOf(const repo::Manifest& manifest,
                                             const DamageMap& damage);

// A backup that references at least one recorded chunk: what the control
// plane marks damaged.
struct BackupDamage {
  std::string volume_id;
  std::string backup_id;
  std::vector<DamagedChunkUse> chunks;  // ordered by first offset
};

// Every backup of `volume_id` (or of every volume) that references a recorded
// chunk, in key order (volume id, then backup id). Reads no manifest when
// there is no record. A manifest that fails to load is an error naming its
// key, as in Repository::ListBackups.
[[nodiscard]] Result<std::vector<BackupDamage>> FindDamagedBackups(
    const Repository& repository, std::optional<std::string_view> volume_id = std::nullopt);

}  // namespace kindling::engine
