#include "runtime/qemu_vmm.h"

#include <unistd.h>

#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

#include "runtime/http_probe.h"
#include "runtime/qmp_client.h"
#include "runtime/vm_process.h"

namespace kindling::vmm {
namespace {

using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// QEMU's option syntax separates with ','; a literal one is doubled.
std::string EscapeOption(const std::string& value) {
  std::string out;
  for (char c : value) {
    out += c;
    if (c == ',') out += ',';
  }
  return out;
}

milliseconds Since(SteadyClock::time_point start) {
  return std::chrono::duration_cast<milliseconds>(SteadyClock::now() - start);
}

class QemuInstance final : public VmInstance {
 public:
  QemuInstance(VmSpec spec, VmProcess process, QmpClient qmp, std::uint16_t host_port,
               std::filesystem::path qemu_log)
      : spec_(std::move(spec)),
        process_(std::move(process)),
        qmp_(std::move(qmp)),
        host_port_(host_port),
        qemu_log_(std::move(qemu_log)) {}

  ~QemuInstance() override {
    if (!exit_) Kill();
  }

  const VmSpec& spec() const override { return spec_; }
  std::uint16_t host_port() const override { return host_port_; }
  std::optional<int> process_id() const override { return process_.pid(); }

  Status WaitReady(milliseconds timeout) override {
    const auto deadline = SteadyClock::now() + timeout;
    for (;;) {
      if (auto exit = Poll()) {
        return FailedPrecondition("VM " + spec_.name + " ended before it was ready (" +
                                  DescribeExit(*exit) + "); QEMU's log:\n" +
                                  FileTail(qemu_log_, 1000) + "\nconsole:\n" +
                                  FileTail(spec_.console_log));
      }
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - SteadyClock::now());
      if (left.count() <= 0) break;
      // Short attempts: before the guest listens, slirp accepts the host
      // connection and then drops it or leaves it hanging.
      auto status = HttpGetStatus(host_port_, "/healthz", std::min(left, milliseconds(500)));
      if (status && *status == 200) return OkStatus();
      std::this_thread::sleep_for(milliseconds(50));
    }
    return TransientError("VM " + spec_.name + " not ready after " +
                          std::to_string(timeout.count()) + " ms; console:\n" +
                          FileTail(spec_.console_log));
  }

  Result<StopResult> Stop(milliseconds timeout) override {
    const auto start = SteadyClock::now();
    if (auto exit = Poll()) {
      return StopResult{.outcome = StopOutcome::kAlreadyExited, .exit = *exit, .elapsed = {}};
    }
    // The press fails only when QEMU is going away by itself, which the
    // wait below sees; a QEMU that runs on regardless is killed.
    {
      std::lock_guard lock(qmp_mu_);
      IgnoreError(qmp_.Execute("system_powerdown", nullptr, std::min(timeout, milliseconds(5000))),
                  "QEMU going away or ignoring the press is what the wait below handles");
    }
    if (auto status = process_.WaitFor(std::max(timeout - Since(start), milliseconds(0)))) {
      return StopResult{
          .outcome = StopOutcome::kPoweredOff, .exit = Finish(*status), .elapsed = Since(start)};
    }
    VmExit exit = Kill();
    return StopResult{.outcome = StopOutcome::kKilled, .exit = exit, .elapsed = Since(start)};
  }

  std::optional<VmExit> Poll() override {
    if (exit_) return exit_;
    if (auto status = process_.Poll()) return Finish(*status);
    return std::nullopt;
  }

  std::optional<VmExit> WaitExit(milliseconds timeout) override {
    if (exit_) return exit_;
    if (auto status = process_.WaitFor(timeout)) return Finish(*status);
    return std::nullopt;
  }

  // QMP "stop" returns once the vCPUs are stopped and the block layer has
  // drained the requests in flight (QEMU's vm_stop); "cont" resumes.
  Status Pause() override { return Run("stop"); }
  Status Resume() override { return Run("cont"); }

  VmExit Kill() override {
    if (exit_) return *exit_;
    const bool was_running = !process_.Poll().has_value();
    Finish(process_.Kill());
    if (was_running) exit_->reason = "killed";
    return *exit_;
  }

 private:
  Status Run(const char* command) {
    std::lock_guard lock(qmp_mu_);
    auto done = qmp_.Execute(command, nullptr, milliseconds(5000));
    if (!done) return std::unexpected(done.error().WithContext(std::string("QMP ") + command));
    return OkStatus();
  }

  // Records the exit: the reason from QEMU's last SHUTDOWN event, which it
  // sends before exiting and which stays readable on the socket.
  VmExit Finish(int status) {
    VmExit exit{.exit_status = status, .reason = {}};
    std::lock_guard lock(qmp_mu_);
    for (const QmpEvent& event : qmp_.TakeEvents()) {
      if (event.name == "SHUTDOWN" && event.data.is_object())
        exit.reason = event.data.value("reason", std::string());
    }
    exit_ = exit;
    return exit;
  }

  VmSpec spec_;
  VmProcess process_;
  std::mutex qmp_mu_;  // the QMP connection: Pause/Resume come from other threads
  QmpClient qmp_;
  std::uint16_t host_port_;
  std::filesystem::path qemu_log_;
  std::optional<VmExit> exit_;
};

class QemuVmm final : public Vmm {
 public:
  explicit QemuVmm(QemuConfig config) : config_(std::move(config)) {}

  RuntimeKind runtime() const override { return config_.runtime; }

  Result<std::unique_ptr<VmInstance>> Start(const VmSpec& requested) override {
    std::error_code ec;
    // QEMU runs in "/": relative paths are made absolute here.
    VmSpec spec = requested;
    for (std::filesystem::path* path : {&spec.kernel, &spec.initramfs, &spec.volume_image,
                                        &spec.console_log, &spec.runtime_dir}) {
      if (!path->empty()) *path = std::filesystem::absolute(*path, ec);
    }
    if (spec.kernel.empty() || !std::filesystem::is_regular_file(spec.kernel, ec))
      return InvalidArgument("VM " + spec.name + ": kernel " + spec.kernel.string() +
                             " is not a file");
    if (!spec.initramfs.empty() && !std::filesystem::is_regular_file(spec.initramfs, ec))
      return InvalidArgument("VM " + spec.name + ": initramfs " + spec.initramfs.string() +
                             " is not a file");
    if (!spec.volume_image.empty() && !std::filesystem::is_regular_file(spec.volume_image, ec))
      return InvalidArgument("VM " + spec.name + ": volume image " + spec.volume_image.string() +
                             " is not a file");
    if (spec.console_log.empty() || spec.runtime_dir.empty())
      return InvalidArgument("VM " + spec.name + ": console_log and runtime_dir are required");
    if (spec.memory_mib == 0 || spec.vcpus == 0)
      return InvalidArgument("VM " + spec.name + ": memory and vCPUs must be positive");
    std::filesystem::create_directories(spec.runtime_dir, ec);
    if (ec) return IoError("create " + spec.runtime_dir.string() + ": " + ec.message());

    const QemuPaths paths{.qmp_socket = spec.runtime_dir / "qmp.sock"};
    const std::filesystem::path qemu_log = spec.runtime_dir / "qemu.log";
    std::filesystem::remove(paths.qmp_socket, ec);
    KINDLING_ASSIGN_OR_RETURN(VmProcess process,
                              VmProcess::Spawn(RenderQemuArgs(config_, spec, paths), qemu_log,
                                               config_.die_with_parent_thread));

    // QEMU opens (and locks) the drives before its main loop runs, and only
    // the main loop greets on QMP: a greeting means the VM is running.
    const auto deadline = SteadyClock::now() + config_.start_timeout;
    std::optional<QmpClient> qmp;
    std::string last_error;
    while (!qmp) {
      if (auto status = process.Poll()) return StartFailed(spec, *status, qemu_log);
      if (SteadyClock::now() >= deadline) {
        process.Kill();
        return IoError("VM " + spec.name + ": QEMU did not answer on QMP within " +
                       std::to_string(config_.start_timeout.count()) + " ms (" + last_error +
                       "); its log:\n" + FileTail(qemu_log));
      }
      if (std::filesystem::exists(paths.qmp_socket, ec)) {
        auto client = QmpClient::Connect(paths.qmp_socket, milliseconds(2000));
        if (client) {
          qmp.emplace(std::move(*client));
          break;
        }
        last_error = client.error().message();
      }
      std::this_thread::sleep_for(milliseconds(10));
    }

    std::uint16_t host_port = spec.host_port;
    if (host_port == 0) {
      auto usernet = qmp->Execute("human-monitor-command", {{"command-line", "info usernet"}});
      Result<std::uint16_t> port =
          usernet && usernet->is_string()
              ? ParseForwardedPort(usernet->get<std::string>(), spec.guest_port)
              : Result<std::uint16_t>(NotFound("no answer"));
      if (!port) {
        process.Kill();
        return InternalError("VM " + spec.name + ": cannot tell which host port QEMU forwards: " +
                             port.error().message());
      }
      host_port = *port;
    }
    return std::unique_ptr<VmInstance>(
        new QemuInstance(spec, std::move(process), std::move(*qmp), host_port, qemu_log));
  }

 private:
  std::unexpected<Error> StartFailed(const VmSpec& spec, int status,
                                     const std::filesystem::path& qemu_log) const {
    const std::string log = FileTail(qemu_log);
    if (log.find("Failed to get \"write\" lock") != std::string::npos ||
        log.find("Failed to get \"consistent read\" lock") != std::string::npos)
      return FailedPrecondition("VM " + spec.name + ": volume image " + spec.volume_image.string() +
                                " is in use (locked by another VM): " + log);
    return IoError("VM " + spec.name + ": QEMU exited at start with status " +
                   std::to_string(status) + "; its log:\n" + log);
  }

  const QemuConfig config_;
};

}  // namespace

std::string RenderKernelCmdline(const QemuConfig& config, const VmSpec& spec) {
  // panic=-1 reboots at once on a panic, and -no-reboot turns the reboot
  // into QEMU's exit: a crashed guest ends the VM.
  std::string cmdline = "console=ttyS0 panic=-1";
  if (config.runtime == RuntimeKind::kQemuMicrovmTcg && config.tsc_khz)
    cmdline += " tsc_early_khz=" + std::to_string(*config.tsc_khz);
  if (!spec.cmdline.empty()) cmdline += " " + spec.cmdline;
  return cmdline;
}

std::vector<std::string> RenderQemuArgs(const QemuConfig& config, const VmSpec& spec,
                                        const QemuPaths& paths) {
  const bool kvm = config.runtime == RuntimeKind::kQemuMicrovmKvm;
  std::vector<std::string> args = {config.binary.string()};
  if (!spec.name.empty()) args.insert(args.end(), {"-name", EscapeOption(spec.name)});
  // acpi=on: the kernel finds the virtio-mmio devices and the power button
  // in the ACPI tables (Debian's kernel lacks virtio_mmio.device=).
  args.insert(args.end(), {"-M", "microvm,acpi=on", "-accel", kvm ? "kvm" : "tcg"});
  if (kvm) args.insert(args.end(), {"-cpu", "host"});
  args.insert(args.end(),
              {"-m", std::to_string(spec.memory_mib), "-smp", std::to_string(spec.vcpus),
               "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot"});
  args.insert(args.end(), {"-kernel", spec.kernel.string()});
  if (!spec.initramfs.empty()) args.insert(args.end(), {"-initrd", spec.initramfs.string()});
  args.insert(args.end(), {"-append", RenderKernelCmdline(config, spec)});
  if (!spec.volume_image.empty()) {
    args.insert(args.end(), {"-drive",
                             "file=" + EscapeOption(spec.volume_image.string()) +
                                 ",format=raw,if=none,id=volume,file.locking=on",
                             "-device", "virtio-blk-device,drive=volume"});
  }
  args.insert(args.end(),
              {"-netdev",
               "user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:" + std::to_string(spec.host_port) +
                   "-:" + std::to_string(spec.guest_port),
               "-device", "virtio-net-device,netdev=net0"});
  args.insert(args.end(),
              {"-chardev", "file,id=console,path=" + EscapeOption(spec.console_log.string()),
               "-serial", "chardev:console"});
  args.insert(args.end(),
              {"-qmp", "unix:" + EscapeOption(paths.qmp_socket.string()) + ",server=on,wait=off"});
  return args;
}

Result<std::uint16_t> ParseForwardedPort(std::string_view text, std::uint16_t guest_port) {
  // "  TCP[HOST_FORWARD]   8   127.0.0.1 41191   10.0.2.15  8080   0   0"
  std::istringstream lines{std::string(text)};
  std::string line;
  while (std::getline(lines, line)) {
    if (line.find("[HOST_FORWARD]") == std::string::npos) continue;
    std::istringstream fields(line);
    std::string protocol, fd, source, dest;
    unsigned long source_port = 0, dest_port = 0;
    if (!(fields >> protocol >> fd >> source >> source_port >> dest >> dest_port)) continue;
    if (!protocol.starts_with("TCP") || dest_port != guest_port || source_port == 0 ||
        source_port > 65535)
      continue;
    return static_cast<std::uint16_t>(source_port);
  }
  return NotFound("no TCP forward to guest port " + std::to_string(guest_port));
}

std::optional<std::uint64_t> HostTscKhz() {
#if defined(__x86_64__)
  const auto start = SteadyClock::now();
  const std::uint64_t tsc_start = __rdtsc();
  std::this_thread::sleep_for(milliseconds(50));
  const std::uint64_t tsc_end = __rdtsc();
  const auto ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(SteadyClock::now() - start).count();
  if (ns <= 0 || tsc_end <= tsc_start) return std::nullopt;
  return (tsc_end - tsc_start) * 1'000'000 / static_cast<std::uint64_t>(ns);
#else
  return std::nullopt;
#endif
}

std::unique_ptr<Vmm> NewQemuVmm(QemuConfig config) {
  return std::make_unique<QemuVmm>(std::move(config));
}

}  // namespace kindling::vmm
