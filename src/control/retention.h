// A volume's retention policy applied to its backups: which the worker
// deletes after each backup (reconcile/operation_runner.h) and what
// GET /api/projects/{id}/volume/retention previews.
//
// The policy is the volume's: keep_last is the reference's
// backup_retention_count, keep_hourly..keep_yearly its backup_keep columns
// (engine/retention.h has the rules). Backups an operator pinned ("pinned")
// and pre-delete backups ("pre_delete") are protected: always kept, outside
// the rules (a pinned pre-delete backup shows "pinned"). Whoever deletes
// what the plan drops re-checks the pin under the row's lock (a pin may come
// after the plan; reconcile/operation_runner.h). A backup a pending or running
// operation refers to (the backup being recorded, a restore's source) counts
// in the rules like any other, but when they drop it, it is kept ("in_use")
// until a later run.
//
// Pure functions; thread-safe.
#pragma once

#include <vector>

#include "db/backups.h"
#include "db/volumes.h"
#include "engine/retention.h"

namespace kindling::control {

engine::RetentionPolicy RetentionPolicyOf(const db::Volume& volume);

struct RetentionPlanEntry {
  db::Backup backup{};
  engine::RetentionDecision decision{};
};

struct RetentionPreview {
  db::Volume volume{};
  std::vector<RetentionPlanEntry> entries{};
};

// One entry per input, newest first. `inputs` as db::ListRetentionInputs
// returns them.
std::vector<RetentionPlanEntry> PlanRetention(const db::Volume& volume,
                                              std::vector<db::RetentionInput> inputs);

}  // namespace kindling::control
