#include "control/cron.h"

#include <array>
#include <charconv>
#include <vector>

namespace kindling::control {
namespace {

using std::chrono::days;
using std::chrono::local_days;
using std::chrono::local_seconds;
using std::chrono::minutes;

struct FieldSpec {
  const char* name;
  int min;
  int max;
  // Names accepted for values min, min+1, ... (months and days of week).
  std::array<std::string_view, 12> names{};
};

constexpr std::array<FieldSpec, 5> kFields = {{
    {"minute", 0, 59},
    {"hour", 0, 23},
    {"day of month", 1, 31},
    {"month",
     1,
     12,
     {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}},
    // 7 is Sunday too (folded onto 0 below).
    {"day of week", 0, 7, {"sun", "mon", "tue", "wed", "thu", "fri", "sat"}},
}};

Error FieldError(std::size_t index, const std::string& problem) {
  return Error(ErrorKind::kInvalidArgument, "cron field " + std::to_string(index + 1) + " (" +
                                                kFields[index].name + "): " + problem);
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return out;
}

Result<int> Value(std::size_t index, std::string_view token) {
  const FieldSpec& f = kFields[index];
  const std::string lower = Lower(token);
  for (std::size_t i = 0; i < f.names.size() && !f.names[i].empty(); ++i) {
    if (lower == f.names[i]) return f.min + static_cast<int>(i);
  }
  int v = 0;
  auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), v);
  if (ec != std::errc() || end != token.data() + token.size() || token.empty()) {
    return std::unexpected(FieldError(index, "\"" + std::string(token) + "\" is not a number"));
  }
  if (v < f.min || v > f.max) {
    return std::unexpected(FieldError(index, std::to_string(v) + " is out of range " +
                                                 std::to_string(f.min) + "-" +
                                                 std::to_string(f.max)));
  }
  return v;
}

// Sets the bits of one field; `star` tells whether it starts with '*'.
Result<std::vector<int>> ParseField(std::size_t index, std::string_view text, bool& star) {
  const FieldSpec& f = kFields[index];
  std::vector<int> values;
  star = !text.empty() && text.front() == '*';
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const std::size_t comma = text.find(',', pos);
    const std::string_view item =
        text.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
    if (item.empty()) return std::unexpected(FieldError(index, "an empty list item"));
    std::string_view range = item;
    int step = 1;
    if (const std::size_t slash = item.find('/'); slash != std::string_view::npos) {
      range = item.substr(0, slash);
      const std::string_view step_text = item.substr(slash + 1);
      auto [end, ec] = std::from_chars(step_text.data(), step_text.data() + step_text.size(), step);
      if (ec != std::errc() || end != step_text.data() + step_text.size() || step < 1) {
        return std::unexpected(
            FieldError(index, "step \"" + std::string(step_text) + "\" is not a positive number"));
      }
    }
    int low = f.min;
    int high = f.max;
    if (range == "*") {
      // The whole range.
    } else if (const std::size_t dash = range.find('-'); dash != std::string_view::npos) {
      KINDLING_ASSIGN_OR_RETURN(low, Value(index, range.substr(0, dash)));
      KINDLING_ASSIGN_OR_RETURN(high, Value(index, range.substr(dash + 1)));
      if (low > high) {
        return std::unexpected(
            FieldError(index, "range \"" + std::string(range) + "\" runs backwards"));
      }
    } else {
      KINDLING_ASSIGN_OR_RETURN(low, Value(index, range));
      // "N/S" runs from N to the maximum; a lone N is just N.
      high = item.find('/') != std::string_view::npos ? f.max : low;
    }
    for (int v = low; v <= high; v += step) values.push_back(v);
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  return values;
}

std::string_view ExpandMacro(std::string_view text) {
  const std::string lower = Lower(text);
  if (lower == "@yearly" || lower == "@annually") return "0 0 1 1 *";
  if (lower == "@monthly") return "0 0 1 * *";
  if (lower == "@weekly") return "0 0 * * 0";
  if (lower == "@daily" || lower == "@midnight") return "0 0 * * *";
  if (lower == "@hourly") return "0 * * * *";
  return text;
}

}  // namespace

Result<CronExpression> CronExpression::Parse(std::string_view text) {
  CronExpression cron;
  cron.text_ = std::string(text);
  const std::string_view expanded = ExpandMacro(text);
  if (!expanded.empty() && expanded.front() == '@') {
    return MakeError(ErrorKind::kInvalidArgument,
                     "unknown cron macro \"" + std::string(text) +
                         "\" (use @yearly, @monthly, @weekly, @daily or @hourly)");
  }
  std::vector<std::string_view> fields;
  std::size_t pos = 0;
  while (pos < expanded.size()) {
    while (pos < expanded.size() && (expanded[pos] == ' ' || expanded[pos] == '\t')) ++pos;
    if (pos == expanded.size()) break;
    std::size_t end = pos;
    while (end < expanded.size() && expanded[end] != ' ' && expanded[end] != '\t') ++end;
    fields.push_back(expanded.substr(pos, end - pos));
    pos = end;
  }
  if (fields.size() != 5) {
    return MakeError(ErrorKind::kInvalidArgument,
                     "a cron expression has 5 fields (minute hour day-of-month month "
                     "day-of-week), \"" +
                         std::string(text) + "\" has " + std::to_string(fields.size()));
  }
  for (std::size_t i = 0; i < fields.size(); ++i) {
    bool star = false;
    KINDLING_ASSIGN_OR_RETURN(std::vector<int> values, ParseField(i, fields[i], star));
    for (int v : values) {
      switch (i) {
        case 0:
          cron.minutes_.set(static_cast<std::size_t>(v));
          break;
        case 1:
          cron.hours_.set(static_cast<std::size_t>(v));
          break;
        case 2:
          cron.days_of_month_.set(static_cast<std::size_t>(v));
          break;
        case 3:
          cron.months_.set(static_cast<std::size_t>(v));
          break;
        default:
          cron.days_of_week_.set(static_cast<std::size_t>(v % 7));
          break;
      }
    }
    if (i == 2) cron.day_of_month_star_ = star;
    if (i == 4) cron.day_of_week_star_ = star;
  }
  // A day of month that no chosen month has (e.g. 30 February) never matches;
  // 29 February matches in leap years, found within the search horizon.
  if (!cron.NextAfter(local_seconds{})) {
    return MakeError(ErrorKind::kInvalidArgument,
                     "the cron expression \"" + std::string(text) + "\" never matches");
  }
  return cron;
}

bool CronExpression::DayMatches(local_days day) const {
  const std::chrono::year_month_day ymd{day};
  if (!months_.test(static_cast<unsigned>(ymd.month()))) return false;
  const bool dom = days_of_month_.test(static_cast<unsigned>(ymd.day()));
  const bool dow = days_of_week_.test(std::chrono::weekday{day}.c_encoding());
  if (day_of_month_star_ || day_of_week_star_) return dom && dow;
  return dom || dow;
}

bool CronExpression::Matches(local_seconds t) const {
  const local_days day = std::chrono::floor<days>(t);
  const std::chrono::hh_mm_ss<std::chrono::seconds> time{t - day};
  return DayMatches(day) && hours_.test(static_cast<std::size_t>(time.hours().count())) &&
         minutes_.test(static_cast<std::size_t>(time.minutes().count()));
}

std::optional<local_seconds> CronExpression::NextAfter(local_seconds t) const {
  // The next whole minute, then day by day: within a matching day, the first
  // matching hour and minute at or after the start.
  local_seconds start = std::chrono::floor<minutes>(t) + minutes(1);
  local_days day = std::chrono::floor<days>(start);
  const local_days horizon = day + days(5 * 366);
  for (; day < horizon; day += days(1)) {
    if (!DayMatches(day)) {
      start = local_seconds(day + days(1));
      continue;
    }
    const auto from = std::chrono::duration_cast<minutes>(start - day).count();
    for (auto m = from; m < 24 * 60; ++m) {
      if (hours_.test(static_cast<std::size_t>(m / 60)) &&
          minutes_.test(static_cast<std::size_t>(m % 60))) {
        return local_seconds(day) + minutes(m);
      }
    }
    start = local_seconds(day + days(1));
  }
  return std::nullopt;
}

}  // namespace kindling::control
