#include "control/volume_service.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "control/admin_service.h"
#include "db/db_test_util.h"
#include "testutil/temp_dir.h"

namespace kindling::control {
namespace {

using json = nlohmann::json;

class VolumeServiceTest : public db::DbTest {
 protected:
  void SetUp() override {
    DbTest::SetUp();
    service_ = std::make_unique<VolumeService>(db(), master_key_);
    org_ = MakeOrganization();
    project_ = MakeProject(org_);
  }

  void ConfigureStore() {
    auto saved =
        UpdateBackupSettings(db(), master_key_, Actor{},
                             BackupSettingsUpdate{.local_directory = store_dir_.path().string()});
    ASSERT_TRUE(saved) << saved.error().message;
  }

  // Volume status, pin, operations and audit rows: what a refused request
  // must leave alone.
  std::string State() {
    std::string out;
    for (const auto& row : Sql("SELECT status, coalesce(server_id::text,''), updated_at::text "
                               "FROM project_volumes ORDER BY id")) {
      out += row[0].as<std::string>() + "|" + row[1].as<std::string>() + "|" +
             row[2].as<std::string>() + ";";
    }
    out += Sql("SELECT count(*) FROM project_volume_operations")[0][0].as<std::string>() + ";";
    out += Sql("SELECT count(*) FROM project_volume_backups")[0][0].as<std::string>() + ";";
    out += Sql("SELECT count(*) FROM cluster_audit_events")[0][0].as<std::string>();
    return out;
  }

  // The volume as a running VM leaves it.
  void Attach(const std::string& volume_id) {
    ASSERT_TRUE(Must([&](db::Tx& tx) {
      return db::UpdateVolumeState(tx, volume_id,
                                   db::VolumeStateUpdate{.status = db::VolumeStatus::kAttached,
                                                         .attached_vm_id = NewUuidV4()});
    }));
  }

  // A succeeded backup of the volume in a local store.
  std::string SucceededBackup(const std::string& volume_id) {
    auto backup = Must([&](db::Tx& tx) -> Result<db::Backup> {
      KINDLING_ASSIGN_OR_RETURN(auto b,
                                db::CreateBackup(tx, db::NewBackup{.volume_id = volume_id}));
      return db::MarkBackupSucceeded(
          tx, b.id, db::BackupSuccess{.storage_url = "file:///x", .storage_key = "k"});
    });
    return backup ? backup->id : "";
  }

  // The details of the audit event `action` about operation `operation_id`.
  json AuditDetails(const std::string& action, const std::string& operation_id) {
    auto rows = Sql("SELECT details::text FROM cluster_audit_events WHERE action = '" + action +
                    "' AND details->>'operation_id' = '" + operation_id + "'");
    EXPECT_EQ(rows.size(), 1u) << action << " " << operation_id;
    return rows.size() == 1 ? json::parse(rows[0][0].as<std::string>()) : json::object();
  }

  crypto::Key master_key_ = crypto::RandomKey();
  testutil::TempDir store_dir_;
  std::unique_ptr<VolumeService> service_;
  std::string org_;
  std::string project_;
};

TEST_F(VolumeServiceTest, CreatesOnLeastLoadedWorkerThenHostname) {
  const std::string b = MakeServer("b-host");
  const std::string a = MakeServer("a-host");
  MakeServer("c-host", /*runtime=*/"");  // no runtime: not eligible
  const std::string other_project = MakeProject(org_, "other");
  MakeVolume(other_project, a);  // a is now loaded

  bool created = false;
  auto view =
      service_->PutVolume(Actor{}, project_, db::VolumeSettingsUpdate{.size_gb = 7}, &created);
  ASSERT_TRUE(view) << view.error().message;
  EXPECT_TRUE(created);
  EXPECT_EQ(view->volume.server_id, b);
  EXPECT_EQ(view->volume.size_gb, 7);
  EXPECT_EQ(view->volume.status, db::VolumeStatus::kDetached);
  EXPECT_EQ(view->volume.health, db::VolumeHealth::kUnknown);

  auto again =
      service_->PutVolume(Actor{}, project_, db::VolumeSettingsUpdate{.size_gb = 9}, &created);
  ASSERT_TRUE(again);
  EXPECT_FALSE(created);
  auto audit =
      Sql("SELECT details->'changed'->>0 FROM cluster_audit_events "
          "WHERE action = 'volume.update'");
  ASSERT_EQ(audit.size(), 1u);
  EXPECT_EQ(audit[0][0].as<std::string>(), "size_gb");

  auto shrink = service_->PutVolume(Actor{}, project_, db::VolumeSettingsUpdate{.size_gb = 1});
  ASSERT_FALSE(shrink);
  EXPECT_EQ(shrink.error().http_status, 400);
}

TEST_F(VolumeServiceTest, NoEligibleWorkerIsUnavailable) {
  const std::string before = State();
  auto view = service_->PutVolume(Actor{}, project_, {});
  ASSERT_FALSE(view);
  EXPECT_EQ(view.error().code, kCodeVolumeUnavailable);
  EXPECT_EQ(State(), before);
}

TEST_F(VolumeServiceTest, QueueChecksInReferenceOrder) {
  const std::string worker = MakeServer("w1");
  auto missing = service_->QueueBackup(Actor{}, project_);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, kCodeNotFound);

  db::Volume volume = MakeVolume(project_, worker);
  std::string before = State();
  auto no_store = service_->QueueBackup(Actor{}, project_);
  ASSERT_FALSE(no_store);
  EXPECT_EQ(no_store.error().code, kCodeBackupStoreUnavailable);
  EXPECT_EQ(State(), before);

  ConfigureStore();
  ASSERT_TRUE(Must([&](db::Tx& tx) {
    return db::UpdateVolumeState(tx, volume.id,
                                 db::VolumeStateUpdate{.attached_vm_id = NewUuidV4()});
  }));
  before = State();
  auto attached = service_->QueueBackup(Actor{}, project_);
  ASSERT_FALSE(attached);
  EXPECT_EQ(attached.error().code, kCodeVolumeAttached);
  EXPECT_EQ(State(), before);
  ASSERT_TRUE(Must([&](db::Tx& tx) {
    return db::UpdateVolumeState(
        tx, volume.id, db::VolumeStateUpdate{.attached_vm_id = std::optional<std::string>()});
  }));

  auto op = service_->QueueBackup(Actor{.user_id = std::nullopt}, project_);
  ASSERT_TRUE(op) << op.error().message;
  EXPECT_EQ(op->server_id, worker);
  EXPECT_TRUE(op->backup_id.has_value());
  EXPECT_EQ(Sql("SELECT count(*) FROM cluster_audit_events WHERE action = "
                "'volume.backup.queue'")[0][0]
                .as<int>(),
            1);

  before = State();
  auto busy = service_->QueueRepair(Actor{}, project_);
  ASSERT_FALSE(busy);
  EXPECT_EQ(busy.error().code, kCodeVolumeBusy);
  EXPECT_EQ(State(), before);
}

TEST_F(VolumeServiceTest, RestoreValidationAndTargets) {
  const std::string w1 = MakeServer("w1");
  const std::string w2 = MakeServer("w2");
  const std::string stale = MakeServer("w0-stale");
  Sql("UPDATE servers SET last_heartbeat_at = now() - interval '25 seconds' WHERE id = '" + stale +
      "'");
  ConfigureStore();
  db::Volume volume = MakeVolume(project_, w2);
  db::Volume other = MakeVolume(MakeProject(org_, "other"), w1);
  auto succeeded = [&](const std::string& volume_id) {
    auto backup = Must([&](db::Tx& tx) -> Result<db::Backup> {
      KINDLING_ASSIGN_OR_RETURN(auto b,
                                db::CreateBackup(tx, db::NewBackup{.volume_id = volume_id}));
      return db::MarkBackupSucceeded(
          tx, b.id, db::BackupSuccess{.storage_url = "file:///x", .storage_key = "k"});
    });
    return backup ? backup->id : "";
  };
  const std::string mine = succeeded(volume.id);
  const std::string theirs = succeeded(other.id);
  const std::string before = State();

  auto no_id = service_->QueueRestore(Actor{}, project_, std::nullopt, std::nullopt);
  ASSERT_FALSE(no_id);
  EXPECT_EQ(no_id.error().http_status, 400);
  auto unknown = service_->QueueRestore(Actor{}, project_, NewUuidV4(), std::nullopt);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().http_status, 404);
  auto foreign = service_->QueueRestore(Actor{}, project_, theirs, std::nullopt);
  ASSERT_FALSE(foreign);
  EXPECT_EQ(foreign.error().code, kCodeValidation);
  auto to_stale = service_->QueueRestore(Actor{}, project_, mine, stale);
  ASSERT_FALSE(to_stale);
  EXPECT_EQ(to_stale.error().code, kCodeValidation);
  EXPECT_EQ(State(), before);

  // Prefers the current server even though w1 sorts first.
  auto op = service_->QueueRestore(Actor{}, project_, mine, std::nullopt);
  ASSERT_TRUE(op) << op.error().message;
  EXPECT_EQ(op->server_id, w2);
  EXPECT_EQ(op->target_server_id, w2);
  EXPECT_EQ(op->backup_id, mine);
}

TEST_F(VolumeServiceTest, VerifyQueuesOnTheVolumesServerAndLeavesItsStatus) {
  MakeServer("a-first");
  const std::string w2 = MakeServer("w2");
  db::Volume volume = MakeVolume(project_, w2);
  auto backup = Must([&](db::Tx& tx) -> Result<db::Backup> {
    KINDLING_ASSIGN_OR_RETURN(auto b, db::CreateBackup(tx, db::NewBackup{.volume_id = volume.id}));
    return db::MarkBackupSucceeded(
        tx, b.id, db::BackupSuccess{.storage_url = "file:///x", .storage_key = "k"});
  });
  ASSERT_TRUE(backup);
  auto unknown = service_->QueueVerify(Actor{}, project_, NewUuidV4());
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().http_status, 404);

  auto op = service_->QueueVerify(Actor{}, project_, backup->id);
  ASSERT_TRUE(op) << op.error().message;
  EXPECT_EQ(op->kind, db::OperationKind::kVerify);
  EXPECT_EQ(op->project_volume_id, volume.id);
  EXPECT_EQ(op->server_id, w2);
  EXPECT_EQ(op->backup_id, backup->id);
  auto found = service_->GetProjectVolume(project_);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->project.id, project_);
  ASSERT_TRUE(found->volume);
  EXPECT_EQ(found->volume->volume.status, volume.status);
  ASSERT_TRUE(found->volume->current_operation);
  EXPECT_EQ(found->volume->current_operation->id, op->id);
}

TEST_F(VolumeServiceTest, MoveGoesToAnotherWorker) {
  const std::string w1 = MakeServer("w1");
  const std::string w2 = MakeServer("w2");
  ConfigureStore();
  MakeVolume(project_, w1);
  auto same = service_->QueueMove(Actor{}, project_, w1);
  ASSERT_FALSE(same);
  EXPECT_EQ(same.error().code, kCodeValidation);
  auto op = service_->QueueMove(Actor{}, project_, std::nullopt);
  ASSERT_TRUE(op) << op.error().message;
  EXPECT_EQ(op->server_id, w1);
  EXPECT_EQ(op->target_server_id, w2);
}

// A workload holds the volume (a running VM attached it).
TEST_F(VolumeServiceTest, AnAttachedVolumeNeedsStopWorkload) {
  const std::string holder = MakeVmServer("w1");
  MakeVmServer("w2");
  ConfigureStore();
  const db::Volume volume = MakeVolume(project_, holder);
  Attach(volume.id);
  const std::string before = State();

  auto cold = service_->QueueBackup(Actor{}, project_);
  ASSERT_FALSE(cold);
  EXPECT_EQ(cold.error().http_status, 409);
  EXPECT_EQ(cold.error().code, kCodeVolumeAttached);
  // validate is for restores and moves, whatever the volume's state.
  auto validated =
      service_->QueueBackup(Actor{}, project_, {.stop_workload = true, .validate = true});
  ASSERT_FALSE(validated);
  EXPECT_EQ(validated.error().http_status, 400);
  EXPECT_EQ(validated.error().code, kCodeValidation);
  auto moved = service_->QueueMove(Actor{}, project_, std::nullopt);
  ASSERT_FALSE(moved);
  EXPECT_EQ(moved.error().code, kCodeVolumeAttached);
  EXPECT_EQ(State(), before);

  auto op =
      service_->QueueBackup(Actor{.user_id = std::nullopt}, project_, {.stop_workload = true});
  ASSERT_TRUE(op) << op.error().message;
  EXPECT_EQ(op->kind, db::OperationKind::kBackup);
  EXPECT_EQ(op->server_id, holder);
  const json request = json::parse(op->request_metadata_json);
  EXPECT_EQ(request.value("stop_workload", false), true) << op->request_metadata_json;
  EXPECT_FALSE(request.contains("validate")) << op->request_metadata_json;
  EXPECT_EQ(AuditDetails("volume.backup.queue", op->id).value("stop_workload", false), true);
  EXPECT_EQ(AuditDetails("volume.backup.queue", op->id).value("validate", true), false);
}

TEST_F(VolumeServiceTest, ARestoreWithStopWorkloadRunsOnTheHolderFirst) {
  const std::string holder = MakeVmServer("w1");
  const std::string target = MakeVmServer("w2");
  ConfigureStore();
  const db::Volume volume = MakeVolume(project_, holder);
  const std::string backup_id = SucceededBackup(volume.id);
  Attach(volume.id);
  const std::string before = State();

  auto cold = service_->QueueRestore(Actor{}, project_, backup_id, target);
  ASSERT_FALSE(cold);
  EXPECT_EQ(cold.error().code, kCodeVolumeAttached);
  EXPECT_EQ(State(), before);

  auto op = service_->QueueRestore(Actor{}, project_, backup_id, target,
                                   {.stop_workload = true, .validate = true});
  ASSERT_TRUE(op) << op.error().message;
  EXPECT_EQ(op->kind, db::OperationKind::kRestore);
  // Queued on the server whose VM holds the volume, which hands it over
  // once the workload stopped.
  EXPECT_EQ(op->server_id, holder);
  EXPECT_EQ(op->target_server_id, target);
  const json request = json::parse(op->request_metadata_json);
  EXPECT_EQ(request.value("stop_workload", false), true) << op->request_metadata_json;
  EXPECT_EQ(request.value("validate", false), true) << op->request_metadata_json;
  EXPECT_EQ(request.value("target_requested", false), true) << op->request_metadata_json;
  const json details = AuditDetails("volume.restore.queue", op->id);
  EXPECT_EQ(details.value("stop_workload", false), true) << details.dump();
  EXPECT_EQ(details.value("validate", false), true) << details.dump();
  EXPECT_EQ(details.value("server_id", ""), holder) << details.dump();
  EXPECT_EQ(details.value("target_server_id", ""), target) << details.dump();
}

TEST_F(VolumeServiceTest, StopWorkloadOnADetachedVolumeQueuesWhereItWouldAnyway) {
  const std::string holder = MakeVmServer("w1");
  const std::string target = MakeVmServer("w2");
  ConfigureStore();
  const db::Volume volume = MakeVolume(project_, holder);
  const std::string backup_id = SucceededBackup(volume.id);
  // No workload to stop: the restore runs on its target at once.
  auto op = service_->QueueRestore(Actor{}, project_, backup_id, target, {.stop_workload = true});
  ASSERT_TRUE(op) << op.error().message;
  EXPECT_EQ(op->server_id, target);
  EXPECT_EQ(op->target_server_id, target);
  EXPECT_EQ(json::parse(op->request_metadata_json).value("stop_workload", false), true);
}

TEST_F(VolumeServiceTest, StopWorkloadNeedsTheHolderAlive) {
  const std::string holder = MakeVmServer("w1");
  const std::string target = MakeVmServer("w2");
  ConfigureStore();
  const db::Volume volume = MakeVolume(project_, holder);
  const std::string backup_id = SucceededBackup(volume.id);
  Attach(volume.id);
  Sql("UPDATE servers SET status = 'dead' WHERE id = '" + holder + "'");
  const std::string before = State();

  auto backup = service_->QueueBackup(Actor{}, project_, {.stop_workload = true});
  ASSERT_FALSE(backup);
  EXPECT_EQ(backup.error().http_status, 409);
  EXPECT_EQ(backup.error().code, kCodeVolumeUnavailable);
  EXPECT_NE(backup.error().message.find("running the workload"), std::string::npos)
      << backup.error().message;
  // The target is alive, but nobody can stop the workload.
  auto restore = service_->QueueRestore(Actor{}, project_, backup_id, target,
                                        {.stop_workload = true, .validate = true});
  ASSERT_FALSE(restore);
  EXPECT_EQ(restore.error().code, kCodeVolumeUnavailable);
  EXPECT_NE(restore.error().message.find("running the workload"), std::string::npos)
      << restore.error().message;
  EXPECT_EQ(State(), before);
}

TEST_F(VolumeServiceTest, DeleteWithAndWithoutPreDeleteBackup) {
  const std::string w1 = MakeServer("w1");
  MakeVolume(project_, w1);
  auto deleted = service_->DeleteVolume(Actor{}, project_);
  ASSERT_TRUE(deleted) << deleted.error().message;
  EXPECT_FALSE(deleted->operation);
  auto gone = service_->GetProjectVolume(project_);
  ASSERT_TRUE(gone);  // the project is still there, without a volume
  EXPECT_FALSE(gone->volume);
  auto unknown_project = service_->GetProjectVolume(NewUuidV4());
  ASSERT_FALSE(unknown_project);
  EXPECT_EQ(unknown_project.error().http_status, 404);

  ConfigureStore();
  auto view = service_->PutVolume(Actor{}, project_,
                                  db::VolumeSettingsUpdate{.pre_delete_backup_enabled = true});
  ASSERT_TRUE(view);
  auto queued = service_->DeleteVolume(Actor{}, project_);
  ASSERT_TRUE(queued) << queued.error().message;
  ASSERT_TRUE(queued->operation);
  auto after = service_->GetProjectVolume(project_);
  ASSERT_TRUE(after);
  ASSERT_TRUE(after->volume);
  EXPECT_EQ(after->volume->volume.status, db::VolumeStatus::kDeleting);
  auto again = service_->DeleteVolume(Actor{}, project_);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, kCodeVolumeBusy);
}

}  // namespace
}  // namespace kindling::control
