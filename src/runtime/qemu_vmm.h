// The Vmm of vmm.h on QEMU's `microvm` machine: no PCI, no firmware to
// speak of, virtio-mmio devices described by ACPI, the kernel booted
// directly from its uncompressed ELF (PVH entry). One qemu-system-x86_64
// process per VM, driven over QMP (qmp_client.h):
//   - the volume: -drive ...,file.locking=on + virtio-blk-device, so QEMU
//     holds an OFD lock on the image and a second VM on it fails to start;
//   - the network: user-mode (slirp) with restrict=on and one hostfwd from
//     127.0.0.1:<host_port> to the guest port (guest address 10.0.2.15/24,
//     gateway 10.0.2.2, set up by the guest itself);
//   - the console: the ISA serial port (ttyS0) into a file;
//   - stop: QMP system_powerdown (the ACPI power button), then SIGKILL;
//   - pause and resume (a live backup's clone): QMP stop and cont.
//
// Thread-safety: QemuVmm is thread-safe (Start keeps no state); instances as
// in vmm.h (their QMP connection is locked, so Pause/Resume may come from
// another thread than the supervisor's).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/vmm.h"

namespace kindling::vmm {

struct QemuConfig {
  std::filesystem::path binary = "/usr/bin/qemu-system-x86_64";
  // kQemuMicrovmKvm or kQemuMicrovmTcg.
  RuntimeKind runtime = RuntimeKind::kQemuMicrovmTcg;
  // Under TCG the guest's TSC runs at the host's rate, but the kernel's
  // calibration against the emulated timers goes wrong and it can hang
  // after "Marking TSC unstable"; telling it the rate (tsc_early_khz)
  // avoids that. Set for TCG (HostTscKhz()); ignored under KVM.
  std::optional<std::uint64_t> tsc_khz{};
  // VMs end when the thread that started them ends (tests).
  bool die_with_parent_thread = false;
  // How long Start waits for QEMU's control socket to answer.
  std::chrono::milliseconds start_timeout{10'000};
};

// Paths an instance's QEMU uses besides the spec's.
struct QemuPaths {
  std::filesystem::path qmp_socket{};
};

// The full command line: what Start runs, exposed for tests. Paths are
// escaped for QEMU's option syntax (a ',' doubled).
std::vector<std::string> RenderQemuArgs(const QemuConfig& config, const VmSpec& spec,
                                        const QemuPaths& paths);

// The kernel command line QEMU passes: the console and panic settings (and
// tsc_early_khz under TCG) the VMM needs, then spec.cmdline.
std::string RenderKernelCmdline(const QemuConfig& config, const VmSpec& spec);

// The host port of the user-mode network's forward to `guest_port`, from
// the text of HMP "info usernet". kNotFound when there is none.
[[nodiscard]] Result<std::uint16_t> ParseForwardedPort(std::string_view info_usernet,
                                                       std::uint16_t guest_port);

// The host's TSC rate in kHz, measured against the monotonic clock over
// ~50 ms. nullopt off x86-64.
std::optional<std::uint64_t> HostTscKhz();

// REQUIRES: config.runtime is one of the QEMU kinds.
std::unique_ptr<Vmm> NewQemuVmm(QemuConfig config);

}  // namespace kindling::vmm
