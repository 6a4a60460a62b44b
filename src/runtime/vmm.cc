#include "runtime/vmm.h"

#include <fstream>
#include <sstream>

namespace kindling::vmm {

std::string_view RuntimeName(RuntimeKind kind) {
  switch (kind) {
    case RuntimeKind::kCloudHypervisor:
      return "cloud-hypervisor";
    case RuntimeKind::kQemuMicrovmKvm:
      return "qemu-microvm-kvm";
    case RuntimeKind::kQemuMicrovmTcg:
      return "qemu-microvm-tcg";
  }
  return "unknown";
}

std::optional<RuntimeKind> ParseRuntimeName(std::string_view name) {
  for (RuntimeKind kind : {RuntimeKind::kCloudHypervisor, RuntimeKind::kQemuMicrovmKvm,
                           RuntimeKind::kQemuMicrovmTcg}) {
    if (RuntimeName(kind) == name) return kind;
  }
  return std::nullopt;
}

std::string_view StopOutcomeName(StopOutcome outcome) {
  switch (outcome) {
    case StopOutcome::kPoweredOff:
      return "powered-off";
    case StopOutcome::kKilled:
      return "killed";
    case StopOutcome::kAlreadyExited:
      return "already-exited";
  }
  return "unknown";
}

std::string DescribeExit(const VmExit& exit) {
  std::string text = exit.exit_status > 128
                         ? "killed by signal " + std::to_string(exit.exit_status - 128)
                         : "exit " + std::to_string(exit.exit_status);
  if (!exit.reason.empty()) text += ", " + exit.reason;
  return text;
}

std::string FileTail(const std::filesystem::path& path, std::size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  if (text.size() > max_bytes) text = "..." + text.substr(text.size() - max_bytes);
  return text;
}

Status VmInstance::Pause() { return FailedPrecondition("this VMM cannot pause a VM"); }

Status VmInstance::Resume() { return FailedPrecondition("this VMM cannot pause a VM"); }

}  // namespace kindling::vmm
