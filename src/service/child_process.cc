#include "service/child_process.h"

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>
#include <thread>
#include <utility>

namespace kindling::service {

Result<std::optional<RunAsUser>> PostgresServerUser() {
  if (::geteuid() != 0) return std::optional<RunAsUser>();
  auto user = LookUpSystemUser("postgres");
  if (!user)
    return NotFound(
        "running as root needs a `postgres` system user to run PostgreSQL as (installing "
        "Debian's postgresql package creates it)");
  return std::optional<RunAsUser>(*user);
}

Result<ChildProcess> ChildProcess::Spawn(const SpawnOptions& options) {
  if (options.args.empty() || options.args[0].empty() || options.args[0][0] != '/')
    return InvalidArgument("spawn needs an absolute program path");
  // Everything the child needs is prepared before fork: after it, a threaded
  // parent's child may only make async-signal-safe calls.
  const ExecImage image(options.args, options.drop_env_prefixes, options.extra_env, options.run_as,
                        options.working_dir);

  const std::string log = options.log_file.empty() ? "/dev/null" : options.log_file.string();
  const int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (log_fd < 0) return ErrnoError("open " + log, errno);
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd < 0) {
    const int err = errno;
    ::close(log_fd);
    return ErrnoError("open /dev/null", err);
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    ::close(log_fd);
    ::close(null_fd);
    return ErrnoError("fork", err);
  }
  if (pid == 0) {
    if (options.parent_death_signal != 0) {
      if (::prctl(PR_SET_PDEATHSIG, options.parent_death_signal) != 0) ::_exit(126);
      if (::getppid() != parent) ::_exit(126);  // the parent already died
    }
    if (options.new_process_group) ::setpgid(0, 0);
    // Daemons (pg_ctl) must not inherit the parent's pipes, or whoever reads
    // them waits for EOF forever: stdio goes to the log and the rest closes.
    image.ExecInChild(null_fd, log_fd, log_fd);
  }
  ::close(log_fd);
  ::close(null_fd);
  return ChildProcess(pid);
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), exit_status_(std::move(other.exit_status_)) {}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    if (pid_ > 0 && !exit_status_) Stop(std::chrono::milliseconds(0));
    pid_ = std::exchange(other.pid_, -1);
    exit_status_ = std::move(other.exit_status_);
  }
  return *this;
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !exit_status_) Stop(std::chrono::milliseconds(0));
}

bool ChildProcess::Reap(bool block) {
  if (pid_ <= 0 || exit_status_) return true;
  int status = 0;
  for (;;) {
    const pid_t got = ::waitpid(pid_, &status, block ? 0 : WNOHANG);
    if (got == pid_) break;
    if (got == 0) return false;
    if (errno == EINTR) continue;
    // ECHILD: reaped elsewhere; nothing more to learn.
    exit_status_ = 255;
    return true;
  }
  exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return true;
}

bool ChildProcess::Running() { return !Reap(false); }

void ChildProcess::Signal(int signal) {
  if (pid_ > 0 && !exit_status_) ::kill(pid_, signal);
}

std::optional<int> ChildProcess::WaitFor(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!Reap(false)) {
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return exit_status_;
}

int ChildProcess::Wait() {
  Reap(true);
  return *exit_status_;
}

int ChildProcess::Stop(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return 255;
  if (grace.count() > 0) {
    Signal(SIGTERM);
    if (auto status = WaitFor(grace)) return *status;
  }
  Signal(SIGKILL);
  return Wait();
}

Result<int> RunToCompletion(const SpawnOptions& options) {
  KINDLING_ASSIGN_OR_RETURN(ChildProcess child, ChildProcess::Spawn(options));
  return child.Wait();
}

std::string FileTail(const std::filesystem::path& path, std::size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  if (text.size() > max_bytes) text = "..." + text.substr(text.size() - max_bytes);
  return text;
}

}  // namespace kindling::service
