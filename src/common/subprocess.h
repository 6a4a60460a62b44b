// Subprocesses with a deadline: run a program to completion, optionally as
// another system user, capturing what it prints. The seam through which
// kindling drives outside tools (pgBackRest, pg_ctl); tests replace the
// CommandRunner where no real tool can run.
//
// A command that outlives its timeout (or is cancelled) is stopped with its
// whole process group (SIGTERM, then SIGKILL after a short grace), so helpers
// it forked go too.
// Daemons it leaves behind on purpose (e.g. a server started by pg_ctl)
// do not hold the call up: once the command itself exited, whatever is left
// in its pipes is read without waiting for them to close.
//
// Thread-safety: CommandRunner implementations are thread-safe; Run may be
// called from a threaded process (only async-signal-safe calls run between
// fork and exec).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace kindling {

// A system user to run a program as.
struct RunAsUser {
  uid_t uid = 0;
  gid_t gid = 0;
};

// The system user `name` (getpwnam). kNotFound when there is none.
[[nodiscard]] Result<RunAsUser> LookUpSystemUser(std::string_view name);

struct CommandOptions {
  // argv; args[0] is an absolute path (no PATH search).
  std::vector<std::string> args{};
  std::optional<RunAsUser> run_as{};
  std::filesystem::path working_dir = "/";
  // Environment: ours, minus variables whose name starts with one of
  // `drop_env_prefixes`, plus `extra_env` ("NAME=value").
  std::vector<std::string> drop_env_prefixes{};
  std::vector<std::string> extra_env{};
  // Stopped (process group: SIGTERM, then SIGKILL after 2 s) when still
  // running after this long. Zero: no limit.
  std::chrono::milliseconds timeout{60'000};
  // When set and it turns true, the command is stopped like at its timeout
  // (within ~20 ms); the result says `cancelled`. For prompt shutdowns.
  const std::atomic<bool>* cancel = nullptr;
  // Bytes kept of stdout and of stderr each (the rest is read and dropped).
  std::size_t max_output = 1 << 20;
};

struct CommandResult {
  // 0..255 for a normal exit, 128+N when killed by signal N; 127 when the
  // program could not be executed, 126 when the set-up before exec failed.
  int exit_status = 0;
  std::string output{};  // stdout
  std::string errors{};  // stderr
  bool timed_out = false;
  bool cancelled = false;  // stopped through CommandOptions::cancel
};

class CommandRunner {
 public:
  virtual ~CommandRunner() = default;
  // Runs the command to completion (or its timeout). Errors: kInvalidArgument
  // for a relative program path, kIo when it cannot be started at all; a
  // program that runs and fails is a CommandResult, not an error.
  [[nodiscard]] virtual Result<CommandResult> Run(const CommandOptions& options) = 0;
};

// What execve needs, prepared before fork (after it, a threaded parent's
// child may only make async-signal-safe calls): argv from `args`, our
// environment minus variables whose name starts with one of
// `drop_env_prefixes`, plus `extra_env`, the user to become and the working
// directory.
class ExecImage {
 public:
  ExecImage(std::vector<std::string> args, const std::vector<std::string>& drop_env_prefixes,
            const std::vector<std::string>& extra_env, std::optional<RunAsUser> run_as,
            const std::filesystem::path& working_dir);
  ExecImage(const ExecImage&) = delete;
  ExecImage& operator=(const ExecImage&) = delete;

  // In the forked child only (async-signal-safe): stdio from the three
  // descriptors, every other descriptor closed, signals unblocked and back
  // to their defaults, the user and directory changed, then exec. Exits 126
  // when a step before exec fails, 127 when exec does.
  [[noreturn]] void ExecInChild(int stdin_fd, int stdout_fd, int stderr_fd) const;

 private:
  std::vector<std::string> args_;
  std::vector<std::string> env_;
  std::vector<char*> argv_;
  std::vector<char*> envp_;
  std::optional<RunAsUser> run_as_;
  std::string working_dir_;
};

// The real thing: fork/exec. Lives for the whole process.
CommandRunner& SystemCommandRunner();

// "exit 3", "killed by signal 9", "timed out after 30 s", for messages.
std::string DescribeExit(const CommandResult& result, const CommandOptions& options);

}  // namespace kindling
