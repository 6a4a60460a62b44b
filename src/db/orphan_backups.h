// orphan_volume_backups: backups found committed in a store whose volume the
// database does not know (a restore of the database from a snapshot older
// than the volume, or a backup made with the engine's CLI under another
// volume id). Recorded by the rescan (control/backup_rescan.h) as found, with
// what the manifest says, until a platform admin assigns one to a project;
// the row then stays, with the project and the time, as history.
//
// Ids are text: the store accepts any safe id, while only UUIDs can become
// volume and backup rows.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "db/database.h"
#include "db/types.h"

namespace kindling::db {

struct OrphanBackup {
  std::string backup_id{};
  std::string volume_id{};
  std::string storage_url{};
  std::string storage_key{};  // the manifest's key in that store
  std::int64_t size_bytes = 0;
  std::string image_sha256{};
  int chunk_size = 0;
  Timestamp backup_created_at{};
  Timestamp found_at{};
  Timestamp last_seen_at{};
  std::optional<std::string> assigned_project_id{};
  std::optional<Timestamp> assigned_at{};
};

struct RecordedOrphan {
  OrphanBackup orphan{};
  bool inserted = false;  // first found now
};

// Inserts the orphan, or (found again) updates last_seen_at only: what was
// recorded first, and an assignment, are kept.
[[nodiscard]] Result<RecordedOrphan> RecordOrphanBackup(Tx& tx, const OrphanBackup& orphan);

// kNotFound when missing.
[[nodiscard]] Result<OrphanBackup> GetOrphanBackup(Tx& tx, const std::string& backup_id,
                                                   bool for_update = false);

// Newest backup first; assigned ones only with `include_assigned`.
[[nodiscard]] Result<std::vector<OrphanBackup>> ListOrphanBackups(Tx& tx,
                                                                  bool include_assigned = false);

// Records the assignment. kInvalidArgument when already assigned; kNotFound
// when missing.
[[nodiscard]] Result<OrphanBackup> MarkOrphanAssigned(Tx& tx, const std::string& backup_id,
                                                      const std::string& project_id);

}  // namespace kindling::db
