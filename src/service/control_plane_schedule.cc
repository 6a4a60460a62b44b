#include "service/control_plane_schedule.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>

#include "db/audit.h"
#include "db/control_plane_status.h"
#include "db/notifications.h"

namespace kindling::service {
namespace {

using json = nlohmann::json;
using std::chrono::seconds;

std::int64_t UnixSeconds(SystemTime t) {
  return std::chrono::duration_cast<seconds>(t.time_since_epoch()).count();
}

std::string Rfc3339(std::int64_t unix_seconds) {
  const std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buffer;
}

std::string Rfc3339(db::Timestamp t) {
  return Rfc3339(std::chrono::floor<seconds>(t).time_since_epoch().count());
}

std::string FormatAge(std::int64_t seconds_ago) {
  char buffer[64];
  const double s = static_cast<double>(seconds_ago);
  if (seconds_ago < 120)
    std::snprintf(buffer, sizeof buffer, "%lld s", static_cast<long long>(seconds_ago));
  else if (seconds_ago < 7200)
    std::snprintf(buffer, sizeof buffer, "%.0f min", s / 60);
  else if (seconds_ago < 3 * 86400)
    std::snprintf(buffer, sizeof buffer, "%.1f h", s / 3600);
  else
    std::snprintf(buffer, sizeof buffer, "%.1f d", s / 86400);
  return buffer;
}

std::string LocalHostname() {
  char buffer[256] = {};
  if (::gethostname(buffer, sizeof buffer - 1) != 0 || buffer[0] == '\0') return "localhost";
  return buffer;
}

seconds MaxBackupAge(const ControlPlaneScheduleOptions& options) {
  if (options.max_backup_age.count() > 0) return options.max_backup_age;
  std::optional<seconds> shortest;
  for (seconds every :
       {options.intervals.full_every, options.intervals.diff_every, options.intervals.incr_every})
    if (every.count() > 0 && (!shortest || every < *shortest)) shortest = every;
  if (!shortest) return pgbackup::CheckOptions{}.max_backup_age;
  return 2 * *shortest + seconds(3600);
}

json OptionalTime(const std::optional<db::Timestamp>& t) {
  return t ? json(Rfc3339(*t)) : json(nullptr);
}

}  // namespace

std::optional<DueBackup> DueControlPlaneBackup(const pgbackup::StanzaInfo& info, SystemTime now,
                                               const BackupIntervals& intervals) {
  if (info.backup_running) return std::nullopt;
  if (!info.ok() && info.status_code != pgbackup::kNoValidBackups) return std::nullopt;
  std::optional<std::int64_t> full;
  std::optional<std::int64_t> full_or_diff;
  std::optional<std::int64_t> any;
  for (const pgbackup::BackupSet& set : info.backups) {
    const auto newest = [&](std::optional<std::int64_t>& slot) {
      if (!slot || set.start_time > *slot) slot = set.start_time;
    };
    newest(any);
    if (set.type == "full") newest(full);
    if (set.type == "full" || set.type == "diff") newest(full_or_diff);
  }
  const std::int64_t now_s = UnixSeconds(now);
  // Due when there is none, or the newest started `every` ago (a clock
  // behind the repository's makes nothing due).
  const auto due = [&](const std::optional<std::int64_t>& last, seconds every) {
    return every.count() > 0 && (!last || now_s - *last >= every.count());
  };
  const auto since = [&](const std::optional<std::int64_t>& last, const char* what) {
    return std::string("the last ") + what + " started " + FormatAge(now_s - *last) + " ago";
  };
  if (due(full, intervals.full_every))
    return DueBackup{"full", full ? since(full, "full backup") : "no full backup yet"};
  if (due(full_or_diff, intervals.diff_every))
    return DueBackup{"diff", full_or_diff ? since(full_or_diff, "full or diff backup")
                                          : "no backup yet (pgBackRest takes a full)"};
  if (due(any, intervals.incr_every))
    return DueBackup{"incr",
                     any ? since(any, "backup") : "no backup yet (pgBackRest takes a full)"};
  return std::nullopt;
}

// Hands every command the scheduler's cancel flag, so Stop ends a running
// pgBackRest.
class ControlPlaneScheduler::CancellingRunner final : public CommandRunner {
 public:
  CancellingRunner(CommandRunner& inner, const std::atomic<bool>& cancel)
      : inner_(inner), cancel_(cancel) {}
  Result<CommandResult> Run(const CommandOptions& options) override {
    CommandOptions copy = options;
    copy.cancel = &cancel_;
    return inner_.Run(copy);
  }

 private:
  CommandRunner& inner_;
  const std::atomic<bool>& cancel_;
};

ControlPlaneScheduler::ControlPlaneScheduler(db::Database& db, pgbackup::Setup setup,
                                             pgbackup::ServerControl& server, CommandRunner& runner,
                                             ControlPlaneScheduleOptions options)
    : db_(db),
      options_(std::move(options)),
      runner_(std::make_unique<CancellingRunner>(runner, cancel_)),
      backups_(std::move(setup), *runner_, server) {
  if (options_.hostname.empty()) options_.hostname = LocalHostname();
}

ControlPlaneScheduler::~ControlPlaneScheduler() { Stop(); }

void ControlPlaneScheduler::Start() {
  {
    std::lock_guard lock(mu_);
    stopping_ = false;
  }
  cancel_ = false;
  thread_ = std::thread([this] { Loop(); });
}

void ControlPlaneScheduler::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cancel_ = true;
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ControlPlaneScheduler::Loop() {
  std::unique_ptr<db::SessionLock> lock_session;
  bool told_waiting = false;
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) break;
    }
    if (!lock_session) {
      auto acquired =
          db::SessionLock::TryAcquire(db_.options().dsn, db::kControlPlaneBackupLockKey);
      if (!acquired) {
        spdlog::warn("control-plane backups: {}", acquired.error().message());
      } else if (*acquired) {
        lock_session = std::move(*acquired);
        scheduling_ = true;
        next_check_.reset();  // check at once: the report may be old
        spdlog::info(
            "control-plane backups: this process schedules them (full every {}s, diff every {}s, "
            "incr every {}s; 0 = off)",
            options_.intervals.full_every.count(), options_.intervals.diff_every.count(),
            options_.intervals.incr_every.count());
      } else if (!told_waiting) {
        told_waiting = true;
        spdlog::info("control-plane backups: another process schedules them; standing by");
      }
    } else if (auto alive = lock_session->Check(); !alive) {
      spdlog::warn("control-plane backups: lost the schedule lock: {}", alive.error().message());
      lock_session.reset();
      scheduling_ = false;
    }
    if (lock_session) RunOnce();
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, options_.poll_interval, [this] { return stopping_; });
  }
  scheduling_ = false;
}

void ControlPlaneScheduler::Audit(const std::string& action, const std::string& stanza,
                                  const std::string& details) {
  auto written = db_.Transact([&](db::Tx& tx) {
    return db::InsertAuditEvent(tx, db::AuditEventInput{.action = action,
                                                        .resource_type = "control_plane",
                                                        .resource_id = stanza,
                                                        .details_json = details});
  });
  if (!written)
    spdlog::warn("control-plane backups: cannot audit {}: {}", action, written.error().message());
}

ScheduleRound ControlPlaneScheduler::RunOnce() {
  ScheduleRound round;
  const SystemTime now = options_.now();
  const std::string& stanza = backups_.setup().config.stanza;

  std::string problem;
  auto info = backups_.pgbackrest().Info();
  if (!info) {
    problem = info.error().message();
  } else if (!info->ok() && info->status_code != pgbackup::kNoValidBackups) {
    problem = "the repository: " + info->Problem();
  } else if (!retry_at_ || now >= *retry_at_) {
    round.due = DueControlPlaneBackup(*info, now, options_.intervals);
  }
  if (cancel_) return round;
  if (problem != last_info_problem_) {
    if (!problem.empty())
      spdlog::warn("control-plane backups: no backup can be scheduled: {}", problem);
    last_info_problem_ = problem;
  }

  if (round.due && !cancel_) {
    const DueBackup& due = *round.due;
    spdlog::info("control-plane backup: starting the {} backup ({})", due.type, due.reason);
    json details = {
        {"scheduled", true},
        {"requested_type", due.type},
        {"reason", due.reason},
        {"server_id", options_.server_id.empty() ? json(nullptr) : json(options_.server_id)},
        {"hostname", options_.hostname}};
    auto made = backups_.Backup(due.type);
    if (made) {
      round.backup = *made;
      last_failure_.reset();
      retry_at_.reset();
      const pgbackup::BackupSet& set = made->backup;
      spdlog::info(
          "control-plane backup: {} backup {} done in {} ms ({} bytes into the repository)",
          set.type, set.label, made->duration.count(), set.repo_delta);
      details["label"] = set.label;
      details["type"] = set.type;
      details["duration_ms"] = made->duration.count();
      details["repo_delta_bytes"] = set.repo_delta;
      Audit("control_plane.backup.succeeded", stanza, details.dump());
    } else {
      const std::string message = made.error().message();
      round.backup_error = message;
      details["error"] = message;
      if (made.error().kind() == ErrorKind::kCancelled) {
        spdlog::info("control-plane backup: the {} backup was stopped by the shutdown", due.type);
      } else {
        last_failure_ = "the scheduled " + due.type + " backup failed at " +
                        Rfc3339(UnixSeconds(now)) + ": " + message;
        retry_at_ = now + options_.retry_after;
        spdlog::warn("control-plane backup: the {} backup failed (trying again in {} s): {}",
                     due.type, options_.retry_after.count(), message);
      }
      Audit("control_plane.backup.failed", stanza, details.dump());
    }
  }
  if (cancel_) return round;

  if (round.due || !next_check_ || now >= *next_check_) {
    pgbackup::CheckReport check = backups_.Check({.max_backup_age = MaxBackupAge(options_)});
    // A check the shutdown cut short says nothing about the backups.
    if (cancel_) return round;
    if (last_failure_) check.problems.push_back(*last_failure_);
    next_check_ = now + options_.check_every;
    auto stored = db_.Transact([&](db::Tx& tx) {
      return db::PutControlPlaneBackupStatus(
          tx, db::ControlPlaneBackupStatusInput{
                  .stanza = stanza,
                  .ok = check.ok(),
                  .report_json = ReportJson(check),
                  .server_id =
                      options_.server_id.empty() ? std::nullopt : std::optional(options_.server_id),
                  .hostname = options_.hostname});
    });
    round.stored = stored.has_value();
    if (!stored)
      spdlog::warn("control-plane backups: cannot store the check: {}", stored.error().message());
    if (!check.ok())
      spdlog::warn("control-plane backups: the check found {} problem(s): {}",
                   check.problems.size(), fmt::join(check.problems, "; "));
    round.check = std::move(check);
  }
  return round;
}

std::string ControlPlaneScheduler::ReportJson(const pgbackup::CheckReport& check) const {
  const pgbackup::ClusterConfig& config = backups_.setup().config;
  json report = {
      {"ok", check.ok()},
      {"problems", check.problems},
      {"pgbackrest_check", check.pgbackrest_check},
      {"stanza", config.stanza},
      {"repository", pgbackup::DescribeRepository(config.repository)},
      {"wal_level", check.wal_level},
      {"archive_mode", check.archive_mode},
      {"last_backup", nullptr},
      {"last_backup_age_seconds",
       check.last_backup_age_seconds ? json(*check.last_backup_age_seconds) : json(nullptr)},
      {"backup_count", check.info ? json(check.info->backups.size()) : json(nullptr)},
      {"archiver", nullptr},
      {"last_archived_age_seconds",
       check.last_archived_age_seconds ? json(*check.last_archived_age_seconds) : json(nullptr)},
      {"last_scheduled_backup_error", last_failure_ ? json(*last_failure_) : json(nullptr)},
      {"schedule",
       {{"full_every_seconds", options_.intervals.full_every.count()},
        {"diff_every_seconds", options_.intervals.diff_every.count()},
        {"incr_every_seconds", options_.intervals.incr_every.count()},
        {"retry_after_seconds", options_.retry_after.count()}}},
      {"check_every_seconds", options_.check_every.count()},
      {"checked_by",
       {{"server_id", options_.server_id.empty() ? json(nullptr) : json(options_.server_id)},
        {"hostname", options_.hostname},
        {"process", options_.process}}},
  };
  if (check.info) {
    if (const pgbackup::BackupSet* latest = check.info->Latest(); latest != nullptr)
      report["last_backup"] = {{"label", latest->label},
                               {"type", latest->type},
                               {"started_at", Rfc3339(latest->start_time)},
                               {"stopped_at", Rfc3339(latest->stop_time)},
                               {"size_bytes", latest->size},
                               {"repo_size_bytes", latest->repo_size}};
  }
  if (check.archiver) {
    const db::ArchiverStatus& a = *check.archiver;
    report["archiver"] = {
        {"archived_count", a.archived_count},
        {"last_archived_wal", a.last_archived_wal ? json(*a.last_archived_wal) : json(nullptr)},
        {"last_archived_at", OptionalTime(a.last_archived_time)},
        {"failed_count", a.failed_count},
        {"last_failed_wal", a.last_failed_wal ? json(*a.last_failed_wal) : json(nullptr)},
        {"last_failed_at", OptionalTime(a.last_failed_time)},
        {"failing", a.failing()}};
  }
  return report.dump();
}

}  // namespace kindling::service
