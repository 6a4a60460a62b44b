// Rescan: the backups the stores hold and the database lacks.
//
// A backup is committed by its manifest in the store; the database row only
// records that. After the control-plane database is restored from an older
// snapshot, the backups written since are in the stores but have no row, so
// nobody can list or restore them. RescanBackupStores lists every store the
// cluster knows (the current settings, the store history and every
// storage_url a backup row names) and, for each manifest whose backup has no
// row:
//   - its volume is in project_volumes (deleted volumes included): the row is
//     inserted `succeeded` from the manifest (kind manual; storage_url and
//     storage_key; size_bytes = the image size; metadata image_sha256,
//     stored_bytes, referenced_bytes, chunks_uploaded, chunks_data,
//     chunk_size and "imported": true; completed_at = the manifest's creation
//     time), audited volume.backup.imported;
//   - its volume is unknown: it is recorded as an orphan (db/orphan_backups.h,
//     audited backup.orphan.found the first time) until a platform admin
//     assigns it to a project (AssignOrphanBackup).
// A row that is `failed` while its manifest exists (the worker committed the
// backup and lost its lease before recording it, or the leader failed the
// operation after a restore) becomes succeeded from the manifest
// (`recovered`, audited volume.backup.imported with recovered: true). Rows
// pending or running are left to their operation: the worker that runs it
// finds the manifest and records it. A store that does not open or list, and
// a manifest that does not authenticate, are reported in `unreadable` while
// the rest carries on. Idempotent: a second rescan imports nothing, and
// concurrent rescans import each backup once.
//
// Cost: one listing of each store's project-volumes/ prefix and one query
// per store; manifests are read only for backups the database lacks, so a
// rescan that finds nothing missing is cheap (the leader runs one whenever it
// starts leading).
//
// Stores the database does not know cannot be scanned: after restoring a
// snapshot older than a change of the backup settings, set the newer store
// again (it is then recorded) and rescan.
//
// Thread-safety: free functions; state lives in the database and the stores.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "control/control_error.h"
#include "control/volume_service.h"
#include "crypto/aead.h"
#include "db/database.h"
#include "db/orphan_backups.h"
#include "db/volumes.h"

namespace kindling::control {

// A backup row the rescan created (or recovered from failed).
struct RescannedBackup {
  std::string backup_id{};
  std::string volume_id{};
  std::string project_id{};
  bool volume_deleted = false;
  std::string storage_url{};
  std::string storage_key{};
  std::int64_t size_bytes = 0;
  std::string image_sha256{};
  db::Timestamp created_at{};  // the manifest's creation time
  bool recovered = false;      // the row existed, failed
};

struct RescanOrphan {
  db::OrphanBackup orphan{};
  bool first_found = false;  // recorded by this rescan
};

// What could not be read: a whole store (`key` empty) or one manifest.
struct RescanProblem {
  std::string storage_url{};
  std::string key{};
  std::string error{};  // never contains a secret
};

struct RescanReport {
  std::vector<std::string> stores{};  // scanned (listed), in order
  std::size_t manifests = 0;          // manifests found in them
  std::size_t known = 0;              // already recorded (succeeded or damaged)
  // Backups whose row is pending or running: their operation records them.
  std::vector<std::string> in_flight{};
  std::vector<RescannedBackup> imported{};
  std::vector<RescanOrphan> orphaned{};  // every unassigned orphan found
  std::vector<RescanProblem> unreadable{};
};

// Scans every store the cluster knows, as described above. Audits
// backups.rescan (details: the counts) when `actor` is a user or when the
// rescan changed anything. Errors only when the database fails.
[[nodiscard]] ControlResult<RescanReport> RescanBackupStores(db::Database& db,
                                                             const crypto::Key& master_key,
                                                             const Actor& actor);

// Orphans, newest backup first; assigned ones with `include_assigned`.
[[nodiscard]] ControlResult<std::vector<db::OrphanBackup>> ListOrphanBackups(db::Database& db,
                                                                             bool include_assigned);

struct AssignedOrphan {
  db::OrphanBackup orphan{};
  db::Backup backup{};
  db::Volume volume{};  // the backup's volume
  bool volume_created = false;
};

// Gives orphan `backup_id` to project `project_id`: records a deleted volume
// with the manifest's volume id in the project (a placeholder: no server,
// never an image) and the backup row `succeeded` under it, so a restore into
// the project's live volume accepts it like a backup of any earlier volume of
// the project. The manifest is read (and authenticated) from its store
// first. Audited volume.backup.assigned.
//   404 not_found            no such orphan, or no such project
//   409 failed_precondition  already assigned; the volume or backup id is not
//                            a UUID (a backup the engine's CLI made: the
//                            message says how to restore it with the engine);
//                            the volume id now belongs to another project;
//                            the manifest cannot be read
[[nodiscard]] ControlResult<AssignedOrphan> AssignOrphanBackup(db::Database& db,
                                                               const crypto::Key& master_key,
                                                               const Actor& actor,
                                                               const std::string& backup_id,
                                                               const std::string& project_id);

}  // namespace kindling::control
