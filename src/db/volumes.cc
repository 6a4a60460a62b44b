#include "db/volumes.h"

#include <algorithm>

#include "db/internal.h"
#include "db/rows.h"

namespace kindling::db {
namespace {

using internal::kVolumeColumns;
using internal::VolumeFromRow;

using internal::OptText;
using internal::OptTime;
using internal::Text;
using internal::Time;

Result<Volume> ReadVolume(pqxx::transaction_base& w, const std::string& volume_id,
                          bool for_update) {
  const pqxx::result rows = internal::Exec(w,
                                           std::string("SELECT ") + kVolumeColumns +
                                               " FROM project_volumes WHERE id = $1::uuid" +
                                               (for_update ? " FOR UPDATE" : ""),
                                           volume_id);
  if (rows.empty()) return NotFound("volume " + volume_id + " not found");
  return VolumeFromRow(rows[0]);
}

template <typename E>
std::optional<std::string> OptName(const std::optional<E>& value) {
  if (!value) return std::nullopt;
  return std::string(Name(*value));
}

}  // namespace

Result<Volume> CreateVolume(Tx& tx, const NewVolume& v) {
  return internal::Run(tx, "create volume", [&](pqxx::transaction_base& w) -> Result<Volume> {
    return VolumeFromRow(internal::Exec1(
        w,
        std::string("INSERT INTO project_volumes (project_id, server_id, mount_path, size_gb, "
                    "  backup_schedule, backup_retention_count, pre_delete_backup_enabled, status, "
                    "  backup_keep_hourly, backup_keep_daily, backup_keep_weekly, "
                    "  backup_keep_monthly, backup_keep_yearly, backup_cron, backup_window_start, "
                    "  backup_window_minutes, backup_time_zone, backup_next_at) "
                    "VALUES ($1::uuid, $2::uuid, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, "
                    "  $14, $15, $16::int, $17, $18::timestamptz) "
                    "RETURNING ") +
            kVolumeColumns,
        v.project_id, v.server_id, v.mount_path, v.size_gb, std::string(Name(v.backup_schedule)),
        v.backup_retention_count, v.pre_delete_backup_enabled, std::string(Name(v.status)),
        v.backup_keep.hourly, v.backup_keep.daily, v.backup_keep.weekly, v.backup_keep.monthly,
        v.backup_keep.yearly, v.backup_window.cron, v.backup_window.start, v.backup_window.minutes,
        v.backup_window.time_zone, internal::OptTimeParam(v.backup_next_at)));
  });
}

Result<Volume> GetVolume(Tx& tx, const std::string& volume_id, bool for_update) {
  return internal::Run(tx, "get volume", [&](pqxx::transaction_base& w) -> Result<Volume> {
    return ReadVolume(w, volume_id, for_update);
  });
}

Result<std::optional<Volume>> FindProjectVolume(Tx& tx, const std::string& project_id,
                                                bool for_update) {
  return internal::Run(
      tx, "find project volume", [&](pqxx::transaction_base& w) -> Result<std::optional<Volume>> {
        const pqxx::result rows = internal::Exec(
            w,
            std::string("SELECT ") + kVolumeColumns +
                " FROM project_volumes WHERE project_id = $1::uuid AND deleted_at IS NULL" +
                (for_update ? " FOR UPDATE" : ""),
            project_id);
        if (rows.empty()) return std::optional<Volume>();
        return std::optional<Volume>(VolumeFromRow(rows[0]));
      });
}

Result<Volume> UpdateVolumeSettings(Tx& tx, const std::string& volume_id,
                                    const VolumeSettingsUpdate& u) {
  return internal::Run(
      tx, "update volume settings", [&](pqxx::transaction_base& w) -> Result<Volume> {
        KINDLING_ASSIGN_OR_RETURN(Volume current, ReadVolume(w, volume_id, /*for_update=*/true));
        if (current.deleted_at) return NotFound("volume " + volume_id + " is deleted");
        if (u.size_gb && *u.size_gb < current.size_gb) {
          return InvalidArgument("size_gb can only grow (volume has " +
                                 std::to_string(current.size_gb) + " GB)");
        }
        return VolumeFromRow(internal::Exec1(
            w,
            std::string(
                "UPDATE project_volumes SET "
                "  mount_path = COALESCE($2, mount_path), "
                "  size_gb = COALESCE($3::int, size_gb), "
                "  backup_schedule = COALESCE($4, backup_schedule), "
                "  backup_retention_count = COALESCE($5::int, backup_retention_count), "
                "  pre_delete_backup_enabled = COALESCE($6::bool, pre_delete_backup_enabled), "
                "  backup_keep_hourly = COALESCE($7::int, backup_keep_hourly), "
                "  backup_keep_daily = COALESCE($8::int, backup_keep_daily), "
                "  backup_keep_weekly = COALESCE($9::int, backup_keep_weekly), "
                "  backup_keep_monthly = COALESCE($10::int, backup_keep_monthly), "
                "  backup_keep_yearly = COALESCE($11::int, backup_keep_yearly), "
                "  backup_cron = CASE WHEN $12 THEN $13 ELSE backup_cron END, "
                "  backup_window_start = CASE WHEN $14 THEN $15 ELSE backup_window_start END, "
                "  backup_window_minutes = "
                "    CASE WHEN $16 THEN $17::int ELSE backup_window_minutes END, "
                "  backup_time_zone = COALESCE($18, backup_time_zone), "
                "  backup_next_at = CASE WHEN $19 THEN $20::timestamptz ELSE backup_next_at END, "
                "  updated_at = now() "
                "WHERE id = $1::uuid RETURNING ") +
                kVolumeColumns,
            volume_id, u.mount_path, u.size_gb, OptName(u.backup_schedule),
            u.backup_retention_count, u.pre_delete_backup_enabled, u.backup_keep_hourly,
            u.backup_keep_daily, u.backup_keep_weekly, u.backup_keep_monthly, u.backup_keep_yearly,
            u.backup_cron.has_value(), u.backup_cron.value_or(std::nullopt),
            u.backup_window_start.has_value(), u.backup_window_start.value_or(std::nullopt),
            u.backup_window_minutes.has_value(), u.backup_window_minutes.value_or(std::nullopt),
            u.backup_time_zone, u.backup_next_at.has_value(),
            internal::OptTimeParam(u.backup_next_at.value_or(std::nullopt))));
      });
}

Result<Volume> UpdateVolumeState(Tx& tx, const std::string& volume_id, const VolumeStateUpdate& u) {
  return internal::Run(tx, "update volume state", [&](pqxx::transaction_base& w) -> Result<Volume> {
    KINDLING_ASSIGN_OR_RETURN(Volume current, ReadVolume(w, volume_id, /*for_update=*/true));
    if (!u.only_from.empty() &&
        std::find(u.only_from.begin(), u.only_from.end(), current.status) == u.only_from.end()) {
      return InvalidArgument("volume " + volume_id + " is " + std::string(Name(current.status)));
    }
    // $n flags say whether to touch a nullable column, since NULL is a
    // value to write there.
    return VolumeFromRow(internal::Exec1(
        w,
        std::string("UPDATE project_volumes SET "
                    "  status = COALESCE($2, status), "
                    "  health = COALESCE($3, health), "
                    "  server_id = CASE WHEN $4 THEN $5::uuid ELSE server_id END, "
                    "  attached_vm_id = CASE WHEN $6 THEN $7::uuid ELSE attached_vm_id END, "
                    "  last_error = CASE WHEN $8 THEN $9 ELSE last_error END, "
                    "  updated_at = now() "
                    "WHERE id = $1::uuid RETURNING ") +
            kVolumeColumns,
        volume_id, OptName(u.status), OptName(u.health), u.server_id.has_value(),
        u.server_id.value_or(std::nullopt), u.attached_vm_id.has_value(),
        u.attached_vm_id.value_or(std::nullopt), u.last_error.has_value(),
        u.last_error.value_or(std::nullopt)));
  });
}

Result<bool> MoveBackupNextAt(Tx& tx, const std::string& volume_id,
                              const std::optional<Timestamp>& expected,
                              const std::optional<Timestamp>& next) {
  return internal::Run(tx, "move backup_next_at", [&](pqxx::transaction_base& w) -> Result<bool> {
    KINDLING_RETURN_IF_ERROR(ReadVolume(w, volume_id, /*for_update=*/true));
    const pqxx::result rows = internal::Exec(
        w,
        "UPDATE project_volumes SET backup_next_at = $3::timestamptz "
        "WHERE id = $1::uuid AND backup_next_at IS NOT DISTINCT FROM $2::timestamptz "
        "RETURNING id",
        volume_id, internal::OptTimeParam(expected), internal::OptTimeParam(next));
    return !rows.empty();
  });
}

Result<Volume> MarkVolumeDeleted(Tx& tx, const std::string& volume_id) {
  return internal::Run(tx, "delete volume", [&](pqxx::transaction_base& w) -> Result<Volume> {
    const pqxx::result rows = internal::Exec(
        w,
        std::string("UPDATE project_volumes SET deleted_at = now(), updated_at = now() "
                    "WHERE id = $1::uuid AND deleted_at IS NULL RETURNING ") +
            kVolumeColumns,
        volume_id);
    if (rows.empty()) return NotFound("volume " + volume_id + " not found");
    return VolumeFromRow(rows[0]);
  });
}

Result<Volume> CreatePlaceholderVolume(Tx& tx, const std::string& id, const std::string& project_id,
                                       int size_gb) {
  return internal::Run(
      tx, "create placeholder volume", [&](pqxx::transaction_base& w) -> Result<Volume> {
        if (!internal::Exec(w, "SELECT 1 FROM project_volumes WHERE id = $1::uuid", id).empty())
          return MakeError(ErrorKind::kAlreadyExists, "volume " + id + " exists");
        return VolumeFromRow(internal::Exec1(
            w,
            std::string("INSERT INTO project_volumes (id, project_id, server_id, size_gb, status, "
                        "  health, deleted_at) "
                        "VALUES ($1::uuid, $2::uuid, NULL, $3, 'detached', 'unknown', now()) "
                        "RETURNING ") +
                kVolumeColumns,
            id, project_id, std::max(size_gb, 1)));
      });
}

Result<std::vector<Volume>> ListVolumes(Tx& tx, const VolumeFilter& f) {
  return internal::Run(
      tx, "list volumes", [&](pqxx::transaction_base& w) -> Result<std::vector<Volume>> {
        std::vector<Volume> volumes;
        for (const auto& r : internal::Exec(w,
                                            std::string("SELECT ") + kVolumeColumns +
                                                " FROM project_volumes "
                                                "WHERE ($1::uuid IS NULL OR server_id = $1::uuid) "
                                                "  AND ($2::uuid IS NULL OR project_id = $2::uuid) "
                                                "  AND ($3 OR deleted_at IS NULL) "
                                                "ORDER BY created_at, id",
                                            f.server_id, f.project_id, f.include_deleted))
          volumes.push_back(VolumeFromRow(r));
        return volumes;
      });
}

namespace internal {

Volume VolumeFromRow(const pqxx::row& r) {
  Volume v;
  v.id = Text(r[0]);
  v.project_id = Text(r[1]);
  v.server_id = OptText(r[2]);
  v.attached_vm_id = OptText(r[3]);
  v.mount_path = Text(r[4]);
  v.size_gb = r[5].as<int>();
  v.filesystem = Text(r[6]);
  v.status = internal::Enum<VolumeStatus>(r[7]);
  v.health = internal::Enum<VolumeHealth>(r[8]);
  v.backup_schedule = internal::Enum<BackupSchedule>(r[9]);
  v.backup_retention_count = r[10].as<int>();
  v.pre_delete_backup_enabled = r[11].as<bool>();
  v.last_error = OptText(r[12]);
  v.deleted_at = OptTime(r[13]);
  v.created_at = Time(r[14]);
  v.updated_at = Time(r[15]);
  v.backup_keep = BackupKeep{.hourly = r[16].as<int>(),
                             .daily = r[17].as<int>(),
                             .weekly = r[18].as<int>(),
                             .monthly = r[19].as<int>(),
                             .yearly = r[20].as<int>()};
  v.backup_window =
      BackupWindow{.cron = OptText(r[21]),
                   .start = OptText(r[22]),
                   .minutes = r[23].is_null() ? std::nullopt : std::optional<int>(r[23].as<int>()),
                   .time_zone = Text(r[24])};
  v.backup_next_at = OptTime(r[25]);
  return v;
}

}  // namespace internal
}  // namespace kindling::db
