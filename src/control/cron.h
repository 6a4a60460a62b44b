// Cron expressions for backup schedules: the five fields of crontab(5),
// "minute hour day-of-month month day-of-week", evaluated on civil (local)
// time; the time zone is the caller's business (control/backup_schedule.h).
//
// Each field is `*` or a comma-separated list of `N`, `A-B`, `*/S`, `A-B/S`
// or `N/S` (from N to the field's maximum, every S). Months take jan..dec and
// days of the week sun..sat (case-insensitive); day of week 0 and 7 are both
// Sunday. As in Vixie cron, when both the day of month and the day of week
// are restricted (neither starts with `*`), a day matches when either does.
// The macros @yearly (@annually), @monthly, @weekly, @daily (@midnight) and
// @hourly stand for their usual expressions. No seconds field, no `L`, `W`,
// `#` or `?`.
#pragma once

#include <bitset>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace kindling::control {

class CronExpression {
 public:
  // kInvalidArgument naming the field and the problem, e.g.
  // "cron field 2 (hour): 24 is out of range 0-23", or when the expression
  // can never match (e.g. "0 0 30 2 *").
  [[nodiscard]] static Result<CronExpression> Parse(std::string_view text);

  // Whether the civil minute holding `t` matches.
  [[nodiscard]] bool Matches(std::chrono::local_seconds t) const;

  // The first whole civil minute strictly after `t` that matches; nullopt
  // when none within five years (Parse refuses expressions that never do).
  [[nodiscard]] std::optional<std::chrono::local_seconds> NextAfter(
      std::chrono::local_seconds t) const;

  // The expression as given (macros unexpanded).
  const std::string& text() const { return text_; }

 private:
  [[nodiscard]] bool DayMatches(std::chrono::local_days day) const;

  std::string text_;
  std::bitset<60> minutes_;
  std::bitset<24> hours_;
  std::bitset<32> days_of_month_;  // 1..31
  std::bitset<13> months_;         // 1..12
  std::bitset<7> days_of_week_;    // 0 = Sunday
  bool day_of_month_star_ = false;
  bool day_of_week_star_ = false;
};

}  // namespace kindling::control
