// Which runtime runs VMs on this host, found by trying rather than by
// looking at device nodes: a host can have /dev/kvm and still fail to run a
// guest with it (nested virtualisation that hangs the kernel early).
//
//   cloud-hypervisor   chosen when its binary is on the host. Honest note:
//                      kindling does not drive it yet, so NewVmm refuses it
//                      (skip it with DetectOptions::skip_cloud_hypervisor).
//   qemu-microvm-kvm   QEMU's microvm with KVM: the probe kernel, booted
//                      with no root filesystem, must panic and end the VM
//                      within kvm_probe_timeout.
//   qemu-microvm-tcg   QEMU's microvm emulating the CPU: a tiny probe guest
//                      must run and report through isa-debug-exit.
//
// Thread-safety: free functions; probes run through the CommandRunner.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/subprocess.h"
#include "runtime/vmm.h"

namespace kindling::vmm {

struct DetectOptions {
  // Empty: qemu-system-x86_64 / cloud-hypervisor from /usr/bin, /usr/local/bin
  // or $PATH.
  std::filesystem::path qemu_binary{};
  std::filesystem::path cloud_hypervisor_binary{};
  bool skip_cloud_hypervisor = false;
  // The guest kernel (vmlinux) to try KVM with. Empty: KVM is not tried.
  std::filesystem::path probe_kernel{};
  std::chrono::milliseconds kvm_probe_timeout{5000};
  bool try_kvm = true;
  // Where the probes write their scratch files; empty: $TMPDIR or /tmp.
  std::filesystem::path scratch_dir{};
};

struct RuntimeDetection {
  RuntimeKind runtime = RuntimeKind::kQemuMicrovmTcg;
  std::filesystem::path binary{};    // the VMM's executable
  std::vector<std::string> notes{};  // what was tried and what came of it
};

// Errors: kNotFound when no runtime works (the notes in the message).
[[nodiscard]] Result<RuntimeDetection> DetectRuntime(CommandRunner& runner,
                                                     const DetectOptions& options);

// The Vmm for a detection: QEMU with the accelerator found (and, under TCG,
// the host's TSC rate). `die_with_parent_thread` as QemuConfig. Errors:
// kFailedPrecondition for cloud-hypervisor (not implemented yet).
[[nodiscard]] Result<std::unique_ptr<Vmm>> NewVmm(const RuntimeDetection& detection,
                                                  bool die_with_parent_thread = false);

// A minimal guest for QEMU's -kernel (a 32-bit ELF with a PVH entry note)
// that writes `code` to I/O port 0xf4: with `-device isa-debug-exit` QEMU
// then exits with status code * 2 + 1.
std::string DebugExitProbeElf(std::uint8_t code);

}  // namespace kindling::vmm
