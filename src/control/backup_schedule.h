// When a volume's scheduled backups run: its slots.
//
// A schedule (the volume's backup_* columns) is one of the reference's
// off | manual | daily | weekly, or cron (a 5-field expression,
// control/cron.h), with an optional time window (a local start "HH:MM" and
// a duration in minutes) in an IANA time zone (default UTC). Each slot has a
// nominal time (`base`), the time it should start (`start`) and the time its
// window closes (`ends`):
//   - daily: every local day at the window's start (00:00 by default);
//   - weekly: every local Monday at the window's start;
//   - cron: every time the expression matches, in local time; with a window,
//     only matches whose local time of day falls inside it.
// The window lasts `window_minutes`: by default the whole day for daily and
// weekly without a window, and 60 minutes when only a start is given. A cron
// slot's window ends at its window's end or at the next match, whichever
// comes first (60 minutes after the match without a window).
//
// Spread: so that a thousand volumes on one schedule do not all start in
// the same second, a slot starts `base + offset`, the offset a hash of the
// volume id over the first half of the slot's window (the second half is
// left for the backup to run). The offset is stable, so a volume's backups
// keep their time of day.
//
// Local times that do not exist (a clock moved forward) run at the
// transition; ambiguous ones (moved back) run once, at the earlier instant.
//
// Pure and thread-safe; the time zone database is the system's (tzdata).
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "common/result.h"
#include "control/cron.h"
#include "db/types.h"
#include "db/volumes.h"

namespace date {
class time_zone;
}  // namespace date

namespace kindling::control {

using SysSeconds = std::chrono::sys_seconds;

struct BackupScheduleSpec {
  db::BackupSchedule kind = db::BackupSchedule::kManual;
  std::optional<std::string> cron{};          // with kind cron only
  std::optional<std::string> window_start{};  // "HH:MM", local
  std::optional<int> window_minutes{};
  std::string time_zone = "UTC";
};

struct ScheduleSlot {
  SysSeconds base{};
  SysSeconds start{};  // base + the volume's offset
  SysSeconds ends{};   // a run not started by then missed this slot
};

class BackupSchedulePlan {
 public:
  // kInvalidArgument with a message naming the field (backup_cron,
  // backup_window_start, backup_window_minutes, backup_time_zone): a cron
  // expression without kind cron or the other way round, a malformed window,
  // a window longer than a day (a week for weekly), an unknown time zone, a
  // cron expression that never matches inside its window.
  [[nodiscard]] static Result<BackupSchedulePlan> Compile(const BackupScheduleSpec& spec);

  // Whether the schedule has slots at all (daily, weekly, cron).
  bool scheduled() const;

  // The first slot of `volume_id` whose start is strictly after `after`;
  // nullopt for off and manual.
  [[nodiscard]] std::optional<ScheduleSlot> NextSlot(const std::string& volume_id,
                                                     SysSeconds after) const;

  // The slot of `volume_id` that starts exactly at `start` (a stored
  // next_backup_at); nullopt when no slot starts then (the schedule changed
  // since it was stored).
  [[nodiscard]] std::optional<ScheduleSlot> SlotStartingAt(const std::string& volume_id,
                                                           SysSeconds start) const;

 private:
  BackupSchedulePlan() = default;
  // The first base strictly after `t`.
  std::optional<SysSeconds> NextBase(SysSeconds t) const;
  ScheduleSlot MakeSlot(const std::string& volume_id, SysSeconds base) const;
  // Whether local time of day `minute` (0..1439) is inside the window.
  bool InWindow(int minute) const;

  db::BackupSchedule kind_ = db::BackupSchedule::kManual;
  std::optional<CronExpression> cron_{};
  bool has_window_ = false;
  int window_start_minute_ = 0;
  int window_minutes_ = 24 * 60;
  const date::time_zone* zone_ = nullptr;
};

// The schedule of a volume row.
BackupScheduleSpec ScheduleSpecOf(const db::Volume& volume);

// The start of `volume_id`'s first slot after `now`, as stored in
// backup_next_at; nullopt without a schedule.
std::optional<db::Timestamp> NextBackupAt(const BackupSchedulePlan& plan,
                                          const std::string& volume_id,
                                          std::chrono::system_clock::time_point now);

}  // namespace kindling::control
