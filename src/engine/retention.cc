#include "engine/retention.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <optional>

namespace kindling::engine {
namespace {

using std::chrono::days;
using std::chrono::sys_days;
using std::chrono::year_month_day;

// The period of `unix_ms` for each rule: one number per period, equal for
// two times in the same period.
std::int64_t Hour(std::int64_t unix_ms) {
  return unix_ms >= 0 ? unix_ms / 3'600'000 : (unix_ms - 3'599'999) / 3'600'000;
}
sys_days Day(std::int64_t unix_ms) {
  const std::int64_t hours = Hour(unix_ms);
  const std::int64_t d = hours >= 0 ? hours / 24 : (hours - 23) / 24;
  return sys_days(days(d));
}
// ISO 8601 week: weeks start on Monday; the week belongs to the year of its
// Thursday. Numbered as the Monday's day count, which is unique per week.
std::int64_t IsoWeek(std::int64_t unix_ms) {
  const sys_days day = Day(unix_ms);
  const std::chrono::weekday wd(day);
  const unsigned from_monday = (wd.c_encoding() + 6) % 7;  // Monday 0 .. Sunday 6
  return (day - days(from_monday)).time_since_epoch().count();
}
std::int64_t Month(std::int64_t unix_ms) {
  const year_month_day ymd(Day(unix_ms));
  return static_cast<std::int64_t>(static_cast<int>(ymd.year())) * 12 +
         static_cast<unsigned>(ymd.month());
}
std::int64_t Year(std::int64_t unix_ms) {
  return static_cast<int>(year_month_day(Day(unix_ms)).year());
}

struct Rule {
  const char* reason;
  int count;
  std::int64_t (*period)(std::int64_t);  // nullptr: keep_last (every backup its own period)
  std::optional<std::int64_t> last{};
};

}  // namespace

std::vector<RetentionDecision> ApplyRetention(std::vector<RetentionItem> items,
                                              const RetentionPolicy& policy) {
  std::sort(items.begin(), items.end(), [](const RetentionItem& a, const RetentionItem& b) {
    if (a.created_unix_ms != b.created_unix_ms) return a.created_unix_ms > b.created_unix_ms;
    return a.id > b.id;
  });
  std::array<Rule, 6> rules = {{
      {"last", policy.keep_last, nullptr},
      {"hourly", policy.keep_hourly, &Hour},
      {"daily", policy.keep_daily,
       [](std::int64_t ms) -> std::int64_t { return Day(ms).time_since_epoch().count(); }},
      {"weekly", policy.keep_weekly, &IsoWeek},
      {"monthly", policy.keep_monthly, &Month},
      {"yearly", policy.keep_yearly, &Year},
  }};
  std::vector<RetentionDecision> out;
  out.reserve(items.size());
  for (RetentionItem& item : items) {
    RetentionDecision d{.id = std::move(item.id), .created_unix_ms = item.created_unix_ms};
    if (!item.protected_reason.empty()) {
      d.reasons.push_back(std::move(item.protected_reason));
    } else if (policy.empty()) {
      d.reasons.emplace_back("no policy");
    } else {
      for (Rule& rule : rules) {
        if (rule.count <= 0) continue;
        if (rule.period == nullptr) {
          --rule.count;
          d.reasons.emplace_back(rule.reason);
          continue;
        }
        const std::int64_t period = rule.period(d.created_unix_ms);
        if (rule.last == period) continue;
        rule.last = period;
        --rule.count;
        d.reasons.emplace_back(rule.reason);
      }
    }
    d.keep = !d.reasons.empty();
    out.push_back(std::move(d));
  }
  return out;
}

}  // namespace kindling::engine
