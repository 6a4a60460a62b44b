#include "testutil/fault_injecting_vmm.h"

#include <thread>

namespace kindling::testutil {
namespace {

class FaultyInstance final : public vmm::VmInstanceWrapper {
 public:
  FaultyInstance(std::unique_ptr<vmm::VmInstance> base, VmFaults faults)
      : VmInstanceWrapper(std::move(base)), faults_(faults) {}

  Status WaitReady(std::chrono::milliseconds timeout) override {
    if (faults_.never_ready) {
      std::this_thread::sleep_for(timeout);
      return TransientError("injected: VM " + spec().name + " never got ready");
    }
    KINDLING_RETURN_IF_ERROR(base().WaitReady(timeout));
    if (faults_.crash_when_ready) base().Kill();
    return OkStatus();
  }

  Result<vmm::StopResult> Stop(std::chrono::milliseconds timeout) override {
    if (!faults_.ignore_stop) return base().Stop(timeout);
    const auto start = std::chrono::steady_clock::now();
    if (auto exit = base().Poll())
      return vmm::StopResult{.outcome = vmm::StopOutcome::kAlreadyExited, .exit = *exit};
    if (auto exit = base().WaitExit(timeout))
      return vmm::StopResult{.outcome = vmm::StopOutcome::kPoweredOff,
                             .exit = *exit,
                             .elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::steady_clock::now() - start)};
    vmm::VmExit exit = base().Kill();
    return vmm::StopResult{.outcome = vmm::StopOutcome::kKilled,
                           .exit = exit,
                           .elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::steady_clock::now() - start)};
  }

 private:
  const VmFaults faults_;
};

}  // namespace

void FaultInjectingVmm::SetFaults(VmFaults faults) {
  const std::lock_guard lock(mutex_);
  faults_ = faults;
}

int FaultInjectingVmm::starts() const {
  const std::lock_guard lock(mutex_);
  return starts_;
}

Result<std::unique_ptr<vmm::VmInstance>> FaultInjectingVmm::Start(const vmm::VmSpec& spec) {
  VmFaults faults;
  {
    const std::lock_guard lock(mutex_);
    ++starts_;
    faults = faults_;
  }
  if (faults.start_error)
    return MakeError(*faults.start_error, "injected: VM " + spec.name + " did not start");
  KINDLING_ASSIGN_OR_RETURN(std::unique_ptr<vmm::VmInstance> instance, base().Start(spec));
  return std::unique_ptr<vmm::VmInstance>(new FaultyInstance(std::move(instance), faults));
}

}  // namespace kindling::testutil
