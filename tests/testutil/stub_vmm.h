// StubVmm: a Vmm whose VMs are not VMs, for fast tests of what the worker
// does with workloads (no QEMU, no guest). The contract:
//
// - Start refuses a spec whose volume image is not a regular file
//   (kInvalidArgument) or is in use by another running stub VM
//   (kFailedPrecondition: the image is "locked" while one runs on it, as
//   QEMU's lock does). It creates the runtime directory and writes
//   "stub guest: booting <name>" to the console log; each VM gets its own
//   host port (20000 and up), nothing listens there.
// - A serving VM is ready at once (WaitReady fails only once it ended),
//   powers off at once when its power button is pressed (Stop: kPoweredOff,
//   reason "guest-shutdown", exit 0) and runs until then or until Kill
//   (reason "killed", exit 137). Wrap it in FaultInjectingVmm for guests
//   that never get ready, crash or ignore the button.
// - A VM started with "kindling.mode=verify" on its kernel command line
//   behaves as the canary's one-shot verify mode: it writes the verify
//   console text (SetVerifyConsole; by default the report line of an
//   intact volume without records, canary::VerifyConsoleLine({})) to its
//   console log after the booting line and has ended by the time Start
//   returns (reason "guest-shutdown", exit 0), holding no lock.
//
// - Pause and Resume succeed on a VM that has not ended (Pause on a paused
//   VM and Resume on a running one fail: kFailedPrecondition); pauses()
//   counts the pauses, IsPaused tells whether the VM on an image is paused.
//
// Thread-safety: thread-safe, like a real Vmm.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "runtime/vmm.h"

namespace kindling::testutil {

// What the VMs of one StubVmm share.
struct StubState {
  std::mutex mu;
  std::set<std::filesystem::path> locked;  // guarded by mu
  std::uint16_t next_port = 20000;         // guarded by mu
  std::string verify_console;              // guarded by mu
  int verify_boots = 0;                    // guarded by mu
  int pauses = 0;                          // guarded by mu
  std::set<std::filesystem::path> paused;  // guarded by mu
};

class StubVmm final : public vmm::Vmm {
 public:
  StubVmm();

  vmm::RuntimeKind runtime() const override { return vmm::RuntimeKind::kQemuMicrovmTcg; }
  Result<std::unique_ptr<vmm::VmInstance>> Start(const vmm::VmSpec& spec) override;

  // What verify-mode VMs started from now on print on their console (a
  // trailing newline is added when missing). E.g.
  // canary::VerifyConsoleLine({.records = 2, .intact = 1, .damaged = {2}}),
  // or text without a report line.
  void SetVerifyConsole(std::string text);
  // How many verify-mode VMs were started.
  int verify_boots() const;
  int pauses() const;
  bool IsPaused(const std::filesystem::path& volume_image) const;

 private:
  std::shared_ptr<StubState> state_ = std::make_shared<StubState>();
};

}  // namespace kindling::testutil
