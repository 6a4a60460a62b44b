#include "control/retention.h"

#include <chrono>
#include <map>
#include <utility>

namespace kindling::control {

engine::RetentionPolicy RetentionPolicyOf(const db::Volume& volume) {
  return engine::RetentionPolicy{.keep_last = volume.backup_retention_count,
                                 .keep_hourly = volume.backup_keep.hourly,
                                 .keep_daily = volume.backup_keep.daily,
                                 .keep_weekly = volume.backup_keep.weekly,
                                 .keep_monthly = volume.backup_keep.monthly,
                                 .keep_yearly = volume.backup_keep.yearly};
}

std::vector<RetentionPlanEntry> PlanRetention(const db::Volume& volume,
                                              std::vector<db::RetentionInput> inputs) {
  std::vector<engine::RetentionItem> items;
  items.reserve(inputs.size());
  std::map<std::string, db::RetentionInput> by_id;
  for (db::RetentionInput& in : inputs) {
    const db::Timestamp when = in.backup.completed_at.value_or(in.backup.created_at);
    items.push_back(engine::RetentionItem{
        .id = in.backup.id,
        .created_unix_ms =
            std::chrono::duration_cast<std::chrono::milliseconds>(when.time_since_epoch()).count(),
        .protected_reason = in.backup.pinned                               ? "pinned"
                            : in.backup.kind == db::BackupKind::kPreDelete ? "pre_delete"
                                                                           : ""});
    by_id.emplace(in.backup.id, std::move(in));
  }
  std::vector<RetentionPlanEntry> out;
  for (engine::RetentionDecision& d :
       engine::ApplyRetention(std::move(items), RetentionPolicyOf(volume))) {
    db::RetentionInput& in = by_id.at(d.id);
    if (!d.keep && in.in_use) {
      d.keep = true;
      d.reasons = {"in_use"};
    }
    out.push_back(RetentionPlanEntry{.backup = std::move(in.backup), .decision = std::move(d)});
  }
  return out;
}

}  // namespace kindling::control
