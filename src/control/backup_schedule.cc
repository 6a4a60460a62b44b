#include "control/backup_schedule.h"

#include <date/tz.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <exception>

namespace kindling::control {
namespace {

using std::chrono::days;
using std::chrono::minutes;
using std::chrono::seconds;

constexpr int kDayMinutes = 24 * 60;
constexpr minutes kCronSlotWithoutWindow{60};

std::unexpected<Error> Invalid(const std::string& message) {
  return MakeError(ErrorKind::kInvalidArgument, message);
}

// "HH:MM" -> minutes after midnight.
std::optional<int> ParseClock(std::string_view text) {
  if (text.size() != 5 || text[2] != ':') return std::nullopt;
  int hours = 0;
  int mins = 0;
  auto [h_end, h_ec] = std::from_chars(text.data(), text.data() + 2, hours);
  auto [m_end, m_ec] = std::from_chars(text.data() + 3, text.data() + 5, mins);
  if (h_ec != std::errc() || m_ec != std::errc() || h_end != text.data() + 2 ||
      m_end != text.data() + 5 || hours > 23 || mins > 59 || hours < 0 || mins < 0)
    return std::nullopt;
  return hours * 60 + mins;
}

// FNV-1a: a spread offset that is the same in every process and release.
std::uint64_t StableHash(std::string_view text) {
  std::uint64_t h = 14695981039346656037ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace

Result<BackupSchedulePlan> BackupSchedulePlan::Compile(const BackupScheduleSpec& spec) {
  BackupSchedulePlan plan;
  plan.kind_ = spec.kind;
  if (spec.kind == db::BackupSchedule::kCron) {
    if (!spec.cron) return Invalid("backup_schedule \"cron\" needs backup_cron, an expression");
    auto cron = CronExpression::Parse(*spec.cron);
    if (!cron) return Invalid("backup_cron: " + cron.error().message());
    plan.cron_ = std::move(*cron);
  } else if (spec.cron) {
    return Invalid("backup_cron applies to backup_schedule \"cron\" only, not \"" +
                   std::string(db::Name(spec.kind)) + "\"");
  }
  const int max_minutes = spec.kind == db::BackupSchedule::kWeekly ? 7 * kDayMinutes : kDayMinutes;
  if (spec.window_start) {
    auto start = ParseClock(*spec.window_start);
    if (!start) {
      return Invalid("backup_window_start: \"" + *spec.window_start +
                     "\" is not a time of day HH:MM (00:00 to 23:59)");
    }
    plan.has_window_ = true;
    plan.window_start_minute_ = *start;
    plan.window_minutes_ = 60;
  }
  if (spec.window_minutes) {
    if (*spec.window_minutes < 1 || *spec.window_minutes > max_minutes) {
      return Invalid("backup_window_minutes: " + std::to_string(*spec.window_minutes) +
                     " is out of range 1-" + std::to_string(max_minutes) + " for a " +
                     std::string(db::Name(spec.kind)) + " schedule");
    }
    plan.has_window_ = true;
    plan.window_minutes_ = *spec.window_minutes;
  }
  if (!plan.has_window_ && spec.kind == db::BackupSchedule::kWeekly)
    plan.window_minutes_ = kDayMinutes;
  try {
    plan.zone_ = date::locate_zone(spec.time_zone);
  } catch (const std::exception&) {
    return Invalid("backup_time_zone: unknown time zone \"" + spec.time_zone +
                   "\" (use an IANA name such as UTC or Europe/Paris)");
  }
  if (plan.kind_ == db::BackupSchedule::kCron && plan.has_window_ &&
      !plan.NextBase(SysSeconds(std::chrono::sys_days(std::chrono::year(2024) / 1 / 1)))) {
    return Invalid("backup_cron: \"" + *spec.cron +
                   "\" never matches inside the backup window (backup_window_start, "
                   "backup_window_minutes)");
  }
  return plan;
}

bool BackupSchedulePlan::scheduled() const {
  return kind_ == db::BackupSchedule::kDaily || kind_ == db::BackupSchedule::kWeekly ||
         kind_ == db::BackupSchedule::kCron;
}

bool BackupSchedulePlan::InWindow(int minute) const {
  if (!has_window_) return true;
  return (minute - window_start_minute_ + kDayMinutes) % kDayMinutes < window_minutes_;
}

std::optional<SysSeconds> BackupSchedulePlan::NextBase(SysSeconds t) const {
  const auto to_sys = [this](std::chrono::local_seconds local) {
    return zone_->to_sys(date::local_seconds(local.time_since_epoch()), date::choose::earliest);
  };
  const std::chrono::local_seconds local{zone_->to_local(t).time_since_epoch()};
  if (kind_ == db::BackupSchedule::kDaily || kind_ == db::BackupSchedule::kWeekly) {
    // A day's slot may come before `t` in local terms; look a day back and
    // nine ahead (a week, plus offsets changing by hours).
    const std::chrono::local_days today = std::chrono::floor<days>(local);
    for (int k = -1; k <= 9; ++k) {
      const std::chrono::local_days day = today + days(k);
      if (kind_ == db::BackupSchedule::kWeekly && std::chrono::weekday(day) != std::chrono::Monday)
        continue;
      const SysSeconds at = to_sys(std::chrono::local_seconds(day) + minutes(window_start_minute_));
      if (at > t) return at;
    }
    return std::nullopt;
  }
  if (kind_ != db::BackupSchedule::kCron) return std::nullopt;
  // Start a few hours back in local time (offsets change by up to that), and
  // keep the first match that is after `t` in real time.
  std::optional<std::chrono::local_seconds> candidate =
      cron_->NextAfter(local - std::chrono::hours(3));
  const std::chrono::local_seconds horizon = local + days(5 * 366);
  for (; candidate && *candidate < horizon;) {
    const auto minute_of_day = static_cast<int>(
        std::chrono::duration_cast<minutes>(*candidate - std::chrono::floor<days>(*candidate))
            .count());
    if (InWindow(minute_of_day)) {
      const SysSeconds at = to_sys(*candidate);
      if (at > t) return at;
    }
    candidate = cron_->NextAfter(*candidate);
  }
  return std::nullopt;
}

ScheduleSlot BackupSchedulePlan::MakeSlot(const std::string& volume_id, SysSeconds base) const {
  ScheduleSlot slot{.base = base, .start = base, .ends = base + minutes(window_minutes_)};
  if (kind_ == db::BackupSchedule::kCron) {
    SysSeconds ends = base + kCronSlotWithoutWindow;
    if (has_window_) {
      // The window instance holding the match: today's when the match is at
      // or after its start, yesterday's otherwise.
      const date::local_seconds local = zone_->to_local(base);
      const date::local_days day = date::floor<date::days>(local);
      const int minute_of_day =
          static_cast<int>(std::chrono::duration_cast<minutes>(local - day).count());
      date::local_days window_day = day;
      if (minute_of_day < window_start_minute_) window_day -= date::days(1);
      const date::local_seconds window_end =
          window_day + minutes(window_start_minute_) + minutes(window_minutes_);
      ends = zone_->to_sys(window_end, date::choose::earliest);
    }
    if (auto next = NextBase(base)) ends = std::min(ends, *next);
    slot.ends = ends;
  }
  const auto half = std::chrono::duration_cast<seconds>(slot.ends - slot.base).count() / 2;
  if (half > 0) {
    slot.start = base + seconds(static_cast<std::int64_t>(StableHash(volume_id) %
                                                          static_cast<std::uint64_t>(half)));
  }
  return slot;
}

std::optional<ScheduleSlot> BackupSchedulePlan::NextSlot(const std::string& volume_id,
                                                         SysSeconds after) const {
  if (!scheduled()) return std::nullopt;
  // A slot starts at most half its window after its base: start from the
  // bases one window before (a cron slot ends by the next match).
  const minutes lookback = kind_ == db::BackupSchedule::kCron
                               ? minutes(has_window_ ? window_minutes_ : 60) + minutes(1)
                               : minutes(days(kind_ == db::BackupSchedule::kWeekly ? 8 : 2));
  std::optional<SysSeconds> base = NextBase(after - lookback);
  for (int guard = 0; base && guard < 100'000; ++guard) {
    const ScheduleSlot slot = MakeSlot(volume_id, *base);
    if (slot.start > after) return slot;
    base = NextBase(*base);
  }
  return std::nullopt;
}

std::optional<ScheduleSlot> BackupSchedulePlan::SlotStartingAt(const std::string& volume_id,
                                                               SysSeconds start) const {
  auto slot = NextSlot(volume_id, start - seconds(1));
  if (slot && slot->start == start) return slot;
  return std::nullopt;
}

BackupScheduleSpec ScheduleSpecOf(const db::Volume& volume) {
  return BackupScheduleSpec{.kind = volume.backup_schedule,
                            .cron = volume.backup_window.cron,
                            .window_start = volume.backup_window.start,
                            .window_minutes = volume.backup_window.minutes,
                            .time_zone = volume.backup_window.time_zone};
}

std::optional<db::Timestamp> NextBackupAt(const BackupSchedulePlan& plan,
                                          const std::string& volume_id,
                                          std::chrono::system_clock::time_point now) {
  auto slot = plan.NextSlot(volume_id, std::chrono::floor<seconds>(now));
  if (!slot) return std::nullopt;
  return db::Timestamp(slot->start);
}

}  // namespace kindling::control
