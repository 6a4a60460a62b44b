// Cron expressions (control/cron.h): parsing, errors, and the next match.
#include "control/cron.h"

#include <gtest/gtest.h>

#include <chrono>

namespace kindling::control {
namespace {

using namespace std::chrono;

local_seconds At(int y, unsigned mo, unsigned d, int h = 0, int mi = 0) {
  return local_seconds(local_days(year(y) / mo / d)) + hours(h) + minutes(mi);
}

CronExpression ParseOrDie(std::string_view text) {
  auto cron = CronExpression::Parse(text);
  EXPECT_TRUE(cron) << text << ": " << cron.error().message();
  return *cron;
}

TEST(CronTest, NextAfterFollowsEachField) {
  const CronExpression every_15 = ParseOrDie("*/15 * * * *");
  EXPECT_EQ(every_15.NextAfter(At(2026, 3, 1, 10, 0)), At(2026, 3, 1, 10, 15));
  EXPECT_EQ(every_15.NextAfter(At(2026, 3, 1, 10, 14) + seconds(59)), At(2026, 3, 1, 10, 15));
  EXPECT_EQ(every_15.NextAfter(At(2026, 3, 1, 23, 45)), At(2026, 3, 2, 0, 0));

  const CronExpression nightly = ParseOrDie("30 2 * * *");
  EXPECT_EQ(nightly.NextAfter(At(2026, 12, 31, 3, 0)), At(2027, 1, 1, 2, 30));

  // Weekdays at 01:05 and 13:05 (names, ranges and lists).
  const CronExpression weekdays = ParseOrDie("5 1,13 * * Mon-Fri");
  EXPECT_EQ(weekdays.NextAfter(At(2026, 12, 4, 13, 5)), At(2026, 12, 7, 1, 5));  // Fri -> Mon

  // Both days restricted: either matches (the 1st, or any Sunday).
  const CronExpression either = ParseOrDie("0 0 1 * sun");
  EXPECT_EQ(either.NextAfter(At(2026, 12, 1, 0, 0)), At(2026, 12, 6, 0, 0));
  EXPECT_EQ(either.NextAfter(At(2026, 12, 27, 0, 0)), At(2027, 1, 1, 0, 0));

  // 7 is Sunday too; 29 February waits for a leap year.
  EXPECT_EQ(ParseOrDie("0 12 * * 7").NextAfter(At(2026, 12, 1)), At(2026, 12, 6, 12, 0));
  EXPECT_EQ(ParseOrDie("0 0 29 feb *").NextAfter(At(2026, 1, 1)), At(2028, 2, 29));
  // "N/S": from N to the maximum.
  EXPECT_EQ(ParseOrDie("10/20 * * * *").NextAfter(At(2026, 1, 1, 0, 31)), At(2026, 1, 1, 0, 50));
}

TEST(CronTest, MacrosAndMatches) {
  EXPECT_EQ(ParseOrDie("@daily").NextAfter(At(2026, 5, 5, 8, 0)), At(2026, 5, 6));
  EXPECT_EQ(ParseOrDie("@weekly").NextAfter(At(2026, 12, 1)), At(2026, 12, 6));
  EXPECT_EQ(ParseOrDie("@monthly").NextAfter(At(2026, 12, 1)), At(2027, 1, 1));
  EXPECT_EQ(ParseOrDie("@yearly").NextAfter(At(2026, 12, 1)), At(2027, 1, 1));
  EXPECT_EQ(ParseOrDie("@hourly").NextAfter(At(2026, 12, 1, 5, 0)), At(2026, 12, 1, 6, 0));
  const CronExpression cron = ParseOrDie("0-10/5 4 * jan-mar *");
  EXPECT_TRUE(cron.Matches(At(2026, 2, 10, 4, 5) + seconds(30)));
  EXPECT_FALSE(cron.Matches(At(2026, 2, 10, 4, 6)));
  EXPECT_FALSE(cron.Matches(At(2026, 4, 10, 4, 5)));
}

TEST(CronTest, BadExpressionsNameTheField) {
  const auto error = [](std::string_view text) {
    auto cron = CronExpression::Parse(text);
    EXPECT_FALSE(cron) << text;
    return cron ? std::string() : cron.error().message();
  };
  EXPECT_EQ(error("0 24 * * *"), "cron field 2 (hour): 24 is out of range 0-23");
  EXPECT_EQ(error("60 * * * *"), "cron field 1 (minute): 60 is out of range 0-59");
  EXPECT_NE(error("* * * *").find("has 4"), std::string::npos);
  EXPECT_NE(error("* * * * * *").find("has 6"), std::string::npos);
  EXPECT_NE(error("*/0 * * * *").find("step"), std::string::npos);
  EXPECT_NE(error("5-1 * * * *").find("backwards"), std::string::npos);
  EXPECT_NE(error("x * * * *").find("not a number"), std::string::npos);
  EXPECT_NE(error("1,,2 * * * *").find("empty"), std::string::npos);
  EXPECT_NE(error("0 0 * smarch *").find("month"), std::string::npos);
  EXPECT_NE(error("0 0 30 2 *").find("never matches"), std::string::npos);
  EXPECT_NE(error("@often").find("macro"), std::string::npos);
  EXPECT_NE(error("").find("has 0"), std::string::npos);
}

}  // namespace
}  // namespace kindling::control
