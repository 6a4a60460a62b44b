// PgBackRest: the pgBackRest commands kindling runs, each as one subprocess
// through a CommandRunner, as the PostgreSQL user (pgBackRest refuses to
// work on a cluster it does not own), with the rendered configuration file
// and a timeout. Secrets never go on the command line: the repository's
// passphrase and keys are in the configuration file.
//
// Failures are kIo with pgBackRest's own message ("pgbackrest check: ERROR:
// [082]: WAL segment ... was not archived before the 30000ms timeout"), or
// kTransient when the command ran out of time, kCancelled when the runner
// stopped it (CommandOptions::cancel, set by a wrapping runner).
//
// Thread-safety: as thread-safe as the runner; pgBackRest itself serialises
// backups of a stanza with its lock files.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/subprocess.h"
#include "pgbackup/info.h"

namespace kindling::pgbackup {

struct Invocation {
  std::filesystem::path binary;
  std::filesystem::path config_file;
  std::string stanza;
  std::optional<RunAsUser> run_as;  // the PostgreSQL user; nullopt: ourselves
  // Limits per command kind.
  std::chrono::milliseconds short_timeout{120'000};        // check, info, stanza-create
  std::chrono::milliseconds long_timeout{24 * 3'600'000};  // backup, restore
};

struct RestoreRequest {
  // A recovery target (ParseRecoveryTarget's text); nullopt: the end of the
  // archived WAL (--type=default).
  std::optional<std::string> target_time;
  std::string set;  // the backup to start from; empty: pgBackRest's choice
  // Another data directory than the configuration's pg1-path.
  std::filesystem::path pg_path;
  // Replaces the restore_command pgBackRest would write.
  std::string restore_command;
};

class PgBackRest {
 public:
  PgBackRest(CommandRunner& runner, Invocation invocation)
      : runner_(runner), invocation_(std::move(invocation)) {}

  const Invocation& invocation() const { return invocation_; }

  // Creates the stanza in the repository, or checks that the existing one
  // belongs to this cluster. Idempotent.
  [[nodiscard]] Status StanzaCreate();
  // Checks the configuration end to end: connects, switches WAL and waits
  // until the file reached the repository.
  [[nodiscard]] Status Check();
  // type: full, diff or incr.
  [[nodiscard]] Status Backup(const std::string& type);
  [[nodiscard]] Result<StanzaInfo> Info();
  // --delta restore into the (stopped) cluster's data directory, ending in
  // promotion when a target is given. REQUIRES: PostgreSQL is not running
  // on that data directory (pgBackRest refuses otherwise).
  [[nodiscard]] Status Restore(const RestoreRequest& request);

  // The restore_command that fetches WAL for a cluster in `pg_path`
  // synchronously (no async queue shared with the production cluster).
  std::string SyncRestoreCommand(const std::filesystem::path& pg_path) const;

 private:
  [[nodiscard]] Result<CommandResult> Run(const std::string& command,
                                          std::vector<std::string> options,
                                          std::chrono::milliseconds timeout);
  [[nodiscard]] Status RunChecked(const std::string& command, std::vector<std::string> options,
                                  std::chrono::milliseconds timeout);

  CommandRunner& runner_;
  Invocation invocation_;
};

}  // namespace kindling::pgbackup
