// The leader's scheduled backup verification in `kindling serve`: passes run
// only while this process leads; leading, the loop starts one round and
// queues its verify operations, and later passes continue that round.
#include "service/backup_verify_loop.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <thread>

#include "db/backups.h"
#include "db/db_test_util.h"

namespace kindling::service {
namespace {

using namespace std::chrono_literals;

class BackupVerifyLoopTest : public db::DbTest {
 protected:
  void SetUp() override {
    DbTest::SetUp();
    if (HasFatalFailure()) return;
    const std::string server = MakeServer("w1");
    const db::Volume volume = MakeVolume(MakeProject(MakeOrganization()), server);
    auto backup = Must([&](db::Tx& tx) -> Result<db::Backup> {
      KINDLING_ASSIGN_OR_RETURN(auto b,
                                db::CreateBackup(tx, db::NewBackup{.volume_id = volume.id}));
      return db::MarkBackupSucceeded(
          tx, b.id, db::BackupSuccess{.storage_url = "file:///x", .storage_key = "k"});
    });
    ASSERT_TRUE(backup);
    backup_id_ = backup->id;
  }

  // Polls `done` every 10 ms for up to 30 s.
  static bool WaitFor(const std::function<bool()>& done) {
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (done()) return true;
      std::this_thread::sleep_for(10ms);
    }
    return done();
  }
  int Count(const std::string& sql) { return Sql(sql)[0][0].as<int>(); }

  crypto::Key master_key_ = crypto::RandomKey();
  std::string backup_id_;
};

TEST_F(BackupVerifyLoopTest, QueuesOnlyWhileLeadingAndContinuesItsRound) {
  std::atomic<bool> leading{false};
  std::atomic<int> asked{0};
  BackupVerifyLoop loop(
      db(), master_key_, control::BackupVerifySchedule{},
      [&] {
        asked.fetch_add(1);
        return leading.load();
      },
      10ms);
  loop.Start();
  // Passes came and went, none leading: nothing started or queued.
  ASSERT_TRUE(WaitFor([&] { return asked.load() >= 3; }));
  EXPECT_EQ(loop.rounds_started(), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM cluster_audit_events"), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM project_volume_operations"), 0);

  leading = true;
  ASSERT_TRUE(WaitFor([&] { return loop.queued() == 1; }));
  EXPECT_EQ(loop.rounds_started(), 1);
  EXPECT_EQ(Count("SELECT count(*) FROM project_volume_operations WHERE kind = 'verify' "
                  "AND request_metadata->>'backup_id' = '" +
                  backup_id_ + "' AND request_metadata ? 'verify_round'"),
            1);
  // Later passes continue the round (a week long): no second round, and the
  // one backup is queued already.
  const int before = asked.load();
  ASSERT_TRUE(WaitFor([&] { return asked.load() >= before + 3; }));
  loop.Stop();
  EXPECT_EQ(loop.rounds_started(), 1);
  EXPECT_EQ(loop.queued(), 1);
  EXPECT_EQ(Count("SELECT count(*) FROM cluster_audit_events "
                  "WHERE action = 'backup.verify_round.started'"),
            1);
}

TEST_F(BackupVerifyLoopTest, OffRunsNoPasses) {
  std::atomic<int> asked{0};
  control::BackupVerifySchedule off;
  off.every = 0s;
  BackupVerifyLoop loop(
      db(), master_key_, off,
      [&] {
        asked.fetch_add(1);
        return true;
      },
      1ms);
  loop.Start();
  loop.Stop();
  EXPECT_EQ(asked.load(), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM project_volume_operations"), 0);
}

}  // namespace
}  // namespace kindling::service
