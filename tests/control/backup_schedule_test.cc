// A volume's backup slots (control/backup_schedule.h): daily, weekly and cron
// schedules, time windows and zones, the spread, and the errors.
#include "control/backup_schedule.h"

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <set>

namespace kindling::control {
namespace {

using namespace std::chrono;

SysSeconds Utc(int y, unsigned mo, unsigned d, int h = 0, int mi = 0) {
  return sys_seconds(sys_days(year(y) / mo / d)) + hours(h) + minutes(mi);
}

BackupSchedulePlan CompileOrDie(const BackupScheduleSpec& spec) {
  auto plan = BackupSchedulePlan::Compile(spec);
  EXPECT_TRUE(plan) << plan.error().message();
  return *plan;
}

TEST(BackupScheduleTest, DailyWithoutAWindowSpreadsOverTheFirstHalfOfTheDay) {
  const auto plan = CompileOrDie({.kind = db::BackupSchedule::kDaily});
  auto slot = plan.NextSlot("vol-a", Utc(2026, 12, 3, 0, 0));
  ASSERT_TRUE(slot);
  EXPECT_EQ(slot->base, Utc(2026, 12, 3)) << "today's slot when its start is still ahead";
  EXPECT_LT(slot->start - slot->base, hours(12));
  EXPECT_EQ(slot->ends, Utc(2026, 12, 4));
  // The next one is a day later, at the same time of day.
  auto next = plan.NextSlot("vol-a", slot->start);
  ASSERT_TRUE(next);
  EXPECT_EQ(next->start - slot->start, hours(24));
  EXPECT_EQ(plan.SlotStartingAt("vol-a", next->start)->base, Utc(2026, 12, 4));
  EXPECT_FALSE(plan.SlotStartingAt("vol-a", next->start + seconds(1)));
}

TEST(BackupScheduleTest, AWindowInATimeZone) {
  // 01:00-03:00 in Paris is 00:00-02:00 UTC in winter, 23:00-01:00 in summer.
  const auto plan = CompileOrDie({.kind = db::BackupSchedule::kDaily,
                                  .window_start = "01:00",
                                  .window_minutes = 120,
                                  .time_zone = "Europe/Paris"});
  auto winter = plan.NextSlot("vol-a", Utc(2026, 12, 3, 12, 0));
  ASSERT_TRUE(winter);
  EXPECT_EQ(winter->base, Utc(2026, 12, 4, 0, 0));
  EXPECT_EQ(winter->ends, Utc(2026, 12, 4, 2, 0));
  EXPECT_LT(winter->start, Utc(2026, 12, 4, 1, 0)) << "within the first half";
  auto summer = plan.NextSlot("vol-a", Utc(2027, 7, 3, 12, 0));
  ASSERT_TRUE(summer);
  EXPECT_EQ(summer->base, Utc(2027, 7, 3, 23, 0));
  // The day the clocks go forward (2027-03-28, 02:00 -> 03:00): a 02:30 start
  // that does not exist runs at the change, 01:00 UTC.
  const auto gap = CompileOrDie(
      {.kind = db::BackupSchedule::kDaily, .window_start = "02:30", .time_zone = "Europe/Paris"});
  EXPECT_EQ(gap.NextSlot("v", Utc(2027, 3, 27, 12, 0))->base, Utc(2027, 3, 28, 1, 0));
  // The day they go back (2027-10-31, 03:00 -> 02:00): 02:30 happens twice,
  // the slot runs once, at the first.
  auto first = gap.NextSlot("v", Utc(2027, 10, 30, 12, 0));
  ASSERT_TRUE(first);
  EXPECT_EQ(first->base, Utc(2027, 10, 31, 0, 30));
  EXPECT_EQ(gap.NextSlot("v", first->start)->base, Utc(2027, 11, 1, 1, 30));
}

TEST(BackupScheduleTest, WeeklyRunsOnMondays) {
  const auto plan = CompileOrDie({.kind = db::BackupSchedule::kWeekly, .window_start = "22:00"});
  auto slot = plan.NextSlot("vol-a", Utc(2026, 12, 3));  // a Thursday
  ASSERT_TRUE(slot);
  EXPECT_EQ(slot->base, Utc(2026, 12, 7, 22, 0));
  EXPECT_EQ(slot->ends, Utc(2026, 12, 7, 23, 0));
  EXPECT_EQ(plan.NextSlot("vol-a", slot->start)->base, Utc(2026, 12, 14, 22, 0));
}

TEST(BackupScheduleTest, CronSlotsEndAtTheNextMatchOrTheWindow) {
  const auto hourly = CompileOrDie({.kind = db::BackupSchedule::kCron, .cron = "0 */6 * * *"});
  auto slot = hourly.NextSlot("vol-a", Utc(2026, 12, 3, 7, 0));
  ASSERT_TRUE(slot);
  EXPECT_EQ(slot->base, Utc(2026, 12, 3, 12, 0));
  EXPECT_EQ(slot->ends, Utc(2026, 12, 3, 13, 0)) << "60 minutes without a window";
  const auto every_10 = CompileOrDie({.kind = db::BackupSchedule::kCron, .cron = "*/10 * * * *"});
  slot = every_10.NextSlot("vol-a", Utc(2026, 12, 3, 7, 1));
  ASSERT_TRUE(slot);
  EXPECT_EQ(slot->ends - slot->base, minutes(10)) << "the next match comes first";
  // Hourly, but only inside 23:00-02:00 (a window across midnight).
  const auto night = CompileOrDie({.kind = db::BackupSchedule::kCron,
                                   .cron = "15 * * * *",
                                   .window_start = "23:00",
                                   .window_minutes = 180});
  std::vector<SysSeconds> bases;
  SysSeconds t = Utc(2026, 12, 3, 12, 0);
  for (int i = 0; i < 4; ++i) {
    auto s = night.NextSlot("vol-a", t);
    ASSERT_TRUE(s);
    bases.push_back(s->base);
    t = s->start;
  }
  EXPECT_EQ(bases, (std::vector<SysSeconds>{Utc(2026, 12, 3, 23, 15), Utc(2026, 12, 4, 0, 15),
                                            Utc(2026, 12, 4, 1, 15), Utc(2026, 12, 4, 23, 15)}));
  EXPECT_EQ(night.NextSlot("vol-a", Utc(2026, 12, 4, 1, 0))->ends, Utc(2026, 12, 4, 2, 0));
}

TEST(BackupScheduleTest, AThousandVolumesDoNotStartTogether) {
  const auto plan = CompileOrDie(
      {.kind = db::BackupSchedule::kDaily, .window_start = "02:00", .window_minutes = 60});
  std::map<SysSeconds, int> per_second;
  for (int i = 0; i < 1000; ++i) {
    auto slot = plan.NextSlot("0190c0de-0000-7000-8000-" + std::to_string(100000000000 + i),
                              Utc(2026, 12, 3));
    ASSERT_TRUE(slot);
    EXPECT_GE(slot->start, Utc(2026, 12, 3, 2, 0));
    EXPECT_LT(slot->start, Utc(2026, 12, 3, 2, 30));
    ++per_second[slot->start];
  }
  int most = 0;
  for (const auto& [second, count] : per_second) most = std::max(most, count);
  EXPECT_GT(per_second.size(), 600u);
  EXPECT_LE(most, 6);
}

TEST(BackupScheduleTest, OffAndManualHaveNoSlots) {
  EXPECT_FALSE(CompileOrDie({.kind = db::BackupSchedule::kOff}).NextSlot("v", Utc(2026, 1, 1)));
  EXPECT_FALSE(CompileOrDie({.kind = db::BackupSchedule::kManual}).NextSlot("v", Utc(2026, 1, 1)));
}

TEST(BackupScheduleTest, BadSettingsNameTheirField) {
  const auto error = [](const BackupScheduleSpec& spec) {
    auto plan = BackupSchedulePlan::Compile(spec);
    EXPECT_FALSE(plan);
    return plan ? std::string() : plan.error().message();
  };
  EXPECT_EQ(error({.kind = db::BackupSchedule::kCron}),
            "backup_schedule \"cron\" needs backup_cron, an expression");
  EXPECT_NE(error({.kind = db::BackupSchedule::kDaily, .cron = "0 * * * *"}).find("backup_cron"),
            std::string::npos);
  EXPECT_EQ(error({.kind = db::BackupSchedule::kCron, .cron = "0 25 * * *"}),
            "backup_cron: cron field 2 (hour): 25 is out of range 0-23");
  EXPECT_NE(error({.kind = db::BackupSchedule::kDaily, .window_start = "24:00"})
                .find("backup_window_start"),
            std::string::npos);
  EXPECT_NE(error({.kind = db::BackupSchedule::kDaily, .window_start = "1:00"})
                .find("backup_window_start"),
            std::string::npos);
  EXPECT_NE(error({.kind = db::BackupSchedule::kDaily, .window_minutes = 1441})
                .find("backup_window_minutes"),
            std::string::npos);
  EXPECT_NE(error({.kind = db::BackupSchedule::kCron,
                   .cron = "15 3 * * *",
                   .window_start = "22:00",
                   .window_minutes = 60})
                .find("never matches inside the backup window"),
            std::string::npos);
  EXPECT_TRUE(BackupSchedulePlan::Compile(
      {.kind = db::BackupSchedule::kWeekly, .window_minutes = 3 * 24 * 60}));
  EXPECT_NE(error({.kind = db::BackupSchedule::kDaily, .time_zone = "Mars/Olympus"})
                .find("backup_time_zone"),
            std::string::npos);
}

}  // namespace
}  // namespace kindling::control
