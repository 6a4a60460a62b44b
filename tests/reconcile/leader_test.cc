#include "reconcile/leader.h"

#include <atomic>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>

#include "control/backup_schedule.h"
#include "crypto/sha256.h"
#include "db/audit.h"
#include "db/notifications.h"
#include "db/servers.h"
#include "db/workloads.h"
#include "engine/backup.h"
#include "reconcile/workload_reconciler.h"
#include "reconcile_test_base.h"
#include "repo/layout.h"
#include "testutil/sparse_image.h"

namespace kindling::reconcile {
namespace {

using nlohmann::json;
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

  db::ServerStatus StatusOf(const std::string& server_id) {
    auto server = Must([&](db::Tx& tx) { return db::GetServer(tx, server_id); });
    return server ? server->status : db::ServerStatus::kDead;
  }

  // What a worker records while a deployment runs: a running VM holding the
  // volume, its instance running with an address, the deployment running.
  struct RunningWorkload {
    db::Volume volume;
    db::Deployment deployment;
    db::Instance instance;
    db::Vm vm;
  };
  RunningWorkload MakeRunningWorkload(const std::string& server_id) {
    RunningWorkload w;
    w.volume = MakePinnedVolume(server_id);
    auto made = Must([&](db::Tx& tx) -> Status {
      KINDLING_ASSIGN_OR_RETURN(
          db::DeploymentCreated created,
          db::CreateDeployment(
              tx, db::NewDeployment{.project_id = w.volume.project_id, .image = "canary"}));
      KINDLING_ASSIGN_OR_RETURN(w.vm, db::CreateVm(tx, db::NewVm{.server_id = server_id,
                                                                 .project_volume_id = w.volume.id,
                                                                 .runtime = "qemu-microvm-tcg"}));
      KINDLING_ASSIGN_OR_RETURN(w.vm,
                                db::UpdateVm(tx, w.vm.id, {.status = db::VmStatus::kRunning}));
      KINDLING_ASSIGN_OR_RETURN(w.instance,
                                db::CreateInstance(tx, created.deployment.id, server_id));
      KINDLING_ASSIGN_OR_RETURN(w.instance,
                                db::UpdateInstance(tx, w.instance.id,
                                                   {.status = db::WorkloadStatus::kRunning,
                                                    .vm_id = db::SetTo(w.vm.id),
                                                    .address = db::SetTo("127.0.0.1:4100")}));
      KINDLING_ASSIGN_OR_RETURN(w.volume,
                                db::UpdateVolumeState(tx, w.volume.id,
                                                      {.status = db::VolumeStatus::kAttached,
                                                       .attached_vm_id = db::SetTo(w.vm.id)}));
      KINDLING_ASSIGN_OR_RETURN(w.deployment,
                                db::UpdateDeployment(tx, created.deployment.id,
                                                     {.status = db::WorkloadStatus::kRunning}));
      return OkStatus();
    });
    EXPECT_TRUE(made);
    return w;
  }

  db::Vm GetVm(const std::string& id) {
    auto vm = Must([&](db::Tx& tx) { return db::GetVm(tx, id); });
    return vm ? *vm : db::Vm{};
  }
  db::Instance GetInstance(const std::string& id) {
    auto instance = Must([&](db::Tx& tx) { return db::GetInstance(tx, id); });
    return instance ? *instance : db::Instance{};
  }
  db::Deployment GetDeployment(const std::string& id) {
    auto deployment = Must([&](db::Tx& tx) { return db::GetDeployment(tx, id); });
    return deployment ? *deployment : db::Deployment{};
  }

  // The workload as it was made: nothing changed it.
  void ExpectUntouched(const RunningWorkload& w) {
    EXPECT_EQ(GetVm(w.vm.id).status, db::VmStatus::kRunning);
    EXPECT_EQ(GetInstance(w.instance.id).status, db::WorkloadStatus::kRunning);
    EXPECT_EQ(GetDeployment(w.deployment.id).status, db::WorkloadStatus::kRunning);
    const db::Volume volume = GetVolume(w.volume.id);
    EXPECT_EQ(volume.status, db::VolumeStatus::kAttached);
    EXPECT_EQ(volume.attached_vm_id, w.vm.id);
  }

  // A leader clock that moves only when the test says so.
  struct FakeClock {
    std::mutex mu;
    std::chrono::system_clock::time_point now = std::chrono::system_clock::now();
    void Advance(std::chrono::seconds by) {
      std::lock_guard lock(mu);
      now += by;
    }
  };
  LeaderOptions WithClock(LeaderOptions options, FakeClock& clock) {
    options.now = [&clock] {
      std::lock_guard lock(clock.mu);
      return clock.now;
    };
    return options;
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

TEST_F(LeaderTest, ADrainingServerIsDrainedOnceNoOperationRunsOnIt) {
  const std::string server = MakeServer("busy");
  const std::string idle = MakeServer("idle");
  const db::Volume volume = MakePinnedVolume(server);
  const db::QueuedOperation backup = QueueBackup(volume);
  // Running, its lease far from expiring.
  ASSERT_TRUE(Must([&](db::Tx& tx) {
    return db::ClaimNextOperation(tx, server, NewUuidV4(), std::chrono::minutes(5));
  }));
  for (const std::string& id : {server, idle}) {
    ASSERT_TRUE(
        Must([&](db::Tx& tx) { return db::SetServerStatus(tx, id, db::ServerStatus::kDraining); }));
  }
  Leader leader(db(), FastLeader());
  auto report = leader.SweepOnce();
  ASSERT_TRUE(report) << report.error().message();
  EXPECT_EQ(report->servers_drained, std::vector<std::string>{idle});
  EXPECT_EQ(Must([&](db::Tx& tx) { return db::GetServer(tx, server); })->status,
            db::ServerStatus::kDraining);

  Sql("UPDATE project_volume_operations SET status = 'succeeded', completed_at = now() "
      "WHERE id = '" +
      backup.operation.id + "'");
  report = leader.SweepOnce();
  ASSERT_TRUE(report) << report.error().message();
  EXPECT_EQ(report->servers_drained, std::vector<std::string>{server});
  EXPECT_EQ(Must([&](db::Tx& tx) { return db::GetServer(tx, server); })->status,
            db::ServerStatus::kDrained);
  EXPECT_EQ(Sql("SELECT count(*) FROM cluster_audit_events WHERE action = 'server.drained' "
                "AND resource_id = '" +
                server + "'")[0][0]
                .as<int>(),
            1);
  EXPECT_TRUE(leader.SweepOnce()->servers_drained.empty());
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

// The control-plane database restored from an older snapshot: every
// server's last heartbeat is an hour old (one was even marked dead), the
// operations that were running then hold leases of worker processes long
// gone, and two backups the snapshot shows in flight had in fact committed
// their manifests afterwards. A new leader must let the workers come back
// instead of declaring them dead, and everything must complete.
TEST_F(LeaderTest, RestoredSnapshotConvergesWithinTheStartGrace) {
  const WorkerOptions a_options = FastOptions("a");
  const WorkerOptions b_options = FastOptions("b");
  const std::string a_id = a_options.server_id;
  const std::string b_id = b_options.server_id;
  auto image_on_a = [&](const std::string& volume_id) {
    return ImagePath(a_options.state_dir, volume_id);
  };
  StartWorker(a_options);
  StartWorker(b_options);
  std::vector<db::Volume> volumes;
  for (int i = 0; i < 4; ++i) volumes.push_back(MakePinnedVolume(a_id));
  for (std::size_t i = 0; i < volumes.size(); ++i) {
    const auto image = image_on_a(volumes[i].id);
    ASSERT_TRUE(WaitFor([&] { return std::filesystem::exists(image); }));
    testutil::PatchFile(image, (i + 1) << 20, testutil::RandomData(2u << 20, 40 + i));
  }
  // What the restore (volume 1) restores.
  const db::QueuedOperation source = QueueBackup(volumes[1]);
  ASSERT_EQ(WaitFinished(source.operation.id).status, db::OperationStatus::kSucceeded);
  const std::string source_digest =
      testutil::ImageDigestOfFile(image_on_a(volumes[1].id), kStoreChunkSize);
  // Every host goes down around the database restore.
  for (auto& w : workers_) w->Abandon();
  workers_.clear();

  // The snapshot: a backup running on a (volume 0); a restore to b, chosen by
  // the operator, running there (volume 1); a backup running (volume 2) and
  // one pending (volume 3) whose manifests were committed after the snapshot.
  const db::QueuedOperation running_backup = QueueBackup(volumes[0]);
  ClaimAsDeadWorker(a_id);
  const db::QueuedOperation restore =
      Queue({.volume_id = volumes[1].id,
             .kind = db::OperationKind::kRestore,
             .server_id = b_id,
             .backup_id = source.operation.backup_id,
             .target_server_id = b_id,
             .extra_request_metadata_json = R"({"target_requested": true})"});
  ClaimAsDeadWorker(b_id);
  const db::QueuedOperation committed_running = QueueBackup(volumes[2]);
  ClaimAsDeadWorker(a_id);
  const db::QueuedOperation committed_pending = QueueBackup(volumes[3]);
  std::map<std::string, std::string> committed_digests;
  for (const auto* op : {&committed_running, &committed_pending}) {
    engine::BackupOptions backup;
    backup.volume_id = op->operation.project_volume_id;
    backup.backup_id = *op->operation.backup_id;
    backup.image = image_on_a(backup.volume_id);
    backup.threads = 2;
    auto manifest = engine::CreateBackup(*repository_, backup);
    ASSERT_TRUE(manifest) << manifest.error().message();
    committed_digests[backup.backup_id] = crypto::DigestHex(manifest->image_digest);
  }
  BackdateHeartbeat(a_id, 3600);
  BackdateHeartbeat(b_id, 3600);
  Sql("UPDATE servers SET status = 'dead' WHERE id = '" + b_id + "'");

  FakeClock clock;
  LeaderOptions options = WithClock(FastLeader(), clock);
  options.start_grace = std::chrono::seconds(60);
  Leader leader(db(), options);
  leader.BeginLeading();
  EXPECT_TRUE(leader.InStartGrace());
  auto report = leader.SweepOnce();
  ASSERT_TRUE(report) << report.error().message();
  EXPECT_TRUE(report->in_start_grace);
  EXPECT_TRUE(report->servers_marked_dead.empty());
  EXPECT_TRUE(report->failed.empty());
  for (const auto* op : {&running_backup, &restore, &committed_running}) {
    EXPECT_NE(std::ranges::find(report->requeued, op->operation.id), report->requeued.end())
        << op->operation.id;
  }
  EXPECT_EQ(StatusOf(a_id), db::ServerStatus::kActive);
  // The restore waits for the server the operator chose, although no worker
  // is eligible yet.
  const db::Operation waiting = GetOperation(restore.operation.id);
  EXPECT_EQ(waiting.status, db::OperationStatus::kPending);
  EXPECT_EQ(waiting.server_id.value_or(""), b_id);
  // Sweeps during the grace change nothing more.
  report = leader.SweepOnce();
  ASSERT_TRUE(report);
  EXPECT_TRUE(report->servers_marked_dead.empty());
  EXPECT_TRUE(report->failed.empty());

  // The hosts come back: their first heartbeats revive them and they take
  // their work again.
  StartWorker(a_options);
  Worker& b = StartWorker(b_options);
  EXPECT_EQ(StatusOf(b.server_id()), db::ServerStatus::kActive);
  for (const auto* op : {&running_backup, &restore, &committed_running, &committed_pending}) {
    const db::Operation done = WaitFinished(op->operation.id);
    EXPECT_EQ(done.status, db::OperationStatus::kSucceeded)
        << db::Name(done.kind) << ": " << done.error.value_or("");
  }
  // The restore landed where the operator wanted it, bit-identical.
  EXPECT_EQ(GetVolume(volumes[1].id).server_id.value_or(""), b.server_id());
  EXPECT_EQ(testutil::ImageDigestOfFile(b.ImageOf(volumes[1].id), kStoreChunkSize), source_digest);
  // The committed backups were recorded from their manifests, not made again.
  for (const auto* op : {&committed_running, &committed_pending}) {
    const std::string& id = *op->operation.backup_id;
    const json result = json::parse(GetOperation(op->operation.id).result_metadata_json);
    EXPECT_EQ(result["resumed"], true) << result.dump();
    auto row = Must([&](db::Tx& tx) { return db::GetBackup(tx, id); });
    ASSERT_TRUE(row);
    EXPECT_EQ(row->status, db::BackupStatus::kSucceeded);
    EXPECT_EQ(row->storage_url.value_or(""), StoreUrl());
    EXPECT_EQ(row->storage_key.value_or(""),
              repo::ManifestKey(op->operation.project_volume_id, id));
    EXPECT_EQ(json::parse(row->metadata_json)["image_sha256"], committed_digests[id]);
    auto listed = repository_->ListBackups(op->operation.project_volume_id);
    ASSERT_TRUE(listed);
    EXPECT_EQ(listed->size(), 1u);
  }

  // After the grace the usual rules apply, and nobody is dead.
  clock.Advance(std::chrono::seconds(61));
  EXPECT_FALSE(leader.InStartGrace());
  report = leader.SweepOnce();
  ASSERT_TRUE(report);
  EXPECT_FALSE(report->in_start_grace);
  EXPECT_TRUE(report->servers_marked_dead.empty());
  EXPECT_TRUE(report->failed.empty());
}

// The grace is bounded: a server that never heartbeats again is dead once
// it is over, and its operation fails with the usual error.
TEST_F(LeaderTest, StartGraceEndsForServersThatNeverComeBack) {
  const std::string c = MakeServer("c");
  const db::Volume volume = MakePinnedVolume(c);
  const db::QueuedOperation backup = QueueBackup(volume);
  ClaimAsDeadWorker(c);
  BackdateHeartbeat(c, 3600);

  FakeClock clock;
  LeaderOptions options = WithClock(FastLeader(), clock);
  options.start_grace = std::chrono::seconds(30);
  Leader leader(db(), options);
  leader.BeginLeading();
  auto report = leader.SweepOnce();
  ASSERT_TRUE(report) << report.error().message();
  EXPECT_TRUE(report->servers_marked_dead.empty());
  EXPECT_EQ(report->requeued, std::vector<std::string>{backup.operation.id});
  EXPECT_EQ(GetOperation(backup.operation.id).status, db::OperationStatus::kPending);
  EXPECT_EQ(StatusOf(c), db::ServerStatus::kActive);

  clock.Advance(std::chrono::seconds(29));
  report = leader.SweepOnce();
  ASSERT_TRUE(report);
  EXPECT_TRUE(report->servers_marked_dead.empty());
  EXPECT_TRUE(report->failed.empty());

  clock.Advance(std::chrono::seconds(2));
  report = leader.SweepOnce();
  ASSERT_TRUE(report);
  EXPECT_EQ(report->servers_marked_dead, std::vector<std::string>{c});
  EXPECT_EQ(report->failed, std::vector<std::string>{backup.operation.id});
  const db::Operation op = GetOperation(backup.operation.id);
  EXPECT_EQ(op.status, db::OperationStatus::kFailed);
  EXPECT_NE(op.error.value_or("").find("dead"), std::string::npos) << op.error.value_or("");
}

// Within the grace a decision that would fail a pending operation waits.
TEST_F(LeaderTest, PendingOperationOnADeadServerWaitsForTheEndOfTheGrace) {
  const std::string c = MakeServer("c");
  const db::Volume volume = MakePinnedVolume(c);
  const db::QueuedOperation backup = QueueBackup(volume);
  Sql("UPDATE servers SET status = 'dead' WHERE id = '" + c + "'");

  FakeClock clock;
  LeaderOptions options = WithClock(FastLeader(), clock);
  Leader leader(db(), options);
  leader.BeginLeading();
  auto report = leader.SweepOnce();
  ASSERT_TRUE(report) << report.error().message();
  EXPECT_EQ(report->deferred, std::vector<std::string>{backup.operation.id});
  EXPECT_TRUE(report->failed.empty());
  EXPECT_EQ(GetOperation(backup.operation.id).status, db::OperationStatus::kPending);

  // The grace is at least silent_after (2 s here) without start_grace.
  clock.Advance(std::chrono::seconds(3));
  report = leader.SweepOnce();
  ASSERT_TRUE(report);
  EXPECT_EQ(report->failed, std::vector<std::string>{backup.operation.id});
}

// A worker killed while its workload runs: once its server is dead, the
// workload's rows end, the volume says why it cannot be used, and the edge
// hears of it.
TEST_F(LeaderTest, TheWorkloadOfADeadServerIsRecordedLost) {
  const std::string dead = MakeVmServer("w-dead");
  const std::string alive = MakeVmServer("w-alive");
  const RunningWorkload lost = MakeRunningWorkload(dead);
  const RunningWorkload kept = MakeRunningWorkload(alive);
  BackdateHeartbeat(dead, 60);
  auto listener = db::Listener::Open(dsn(), {db::kWorkloadsChannel});
  ASSERT_TRUE(listener) << listener.error().message();

  Leader leader(db(), FastLeader());
  auto report = leader.SweepOnce();
  ASSERT_TRUE(report) << report.error().message();
  EXPECT_EQ(report->servers_marked_dead, std::vector<std::string>{dead});
  EXPECT_EQ(report->workloads_lost, std::vector<std::string>{lost.vm.id});

  const db::Vm vm = GetVm(lost.vm.id);
  EXPECT_EQ(vm.status, db::VmStatus::kCrashed);
  EXPECT_EQ(vm.exit_reason, db::VmExit::kLost);
  EXPECT_TRUE(vm.stopped_at);
  const std::string error = "the worker w-dead (" + dead + ") died while it ran";
  EXPECT_EQ(vm.error.value_or(""), error);
  const db::Instance instance = GetInstance(lost.instance.id);
  EXPECT_EQ(instance.status, db::WorkloadStatus::kFailed);
  EXPECT_EQ(instance.error.value_or(""), error);
  EXPECT_FALSE(instance.address);
  // Stopped, still desired running: it runs again when its worker is back.
  const db::Deployment deployment = GetDeployment(lost.deployment.id);
  EXPECT_EQ(deployment.status, db::WorkloadStatus::kStopped);
  EXPECT_EQ(deployment.desired_state, db::DesiredState::kRunning);
  EXPECT_EQ(deployment.error.value_or(""), error + "; it starts again when that worker is back");
  // The image is on the dead server: nobody else can use the volume.
  const db::Volume volume = GetVolume(lost.volume.id);
  EXPECT_EQ(volume.status, db::VolumeStatus::kUnavailable);
  EXPECT_FALSE(volume.attached_vm_id);
  EXPECT_TRUE(IsDeadWorkerError(volume.last_error)) << volume.last_error.value_or("");
  EXPECT_NE(volume.last_error.value_or("").find(dead), std::string::npos);

  // Audited as the leader's (no user).
  auto events = Must([&](db::Tx& tx) {
    return db::ListAuditEvents(tx, db::AuditFilter{.action = "workload.lost"});
  });
  ASSERT_TRUE(events);
  ASSERT_EQ(events->size(), 1u);
  const db::AuditEvent& event = events->front();
  EXPECT_FALSE(event.user_id);
  EXPECT_EQ(event.resource_type, "deployment");
  EXPECT_EQ(event.resource_id.value_or(""), lost.deployment.id);
  const json details = json::parse(event.details_json);
  EXPECT_EQ(details.value("vm_id", ""), lost.vm.id);
  EXPECT_EQ(details.value("instance_id", ""), lost.instance.id);
  EXPECT_EQ(details.value("server_id", ""), dead);
  EXPECT_EQ(details.value("volume_id", ""), lost.volume.id);
  EXPECT_EQ(details.value("volume_status", ""), "unavailable");

  // Announced: the worker's instance, and the deployment, which has no live
  // instance left ("-": the edge reloads).
  const std::string deployment_note = "-:deployment:" + lost.deployment.id;
  std::set<std::string> heard;
  for (int i = 0; i < 20 && !heard.contains(deployment_note); ++i) {
    auto notes = (*listener)->Wait(milliseconds(100));
    ASSERT_TRUE(notes) << notes.error().message();
    for (const db::Notification& note : *notes) heard.insert(note.payload);
  }
  EXPECT_TRUE(heard.contains(dead + ":instance:" + lost.instance.id));
  EXPECT_TRUE(heard.contains(deployment_note));
  auto routes = Must([](db::Tx& tx) { return db::ListRoutes(tx); });
  ASSERT_TRUE(routes);
  for (const db::RouteRow& route : *routes) {
    if (route.deployment_id == lost.deployment.id) {
      EXPECT_FALSE(route.instance_id);
    } else if (route.deployment_id == kept.deployment.id) {
      EXPECT_EQ(route.instance_id, kept.instance.id);
    }
  }

  // The live server's workload is untouched; a later sweep changes nothing.
  ExpectUntouched(kept);
  report = leader.SweepOnce();
  ASSERT_TRUE(report);
  EXPECT_TRUE(report->workloads_lost.empty());
  ExpectUntouched(kept);
}

// Within the start grace no server is marked dead, so no workload is lost
// either; afterwards the usual rules apply.
TEST_F(LeaderTest, NoWorkloadIsRecordedLostDuringTheStartGrace) {
  const std::string c = MakeVmServer("c");
  const RunningWorkload w = MakeRunningWorkload(c);
  BackdateHeartbeat(c, 3600);

  FakeClock clock;
  LeaderOptions options = WithClock(FastLeader(), clock);
  options.start_grace = std::chrono::seconds(30);
  Leader leader(db(), options);
  leader.BeginLeading();
  auto report = leader.SweepOnce();
  ASSERT_TRUE(report) << report.error().message();
  EXPECT_TRUE(report->in_start_grace);
  EXPECT_TRUE(report->workloads_lost.empty());
  ExpectUntouched(w);

  // Even a server already dead (a previous leader marked it) waits.
  Sql("UPDATE servers SET status = 'dead' WHERE id = '" + c + "'");
  report = leader.SweepOnce();
  ASSERT_TRUE(report);
  EXPECT_TRUE(report->workloads_lost.empty());
  ExpectUntouched(w);

  clock.Advance(std::chrono::seconds(31));
  report = leader.SweepOnce();
  ASSERT_TRUE(report);
  EXPECT_FALSE(report->in_start_grace);
  EXPECT_EQ(report->workloads_lost, std::vector<std::string>{w.vm.id});
  EXPECT_EQ(GetVm(w.vm.id).status, db::VmStatus::kCrashed);
  EXPECT_EQ(GetVolume(w.volume.id).status, db::VolumeStatus::kUnavailable);
}

// A volume moved away from the dead server (its image is elsewhere) only
// lets go of the VM: detached, usable where it is.
TEST_F(LeaderTest, ALostWorkloadWhoseVolumeIsPinnedElsewhereLeavesItDetached) {
  const std::string dead = MakeVmServer("w-dead");
  const std::string other = MakeVmServer("w-other");
  const RunningWorkload w = MakeRunningWorkload(dead);
  Sql("UPDATE project_volumes SET server_id = '" + other + "' WHERE id = '" + w.volume.id + "'");
  Sql("UPDATE servers SET status = 'dead' WHERE id = '" + dead + "'");

  Leader leader(db(), FastLeader());
  auto report = leader.SweepOnce();
  ASSERT_TRUE(report) << report.error().message();
  EXPECT_EQ(report->workloads_lost, std::vector<std::string>{w.vm.id});
  const db::Volume volume = GetVolume(w.volume.id);
  EXPECT_EQ(volume.status, db::VolumeStatus::kDetached);
  EXPECT_FALSE(volume.attached_vm_id);
  EXPECT_FALSE(IsDeadWorkerError(volume.last_error));
  EXPECT_EQ(GetInstance(w.instance.id).status, db::WorkloadStatus::kFailed);
}

TEST_F(LeaderTest, OnLeadingRunsWhenTheProcessStartsLeading) {
  std::atomic<int> calls{0};
  LeaderOptions options = FastLeader();
  options.on_leading = [&calls] { ++calls; };
  Leader leader(db(), options);
  leader.Start();
  EXPECT_TRUE(WaitFor([&] { return calls.load() == 1; }, milliseconds(5'000)));
  EXPECT_TRUE(leader.is_leader());
  EXPECT_TRUE(leader.InStartGrace());
  leader.Stop();
  EXPECT_EQ(calls.load(), 1);
}

TEST_F(LeaderTest, QueuesScheduledBackupForDailyVolume) {
  Worker& a = StartWorker(FastOptions("a"));
  const db::Volume daily = MakePinnedVolume(a.server_id());
  const db::Volume manual = MakePinnedVolume(a.server_id());
  ASSERT_TRUE(WaitFor([&] { return GetVolume(daily.id).health == db::VolumeHealth::kHealthy; }));
  // Set in SQL without a slot: the first sweep plans one, a day ahead at most.
  ASSERT_TRUE(Must([&](db::Tx& tx) {
    return db::UpdateVolumeSettings(tx, daily.id, {.backup_schedule = db::BackupSchedule::kDaily});
  }));
  Leader leader(db(), FastLeader());
  auto report = leader.SweepOnce();
  ASSERT_TRUE(report) << report.error().message();
  EXPECT_TRUE(report->scheduled.empty());
  const auto planned = GetVolume(daily.id).backup_next_at;
  ASSERT_TRUE(planned);
  EXPECT_LE(*planned - std::chrono::system_clock::now(), std::chrono::hours(24));
  EXPECT_FALSE(GetVolume(manual.id).backup_next_at);

  // Its slot has come (moved a minute back): queued, and the slot moves on.
  Sql("UPDATE project_volumes SET backup_next_at = now() - interval '1 minute' WHERE id = '" +
      daily.id + "'");
  report = leader.SweepOnce();
  ASSERT_TRUE(report) << report.error().message();
  EXPECT_EQ(report->scheduled, std::vector<std::string>{daily.id});
  const auto next = GetVolume(daily.id).backup_next_at;
  ASSERT_TRUE(next);
  EXPECT_GT(*next, std::chrono::system_clock::now());
  // Nothing twice.
  report = leader.SweepOnce();
  ASSERT_TRUE(report);
  EXPECT_TRUE(report->scheduled.empty());

  // The backup row succeeds before its operation completes (retention runs
  // in between): wait for both.
  ASSERT_TRUE(WaitFor([&] {
    auto rows = Must([&](db::Tx& tx) { return db::ListBackups(tx, daily.id); });
    auto active = Must([&](db::Tx& tx) { return db::FindActiveOperation(tx, daily.id); });
    return rows && rows->size() == 1 && rows->front().status == db::BackupStatus::kSucceeded &&
           active && !*active;
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

TEST_F(LeaderTest, ABusyVolumeWaitsWhileItsWindowIsOpenThenMissesTheSlot) {
  Worker& a = StartWorker(FastOptions("a"));
  const db::Volume volume = MakePinnedVolume(a.server_id());
  ASSERT_TRUE(WaitFor([&] { return GetVolume(volume.id).health == db::VolumeHealth::kHealthy; }));
  ASSERT_TRUE(Must([&](db::Tx& tx) {
    return db::UpdateVolumeSettings(tx, volume.id,
                                    {.backup_schedule = db::BackupSchedule::kDaily,
                                     .backup_window_start = "01:00",
                                     .backup_window_minutes = 60});
  }));
  auto plan = control::BackupSchedulePlan::Compile(control::ScheduleSpecOf(GetVolume(volume.id)));
  ASSERT_TRUE(plan) << plan.error().message();
  // Yesterday's slot, and a manual backup in flight.
  const auto slot = plan->NextSlot(
      volume.id, std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now()) -
                     std::chrono::hours(48));
  ASSERT_TRUE(slot);
  ASSERT_TRUE(Must([&](db::Tx& tx) {
    return db::MoveBackupNextAt(tx, volume.id, std::nullopt, db::Timestamp(slot->start));
  }));
  a.Stop();
  const db::QueuedOperation busy = QueueBackup(volume);

  // While the slot's window is open (the clock inside it), it waits.
  FakeClock clock;
  clock.now = slot->start + std::chrono::minutes(1);
  Leader leader(db(), WithClock(FastLeader(), clock));
  auto report = leader.SweepOnce();
  ASSERT_TRUE(report) << report.error().message();
  EXPECT_TRUE(report->scheduled.empty());
  EXPECT_TRUE(report->missed.empty());
  EXPECT_EQ(GetVolume(volume.id).backup_next_at, db::Timestamp(slot->start));

  // Once it closed, the slot is missed, audited with the reason, and the
  // next one planned.
  clock.now = slot->ends;
  report = leader.SweepOnce();
  ASSERT_TRUE(report) << report.error().message();
  EXPECT_EQ(report->missed, std::vector<std::string>{volume.id});
  EXPECT_TRUE(report->scheduled.empty());
  const auto next = GetVolume(volume.id).backup_next_at;
  ASSERT_TRUE(next);
  EXPECT_GT(*next, db::Timestamp(slot->ends));
  const pqxx::result audit =
      Sql("SELECT details->>'reason' FROM cluster_audit_events "
          "WHERE action = 'volume.backup.schedule_missed' AND resource_id = '" +
          volume.id + "'");
  ASSERT_EQ(audit.size(), 1u);
  EXPECT_NE(audit[0][0].as<std::string>().find("backing_up"), std::string::npos)
      << audit[0][0].as<std::string>() << " (operation " << busy.operation.id << ")";
}

// A scheduled slot of a running workload's volume: queued live where its
// server takes live backups (the volume stays attached), else it waits.
TEST_F(LeaderTest, ARunningWorkloadsVolumeIsBackedUpLiveWhereItsServerCan) {
  Worker& live_worker = StartWorker(FastOptions("live"));
  Worker& cold_worker = StartWorker(FastOptions("cold"));
  live_worker.Stop();  // no worker executes what is queued: the rows tell
  cold_worker.Stop();
  auto report_live_backups = [&](const std::string& server_id, bool live) {
    ASSERT_TRUE(Must([&](db::Tx& tx) {
      return db::UpsertComponentStatus(
          tx,
          db::ComponentStatusUpdate{
              .server_id = server_id,
              .component = "worker",
              .metadata_json =
                  nlohmann::json{{"runtime", "qemu-microvm-tcg"}, {"live_backups", live}}.dump()});
    }));
  };
  report_live_backups(live_worker.server_id(), true);
  report_live_backups(cold_worker.server_id(), false);
  const RunningWorkload hot = MakeRunningWorkload(live_worker.server_id());
  const RunningWorkload cold = MakeRunningWorkload(cold_worker.server_id());
  for (const auto* w : {&hot, &cold}) {
    ASSERT_TRUE(Must([&](db::Tx& tx) {
      return db::UpdateVolumeSettings(tx, w->volume.id,
                                      {.backup_schedule = db::BackupSchedule::kDaily});
    }));
    Sql("UPDATE project_volumes SET backup_next_at = now() - interval '1 minute' WHERE id = '" +
        w->volume.id + "'");
  }

  Leader leader(db(), FastLeader());
  auto report = leader.SweepOnce();
  ASSERT_TRUE(report) << report.error().message();
  EXPECT_EQ(report->scheduled, std::vector<std::string>{hot.volume.id});
  auto active = Must([&](db::Tx& tx) { return db::FindActiveOperation(tx, hot.volume.id); });
  ASSERT_TRUE(active && *active);
  const db::Operation& op = **active;
  EXPECT_EQ(op.kind, db::OperationKind::kBackup);
  EXPECT_EQ(op.server_id, live_worker.server_id());
  EXPECT_EQ(nlohmann::json::parse(op.request_metadata_json).value("live_snapshot", false), true)
      << op.request_metadata_json;
  ExpectUntouched(hot);  // the workload runs on, the volume stays attached

  // The other waits while its window is open, its workload untouched.
  auto none = Must([&](db::Tx& tx) { return db::FindActiveOperation(tx, cold.volume.id); });
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none);
  ExpectUntouched(cold);
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
