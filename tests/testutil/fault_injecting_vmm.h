// FaultInjectingVmm: a wrapper around a real Vmm that makes chosen calls
// fail, for tests of what a caller (the worker) does when a VM will not
// start, never gets ready, crashes, or will not stop. Calls without a fault
// go to the real VM. Thread-safe.
#pragma once

#include <mutex>
#include <optional>

#include "runtime/vmm.h"

namespace kindling::testutil {

struct VmFaults {
  // Start fails with this kind (nothing is started).
  std::optional<ErrorKind> start_error{};
  // WaitReady waits its timeout and fails (kTransient) without asking the
  // guest, as if it never came up.
  bool never_ready = false;
  // Right after a successful WaitReady, the VM is killed as if it crashed:
  // Poll reports the exit.
  bool crash_when_ready = false;
  // Stop does not press the power button: the VM is killed at the timeout
  // (StopOutcome::kKilled), as with a guest that ignores the button.
  bool ignore_stop = false;
};

class FaultInjectingVmm final : public vmm::VmmWrapper {
 public:
  explicit FaultInjectingVmm(vmm::Vmm& base) : VmmWrapper(base) {}

  // Applies to instances started from now on (and to Start itself).
  void SetFaults(VmFaults faults);
  int starts() const;

  Result<std::unique_ptr<vmm::VmInstance>> Start(const vmm::VmSpec& spec) override;

 private:
  mutable std::mutex mutex_;
  VmFaults faults_;
  int starts_ = 0;
};

}  // namespace kindling::testutil
