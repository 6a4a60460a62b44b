// Column lists and row decoders of the tables that several db/ files read,
// so that one statement can join them (db/ only, like internal.h).
//
// Each decoder reads its columns in the order of its list, starting at index
// 0 of the row it is given: for a joined row, pass the slice that holds them,
// e.g. VolumeFromRow(row.slice(at, at + kVolumeColumnCount)).
#pragma once

#include <pqxx/pqxx>
#include <string_view>

#include "db/operations.h"
#include "db/projects.h"
#include "db/volumes.h"

namespace kindling::db::internal {

// The number of columns of a SELECT list: its commas outside parentheses and
// quotes, plus one.
constexpr int ColumnCount(std::string_view list) {
  int count = 1;
  int depth = 0;
  bool quoted = false;
  for (char c : list) {
    if (c == '\'') quoted = !quoted;
    if (quoted) continue;
    if (c == '(') ++depth;
    if (c == ')') --depth;
    if (c == ',' && depth == 0) ++count;
  }
  return count;
}

inline constexpr char kProjectColumns[] = "id, organization_id, name, created_at, updated_at";
inline constexpr int kProjectColumnCount = ColumnCount(kProjectColumns);
Project ProjectFromRow(const pqxx::row& r);  // projects.cc

inline constexpr char kVolumeColumns[] =
    "id, project_id, server_id, attached_vm_id, mount_path, size_gb, filesystem, status, health, "
    "backup_schedule, backup_retention_count, pre_delete_backup_enabled, last_error, deleted_at, "
    "created_at, updated_at, backup_keep_hourly, backup_keep_daily, backup_keep_weekly, "
    "backup_keep_monthly, backup_keep_yearly, backup_cron, backup_window_start, "
    "backup_window_minutes, backup_time_zone, backup_next_at";
inline constexpr int kVolumeColumnCount = ColumnCount(kVolumeColumns);
Volume VolumeFromRow(const pqxx::row& r);  // volumes.cc

inline constexpr char kOperationColumns[] =
    "id, project_volume_id, kind, status, server_id, request_metadata::text, "
    "result_metadata::text, error, started_at, completed_at, failed_at, created_at, updated_at, "
    "lease_owner, lease_expires_at, attempts, progress::text, request_metadata->>'backup_id', "
    "request_metadata->>'target_server_id', "
    "COALESCE((request_metadata->>'target_requested')::boolean, false)";
inline constexpr int kOperationColumnCount = ColumnCount(kOperationColumns);
Operation OperationFromRow(const pqxx::row& r);  // operations.cc

static_assert(kProjectColumnCount == 5 && kVolumeColumnCount == 26 && kOperationColumnCount == 20,
              "a column list changed: check its decoder and the statements that slice it");

}  // namespace kindling::db::internal
