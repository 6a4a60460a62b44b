// Retention policies (engine/retention.h): a year of backups, each rule's
// periods, protected backups, and the empty policy.
#include "engine/retention.h"

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace kindling::engine {
namespace {

using namespace std::chrono;

std::int64_t UnixMs(year_month_day day, hours hour = hours(2), minutes minute = minutes(0)) {
  return duration_cast<milliseconds>((sys_days(day) + hour + minute).time_since_epoch()).count();
}
std::string Name(year_month_day d) {
  char text[16];
  std::snprintf(text, sizeof(text), "%04d-%02u-%02u", static_cast<int>(d.year()),
                static_cast<unsigned>(d.month()), static_cast<unsigned>(d.day()));
  return text;
}

// One backup a day at 02:00 UTC through 2025, named by its date.
std::vector<RetentionItem> DailyThrough2025() {
  std::vector<RetentionItem> items;
  for (sys_days d = sys_days(2025y / January / 1); d <= sys_days(2025y / December / 31);
       d += days(1)) {
    items.push_back({.id = Name(year_month_day(d)), .created_unix_ms = UnixMs(year_month_day(d))});
  }
  return items;
}

std::map<std::string, std::vector<std::string>> Kept(const std::vector<RetentionDecision>& ds) {
  std::map<std::string, std::vector<std::string>> kept;
  for (const auto& d : ds)
    if (d.keep) kept[d.id] = d.reasons;
  return kept;
}

TEST(RetentionTest, AYearOfDailyBackupsUnderDailyWeeklyAndMonthlyRules) {
  const auto decisions =
      ApplyRetention(DailyThrough2025(), {.keep_daily = 7, .keep_weekly = 4, .keep_monthly = 6});
  ASSERT_EQ(decisions.size(), 365u);
  EXPECT_EQ(decisions.front().id, "2025-12-31") << "newest first";
  const std::map<std::string, std::vector<std::string>> expected = {
      // 2025-12-31 is a Wednesday: its ISO week began on Monday the 29th.
      {"2025-12-31", {"daily", "weekly", "monthly"}},
      {"2025-12-30", {"daily"}},
      {"2025-12-29", {"daily"}},
      {"2025-12-28", {"daily", "weekly"}},  // Sunday: the newest of its week
      {"2025-12-27", {"daily"}},
      {"2025-12-26", {"daily"}},
      {"2025-12-25", {"daily"}},
      {"2025-12-21", {"weekly"}},
      {"2025-12-14", {"weekly"}},
      {"2025-11-30", {"monthly"}},
      {"2025-10-31", {"monthly"}},
      {"2025-09-30", {"monthly"}},
      {"2025-08-31", {"monthly"}},
      {"2025-07-31", {"monthly"}},
  };
  EXPECT_EQ(Kept(decisions), expected);
  for (const auto& d : decisions) {
    if (!d.keep) {
      EXPECT_TRUE(d.reasons.empty()) << d.id;
    }
  }
}

TEST(RetentionTest, LastAndYearlyOverSeveralYears) {
  std::vector<RetentionItem> items;
  for (int y = 2020; y <= 2025; ++y)
    for (unsigned m : {3u, 9u})
      items.push_back({.id = std::to_string(y) + "-" + std::to_string(m),
                       .created_unix_ms = UnixMs(year(y) / month(m) / 15)});
  const auto kept = Kept(ApplyRetention(items, {.keep_last = 3, .keep_yearly = 3}));
  const std::map<std::string, std::vector<std::string>> expected = {
      {"2025-9", {"last", "yearly"}},
      {"2025-3", {"last"}},
      {"2024-9", {"last", "yearly"}},
      {"2023-9", {"yearly"}},
  };
  EXPECT_EQ(kept, expected);
}

TEST(RetentionTest, HourlyKeepsTheNewestOfEachHour) {
  std::vector<RetentionItem> items;
  for (int quarter = 0; quarter < 20; ++quarter) {  // 00:00 .. 04:45
    items.push_back({.id = "q" + std::to_string(quarter),
                     .created_unix_ms = UnixMs(2025y / June / 1, hours(0), minutes(15 * quarter))});
  }
  const auto kept = Kept(ApplyRetention(items, {.keep_hourly = 3}));
  const std::map<std::string, std::vector<std::string>> expected = {
      {"q19", {"hourly"}},  // 04:45
      {"q15", {"hourly"}},  // 03:45
      {"q11", {"hourly"}},  // 02:45
  };
  EXPECT_EQ(kept, expected);
}

TEST(RetentionTest, ProtectedBackupsAreKeptAndLeftOutOfTheRules) {
  std::vector<RetentionItem> items;
  for (int i = 0; i < 6; ++i) {
    items.push_back(
        {.id = "b" + std::to_string(i), .created_unix_ms = UnixMs(2025y / May / (i + 1))});
  }
  items[5].protected_reason = "pre_delete";  // the newest
  items[1].protected_reason = "pinned";
  const auto kept = Kept(ApplyRetention(items, {.keep_last = 2}));
  const std::map<std::string, std::vector<std::string>> expected = {
      {"b5", {"pre_delete"}},
      {"b4", {"last"}},
      {"b3", {"last"}},
      {"b1", {"pinned"}},
  };
  EXPECT_EQ(kept, expected);
}

TEST(RetentionTest, AnEmptyPolicyKeepsEverything) {
  const auto decisions = ApplyRetention(DailyThrough2025(), {});
  ASSERT_EQ(decisions.size(), 365u);
  for (const auto& d : decisions) {
    EXPECT_TRUE(d.keep) << d.id;
    EXPECT_EQ(d.reasons, std::vector<std::string>{"no policy"});
  }
}

TEST(RetentionTest, TiesAreOrderedById) {
  const std::int64_t t = UnixMs(2025y / May / 1);
  const auto decisions = ApplyRetention({{.id = "a", .created_unix_ms = t},
                                         {.id = "c", .created_unix_ms = t},
                                         {.id = "b", .created_unix_ms = t}},
                                        {.keep_last = 1});
  ASSERT_EQ(decisions.size(), 3u);
  EXPECT_EQ(decisions[0].id, "c");
  EXPECT_TRUE(decisions[0].keep);
  EXPECT_FALSE(decisions[1].keep);
  EXPECT_FALSE(decisions[2].keep);
}

}  // namespace
}  // namespace kindling::engine
