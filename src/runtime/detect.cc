#include "runtime/detect.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "runtime/qemu_vmm.h"

namespace kindling::vmm {
namespace {

using std::chrono::milliseconds;

std::filesystem::path FindExecutable(const std::string& name) {
  std::vector<std::string> dirs = {"/usr/bin", "/usr/local/bin", "/usr/sbin"};
  if (const char* path = std::getenv("PATH")) {
    std::string_view rest(path);
    while (!rest.empty()) {
      const std::size_t colon = rest.find(':');
      dirs.emplace_back(rest.substr(0, colon));
      if (colon == std::string_view::npos) break;
      rest.remove_prefix(colon + 1);
    }
  }
  for (const std::string& dir : dirs) {
    if (dir.empty() || dir[0] != '/') continue;
    const std::filesystem::path candidate = std::filesystem::path(dir) / name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return {};
}

void PutU16(std::string& out, std::uint16_t v) {
  out += static_cast<char>(v & 0xff);
  out += static_cast<char>(v >> 8);
}

void PutU32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}

// A program's stderr as one line for a note: lines joined with " / ", the
// end kept when long.
std::string Shorten(const std::string& text, std::size_t max = 300) {
  std::string line;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    if (end > start) line += (line.empty() ? "" : " / ") + text.substr(start, end - start);
    start = end + 1;
  }
  return line.size() <= max ? line : "..." + line.substr(line.size() - max);
}

// A scratch directory removed with its content.
class ScratchDir {
 public:
  static Result<ScratchDir> Make(const std::filesystem::path& under) {
    std::filesystem::path base = under;
    if (base.empty()) {
      const char* tmp = std::getenv("TMPDIR");
      base = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
    }
    std::string pattern = (base / "kindling-vmm-probe-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) return ErrnoError("mkdtemp " + pattern, errno);
    return ScratchDir(pattern);
  }
  ScratchDir(ScratchDir&& other) noexcept : path_(std::exchange(other.path_, {})) {}
  ~ScratchDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  explicit ScratchDir(std::filesystem::path path) : path_(std::move(path)) {}
  std::filesystem::path path_;
};

}  // namespace

std::string DebugExitProbeElf(std::uint8_t code) {
  // mov dx, 0xf4; mov al, code; out dx, al; 1: hlt; jmp 1b
  const std::string text = {'\x66', '\xba', '\xf4', '\x00', '\xb0', static_cast<char>(code),
                            '\xee', '\xf4', '\xeb', '\xfd'};
  constexpr std::uint32_t kLoad = 0x100000;  // 1 MiB, above the legacy holes
  constexpr std::uint32_t kHeaderSize = 52;
  constexpr std::uint32_t kPhSize = 32;
  constexpr std::uint32_t kNoteOffset = kHeaderSize + 2 * kPhSize;
  constexpr std::uint32_t kNoteSize = 12 + 4 + 4;  // header, "Xen\0", entry
  constexpr std::uint32_t kTextOffset = kNoteOffset + kNoteSize;
  std::string elf =
      "\x7f"
      "ELF";
  elf += '\x01';  // ELFCLASS32
  elf += '\x01';  // little-endian
  elf += '\x01';  // version
  elf.append(9, '\0');
  PutU16(elf, 2);  // ET_EXEC
  PutU16(elf, 3);  // EM_386
  PutU32(elf, 1);
  PutU32(elf, kLoad);        // e_entry
  PutU32(elf, kHeaderSize);  // e_phoff
  PutU32(elf, 0);            // e_shoff
  PutU32(elf, 0);            // e_flags
  PutU16(elf, kHeaderSize);
  PutU16(elf, kPhSize);
  PutU16(elf, 2);  // e_phnum
  PutU16(elf, 40);
  PutU16(elf, 0);
  PutU16(elf, 0);
  // PT_LOAD: the code at kLoad, read + execute.
  for (std::uint32_t v : {1u, kTextOffset, kLoad, kLoad, static_cast<std::uint32_t>(text.size()),
                          static_cast<std::uint32_t>(text.size()), 5u, 4u})
    PutU32(elf, v);
  // PT_NOTE: XEN_ELFNOTE_PHYS32_ENTRY (18), the PVH entry point.
  for (std::uint32_t v : {4u, kNoteOffset, 0u, 0u, kNoteSize, kNoteSize, 4u, 4u}) PutU32(elf, v);
  PutU32(elf, 4);   // namesz
  PutU32(elf, 4);   // descsz
  PutU32(elf, 18);  // type
  elf.append("Xen\0", 4);
  PutU32(elf, kLoad);
  elf += text;
  return elf;
}

Result<RuntimeDetection> DetectRuntime(CommandRunner& runner, const DetectOptions& options) {
  RuntimeDetection detection;
  if (!options.skip_cloud_hypervisor) {
    const std::filesystem::path ch = options.cloud_hypervisor_binary.empty()
                                         ? FindExecutable("cloud-hypervisor")
                                         : options.cloud_hypervisor_binary;
    if (!ch.empty() && ::access(ch.c_str(), X_OK) == 0) {
      detection.runtime = RuntimeKind::kCloudHypervisor;
      detection.binary = ch;
      detection.notes.push_back("cloud-hypervisor found at " + ch.string() +
                                " (kindling does not drive it yet)");
      return detection;
    }
    detection.notes.push_back("cloud-hypervisor: not installed");
  }
  const std::filesystem::path qemu =
      options.qemu_binary.empty() ? FindExecutable("qemu-system-x86_64") : options.qemu_binary;
  if (qemu.empty() || ::access(qemu.c_str(), X_OK) != 0)
    return NotFound("no VM runtime: qemu-system-x86_64 not found (install qemu-system-x86)");
  detection.binary = qemu;
  const std::vector<std::string> base = {
      qemu.string(), "-M",   "microvm,acpi=on", "-m", "128", "-nodefaults", "-no-user-config",
      "-display",    "none", "-no-reboot"};

  if (options.try_kvm && options.probe_kernel.empty()) {
    detection.notes.push_back("KVM: not tried (no probe kernel)");
  } else if (options.try_kvm) {
    // Booted without a root filesystem, the kernel panics, panic=-1 reboots
    // and -no-reboot ends QEMU with status 0: proof the vCPU ran a kernel.
    CommandOptions probe{.args = base, .timeout = options.kvm_probe_timeout};
    std::error_code ec;
    probe.args.insert(probe.args.end(),
                      {"-accel", "kvm", "-cpu", "host", "-kernel",
                       std::filesystem::absolute(options.probe_kernel, ec).string(), "-append",
                       "console=ttyS0 quiet panic=-1", "-serial", "stdio"});
    auto result = runner.Run(probe);
    if (result && result->exit_status == 0 &&
        result->output.find("Kernel panic") != std::string::npos) {
      detection.runtime = RuntimeKind::kQemuMicrovmKvm;
      detection.notes.push_back("KVM: a kernel booted and ended as expected");
      return detection;
    }
    detection.notes.push_back(
        !result ? "KVM: " + result.error().message()
                : "KVM: the probe kernel " + std::string(DescribeExit(*result, probe)) +
                      (result->errors.empty() ? "" : ": " + Shorten(result->errors)));
  }

  KINDLING_ASSIGN_OR_RETURN(ScratchDir scratch, ScratchDir::Make(options.scratch_dir));
  constexpr std::uint8_t kCode = 0x2a;
  std::error_code ec;
  const std::filesystem::path elf = std::filesystem::absolute(scratch.path() / "probe.elf", ec);
  {
    std::ofstream out(elf, std::ios::binary);
    out << DebugExitProbeElf(kCode);
    if (!out) return IoError("write " + elf.string());
  }
  CommandOptions probe{.args = base, .timeout = milliseconds(10'000)};
  probe.args.insert(probe.args.end(), {"-accel", "tcg", "-kernel", elf.string(), "-device",
                                       "isa-debug-exit,iobase=0xf4,iosize=4", "-serial", "none"});
  auto result = runner.Run(probe);
  if (result && result->exit_status == kCode * 2 + 1) {
    detection.runtime = RuntimeKind::kQemuMicrovmTcg;
    detection.notes.push_back("TCG: the probe guest ran");
    return detection;
  }
  detection.notes.push_back(
      !result ? "TCG: " + result.error().message()
              : "TCG: the probe guest " + std::string(DescribeExit(*result, probe)) +
                    (result->errors.empty() ? "" : ": " + Shorten(result->errors)));
  std::string message = "no VM runtime works on this host:";
  for (const std::string& note : detection.notes) message += " " + note + ";";
  return NotFound(message);
}

Result<std::unique_ptr<Vmm>> NewVmm(const RuntimeDetection& detection,
                                    bool die_with_parent_thread) {
  switch (detection.runtime) {
    case RuntimeKind::kCloudHypervisor:
      return FailedPrecondition(
          "cloud-hypervisor is installed (" + detection.binary.string() +
          ") but kindling cannot drive it yet; detect with skip_cloud_hypervisor to use QEMU");
    case RuntimeKind::kQemuMicrovmKvm:
    case RuntimeKind::kQemuMicrovmTcg:
      break;
  }
  QemuConfig config{
      .binary = detection.binary,
      .runtime = detection.runtime,
      .tsc_khz = detection.runtime == RuntimeKind::kQemuMicrovmTcg ? HostTscKhz() : std::nullopt,
      .die_with_parent_thread = die_with_parent_thread};
  return NewQemuVmm(std::move(config));
}

}  // namespace kindling::vmm
