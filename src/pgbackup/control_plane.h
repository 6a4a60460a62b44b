// ControlPlaneBackup: the runbook's control-plane section as four steps that
// check their own preconditions, so they cannot be run in the wrong order:
//
//   Configure  render pgBackRest's file (0640, owned by the PostgreSQL user),
//              persist wal_level=logical and WAL archiving with ALTER SYSTEM,
//              restart when those need it (if allowed), stanza-create, check.
//   Backup     a full, differential or incremental backup, and its numbers.
//   Check      pgBackRest's check and info, the age of the last backup and
//              of the last archived WAL file, failing archiving, wal_level:
//              every problem found, by name.
//   Restore    refuses while `kindling serve`/`kindling dev` are connected;
//              archives the current WAL and stops the server; restores to a
//              time (promoting there) or to the end of the archive; waits for
//              the end of recovery; checks wal_level, the schema version and
//              row counts; drops stale kindling_listener_* slots; records
//              the restore in the restored database's audit trail
//              (control_plane.restored); checks and takes a full backup on
//              the new timeline (which so holds that event). With `into`, restores
//              a copy into another directory instead, started on another
//              port with archive_mode=off (so a drill never pushes a
//              timeline into the repository) and audits nothing (the copy
//              shows the snapshot as it was; it is thrown away); of the
//              running cluster it only asks that the current WAL file be
//              archived first.
//
// pgBackRest runs as the PostgreSQL user (Setup::run_as); SQL goes through
// db/ (cluster_status.h) as a superuser (ServerControl::Dsn).
//
// Thread-safety: one caller at a time; pgBackRest's locks keep two backups
// of one stanza from running at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"
#include "common/subprocess.h"
#include "db/cluster_status.h"
#include "pgbackup/config.h"
#include "pgbackup/info.h"
#include "pgbackup/pgbackrest.h"
#include "pgbackup/server_control.h"

namespace kindling::pgbackup {

// application_name of the processes whose sessions block a restore.
inline constexpr char kServeApplicationName[] = "kindling serve";
inline constexpr char kDevApplicationName[] = "kindling dev";
// Ours, shown in pg_stat_activity.
inline constexpr char kApplicationName[] = "kindling control-plane";
inline constexpr char kListenerSlotPrefix[] = "kindling_listener_";
// The audit action of an in-place restore (resource_type "cluster").
inline constexpr char kRestoredAuditAction[] = "control_plane.restored";

struct Setup {
  ClusterConfig config;
  std::optional<RunAsUser> run_as;    // the PostgreSQL user; nullopt: ourselves
  std::string database = "kindling";  // the control plane's database
};

struct ConfigureOptions {
  // Restart the server when wal_level or archive_mode changed; otherwise
  // the report says a restart is required.
  bool allow_restart = false;
  // Without a pgbackrest binary: only wal_level=logical (kindling dev on a
  // machine without pgBackRest). Otherwise a missing binary is kNotFound.
  bool archiving_optional = false;
  // Write pgBackRest's file and nothing else; the server may be down. For a
  // new host about to restore: the repository's stanza belongs to the lost
  // cluster, so stanza-create and check would refuse this one.
  bool config_only = false;
};

struct ConfigureReport {
  std::filesystem::path config_file;
  std::string repository;             // DescribeRepository
  bool archiving = true;              // false: no pgbackrest (archiving_optional)
  std::vector<std::string> settings;  // persisted with ALTER SYSTEM
  bool restarted = false;
  // The server still runs with the old wal_level/archive_mode: restart it,
  // then run check. Nothing was checked.
  bool restart_required = false;
  bool stanza_created = false;
  bool checked = false;
};

struct BackupReport {
  BackupSet backup;
  std::chrono::milliseconds duration{0};
};

struct CheckOptions {
  // The last backup older than this is a problem.
  std::chrono::seconds max_backup_age{25 * 3600};
};

struct CheckReport {
  std::vector<std::string> problems;  // empty: all good
  std::string pgbackrest_check;       // "ok" or its error
  std::optional<StanzaInfo> info;
  std::optional<double> last_backup_age_seconds;
  std::optional<db::ArchiverStatus> archiver;
  std::optional<double> last_archived_age_seconds;
  std::string wal_level;
  std::string archive_mode;

  bool ok() const { return problems.empty(); }
};

// Makes the server of a restored copy in `data_dir`: another port, unix
// socket only, archive_mode=off.
using CopyServerFactory =
    std::function<Result<std::unique_ptr<ServerControl>>(const std::filesystem::path& data_dir)>;

struct RestoreOptions {
  std::optional<RecoveryTarget> target;  // nullopt: the end of the archive
  std::filesystem::path into;            // empty: in place
  bool keep_running = false;             // into: leave the copy running
  bool stop_when_done = false;           // in place: stop the server at the end
  bool backup_after = true;              // in place: check and a full backup
  std::chrono::milliseconds recovery_timeout{3'600'000};
  std::chrono::milliseconds archive_wait{30'000};  // for the WAL before stopping
  // In place: who restored, for the audit event's details (never a secret).
  std::string operator_host;
  std::string operator_user;
};

struct RestoreReport {
  std::string target;          // the target time as pgBackRest reads it, or "latest"
  std::string target_rfc3339;  // the target time in RFC 3339 (UTC); empty for latest
  std::string backup_set;      // the backup restored from
  std::filesystem::path data_dir;
  std::string dsn;  // of the restored cluster (superuser)
  bool running = false;
  std::string wal_level;
  int schema_version = 0;
  std::vector<std::pair<std::string, std::int64_t>> row_counts;
  std::vector<std::string> dropped_slots;
  std::optional<BackupSet> new_backup;
  // In place: the control_plane.restored event written into the restored
  // database (nullopt: a copy, or it could not be written: see warnings).
  std::optional<std::string> audit_event_id;
  std::vector<std::string> warnings;               // done anyway (e.g. the last WAL not archived)
  std::vector<std::string> problems;               // the restored cluster needs attention
  std::chrono::milliseconds restore_duration{0};   // pgbackrest restore
  std::chrono::milliseconds recovery_duration{0};  // start until promoted
  std::chrono::milliseconds duration{0};
};

class ControlPlaneBackup {
 public:
  // REQUIRES: `runner` and `server` outlive this; server.data_dir() is
  // setup.config.data_dir.
  ControlPlaneBackup(Setup setup, CommandRunner& runner, ServerControl& server);

  const Setup& setup() const { return setup_; }
  PgBackRest& pgbackrest() { return pgbackrest_; }

  // REQUIRES: the server runs (unless config_only). kNotFound without pgBackRest (unless
  // archiving_optional); kIo when stanza-create or check fails (the file
  // and settings are written by then: fix the repository, run it again).
  [[nodiscard]] Result<ConfigureReport> Configure(const ConfigureOptions& options);
  // REQUIRES: the server runs and Configure succeeded once.
  [[nodiscard]] Result<BackupReport> Backup(const std::string& type);
  // Never fails: whatever cannot be checked is a problem in the report.
  CheckReport Check(const CheckOptions& options);
  // kFailedPrecondition (nothing touched) when the repository has no usable
  // backup for the target, kindling processes are connected, or `into` is
  // in use; other errors leave the server stopped with the log's tail in
  // the message. `make_copy` is needed only with `into`.
  [[nodiscard]] Result<RestoreReport> Restore(const RestoreOptions& options,
                                              const CopyServerFactory& make_copy);
  // Closes the current WAL file and waits until it and every file before it
  // are archived (db::WalArchivedThrough). kIo when
  // archiving fails meanwhile, kTransient after `timeout`; ok at once when
  // archiving is off or the server is in recovery.
  [[nodiscard]] Status ArchiveCurrentWal(std::chrono::milliseconds timeout);

 private:
  [[nodiscard]] Status WriteConfiguration();
  [[nodiscard]] Status ChownToServerUser(const std::filesystem::path& path) const;

  Setup setup_;
  ServerControl& server_;
  PgBackRest pgbackrest_;
};

}  // namespace kindling::pgbackup
