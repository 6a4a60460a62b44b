// A volume's policy over its backup rows (control/retention.h): keep_last is
// the reference's backup_retention_count, pinned and pre-delete backups stay
// outside the rules, a backup in use counts in them but is not dropped.
#include "control/retention.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

namespace kindling::control {
namespace {

using namespace std::chrono;

db::RetentionInput Input(const std::string& id, int days_ago, bool in_use = false,
                         db::BackupKind kind = db::BackupKind::kScheduled, bool pinned = false) {
  db::RetentionInput in;
  in.backup.id = id;
  in.backup.kind = kind;
  in.backup.pinned = pinned;
  in.backup.completed_at =
      time_point_cast<microseconds>(sys_days(2026y / June / 30) + hours(3) - days(days_ago));
  in.in_use = in_use;
  return in;
}

TEST(RetentionPlanTest, KeepLastIsTheRetentionCountAndProtectionsApply) {
  db::Volume volume;
  volume.backup_retention_count = 2;
  volume.backup_keep.monthly = 2;
  std::vector<db::RetentionInput> inputs = {
      Input("d0", 0),
      Input("d1", 1, /*in_use=*/false, db::BackupKind::kPreDelete),
      Input("d2", 2),
      Input("d3", 3),
      Input("d40", 40, /*in_use=*/true),  // a restore's source, in May
      Input("d45", 45),                   // May's newest but for d40
      Input("d80", 80),                   // April
  };
  const auto plan = PlanRetention(volume, std::move(inputs));
  ASSERT_EQ(plan.size(), 7u);
  std::vector<std::pair<std::string, std::vector<std::string>>> got;
  for (const auto& e : plan) {
    got.emplace_back(e.backup.id,
                     e.decision.keep ? e.decision.reasons : std::vector<std::string>{"DROP"});
  }
  const std::vector<std::pair<std::string, std::vector<std::string>>> expected = {
      {"d0", {"last", "monthly"}},
      {"d1", {"pre_delete"}},  // outside the rules: d2 is the second "last"
      {"d2", {"last"}},
      {"d3", {"DROP"}},
      {"d40", {"monthly"}},  // May's newest: in use or not
      {"d45", {"DROP"}},
      {"d80", {"DROP"}},  // two months kept already
  };
  EXPECT_EQ(got, expected);
  EXPECT_EQ(RetentionPolicyOf(volume).keep_last, 2);
}

TEST(RetentionPlanTest, ABackupInUseIsKeptWhenTheRulesWouldDropIt) {
  db::Volume volume;
  volume.backup_retention_count = 1;
  const auto plan = PlanRetention(
      volume, {Input("new", 0), Input("old", 9, /*in_use=*/true), Input("older", 10)});
  ASSERT_EQ(plan.size(), 3u);
  EXPECT_EQ(plan[0].decision.reasons, std::vector<std::string>{"last"});
  EXPECT_TRUE(plan[1].decision.keep);
  EXPECT_EQ(plan[1].decision.reasons, std::vector<std::string>{"in_use"});
  EXPECT_FALSE(plan[2].decision.keep);
}

// An operator's pin keeps a backup whatever the rules, and outside them: it
// neither uses up keep_last nor fills its day, so the rules keep what they
// would keep without it.
TEST(RetentionPlanTest, PinnedBackupsAreKeptOutsideTheRules) {
  db::Volume volume;
  volume.backup_retention_count = 1;
  volume.backup_keep.daily = 2;
  constexpr bool kPinned = true;
  const auto plan = PlanRetention(
      volume,
      {Input("d0", 0, false, db::BackupKind::kScheduled, kPinned), Input("d0b", 0), Input("d1", 1),
       Input("d2", 2, false, db::BackupKind::kManual, kPinned), Input("d3", 3),
       Input("d4", 4, false, db::BackupKind::kPreDelete, kPinned), Input("d5", 5)});
  std::vector<std::pair<std::string, std::vector<std::string>>> got;
  for (const auto& e : plan) {
    got.emplace_back(e.backup.id,
                     e.decision.keep ? e.decision.reasons : std::vector<std::string>{"DROP"});
  }
  // d0b and d0 are of the same time (ties sort by id, descending); d0 took
  // neither rule. d4 is pinned and pre-delete: the operator's reason shows.
  const std::vector<std::pair<std::string, std::vector<std::string>>> expected = {
      {"d0b", {"last", "daily"}}, {"d0", {"pinned"}}, {"d1", {"daily"}}, {"d2", {"pinned"}},
      {"d3", {"DROP"}},           {"d4", {"pinned"}}, {"d5", {"DROP"}},
  };
  EXPECT_EQ(got, expected);
  // Unpinned, d0 and d2 are dropped by the same rules (d0b, d1 fill them).
  const auto unpinned =
      PlanRetention(volume, {Input("d0", 0), Input("d0b", 0), Input("d1", 1), Input("d2", 2)});
  ASSERT_EQ(unpinned.size(), 4u);
  EXPECT_EQ(unpinned[0].decision.reasons, (std::vector<std::string>{"last", "daily"}));
  EXPECT_FALSE(unpinned[1].decision.keep);
  EXPECT_FALSE(unpinned[3].decision.keep);
}

}  // namespace
}  // namespace kindling::control
