// A year of a daily backup schedule and a retention policy, driven by an
// injected clock: two processes sweep at every tick (each with its own
// database connections, as two `kindling serve` would if the leader lock
// changed hands at every tick), the leader is down for three days, and a
// simulated worker completes each backup and applies the volume's retention
// policy as the real one does (control/retention.h). Checked: exactly one
// backup per slot, one catch-up after the outage, and exactly the backups
// the policy keeps. (Named *Slow: 8,760 ticks of two sweeps take half a
// minute, so it runs in the optimised build only.)
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "control/retention.h"
#include "control/volume_service.h"
#include "crypto/aead.h"
#include "db/backups.h"
#include "db/db_test_util.h"
#include "db/operations.h"
#include "reconcile/leader.h"

namespace kindling::reconcile {
namespace {

using namespace std::chrono;

sys_seconds Utc(int y, unsigned mo, unsigned d, int h = 0, int mi = 0) {
  return sys_seconds(sys_days(year(y) / mo / d)) + hours(h) + minutes(mi);
}

std::string Day(sys_seconds t) {
  const year_month_day ymd{floor<days>(t)};
  char text[16];
  std::snprintf(text, sizeof text, "%04d-%02u-%02u", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
  return text;
}

class BackupScheduleYearTest : public db::DbTest {
 protected:
  struct Clock {
    std::mutex mu;
    sys_seconds now{};
    system_clock::time_point Get() {
      std::lock_guard lock(mu);
      return now;
    }
  };

  LeaderOptions LeaderWithClock() {
    LeaderOptions options;
    options.now = [this] { return clock_.Get(); };
    // Heartbeats follow the real clock: the worker stays alive for the test.
    options.silent_after = hours(1);
    return options;
  }

  // What a worker does with each pending backup: it succeeds now, then the
  // retention policy drops what it does not keep.
  void CompletePendingBackups(const std::string& volume_id) {
    const std::string now = db::FormatTimestamp(time_point_cast<microseconds>(clock_.Get()));
    if (!worker_conn_) worker_conn_ = std::make_unique<pqxx::connection>(dsn());
    pqxx::work work(*worker_conn_);
    const pqxx::result pending = work.exec(
        "SELECT id, request_metadata->>'backup_id' FROM project_volume_operations "
        "WHERE status = 'pending' AND kind = 'backup'");
    for (const auto& row : pending) {
      const std::string op = row[0].as<std::string>();
      const std::string backup = row[1].as<std::string>();
      work.exec_params(
          "UPDATE project_volume_backups SET status = 'succeeded', storage_url = 'file:///x', "
          "storage_key = 'k', size_bytes = 1, created_at = $2, started_at = $2, "
          "completed_at = $2 WHERE id = $1",
          backup, now);
      work.exec_params(
          "UPDATE project_volume_operations SET status = 'succeeded', started_at = $2, "
          "completed_at = $2 WHERE id = $1",
          op, now);
      work.exec_params("UPDATE project_volumes SET status = 'detached' WHERE id = $1", volume_id);
    }
    work.commit();
    for (std::size_t i = 0; i < pending.size(); ++i) {
      created_days_.push_back(Day(floor<seconds>(clock_.Get())));
      const auto volume = Must([&](db::Tx& tx) { return db::GetVolume(tx, volume_id); });
      auto inputs = Must([&](db::Tx& tx) { return db::ListRetentionInputs(tx, volume_id); });
      ASSERT_TRUE(volume && inputs);
      for (const auto& entry : control::PlanRetention(*volume, std::move(*inputs))) {
        if (entry.decision.keep) continue;
        MustRun([&](db::Tx& tx) { return db::DeleteBackup(tx, entry.backup.id); });
      }
    }
  }

  Clock clock_;
  std::vector<std::string> created_days_;
  std::unique_ptr<pqxx::connection> worker_conn_;
};

TEST_F(BackupScheduleYearTest, AYearOfDailySlotsWithTwoProcessesAnOutageAndARetentionPolicySlow) {
  clock_.now = Utc(2026, 1, 1);
  const std::string org = MakeOrganization();
  const std::string project = MakeProject(org);
  MakeServer("worker-1");
  const crypto::Key master_key = crypto::RandomKey();
  control::VolumeServiceOptions service_options;
  service_options.now = [this] { return clock_.Get(); };
  control::VolumeService service(db(), master_key, service_options);
  // Daily between 01:00 and 04:00 UTC; keep the newest, 7 days, 4 weeks and
  // 12 months.
  auto created = service.PutVolume(control::Actor{}, project,
                                   db::VolumeSettingsUpdate{
                                       .backup_schedule = db::BackupSchedule::kDaily,
                                       .backup_retention_count = 1,
                                       .backup_keep_daily = 7,
                                       .backup_keep_weekly = 4,
                                       .backup_keep_monthly = 12,
                                       .backup_window_start = "01:00",
                                       .backup_window_minutes = 180,
                                   });
  ASSERT_TRUE(created) << created.error().message;
  const std::string volume_id = created->volume.id;
  ASSERT_TRUE(created->volume.backup_next_at);
  const sys_seconds first = floor<seconds>(*created->volume.backup_next_at);
  EXPECT_EQ(Day(first), "2026-01-01");
  EXPECT_GE(first, Utc(2026, 1, 1, 1, 0));
  EXPECT_LT(first, Utc(2026, 1, 1, 2, 30)) << "in the first half of the window";

  // A second "process": its own pool of connections to the same database.
  auto other_db = db::Database::Open(Options());
  ASSERT_TRUE(other_db) << other_db.error().message();
  Leader a(db(), LeaderWithClock());
  Leader b(**other_db, LeaderWithClock());

  // The outage: nobody sweeps from 2026-07-19 12:00 to 2026-07-22 12:00.
  const sys_seconds outage_from = Utc(2026, 7, 19, 12, 0);
  const sys_seconds outage_to = Utc(2026, 7, 22, 12, 0);
  int scheduled = 0;
  int missed = 0;
  for (sys_seconds t = Utc(2026, 1, 1); t < Utc(2027, 1, 1); t += hours(1)) {
    {
      std::lock_guard lock(clock_.mu);
      clock_.now = t;
    }
    if (t >= outage_from && t < outage_to) continue;
    Result<SweepReport> ra = SweepReport{};
    Result<SweepReport> rb = SweepReport{};
    std::thread other([&] { rb = b.SweepOnce(); });
    ra = a.SweepOnce();
    other.join();
    ASSERT_TRUE(ra) << ra.error().message();
    ASSERT_TRUE(rb) << rb.error().message();
    scheduled += static_cast<int>(ra->scheduled.size() + rb->scheduled.size());
    missed += static_cast<int>(ra->missed.size() + rb->missed.size());
    CompletePendingBackups(volume_id);
    ASSERT_FALSE(HasFatalFailure());
  }

  // One backup per daily slot, except the three slots of the outage (20, 21
  // and 22 July; 19 July's ran in the morning), for which one catch-up ran
  // when the leader came back on 22 July at 12:00.
  EXPECT_EQ(missed, 0);
  EXPECT_EQ(scheduled, 365 - 3 + 1);
  std::map<std::string, int> per_day;
  for (const std::string& day : created_days_) ++per_day[day];
  for (const auto& [day, count] : per_day) EXPECT_EQ(count, 1) << day;
  EXPECT_FALSE(per_day.contains("2026-07-20"));
  EXPECT_FALSE(per_day.contains("2026-07-21"));
  EXPECT_EQ(per_day["2026-07-22"], 1) << "the catch-up";
  // The catch-up ran when the leader came back, not at the next window.
  const pqxx::result catch_up =
      Sql("SELECT count(*) FROM cluster_audit_events WHERE action = 'volume.backup.queued' "
          "AND details->>'catch_up' = 'true'");
  EXPECT_EQ(catch_up[0][0].as<int>(), 1);

  // What the policy keeps on 2027-01-01: the last 7 days, the newest of the
  // last 4 ISO weeks (Mondays 7, 14, 21, 28 December), the newest of each of
  // the last 12 months.
  const std::set<std::string> expected = {"2026-12-25", "2026-12-26", "2026-12-27", "2026-12-28",
                                          "2026-12-29", "2026-12-30", "2026-12-31", "2026-12-20",
                                          "2026-12-13", "2026-11-30", "2026-10-31", "2026-09-30",
                                          "2026-08-31", "2026-07-31", "2026-06-30", "2026-05-31",
                                          "2026-04-30", "2026-03-31", "2026-02-28", "2026-01-31"};
  std::set<std::string> kept;
  auto rows = Must([&](db::Tx& tx) { return db::ListBackups(tx, volume_id, 1000); });
  ASSERT_TRUE(rows);
  for (const db::Backup& backup : *rows) {
    ASSERT_TRUE(backup.completed_at);
    EXPECT_EQ(backup.kind, db::BackupKind::kScheduled);
    kept.insert(Day(floor<seconds>(*backup.completed_at)));
  }
  EXPECT_EQ(kept, expected);
  EXPECT_EQ(rows->size(), expected.size()) << "one backup per kept day";
}

}  // namespace
}  // namespace kindling::reconcile
