// The VMM seam: how a worker runs a workload as a microVM with its volume
// attached. A Vmm starts VmInstances from a VmSpec; an instance is one VMM
// process (QEMU microvm today, see qemu_vmm.h) that the worker waits on for
// readiness, stops cleanly (ACPI power button, then a kill after a timeout),
// watches for exits and crashes, or kills.
//
// Contract of every implementation:
// - The volume image is attached read-write as the first virtio block device
//   (/dev/vda) and locked for the lifetime of the VM: a second VM (or any
//   other locking writer) on the same image is refused at Start with
//   kFailedPrecondition, never allowed to share it.
// - The guest's HTTP port is forwarded from 127.0.0.1:host_port on the host;
//   nothing else of the guest network is reachable from outside, and the
//   guest cannot reach the host's or any other network.
// - The guest's serial console goes to `console_log`, created anew per start.
// - A guest that reboots or panics ends the VM (nothing restarts by itself).
// - Destroying a VmInstance whose VM still runs kills it.
//
// Thread-safety: a Vmm may start instances from several threads; one
// VmInstance is used by one thread at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace kindling::vmm {

// Which VMM and accelerator runs the VMs; detected by trying (detect.h).
enum class RuntimeKind : std::uint8_t {
  kCloudHypervisor,  // "cloud-hypervisor"
  kQemuMicrovmKvm,   // "qemu-microvm-kvm"
  kQemuMicrovmTcg,   // "qemu-microvm-tcg": emulated CPU, ~10x slower, no KVM needed
};

std::string_view RuntimeName(RuntimeKind kind);
std::optional<RuntimeKind> ParseRuntimeName(std::string_view name);

struct VmSpec {
  std::string name{};                 // for messages and process listings
  std::filesystem::path kernel{};     // uncompressed vmlinux (ELF with a PVH entry)
  std::filesystem::path initramfs{};  // empty: none
  std::string cmdline{};              // the guest's own kernel parameters
  std::uint32_t memory_mib = 128;     // 64 MiB is too little for Debian's kernel
  std::uint32_t vcpus = 1;
  std::filesystem::path volume_image{};  // raw image; empty: no volume
  std::uint16_t host_port = 0;           // on 127.0.0.1; 0: any free port
  std::uint16_t guest_port = 8080;
  std::filesystem::path console_log{};  // REQUIRED
  // REQUIRED: a directory of this instance only (created if missing) for
  // the control socket and the VMM's own log. Keep the path short: unix
  // socket paths are limited to 107 bytes.
  std::filesystem::path runtime_dir{};
};

// How a VM ended.
struct VmExit {
  // The VMM process's exit status: 0..255, or 128+N when killed by signal N.
  int exit_status = 0;
  // Why, as far as the VMM told: "guest-shutdown" (powered off from inside),
  // "guest-reset" (rebooted or panicked), "host-qmp-quit", "killed" (by
  // Kill or Stop's timeout), "" when the VMM died without saying.
  std::string reason{};

  // Powered off from inside and exited normally.
  bool clean() const { return reason == "guest-shutdown" && exit_status == 0; }
};

std::string DescribeExit(const VmExit& exit);

// The last `max_bytes` of a log (a console, the VMM's own), "..." first
// when cut; empty when it cannot be read. For error messages.
std::string FileTail(const std::filesystem::path& path, std::size_t max_bytes = 2000);

enum class StopOutcome : std::uint8_t {
  kPoweredOff,     // the VM ended within the timeout (exit.clean(): it shut itself down)
  kKilled,         // it did not; the VMM was killed (volume possibly not unmounted)
  kAlreadyExited,  // the VM had ended before Stop was called
};

std::string_view StopOutcomeName(StopOutcome outcome);

struct StopResult {
  StopOutcome outcome = StopOutcome::kPoweredOff;
  VmExit exit{};
  std::chrono::milliseconds elapsed{0};
};

class VmInstance {
 public:
  virtual ~VmInstance() = default;

  // The spec it was started with, paths made absolute.
  virtual const VmSpec& spec() const = 0;
  // The forwarded host port (the one chosen when spec().host_port was 0).
  virtual std::uint16_t host_port() const = 0;
  // The VMM process's id, for a worker that records it to find a VM it lost
  // track of (killed and restarted); nullopt when there is no such process
  // (stubs in tests).
  virtual std::optional<int> process_id() const { return std::nullopt; }

  // Waits until GET http://127.0.0.1:<host_port>/healthz answers 200. (A
  // forwarded port accepts connections before the guest listens, so only
  // an HTTP answer counts.) Errors: kFailedPrecondition when the VM ended
  // first, kTransient when `timeout` passed (both with the console's tail).
  [[nodiscard]] virtual Status WaitReady(std::chrono::milliseconds timeout) = 0;

  // Presses the ACPI power button and waits up to `timeout` for the VM to
  // end; kills it after that. Errors only when the VMM cannot be signalled
  // at all (kIo).
  [[nodiscard]] virtual Result<StopResult> Stop(std::chrono::milliseconds timeout) = 0;

  // How the VM ended; nullopt while it runs. Does not block.
  virtual std::optional<VmExit> Poll() = 0;
  // Waits up to `timeout` for the VM to end by itself.
  virtual std::optional<VmExit> WaitExit(std::chrono::milliseconds timeout) = 0;

  // Ends the VM at once (SIGKILL) and reaps it; no-op when it has ended.
  virtual VmExit Kill() = 0;

  // Pauses the guest: its vCPUs stop and the VMM completes the disk I/O in
  // flight, so the volume image holds a crash-consistent state until
  // Resume (a reflink snapshot taken meanwhile is one). Both may be called
  // from another thread than the instance's other calls. Errors:
  // kFailedPrecondition when the VMM cannot pause (the default) or the VM
  // ended, kIo/kTransient when the VMM does not answer.
  [[nodiscard]] virtual Status Pause();
  [[nodiscard]] virtual Status Resume();
};

class Vmm {
 public:
  virtual ~Vmm() = default;

  virtual RuntimeKind runtime() const = 0;

  // Starts a VM and returns once the VMM runs it (its control channel
  // answers), not when the guest is ready: call WaitReady. Errors:
  // kInvalidArgument for a spec missing a required field or file,
  // kFailedPrecondition when the volume image is in use (locked by another
  // VM), kIo when the VMM cannot be started or exits at once (its log's
  // tail in the message), kInternal when the VMM does not say which host
  // port it forwards (host_port 0).
  [[nodiscard]] virtual Result<std::unique_ptr<VmInstance>> Start(const VmSpec& spec) = 0;
};

// Forwards every call to a base Vmm, so a wrapper (fault injection, metrics)
// overrides only what it changes. The base must outlive the wrapper.
class VmmWrapper : public Vmm {
 public:
  explicit VmmWrapper(Vmm& base) : base_(base) {}
  RuntimeKind runtime() const override { return base_.runtime(); }
  Result<std::unique_ptr<VmInstance>> Start(const VmSpec& spec) override {
    return base_.Start(spec);
  }

 protected:
  Vmm& base() { return base_; }

 private:
  Vmm& base_;
};

// Forwards every call to an owned base instance.
class VmInstanceWrapper : public VmInstance {
 public:
  explicit VmInstanceWrapper(std::unique_ptr<VmInstance> base) : base_(std::move(base)) {}
  const VmSpec& spec() const override { return base_->spec(); }
  std::uint16_t host_port() const override { return base_->host_port(); }
  std::optional<int> process_id() const override { return base_->process_id(); }
  Status WaitReady(std::chrono::milliseconds timeout) override { return base_->WaitReady(timeout); }
  Result<StopResult> Stop(std::chrono::milliseconds timeout) override {
    return base_->Stop(timeout);
  }
  std::optional<VmExit> Poll() override { return base_->Poll(); }
  std::optional<VmExit> WaitExit(std::chrono::milliseconds timeout) override {
    return base_->WaitExit(timeout);
  }
  VmExit Kill() override { return base_->Kill(); }
  Status Pause() override { return base_->Pause(); }
  Status Resume() override { return base_->Resume(); }

 protected:
  VmInstance& base() { return *base_; }

 private:
  std::unique_ptr<VmInstance> base_;
};

}  // namespace kindling::vmm
