// ControlPlaneScheduler: scheduled control-plane backups (pgBackRest) and
// the periodic check whose report every API process serves (GET
// /api/platform/health, /metrics).
//
// Who schedules. Only a process on the database host can run pgBackRest (it
// needs pgBackRest's configuration file and the data directory), so the
// scheduler runs in `kindling serve` when it has a pgBackRest configuration
// and in `kindling dev` (its private cluster's). Exactly one of them works
// at a time: the one holding a session advisory lock of its own
// (db::kControlPlaneBackupLockKey), not the leader's. The leader may be any
// serve process, most of them on hosts without the database (and in `kindling
// dev` its children compete for it, not the supervisor that owns the cluster);
// tying backups to leadership would stop them whenever such a process leads.
// The lock lives with its connection, so a crashed scheduler's lock is freed
// and another process on a database host takes over.
//
// What is due comes from the repository itself (`pgbackrest info`: the
// newest full, diff and incr), never from memory, so a restarted process or a
// restored database neither runs a backup twice nor forgets one:
//   full  when there is none, or the newest started `full_every` ago;
//   diff  when the newest full or diff started `diff_every` ago;
//   incr  when the newest backup of any type started `incr_every` ago.
// Zero disables a type (pgBackRest itself turns a diff or incr without a
// full before it into a full). Nothing is started while pgBackRest reports a
// backup running (e.g. one started by hand) or the stanza is not usable.
//
// Each round (every `poll_interval` while holding the lock): take the due
// backup, if any; check (ControlPlaneBackup::Check) after a backup and every
// `check_every`; store the check's report (db/control_plane_status.h). A
// failed backup is logged as a warning, audited, reported as a problem in
// the stored check and tried again after `retry_after`. Backups and checks
// are audited (user_id NULL): control_plane.backup.succeeded / .failed.
//
// Time goes through `now` (tests advance it instead of sleeping). pgBackRest
// runs as a subprocess with a timeout; Stop kills a running one (SIGTERM to
// its process group: pgBackRest aborts the backup, which the next one resumes
// or replaces; nothing already in the repository is touched) and returns
// promptly; a check cut short that way is not stored.
//
// Thread-safety: Start/Stop from one thread; RunOnce must not run
// concurrently with itself (the loop's thread, or a test without Start).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "common/result.h"
#include "common/subprocess.h"
#include "db/database.h"
#include "pgbackup/control_plane.h"
#include "pgbackup/info.h"
#include "pgbackup/server_control.h"

namespace kindling::service {

using SystemTime = std::chrono::system_clock::time_point;

struct BackupIntervals {
  std::chrono::seconds full_every{7 * 24 * 3600};
  std::chrono::seconds diff_every{24 * 3600};
  std::chrono::seconds incr_every{3600};
};

struct DueBackup {
  std::string type;    // full, diff or incr
  std::string reason;  // "no full backup yet", "the last full started 7.0 d ago"
};

// The backup due at `now` given the repository's backups, or nullopt. Pure.
std::optional<DueBackup> DueControlPlaneBackup(const pgbackup::StanzaInfo& info, SystemTime now,
                                               const BackupIntervals& intervals);

struct ControlPlaneScheduleOptions {
  BackupIntervals intervals;
  std::chrono::seconds check_every{300};
  std::chrono::seconds retry_after{900};  // after a failed backup
  // How often the loop tries the lock and looks at what is due.
  std::chrono::milliseconds poll_interval{30'000};
  // Who checks, in the stored report and audit events.
  std::string server_id;  // empty: not a `kindling serve` (kindling dev)
  std::string hostname;   // empty: gethostname()
  std::string process = "kindling serve";
  // The check's limit on the last backup's age; zero: twice the shortest
  // enabled interval plus an hour (25 h when every type is disabled).
  std::chrono::seconds max_backup_age{0};
  std::function<SystemTime()> now = [] { return std::chrono::system_clock::now(); };
};

// What one round did.
struct ScheduleRound {
  std::optional<DueBackup> due;
  std::optional<pgbackup::BackupReport> backup;  // set when the due backup succeeded
  std::optional<std::string> backup_error;       // set when it failed
  std::optional<pgbackup::CheckReport> check;    // set when it checked
  bool stored = false;                           // the check's report reached the database
};

class ControlPlaneScheduler {
 public:
  // REQUIRES: `db`, `server` and `runner` outlive the scheduler; `server`
  // is used by this scheduler only (Running, Dsn).
  ControlPlaneScheduler(db::Database& db, pgbackup::Setup setup, pgbackup::ServerControl& server,
                        CommandRunner& runner, ControlPlaneScheduleOptions options);
  ~ControlPlaneScheduler();
  ControlPlaneScheduler(const ControlPlaneScheduler&) = delete;
  ControlPlaneScheduler& operator=(const ControlPlaneScheduler&) = delete;

  // Starts the thread that takes the lock and runs rounds while it holds it.
  void Start();
  // Kills a running pgBackRest and joins the thread.
  void Stop();
  bool is_scheduling() const { return scheduling_.load(); }

  // One round without the lock (tests; the loop while it holds the lock).
  ScheduleRound RunOnce();

  // The report stored for `check` (exposed for tests).
  std::string ReportJson(const pgbackup::CheckReport& check) const;

 private:
  class CancellingRunner;
  void Loop();
  void Audit(const std::string& action, const std::string& stanza, const std::string& details);

  db::Database& db_;
  ControlPlaneScheduleOptions options_;
  std::atomic<bool> cancel_{false};
  std::unique_ptr<CancellingRunner> runner_;
  pgbackup::ControlPlaneBackup backups_;
  std::atomic<bool> scheduling_{false};

  // Round state (the round's thread only).
  std::optional<SystemTime> next_check_;
  std::optional<SystemTime> retry_at_;
  // The last scheduled backup's failure until one succeeds: a problem in
  // every stored report.
  std::optional<std::string> last_failure_;
  std::string last_info_problem_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace kindling::service
