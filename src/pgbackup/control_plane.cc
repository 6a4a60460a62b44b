#include "pgbackup/control_plane.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/durations.h"
#include "common/files.h"
#include "db/audit.h"
#include "db/database.h"
#include "db/migrations.h"
#include "pgbackup/reachability.h"

namespace kindling::pgbackup {
namespace {

namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// How long a bucket's endpoint has to accept a connection before check,
// backup and the WAL switch at a stop give up on it at once.
constexpr milliseconds kProbeTimeout{5000};

// OkStatus for a local repository (its errors come fast from pgBackRest).
Status ProbeRepository(const Repository& repository) {
  if (!repository.s3) return OkStatus();
  return ProbeEndpoint(*repository.s3, kProbeTimeout);
}

milliseconds Since(SteadyClock::time_point start) {
  return std::chrono::duration_cast<milliseconds>(SteadyClock::now() - start);
}

Result<std::unique_ptr<db::Database>> OpenDatabase(const std::string& dsn) {
  db::DatabaseOptions options;
  options.dsn = dsn;
  options.max_connections = 2;
  options.acquire_timeout = std::chrono::seconds(10);
  options.max_transaction_attempts = 2;
  options.application_name = kApplicationName;
  return db::Database::Open(options);
}

// Seconds from `then` (Unix seconds) to `now`.
double AgeSeconds(std::int64_t then, db::Timestamp now) {
  const auto now_us = now.time_since_epoch().count();
  return static_cast<double>(now_us - then * 1'000'000) / 1e6;
}

// The in-place restore's audit event, in the restored database (so the new
// timeline's first backup holds it). Its id; a warning when it cannot be
// written (the restore itself succeeded).
std::optional<std::string> AuditRestore(ServerControl& server, const std::string& database_name,
                                        const RestoreOptions& options, RestoreReport& report,
                                        milliseconds so_far) {
  if (report.schema_version <= 0) return std::nullopt;  // no kindling schema: no audit table
  nlohmann::json details = {
      {"target", report.target_rfc3339.empty() ? report.target : report.target_rfc3339},
      {"backup_set", report.backup_set},
      {"data_dir", report.data_dir.string()},
      {"host", options.operator_host},
      {"os_user", options.operator_user},
      {"wal_level", report.wal_level},
      {"schema_version", report.schema_version},
      {"restore_ms", report.restore_duration.count()},
      {"recovery_ms", report.recovery_duration.count()},
      {"duration_ms", so_far.count()}};
  nlohmann::json counts = nlohmann::json::object();
  for (const auto& [table, count] : report.row_counts) counts[table] = count;
  details["row_counts"] = counts;
  auto database = OpenDatabase(server.Dsn(database_name));
  if (!database) {
    report.warnings.push_back("the restore is not in the audit trail (" +
                              database.error().message() + ")");
    return std::nullopt;
  }
  auto id = (*database)->Transact([&](db::Tx& tx) {
    return db::InsertAuditEvent(tx, db::AuditEventInput{.action = kRestoredAuditAction,
                                                        .resource_type = "cluster",
                                                        .details_json = details.dump()});
  });
  if (!id) {
    report.warnings.push_back("the restore is not in the audit trail (" + id.error().message() +
                              ")");
    return std::nullopt;
  }
  return *id;
}

std::string FormatUnix(std::int64_t seconds) {
  return db::FormatTimestamp(db::Timestamp(std::chrono::seconds(seconds)));
}

Status MakeDirectory(const fs::path& dir, unsigned mode) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return IoError("create " + dir.string() + ": " + ec.message());
  if (::chmod(dir.c_str(), mode) != 0) return ErrnoError("chmod " + dir.string(), errno);
  return OkStatus();
}

// Polls until the server left recovery (a restore promoted), or fails with
// its log when it stopped (e.g. the target lies beyond the archived WAL).
Status WaitUntilPromoted(ServerControl& server, milliseconds timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  std::string last_error = "not reachable yet";
  for (int round = 0;; ++round) {
    auto database = OpenDatabase(server.Dsn("postgres"));
    if (database) {
      auto in_recovery = (*database)->Transact([](db::Tx& tx) { return db::InRecovery(tx); },
                                               db::TxOptions{.read_only = true});
      if (in_recovery && !*in_recovery) return OkStatus();
      last_error = in_recovery ? "still replaying WAL" : in_recovery.error().message();
    } else {
      last_error = database.error().message();
    }
    if (round % 5 == 4 && !server.Running())
      return InternalError("PostgreSQL stopped during recovery; its log: " + server.LogTail());
    if (SteadyClock::now() >= deadline)
      return TransientError("PostgreSQL did not finish recovery within " +
                            std::to_string(timeout.count() / 1000) + " s (" + last_error +
                            "); its log: " + server.LogTail());
    std::this_thread::sleep_for(milliseconds(200));
  }
}

// What a restored cluster must look like, and the stale slots dropped.
void InspectRestored(ServerControl& server, const std::string& database_name,
                     RestoreReport& report) {
  auto postgres = OpenDatabase(server.Dsn("postgres"));
  if (!postgres) {
    report.problems.push_back("cannot connect to the restored cluster: " +
                              postgres.error().message());
    return;
  }
  db::Database& admin = **postgres;
  auto wal_level = admin.Transact([](db::Tx& tx) { return db::ShowSetting(tx, "wal_level"); });
  report.wal_level = wal_level ? *wal_level : "";
  if (!wal_level)
    report.problems.push_back("cannot read wal_level: " + wal_level.error().message());
  else if (*wal_level != "logical")
    report.problems.push_back("wal_level is " + *wal_level +
                              ", not logical: run `kindling admin control-plane configure`");
  auto slots =
      admin.Transact([](db::Tx& tx) { return db::ListReplicationSlots(tx, kListenerSlotPrefix); });
  if (!slots) {
    report.warnings.push_back("cannot list replication slots: " + slots.error().message());
  } else {
    for (const std::string& slot : *slots) {
      auto dropped = admin.Transact([&](db::Tx& tx) { return db::DropReplicationSlot(tx, slot); });
      if (dropped)
        report.dropped_slots.push_back(slot);
      else
        report.warnings.push_back("cannot drop replication slot " + slot + ": " +
                                  dropped.error().message());
    }
  }
  auto kindling = OpenDatabase(server.Dsn(database_name));
  if (!kindling) {
    report.problems.push_back("cannot open the database " + database_name + ": " +
                              kindling.error().message());
    return;
  }
  auto version = db::SchemaVersion(**kindling);
  if (!version)
    report.problems.push_back("cannot read the schema version: " + version.error().message());
  else
    report.schema_version = *version;
  if (version && *version == 0)
    report.problems.push_back("the database " + database_name + " has no kindling schema");
  auto counts = (*kindling)->Transact([](db::Tx& tx) { return db::CountMainTableRows(tx); },
                                      db::TxOptions{.read_only = true});
  if (counts)
    report.row_counts = *counts;
  else
    report.problems.push_back("cannot count rows: " + counts.error().message());
}

}  // namespace

ControlPlaneBackup::ControlPlaneBackup(Setup setup, CommandRunner& runner, ServerControl& server)
    : setup_(std::move(setup)),
      server_(server),
      pgbackrest_(runner, Invocation{.binary = setup_.config.binary,
                                     .config_file = setup_.config.config_file,
                                     .stanza = setup_.config.stanza,
                                     .run_as = setup_.run_as}) {}

Status ControlPlaneBackup::ChownToServerUser(const fs::path& path) const {
  if (!setup_.run_as) return OkStatus();
  if (::chown(path.c_str(), setup_.run_as->uid, setup_.run_as->gid) != 0)
    return ErrnoError("chown " + path.string() + " to the PostgreSQL user", errno);
  return OkStatus();
}

Status ControlPlaneBackup::WriteConfiguration() {
  const ClusterConfig& config = setup_.config;
  for (const fs::path& dir : {config.spool_dir, config.log_dir, config.lock_dir}) {
    KINDLING_RETURN_IF_ERROR(MakeDirectory(dir, 0750));
    KINDLING_RETURN_IF_ERROR(ChownToServerUser(dir));
  }
  if (!config.repository.s3) {
    KINDLING_RETURN_IF_ERROR(MakeDirectory(config.repository.path, 0750));
    KINDLING_RETURN_IF_ERROR(ChownToServerUser(config.repository.path));
  }
  std::error_code ec;
  fs::create_directories(config.config_file.parent_path(), ec);
  if (ec)
    return IoError("create " + config.config_file.parent_path().string() + ": " + ec.message());
  // 0640 from the start: the file holds the repository passphrase.
  KINDLING_RETURN_IF_ERROR(
      WriteFileAtomic(config.config_file, RenderConfig(config).Reveal(), 0640));
  return ChownToServerUser(config.config_file);
}

Result<ConfigureReport> ControlPlaneBackup::Configure(const ConfigureOptions& options) {
  const ClusterConfig& config = setup_.config;
  KINDLING_RETURN_IF_ERROR(Validate(config));
  ConfigureReport report;
  report.config_file = config.config_file;
  report.repository = DescribeRepository(config.repository);
  std::error_code ec;
  report.archiving = fs::exists(config.binary, ec);
  if (!report.archiving && !options.archiving_optional)
    return NotFound("pgBackRest is not installed (" + config.binary.string() +
                    " is missing): apt-get install pgbackrest");
  if (options.config_only) {
    if (!report.archiving)
      return NotFound("pgBackRest is not installed: apt-get install pgbackrest");
    KINDLING_RETURN_IF_ERROR(WriteConfiguration());
    return report;
  }
  if (!server_.Running())
    return FailedPrecondition("PostgreSQL is not running on " + config.data_dir.string());
  if (report.archiving) KINDLING_RETURN_IF_ERROR(WriteConfiguration());

  const auto settings = ServerSettings(config, report.archiving);
  {
    KINDLING_ASSIGN_OR_RETURN(std::unique_ptr<db::Database> admin,
                              OpenDatabase(server_.Dsn("postgres")));
    KINDLING_RETURN_IF_ERROR(db::AlterSystem(*admin, settings));
    for (const auto& [name, value] : settings) report.settings.push_back(name);
    // wal_level and archive_mode apply at the next start only.
    KINDLING_ASSIGN_OR_RETURN(std::string wal_level, admin->Transact([](db::Tx& tx) {
      return db::ShowSetting(tx, "wal_level");
    }));
    KINDLING_ASSIGN_OR_RETURN(std::string archive_mode, admin->Transact([](db::Tx& tx) {
      return db::ShowSetting(tx, "archive_mode");
    }));
    report.restart_required = wal_level != "logical" || (report.archiving && archive_mode != "on");
  }
  if (report.restart_required && options.allow_restart) {
    KINDLING_RETURN_IF_ERROR(server_.Restart());
    report.restarted = true;
    report.restart_required = false;
  }
  if (!report.archiving) return report;
  KINDLING_RETURN_IF_ERROR(pgbackrest_.StanzaCreate());
  report.stanza_created = true;
  if (report.restart_required) return report;
  KINDLING_RETURN_IF_ERROR(pgbackrest_.Check());
  report.checked = true;
  return report;
}

Result<BackupReport> ControlPlaneBackup::Backup(const std::string& type) {
  if (type != "full" && type != "diff" && type != "incr")
    return InvalidArgument("the backup type is full, diff or incr, got '" + type + "'");
  std::error_code ec;
  if (!fs::exists(setup_.config.config_file, ec))
    return FailedPrecondition("no pgBackRest configuration at " +
                              setup_.config.config_file.string() +
                              ": run `kindling admin control-plane configure` first");
  if (!server_.Running())
    return FailedPrecondition("PostgreSQL is not running on " + setup_.config.data_dir.string());
  KINDLING_RETURN_IF_ERROR(ProbeRepository(setup_.config.repository));
  const auto start = SteadyClock::now();
  KINDLING_RETURN_IF_ERROR(pgbackrest_.Backup(type));
  BackupReport report;
  report.duration = Since(start);
  KINDLING_ASSIGN_OR_RETURN(StanzaInfo info, pgbackrest_.Info());
  const BackupSet* latest = info.Latest();
  if (latest == nullptr)
    return InternalError("pgbackrest backup succeeded but info lists no backup: " + info.Problem());
  report.backup = *latest;
  return report;
}

CheckReport ControlPlaneBackup::Check(const CheckOptions& options) {
  CheckReport report;
  std::error_code ec;
  if (!fs::exists(setup_.config.config_file, ec)) {
    report.pgbackrest_check = "not configured";
    report.problems.push_back("no pgBackRest configuration at " +
                              setup_.config.config_file.string() +
                              ": run `kindling admin control-plane configure`");
    return report;
  }
  const Status reachable = ProbeRepository(setup_.config.repository);
  if (!reachable) {
    report.pgbackrest_check = reachable.error().message();
    report.problems.push_back(reachable.error().message());
  } else if (auto checked = pgbackrest_.Check(); checked) {
    report.pgbackrest_check = "ok";
  } else {
    report.pgbackrest_check = checked.error().message();
    report.problems.push_back(checked.error().message());
  }

  std::optional<db::Timestamp> now;
  if (auto admin = OpenDatabase(server_.Dsn("postgres")); !admin) {
    report.problems.push_back("cannot connect to PostgreSQL: " + admin.error().message());
  } else {
    db::Database& database = **admin;
    if (auto archiver = database.Transact([](db::Tx& tx) { return db::GetArchiverStatus(tx); });
        archiver) {
      report.archiver = *archiver;
      now = archiver->now;
      if (archiver->last_archived_time)
        report.last_archived_age_seconds =
            static_cast<double>((archiver->now - *archiver->last_archived_time).count()) / 1e6;
      if (archiver->failing())
        report.problems.push_back(
            "WAL archiving fails: the last attempt (" + archiver->last_failed_wal.value_or("?") +
            " at " + db::FormatTimestamp(*archiver->last_failed_time) + ") failed, " +
            std::to_string(archiver->failed_count) +
            " failures since the statistics were reset; see pgBackRest's log in " +
            setup_.config.log_dir.string());
    } else {
      report.problems.push_back("cannot read pg_stat_archiver: " + archiver.error().message());
    }
    if (auto level = database.Transact([](db::Tx& tx) { return db::ShowSetting(tx, "wal_level"); });
        level) {
      report.wal_level = *level;
      if (*level != "logical")
        report.problems.push_back("wal_level is " + *level + ", not logical");
    }
    if (auto mode =
            database.Transact([](db::Tx& tx) { return db::ShowSetting(tx, "archive_mode"); });
        mode) {
      report.archive_mode = *mode;
      if (*mode != "on") report.problems.push_back("archive_mode is " + *mode + ", not on");
    }
  }
  if (!now)
    now = std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::system_clock::now());

  if (!reachable) return report;  // info would only wait for the endpoint too
  auto info = pgbackrest_.Info();
  if (!info) {
    report.problems.push_back(info.error().message());
    return report;
  }
  report.info = *info;
  const BackupSet* latest = info->Latest();
  if (latest != nullptr) {
    report.last_backup_age_seconds = AgeSeconds(latest->stop_time, *now);
    if (*report.last_backup_age_seconds > static_cast<double>(options.max_backup_age.count()))
      report.problems.push_back("the last backup (" + latest->label + ") is " +
                                FormatAge(*report.last_backup_age_seconds) + " old, more than " +
                                FormatAge(static_cast<double>(options.max_backup_age.count())));
  }
  if (info->status_code == kNoValidBackups || (info->ok() && latest == nullptr))
    report.problems.push_back(
        "the repository has no backup yet: run `kindling admin control-plane backup`");
  else if (!info->ok())
    report.problems.push_back("the repository: " + info->Problem());
  return report;
}

Status ControlPlaneBackup::ArchiveCurrentWal(milliseconds timeout) {
  KINDLING_ASSIGN_OR_RETURN(std::unique_ptr<db::Database> admin,
                            OpenDatabase(server_.Dsn("postgres")));
  KINDLING_ASSIGN_OR_RETURN(const bool in_recovery,
                            admin->Transact([](db::Tx& tx) { return db::InRecovery(tx); }));
  if (in_recovery) return OkStatus();
  KINDLING_ASSIGN_OR_RETURN(const std::string mode, admin->Transact([](db::Tx& tx) {
    return db::ShowSetting(tx, "archive_mode");
  }));
  if (mode == "off") return OkStatus();
  KINDLING_RETURN_IF_ERROR(ProbeRepository(setup_.config.repository));
  KINDLING_ASSIGN_OR_RETURN(const db::ArchiverStatus before,
                            admin->Transact([](db::Tx& tx) { return db::GetArchiverStatus(tx); }));
  KINDLING_ASSIGN_OR_RETURN(const std::string wal,
                            admin->Transact([](db::Tx& tx) { return db::SwitchWal(tx); }));
  const auto deadline = SteadyClock::now() + timeout;
  for (;;) {
    KINDLING_ASSIGN_OR_RETURN(const bool archived, admin->Transact([&wal](db::Tx& tx) {
      return db::WalArchivedThrough(tx, wal);
    }));
    if (archived) return OkStatus();
    KINDLING_ASSIGN_OR_RETURN(const db::ArchiverStatus status, admin->Transact([](db::Tx& tx) {
      return db::GetArchiverStatus(tx);
    }));
    if (status.failing() && *status.last_failed_time > before.now)
      return IoError("WAL file " + wal + " cannot be archived (the last attempt, on " +
                     status.last_failed_wal.value_or("?") + ", failed); see pgBackRest's log in " +
                     setup_.config.log_dir.string());
    if (SteadyClock::now() >= deadline)
      return TransientError("WAL file " + wal + " was not archived within " +
                            std::to_string(timeout.count() / 1000) + " s");
    std::this_thread::sleep_for(milliseconds(100));
  }
}

Result<RestoreReport> ControlPlaneBackup::Restore(const RestoreOptions& options,
                                                  const CopyServerFactory& make_copy) {
  const auto start = SteadyClock::now();
  const ClusterConfig& config = setup_.config;
  RestoreReport report;
  report.target = options.target ? options.target->text : "latest";
  if (options.target) report.target_rfc3339 = options.target->rfc3339;
  std::error_code ec;
  if (!fs::exists(config.config_file, ec))
    return FailedPrecondition("no pgBackRest configuration at " + config.config_file.string() +
                              ": run `kindling admin control-plane configure` (on a new host: "
                              "with the same repository and master key) first");

  // Everything that can refuse is checked before anything is touched.
  KINDLING_ASSIGN_OR_RETURN(StanzaInfo info, pgbackrest_.Info());
  if (!info.ok())
    return FailedPrecondition("the repository has no usable backup: " + info.Problem());
  const BackupSet* from = info.Latest();
  if (options.target) {
    // A backup is consistent at its stop time, which info rounds down to
    // the second: it must have stopped a whole second before the target.
    const std::int64_t target_seconds =
        std::chrono::floor<std::chrono::seconds>(options.target->time).time_since_epoch().count();
    from = info.NewestStoppedBy(target_seconds - 1);
    if (from == nullptr)
      return FailedPrecondition("no backup finished before " + options.target->text +
                                "; the oldest (" + info.backups.front().label + ") finished at " +
                                FormatUnix(info.backups.front().stop_time) + ": pick a later time");
  }
  report.backup_set = from->label;

  const bool into = !options.into.empty();
  std::unique_ptr<ServerControl> copy;
  ServerControl* target_server = &server_;
  RestoreRequest request;
  request.target_time = options.target ? std::optional(options.target->text) : std::nullopt;
  request.set = from->label;
  if (into) {
    const fs::path dir = fs::absolute(options.into, ec);
    if (ec) return InvalidArgument("bad --into: " + ec.message());
    if (dir == fs::absolute(config.data_dir, ec))
      return InvalidArgument(
          "--into is the cluster's own data directory; leave it out to restore "
          "in place");
    if (fs::exists(dir / "postmaster.pid", ec))
      return FailedPrecondition(dir.string() + " holds a running PostgreSQL: stop it first");
    if (fs::exists(dir, ec) && !fs::is_empty(dir, ec) && !fs::exists(dir / "PG_VERSION", ec))
      return FailedPrecondition(dir.string() +
                                " is neither empty nor an earlier restored copy: pick another "
                                "directory");
    if (!make_copy) return InternalError("restore --into needs a server for the copy");
    // The copy can reach only what the repository holds: the running
    // cluster's current WAL file goes there first (nothing else is asked of
    // it).
    if (server_.Running()) {
      if (auto archived = ArchiveCurrentWal(options.archive_wait); !archived)
        report.warnings.push_back("the running cluster's current WAL file was not archived (" +
                                  archived.error().message() +
                                  "): the copy can reach only what the repository holds");
    }
    KINDLING_RETURN_IF_ERROR(MakeDirectory(dir, 0700));
    KINDLING_RETURN_IF_ERROR(ChownToServerUser(dir));
    KINDLING_ASSIGN_OR_RETURN(copy, make_copy(dir));
    target_server = copy.get();
    request.pg_path = dir;
    // Synchronous WAL fetching: the copy shares no queue or lock with the
    // running cluster's archiving.
    request.restore_command = pgbackrest_.SyncRestoreCommand(dir);
    report.data_dir = dir;
  } else {
    report.data_dir = config.data_dir;
    if (server_.Running()) {
      KINDLING_ASSIGN_OR_RETURN(std::unique_ptr<db::Database> admin,
                                OpenDatabase(server_.Dsn("postgres")));
      KINDLING_ASSIGN_OR_RETURN(
          std::vector<db::ClientSession> sessions, admin->Transact([](db::Tx& tx) {
            return db::ListSessions(tx, {kServeApplicationName, kDevApplicationName});
          }));
      if (!sessions.empty()) {
        std::string who;
        for (const db::ClientSession& session : sessions)
          who += (who.empty() ? "" : ", ") + session.application_name + " (pid " +
                 std::to_string(session.pid) + ", from " + session.client + ")";
        return FailedPrecondition(std::to_string(sessions.size()) +
                                  " kindling sessions are connected: " + who +
                                  ". Stop `kindling serve` on every host (and `kindling dev`) "
                                  "before restoring the database under them");
      }
      admin.reset();
      // The newest WAL goes to the repository first, so the end of the
      // archive is as late as it can be.
      if (auto archived = ArchiveCurrentWal(options.archive_wait); !archived)
        report.warnings.push_back("the current WAL file was not archived before stopping (" +
                                  archived.error().message() +
                                  "): the restore can reach only what the repository holds");
      KINDLING_RETURN_IF_ERROR(server_.Stop());
    }
  }

  const auto restore_start = SteadyClock::now();
  KINDLING_RETURN_IF_ERROR(pgbackrest_.Restore(request));
  report.restore_duration = Since(restore_start);
  const auto recovery_start = SteadyClock::now();
  KINDLING_RETURN_IF_ERROR(target_server->Start());
  KINDLING_RETURN_IF_ERROR(WaitUntilPromoted(*target_server, options.recovery_timeout));
  report.recovery_duration = Since(recovery_start);
  report.running = true;
  report.dsn = target_server->Dsn(setup_.database);

  InspectRestored(*target_server, setup_.database, report);
  // The recovery settings pgBackRest wrote are spent; a copy must never
  // archive into the repository, even when someone starts it by hand.
  std::vector<std::pair<std::string, std::string>> tidy = {
      {"recovery_target_time", ""}, {"recovery_target_action", ""}, {"restore_command", ""}};
  if (into) {
    tidy.emplace_back("archive_mode", "off");
    tidy.emplace_back("archive_command", "");
  }
  if (auto admin = OpenDatabase(target_server->Dsn("postgres")); admin) {
    if (auto altered = db::AlterSystem(**admin, tidy); !altered)
      report.warnings.push_back("cannot reset the recovery settings: " + altered.error().message());
  }

  if (!into)
    report.audit_event_id =
        AuditRestore(*target_server, setup_.database, options, report, Since(start));

  if (into) {
    if (!options.keep_running) {
      KINDLING_RETURN_IF_ERROR(copy->Stop());
      report.running = false;
    }
  } else {
    if (options.backup_after) {
      // A full backup on the new timeline: the next restore starts there.
      KINDLING_RETURN_IF_ERROR(pgbackrest_.Check());
      KINDLING_ASSIGN_OR_RETURN(BackupReport backup, Backup("full"));
      report.new_backup = backup.backup;
    }
    if (options.stop_when_done) {
      if (auto archived = ArchiveCurrentWal(options.archive_wait); !archived)
        report.warnings.push_back("the current WAL file was not archived: " +
                                  archived.error().message());
      KINDLING_RETURN_IF_ERROR(server_.Stop());
      report.running = false;
    }
  }
  report.duration = Since(start);
  return report;
}

}  // namespace kindling::pgbackup
