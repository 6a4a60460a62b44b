// ChildProcess: a program started with fork/execve, its stdout and stderr
// appended to a log file, optionally as another system user (initdb and the
// PostgreSQL server refuse to run as root). `kindling dev` supervises its
// PostgreSQL and `kindling serve` children with it; the test kit starts its
// throwaway PostgreSQL with it.
//
// Thread-safety: a ChildProcess is used by one thread at a time; Spawn itself
// may be called from a threaded process (only async-signal-safe calls run
// between fork and exec).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/subprocess.h"

namespace kindling::service {

using kindling::RunAsUser;

// The `postgres` system user when this process is root (initdb refuses root),
// nullopt (run as ourselves) otherwise. kNotFound when root and no such user
// exists.
[[nodiscard]] Result<std::optional<RunAsUser>> PostgresServerUser();

struct SpawnOptions {
  // argv; args[0] is an absolute path (no PATH search).
  std::vector<std::string> args;
  // stdout and stderr are appended here (created 0640 when missing); stdin is
  // /dev/null. Empty: /dev/null for both.
  std::filesystem::path log_file;
  std::filesystem::path working_dir = "/";
  std::optional<RunAsUser> run_as;
  // Environment: ours, minus variables whose name starts with one of
  // `drop_env_prefixes`, plus `extra_env` ("NAME=value").
  std::vector<std::string> drop_env_prefixes;
  std::vector<std::string> extra_env;
  // Deliver this signal to the child when the spawning thread's process dies
  // (PR_SET_PDEATHSIG), so children never outlive a killed supervisor. 0: off.
  int parent_death_signal = 0;
  // Put the child in its own process group, so a terminal's Ctrl-C reaches
  // only the supervisor, which then stops children in order.
  bool new_process_group = false;
};

class ChildProcess {
 public:
  // Starts the program. Errors: kIo for fork/open failures; an exec failure
  // shows as exit status 127 (126: the set-up before exec failed).
  [[nodiscard]] static Result<ChildProcess> Spawn(const SpawnOptions& options);

  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  // Kills (SIGKILL) and reaps a child still running: stop it properly first.
  ~ChildProcess();

  pid_t pid() const { return pid_; }

  // Reaps the child if it has exited; true while it runs.
  bool Running();
  // The exit status once reaped: 0..255 for a normal exit, 128+N when killed
  // by signal N.
  std::optional<int> exit_status() const { return exit_status_; }

  // Sends `signal` (no-op once reaped).
  void Signal(int signal);
  // Waits for the exit until `timeout`; the exit status, or nullopt on timeout.
  std::optional<int> WaitFor(std::chrono::milliseconds timeout);
  // Waits for the exit; the exit status.
  int Wait();
  // SIGTERM, wait up to `grace`, then SIGKILL; the exit status.
  int Stop(std::chrono::milliseconds grace);

 private:
  explicit ChildProcess(pid_t pid) : pid_(pid) {}
  bool Reap(bool block);

  pid_t pid_ = -1;
  std::optional<int> exit_status_;
};

// Spawns and waits: the program's exit status.
[[nodiscard]] Result<int> RunToCompletion(const SpawnOptions& options);

// The last `max_bytes` of a (log) file, for error messages; empty when
// unreadable.
std::string FileTail(const std::filesystem::path& path, std::size_t max_bytes = 4000);

}  // namespace kindling::service
