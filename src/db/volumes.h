// project_volumes: one live volume per project (deleted ones keep their row
// with deleted_at set), pinned to one worker (server_id).
//
// Queueing work on a volume goes through operations.h, which sets the
// volume's transitional status in the same transaction; the functions here
// change settings and state directly. Callers that check-then-act (the API's
// volume_busy/volume_attached checks) lock the row first with
// `for_update = true` so concurrent requests serialize on it.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "db/database.h"
#include "db/types.h"

namespace kindling::db {

// Retention rules besides keep_last (backup_retention_count): how many
// hours, days, ISO weeks, months and years keep their newest backup.
struct BackupKeep {
  int hourly = 0;
  int daily = 0;
  int weekly = 0;
  int monthly = 0;
  int yearly = 0;
  friend bool operator==(const BackupKeep&, const BackupKeep&) = default;
};

// A schedule's details beside backup_schedule.
struct BackupWindow {
  std::optional<std::string> cron{};
  std::optional<std::string> start{};  // "HH:MM", local
  std::optional<int> minutes{};
  std::string time_zone = "UTC";
  friend bool operator==(const BackupWindow&, const BackupWindow&) = default;
};

struct Volume {
  std::string id{};
  std::string project_id{};
  std::optional<std::string> server_id{};
  std::optional<std::string> attached_vm_id{};
  std::string mount_path{};
  int size_gb = 0;
  std::string filesystem{};
  VolumeStatus status = VolumeStatus::kDetached;
  VolumeHealth health = VolumeHealth::kUnknown;
  BackupSchedule backup_schedule = BackupSchedule::kManual;
  int backup_retention_count = 0;  // the retention policy's keep_last
  bool pre_delete_backup_enabled = false;
  std::optional<std::string> last_error{};
  std::optional<Timestamp> deleted_at{};
  Timestamp created_at{};
  Timestamp updated_at{};
  // The rest of the retention policy (engine/retention.h); 0: off.
  BackupKeep backup_keep{};
  // The schedule's details (control/backup_schedule.h): the cron expression
  // (backup_schedule cron only), the time window and its zone.
  BackupWindow backup_window{};
  // The next scheduled slot's start; NULL without a schedule (or before the
  // leader computed it).
  std::optional<Timestamp> backup_next_at{};
};

// Defaults are the reference's column defaults.
struct NewVolume {
  std::string project_id{};
  std::optional<std::string> server_id{};
  std::string mount_path = "/data";
  int size_gb = 5;
  BackupSchedule backup_schedule = BackupSchedule::kManual;
  int backup_retention_count = 7;
  bool pre_delete_backup_enabled = false;
  VolumeStatus status = VolumeStatus::kDetached;
  BackupKeep backup_keep{};
  BackupWindow backup_window{};
  std::optional<Timestamp> backup_next_at{};
};

// kInvalidArgument when the project already has a live volume, or for values
// the schema rejects (relative mount path, size < 1, retention < 1).
[[nodiscard]] Result<Volume> CreateVolume(Tx& tx, const NewVolume& volume);

// Any volume by id, deleted ones included. kNotFound when missing.
[[nodiscard]] Result<Volume> GetVolume(Tx& tx, const std::string& volume_id,
                                       bool for_update = false);

// The project's live volume; nullopt when it has none.
[[nodiscard]] Result<std::optional<Volume>> FindProjectVolume(Tx& tx, const std::string& project_id,
                                                              bool for_update = false);

// The user-editable settings (PUT /api/projects/{id}/volume); unset fields
// are kept.
struct VolumeSettingsUpdate {
  std::optional<std::string> mount_path{};
  std::optional<int> size_gb{};  // grow only
  std::optional<BackupSchedule> backup_schedule{};
  std::optional<int> backup_retention_count{};
  std::optional<bool> pre_delete_backup_enabled{};
  std::optional<int> backup_keep_hourly{};
  std::optional<int> backup_keep_daily{};
  std::optional<int> backup_keep_weekly{};
  std::optional<int> backup_keep_monthly{};
  std::optional<int> backup_keep_yearly{};
  // The schedule's details: unset keeps, SetNull() clears. The caller
  // validates the result and sets the next slot (control/volume_service.h).
  std::optional<std::optional<std::string>> backup_cron{};
  std::optional<std::optional<std::string>> backup_window_start{};
  std::optional<std::optional<int>> backup_window_minutes{};
  std::optional<std::string> backup_time_zone{};
  std::optional<std::optional<Timestamp>> backup_next_at{};
};

// kInvalidArgument when size_gb would shrink or a value is out of range;
// kNotFound for unknown or deleted volumes.
[[nodiscard]] Result<Volume> UpdateVolumeSettings(Tx& tx, const std::string& volume_id,
                                                  const VolumeSettingsUpdate& update);

// A change to a nullable column: nullopt keeps it; SetTo(v) writes v;
// SetNull() writes NULL. (Helpers, because `std::nullopt` alone would mean
// "keep".)
using NullableChange = std::optional<std::optional<std::string>>;
inline NullableChange SetTo(std::string value) {
  return NullableChange(std::in_place, std::move(value));
}
inline NullableChange SetNull() { return NullableChange(std::in_place, std::nullopt); }

// State the control plane and workers change; unset fields are kept.
struct VolumeStateUpdate {
  std::optional<VolumeStatus> status{};
  std::optional<VolumeHealth> health{};
  NullableChange server_id{};
  NullableChange attached_vm_id{};
  NullableChange last_error{};
  // When non-empty, the update applies only if the current status is one of
  // these; otherwise kInvalidArgument naming the current status.
  std::vector<VolumeStatus> only_from{};
};

// kNotFound for unknown volumes.
[[nodiscard]] Result<Volume> UpdateVolumeState(Tx& tx, const std::string& volume_id,
                                               const VolumeStateUpdate& update);

// Sets deleted_at; the project may then get a new volume. Backups and
// operations keep referring to the row. kNotFound when missing or already
// deleted.
[[nodiscard]] Result<Volume> MarkVolumeDeleted(Tx& tx, const std::string& volume_id);

// Moves the volume's next scheduled slot from `expected` to `next` (the
// leader, control/backup_schedule.h): false, changing nothing, when it is no
// longer `expected` (the schedule changed, or another process took the slot).
// kNotFound for unknown volumes.
[[nodiscard]] Result<bool> MoveBackupNextAt(Tx& tx, const std::string& volume_id,
                                            const std::optional<Timestamp>& expected,
                                            const std::optional<Timestamp>& next);

// Records a volume the database never knew, with id `id` (a UUID), as a
// deleted volume of `project_id`: no server, status detached, health
// unknown. It never holds an image; it exists so that a backup of that volume
// found in a store (an orphan, control/backup_rescan.h) belongs to the
// project and restores into the project's live volume like a backup of any
// earlier volume. kAlreadyExists when a volume with that id exists.
[[nodiscard]] Result<Volume> CreatePlaceholderVolume(Tx& tx, const std::string& id,
                                                     const std::string& project_id, int size_gb);

struct VolumeFilter {
  std::optional<std::string> server_id{};
  std::optional<std::string> project_id{};
  bool include_deleted = false;
};

// By created_at, then id.
[[nodiscard]] Result<std::vector<Volume>> ListVolumes(Tx& tx, const VolumeFilter& filter = {});

}  // namespace kindling::db
