#include "common/subprocess.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <thread>

extern char** environ;

namespace kindling {
namespace {

using Clock = std::chrono::steady_clock;

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      Reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  ~Fd() { Reset(); }
  int get() const { return fd_; }
  void Reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

// Appends what is readable now; false at EOF or on an error.
bool Drain(int fd, std::string& into, std::size_t limit) {
  char buffer[8192];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n > 0) {
      const std::size_t room = into.size() < limit ? limit - into.size() : 0;
      into.append(buffer, std::min(room, static_cast<std::size_t>(n)));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    return false;
  }
}

class SystemRunner final : public CommandRunner {
 public:
  Result<CommandResult> Run(const CommandOptions& options) override {
    if (options.args.empty() || options.args[0].empty() || options.args[0][0] != '/')
      return InvalidArgument("a command needs an absolute program path");
    // Everything the child needs is prepared before fork.
    const ExecImage image(options.args, options.drop_env_prefixes, options.extra_env,
                          options.run_as, options.working_dir);

    int out_pipe[2];
    int err_pipe[2];
    if (::pipe2(out_pipe, O_CLOEXEC) != 0) return ErrnoError("pipe", errno);
    Fd out_read(out_pipe[0]), out_write(out_pipe[1]);
    if (::pipe2(err_pipe, O_CLOEXEC) != 0) return ErrnoError("pipe", errno);
    Fd err_read(err_pipe[0]), err_write(err_pipe[1]);
    Fd null_fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (null_fd.get() < 0) return ErrnoError("open /dev/null", errno);

    const pid_t pid = ::fork();
    if (pid < 0) return ErrnoError("fork", errno);
    if (pid == 0) {
      // Its own process group: a timeout stops the helpers it forks too.
      ::setpgid(0, 0);
      image.ExecInChild(null_fd.get(), out_write.get(), err_write.get());
    }
    // Also from here, so a kill right after fork reaches the group.
    ::setpgid(pid, pid);
    out_write.Reset();
    err_write.Reset();
    null_fd.Reset();
    ::fcntl(out_read.get(), F_SETFL, O_NONBLOCK);
    ::fcntl(err_read.get(), F_SETFL, O_NONBLOCK);

    CommandResult result;
    const bool limited = options.timeout.count() > 0;
    const auto deadline = Clock::now() + options.timeout;
    std::optional<Clock::time_point> kill_at;
    bool out_open = true;
    bool err_open = true;
    int wstatus = 0;
    for (;;) {
      const pid_t got = ::waitpid(pid, &wstatus, WNOHANG);
      if (got == pid) break;
      if (got < 0 && errno != EINTR) return ErrnoError("wait for " + options.args[0], errno);
      const auto now = Clock::now();
      if (limited && !result.timed_out && !result.cancelled && now >= deadline) {
        result.timed_out = true;
        ::kill(-pid, SIGTERM);
        kill_at = now + std::chrono::seconds(2);
      }
      if (options.cancel != nullptr && !result.timed_out && !result.cancelled &&
          options.cancel->load()) {
        result.cancelled = true;
        ::kill(-pid, SIGTERM);
        kill_at = now + std::chrono::seconds(2);
      }
      if (kill_at && now >= *kill_at) {
        ::kill(-pid, SIGKILL);
        kill_at.reset();
      }
      pollfd fds[2];
      nfds_t count = 0;
      if (out_open) fds[count++] = {out_read.get(), POLLIN, 0};
      if (err_open) fds[count++] = {err_read.get(), POLLIN, 0};
      if (count == 0) {
        // Both pipes closed: only the exit is left to wait for.
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        continue;
      }
      ::poll(fds, count, 20);
      if (out_open) out_open = Drain(out_read.get(), result.output, options.max_output);
      if (err_open) err_open = Drain(err_read.get(), result.errors, options.max_output);
    }
    // The program exited: what it wrote is in the pipes now. Daemons it left
    // may keep the pipes open, so read without waiting for EOF.
    if (out_open) Drain(out_read.get(), result.output, options.max_output);
    if (err_open) Drain(err_read.get(), result.errors, options.max_output);
    if (result.timed_out || result.cancelled) ::kill(-pid, SIGKILL);  // helpers still in the group
    result.exit_status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus)
                                            : 128 + (WIFSIGNALED(wstatus) ? WTERMSIG(wstatus) : 0);
    return result;
  }
};

}  // namespace

Result<RunAsUser> LookUpSystemUser(std::string_view name) {
  const std::string user(name);
  passwd entry{};
  passwd* found = nullptr;
  std::string buffer(16384, '\0');
  const int rc = ::getpwnam_r(user.c_str(), &entry, buffer.data(), buffer.size(), &found);
  if (rc != 0 || found == nullptr) return NotFound("no system user '" + user + "'");
  return RunAsUser{found->pw_uid, found->pw_gid};
}

ExecImage::ExecImage(std::vector<std::string> args,
                     const std::vector<std::string>& drop_env_prefixes,
                     const std::vector<std::string>& extra_env, std::optional<RunAsUser> run_as,
                     const std::filesystem::path& working_dir)
    : args_(std::move(args)), run_as_(run_as), working_dir_(working_dir.string()) {
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view entry(*e);
    bool dropped = false;
    for (const std::string& prefix : drop_env_prefixes)
      dropped = dropped || entry.starts_with(prefix);
    if (!dropped) env_.emplace_back(entry);
  }
  env_.insert(env_.end(), extra_env.begin(), extra_env.end());
  for (std::string& s : args_) argv_.push_back(s.data());
  argv_.push_back(nullptr);
  for (std::string& s : env_) envp_.push_back(s.data());
  envp_.push_back(nullptr);
}

void ExecImage::ExecInChild(int stdin_fd, int stdout_fd, int stderr_fd) const {
  if (::dup2(stdin_fd, STDIN_FILENO) < 0 || ::dup2(stdout_fd, STDOUT_FILENO) < 0 ||
      ::dup2(stderr_fd, STDERR_FILENO) < 0)
    ::_exit(126);
  ::close_range(3, ~0U, 0);
  // Signals blocked or ignored by the parent (kindling serve blocks SIGTERM
  // in its threads) must not stay so in the child.
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::signal(SIGINT, SIG_DFL);
  ::signal(SIGTERM, SIG_DFL);
  ::signal(SIGPIPE, SIG_DFL);
  if (run_as_) {
    if (::setgroups(0, nullptr) != 0 || ::setgid(run_as_->gid) != 0 || ::setuid(run_as_->uid) != 0)
      ::_exit(126);
  }
  if (::chdir(working_dir_.c_str()) != 0) ::_exit(126);
  ::execve(argv_.front(), argv_.data(), envp_.data());
  ::_exit(127);
}

CommandRunner& SystemCommandRunner() {
  static SystemRunner* runner = new SystemRunner();
  return *runner;
}

std::string DescribeExit(const CommandResult& result, const CommandOptions& options) {
  if (result.cancelled) return "stopped (cancelled)";
  if (result.timed_out)
    return "timed out after " +
           std::to_string(
               std::chrono::duration_cast<std::chrono::seconds>(options.timeout).count()) +
           " s";
  if (result.exit_status == 127) return "could not be executed (exit 127)";
  if (result.exit_status > 128)
    return "killed by signal " + std::to_string(result.exit_status - 128);
  return "exit " + std::to_string(result.exit_status);
}

}  // namespace kindling
