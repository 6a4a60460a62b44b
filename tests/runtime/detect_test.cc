#include "runtime/detect.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <functional>

#include "testutil/temp_dir.h"

namespace kindling::vmm {
namespace {

using ::testing::HasSubstr;

// A CommandRunner whose answers a test scripts; it records what was run.
class ScriptedRunner final : public CommandRunner {
 public:
  using Script = std::function<CommandResult(const CommandOptions&)>;
  explicit ScriptedRunner(Script script) : script_(std::move(script)) {}
  Result<CommandResult> Run(const CommandOptions& options) override {
    runs.push_back(options.args);
    return script_(options);
  }
  std::vector<std::vector<std::string>> runs;

 private:
  Script script_;
};

bool Has(const std::vector<std::string>& args, const std::string& value) {
  return std::find(args.begin(), args.end(), value) != args.end();
}

class DetectTest : public ::testing::Test {
 protected:
  void SetUp() override {
    qemu_ = temp_ / "qemu-system-x86_64";
    MakeExecutable(qemu_);
  }
  static void MakeExecutable(const std::filesystem::path& path) {
    testutil::WriteFile(path, "#!/bin/sh\n");
    ::chmod(path.c_str(), 0755);
  }
  DetectOptions Options() const {
    return DetectOptions{.qemu_binary = qemu_,
                         .cloud_hypervisor_binary = temp_ / "no-cloud-hypervisor",
                         .probe_kernel = "/guest/vmlinux",
                         .scratch_dir = temp_.path()};
  }
  testutil::TempDir temp_;
  std::filesystem::path qemu_;
};

TEST_F(DetectTest, KvmWhenTheProbeKernelBootsUnderIt) {
  ScriptedRunner runner([](const CommandOptions& options) {
    EXPECT_TRUE(Has(options.args, "kvm"));
    return CommandResult{.exit_status = 0, .output = "Kernel panic - not syncing: VFS"};
  });
  auto detection = DetectRuntime(runner, Options());
  ASSERT_TRUE(detection) << detection.error().message();
  EXPECT_EQ(detection->runtime, RuntimeKind::kQemuMicrovmKvm);
  EXPECT_EQ(detection->binary, qemu_);
  ASSERT_EQ(runner.runs.size(), 1u);
  EXPECT_TRUE(Has(runner.runs[0], "/guest/vmlinux"));
}

TEST_F(DetectTest, TcgWhenKvmHangs) {
  // /dev/kvm can exist and still hang a guest: only a boot that ends counts.
  ScriptedRunner runner([](const CommandOptions& options) {
    if (Has(options.args, "kvm")) return CommandResult{.exit_status = 143, .timed_out = true};
    EXPECT_TRUE(Has(options.args, "isa-debug-exit,iobase=0xf4,iosize=4"));
    return CommandResult{.exit_status = 0x2a * 2 + 1};
  });
  auto detection = DetectRuntime(runner, Options());
  ASSERT_TRUE(detection) << detection.error().message();
  EXPECT_EQ(detection->runtime, RuntimeKind::kQemuMicrovmTcg);
  ASSERT_EQ(detection->notes.size(), 3u);
  EXPECT_THAT(detection->notes[1], HasSubstr("KVM: the probe kernel timed out"));
  EXPECT_EQ(runner.runs.size(), 2u);
}

TEST_F(DetectTest, NothingWorksIsNotFoundWithTheReasons) {
  ScriptedRunner runner([](const CommandOptions&) {
    return CommandResult{.exit_status = 1, .errors = "qemu: could not load kernel"};
  });
  auto detection = DetectRuntime(runner, Options());
  ASSERT_FALSE(detection);
  EXPECT_TRUE(detection.error().is_not_found());
  EXPECT_THAT(detection.error().message(), HasSubstr("could not load kernel"));
}

TEST_F(DetectTest, CloudHypervisorWhenInstalledButNotDrivenYet) {
  DetectOptions options = Options();
  options.cloud_hypervisor_binary = temp_ / "cloud-hypervisor";
  MakeExecutable(options.cloud_hypervisor_binary);
  ScriptedRunner runner([](const CommandOptions&) { return CommandResult{}; });
  auto detection = DetectRuntime(runner, options);
  ASSERT_TRUE(detection);
  EXPECT_EQ(detection->runtime, RuntimeKind::kCloudHypervisor);
  EXPECT_TRUE(runner.runs.empty());
  auto vmm = NewVmm(*detection);
  ASSERT_FALSE(vmm);
  EXPECT_EQ(vmm.error().kind(), ErrorKind::kFailedPrecondition);

  options.skip_cloud_hypervisor = true;
  options.try_kvm = false;
  ScriptedRunner tcg([](const CommandOptions&) { return CommandResult{.exit_status = 85}; });
  auto skipped = DetectRuntime(tcg, options);
  ASSERT_TRUE(skipped);
  EXPECT_EQ(skipped->runtime, RuntimeKind::kQemuMicrovmTcg);
}

TEST_F(DetectTest, NoQemuIsNotFound) {
  DetectOptions options = Options();
  options.qemu_binary = temp_ / "missing-qemu";
  ScriptedRunner runner([](const CommandOptions&) { return CommandResult{}; });
  auto detection = DetectRuntime(runner, options);
  ASSERT_FALSE(detection);
  EXPECT_THAT(detection.error().message(), HasSubstr("qemu-system-x86"));
}

}  // namespace
}  // namespace kindling::vmm
