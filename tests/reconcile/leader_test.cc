#include "reconcile/leader.h"

#include <nlohmann/json.hpp>

#include "db/servers.h"
#include "reconcile_test_base.h"
#include "testutil/sparse_image.h"

namespace kindling::reconcile {
namespace {

using std::chrono::milliseconds;

class LeaderTest : public ReconcileTest {
 protected:
  // Claims `operation_id`'s server's next operation as a worker that will
  // never renew: what a SIGKILLed worker leaves behind.
  db::Operation ClaimAsDeadWorker(const std::string& server_id) {
    auto claimed = Must([&](db::Tx& tx) {
      return db::ClaimNextOperation(tx, server_id, NewUuidV4(), milliseconds(100));
    });
    EXPECT_TRUE(claimed && *claimed);
    std::this_thread::sleep_for(milliseconds(200));
    return claimed && *claimed ? **claimed : db::Operation{};
  }

  void BackdateHeartbeat(const std::string& server_id, int seconds) {
    Sql("UPDATE servers SET last_heartbeat_at = now() - interval '" + std::to_string(seconds) +
        " seconds' WHERE id = '" + server_id + "'");
  }
};

TEST_F(LeaderTest, MarksSilentServerDeadAndHeartbeatRevivesIt) {
  const std::string server = MakeServer("silent");
  const std::string fresh = MakeServer("fresh");
  BackdateHeartbeat(server, 10);
  Leader leader(db(), FastLeader());
  auto report = leader.SweepOnce();
  ASSERT_TRUE(report) << report.error().message();
  EXPECT_EQ(report->servers_marked_dead, std::vector<std::string>{server});
  auto dead = Must([&](db::Tx& tx) { return db::GetServer(tx, server); });
  EXPECT_EQ(dead->status, db::ServerStatus::kDead);
  EXPECT_EQ(Must([&](db::Tx& tx) { return db::GetServer(tx, fresh); })->status,
            db::ServerStatus::kActive);

  ASSERT_TRUE(Must([&](db::Tx& tx) { return db::Heartbeat(tx, server); }));
  EXPECT_EQ(Must([&](db::Tx& tx) { return db::GetServer(tx, server); })->status,
            db::ServerStatus::kActive);
}

TEST_F(LeaderTest, ExpiredRestoreLeaseIsRequeuedOnAnotherEligibleWorker) {
  Worker& a = StartWorker(FastOptions("a"));
  const db::Volume volume = MakePinnedVolume(a.server_id());
  ASSERT_TRUE(WaitFor([&] { return std::filesystem::exists(a.ImageOf(volume.id)); }));
  const db::QueuedOperation backup = QueueBackup(volume);
  ASSERT_EQ(WaitFinished(backup.operation.id).status, db::OperationStatus::kSucceeded);

  // The restore goes to server "b", whose worker dies right after claiming.
  const std::string b = MakeServer("b");
  const db::QueuedOperation restore = Queue({.volume_id = volume.id,
                                             .kind = db::OperationKind::kRestore,
                                             .server_id = b,
                                             .backup_id = backup.operation.backup_id,
                                             .target_server_id = b});
  ClaimAsDeadWorker(b);

  Leader leader(db(), FastLeader());
  auto report = leader.SweepOnce();
  ASSERT_TRUE(report) << report.error().message();
  EXPECT_EQ(report->requeued, std::vector<std::string>{restore.operation.id});
  const db::Operation done = WaitFinished(restore.operation.id);
  ASSERT_EQ(done.status, db::OperationStatus::kSucceeded) << done.error.value_or("");
  EXPECT_EQ(done.server_id.value_or(""), a.server_id());
  EXPECT_EQ(done.attempts, 2);
  EXPECT_EQ(GetVolume(volume.id).server_id.value_or(""), a.server_id());
}

TEST_F(LeaderTest, ExpiredRestoreToARequestedTargetNeverLandsElsewhere) {
  Worker& a = StartWorker(FastOptions("a"));
  const db::Volume volume = MakePinnedVolume(a.server_id());
  ASSERT_TRUE(WaitFor([&] { return std::filesystem::exists(a.ImageOf(volume.id)); }));
  const db::QueuedOperation backup = QueueBackup(volume);
  ASSERT_EQ(WaitFinished(backup.operation.id).status, db::OperationStatus::kSucceeded);

  // The operator chose server "b"; its worker dies right after claiming and
  // stops heartbeating, while "a" stays eligible.
  const std::string b = MakeServer("b");
  const db::QueuedOperation restore =
      Queue({.volume_id = volume.id,
             .kind = db::OperationKind::kRestore,
             .server_id = b,
             .backup_id = backup.operation.backup_id,
             .target_server_id = b,
             .extra_request_metadata_json = R"({"target_requested": true})"});
  EXPECT_TRUE(restore.operation.target_requested);
  ClaimAsDeadWorker(b);
  BackdateHeartbeat(b, 60);

  Leader leader(db(), FastLeader());
  auto report = leader.SweepOnce();
  ASSERT_TRUE(report) << report.error().message();
  EXPECT_TRUE(report->requeued.empty());
  EXPECT_EQ(report->failed, std::vector<std::string>{restore.operation.id});
  const db::Operation op = GetOperation(restore.operation.id);
  EXPECT_EQ(op.status, db::OperationStatus::kFailed);
  EXPECT_NE(op.error.value_or("").find("selected target server " + b), std::string::npos)
      << op.error.value_or("");
  // The volume stays usable where it was.
  const db::Volume after = GetVolume(volume.id);
  EXPECT_EQ(after.server_id.value_or(""), a.server_id());
  EXPECT_EQ(after.status, db::VolumeStatus::kDetached);
  EXPECT_TRUE(std::filesystem::exists(a.ImageOf(volume.id)));
}

TEST_F(LeaderTest, ExpiredBackupOnDeadServerFailsWithClearError) {
  const std::string c = MakeServer("c");
  const db::Volume volume = MakePinnedVolume(c);
  const db::QueuedOperation backup = QueueBackup(volume);
  ClaimAsDeadWorker(c);
  BackdateHeartbeat(c, 10);

  Leader leader(db(), FastLeader());
  auto report = leader.SweepOnce();
  ASSERT_TRUE(report) << report.error().message();
  EXPECT_EQ(report->failed, std::vector<std::string>{backup.operation.id});
  const db::Operation op = GetOperation(backup.operation.id);
  EXPECT_EQ(op.status, db::OperationStatus::kFailed);
  EXPECT_NE(op.error.value_or("").find("dead"), std::string::npos) << op.error.value_or("");
  auto row = Must([&](db::Tx& tx) { return db::GetBackup(tx, *backup.operation.backup_id); });
  EXPECT_EQ(row->status, db::BackupStatus::kFailed);
  const db::Volume after = GetVolume(volume.id);
  EXPECT_EQ(after.status, db::VolumeStatus::kDetached);
  EXPECT_EQ(after.last_error, op.error);
}

TEST_F(LeaderTest, ExpiredLeaseFailsAfterMaxAttempts) {
  const std::string c = MakeServer("c");
  const db::Volume volume = MakePinnedVolume(c);
  const db::QueuedOperation backup = QueueBackup(volume);
  LeaderOptions options = FastLeader();
  options.max_attempts = 2;
  Leader leader(db(), options);
  ClaimAsDeadWorker(c);
  ASSERT_TRUE(leader.SweepOnce());
  EXPECT_EQ(GetOperation(backup.operation.id).status, db::OperationStatus::kPending);
  ClaimAsDeadWorker(c);
  auto report = leader.SweepOnce();
  ASSERT_TRUE(report);
  const db::Operation op = GetOperation(backup.operation.id);
  EXPECT_EQ(op.status, db::OperationStatus::kFailed);
  EXPECT_NE(op.error.value_or("").find("2 attempts"), std::string::npos) << op.error.value_or("");
}

TEST_F(LeaderTest, KilledWorkerBackupResumesOnRestartWithSameManifestId) {
  auto options = FastOptions("a");
  Worker& a = StartWorker(options);
  const db::Volume volume = MakePinnedVolume(a.server_id(), 2);
  ASSERT_TRUE(WaitFor([&] { return std::filesystem::exists(a.ImageOf(volume.id)); }));
  testutil::PatchFile(a.ImageOf(volume.id), 1u << 20, testutil::RandomData(24u << 20, 3));

  // Slow the store down so the crash lands mid-backup.
  faulty_->SetRule([](testutil::StoreOp op, std::string_view) -> std::optional<Error> {
    if (op == testutil::StoreOp::kPut) std::this_thread::sleep_for(milliseconds(100));
    return std::nullopt;
  });
  const db::QueuedOperation backup = QueueBackup(volume);
  ASSERT_TRUE(WaitFor([&] { return faulty_->calls(testutil::StoreOp::kPut) >= 3; }));
  workers_.front()->Abandon();  // SIGKILL stand-in: rows untouched
  workers_.clear();
  EXPECT_EQ(GetOperation(backup.operation.id).status, db::OperationStatus::kRunning);
  faulty_->Clear();

  Leader leader(db(), FastLeader());
  leader.Start();
  const auto killed_at = std::chrono::steady_clock::now();
  StartWorker(options);  // the same server restarts
  const db::Operation done = WaitFinished(backup.operation.id);
  leader.Stop();
  ASSERT_EQ(done.status, db::OperationStatus::kSucceeded) << done.error.value_or("");
  EXPECT_LT(std::chrono::steady_clock::now() - killed_at, std::chrono::seconds(60));
  EXPECT_EQ(done.attempts, 2);
  auto listed = repository_->ListBackups(volume.id);
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ(listed->front().backup_id, *backup.operation.backup_id);
}

TEST_F(LeaderTest, QueuesScheduledBackupForDailyVolume) {
  Worker& a = StartWorker(FastOptions("a"));
  const db::Volume daily = MakePinnedVolume(a.server_id());
  const db::Volume manual = MakePinnedVolume(a.server_id());
  ASSERT_TRUE(WaitFor([&] { return GetVolume(daily.id).health == db::VolumeHealth::kHealthy; }));
  ASSERT_TRUE(Must([&](db::Tx& tx) {
    return db::UpdateVolumeSettings(tx, daily.id, {.backup_schedule = db::BackupSchedule::kDaily});
  }));

  Leader leader(db(), FastLeader());
  auto report = leader.SweepOnce();
  ASSERT_TRUE(report) << report.error().message();
  EXPECT_EQ(report->scheduled, std::vector<std::string>{daily.id});
  // Nothing twice while one is in flight or fresh.
  report = leader.SweepOnce();
  ASSERT_TRUE(report);
  EXPECT_TRUE(report->scheduled.empty());

  ASSERT_TRUE(WaitFor([&] {
    auto rows = Must([&](db::Tx& tx) { return db::ListBackups(tx, daily.id); });
    return rows && rows->size() == 1 && rows->front().status == db::BackupStatus::kSucceeded;
  }));
  auto rows = Must([&](db::Tx& tx) { return db::ListBackups(tx, daily.id); });
  EXPECT_EQ(rows->front().kind, db::BackupKind::kScheduled);
  report = leader.SweepOnce();
  ASSERT_TRUE(report);
  EXPECT_TRUE(report->scheduled.empty());

  // A day later it is due again.
  LeaderOptions later = FastLeader();
  later.now = [] { return std::chrono::system_clock::now() + std::chrono::hours(25); };
  Leader tomorrow(db(), later);
  report = tomorrow.SweepOnce();
  ASSERT_TRUE(report);
  EXPECT_EQ(report->scheduled, std::vector<std::string>{daily.id});
}

TEST_F(LeaderTest, OnlyOneProcessLeads) {
  Leader first(db(), FastLeader());
  Leader second(db(), FastLeader());
  first.Start();
  ASSERT_TRUE(WaitFor([&] { return first.is_leader(); }, milliseconds(5'000)));
  second.Start();
  std::this_thread::sleep_for(milliseconds(600));
  EXPECT_FALSE(second.is_leader());
  first.Stop();
  EXPECT_TRUE(WaitFor([&] { return second.is_leader(); }, milliseconds(5'000)));
  second.Stop();
}

}  // namespace
}  // namespace kindling::reconcile
