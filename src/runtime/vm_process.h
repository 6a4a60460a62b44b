// VmProcess: a long-running VMM process (QEMU), started through ExecImage
// (common/subprocess.h) with stdin from /dev/null and stdout and stderr in a
// log file; watched, waited for and killed. Short commands (probes) use
// CommandRunner instead.
//
// Thread-safety: one owner thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

namespace kindling::vmm {

class VmProcess {
 public:
  // Starts args[0] (an absolute path). The log is truncated. With
  // `die_with_parent_thread`, the kernel kills the process when the thread
  // that called Spawn ends (PR_SET_PDEATHSIG), so a crashed test leaves no
  // VM behind; a long-lived service spawns without it.
  [[nodiscard]] static Result<VmProcess> Spawn(const std::vector<std::string>& args,
                                               const std::filesystem::path& log,
                                               bool die_with_parent_thread);

  VmProcess(VmProcess&& other) noexcept;
  VmProcess& operator=(VmProcess&&) = delete;
  VmProcess(const VmProcess&) = delete;
  ~VmProcess();  // kills and reaps a process still running

  pid_t pid() const { return pid_; }
  // The exit status (0..255, 128+N for signal N) once it has exited; reaps.
  std::optional<int> Poll();
  std::optional<int> WaitFor(std::chrono::milliseconds timeout);
  // SIGKILL, then waits; the exit status.
  int Kill();

 private:
  explicit VmProcess(pid_t pid) : pid_(pid) {}
  bool Reap(bool block);

  pid_t pid_ = -1;
  std::optional<int> exit_status_;
};

}  // namespace kindling::vmm
