#include "reconcile/backup_damage.h"

#include <spdlog/spdlog.h>

#include <map>
#include <nlohmann/json.hpp>

#include "db/audit.h"
#include "db/backups.h"
#include "engine/damage.h"

namespace kindling::reconcile {
namespace {

using json = nlohmann::json;

json DamageJson(const engine::BackupDamage& damage) {
  json chunks = json::array();
  for (const engine::DamagedChunkUse& use : damage.chunks) {
    chunks.push_back({{"chunk_id", use.chunk_id_hex},
                      {"problem", std::string(engine::DamageProblemName(use.problem))},
                      {"offsets", use.offsets}});
  }
  return json{{"chunks", chunks}};
}

Status AuditBackup(db::Tx& tx, const db::Backup& backup, std::string_view action,
                   const json& details) {
  auto id = db::InsertAuditEvent(tx, db::AuditEventInput{.action = std::string(action),
                                                         .resource_type = "project_volume",
                                                         .resource_id = backup.project_volume_id,
                                                         .details_json = details.dump()});
  if (!id) return std::unexpected(id.error());
  return OkStatus();
}

}  // namespace

Result<DamageSyncReport> SyncBackupDamage(db::Database& db, const StoreHandle& store) {
  KINDLING_ASSIGN_OR_RETURN(std::vector<engine::BackupDamage> found,
                            engine::FindDamagedBackups(*store.repository));
  std::map<std::string, json> damage_by_backup;
  for (const engine::BackupDamage& d : found) damage_by_backup[d.backup_id] = DamageJson(d);

  return db.Transact([&](db::Tx& tx) -> Result<DamageSyncReport> {
    DamageSyncReport report;
    KINDLING_ASSIGN_OR_RETURN(std::vector<db::Backup> rows, db::ListStoreBackups(tx, store.url));
    for (const db::Backup& row : rows) {
      auto it = damage_by_backup.find(row.id);
      if (it != damage_by_backup.end()) {
        const json current =
            row.damage_json ? json::parse(*row.damage_json, nullptr, false) : json(nullptr);
        const bool same = row.status == db::BackupStatus::kDamaged && current.is_object() &&
                          current.value("chunks", json()) == it->second["chunks"];
        if (same) continue;
        json damage = it->second;
        damage["storage_url"] = store.url;
        KINDLING_ASSIGN_OR_RETURN(db::Backup marked,
                                  db::MarkBackupDamaged(tx, row.id, damage.dump()));
        KINDLING_RETURN_IF_ERROR(AuditBackup(tx, marked, "volume.backup.damaged",
                                             {{"backup_id", row.id}, {"damage", damage}}));
        report.marked_damaged.push_back(row.id);
      } else if (row.status == db::BackupStatus::kDamaged) {
        KINDLING_ASSIGN_OR_RETURN(db::Backup healed, db::MarkBackupHealed(tx, row.id));
        KINDLING_RETURN_IF_ERROR(AuditBackup(tx, healed, "volume.backup.healed",
                                             {{"backup_id", row.id}, {"storage_url", store.url}}));
        report.healed.push_back(row.id);
      }
    }
    return report;
  });
}

}  // namespace kindling::reconcile
