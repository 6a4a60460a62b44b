// Drills: the canary guest (guest/, built into KINDLING_GUEST_DIR) on the
// runtime detected on this host (TCG on CI) with a fresh ext4 volume:
// records written over the forwarded port survive a clean stop and read back
// intact in a second boot (and a record damaged on the volume meanwhile is
// named by a third); a second VM on the same image is refused while the
// first runs; a guest that ignores the power button is killed after the stop
// timeout; a guest kernel that panics ends the VM. Missing guest artefacts
// fail the drills: the guest_image target builds them (KINDLING_BUILD_GUEST,
// on in optimised builds).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "runtime/canary/guest_cmdline.h"
#include "runtime/canary/record_store.h"
#include "runtime/canary/verify_report.h"
#include "common/subprocess.h"
#include "testutil/temp_dir.h"
#include "runtime/detect.h"
#include "runtime/vmm.h"

#ifndef KINDLING_GUEST_DIR
#define KINDLING_GUEST_DIR ""
#endif

namespace kindling::vmm {
namespace {

using canary::GuestBoot;
using canary::GuestMode;
using std::chrono::milliseconds;
using std::chrono::seconds;

// Generous: TCG on a loaded two-core CI machine, other tests running beside.
constexpr auto kBootTimeout = seconds(90);
constexpr auto kStopTimeout = seconds(30);

const std::filesystem::path kGuestDir = KINDLING_GUEST_DIR;

class CanaryDrillTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(kGuestDir.empty())
        << "this build does not make the canary guest (KINDLING_BUILD_GUEST=OFF, the default in "
           "sanitizer builds, which cannot link the static guest binary): run the drills in the "
           "optimised build";
    const auto kernel = kGuestDir / "vmlinux";
    const auto initramfs = kGuestDir / "initramfs.cpio.gz";
    ASSERT_TRUE(std::filesystem::exists(kernel) && std::filesystem::exists(initramfs))
        << "the canary guest is not built (expected " << kernel << " and " << initramfs
        << "): build the guest_image target (guest/build-image.sh makes them)";
    kernel_ = kernel;
    initramfs_ = initramfs;

    auto detection = DetectRuntime(
        SystemCommandRunner(),
        {.skip_cloud_hypervisor = true, .probe_kernel = kernel_, .scratch_dir = temp_.path()});
    ASSERT_TRUE(detection) << detection.error().message();
    std::string notes;
    for (const std::string& note : detection->notes) notes += "\n  " + note;
    std::cout << "runtime: " << RuntimeName(detection->runtime) << notes << "\n";
    auto vmm = NewVmm(*detection, /*die_with_parent_thread=*/true);
    ASSERT_TRUE(vmm) << vmm.error().message();
    vmm_ = std::move(*vmm);

    // A fresh ext4 volume, as the worker makes them: a sparse file, mkfs.
    image_ = temp_ / "volume.img";
    testutil::WriteFile(image_, "");
    std::filesystem::resize_file(image_, 64 << 20);
    auto mkfs = SystemCommandRunner().Run(
        {.args = {"/usr/sbin/mkfs.ext4", "-q", "-F", "-E", "nodiscard", image_.string()}});
    ASSERT_TRUE(mkfs && mkfs->exit_status == 0) << (mkfs ? mkfs->errors : mkfs.error().message());
  }

  VmSpec Spec(const std::string& name, const GuestBoot& boot) const {
    return VmSpec{.name = name,
                  .kernel = kernel_,
                  .initramfs = initramfs_,
                  .cmdline = canary::GuestKernelCmdline(boot),
                  .volume_image = image_,
                  .console_log = temp_ / (name + ".console.log"),
                  .runtime_dir = temp_ / name};
  }

  std::unique_ptr<VmInstance> StartReady(const VmSpec& spec) {
    auto vm = vmm_->Start(spec);
    EXPECT_TRUE(vm) << vm.error().message();
    if (!vm) return nullptr;
    const auto start = std::chrono::steady_clock::now();
    auto ready = (*vm)->WaitReady(kBootTimeout);
    EXPECT_TRUE(ready) << ready.error().message();
    if (!ready) return nullptr;
    std::cout << spec.name << ": ready in "
              << std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - start)
                     .count()
              << " ms (after Start)\n";
    return std::move(*vm);
  }

  // Boots the guest in verify mode until it powers off; the report it
  // printed on the console.
  canary::VerifyReport VerifyBoot(const std::string& name) {
    const VmSpec spec = Spec(name, {.mode = GuestMode::kVerify});
    auto verifier = vmm_->Start(spec);
    EXPECT_TRUE(verifier) << verifier.error().message();
    if (!verifier) return {};
    auto exit = (*verifier)->WaitExit(kBootTimeout);
    EXPECT_TRUE(exit) << "the verify boot did not power off";
    if (exit) {
      EXPECT_TRUE(exit->clean()) << DescribeExit(*exit);
    }
    const std::string console = testutil::ReadFileOrDie(spec.console_log);
    auto report = canary::FindVerifyReport(console);
    EXPECT_TRUE(report) << report.error().message() << "; console:\n" << console;
    return report ? *report : canary::VerifyReport{};
  }

  // Flips the last byte of record `id` inside the image (not in use), with
  // debugfs from e2fsprogs.
  void CorruptRecord(std::uint64_t id) {
    const std::string name = canary::RecordFileName(id);
    auto dumped = SystemCommandRunner().Run(
        {.args = {"/usr/sbin/debugfs", "-R", "cat canary/" + name, image_.string()}});
    ASSERT_TRUE(dumped && dumped->exit_status == 0 && !dumped->output.empty());
    std::string content = dumped->output;
    content.back() = static_cast<char>(content.back() ^ 0x01);
    testutil::WriteFile(temp_ / "corrupt.rec", content);
    testutil::WriteFile(temp_ / "corrupt.cmds", "cd canary\nrm " + name + "\nwrite " +
                                                    (temp_ / "corrupt.rec").string() + " " + name +
                                                    "\n");
    auto written =
        SystemCommandRunner().Run({.args = {"/usr/sbin/debugfs", "-w", "-f",
                                            (temp_ / "corrupt.cmds").string(), image_.string()}});
    ASSERT_TRUE(written && written->exit_status == 0);
  }

  testutil::TempDir temp_;
  std::filesystem::path kernel_;
  std::filesystem::path initramfs_;
  std::filesystem::path image_;
  std::unique_ptr<Vmm> vmm_;
};

TEST_F(CanaryDrillTest, RecordsSurviveACleanStopAndDamageIsFound) {
  constexpr int kRecords = 20;
  auto vm = StartReady(Spec("serve", {}));
  ASSERT_TRUE(vm);

  httplib::Client client("127.0.0.1", vm->host_port());
  client.set_connection_timeout(seconds(10));
  client.set_read_timeout(seconds(30));
  for (int i = 1; i <= kRecords; ++i) {
    auto posted = client.Post(
        "/records",
        "record " + std::to_string(i) + " " + std::string(static_cast<std::size_t>(i) * 100, 'x'),
        "application/octet-stream");
    ASSERT_TRUE(posted) << httplib::to_string(posted.error());
    ASSERT_EQ(posted->status, 201) << posted->body;
    EXPECT_EQ(nlohmann::json::parse(posted->body)["id"], i);
  }
  auto live = client.Get("/records/verify");
  ASSERT_TRUE(live);
  EXPECT_EQ(live->body, R"({"records":20,"intact":20,"damaged":[]})");

  // A second VM on the same image, while the first runs: refused by the lock.
  auto second = vmm_->Start(Spec("intruder", {}));
  ASSERT_FALSE(second) << "a second VM started on an image in use";
  EXPECT_EQ(second.error().kind(), ErrorKind::kFailedPrecondition) << second.error().message();
  EXPECT_THAT(second.error().message(), ::testing::HasSubstr("in use"));

  auto stopped = vm->Stop(kStopTimeout);
  ASSERT_TRUE(stopped) << stopped.error().message();
  EXPECT_EQ(stopped->outcome, StopOutcome::kPoweredOff) << StopOutcomeName(stopped->outcome);
  EXPECT_TRUE(stopped->exit.clean()) << DescribeExit(stopped->exit);
  std::cout << "clean stop in " << stopped->elapsed.count() << " ms\n";
  vm.reset();

  // Second boot, verify mode: the guest checks every record and powers off.
  EXPECT_EQ(canary::VerifyReportJson(VerifyBoot("verify")),
            R"({"records":20,"intact":20,"damaged":[]})");

  // A record damaged on the volume while no VM runs is named by the next
  // verify boot.
  CorruptRecord(3);
  EXPECT_EQ(canary::VerifyReportJson(VerifyBoot("verify-damaged")),
            R"({"records":20,"intact":19,"damaged":[3]})");
}

TEST_F(CanaryDrillTest, AGuestIgnoringThePowerButtonIsKilledAfterTheTimeout) {
  auto vm = StartReady(Spec("stubborn", {.ignore_powerdown = true}));
  ASSERT_TRUE(vm);
  constexpr milliseconds kTimeout(1500);
  auto stopped = vm->Stop(kTimeout);
  ASSERT_TRUE(stopped) << stopped.error().message();
  EXPECT_EQ(stopped->outcome, StopOutcome::kKilled) << StopOutcomeName(stopped->outcome);
  EXPECT_EQ(stopped->exit.reason, "killed");
  EXPECT_FALSE(stopped->exit.clean());
  EXPECT_GE(stopped->elapsed, kTimeout);
  // It stays ended: a second stop reports that.
  auto again = vm->Stop(kTimeout);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->outcome, StopOutcome::kAlreadyExited);
}

TEST_F(CanaryDrillTest, AGuestKernelPanicEndsTheVm) {
  // No init to run: the kernel panics, and a panic ends the VM.
  VmSpec spec = Spec("panic", {});
  spec.cmdline = "quiet rdinit=/no-such-init";
  auto vm = vmm_->Start(spec);
  ASSERT_TRUE(vm) << vm.error().message();
  auto ready = (*vm)->WaitReady(kBootTimeout);
  ASSERT_FALSE(ready);
  EXPECT_EQ(ready.error().kind(), ErrorKind::kFailedPrecondition) << ready.error().message();
  auto exit = (*vm)->Poll();
  ASSERT_TRUE(exit);
  EXPECT_EQ(exit->reason, "guest-reset") << DescribeExit(*exit);
  EXPECT_FALSE(exit->clean());
  EXPECT_THAT(testutil::ReadFileOrDie(spec.console_log), ::testing::HasSubstr("Kernel panic"));
}

}  // namespace
}  // namespace kindling::vmm
