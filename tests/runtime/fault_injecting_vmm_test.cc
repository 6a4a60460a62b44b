#include "testutil/fault_injecting_vmm.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace kindling::testutil {
namespace {

using std::chrono::milliseconds;

// A VM that is ready at once and powers off when asked.
class StubInstance final : public vmm::VmInstance {
 public:
  explicit StubInstance(vmm::VmSpec spec) : spec_(std::move(spec)) {}
  const vmm::VmSpec& spec() const override { return spec_; }
  std::uint16_t host_port() const override { return 1234; }
  Status WaitReady(milliseconds) override { return OkStatus(); }
  Result<vmm::StopResult> Stop(milliseconds) override {
    exit_ = vmm::VmExit{.exit_status = 0, .reason = "guest-shutdown"};
    return vmm::StopResult{.outcome = vmm::StopOutcome::kPoweredOff, .exit = *exit_};
  }
  std::optional<vmm::VmExit> Poll() override { return exit_; }
  std::optional<vmm::VmExit> WaitExit(milliseconds) override { return exit_; }
  vmm::VmExit Kill() override {
    if (!exit_) exit_ = vmm::VmExit{.exit_status = 137, .reason = "killed"};
    return *exit_;
  }

 private:
  vmm::VmSpec spec_;
  std::optional<vmm::VmExit> exit_;
};

class StubVmm final : public vmm::Vmm {
 public:
  vmm::RuntimeKind runtime() const override { return vmm::RuntimeKind::kQemuMicrovmTcg; }
  Result<std::unique_ptr<vmm::VmInstance>> Start(const vmm::VmSpec& spec) override {
    return std::unique_ptr<vmm::VmInstance>(new StubInstance(spec));
  }
};

TEST(FaultInjectingVmmTest, PassesThroughWithoutFaults) {
  StubVmm base;
  FaultInjectingVmm vmm(base);
  auto vm = vmm.Start({.name = "a"});
  ASSERT_TRUE(vm);
  EXPECT_TRUE((*vm)->WaitReady(milliseconds(10)));
  auto stopped = (*vm)->Stop(milliseconds(10));
  ASSERT_TRUE(stopped);
  EXPECT_EQ(stopped->outcome, vmm::StopOutcome::kPoweredOff);
  EXPECT_EQ(vmm.runtime(), vmm::RuntimeKind::kQemuMicrovmTcg);
  EXPECT_EQ(vmm.starts(), 1);
}

TEST(FaultInjectingVmmTest, InjectsEachFault) {
  StubVmm base;
  FaultInjectingVmm vmm(base);
  vmm.SetFaults({.start_error = ErrorKind::kFailedPrecondition});
  auto refused = vmm.Start({.name = "a"});
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().kind(), ErrorKind::kFailedPrecondition);

  vmm.SetFaults({.never_ready = true});
  auto slow = vmm.Start({.name = "b"});
  ASSERT_TRUE(slow);
  auto ready = (*slow)->WaitReady(milliseconds(20));
  ASSERT_FALSE(ready);
  EXPECT_TRUE(ready.error().retryable());

  vmm.SetFaults({.crash_when_ready = true});
  auto crashing = vmm.Start({.name = "c"});
  ASSERT_TRUE(crashing);
  ASSERT_TRUE((*crashing)->WaitReady(milliseconds(20)));
  auto exit = (*crashing)->Poll();
  ASSERT_TRUE(exit);
  EXPECT_FALSE(exit->clean());

  vmm.SetFaults({.ignore_stop = true});
  auto stubborn = vmm.Start({.name = "d"});
  ASSERT_TRUE(stubborn);
  auto stopped = (*stubborn)->Stop(milliseconds(20));
  ASSERT_TRUE(stopped);
  EXPECT_EQ(stopped->outcome, vmm::StopOutcome::kKilled);
  EXPECT_EQ(stopped->exit.reason, "killed");
  EXPECT_EQ(vmm.starts(), 4);
}

}  // namespace
}  // namespace kindling::testutil
