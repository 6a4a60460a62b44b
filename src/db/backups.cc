#include "db/backups.h"

#include "common/ids.h"
#include "db/internal.h"

namespace kindling::db {
namespace {

using internal::OptText;
using internal::OptTime;
using internal::Text;
using internal::Time;

constexpr char kBackupColumns[] =
    "id, project_volume_id, kind, status, storage_url, storage_key, size_bytes, error, "
    "metadata::text, started_at, completed_at, failed_at, created_at, updated_at, damage::text, "
    "pinned, verified_at, verify_state";
// Columns BackupFromRow reads, for statements that read more after them.
constexpr int kBackupColumnCount = 18;

Backup BackupFromRow(const pqxx::row& r) {
  Backup b;
  b.id = Text(r[0]);
  b.project_volume_id = Text(r[1]);
  b.kind = internal::Enum<BackupKind>(r[2]);
  b.status = internal::Enum<BackupStatus>(r[3]);
  b.storage_url = OptText(r[4]);
  b.storage_key = OptText(r[5]);
  if (!r[6].is_null()) b.size_bytes = r[6].as<std::int64_t>();
  b.error = OptText(r[7]);
  b.metadata_json = Text(r[8]);
  b.started_at = OptTime(r[9]);
  b.completed_at = OptTime(r[10]);
  b.failed_at = OptTime(r[11]);
  b.created_at = Time(r[12]);
  b.updated_at = Time(r[13]);
  b.damage_json = OptText(r[14]);
  b.pinned = r[15].as<bool>();
  b.verified_at = OptTime(r[16]);
  if (!r[17].is_null()) b.verify_state = internal::Enum<VerifyState>(r[17]);
  return b;
}

// Applies `set_sql` to a backup whose status is in `from`; kNotFound when
// missing, kInvalidArgument naming the current status otherwise.
template <typename... Args>
Result<Backup> Transition(pqxx::transaction_base& w, const std::string& backup_id,
                          std::string_view from_sql, std::string_view set_sql, Args&&... args) {
  const pqxx::result current = internal::Exec(
      w, "SELECT status FROM project_volume_backups WHERE id = $1::uuid FOR UPDATE", backup_id);
  if (current.empty()) return NotFound("backup " + backup_id + " not found");
  const std::string status = Text(current[0][0]);
  const pqxx::result rows =
      internal::Exec(w,
                     "UPDATE project_volume_backups SET " + std::string(set_sql) +
                         ", updated_at = now() WHERE id = $1::uuid AND status IN (" +
                         std::string(from_sql) + ") RETURNING " + kBackupColumns,
                     backup_id, std::forward<Args>(args)...);
  if (rows.empty()) return InvalidArgument("backup " + backup_id + " is already " + status);
  return BackupFromRow(rows[0]);
}

}  // namespace

Result<Backup> CreateBackup(Tx& tx, const NewBackup& b) {
  return internal::Run(tx, "create backup", [&](pqxx::transaction_base& w) -> Result<Backup> {
    return BackupFromRow(internal::Exec1(
        w,
        std::string("INSERT INTO project_volume_backups (id, project_volume_id, kind, metadata) "
                    "VALUES ($1::uuid, $2::uuid, $3, $4::jsonb) RETURNING ") +
            kBackupColumns,
        b.id.value_or(NewUuidV7()), b.volume_id, std::string(Name(b.kind)), b.metadata_json));
  });
}

Result<Backup> GetBackup(Tx& tx, const std::string& backup_id, bool for_update) {
  return internal::Run(tx, "get backup", [&](pqxx::transaction_base& w) -> Result<Backup> {
    const pqxx::result rows = internal::Exec(
        w,
        std::string("SELECT ") + kBackupColumns +
            " FROM project_volume_backups WHERE id = $1::uuid" + (for_update ? " FOR UPDATE" : ""),
        backup_id);
    if (rows.empty()) return NotFound("backup " + backup_id + " not found");
    return BackupFromRow(rows[0]);
  });
}

Result<Backup> SetBackupPinned(Tx& tx, const std::string& backup_id, bool pinned) {
  return internal::Run(tx, "set backup pinned", [&](pqxx::transaction_base& w) -> Result<Backup> {
    const pqxx::result rows =
        internal::Exec(w,
                       std::string("UPDATE project_volume_backups SET pinned = $2, "
                                   "updated_at = now() WHERE id = $1::uuid RETURNING ") +
                           kBackupColumns,
                       backup_id, pinned);
    if (rows.empty()) return NotFound("backup " + backup_id + " not found");
    return BackupFromRow(rows[0]);
  });
}

Result<Backup> RecordBackupVerification(Tx& tx, const std::string& backup_id, VerifyState state) {
  return internal::Run(
      tx, "record backup verification", [&](pqxx::transaction_base& w) -> Result<Backup> {
        const pqxx::result rows = internal::Exec(
            w,
            std::string("UPDATE project_volume_backups SET verified_at = now(), "
                        "verify_state = $2, updated_at = now() WHERE id = $1::uuid RETURNING ") +
                kBackupColumns,
            backup_id, std::string(Name(state)));
        if (rows.empty()) return NotFound("backup " + backup_id + " not found");
        return BackupFromRow(rows[0]);
      });
}

Result<std::vector<Backup>> ListBackups(Tx& tx, const std::string& volume_id, int limit) {
  return internal::Run(
      tx, "list backups", [&](pqxx::transaction_base& w) -> Result<std::vector<Backup>> {
        std::vector<Backup> out;
        for (const auto& r : internal::Exec(w,
                                            std::string("SELECT ") + kBackupColumns +
                                                " FROM project_volume_backups "
                                                "WHERE project_volume_id = $1::uuid "
                                                "ORDER BY created_at DESC, id DESC LIMIT $2",
                                            volume_id, std::max(limit, 1)))
          out.push_back(BackupFromRow(r));
        return out;
      });
}

Result<std::vector<ProjectBackup>> ListProjectBackups(Tx& tx, const std::string& project_id,
                                                      int limit) {
  return internal::Run(
      tx, "list project backups",
      [&](pqxx::transaction_base& w) -> Result<std::vector<ProjectBackup>> {
        std::vector<ProjectBackup> out;
        std::string columns;
        for (std::string_view column :
             {"id", "project_volume_id", "kind", "status", "storage_url", "storage_key",
              "size_bytes", "error", "metadata::text", "started_at", "completed_at", "failed_at",
              "created_at", "updated_at", "damage::text", "pinned", "verified_at",
              "verify_state"}) {
          columns += (columns.empty() ? "b." : ", b.") + std::string(column);
        }
        for (const auto& r :
             internal::Exec(w,
                            "SELECT " + columns +
                                ", v.deleted_at IS NOT NULL FROM project_volume_backups b "
                                "JOIN project_volumes v ON v.id = b.project_volume_id "
                                "WHERE v.project_id = $1::uuid "
                                "ORDER BY b.created_at DESC, b.id DESC LIMIT $2",
                            project_id, std::max(limit, 1)))
          out.push_back(ProjectBackup{BackupFromRow(r), r[kBackupColumnCount].as<bool>()});
        return out;
      });
}

Result<std::vector<VolumeBackupAge>> ListVolumeBackupAges(Tx& tx) {
  return internal::Run(
      tx, "list volume backup ages",
      [&](pqxx::transaction_base& w) -> Result<std::vector<VolumeBackupAge>> {
        std::vector<VolumeBackupAge> out;
        for (const auto& r : internal::Exec(
                 w,
                 "SELECT v.id, v.project_id, last.completed_at IS NOT NULL, "
                 "  extract(epoch FROM now() - coalesce(last.completed_at, v.created_at))::float8 "
                 "FROM project_volumes v "
                 "LEFT JOIN (SELECT project_volume_id, max(completed_at) AS completed_at "
                 "           FROM project_volume_backups WHERE status = 'succeeded' "
                 "           GROUP BY project_volume_id) last "
                 "  ON last.project_volume_id = v.id "
                 "WHERE v.deleted_at IS NULL ORDER BY v.id")) {
          out.push_back(VolumeBackupAge{.volume_id = Text(r[0]),
                                        .project_id = Text(r[1]),
                                        .has_backup = r[2].as<bool>(),
                                        .age_seconds = r[3].as<double>()});
        }
        return out;
      });
}

Result<std::vector<Backup>> ListStoreBackups(Tx& tx, const std::string& storage_url) {
  return internal::Run(
      tx, "list store backups", [&](pqxx::transaction_base& w) -> Result<std::vector<Backup>> {
        std::vector<Backup> out;
        for (const auto& r : internal::Exec(w,
                                            std::string("SELECT ") + kBackupColumns +
                                                " FROM project_volume_backups "
                                                "WHERE storage_url = $1 "
                                                "  AND status IN ('succeeded', 'damaged') "
                                                "ORDER BY created_at, id",
                                            storage_url))
          out.push_back(BackupFromRow(r));
        return out;
      });
}

Result<Backup> MarkBackupDamaged(Tx& tx, const std::string& backup_id,
                                 const std::string& damage_json) {
  return internal::Run(tx, "mark backup damaged", [&](pqxx::transaction_base& w) {
    return Transition(w, backup_id, "'succeeded', 'damaged'",
                      "status = 'damaged', damage = $2::jsonb", damage_json);
  });
}

Result<Backup> MarkBackupHealed(Tx& tx, const std::string& backup_id) {
  return internal::Run(tx, "mark backup healed", [&](pqxx::transaction_base& w) {
    return Transition(w, backup_id, "'damaged'", "status = 'succeeded', damage = NULL");
  });
}

Result<Backup> MarkBackupRunning(Tx& tx, const std::string& backup_id) {
  return internal::Run(tx, "mark backup running", [&](pqxx::transaction_base& w) {
    return Transition(w, backup_id, "'pending', 'running'",
                      "status = 'running', started_at = COALESCE(started_at, now())");
  });
}

Result<Backup> MarkBackupSucceeded(Tx& tx, const std::string& backup_id, const BackupSuccess& s) {
  return internal::Run(tx, "mark backup succeeded", [&](pqxx::transaction_base& w) {
    return Transition(w, backup_id, "'pending', 'running', 'succeeded'",
                      "status = 'succeeded', storage_url = $2, storage_key = $3, "
                      "size_bytes = $4, metadata = metadata || $5::jsonb, error = NULL, "
                      "started_at = COALESCE(started_at, now()), completed_at = now()",
                      s.storage_url, s.storage_key, s.size_bytes, s.metadata_json);
  });
}

Result<Backup> MarkBackupFailed(Tx& tx, const std::string& backup_id, const std::string& error) {
  return internal::Run(tx, "mark backup failed", [&](pqxx::transaction_base& w) {
    return Transition(w, backup_id, "'pending', 'running', 'failed'",
                      "status = 'failed', error = $2, failed_at = now()", error);
  });
}

Result<std::vector<RetentionInput>> ListRetentionInputs(Tx& tx, const std::string& volume_id) {
  return internal::Run(
      tx, "list retention inputs",
      [&](pqxx::transaction_base& w) -> Result<std::vector<RetentionInput>> {
        std::vector<RetentionInput> out;
        for (const auto& r :
             internal::Exec(w,
                            std::string("SELECT ") + kBackupColumns +
                                ", EXISTS (SELECT 1 FROM project_volume_operations o "
                                "  WHERE o.status IN ('pending', 'running') "
                                "    AND o.request_metadata->>'backup_id' = b.id::text) "
                                "FROM project_volume_backups b "
                                "WHERE project_volume_id = $1::uuid AND status = 'succeeded' "
                                "ORDER BY completed_at DESC NULLS LAST, created_at DESC, id DESC",
                            volume_id)) {
          out.push_back(RetentionInput{.backup = BackupFromRow(r.slice(0, r.size() - 1)),
                                       .in_use = r[r.size() - 1].as<bool>()});
        }
        return out;
      });
}

Result<bool> DeleteBackup(Tx& tx, const std::string& backup_id) {
  return internal::Run(tx, "delete backup", [&](pqxx::transaction_base& w) -> Result<bool> {
    return !internal::Exec(w, "DELETE FROM project_volume_backups WHERE id = $1::uuid RETURNING id",
                           backup_id)
                .empty();
  });
}

Result<bool> ImportBackup(Tx& tx, const ImportedBackup& b) {
  return internal::Run(tx, "import backup", [&](pqxx::transaction_base& w) -> Result<bool> {
    if (internal::Exec(w, "SELECT 1 FROM project_volumes WHERE id = $1::uuid", b.volume_id).empty())
      return NotFound("volume " + b.volume_id + " not found");
    return !internal::Exec(
                w,
                "INSERT INTO project_volume_backups (id, project_volume_id, kind, status, "
                "  storage_url, storage_key, size_bytes, metadata, started_at, completed_at, "
                "  created_at, updated_at) "
                "VALUES ($1::uuid, $2::uuid, $3, 'succeeded', $4, $5, $6, $7::jsonb, "
                "  $8::timestamptz - $9::bigint * interval '1 millisecond', $8::timestamptz, "
                "  $8::timestamptz, now()) "
                "ON CONFLICT (id) DO NOTHING RETURNING id",
                b.id, b.volume_id, std::string(Name(b.kind)), b.storage_url, b.storage_key,
                b.size_bytes, b.metadata_json, FormatTimestamp(b.created_at),
                static_cast<long long>(b.duration.count()))
                .empty();
  });
}

Result<Backup> RecoverFailedBackup(Tx& tx, const std::string& backup_id, const BackupSuccess& s,
                                   Timestamp completed_at) {
  return internal::Run(tx, "recover failed backup", [&](pqxx::transaction_base& w) {
    return Transition(w, backup_id, "'failed'",
                      "status = 'succeeded', storage_url = $2, storage_key = $3, "
                      "size_bytes = $4, metadata = metadata || $5::jsonb || "
                      "  jsonb_build_object('previous_error', error), error = NULL, "
                      "failed_at = NULL, started_at = COALESCE(started_at, $6::timestamptz), "
                      "completed_at = $6::timestamptz",
                      s.storage_url, s.storage_key, s.size_bytes, s.metadata_json,
                      FormatTimestamp(completed_at));
  });
}

Result<std::map<std::string, BackupStatus>> FindBackupStatuses(
    Tx& tx, const std::vector<std::string>& backup_ids) {
  return internal::Run(
      tx, "find backup statuses",
      [&](pqxx::transaction_base& w) -> Result<std::map<std::string, BackupStatus>> {
        std::vector<std::string> uuids;
        for (const std::string& id : backup_ids)
          if (IsUuid(id)) uuids.push_back(id);
        std::map<std::string, BackupStatus> out;
        if (uuids.empty()) return out;
        for (const auto& r : internal::Exec(
                 w, "SELECT id, status FROM project_volume_backups WHERE id = ANY($1::uuid[])",
                 internal::PgTextArray(uuids)))
          out.emplace(Text(r[0]), internal::Enum<BackupStatus>(r[1]));
        return out;
      });
}

Result<std::vector<std::string>> ListBackupStorageUrls(Tx& tx) {
  return internal::Run(
      tx, "list backup storage urls",
      [&](pqxx::transaction_base& w) -> Result<std::vector<std::string>> {
        std::vector<std::string> out;
        for (const auto& r : w.exec("SELECT DISTINCT storage_url FROM project_volume_backups "
                                    "WHERE storage_url IS NOT NULL ORDER BY storage_url"))
          out.push_back(Text(r[0]));
        return out;
      });
}

Result<std::optional<Timestamp>> LastSuccessfulBackupAt(Tx& tx, const std::string& volume_id) {
  return internal::Run(tx, "last successful backup",
                       [&](pqxx::transaction_base& w) -> Result<std::optional<Timestamp>> {
                         const pqxx::row r = internal::Exec1(
                             w,
                             "SELECT max(completed_at) FROM project_volume_backups "
                             "WHERE project_volume_id = $1::uuid AND status = 'succeeded'",
                             volume_id);
                         return OptTime(r[0]);
                       });
}

}  // namespace kindling::db
