#include "cli/control_plane_commands.h"

#include <fmt/format.h>
#include <pwd.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cli/exit_codes.h"
#include "cli/output.h"
#include "common/files.h"
#include "common/secret.h"
#include "common/subprocess.h"
#include "crypto/key_file.h"
#include "db/database.h"
#include "pgbackup/control_plane.h"
#include "service/child_process.h"
#include "service/dev.h"
#include "service/local_postgres.h"
#include "service/master_key.h"
#include "service/postgres_control.h"
#include "service/serve.h"

namespace kindling::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr char kDefaultConfig[] = "/etc/kindling/pgbackrest.conf";
constexpr char kFooter[] =
    "Exit codes: 0 success; 1 failed, or check found a problem (each one is named), or a "
    "restart of PostgreSQL is still needed; 2 usage or invalid argument.";

struct ControlPlaneFlags {
  std::string state_dir;
  std::string config = kDefaultConfig;
  bool json = false;
  // This host's cluster.
  std::string pg_data = "/var/lib/postgresql/15/main";
  std::string pg_socket_dir = "/var/run/postgresql";
  int pg_port = 5432;
  std::string pg_user = "postgres";
  std::string pg_bin;
  std::string pg_start_options;
  std::string pg_log = "/var/log/postgresql/kindling-pg_ctl.log";
  // configure
  std::string repo_path;
  std::string s3_bucket;
  std::string s3_endpoint;
  std::string s3_region;
  std::string s3_prefix = "/pgbackrest";
  std::string s3_key_id;
  std::string s3_key_secret_file;
  std::string s3_uri_style = "host";
  std::string s3_ca_file;
  bool s3_no_verify_tls = false;
  int retention_full = 2;
  std::string master_key_file;
  std::string spool_dir = "/var/spool/pgbackrest";
  std::string log_dir = "/var/log/pgbackrest";
  std::string lock_dir = "/tmp/pgbackrest";
  bool restart = false;
  bool config_only = false;
  // backup
  std::string type = "incr";
  // check
  std::int64_t max_backup_age_seconds = 25 * 3600;
  // restore
  std::string time;
  bool latest = false;
  std::string into;
  bool keep_running = false;
  std::int64_t recovery_timeout_seconds = 3600;
};

// What a command acts on: a `kindling dev` state directory, or this host.
struct Target {
  bool dev = false;
  fs::path state_dir;
  // Held while the command runs when no `kindling dev` runs on state_dir,
  // so none starts meanwhile.
  std::optional<service::DevStateLock> lock;
  bool dev_running = false;
  pgbackup::Setup setup;
  std::unique_ptr<pgbackup::ServerControl> server;
  bool started_server = false;  // by this command: stopped again at the end
};

std::string Getenv(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? "" : value;
}

std::string Trimmed(std::string text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front())))
    text.erase(text.begin());
  return text;
}

std::string UnixTime(std::int64_t seconds) {
  return FormatUnixMs(static_cast<std::uint64_t>(seconds) * 1000);
}

std::string TimestampText(db::Timestamp t) {
  return FormatUnixMs(static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count()));
}

// The repository the configure flags describe; nullopt when they name none.
Result<std::optional<pgbackup::Repository>> RepositoryFromFlags(const ControlPlaneFlags& flags) {
  if (!flags.repo_path.empty() && !flags.s3_bucket.empty())
    return InvalidArgument("--repo-path and --repo-s3-bucket exclude each other");
  if (flags.s3_bucket.empty()) {
    if (flags.repo_path.empty()) return std::optional<pgbackup::Repository>();
    std::error_code ec;
    pgbackup::Repository repository;
    repository.path = fs::absolute(flags.repo_path, ec);
    repository.retention_full = flags.retention_full;
    return std::optional(repository);
  }
  pgbackup::S3Repository s3;
  s3.bucket = flags.s3_bucket;
  s3.endpoint = flags.s3_endpoint;
  s3.region = flags.s3_region;
  s3.uri_style = flags.s3_uri_style;
  s3.verify_tls = !flags.s3_no_verify_tls;
  s3.ca_file = flags.s3_ca_file;
  s3.key = flags.s3_key_id;
  if (s3.key.empty()) s3.key = Getenv("PGBACKREST_REPO1_S3_KEY");
  if (s3.key.empty()) s3.key = Getenv("AWS_ACCESS_KEY_ID");
  // The secret never comes from a flag value (it would show in ps).
  if (!flags.s3_key_secret_file.empty()) {
    KINDLING_ASSIGN_OR_RETURN(std::string secret, ReadFile(flags.s3_key_secret_file));
    s3.key_secret = Secret(Trimmed(secret));
    WipeString(secret);
  }
  if (s3.key_secret.empty()) s3.key_secret = Secret(Getenv("PGBACKREST_REPO1_S3_KEY_SECRET"));
  if (s3.key_secret.empty()) s3.key_secret = Secret(Getenv("AWS_SECRET_ACCESS_KEY"));
  if (s3.key_secret.empty())
    return InvalidArgument(
        "the S3 secret key comes from PGBACKREST_REPO1_S3_KEY_SECRET, AWS_SECRET_ACCESS_KEY or "
        "--repo-s3-key-secret-file");
  pgbackup::Repository repository;
  repository.path = flags.s3_prefix.empty() ? "/" : flags.s3_prefix;
  if (!repository.path.string().starts_with("/")) repository.path = "/" + repository.path.string();
  repository.retention_full = flags.retention_full;
  repository.s3 = std::move(s3);
  return std::optional(repository);
}

Result<pgbackup::ClusterConfig> ReadConfig(const fs::path& path, bool dev) {
  auto text = ReadFile(path);
  if (!text) {
    if (text.error().is_not_found())
      return FailedPrecondition(
          "no pgBackRest configuration at " + path.string() +
          (dev ? ": start `kindling dev` on this state directory once (it configures it), or run "
                 "`kindling admin control-plane configure --state-dir`"
               : ": run `kindling admin control-plane configure` first"));
    return std::unexpected(text.error());
  }
  // The text holds the repository's secrets: wiped once parsed.
  auto config = pgbackup::ParseConfig(*text, path);
  WipeString(*text);
  return config;
}

Result<crypto::Key> LoadMasterKey(const ControlPlaneFlags& flags, const fs::path& fallback) {
  const fs::path path = flags.master_key_file.empty() ? fallback : fs::path(flags.master_key_file);
  auto key = crypto::LoadKeyFile(path);
  if (!key && key.error().is_not_found())
    return NotFound("the cluster master key " + path.string() +
                    " is missing: the repository passphrase is derived from it (point "
                    "--master-key-file at the cluster's key)");
  return key;
}

Result<Target> OpenTarget(const ControlPlaneFlags& flags, bool configuring) {
  Target target;
  std::error_code ec;
  if (!flags.state_dir.empty()) {
    target.dev = true;
    target.state_dir = fs::absolute(flags.state_dir, ec);
    if (!fs::exists(target.state_dir / "postgres" / "data" / "PG_VERSION", ec))
      return NotFound("no kindling dev cluster in " + target.state_dir.string() +
                      " (start `kindling dev --state-dir " + target.state_dir.string() + "` once)");
    KINDLING_ASSIGN_OR_RETURN(target.lock, service::DevStateLock::TryAcquire(target.state_dir));
    target.dev_running = !target.lock.has_value();
    if (configuring) {
      KINDLING_ASSIGN_OR_RETURN(const crypto::Key key,
                                LoadMasterKey(flags, target.state_dir / "master.key"));
      KINDLING_ASSIGN_OR_RETURN(std::optional<pgbackup::Repository> repository,
                                RepositoryFromFlags(flags));
      if (!repository) {
        // No repository flags: the one configured before, else the default.
        if (auto existing = ReadConfig(target.state_dir / "pgbackrest.conf", true);
            existing && !existing->repository.path.empty())
          repository = existing->repository;
      }
      KINDLING_ASSIGN_OR_RETURN(
          target.setup, service::DevBackupSetup(target.state_dir, key,
                                                service::kDefaultDevPostgresPort, repository));
    } else {
      KINDLING_ASSIGN_OR_RETURN(target.setup.config,
                                ReadConfig(target.state_dir / "pgbackrest.conf", true));
      KINDLING_ASSIGN_OR_RETURN(target.setup.run_as, service::PostgresServerUser());
    }
    KINDLING_ASSIGN_OR_RETURN(service::LocalPostgres postgres,
                              service::LocalPostgres::Create(service::DevPostgresOptions(
                                  target.state_dir, target.setup.config.port)));
    target.server = std::make_unique<service::LocalServerControl>(
        std::make_unique<service::LocalPostgres>(std::move(postgres)),
        /*write_missing_config=*/false);
    return target;
  }

  if (::geteuid() == 0) {
    KINDLING_ASSIGN_OR_RETURN(RunAsUser user, LookUpSystemUser(flags.pg_user));
    target.setup.run_as = user;
  }
  const fs::path config_file = fs::absolute(flags.config, ec);
  if (configuring) {
    pgbackup::ClusterConfig& config = target.setup.config;
    config.config_file = config_file;
    config.data_dir = fs::absolute(flags.pg_data, ec);
    config.socket_dir = fs::absolute(flags.pg_socket_dir, ec);
    config.port = flags.pg_port;
    config.spool_dir = fs::absolute(flags.spool_dir, ec);
    config.log_dir = fs::absolute(flags.log_dir, ec);
    config.lock_dir = fs::absolute(flags.lock_dir, ec);
    KINDLING_ASSIGN_OR_RETURN(std::optional<pgbackup::Repository> repository,
                              RepositoryFromFlags(flags));
    if (!repository) {
      // Run again without repository flags: the repository stays.
      auto existing = ReadConfig(config_file, false);
      if (!existing || existing->repository.path.empty())
        return InvalidArgument("name the repository: --repo-path DIR or --repo-s3-bucket B ...");
      repository = existing->repository;
    }
    config.repository = *repository;
    KINDLING_ASSIGN_OR_RETURN(
        const crypto::Key key,
        LoadMasterKey(flags, fs::path(service::kDefaultStateDir) / "master.key"));
    config.cipher_passphrase = pgbackup::RepositoryPassphrase(key);
  } else {
    KINDLING_ASSIGN_OR_RETURN(target.setup.config, ReadConfig(config_file, false));
  }
  service::HostServerOptions host;
  host.bin_dir = flags.pg_bin;
  host.data_dir = target.setup.config.data_dir;
  host.socket_dir = target.setup.config.socket_dir;
  host.port = target.setup.config.port;
  host.user = flags.pg_user;
  host.start_options = flags.pg_start_options;
  host.log_file = flags.pg_log;
  host.run_as = target.setup.run_as;
  target.server = std::make_unique<service::HostServerControl>(host, SystemCommandRunner());
  return target;
}

// The server must run for configure, backup and check: a stopped dev
// cluster is started for the command (and stopped again by Finish).
Status EnsureRunning(Target& target) {
  if (target.server->Running()) return OkStatus();
  if (!target.dev || target.dev_running)
    return FailedPrecondition("PostgreSQL is not running on " + target.server->data_dir().string() +
                              ": start it first");
  KINDLING_RETURN_IF_ERROR(target.server->Start());
  target.started_server = true;
  return OkStatus();
}

void Finish(Target& target, pgbackup::ControlPlaneBackup* backups) {
  if (!target.started_server) return;
  // What this command wrote reaches the repository before the stop.
  if (backups != nullptr) {
    if (auto archived = backups->ArchiveCurrentWal(std::chrono::seconds(10)); !archived)
      std::fprintf(stderr,
                   "kindling: warning: archiving the current WAL before stopping PostgreSQL: %s "
                   "(it is archived once PostgreSQL runs again)\n",
                   archived.error().message().c_str());
  }
  if (auto stopped = target.server->Stop(); !stopped)
    std::fprintf(stderr, "kindling: warning: stopping PostgreSQL: %s\n",
                 stopped.error().message().c_str());
  target.started_server = false;
}

json BackupSetJson(const pgbackup::BackupSet& set) {
  return json{{"label", set.label},
              {"type", set.type},
              {"start_time", UnixTime(set.start_time)},
              {"stop_time", UnixTime(set.stop_time)},
              {"size_bytes", set.size},
              {"delta_bytes", set.delta},
              {"repo_size_bytes", set.repo_size},
              {"repo_delta_bytes", set.repo_delta},
              {"wal_start", set.wal_start},
              {"wal_stop", set.wal_stop},
              {"error", set.error}};
}

std::string BackupSetText(const pgbackup::BackupSet& set) {
  return fmt::format("{} ({}), {} to {}: database {}, copied {}, repository +{} ({} in all)",
                     set.label, set.type, UnixTime(set.start_time), UnixTime(set.stop_time),
                     FormatBytes(set.size), FormatBytes(set.delta), FormatBytes(set.repo_delta),
                     FormatBytes(set.repo_size));
}

void Print(const ControlPlaneFlags& flags, const json& document, const std::string& text) {
  if (flags.json) {
    PrintJsonLine(document);
  } else {
    std::fputs(text.c_str(), stdout);
    std::fflush(stdout);
  }
}

int RunConfigure(const ControlPlaneFlags& flags) {
  auto target = OpenTarget(flags, /*configuring=*/true);
  if (!target) return ReportError(target.error());
  if (!flags.config_only) {
    if (auto running = EnsureRunning(*target); !running) return ReportError(running.error());
  }
  pgbackup::ControlPlaneBackup backups(target->setup, SystemCommandRunner(), *target->server);
  pgbackup::ConfigureOptions options;
  options.config_only = flags.config_only;
  // dev: its own server, unless a running `kindling dev` supervises it
  // (which applies this itself at its next start).
  options.allow_restart = target->dev ? !target->dev_running : flags.restart;
  auto report = backups.Configure(options);
  Finish(*target, &backups);
  if (!report) return ReportError(report.error());
  const json document = {{"config_file", report->config_file.string()},
                         {"repository", report->repository},
                         {"settings", report->settings},
                         {"restarted", report->restarted},
                         {"restart_required", report->restart_required},
                         {"stanza_created", report->stanza_created},
                         {"checked", report->checked}};
  std::string text = fmt::format(
      "pgBackRest configuration: {} (repository {})\n"
      "PostgreSQL settings (ALTER SYSTEM): {}\n",
      report->config_file.string(), report->repository, fmt::join(report->settings, ", "));
  if (report->restarted) text += "PostgreSQL restarted to apply wal_level and archive_mode\n";
  if (report->stanza_created) text += "stanza kindling: created or already in place\n";
  if (flags.config_only)
    text +=
        "only the configuration was written: restore from the repository next "
        "(kindling admin control-plane restore)\n";
  if (report->checked)
    text +=
        "check: ok (WAL archiving reaches the repository)\nnext: kindling admin control-plane "
        "backup --type full" +
        std::string(target->dev ? " --state-dir " + target->state_dir.string() : "") + "\n";
  Print(flags, document, text);
  if (report->restart_required)
    return ReportError(
        FailedPrecondition(
            target->dev
                ? "kindling dev is running: stop it and start it again to apply wal_level and "
                  "archive_mode (it configures them at start)"
                : "PostgreSQL must restart to apply wal_level and archive_mode: restart it (or "
                  "run configure again with --restart), then run `kindling admin control-plane "
                  "check`")
            .error());
  return kExitOk;
}

int RunBackup(const ControlPlaneFlags& flags) {
  auto target = OpenTarget(flags, false);
  if (!target) return ReportError(target.error());
  if (auto running = EnsureRunning(*target); !running) return ReportError(running.error());
  pgbackup::ControlPlaneBackup backups(target->setup, SystemCommandRunner(), *target->server);
  auto report = backups.Backup(flags.type);
  Finish(*target, &backups);
  if (!report) return ReportError(report.error());
  json document = BackupSetJson(report->backup);
  document["duration_ms"] = report->duration.count();
  Print(flags, document,
        "backup " + BackupSetText(report->backup) + " in " +
            FormatDuration(static_cast<std::uint64_t>(report->duration.count())) + "\n");
  return kExitOk;
}

// A warning about the operator's copy of the master key (which the database
// records when it is exported), or nullopt. Not a problem: backups work
// without it, but a restore would not.
std::optional<std::string> MasterKeyExportWarning(const Target& target) {
  db::DatabaseOptions options;
  options.dsn = target.server->Dsn(target.setup.database);
  options.max_connections = 1;
  options.acquire_timeout = std::chrono::seconds(10);
  options.application_name = pgbackup::kApplicationName;
  auto database = db::Database::Open(options);
  Result<std::optional<std::string>> warning =
      database ? service::MasterKeyExportWarning(**database)
               : Result<std::optional<std::string>>(std::unexpected(database.error()));
  if (!warning)
    return "cannot tell whether the master key was exported (" + warning.error().message() +
           "): keep a copy of it apart from the backups (kindling admin master-key export)";
  return *warning;
}

int RunCheck(const ControlPlaneFlags& flags) {
  auto target = OpenTarget(flags, false);
  if (!target) return ReportError(target.error());
  if (auto running = EnsureRunning(*target); !running) return ReportError(running.error());
  pgbackup::ControlPlaneBackup backups(target->setup, SystemCommandRunner(), *target->server);
  const pgbackup::CheckReport report =
      backups.Check({.max_backup_age = std::chrono::seconds(flags.max_backup_age_seconds)});
  std::vector<std::string> warnings;
  if (auto warning = MasterKeyExportWarning(*target)) warnings.push_back(*warning);
  Finish(*target, nullptr);

  json document = {{"ok", report.ok()},
                   {"problems", report.problems},
                   {"pgbackrest_check", report.pgbackrest_check},
                   {"wal_level", report.wal_level},
                   {"archive_mode", report.archive_mode},
                   {"repository", DescribeRepository(target->setup.config.repository)},
                   {"last_backup", nullptr},
                   {"last_backup_age_seconds", nullptr},
                   {"last_archived_age_seconds", nullptr},
                   {"archiver", nullptr},
                   {"warnings", warnings}};
  std::string text = "pgbackrest check: " + report.pgbackrest_check + "\n";
  if (report.info) {
    document["stanza_status"] = {{"code", report.info->status_code},
                                 {"message", report.info->status_message}};
    document["backups"] = report.info->backups.size();
    text += fmt::format("repository {}: {} ({} backups)\n",
                        DescribeRepository(target->setup.config.repository),
                        report.info->status_message, report.info->backups.size());
    if (const pgbackup::BackupSet* latest = report.info->Latest()) {
      document["last_backup"] = BackupSetJson(*latest);
      text += "last backup: " + BackupSetText(*latest) + "\n";
    }
  }
  if (report.last_backup_age_seconds) {
    document["last_backup_age_seconds"] = *report.last_backup_age_seconds;
    text += fmt::format("last backup age: {:.0f} s\n", *report.last_backup_age_seconds);
  }
  if (report.archiver) {
    const db::ArchiverStatus& a = *report.archiver;
    json archiver = {{"archived_count", a.archived_count},
                     {"last_archived_wal", a.last_archived_wal.value_or("")},
                     {"last_archived_time", nullptr},
                     {"failed_count", a.failed_count},
                     {"last_failed_wal", a.last_failed_wal.value_or("")},
                     {"last_failed_time", nullptr},
                     {"failing", a.failing()}};
    if (a.last_archived_time) archiver["last_archived_time"] = TimestampText(*a.last_archived_time);
    if (a.last_failed_time) archiver["last_failed_time"] = TimestampText(*a.last_failed_time);
    document["archiver"] = archiver;
    text += fmt::format("WAL archiving: last archived {} {}, {} failures{}\n",
                        a.last_archived_wal.value_or("(none)"),
                        a.last_archived_time ? TimestampText(*a.last_archived_time) : "",
                        a.failed_count, a.failing() ? " (failing now)" : "");
  }
  if (report.last_archived_age_seconds) {
    document["last_archived_age_seconds"] = *report.last_archived_age_seconds;
    text += fmt::format("last archived WAL age: {:.0f} s\n", *report.last_archived_age_seconds);
  }
  text += "wal_level: " + report.wal_level + ", archive_mode: " + report.archive_mode + "\n";
  for (const std::string& warning : warnings) {
    text += "WARNING: " + warning + "\n";
    // stdout holds only the JSON document then.
    if (flags.json) std::fprintf(stderr, "kindling: warning: %s\n", warning.c_str());
  }
  for (const std::string& problem : report.problems) text += "PROBLEM: " + problem + "\n";
  text += report.ok() ? "control-plane backups: ok\n" : "control-plane backups: FAILED\n";
  Print(flags, document, text);
  if (report.ok()) return kExitOk;
  return ReportError(
      FailedPrecondition(fmt::format("control-plane check found {} problem{}: {}",
                                     report.problems.size(), report.problems.size() == 1 ? "" : "s",
                                     fmt::join(report.problems, "; ")))
          .error());
}

// What the operator does after a restore, in order (printed numbered, and
// as `next_steps` in --json).
std::vector<std::string> NextSteps(const Target& target, const pgbackup::RestoreReport& report,
                                   bool into) {
  const std::string dir = report.data_dir.string();
  const std::string audit = report.target_rfc3339.empty()
                                ? std::string("kindling audit list")
                                : "kindling audit list --since " + report.target_rfc3339;
  if (into) {
    if (report.running)
      return {"look inside the copy: psql '" + report.dsn + "'",
              "stop it: pg_ctl -D " + dir + " stop (as the postgres user)",
              "remove " + dir + " and " + dir + ".log"};
    return {"remove " + dir + " and " + dir +
            ".log (--keep-running leaves the copy running to look inside)"};
  }
  if (target.dev) {
    const std::string state = target.state_dir.string();
    return {"check the DSN file " + (target.state_dir / "postgres.dsn").string() +
                " names this database (restore leaves it unchanged)",
            "start kindling dev again: kindling dev --state-dir " + state +
                " (its processes re-register with their server-id; the leader requeues or "
                "fails the operations the snapshot left running)",
            "source " + (target.state_dir / "dev.env").string() +
                " && kindling admin validate   (API, heartbeats, DSN files)",
            "the leader rescans the backup stores when it starts: volume backups made after "
            "the target get their rows back (kindling admin backups rescan runs it again; "
            "kindling admin backups orphans lists the ones of unknown volumes)",
            audit +
                "   (control_plane.restored is there; admin actions after the target are gone "
                "from the database: redo what still matters)"};
  }
  return {
      "on every host, check the DSN file (/etc/kindling/postgres.dsn, or the one "
      "--dsn-file names) reaches this database, and that it is the same file everywhere",
      "put the master key in place on every host (kindling admin master-key import --from "
      "FILE), then restart kindling serve on every host (migrations run; hosts re-register "
      "with their server-id; the leader requeues or fails the operations the snapshot left "
      "running)",
      "kindling admin validate   (with KINDLING_URL and a platform admin's KINDLING_API_KEY: "
      "API, heartbeats, DSN files)",
      "the leader rescans the backup stores when it starts: volume backups made after the "
      "target get their rows back (kindling admin backups rescan runs it again; kindling "
      "admin backups orphans lists the ones of unknown volumes)",
      audit +
          "   (control_plane.restored is there; admin actions after the target are gone "
          "from the database: redo what still matters), then restore volumes where needed "
          "(section 2 of docs/backup-and-restore.md)"};
}

std::string StepsText(const std::vector<std::string>& steps) {
  std::string text = "Next steps:\n";
  for (std::size_t i = 0; i < steps.size(); ++i) text += fmt::format("  {}. {}\n", i + 1, steps[i]);
  return text;
}

std::string Hostname() {
  char buffer[256] = {};
  if (::gethostname(buffer, sizeof buffer - 1) != 0 || buffer[0] == '\0') return "localhost";
  return buffer;
}

std::string OsUser() {
  passwd entry{};
  passwd* found = nullptr;
  char buffer[4096];
  if (::getpwuid_r(::geteuid(), &entry, buffer, sizeof buffer, &found) == 0 && found != nullptr)
    return found->pw_name;
  return "uid " + std::to_string(::geteuid());
}

int RunRestore(const ControlPlaneFlags& flags) {
  if (flags.time.empty() == !flags.latest)
    return ReportError(InvalidArgument("give exactly one of --time RFC3339 and --latest").error());
  pgbackup::RestoreOptions options;
  if (!flags.time.empty()) {
    auto target_time = pgbackup::ParseRecoveryTarget(flags.time);
    if (!target_time) return ReportError(target_time.error().WithContext("--time"));
    options.target = *target_time;
  }
  options.into = flags.into;
  options.keep_running = flags.keep_running;
  options.recovery_timeout = std::chrono::seconds(flags.recovery_timeout_seconds);
  const bool into = !flags.into.empty();
  if (flags.keep_running && !into)
    return ReportError(InvalidArgument("--keep-running goes with --into").error());

  auto target = OpenTarget(flags, false);
  if (!target) return ReportError(target.error());
  if (target->dev && !into && target->dev_running)
    return ReportError(
        FailedPrecondition("kindling dev is running on " + target->state_dir.string() +
                           ": stop it (Ctrl-C or SIGTERM) before restoring its database")
            .error());
  // dev: leave the cluster stopped, as `kindling dev` expects to find it.
  options.stop_when_done = target->dev;
  options.operator_host = Hostname();
  options.operator_user = OsUser();
  pgbackup::ControlPlaneBackup backups(target->setup, SystemCommandRunner(), *target->server);
  auto report =
      backups.Restore(options, [](const fs::path& dir) { return service::MakeDrillServer(dir); });
  if (!report) return ReportError(report.error());

  json counts = json::object();
  std::string count_text;
  for (const auto& [table, count] : report->row_counts) {
    counts[table] = count;
    count_text += fmt::format("{}{}={}", count_text.empty() ? "" : " ", table, count);
  }
  json document = {
      {"target", report->target},
      {"backup_set", report->backup_set},
      {"data_dir", report->data_dir.string()},
      {"into", into},
      {"running", report->running},
      {"dsn", report->running ? report->dsn : ""},
      {"wal_level", report->wal_level},
      {"schema_version", report->schema_version},
      {"row_counts", counts},
      {"dropped_slots", report->dropped_slots},
      {"new_backup", nullptr},
      {"audit_event_id", report->audit_event_id ? json(*report->audit_event_id) : json(nullptr)},
      {"warnings", report->warnings},
      {"problems", report->problems},
      {"restore_ms", report->restore_duration.count()},
      {"recovery_ms", report->recovery_duration.count()},
      {"duration_ms", report->duration.count()}};
  std::string text = fmt::format(
      "restored {} to {} from backup {} in {} (pgbackrest restore {}, recovery {})\n"
      "wal_level: {}; schema version: {}; rows: {}\n",
      into ? "a copy into " + report->data_dir.string() : report->data_dir.string(), report->target,
      report->backup_set, FormatDuration(static_cast<std::uint64_t>(report->duration.count())),
      FormatDuration(static_cast<std::uint64_t>(report->restore_duration.count())),
      FormatDuration(static_cast<std::uint64_t>(report->recovery_duration.count())),
      report->wal_level, report->schema_version, count_text);
  if (!report->dropped_slots.empty())
    text += "dropped stale replication slots: " +
            fmt::format("{}", fmt::join(report->dropped_slots, ", ")) + "\n";
  if (report->new_backup) {
    document["new_backup"] = BackupSetJson(*report->new_backup);
    text += "new full backup: " + BackupSetText(*report->new_backup) + "\n";
  }
  if (report->audit_event_id)
    text += std::string("audited: ") + pgbackup::kRestoredAuditAction + " (event " +
            *report->audit_event_id + ") in the restored database\n";
  for (const std::string& warning : report->warnings) text += "WARNING: " + warning + "\n";
  for (const std::string& problem : report->problems) text += "PROBLEM: " + problem + "\n";
  const std::vector<std::string> steps = NextSteps(*target, *report, into);
  document["next_steps"] = steps;
  if (into)
    text += "The running cluster was not touched; the copy is in " + report->data_dir.string() +
            " (archive_mode=off).\n";
  text += StepsText(steps);
  Print(flags, document, text);
  if (!report->problems.empty())
    return ReportError(FailedPrecondition("the restored cluster needs attention: " +
                                          fmt::format("{}", fmt::join(report->problems, "; ")))
                           .error());
  return kExitOk;
}

void AddTargetFlags(CLI::App& command, ControlPlaneFlags& flags) {
  command
      .add_option("--state-dir", flags.state_dir,
                  "Act on the `kindling dev` cluster in DIR (its PostgreSQL and pgBackRest files)")
      ->type_name("DIR");
  command
      .add_option(
          "--config", flags.config,
          std::string("This host's pgBackRest configuration (default ") + kDefaultConfig + ")")
      ->envname("KINDLING_PGBACKREST_CONFIG")
      ->type_name("PATH");
  command.add_option("--pg-user", flags.pg_user,
                     "The PostgreSQL system user pgBackRest runs as, and the database superuser "
                     "kindling connects as (default postgres)");
  command
      .add_option("--pg-bin", flags.pg_bin,
                  "PostgreSQL's bin directory (default: the newest "
                  "/usr/lib/postgresql/N/bin)")
      ->type_name("DIR");
  command
      .add_option("--pg-log", flags.pg_log,
                  "Host: the server's log when kindling starts it with pg_ctl (default "
                  "/var/log/postgresql/kindling-pg_ctl.log)")
      ->type_name("PATH");
  command.add_flag("--json", flags.json, "Print one JSON object on the last line of stdout");
  command.footer(kFooter);
}

}  // namespace

void AddControlPlaneCommands(CLI::App& admin, std::function<int()>& action) {
  auto flags = std::make_shared<ControlPlaneFlags>();
  CLI::App* group = admin.add_subcommand(
      "control-plane",
      "Back up and restore the control plane's PostgreSQL with pgBackRest (WAL archiving, "
      "point-in-time recovery, restore drills)");
  group->require_subcommand(1);
  auto set = [&action, flags](CLI::App* command, int (*run)(const ControlPlaneFlags&)) {
    command->callback([&action, flags, run] { action = [flags, run] { return run(*flags); }; });
  };

  CLI::App* configure = group->add_subcommand(
      "configure",
      "Write pgBackRest's configuration, turn on WAL archiving and wal_level=logical (ALTER "
      "SYSTEM), create the stanza and check it");
  AddTargetFlags(*configure, *flags);
  configure
      ->add_option("--repo-path", flags->repo_path,
                   "A repository directory (dev default: STATE_DIR/pgbackrest)")
      ->type_name("DIR");
  configure->add_option("--repo-s3-bucket", flags->s3_bucket, "An S3 repository's bucket")
      ->type_name("BUCKET");
  configure
      ->add_option("--repo-s3-endpoint", flags->s3_endpoint,
                   "Its HTTPS endpoint, host[:port] (a DNS name its certificate names)")
      ->type_name("HOST");
  configure->add_option("--repo-s3-region", flags->s3_region, "Its region")->type_name("REGION");
  configure
      ->add_option("--repo-s3-prefix", flags->s3_prefix,
                   "The repository's path in the bucket (default /pgbackrest)")
      ->type_name("PATH");
  configure
      ->add_option("--repo-s3-key-id", flags->s3_key_id,
                   "Access key id (default: PGBACKREST_REPO1_S3_KEY, else AWS_ACCESS_KEY_ID)")
      ->type_name("ID");
  configure
      ->add_option("--repo-s3-key-secret-file", flags->s3_key_secret_file,
                   "File holding the secret key (default: PGBACKREST_REPO1_S3_KEY_SECRET, else "
                   "AWS_SECRET_ACCESS_KEY; never a flag value)")
      ->type_name("PATH");
  configure->add_option("--repo-s3-uri-style", flags->s3_uri_style, "host (default) or path")
      ->check(CLI::IsMember({"host", "path"}));
  configure->add_option("--repo-s3-ca-file", flags->s3_ca_file, "CA bundle for its certificate")
      ->type_name("PATH");
  configure->add_flag("--repo-s3-no-verify-tls", flags->s3_no_verify_tls,
                      "Do not verify its certificate (tests only)");
  configure->add_option("--retention-full", flags->retention_full, "Full backups kept (default 2)")
      ->check(CLI::Range(1, 9999))
      ->type_name("N");
  configure
      ->add_option("--master-key-file", flags->master_key_file,
                   "The cluster master key the repository passphrase derives from (default: "
                   "STATE_DIR/master.key, on a host /var/lib/kindling/master.key)")
      ->envname("KINDLING_MASTER_KEY_FILE")
      ->type_name("PATH");
  configure
      ->add_option("--pg-data", flags->pg_data,
                   "Host: the data directory (default /var/lib/postgresql/15/main)")
      ->type_name("DIR");
  configure
      ->add_option("--pg-socket-dir", flags->pg_socket_dir,
                   "Host: the socket directory (default /var/run/postgresql)")
      ->type_name("DIR");
  configure->add_option("--pg-port", flags->pg_port, "Host: the port (default 5432)")
      ->check(CLI::Range(1, 65535))
      ->type_name("PORT");
  configure
      ->add_option("--spool-dir", flags->spool_dir,
                   "Host: pgBackRest's async WAL queue (default /var/spool/pgbackrest)")
      ->type_name("DIR");
  configure
      ->add_option("--log-dir", flags->log_dir,
                   "Host: pgBackRest's logs (default /var/log/pgbackrest)")
      ->type_name("DIR");
  configure
      ->add_option("--lock-dir", flags->lock_dir,
                   "Host: pgBackRest's lock files (default /tmp/pgbackrest)")
      ->type_name("DIR");
  configure->add_flag("--restart", flags->restart,
                      "Host: restart PostgreSQL with pg_ctl when wal_level or archive_mode "
                      "changed (otherwise: restart it yourself, then run check)");
  configure->add_flag("--config-only", flags->config_only,
                      "Write pgBackRest's configuration only (a new host about to restore the "
                      "lost cluster's backups: its repository belongs to that cluster)");
  set(configure, RunConfigure);

  CLI::App* backup = group->add_subcommand("backup", "Back up the control plane's PostgreSQL");
  AddTargetFlags(*backup, *flags);
  backup
      ->add_option("--type", flags->type,
                   "full, diff or incr (default incr; the first backup is always full)")
      ->check(CLI::IsMember({"full", "diff", "incr"}));
  set(backup, RunBackup);

  CLI::App* check = group->add_subcommand(
      "check", "Check backups and WAL archiving end to end; exit 1 naming every problem");
  AddTargetFlags(*check, *flags);
  check
      ->add_option("--max-backup-age", flags->max_backup_age_seconds,
                   "The last backup older than this is a problem (default 25h)")
      ->transform(CLI::AsNumberWithUnit(
          std::map<std::string, std::int64_t>{{"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400}},
          CLI::AsNumberWithUnit::CASE_SENSITIVE, "DURATION"))
      ->type_name("DURATION");
  set(check, RunCheck);

  CLI::App* restore = group->add_subcommand(
      "restore",
      "Restore the control plane's PostgreSQL to a point in time (or the end of the archive), "
      "in place with every kindling process stopped, or as a copy into another directory");
  AddTargetFlags(*restore, *flags);
  restore
      ->add_option("--time", flags->time,
                   "Recover up to this time, RFC 3339 (2025-01-31T12:00:00Z)")
      ->type_name("RFC3339");
  restore->add_flag("--latest", flags->latest, "Recover everything the archive holds");
  restore
      ->add_option("--into", flags->into,
                   "Restore a copy into DIR and start it on another port with archive_mode=off, "
                   "leaving the running cluster alone (a drill)")
      ->type_name("DIR");
  restore->add_flag("--keep-running", flags->keep_running,
                    "With --into: leave the copy running (its DSN is printed)");
  restore
      ->add_option("--recovery-timeout", flags->recovery_timeout_seconds,
                   "How long recovery may take (default 1h)")
      ->transform(CLI::AsNumberWithUnit(
          std::map<std::string, std::int64_t>{{"s", 1}, {"m", 60}, {"h", 3600}},
          CLI::AsNumberWithUnit::CASE_SENSITIVE, "DURATION"))
      ->type_name("DURATION");
  restore->add_option("--pg-start-options", flags->pg_start_options,
                      "Host: pg_ctl -o options to start PostgreSQL with after the restore "
                      "(default: those it ran with before)");
  set(restore, RunRestore);
}

}  // namespace kindling::cli
