// WorkloadReconciler against real PostgreSQL. The fast tests boot stub VMs
// (ready at once, powered off when asked) behind the fault-injecting VMM:
// boot timeouts, crashes, guests ignoring the power button, a killed
// worker's recovery, stops for operations and the worker's own stop. The
// drills (names with "Drill", optimised build only) boot the canary guest
// on the detected runtime with a real ext4 volume: deploy, write records,
// stop, start again and find them; a second deployment superseding the
// first on the same volume.
#include "reconcile/workload_reconciler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <fstream>
#include <iostream>
#include <sstream>

#include "common/subprocess.h"
#include "control/deployment_service.h"
#include "db/db_test_util.h"
#include "db/operations.h"
#include "db/servers.h"
#include "db/workloads.h"
#include "reconcile/image_reconciler.h"
#include "reconcile/leader.h"
#include "reconcile/volume_images.h"
#include "runtime/detect.h"
#include "testutil/fault_injecting_vmm.h"
#include "testutil/stub_vmm.h"
#include "testutil/temp_dir.h"

#ifndef KINDLING_GUEST_DIR
#define KINDLING_GUEST_DIR ""
#endif

extern char** environ;

namespace kindling::reconcile {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using Clock = std::chrono::steady_clock;

// A process whose command line names `tag`, as a VMM left behind names its
// VM; the caller reaps it.
pid_t SpawnLeftover(const std::string& tag) {
  std::vector<std::string> args = {"/bin/sh", "-c", "while :; do sleep 1; done", tag};
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  EXPECT_EQ(::posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ), 0);
  return pid;
}

// The exit status of child `pid` once it ended within `timeout`.
std::optional<int> WaitChild(pid_t pid, milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) return status;
    std::this_thread::sleep_for(milliseconds(20));
  }
  return std::nullopt;
}

class WorkloadTestBase : public db::DbTest {
 protected:
  void SetUp() override {
    db::DbTest::SetUp();
    if (HasFatalFailure()) return;
    org_ = MakeOrganization();
    server_ = MakeVmServer("w1");
    state_dir_ = dir_.path() / "w1";
  }

  // A project with a volume pinned to this server and its image on disk.
  struct Project {
    std::string id;
    db::Volume volume;
  };
  Project MakeProjectWithVolume(const std::string& name) {
    Project project;
    project.id = MakeProject(org_, name);
    project.volume = MakeVolume(project.id, server_);
    const auto image = ImagePath(state_dir_, project.volume.id);
    std::filesystem::create_directories(image.parent_path());
    MakeImage(image);
    return project;
  }

  // The stubs need only a file.
  virtual void MakeImage(const std::filesystem::path& image) {
    testutil::WriteFile(image, "");
    std::filesystem::resize_file(image, 1 << 20);
  }

  WorkloadReconcilerOptions Options() {
    return WorkloadReconcilerOptions{
        .server_id = server_,
        .state_dir = state_dir_,
        .images = {{kCanaryImage, GuestImage{.kernel = "/nonexistent/vmlinux",
                                             .cmdline = "quiet",
                                             .mount_parameter = "kindling.mount"}}},
        .busy = &busy_,
        .poll_interval = milliseconds(50)};
  }

  db::Deployment Deploy(const std::string& project_id, control::DeployRequest request = {}) {
    if (request.image.empty()) request.image = kCanaryImage;
    auto deployed = control::DeploymentService(db()).Deploy({}, project_id, request);
    EXPECT_TRUE(deployed) << deployed.error().message;
    return deployed ? deployed->deployment : db::Deployment{};
  }
  void StopDeployment(const std::string& project_id) {
    auto stopped = control::DeploymentService(db()).Stop({}, project_id);
    EXPECT_TRUE(stopped) << stopped.error().message;
  }
  void StartDeployment(const std::string& project_id) {
    auto started = control::DeploymentService(db()).Start({}, project_id);
    EXPECT_TRUE(started) << started.error().message;
  }

  std::vector<db::Instance> Instances(const std::string& deployment_id) {
    auto instances = Must([&](db::Tx& tx) {
      return db::ListInstances(tx, db::InstanceFilter{.deployment_id = deployment_id});
    });
    return instances ? *instances : std::vector<db::Instance>{};
  }
  db::Instance Newest(const std::string& deployment_id) {
    auto instances = Instances(deployment_id);
    return instances.empty() ? db::Instance{} : instances.back();
  }
  db::Deployment GetDeployment(const std::string& id) {
    auto d = Must([&](db::Tx& tx) { return db::GetDeployment(tx, id); });
    return d ? *d : db::Deployment{};
  }
  db::Vm GetVm(const std::optional<std::string>& id) {
    if (!id) {
      ADD_FAILURE() << "no VM";
      return {};
    }
    auto vm = Must([&](db::Tx& tx) { return db::GetVm(tx, *id); });
    return vm ? *vm : db::Vm{};
  }
  db::Volume GetVolume(const std::string& id) {
    auto v = Must([&](db::Tx& tx) { return db::GetVolume(tx, id); });
    return v ? *v : db::Volume{};
  }

  // Runs passes until `done` (every 20 ms), up to `timeout`.
  static bool PassUntil(WorkloadReconciler& reconciler, const std::function<bool()>& done,
                        milliseconds timeout = milliseconds(15'000)) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      auto pass = reconciler.ReconcileOnce();
      EXPECT_TRUE(pass) << pass.error().message();
      if (done()) return true;
      std::this_thread::sleep_for(milliseconds(20));
    }
    return done();
  }
  // A supervisor finishes (busy mark, HeldInstances) just after its last
  // row is written.
  static bool Eventually(const std::function<bool()>& done) {
    const auto deadline = Clock::now() + seconds(5);
    for (;;) {
      if (done()) return true;
      if (Clock::now() >= deadline) return false;
      std::this_thread::sleep_for(milliseconds(10));
    }
  }
  bool UntilStatus(WorkloadReconciler& reconciler, const std::string& deployment_id,
                   db::WorkloadStatus status, milliseconds timeout = milliseconds(15'000)) {
    const bool reached = PassUntil(
        reconciler, [&] { return Newest(deployment_id).status == status; }, timeout);
    EXPECT_TRUE(reached) << "instance of " << deployment_id << " is "
                         << db::Name(Newest(deployment_id).status) << ", not " << db::Name(status)
                         << "; error: " << Newest(deployment_id).error.value_or("");
    return reached;
  }

  testutil::TempDir dir_;
  std::string org_;
  std::string server_;
  std::filesystem::path state_dir_;
  BusyVolumes busy_;
};

class WorkloadReconcilerTest : public WorkloadTestBase {
 protected:
  testutil::StubVmm stub_;
  testutil::FaultInjectingVmm vmm_{stub_};
};

TEST_F(WorkloadReconcilerTest, RunsStopsAndStartsADeployment) {
  WorkloadReconciler reconciler(db(), vmm_, Options());
  const Project project = MakeProjectWithVolume("shop");
  const db::Deployment deployment = Deploy(project.id);
  ASSERT_TRUE(UntilStatus(reconciler, deployment.id, db::WorkloadStatus::kRunning));

  const db::Instance running = Newest(deployment.id);
  EXPECT_THAT(running.address.value_or(""), StartsWith("127.0.0.1:"));
  EXPECT_TRUE(running.started_at && running.ready_at);
  const db::Vm vm = GetVm(running.vm_id);
  EXPECT_EQ(vm.status, db::VmStatus::kRunning);
  EXPECT_EQ(vm.server_id, server_);
  EXPECT_EQ(vm.project_volume_id, project.volume.id);
  EXPECT_EQ(vm.runtime, "qemu-microvm-tcg");
  EXPECT_EQ(GetDeployment(deployment.id).status, db::WorkloadStatus::kRunning);
  db::Volume volume = GetVolume(project.volume.id);
  EXPECT_EQ(volume.status, db::VolumeStatus::kAttached);
  EXPECT_EQ(volume.attached_vm_id, vm.id);
  EXPECT_EQ(reconciler.HeldInstances(), std::vector<std::string>{running.id});
  // The VM's files live under vms/<vm_id>/; the guest is told the mount.
  EXPECT_TRUE(std::filesystem::exists(VmDir(state_dir_, vm.id) / "console.log"));

  StopDeployment(project.id);
  ASSERT_TRUE(UntilStatus(reconciler, deployment.id, db::WorkloadStatus::kStopped));
  const db::Instance stopped = Newest(deployment.id);
  EXPECT_EQ(stopped.id, running.id);
  EXPECT_FALSE(stopped.address);
  EXPECT_FALSE(stopped.error) << *stopped.error;
  const db::Vm ended = GetVm(stopped.vm_id);
  EXPECT_EQ(ended.status, db::VmStatus::kStopped);
  EXPECT_EQ(ended.exit_reason, db::VmExit::kPowerdown);
  EXPECT_TRUE(ended.stopped_at);
  EXPECT_EQ(GetDeployment(deployment.id).status, db::WorkloadStatus::kStopped);
  volume = GetVolume(project.volume.id);
  EXPECT_EQ(volume.status, db::VolumeStatus::kDetached);
  EXPECT_FALSE(volume.attached_vm_id);
  EXPECT_TRUE(Eventually([&] { return reconciler.HeldInstances().empty(); }));
  // Stopped stays stopped.
  ASSERT_TRUE(reconciler.ReconcileOnce());
  EXPECT_EQ(Instances(deployment.id).size(), 1u);

  StartDeployment(project.id);
  ASSERT_TRUE(UntilStatus(reconciler, deployment.id, db::WorkloadStatus::kRunning));
  const db::Instance again = Newest(deployment.id);
  EXPECT_NE(again.id, running.id);
  EXPECT_NE(again.vm_id, running.vm_id);
  EXPECT_EQ(GetVolume(project.volume.id).attached_vm_id, again.vm_id);
  EXPECT_EQ(vmm_.starts(), 2);
}

TEST_F(WorkloadReconcilerTest, ANewDeploymentStartsOnceTheSupersededOneStopped) {
  WorkloadReconciler reconciler(db(), vmm_, Options());
  const Project project = MakeProjectWithVolume("shop");
  const db::Deployment first = Deploy(project.id);
  ASSERT_TRUE(UntilStatus(reconciler, first.id, db::WorkloadStatus::kRunning));
  const db::Instance old = Newest(first.id);

  const db::Deployment second = Deploy(project.id, {.memory_mib = 256});
  ASSERT_TRUE(UntilStatus(reconciler, second.id, db::WorkloadStatus::kRunning));
  const db::Instance fresh = Newest(second.id);
  const db::Instance old_after = Newest(first.id);
  EXPECT_EQ(old_after.id, old.id);
  EXPECT_EQ(old_after.status, db::WorkloadStatus::kStopped);
  EXPECT_EQ(GetVm(old_after.vm_id).exit_reason, db::VmExit::kPowerdown);
  EXPECT_EQ(GetDeployment(first.id).status, db::WorkloadStatus::kStopped);
  EXPECT_EQ(GetVm(fresh.vm_id).memory_mib, 256);
  // The old VM ended before the new one ran on the volume. (Its started_at
  // is the row's insert, stamped with the inserting transaction's start,
  // which may precede the stop's; ready_at is written after the boot.)
  ASSERT_TRUE(GetVm(fresh.vm_id).ready_at);
  EXPECT_LE(*GetVm(old_after.vm_id).stopped_at, *GetVm(fresh.vm_id).ready_at);
  EXPECT_EQ(GetVolume(project.volume.id).attached_vm_id, fresh.vm_id);
  EXPECT_EQ(Instances(second.id).size(), 1u);
}

TEST_F(WorkloadReconcilerTest, APendingInstanceOfAStoppedDeploymentEndsWithoutABoot) {
  WorkloadReconciler reconciler(db(), vmm_, Options());
  const Project project = MakeProjectWithVolume("shop");
  const db::Deployment deployment = Deploy(project.id);
  StopDeployment(project.id);
  ASSERT_TRUE(UntilStatus(reconciler, deployment.id, db::WorkloadStatus::kStopped));
  EXPECT_THAT(Newest(deployment.id).error.value_or(""), HasSubstr("stopped before"));
  EXPECT_FALSE(Newest(deployment.id).vm_id);
  EXPECT_EQ(GetDeployment(deployment.id).status, db::WorkloadStatus::kStopped);
  EXPECT_EQ(vmm_.starts(), 0);

  StartDeployment(project.id);
  ASSERT_TRUE(UntilStatus(reconciler, deployment.id, db::WorkloadStatus::kRunning));
}

TEST_F(WorkloadReconcilerTest, AnImageThisWorkerLacksFailsTheInstance) {
  WorkloadReconciler reconciler(db(), vmm_, Options());
  const Project project = MakeProjectWithVolume("shop");
  auto created = Must([&](db::Tx& tx) -> Result<db::Deployment> {
    KINDLING_ASSIGN_OR_RETURN(
        auto d, db::CreateDeployment(tx, {.project_id = project.id, .image = "nginx"}));
    KINDLING_RETURN_IF_ERROR(db::CreateInstance(tx, d.deployment.id, server_));
    return d.deployment;
  });
  ASSERT_TRUE(created);
  ASSERT_TRUE(UntilStatus(reconciler, created->id, db::WorkloadStatus::kFailed));
  EXPECT_THAT(Newest(created->id).error.value_or(""), HasSubstr("image 'nginx' is not available"));
  EXPECT_EQ(GetDeployment(created->id).status, db::WorkloadStatus::kFailed);
  EXPECT_EQ(vmm_.starts(), 0);
}

TEST_F(WorkloadReconcilerTest, AnInstanceWhoseVolumeMovedIsQueuedWhereTheVolumeIs) {
  WorkloadReconciler reconciler(db(), vmm_, Options());
  const Project project = MakeProjectWithVolume("shop");
  const db::Deployment deployment = Deploy(project.id);
  const std::string other = MakeVmServer("w2");
  ASSERT_TRUE(Must([&](db::Tx& tx) {
    return db::UpdateVolumeState(tx, project.volume.id, {.server_id = db::SetTo(other)});
  }));
  ASSERT_TRUE(reconciler.ReconcileOnce());
  const auto instances = Instances(deployment.id);
  ASSERT_EQ(instances.size(), 2u);
  EXPECT_EQ(instances[0].status, db::WorkloadStatus::kStopped);
  EXPECT_THAT(instances[0].error.value_or(""), HasSubstr("moved to server " + other));
  EXPECT_EQ(instances[1].status, db::WorkloadStatus::kPending);
  EXPECT_EQ(instances[1].server_id, other);
  EXPECT_EQ(vmm_.starts(), 0);
}

TEST_F(WorkloadReconcilerTest, ABootTimeoutFailsTheInstanceAndDetachesTheVolume) {
  WorkloadReconciler reconciler(db(), vmm_, Options());
  const Project project = MakeProjectWithVolume("shop");
  vmm_.SetFaults({.never_ready = true});
  const db::Deployment deployment = Deploy(project.id, {.boot_timeout_seconds = 5});
  const auto start = Clock::now();
  ASSERT_TRUE(UntilStatus(reconciler, deployment.id, db::WorkloadStatus::kFailed, seconds(20)));
  EXPECT_GE(Clock::now() - start, seconds(5));

  const db::Instance failed = Newest(deployment.id);
  EXPECT_THAT(failed.error.value_or(""), HasSubstr("not ready within 5 s"));
  EXPECT_THAT(failed.error.value_or(""), HasSubstr("stub guest: booting"));  // the console
  EXPECT_FALSE(failed.address);
  const db::Vm vm = GetVm(failed.vm_id);
  EXPECT_EQ(vm.status, db::VmStatus::kCrashed);
  EXPECT_EQ(vm.exit_reason, db::VmExit::kKilled);
  const db::Deployment after = GetDeployment(deployment.id);
  EXPECT_EQ(after.status, db::WorkloadStatus::kFailed);
  EXPECT_THAT(after.error.value_or(""), HasSubstr("not ready within 5 s"));
  const db::Volume volume = GetVolume(project.volume.id);
  EXPECT_EQ(volume.status, db::VolumeStatus::kDetached);
  EXPECT_FALSE(volume.attached_vm_id);
  EXPECT_THAT(volume.last_error.value_or(""), StartsWith(kWorkloadErrorPrefix));
  // A failure is not retried by itself.
  ASSERT_TRUE(reconciler.ReconcileOnce());
  EXPECT_EQ(Instances(deployment.id).size(), 1u);

  // A start that works clears the volume's error.
  vmm_.SetFaults({});
  StartDeployment(project.id);
  ASSERT_TRUE(UntilStatus(reconciler, deployment.id, db::WorkloadStatus::kRunning));
  EXPECT_FALSE(GetVolume(project.volume.id).last_error);
}

TEST_F(WorkloadReconcilerTest, AVmThatStartsAndFailsAtOnceIsRecorded) {
  WorkloadReconciler reconciler(db(), vmm_, Options());
  const Project project = MakeProjectWithVolume("shop");
  vmm_.SetFaults({.start_error = ErrorKind::kIo});
  const db::Deployment deployment = Deploy(project.id);
  ASSERT_TRUE(UntilStatus(reconciler, deployment.id, db::WorkloadStatus::kFailed));
  EXPECT_THAT(Newest(deployment.id).error.value_or(""), HasSubstr("the VM did not start"));
  EXPECT_EQ(GetVm(Newest(deployment.id).vm_id).status, db::VmStatus::kCrashed);
  EXPECT_FALSE(GetVolume(project.volume.id).attached_vm_id);
}

TEST_F(WorkloadReconcilerTest, AVmExitingOnItsOwnFailsTheInstanceAndDetachesTheVolume) {
  WorkloadReconciler reconciler(db(), vmm_, Options());
  const Project project = MakeProjectWithVolume("shop");
  vmm_.SetFaults({.crash_when_ready = true});
  const db::Deployment deployment = Deploy(project.id);
  ASSERT_TRUE(UntilStatus(reconciler, deployment.id, db::WorkloadStatus::kFailed));

  const db::Instance failed = Newest(deployment.id);
  EXPECT_THAT(failed.error.value_or(""), HasSubstr("the VM exited"));
  EXPECT_FALSE(failed.address);
  const db::Vm vm = GetVm(failed.vm_id);
  EXPECT_EQ(vm.status, db::VmStatus::kCrashed);
  EXPECT_EQ(vm.exit_reason, db::VmExit::kCrashed);
  EXPECT_EQ(GetDeployment(deployment.id).status, db::WorkloadStatus::kFailed);
  const db::Volume volume = GetVolume(project.volume.id);
  EXPECT_EQ(volume.status, db::VolumeStatus::kDetached);
  EXPECT_FALSE(volume.attached_vm_id);
  EXPECT_THAT(volume.last_error.value_or(""), StartsWith("the workload's VM exited: "));
  // Not restarted by itself: a crashing guest would loop.
  ASSERT_TRUE(reconciler.ReconcileOnce());
  EXPECT_EQ(Instances(deployment.id).size(), 1u);
  EXPECT_TRUE(Eventually([&] { return reconciler.HeldInstances().empty(); }));
}

TEST_F(WorkloadReconcilerTest, AGuestIgnoringThePowerButtonIsKilled) {
  WorkloadReconciler reconciler(db(), vmm_, Options());
  const Project project = MakeProjectWithVolume("shop");
  vmm_.SetFaults({.ignore_stop = true});
  const db::Deployment deployment = Deploy(project.id, {.stop_timeout_seconds = 1});
  ASSERT_TRUE(UntilStatus(reconciler, deployment.id, db::WorkloadStatus::kRunning));
  StopDeployment(project.id);
  const auto start = Clock::now();
  ASSERT_TRUE(UntilStatus(reconciler, deployment.id, db::WorkloadStatus::kStopped));
  EXPECT_GE(Clock::now() - start, milliseconds(900));

  const db::Instance stopped = Newest(deployment.id);
  EXPECT_THAT(stopped.error.value_or(""), HasSubstr("killed"));
  const db::Vm vm = GetVm(stopped.vm_id);
  EXPECT_EQ(vm.status, db::VmStatus::kStopped);
  EXPECT_EQ(vm.exit_reason, db::VmExit::kKilled);
  EXPECT_EQ(GetDeployment(deployment.id).status, db::WorkloadStatus::kStopped);
  EXPECT_FALSE(GetVolume(project.volume.id).attached_vm_id);
  EXPECT_EQ(GetVolume(project.volume.id).status, db::VolumeStatus::kDetached);
}

// An operator's start while the VM is still stopping: the API queues
// nothing (an instance is live), so the stop's end queues the next one.
TEST_F(WorkloadReconcilerTest, AStartDuringAStopRunsItAgainAfterwards) {
  WorkloadReconciler reconciler(db(), vmm_, Options());
  const Project project = MakeProjectWithVolume("shop");
  vmm_.SetFaults({.ignore_stop = true});
  const db::Deployment deployment = Deploy(project.id, {.stop_timeout_seconds = 1});
  ASSERT_TRUE(UntilStatus(reconciler, deployment.id, db::WorkloadStatus::kRunning));
  const db::Instance first = Newest(deployment.id);
  StopDeployment(project.id);
  ASSERT_TRUE(UntilStatus(reconciler, deployment.id, db::WorkloadStatus::kStopping));
  StartDeployment(project.id);
  EXPECT_EQ(Instances(deployment.id).size(), 1u);
  vmm_.SetFaults({});
  ASSERT_TRUE(PassUntil(reconciler, [&] {
    const db::Instance newest = Newest(deployment.id);
    return newest.id != first.id && newest.status == db::WorkloadStatus::kRunning;
  }));
  EXPECT_EQ(Instances(deployment.id).size(), 2u);
  EXPECT_EQ(Instances(deployment.id).front().status, db::WorkloadStatus::kStopped);
}

TEST_F(WorkloadReconcilerTest, AVmWhoseInstanceEndedInTheDatabaseIsStopped) {
  WorkloadReconciler reconciler(db(), vmm_, Options());
  const Project project = MakeProjectWithVolume("shop");
  const db::Deployment deployment = Deploy(project.id);
  ASSERT_TRUE(UntilStatus(reconciler, deployment.id, db::WorkloadStatus::kRunning));
  const db::Instance running = Newest(deployment.id);
  ASSERT_TRUE(Must([&](db::Tx& tx) {
    return db::UpdateInstance(tx, running.id, {.status = db::WorkloadStatus::kFailed});
  }));
  ASSERT_TRUE(
      PassUntil(reconciler, [&] { return GetVm(running.vm_id).status == db::VmStatus::kStopped; }));
  EXPECT_EQ(GetVm(running.vm_id).exit_reason, db::VmExit::kPowerdown);
  // The deployment is still desired running: a new instance runs it.
  ASSERT_TRUE(PassUntil(reconciler, [&] {
    const db::Instance newest = Newest(deployment.id);
    return newest.id != running.id && newest.status == db::WorkloadStatus::kRunning;
  }));
  EXPECT_EQ(GetVolume(project.volume.id).attached_vm_id, Newest(deployment.id).vm_id);
  EXPECT_EQ(Instances(deployment.id).size(), 2u);
}

TEST_F(WorkloadReconcilerTest, ARestartedWorkerRecoversWhatTheKilledOneRan) {
  const Project shop = MakeProjectWithVolume("shop");
  const Project blog = MakeProjectWithVolume("blog");
  auto killed = std::make_unique<WorkloadReconciler>(db(), vmm_, Options());
  const db::Deployment shop_deployment = Deploy(shop.id);
  const db::Deployment blog_deployment = Deploy(blog.id);
  ASSERT_TRUE(UntilStatus(*killed, shop_deployment.id, db::WorkloadStatus::kRunning));
  ASSERT_TRUE(UntilStatus(*killed, blog_deployment.id, db::WorkloadStatus::kRunning));
  const db::Instance shop_lost = Newest(shop_deployment.id);
  const db::Instance blog_lost = Newest(blog_deployment.id);
  killed->Abandon();

  // The shop's VMM is still running; the blog's pid file names a process
  // that is not its VMM (the pid was reused).
  const pid_t leftover = SpawnLeftover("kindling-vm-" + *shop_lost.vm_id);
  const pid_t unrelated = SpawnLeftover("something-else");
  ASSERT_GT(leftover, 0);
  ASSERT_GT(unrelated, 0);
  testutil::WriteFile(VmDir(state_dir_, *shop_lost.vm_id) / "pid", std::to_string(leftover));
  testutil::WriteFile(VmDir(state_dir_, *blog_lost.vm_id) / "pid", std::to_string(unrelated));

  WorkloadReconciler restarted(db(), vmm_, Options());
  ASSERT_TRUE(restarted.RecoverAfterRestart());
  const auto killed_status = WaitChild(leftover, milliseconds(5000));
  ASSERT_TRUE(killed_status) << "the leftover VMM was not killed";
  EXPECT_TRUE(WIFSIGNALED(*killed_status) && WTERMSIG(*killed_status) == SIGKILL);
  EXPECT_FALSE(WaitChild(unrelated, milliseconds(200))) << "a process not naming the VM was killed";
  ::kill(unrelated, SIGKILL);
  WaitChild(unrelated, milliseconds(5000));

  for (const auto& [lost, project] : {std::pair{shop_lost, shop}, std::pair{blog_lost, blog}}) {
    auto instance = Must([&](db::Tx& tx) { return db::GetInstance(tx, lost.id); });
    ASSERT_TRUE(instance);
    EXPECT_EQ(instance->status, db::WorkloadStatus::kFailed);
    EXPECT_EQ(instance->error.value_or(""), "the worker restarted while it ran");
    EXPECT_FALSE(instance->address);
    const db::Vm vm = GetVm(lost.vm_id);
    EXPECT_EQ(vm.status, db::VmStatus::kCrashed);
    EXPECT_EQ(vm.exit_reason, db::VmExit::kLost);
    const db::Volume volume = GetVolume(project.volume.id);
    EXPECT_EQ(volume.status, db::VolumeStatus::kDetached);
    EXPECT_FALSE(volume.attached_vm_id);
    EXPECT_THAT(volume.last_error.value_or(""), HasSubstr("the worker restarted while it ran"));
  }
  // Both should run, so both were queued again and start with the next pass.
  EXPECT_EQ(Newest(shop_deployment.id).status, db::WorkloadStatus::kPending);
  EXPECT_EQ(GetDeployment(shop_deployment.id).status, db::WorkloadStatus::kPending);
  ASSERT_TRUE(UntilStatus(restarted, shop_deployment.id, db::WorkloadStatus::kRunning));
  ASSERT_TRUE(UntilStatus(restarted, blog_deployment.id, db::WorkloadStatus::kRunning));
  EXPECT_FALSE(GetVolume(shop.volume.id).last_error);
  // A second recovery finds nothing of its own to recover.
  ASSERT_TRUE(restarted.RecoverAfterRestart());
  EXPECT_EQ(Newest(shop_deployment.id).status, db::WorkloadStatus::kRunning);
}

TEST_F(WorkloadReconcilerTest, ALostWorkloadThatShouldNotRunStaysStopped) {
  const Project project = MakeProjectWithVolume("shop");
  auto killed = std::make_unique<WorkloadReconciler>(db(), vmm_, Options());
  const db::Deployment deployment = Deploy(project.id);
  ASSERT_TRUE(UntilStatus(*killed, deployment.id, db::WorkloadStatus::kRunning));
  killed->Abandon();
  StopDeployment(project.id);  // while no worker ran it

  WorkloadReconciler restarted(db(), vmm_, Options());
  ASSERT_TRUE(restarted.RecoverAfterRestart());
  ASSERT_TRUE(restarted.ReconcileOnce());
  EXPECT_EQ(Instances(deployment.id).size(), 1u);
  EXPECT_EQ(Newest(deployment.id).status, db::WorkloadStatus::kFailed);
  EXPECT_EQ(GetDeployment(deployment.id).status, db::WorkloadStatus::kStopped);
  // The operator's start runs it again.
  StartDeployment(project.id);
  ASSERT_TRUE(UntilStatus(restarted, deployment.id, db::WorkloadStatus::kRunning));
}

// The worker was killed and stayed away long enough for the leader to mark
// its server dead and record the workload lost (leader.h).
class DeadWorkerTest : public WorkloadReconcilerTest {
 protected:
  // Runs the deployment, kills the worker, lets the leader find it
  // dead; returns the lost instance.
  db::Instance RunAndLose(const db::Deployment& deployment) {
    auto killed = std::make_unique<WorkloadReconciler>(db(), vmm_, Options());
    EXPECT_TRUE(UntilStatus(*killed, deployment.id, db::WorkloadStatus::kRunning));
    const db::Instance lost = Newest(deployment.id);
    killed->Abandon();
    Sql("UPDATE servers SET last_heartbeat_at = now() - interval '60 seconds' WHERE id = '" +
        server_ + "'");
    Leader leader(db(), LeaderOptions{});
    auto report = leader.SweepOnce(/*with_schedules=*/false);
    EXPECT_TRUE(report) << report.error().message();
    if (report) {
      EXPECT_EQ(report->workloads_lost, std::vector<std::string>{lost.vm_id.value_or("")});
    }
    return lost;
  }
  void Revive() {
    EXPECT_TRUE(Must([&](db::Tx& tx) { return db::Heartbeat(tx, server_); }));
  }
};

TEST_F(DeadWorkerTest, AWorkerBackFromTheDeadRunsItsWorkloadAgain) {
  const Project project = MakeProjectWithVolume("shop");
  const db::Deployment deployment = Deploy(project.id);
  const db::Instance lost = RunAndLose(deployment);
  const std::string recorded = GetVm(lost.vm_id).error.value_or("");
  EXPECT_THAT(recorded, HasSubstr("died while it ran"));
  EXPECT_EQ(GetVolume(project.volume.id).status, db::VolumeStatus::kUnavailable);
  // Nobody starts it while the server is dead.
  auto refused = control::DeploymentService(db()).Start({}, project.id);
  EXPECT_FALSE(refused);

  // The worker's process comes back before its first heartbeat: recovery
  // leaves what the leader recorded, and a pass does not take the volume
  // back while the server is dead.
  WorkloadReconciler back(db(), vmm_, Options());
  ASSERT_TRUE(back.RecoverAfterRestart());
  ASSERT_TRUE(back.ReconcileOnce());
  EXPECT_EQ(GetVm(lost.vm_id).error.value_or(""), recorded);
  EXPECT_EQ(Newest(deployment.id).id, lost.id);
  EXPECT_EQ(Newest(deployment.id).error.value_or(""), recorded);
  EXPECT_EQ(GetVolume(project.volume.id).status, db::VolumeStatus::kUnavailable);

  // Its heartbeat revives the server: the volume is detached again and the
  // deployment runs again, on a new instance.
  Revive();
  ASSERT_TRUE(UntilStatus(back, deployment.id, db::WorkloadStatus::kRunning));
  const db::Instance running = Newest(deployment.id);
  EXPECT_NE(running.id, lost.id);
  EXPECT_EQ(Instances(deployment.id).size(), 2u);
  const db::Volume volume = GetVolume(project.volume.id);
  EXPECT_EQ(volume.status, db::VolumeStatus::kAttached);
  EXPECT_EQ(volume.attached_vm_id, running.vm_id);
  EXPECT_FALSE(volume.last_error);
  EXPECT_EQ(GetDeployment(deployment.id).status, db::WorkloadStatus::kRunning);
}

TEST_F(DeadWorkerTest, AWorkloadStoppedWhileItsWorkerWasDeadRunsOnAStart) {
  const Project project = MakeProjectWithVolume("shop");
  const db::Deployment deployment = Deploy(project.id);
  const db::Instance lost = RunAndLose(deployment);
  StopDeployment(project.id);
  Revive();
  WorkloadReconciler back(db(), vmm_, Options());
  ASSERT_TRUE(back.RecoverAfterRestart());
  ASSERT_TRUE(back.ReconcileOnce());
  // The volume is usable again; the deployment stays stopped as asked.
  EXPECT_EQ(GetVolume(project.volume.id).status, db::VolumeStatus::kDetached);
  EXPECT_EQ(Newest(deployment.id).id, lost.id);
  EXPECT_EQ(GetDeployment(deployment.id).status, db::WorkloadStatus::kStopped);
  // The operator's start runs it.
  StartDeployment(project.id);
  ASSERT_TRUE(UntilStatus(back, deployment.id, db::WorkloadStatus::kRunning));
}

TEST_F(DeadWorkerTest, AWorkerBackWithoutTheImageReportsItMissing) {
  const Project project = MakeProjectWithVolume("shop");
  const db::Deployment deployment = Deploy(project.id);
  RunAndLose(deployment);
  std::filesystem::remove(ImagePath(state_dir_, project.volume.id));
  ASSERT_TRUE(Must([&](db::Tx& tx) {
    return db::UpdateVolumeState(tx, project.volume.id, {.health = db::VolumeHealth::kHealthy});
  }));
  Revive();
  WorkloadReconciler back(db(), vmm_, Options());
  ASSERT_TRUE(back.ReconcileOnce());
  // The pass leaves it to the image reconciler, which says what is true now.
  EXPECT_TRUE(IsDeadWorkerError(GetVolume(project.volume.id).last_error));
  ImageQuarantine quarantine(state_dir_);
  ImageReconcilerOptions image_options;
  image_options.server_id = server_;
  image_options.state_dir = state_dir_;
  ImageReconciler images(db(), busy_, quarantine, image_options);
  ASSERT_TRUE(images.RunOnce());
  const db::Volume volume = GetVolume(project.volume.id);
  EXPECT_EQ(volume.status, db::VolumeStatus::kUnavailable);
  EXPECT_EQ(volume.health, db::VolumeHealth::kMissing);
  EXPECT_THAT(volume.last_error.value_or(""), HasSubstr("volume image missing"));
}

TEST_F(WorkloadReconcilerTest, StopForOperationAndRestartAfterOperation) {
  WorkloadReconciler reconciler(db(), vmm_, Options());
  const Project project = MakeProjectWithVolume("shop");
  const db::Deployment deployment = Deploy(project.id);
  ASSERT_TRUE(UntilStatus(reconciler, deployment.id, db::WorkloadStatus::kRunning));
  const db::Instance running = Newest(deployment.id);

  // A backup with stop_workload was queued (the volume goes backing_up) and
  // its runner stops the workload first.
  auto queued = Must([&](db::Tx& tx) {
    return db::QueueOperation(tx, {.volume_id = project.volume.id,
                                   .kind = db::OperationKind::kBackup,
                                   .server_id = server_,
                                   .create_backup = db::BackupKind::kManual});
  });
  ASSERT_TRUE(queued);
  auto stopped = reconciler.StopForOperation(project.volume.id, seconds(5), "a backup");
  ASSERT_TRUE(stopped) << stopped.error().message();
  EXPECT_TRUE(stopped->stopped);
  EXPECT_EQ(stopped->instance_id, running.id);
  EXPECT_EQ(stopped->outcome, vmm::StopOutcome::kPoweredOff);

  const db::Instance after = Newest(deployment.id);
  EXPECT_EQ(after.status, db::WorkloadStatus::kStopped);
  EXPECT_EQ(after.error.value_or(""), "stopped for a backup");
  EXPECT_EQ(GetVm(after.vm_id).exit_reason, db::VmExit::kPowerdown);
  const db::Deployment stopped_deployment = GetDeployment(deployment.id);
  EXPECT_EQ(stopped_deployment.desired_state, db::DesiredState::kRunning);
  EXPECT_EQ(stopped_deployment.status, db::WorkloadStatus::kStopped);
  db::Volume volume = GetVolume(project.volume.id);
  EXPECT_EQ(volume.status, db::VolumeStatus::kBackingUp);  // the operation's
  EXPECT_FALSE(volume.attached_vm_id);
  // Passes leave it to the operation; nothing else holds the volume.
  ASSERT_TRUE(reconciler.ReconcileOnce());
  EXPECT_EQ(Instances(deployment.id).size(), 1u);
  auto nothing = reconciler.StopForOperation(project.volume.id, seconds(5), "a backup");
  ASSERT_TRUE(nothing);
  EXPECT_FALSE(nothing->stopped);

  // Restarted while the operation is still in flight: queued, waiting.
  auto restarted = reconciler.RestartAfterOperation(project.volume.id);
  ASSERT_TRUE(restarted) << restarted.error().message();
  ASSERT_EQ(restarted->size(), 1u);
  EXPECT_EQ(restarted->front().server_id, server_);
  EXPECT_EQ(Newest(deployment.id).status, db::WorkloadStatus::kPending);
  EXPECT_EQ(GetDeployment(deployment.id).status, db::WorkloadStatus::kPending);
  // A second restart queues nothing more.
  auto again = reconciler.RestartAfterOperation(project.volume.id);
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->empty());

  // The operation ends: the next pass starts it.
  ASSERT_TRUE(Must([&](db::Tx& tx) -> Status {
    KINDLING_RETURN_IF_ERROR(db::FailOperation(tx, queued->operation.id, std::nullopt, "test"));
    KINDLING_RETURN_IF_ERROR(
        db::UpdateVolumeState(tx, project.volume.id, {.status = db::VolumeStatus::kDetached}));
    return OkStatus();
  }));
  ASSERT_TRUE(UntilStatus(reconciler, deployment.id, db::WorkloadStatus::kRunning));
  EXPECT_EQ(Instances(deployment.id).size(), 2u);
}

TEST_F(WorkloadReconcilerTest, RestartAfterOperationStartsAtOnceWhenTheVolumeIsFree) {
  WorkloadReconciler reconciler(db(), vmm_, Options());
  const Project project = MakeProjectWithVolume("shop");
  const db::Deployment deployment = Deploy(project.id);
  ASSERT_TRUE(UntilStatus(reconciler, deployment.id, db::WorkloadStatus::kRunning));
  auto stopped = reconciler.StopForOperation(project.volume.id, seconds(5), "a move");
  ASSERT_TRUE(stopped && stopped->stopped);
  auto restarted = reconciler.RestartAfterOperation(project.volume.id);
  ASSERT_TRUE(restarted);
  ASSERT_EQ(restarted->size(), 1u);
  // The pass RestartAfterOperation ran has started it.
  EXPECT_NE(Newest(deployment.id).status, db::WorkloadStatus::kPending);
  EXPECT_TRUE(Newest(deployment.id).vm_id);
  ASSERT_TRUE(UntilStatus(reconciler, deployment.id, db::WorkloadStatus::kRunning));
}

TEST_F(WorkloadReconcilerTest, ShutdownStopsEveryVmAndTheNextWorkerStartsThem) {
  const Project shop = MakeProjectWithVolume("shop");
  const Project blog = MakeProjectWithVolume("blog");
  auto first = std::make_unique<WorkloadReconciler>(db(), vmm_, Options());
  const db::Deployment shop_deployment = Deploy(shop.id);
  const db::Deployment blog_deployment = Deploy(blog.id);
  ASSERT_TRUE(UntilStatus(*first, shop_deployment.id, db::WorkloadStatus::kRunning));
  ASSERT_TRUE(UntilStatus(*first, blog_deployment.id, db::WorkloadStatus::kRunning));
  const db::Instance shop_before = Newest(shop_deployment.id);
  const db::Instance blog_before = Newest(blog_deployment.id);

  first->Shutdown();
  EXPECT_TRUE(first->HeldInstances().empty());
  for (const auto& [before, project] :
       {std::pair{shop_before, shop}, std::pair{blog_before, blog}}) {
    auto instance = Must([&](db::Tx& tx) { return db::GetInstance(tx, before.id); });
    ASSERT_TRUE(instance);
    EXPECT_EQ(instance->status, db::WorkloadStatus::kStopped);
    EXPECT_EQ(instance->error.value_or(""), "the worker stopped");
    EXPECT_EQ(GetVm(before.vm_id).exit_reason, db::VmExit::kPowerdown);
    EXPECT_FALSE(GetVolume(project.volume.id).attached_vm_id);
    EXPECT_EQ(GetVolume(project.volume.id).status, db::VolumeStatus::kDetached);
  }
  EXPECT_EQ(Newest(shop_deployment.id).status, db::WorkloadStatus::kPending);
  EXPECT_EQ(GetDeployment(shop_deployment.id).status, db::WorkloadStatus::kPending);
  EXPECT_EQ(GetDeployment(shop_deployment.id).desired_state, db::DesiredState::kRunning);
  // Nothing starts after the shutdown.
  ASSERT_TRUE(first->ReconcileOnce());
  EXPECT_EQ(Newest(shop_deployment.id).status, db::WorkloadStatus::kPending);
  first.reset();

  WorkloadReconciler next(db(), vmm_, Options());
  ASSERT_TRUE(next.RecoverAfterRestart());
  ASSERT_TRUE(UntilStatus(next, shop_deployment.id, db::WorkloadStatus::kRunning));
  ASSERT_TRUE(UntilStatus(next, blog_deployment.id, db::WorkloadStatus::kRunning));
}

TEST_F(WorkloadReconcilerTest, AnInstanceWaitsWhileItsVolumeIsBusy) {
  WorkloadReconciler reconciler(db(), vmm_, Options());
  const Project project = MakeProjectWithVolume("shop");
  const db::Deployment deployment = Deploy(project.id);
  // The image reconciler (or an operation) works on the image.
  ASSERT_TRUE(busy_.TryMark(project.volume.id));
  ASSERT_TRUE(reconciler.ReconcileOnce());
  ASSERT_TRUE(reconciler.ReconcileOnce());
  EXPECT_EQ(Newest(deployment.id).status, db::WorkloadStatus::kPending);
  EXPECT_EQ(vmm_.starts(), 0);
  busy_.Release(project.volume.id);
  ASSERT_TRUE(UntilStatus(reconciler, deployment.id, db::WorkloadStatus::kRunning));
  // The running VM marks its volume busy in turn.
  EXPECT_FALSE(busy_.TryMark(project.volume.id));
  StopDeployment(project.id);
  ASSERT_TRUE(UntilStatus(reconciler, deployment.id, db::WorkloadStatus::kStopped));
  EXPECT_TRUE(Eventually([&] { return busy_.TryMark(project.volume.id); }));
  busy_.Release(project.volume.id);
}

// --- Drills: the canary guest on the detected runtime. ---

const std::filesystem::path kGuestDir = KINDLING_GUEST_DIR;

class WorkloadDrillTest : public WorkloadTestBase {
 protected:
  void SetUp() override {
    WorkloadTestBase::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_FALSE(kGuestDir.empty())
        << "this build does not make the canary guest (sanitizer builds): run the drills in the "
           "optimised build";
    auto catalogue = CanaryCatalogue(kGuestDir);
    ASSERT_TRUE(catalogue) << catalogue.error().message();
    catalogue_ = std::move(*catalogue);
    auto detection = vmm::DetectRuntime(SystemCommandRunner(),
                                        {.skip_cloud_hypervisor = true,
                                         .probe_kernel = catalogue_.at(kCanaryImage).kernel,
                                         .scratch_dir = dir_.path()});
    ASSERT_TRUE(detection) << detection.error().message();
    std::cout << "runtime: " << vmm::RuntimeName(detection->runtime) << "\n";
    auto made = vmm::NewVmm(*detection, /*die_with_parent_thread=*/true);
    ASSERT_TRUE(made) << made.error().message();
    vmm_ = std::move(*made);
  }

  void MakeImage(const std::filesystem::path& image) override {
    auto mkfs = FindTool("mkfs.ext4");
    ASSERT_TRUE(mkfs) << mkfs.error().message();
    auto created = CreateImage(image, 1, *mkfs);
    ASSERT_TRUE(created) << created.error().message();
  }

  WorkloadReconcilerOptions DrillOptions() {
    WorkloadReconcilerOptions options = Options();
    options.images = catalogue_;
    return options;
  }

  // Generous timeouts: TCG on a loaded two-core machine.
  static control::DeployRequest Canary() {
    return {.image = kCanaryImage, .boot_timeout_seconds = 120, .stop_timeout_seconds = 30};
  }

  static httplib::Client Client(const db::Instance& instance) {
    const std::string address = instance.address.value_or("127.0.0.1:1");
    const auto colon = address.rfind(':');
    httplib::Client client(address.substr(0, colon), std::stoi(address.substr(colon + 1)));
    client.set_connection_timeout(seconds(10));
    client.set_read_timeout(seconds(30));
    return client;
  }
  static void PostRecords(const db::Instance& instance, int count) {
    httplib::Client client = Client(instance);
    for (int i = 1; i <= count; ++i) {
      auto posted =
          client.Post("/records", "record " + std::to_string(i), "application/octet-stream");
      ASSERT_TRUE(posted) << httplib::to_string(posted.error());
      ASSERT_EQ(posted->status, 201) << posted->body;
    }
  }
  static std::string Verify(const db::Instance& instance) {
    httplib::Client client = Client(instance);
    auto verified = client.Get("/records/verify");
    EXPECT_TRUE(verified) << httplib::to_string(verified.error());
    return verified ? verified->body : "";
  }

  bool UntilRunning(WorkloadReconciler& reconciler, const std::string& deployment_id) {
    const auto start = Clock::now();
    const bool running =
        UntilStatus(reconciler, deployment_id, db::WorkloadStatus::kRunning, seconds(150));
    std::cout << "deployment " << deployment_id << " running after "
              << std::chrono::duration_cast<milliseconds>(Clock::now() - start).count() << " ms\n";
    return running;
  }

  GuestImageCatalogue catalogue_;
  std::unique_ptr<vmm::Vmm> vmm_;
};

TEST_F(WorkloadDrillTest, DeployStopStartKeepsTheRecordsDrill) {
  WorkloadReconciler reconciler(db(), *vmm_, DrillOptions());
  const Project project = MakeProjectWithVolume("shop");
  const db::Deployment deployment = Deploy(project.id, Canary());
  ASSERT_TRUE(UntilRunning(reconciler, deployment.id));
  const db::Instance first = Newest(deployment.id);
  PostRecords(first, 5);
  ASSERT_FALSE(HasFatalFailure());
  EXPECT_EQ(Verify(first), R"({"records":5,"intact":5,"damaged":[]})");
  // The VMM's pid is recorded for a restarted worker, and its command line
  // names the VM (what RecoverAfterRestart checks before killing it).
  {
    std::ifstream pid_file(VmDir(state_dir_, *first.vm_id) / "pid");
    int pid = 0;
    ASSERT_TRUE(pid_file >> pid);
    std::ifstream cmdline("/proc/" + std::to_string(pid) + "/cmdline");
    std::stringstream text;
    text << cmdline.rdbuf();
    EXPECT_THAT(text.str(), HasSubstr(*first.vm_id));
  }

  StopDeployment(project.id);
  ASSERT_TRUE(UntilStatus(reconciler, deployment.id, db::WorkloadStatus::kStopped, seconds(60)));
  const db::Vm stopped = GetVm(first.vm_id);
  EXPECT_EQ(stopped.status, db::VmStatus::kStopped);
  EXPECT_EQ(stopped.exit_reason, db::VmExit::kPowerdown) << stopped.error.value_or("");
  EXPECT_FALSE(stopped.error) << *stopped.error;  // a clean power-off
  const db::Volume volume = GetVolume(project.volume.id);
  EXPECT_EQ(volume.status, db::VolumeStatus::kDetached);
  EXPECT_FALSE(volume.attached_vm_id);
  EXPECT_TRUE(Eventually(
      [&] { return !std::filesystem::exists(VmDir(state_dir_, *first.vm_id) / "pid"); }));

  StartDeployment(project.id);
  ASSERT_TRUE(UntilRunning(reconciler, deployment.id));
  const db::Instance second = Newest(deployment.id);
  EXPECT_NE(second.id, first.id);
  EXPECT_EQ(Verify(second), R"({"records":5,"intact":5,"damaged":[]})");
}

TEST_F(WorkloadDrillTest, ASecondDeploymentSupersedesTheFirstOnTheSameVolumeDrill) {
  WorkloadReconciler reconciler(db(), *vmm_, DrillOptions());
  const Project project = MakeProjectWithVolume("shop");
  const db::Deployment first = Deploy(project.id, Canary());
  ASSERT_TRUE(UntilRunning(reconciler, first.id));
  PostRecords(Newest(first.id), 3);
  ASSERT_FALSE(HasFatalFailure());

  const db::Deployment second = Deploy(project.id, Canary());
  ASSERT_TRUE(UntilRunning(reconciler, second.id));
  const db::Instance old = Newest(first.id);
  EXPECT_EQ(old.status, db::WorkloadStatus::kStopped);
  EXPECT_EQ(GetVm(old.vm_id).exit_reason, db::VmExit::kPowerdown);
  const db::Instance fresh = Newest(second.id);
  EXPECT_EQ(GetVolume(project.volume.id).attached_vm_id, fresh.vm_id);
  EXPECT_EQ(Verify(fresh), R"({"records":3,"intact":3,"damaged":[]})");

  // The worker stops: the VM powers off cleanly.
  reconciler.Shutdown();
  const db::Vm vm = GetVm(fresh.vm_id);
  EXPECT_EQ(vm.status, db::VmStatus::kStopped);
  EXPECT_EQ(vm.exit_reason, db::VmExit::kPowerdown) << vm.error.value_or("");
}

}  // namespace
}  // namespace kindling::reconcile
