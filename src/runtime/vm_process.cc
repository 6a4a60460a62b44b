#include "runtime/vm_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <thread>
#include <utility>

#include "common/files.h"
#include "common/subprocess.h"

namespace kindling::vmm {

Result<VmProcess> VmProcess::Spawn(const std::vector<std::string>& args,
                                   const std::filesystem::path& log, bool die_with_parent_thread) {
  if (args.empty() || args[0].empty() || args[0][0] != '/')
    return InvalidArgument("a VMM needs an absolute program path");
  // Prepared before fork: the child of a threaded parent may only make
  // async-signal-safe calls.
  const ExecImage image(args, {}, {}, std::nullopt, "/");
  UniqueFd log_fd(::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640));
  if (!log_fd.valid()) return ErrnoError("open " + log.string(), errno);
  UniqueFd null_fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!null_fd.valid()) return ErrnoError("open /dev/null", errno);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) return ErrnoError("fork", errno);
  if (pid == 0) {
    if (die_with_parent_thread) {
      if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) ::_exit(126);
      if (::getppid() != parent) ::_exit(126);  // the parent is already gone
    }
    image.ExecInChild(null_fd.get(), log_fd.get(), log_fd.get());
  }
  return VmProcess(pid);
}

VmProcess::VmProcess(VmProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), exit_status_(other.exit_status_) {}

VmProcess::~VmProcess() {
  if (pid_ > 0 && !exit_status_) Kill();
}

bool VmProcess::Reap(bool block) {
  if (pid_ <= 0 || exit_status_) return true;
  int status = 0;
  for (;;) {
    const pid_t got = ::waitpid(pid_, &status, block ? 0 : WNOHANG);
    if (got == pid_) break;
    if (got == 0) return false;
    if (errno == EINTR) continue;
    exit_status_ = 255;  // ECHILD: reaped elsewhere; nothing more to learn
    return true;
  }
  exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return true;
}

std::optional<int> VmProcess::Poll() {
  Reap(false);
  return exit_status_;
}

std::optional<int> VmProcess::WaitFor(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!Reap(false)) {
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return exit_status_;
}

int VmProcess::Kill() {
  if (pid_ <= 0) return 255;
  if (!exit_status_) ::kill(pid_, SIGKILL);
  Reap(true);
  return *exit_status_;
}

}  // namespace kindling::vmm
