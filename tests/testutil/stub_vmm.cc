#include "testutil/stub_vmm.h"

#include <chrono>
#include <condition_variable>
#include <optional>

#include "runtime/canary/verify_report.h"
#include "testutil/temp_dir.h"

namespace kindling::testutil {
namespace {

using std::chrono::milliseconds;

constexpr std::string_view kVerifyMode = "kindling.mode=verify";

class StubVm final : public vmm::VmInstance {
 public:
  StubVm(vmm::VmSpec spec, std::shared_ptr<StubState> state, std::uint16_t port)
      : spec_(std::move(spec)), state_(std::move(state)), port_(port) {}
  ~StubVm() override { Kill(); }

  const vmm::VmSpec& spec() const override { return spec_; }
  std::uint16_t host_port() const override { return port_; }
  Status WaitReady(milliseconds) override {
    std::lock_guard lock(mu_);
    if (exit_) return FailedPrecondition("VM " + spec_.name + " ended before it was ready");
    return OkStatus();
  }
  Result<vmm::StopResult> Stop(milliseconds) override {
    std::lock_guard lock(mu_);
    if (exit_) return vmm::StopResult{.outcome = vmm::StopOutcome::kAlreadyExited, .exit = *exit_};
    End(vmm::VmExit{.exit_status = 0, .reason = "guest-shutdown"});
    return vmm::StopResult{.outcome = vmm::StopOutcome::kPoweredOff, .exit = *exit_};
  }
  std::optional<vmm::VmExit> Poll() override {
    std::lock_guard lock(mu_);
    return exit_;
  }
  std::optional<vmm::VmExit> WaitExit(milliseconds timeout) override {
    std::unique_lock lock(mu_);
    ended_.wait_for(lock, timeout, [&] { return exit_.has_value(); });
    return exit_;
  }
  vmm::VmExit Kill() override {
    std::lock_guard lock(mu_);
    if (!exit_) End(vmm::VmExit{.exit_status = 137, .reason = "killed"});
    return *exit_;
  }
  Status Pause() override {
    std::lock_guard lock(mu_);
    if (exit_) return FailedPrecondition("VM " + spec_.name + " has ended");
    if (paused_) return FailedPrecondition("VM " + spec_.name + " is paused already");
    paused_ = true;
    std::lock_guard state_lock(state_->mu);
    ++state_->pauses;
    state_->paused.insert(spec_.volume_image);
    return OkStatus();
  }
  Status Resume() override {
    std::lock_guard lock(mu_);
    if (!paused_) return FailedPrecondition("VM " + spec_.name + " is not paused");
    paused_ = false;
    std::lock_guard state_lock(state_->mu);
    state_->paused.erase(spec_.volume_image);
    return OkStatus();
  }

  // The guest powers itself off (the verify mode, done).
  void PowerOff() {
    std::lock_guard lock(mu_);
    if (!exit_) End(vmm::VmExit{.exit_status = 0, .reason = "guest-shutdown"});
  }

 private:
  // REQUIRES: mu_ held.
  void End(vmm::VmExit exit) {
    exit_ = std::move(exit);
    {
      std::lock_guard lock(state_->mu);
      state_->locked.erase(spec_.volume_image);
    }
    ended_.notify_all();
  }

  const vmm::VmSpec spec_;
  const std::shared_ptr<StubState> state_;
  const std::uint16_t port_;
  std::mutex mu_;
  std::condition_variable ended_;
  std::optional<vmm::VmExit> exit_;  // guarded by mu_
  bool paused_ = false;              // guarded by mu_
};

}  // namespace

StubVmm::StubVmm() { state_->verify_console = canary::VerifyConsoleLine({}); }

void StubVmm::SetVerifyConsole(std::string text) {
  std::lock_guard lock(state_->mu);
  state_->verify_console = std::move(text);
}

int StubVmm::pauses() const {
  std::lock_guard lock(state_->mu);
  return state_->pauses;
}

bool StubVmm::IsPaused(const std::filesystem::path& volume_image) const {
  std::lock_guard lock(state_->mu);
  return state_->paused.contains(volume_image);
}

int StubVmm::verify_boots() const {
  std::lock_guard lock(state_->mu);
  return state_->verify_boots;
}

Result<std::unique_ptr<vmm::VmInstance>> StubVmm::Start(const vmm::VmSpec& spec) {
  if (!std::filesystem::is_regular_file(spec.volume_image))
    return InvalidArgument("no image " + spec.volume_image.string());
  const bool verify = spec.cmdline.find(kVerifyMode) != std::string::npos;
  std::uint16_t port = 0;
  std::string console = "stub guest: booting " + spec.name + "\n";
  {
    std::lock_guard lock(state_->mu);
    if (!state_->locked.insert(spec.volume_image).second)
      return FailedPrecondition("volume image " + spec.volume_image.string() + " is in use");
    port = state_->next_port++;
    if (verify) {
      ++state_->verify_boots;
      console += state_->verify_console;
      if (!console.ends_with('\n')) console += '\n';
    }
  }
  std::filesystem::create_directories(spec.runtime_dir);
  WriteFile(spec.console_log, console);
  auto vm = std::make_unique<StubVm>(spec, state_, port);
  if (verify) vm->PowerOff();
  return std::unique_ptr<vmm::VmInstance>(std::move(vm));
}

}  // namespace kindling::testutil
