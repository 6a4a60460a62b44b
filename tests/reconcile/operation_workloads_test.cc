// Backups and restores that stop the volume's workload (stop_workload) and
// restores that boot the verify mode on the new image first (validate), on
// a worker with the stub VMM behind the fault-injecting one: the worker's
// side of operation_workloads.h and image_validator.h without a real VM.
// Operations are queued through control::VolumeService, as the API does.
#include "reconcile/operation_workloads.h"

#include <gmock/gmock.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "control/admin_service.h"
#include "control/deployment_service.h"
#include "control/volume_service.h"
#include "crypto/sha256.h"
#include "db/workloads.h"
#include "engine/image_file.h"
#include "reconcile_test_base.h"
#include "runtime/canary/verify_report.h"
#include "testutil/fault_injecting_vmm.h"
#include "testutil/loop_fs.h"
#include "testutil/require.h"
#include "testutil/sparse_image.h"
#include "testutil/stub_vmm.h"

namespace kindling::reconcile {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using std::chrono::milliseconds;
using ::testing::HasSubstr;

class OperationWorkloadsTest : public ReconcileTest {
 protected:
  void SetUp() override {
    ReconcileTest::SetUp();
    if (HasFatalFailure()) return;
    // VolumeService wants backup settings; the workers use the fixture's
    // store whatever they say.
    fs::create_directories(dir_ / "settings-store");
    auto saved = control::UpdateBackupSettings(
        db(), master_key_, control::Actor{},
        control::BackupSettingsUpdate{.local_directory = (dir_ / "settings-store").string()});
    ASSERT_TRUE(saved) << saved.error().message;
    volumes_ = std::make_unique<control::VolumeService>(db(), master_key_);
  }

  static GuestImageCatalogue Catalogue() {
    return {{kCanaryImage, GuestImage{.kernel = "/nonexistent/vmlinux",
                                      .cmdline = "quiet kindling.mode=serve",
                                      .mount_parameter = "kindling.mount",
                                      .verify_cmdline = "quiet kindling.mode=verify"}}};
  }

  Worker& StartVmWorker(const std::string& name, const fs::path& state_dir = {}) {
    WorkerOptions options = FastOptions(name);
    if (!state_dir.empty()) options.state_dir = state_dir;
    options.vmm = &vmm_;
    options.images = Catalogue();
    return StartWorker(std::move(options));
  }

  // A volume pinned to `worker` whose image the worker made, with data the
  // test can recognise (`seed`).
  db::Volume MakeVolumeWithData(Worker& worker, std::uint64_t seed) {
    const db::Volume volume = MakePinnedVolume(worker.server_id());
    EXPECT_TRUE(WaitFor([&] { return GetVolume(volume.id).health == db::VolumeHealth::kHealthy; }))
        << "image never created";
    WriteData(worker.ImageOf(volume.id), seed);
    return GetVolume(volume.id);
  }
  static void WriteData(const fs::path& image, std::uint64_t seed) {
    testutil::PatchFile(image, 64u << 20, testutil::RandomData(3u << 20, seed));
    testutil::PatchFile(image, 700u << 20, testutil::TextData(1u << 20, seed + 1));
  }

  // Image digest with the store's chunk size, as backups' image_sha256.
  static std::string Digest(const fs::path& image) {
    auto digest = engine::DigestImageFile(image, kStoreChunkSize, 2);
    EXPECT_TRUE(digest) << image << ": " << digest.error().message();
    return digest ? crypto::DigestHex(*digest) : std::string();
  }
  static ino_t Inode(const fs::path& path) {
    struct stat st {};
    EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
    return st.st_ino;
  }

  db::Deployment Deploy(const std::string& project_id, control::DeployRequest request = {}) {
    request.image = kCanaryImage;
    auto deployed = control::DeploymentService(db()).Deploy({}, project_id, request);
    EXPECT_TRUE(deployed) << deployed.error().message;
    return deployed ? deployed->deployment : db::Deployment{};
  }
  db::Deployment GetDeployment(const std::string& id) {
    auto d = Must([&](db::Tx& tx) { return db::GetDeployment(tx, id); });
    return d ? *d : db::Deployment{};
  }
  db::Instance Newest(const std::string& deployment_id) {
    auto instances = Must([&](db::Tx& tx) {
      return db::ListInstances(tx, db::InstanceFilter{.deployment_id = deployment_id});
    });
    return instances && !instances->empty() ? instances->back() : db::Instance{};
  }
  // Waits until the deployment's newest instance runs (and is not `old`),
  // holding the volume.
  db::Instance WaitRunning(const db::Deployment& deployment, const db::Volume& volume,
                           const std::string& old = "") {
    db::Instance instance;
    const bool running = WaitFor([&] {
      instance = Newest(deployment.id);
      return instance.id != old && instance.status == db::WorkloadStatus::kRunning &&
             instance.vm_id && GetVolume(volume.id).attached_vm_id == instance.vm_id;
    });
    EXPECT_TRUE(running) << "deployment " << deployment.id << ": newest instance " << instance.id
                         << " is " << db::Name(instance.status) << " ("
                         << instance.error.value_or("") << "), old " << old;
    return instance;
  }

  db::Operation QueueBackupOf(const db::Volume& volume, control::WorkloadFlags flags = {}) {
    auto queued = volumes_->QueueBackup(control::Actor{}, volume.project_id, flags);
    EXPECT_TRUE(queued) << queued.error().message;
    return queued ? *queued : db::Operation{};
  }
  db::Operation QueueRestoreOf(const db::Volume& volume, const std::string& backup_id,
                               control::WorkloadFlags flags) {
    auto queued =
        volumes_->QueueRestore(control::Actor{}, volume.project_id, backup_id, std::nullopt, flags);
    EXPECT_TRUE(queued) << queued.error().message;
    return queued ? *queued : db::Operation{};
  }

  // A cold backup of the volume; its image digest.
  std::string BackUp(const db::Volume& volume, std::string* backup_id) {
    const db::Operation op = WaitFinished(QueueBackupOf(volume).id);
    EXPECT_EQ(op.status, db::OperationStatus::kSucceeded) << op.error.value_or("");
    *backup_id = op.backup_id.value_or("");
    return json::parse(op.result_metadata_json).value("image_sha256", std::string());
  }

  // The operation once it finished and the restart after it was recorded.
  db::Operation WaitRestartRecorded(const std::string& operation_id) {
    db::Operation op;
    const bool recorded = WaitFor([&] {
      op = GetOperation(operation_id);
      const json result = json::parse(op.result_metadata_json, nullptr, false);
      return db::IsFinished(op.status) && result.is_object() &&
             result.contains("workload_restarted");
    });
    EXPECT_TRUE(recorded) << "operation " << operation_id << " is " << db::Name(op.status)
                          << ", result " << op.result_metadata_json;
    return op;
  }

  // What a failed validation must leave: the previous image in place (the
  // same file, same content), the volume pinned here, no staged copy.
  void ExpectPreviousImageKept(Worker& worker, const db::Volume& volume, ino_t inode,
                               const std::string& digest) {
    const fs::path image = worker.ImageOf(volume.id);
    EXPECT_EQ(Inode(image), inode) << "the image file was replaced";
    EXPECT_EQ(Digest(image), digest);
    const db::Volume after = GetVolume(volume.id);
    EXPECT_EQ(after.server_id, worker.server_id());
    EXPECT_EQ(after.health, db::VolumeHealth::kHealthy);
    std::error_code ec;
    // <state>/volumes/<id>.img: restores are staged in <state>/restoring.
    const fs::path staging = image.parent_path().parent_path() / "restoring";
    EXPECT_TRUE(!fs::exists(staging, ec) || fs::is_empty(staging, ec))
        << "a staged image was left in " << staging;
  }

  fs::path StateDir(const std::string& name) { return dir_ / name; }

  crypto::Key master_key_ = crypto::RandomKey();
  std::unique_ptr<control::VolumeService> volumes_;
  testutil::StubVmm stub_;
  testutil::FaultInjectingVmm vmm_{stub_};
};

TEST_F(OperationWorkloadsTest, ABackupWithStopWorkloadStopsTheCanaryAndStartsItAgain) {
  Worker& worker = StartVmWorker("w1");
  const db::Volume volume = MakeVolumeWithData(worker, 1);
  const db::Deployment deployment = Deploy(volume.project_id);
  const db::Instance first = WaitRunning(deployment, volume);
  ASSERT_FALSE(HasFailure());

  const db::Operation queued = QueueBackupOf(volume, {.stop_workload = true});
  ASSERT_FALSE(queued.id.empty());
  EXPECT_EQ(queued.server_id, worker.server_id());
  const db::Operation done = WaitRestartRecorded(queued.id);
  ASSERT_EQ(done.status, db::OperationStatus::kSucceeded) << done.error.value_or("");

  const json request = json::parse(done.request_metadata_json);
  EXPECT_EQ(request.value("stop_workload", false), true);
  ASSERT_TRUE(request.contains("workload_stopped_at_ms")) << done.request_metadata_json;
  EXPECT_TRUE(request["workload_stopped_at_ms"].is_number_integer());
  ASSERT_TRUE(request.contains("workload_stop")) << done.request_metadata_json;
  EXPECT_EQ(request["workload_stop"].value("outcome", ""), "powered-off");
  EXPECT_GE(request["workload_stop"].value("elapsed_ms", -1), 0);
  EXPECT_EQ(request["workload_stop"].value("instance_id", ""), first.id);

  const json result = json::parse(done.result_metadata_json);
  EXPECT_EQ(result.value("workload_restarted", false), true) << done.result_metadata_json;
  ASSERT_TRUE(result.contains("downtime_ms")) << done.result_metadata_json;
  EXPECT_GE(result["downtime_ms"].get<std::int64_t>(), 0);
  EXPECT_EQ(result.value("workload_server_id", ""), worker.server_id());
  EXPECT_FALSE(result.contains("workload_restart_error")) << done.result_metadata_json;
  EXPECT_EQ(result.value("image_sha256", ""), Digest(worker.ImageOf(volume.id)));

  // The stopped instance ended for the backup; a new one holds the volume.
  auto old = Must([&](db::Tx& tx) { return db::GetInstance(tx, first.id); });
  ASSERT_TRUE(old);
  EXPECT_EQ(old->status, db::WorkloadStatus::kStopped);
  const db::Instance second = WaitRunning(deployment, volume, first.id);
  EXPECT_NE(second.id, first.id);
  EXPECT_NE(second.vm_id, first.vm_id);
  EXPECT_EQ(result.value("workload_instance_id", ""), second.id);
  EXPECT_EQ(GetDeployment(deployment.id).status, db::WorkloadStatus::kRunning);
  const db::Volume after = GetVolume(volume.id);
  EXPECT_EQ(after.status, db::VolumeStatus::kAttached);
  EXPECT_EQ(after.attached_vm_id, second.vm_id);
  auto backup = Must([&](db::Tx& tx) { return db::GetBackup(tx, *done.backup_id); });
  ASSERT_TRUE(backup);
  EXPECT_EQ(backup->status, db::BackupStatus::kSucceeded);
  EXPECT_EQ(vmm_.starts(), 2);
}

TEST_F(OperationWorkloadsTest, AGuestIgnoringThePowerButtonIsKilledAndTheBackupIsSound) {
  Worker& worker = StartVmWorker("w1");
  const db::Volume volume = MakeVolumeWithData(worker, 3);
  vmm_.SetFaults({.ignore_stop = true});
  const db::Deployment deployment = Deploy(volume.project_id, {.stop_timeout_seconds = 1});
  const db::Instance first = WaitRunning(deployment, volume);
  ASSERT_FALSE(HasFailure());
  // Written while the workload runs: the backup must hold it.
  WriteData(worker.ImageOf(volume.id), 5);
  const std::string digest = Digest(worker.ImageOf(volume.id));

  const auto queued_at = std::chrono::steady_clock::now();
  const db::Operation queued = QueueBackupOf(volume, {.stop_workload = true});
  const db::Operation done = WaitRestartRecorded(queued.id);
  ASSERT_EQ(done.status, db::OperationStatus::kSucceeded) << done.error.value_or("");
  // Not before the stop timeout.
  EXPECT_GE(std::chrono::steady_clock::now() - queued_at, milliseconds(1000));

  const json request = json::parse(done.request_metadata_json);
  ASSERT_TRUE(request.contains("workload_stop")) << done.request_metadata_json;
  EXPECT_EQ(request["workload_stop"].value("outcome", ""), "killed");
  EXPECT_GE(request["workload_stop"].value("elapsed_ms", 0), 1000);
  const json result = json::parse(done.result_metadata_json);
  EXPECT_EQ(result.value("image_sha256", ""), digest);
  EXPECT_EQ(result.value("workload_restarted", false), true) << done.result_metadata_json;
  EXPECT_GE(result.value("downtime_ms", -1), 1000);
  auto backup = Must([&](db::Tx& tx) { return db::GetBackup(tx, *done.backup_id); });
  ASSERT_TRUE(backup);
  EXPECT_EQ(backup->status, db::BackupStatus::kSucceeded);
  EXPECT_EQ(json::parse(backup->metadata_json).value("image_sha256", ""), digest);

  auto old = Must([&](db::Tx& tx) { return db::GetInstance(tx, first.id); });
  ASSERT_TRUE(old);
  EXPECT_EQ(old->status, db::WorkloadStatus::kStopped);
  auto vm = Must([&](db::Tx& tx) { return db::GetVm(tx, *first.vm_id); });
  ASSERT_TRUE(vm);
  EXPECT_EQ(vm->exit_reason, db::VmExit::kKilled);
  WaitRunning(deployment, volume, first.id);
}

TEST_F(OperationWorkloadsTest, ADamagedValidationKeepsThePreviousImageAndRestartsTheWorkload) {
  Worker& worker = StartVmWorker("w1");
  const db::Volume volume = MakeVolumeWithData(worker, 1);
  std::string backup_id;
  const std::string backed_up = BackUp(volume, &backup_id);
  ASSERT_FALSE(backup_id.empty());
  // Newer data than the backup: what a failed restore must keep.
  const fs::path image = worker.ImageOf(volume.id);
  WriteData(image, 11);
  const std::string current = Digest(image);
  ASSERT_NE(current, backed_up);
  const ino_t inode = Inode(image);
  const db::Deployment deployment = Deploy(volume.project_id);
  const db::Instance first = WaitRunning(deployment, volume);
  ASSERT_FALSE(HasFailure());

  stub_.SetVerifyConsole("canary: checking records\n" +
                         canary::VerifyConsoleLine({.records = 3, .intact = 2, .damaged = {2}}));
  const db::Operation queued =
      QueueRestoreOf(volume, backup_id, {.stop_workload = true, .validate = true});
  ASSERT_FALSE(queued.id.empty());
  EXPECT_EQ(queued.server_id, worker.server_id());
  const db::Operation done = WaitRestartRecorded(queued.id);
  ASSERT_EQ(done.status, db::OperationStatus::kFailed);
  EXPECT_THAT(done.error.value_or(""), HasSubstr("validation of the restored image failed"));
  EXPECT_THAT(done.error.value_or(""), HasSubstr("damaged: [2]"));
  EXPECT_EQ(stub_.verify_boots(), 1);

  const json result = json::parse(done.result_metadata_json);
  ASSERT_TRUE(result.contains("validation")) << done.result_metadata_json;
  EXPECT_EQ(result["validation"]["damaged"], json::array({2}));
  EXPECT_EQ(result["validation"]["records"], 3);
  EXPECT_EQ(result["validation"]["intact"], 2);
  EXPECT_EQ(result["validation"]["image"], kCanaryImage);
  ExpectPreviousImageKept(worker, volume, inode, current);
  // The verify boot's console stays for the operator.
  bool console_kept = false;
  for (const auto& entry : fs::directory_iterator(StateDir("w1") / "vms")) {
    if (!entry.path().filename().string().starts_with("verify-")) continue;
    console_kept =
        testutil::ReadFileOrDie(entry.path() / "console.log").find(canary::kVerifyConsolePrefix) !=
        std::string::npos;
  }
  EXPECT_TRUE(console_kept);

  // The workload comes back, on the image the volume kept.
  EXPECT_EQ(result.value("workload_restarted", false), true) << done.result_metadata_json;
  const db::Instance second = WaitRunning(deployment, volume, first.id);
  EXPECT_EQ(result.value("workload_instance_id", ""), second.id);
  EXPECT_EQ(GetVolume(volume.id).status, db::VolumeStatus::kAttached);
  EXPECT_EQ(Digest(image), current);
}

// The holder stops the workload and hands the restore to the target, which
// validates, takes the volume and starts the workload there.
TEST_F(OperationWorkloadsTest, ARestoreOntoAnotherWorkerStartsTheWorkloadThere) {
  Worker& holder = StartVmWorker("w1");
  Worker& target = StartVmWorker("w2");
  const db::Volume volume = MakeVolumeWithData(holder, 1);
  std::string backup_id;
  const std::string backed_up = BackUp(volume, &backup_id);
  ASSERT_FALSE(backup_id.empty());
  const db::Deployment deployment = Deploy(volume.project_id);
  const db::Instance first = WaitRunning(deployment, volume);
  ASSERT_FALSE(HasFailure());
  EXPECT_EQ(first.server_id, holder.server_id());

  stub_.SetVerifyConsole(canary::VerifyConsoleLine({.records = 1, .intact = 1}));
  auto queued =
      volumes_->QueueRestore(control::Actor{}, volume.project_id, backup_id, target.server_id(),
                             {.stop_workload = true, .validate = true});
  ASSERT_TRUE(queued) << queued.error().message;
  EXPECT_EQ(queued->server_id, holder.server_id());
  const db::Operation done = WaitRestartRecorded(queued->id);
  ASSERT_EQ(done.status, db::OperationStatus::kSucceeded) << done.error.value_or("");
  EXPECT_EQ(done.server_id, target.server_id());

  const json request = json::parse(done.request_metadata_json);
  ASSERT_TRUE(request.contains("workload_stop")) << done.request_metadata_json;
  EXPECT_EQ(request["workload_stop"].value("outcome", ""), "powered-off");
  EXPECT_EQ(request["workload_stop"].value("instance_id", ""), first.id);
  const json result = json::parse(done.result_metadata_json);
  EXPECT_EQ(result.value("workload_restarted", false), true) << done.result_metadata_json;
  EXPECT_GE(result.value("downtime_ms", -1), 0);
  EXPECT_EQ(result.value("workload_server_id", ""), target.server_id());
  EXPECT_EQ(result.value("previous_server_id", ""), holder.server_id());
  ASSERT_TRUE(result.contains("validation")) << done.result_metadata_json;
  EXPECT_EQ(result["validation"]["records"], 1);
  EXPECT_EQ(stub_.verify_boots(), 1);

  const db::Instance second = WaitRunning(deployment, volume, first.id);
  EXPECT_EQ(second.server_id, target.server_id());
  const db::Volume after = GetVolume(volume.id);
  EXPECT_EQ(after.server_id, target.server_id());
  EXPECT_EQ(after.status, db::VolumeStatus::kAttached);
  EXPECT_EQ(Digest(target.ImageOf(volume.id)), backed_up);
}

TEST_F(OperationWorkloadsTest, APassingValidationReplacesTheImage) {
  Worker& worker = StartVmWorker("w1");
  const db::Volume volume = MakeVolumeWithData(worker, 1);
  std::string backup_id;
  const std::string backed_up = BackUp(volume, &backup_id);
  ASSERT_FALSE(backup_id.empty());
  const fs::path image = worker.ImageOf(volume.id);
  WriteData(image, 21);
  ASSERT_NE(Digest(image), backed_up);

  stub_.SetVerifyConsole(canary::VerifyConsoleLine({.records = 3, .intact = 3}));
  const db::Operation queued = QueueRestoreOf(volume, backup_id, {.validate = true});
  const db::Operation done = WaitFinished(queued.id);
  ASSERT_EQ(done.status, db::OperationStatus::kSucceeded) << done.error.value_or("");
  EXPECT_EQ(stub_.verify_boots(), 1);
  const json result = json::parse(done.result_metadata_json);
  ASSERT_TRUE(result.contains("validation")) << done.result_metadata_json;
  EXPECT_EQ(result["validation"]["records"], 3);
  EXPECT_EQ(result["validation"]["intact"], 3);
  EXPECT_EQ(result["validation"]["damaged"], json::array());
  EXPECT_EQ(result["validation"]["image"], kCanaryImage);
  EXPECT_TRUE(result["validation"].contains("took_ms"));
  EXPECT_TRUE(result.contains("replaced_image_quarantine_id")) << done.result_metadata_json;
  // Nothing was stopped, so nothing restarts.
  EXPECT_FALSE(result.contains("workload_restarted")) << done.result_metadata_json;

  EXPECT_EQ(result.value("image_sha256", ""), backed_up);
  EXPECT_EQ(Digest(image), backed_up);
  const db::Volume after = GetVolume(volume.id);
  EXPECT_EQ(after.server_id, worker.server_id());
  EXPECT_EQ(after.status, db::VolumeStatus::kDetached);
  // A passed validation leaves no verify files behind.
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(StateDir("w1") / "vms", ec))
    EXPECT_FALSE(entry.path().filename().string().starts_with("verify-")) << entry.path();
}

TEST_F(OperationWorkloadsTest, AVerifyBootWithoutAReportFailsTheRestore) {
  Worker& worker = StartVmWorker("w1");
  const db::Volume volume = MakeVolumeWithData(worker, 1);
  std::string backup_id;
  BackUp(volume, &backup_id);
  ASSERT_FALSE(backup_id.empty());
  const fs::path image = worker.ImageOf(volume.id);
  WriteData(image, 31);
  const std::string current = Digest(image);
  const ino_t inode = Inode(image);

  stub_.SetVerifyConsole("Kernel panic - not syncing: VFS: Unable to mount root fs");
  const db::Operation done = WaitFinished(QueueRestoreOf(volume, backup_id, {.validate = true}).id);
  ASSERT_EQ(done.status, db::OperationStatus::kFailed);
  EXPECT_THAT(done.error.value_or(""), HasSubstr("printed no report"));
  EXPECT_THAT(done.error.value_or(""), HasSubstr("Kernel panic"));  // the console's tail
  ExpectPreviousImageKept(worker, volume, inode, current);
}

TEST_F(OperationWorkloadsTest, AValidationOnAWorkerWithoutAVmmFails) {
  Worker& worker = StartWorker(FastOptions("w1"));
  const db::Volume volume = MakeVolumeWithData(worker, 1);
  std::string backup_id;
  BackUp(volume, &backup_id);
  ASSERT_FALSE(backup_id.empty());
  const fs::path image = worker.ImageOf(volume.id);
  WriteData(image, 41);
  const std::string current = Digest(image);
  const ino_t inode = Inode(image);

  const db::Operation done = WaitFinished(QueueRestoreOf(volume, backup_id, {.validate = true}).id);
  ASSERT_EQ(done.status, db::OperationStatus::kFailed);
  EXPECT_THAT(done.error.value_or(""), HasSubstr("validation of the restored image"));
  EXPECT_THAT(done.error.value_or(""), HasSubstr("no VMM"));
  EXPECT_THAT(done.error.value_or(""), HasSubstr("the previous image stays in place"));
  ExpectPreviousImageKept(worker, volume, inode, current);
  EXPECT_EQ(stub_.verify_boots(), 0);
}

// Live backups: a worker whose volumes directory takes reflink clones (XFS
// here) backs up a running workload's volume with its VM paused only for the
// clone; the workload keeps running and keeps the volume attached.
TEST_F(OperationWorkloadsTest, ALiveBackupPausesTheWorkloadOnlyForTheClone) {
  std::string why;
  KINDLING_REQUIRE(testutil::LoopFilesystem::Available(testutil::LoopFsKind::kXfs, &why), why);
  auto xfs = testutil::LoopFilesystem::Create(testutil::LoopFsKind::kXfs, &why);
  ASSERT_TRUE(xfs) << why;
  Worker& worker = StartVmWorker("w1", xfs->NewDir("state"));
  const db::Volume volume = MakeVolumeWithData(worker, 5);
  const db::Deployment deployment = Deploy(volume.project_id);
  const db::Instance first = WaitRunning(deployment, volume);
  ASSERT_FALSE(HasFailure());

  // No stop_workload: queued live on the workload's server.
  const db::Operation queued = QueueBackupOf(volume);
  ASSERT_FALSE(queued.id.empty());
  EXPECT_EQ(queued.server_id, worker.server_id());
  EXPECT_EQ(json::parse(queued.request_metadata_json).value("live_snapshot", false), true);
  EXPECT_EQ(GetVolume(volume.id).status, db::VolumeStatus::kAttached);
  const db::Operation done = WaitFinished(queued.id);
  ASSERT_EQ(done.status, db::OperationStatus::kSucceeded) << done.error.value_or("");
  json result = json::parse(done.result_metadata_json);
  EXPECT_EQ(result.value("live", false), true) << done.result_metadata_json;
  EXPECT_EQ(result.value("snapshot", false), true) << done.result_metadata_json;
  ASSERT_TRUE(result.contains("pause_ms")) << done.result_metadata_json;
  EXPECT_GE(result["pause_ms"].get<std::int64_t>(), 0);
  EXPECT_EQ(result.value("read_path", ""), "full");  // no earlier snapshot
  EXPECT_EQ(result.value("image_sha256", ""), Digest(worker.ImageOf(volume.id)));
  EXPECT_EQ(stub_.pauses(), 1);
  EXPECT_FALSE(stub_.IsPaused(worker.ImageOf(volume.id))) << "the workload was not resumed";

  // The same VM still runs and holds the volume: nothing was stopped.
  EXPECT_EQ(vmm_.starts(), 1);
  EXPECT_EQ(Newest(deployment.id).id, first.id);
  EXPECT_EQ(Newest(deployment.id).status, db::WorkloadStatus::kRunning);
  db::Volume after = GetVolume(volume.id);
  EXPECT_EQ(after.status, db::VolumeStatus::kAttached);
  EXPECT_EQ(after.attached_vm_id, first.vm_id);

  // The workload writes; the next live backup reads only what changed.
  testutil::PatchFile(worker.ImageOf(volume.id), 300u << 20, testutil::RandomData(8192, 77));
  const db::Operation second = WaitFinished(QueueBackupOf(volume).id);
  ASSERT_EQ(second.status, db::OperationStatus::kSucceeded) << second.error.value_or("");
  result = json::parse(second.result_metadata_json);
  EXPECT_EQ(result.value("read_path", ""), "changed-blocks") << second.result_metadata_json;
  // Only the changed chunk is read: its 8 KiB of data (the rest is a hole).
  EXPECT_EQ(result.value("bytes_read", std::uint64_t{0}), 8192u) << second.result_metadata_json;
  EXPECT_GT(result.value("bytes_skipped", std::uint64_t{0}), 0u);
  EXPECT_EQ(result.value("image_sha256", ""), Digest(worker.ImageOf(volume.id)));
  EXPECT_EQ(stub_.pauses(), 2);
  after = GetVolume(volume.id);
  EXPECT_EQ(after.status, db::VolumeStatus::kAttached);
  EXPECT_EQ(after.attached_vm_id, first.vm_id);
  EXPECT_EQ(vmm_.starts(), 1);
}

TEST_F(OperationWorkloadsTest, ABackupOfARunningWorkloadOnAServerWithoutReflinkIsRefused) {
  std::string why;
  KINDLING_REQUIRE(testutil::LoopFilesystem::Available(testutil::LoopFsKind::kExt4, &why), why);
  auto ext4 = testutil::LoopFilesystem::Create(testutil::LoopFsKind::kExt4, &why);
  ASSERT_TRUE(ext4) << why;
  Worker& worker = StartVmWorker("w1", ext4->NewDir("state"));
  const db::Volume volume = MakeVolumeWithData(worker, 6);
  const db::Deployment deployment = Deploy(volume.project_id);
  WaitRunning(deployment, volume);
  ASSERT_FALSE(HasFailure());

  auto refused = volumes_->QueueBackup(control::Actor{}, volume.project_id, {});
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().http_status, 409);
  EXPECT_EQ(refused.error().code, control::kCodeVolumeAttached);
  EXPECT_EQ(stub_.pauses(), 0);
  EXPECT_EQ(GetVolume(volume.id).status, db::VolumeStatus::kAttached);
}

}  // namespace
}  // namespace kindling::reconcile
