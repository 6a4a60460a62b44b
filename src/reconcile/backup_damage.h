// Backup damage in the database: brings the `damaged` status of the backup
// rows of one store in line with the damage records in that store
// (engine/damage.h). A succeeded backup that references a recorded chunk
// becomes `damaged`, with the chunks and the image offsets they hold
// (`damage`); a damaged backup whose chunks were all stored again (by a later
// backup) becomes `succeeded` again. Each change is audited
// (volume.backup.damaged / volume.backup.healed).
//
// Workers run it after a restore or verify met a damaged chunk, after a
// backup healed chunks, and periodically (records written by the offline CLI
// or by other hosts).
//
// Thread-safety: thread-safe; two concurrent syncs of one store converge.
#pragma once

#include <string>
#include <vector>

#include "common/result.h"
#include "db/database.h"
#include "reconcile/store_provider.h"

namespace kindling::reconcile {

struct DamageSyncReport {
  std::vector<std::string> marked_damaged;  // backup ids
  std::vector<std::string> healed;          // backup ids
};

[[nodiscard]] Result<DamageSyncReport> SyncBackupDamage(db::Database& db, const StoreHandle& store);

}  // namespace kindling::reconcile
