#include "db/orphan_backups.h"

#include "db/internal.h"

namespace kindling::db {
namespace {

using internal::OptText;
using internal::OptTime;
using internal::Text;
using internal::Time;

constexpr char kOrphanColumns[] =
    "backup_id, volume_id, storage_url, storage_key, size_bytes, image_sha256, chunk_size, "
    "backup_created_at, found_at, last_seen_at, assigned_project_id, assigned_at";

OrphanBackup OrphanFromRow(const pqxx::row& r) {
  OrphanBackup o;
  o.backup_id = Text(r[0]);
  o.volume_id = Text(r[1]);
  o.storage_url = Text(r[2]);
  o.storage_key = Text(r[3]);
  o.size_bytes = r[4].as<std::int64_t>();
  o.image_sha256 = Text(r[5]);
  o.chunk_size = r[6].as<int>();
  o.backup_created_at = Time(r[7]);
  o.found_at = Time(r[8]);
  o.last_seen_at = Time(r[9]);
  o.assigned_project_id = OptText(r[10]);
  o.assigned_at = OptTime(r[11]);
  return o;
}

}  // namespace

Result<RecordedOrphan> RecordOrphanBackup(Tx& tx, const OrphanBackup& o) {
  return internal::Run(
      tx, "record orphan backup", [&](pqxx::transaction_base& w) -> Result<RecordedOrphan> {
        // xmax = 0 only on a row this statement inserted.
        const pqxx::row r = internal::Exec1(
            w,
            std::string("INSERT INTO orphan_volume_backups (backup_id, volume_id, storage_url, "
                        "  storage_key, size_bytes, image_sha256, chunk_size, backup_created_at) "
                        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8::timestamptz) "
                        "ON CONFLICT (backup_id) DO UPDATE SET last_seen_at = now() "
                        "RETURNING ") +
                kOrphanColumns + ", xmax = 0",
            o.backup_id, o.volume_id, o.storage_url, o.storage_key, o.size_bytes, o.image_sha256,
            o.chunk_size, FormatTimestamp(o.backup_created_at));
        return RecordedOrphan{OrphanFromRow(r), r[12].as<bool>()};
      });
}

Result<OrphanBackup> GetOrphanBackup(Tx& tx, const std::string& backup_id, bool for_update) {
  return internal::Run(tx, "get orphan backup",
                       [&](pqxx::transaction_base& w) -> Result<OrphanBackup> {
                         const pqxx::result rows =
                             internal::Exec(w,
                                            std::string("SELECT ") + kOrphanColumns +
                                                " FROM orphan_volume_backups WHERE backup_id = $1" +
                                                (for_update ? " FOR UPDATE" : ""),
                                            backup_id);
                         if (rows.empty())
                           return NotFound("orphan backup " + backup_id + " not found");
                         return OrphanFromRow(rows[0]);
                       });
}

Result<std::vector<OrphanBackup>> ListOrphanBackups(Tx& tx, bool include_assigned) {
  return internal::Run(
      tx, "list orphan backups",
      [&](pqxx::transaction_base& w) -> Result<std::vector<OrphanBackup>> {
        std::vector<OrphanBackup> out;
        for (const auto& r : internal::Exec(w,
                                            std::string("SELECT ") + kOrphanColumns +
                                                " FROM orphan_volume_backups "
                                                "WHERE $1 OR assigned_at IS NULL "
                                                "ORDER BY backup_created_at DESC, backup_id DESC",
                                            include_assigned))
          out.push_back(OrphanFromRow(r));
        return out;
      });
}

Result<OrphanBackup> MarkOrphanAssigned(Tx& tx, const std::string& backup_id,
                                        const std::string& project_id) {
  return internal::Run(
      tx, "assign orphan backup", [&](pqxx::transaction_base& w) -> Result<OrphanBackup> {
        const pqxx::result rows = internal::Exec(
            w,
            std::string("UPDATE orphan_volume_backups SET assigned_project_id = $2::uuid, "
                        "  assigned_at = now() "
                        "WHERE backup_id = $1 AND assigned_at IS NULL RETURNING ") +
                kOrphanColumns,
            backup_id, project_id);
        if (!rows.empty()) return OrphanFromRow(rows[0]);
        if (internal::Exec(w, "SELECT 1 FROM orphan_volume_backups WHERE backup_id = $1", backup_id)
                .empty())
          return NotFound("orphan backup " + backup_id + " not found");
        return InvalidArgument("orphan backup " + backup_id + " is already assigned");
      });
}

}  // namespace kindling::db
