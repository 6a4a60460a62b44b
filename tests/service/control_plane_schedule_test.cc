// Scheduled control-plane backups: what is due, decided from the
// repository's backups with an advanced clock; and the scheduler against a
// real cluster with real pgBackRest (a full backup taken, the check stored,
// an incremental when the clock says so, a failing backup retried later,
// one scheduler at a time, `kindling serve --pgbackrest-config` doing it).
// The real-pgBackRest tests hold "Drill" in their names (scripts/test.sh
// leaves them out of the sanitizer run).
#include "service/control_plane_schedule.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "crypto/aead.h"
#include "db/audit.h"
#include "db/control_plane_status.h"
#include "db/database.h"
#include "db/migrations.h"
#include "service/dev.h"
#include "service/local_postgres.h"
#include "service/postgres_control.h"
#include "service/serve.h"
#include "testutil/temp_dir.h"

namespace kindling::service {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;

constexpr std::int64_t kT0 = 1'790'000'000;  // 2026-09-21

SystemTime At(std::int64_t unix_seconds) { return SystemTime(seconds(unix_seconds)); }

pgbackup::BackupSet Set(const std::string& type, std::int64_t start) {
  pgbackup::BackupSet set;
  set.type = type;
  set.label = type + "-" + std::to_string(start);
  set.start_time = start;
  set.stop_time = start + 60;
  return set;
}

pgbackup::StanzaInfo Info(std::vector<pgbackup::BackupSet> sets) {
  pgbackup::StanzaInfo info;
  info.name = "kindling";
  info.status_code = sets.empty() ? pgbackup::kNoValidBackups : pgbackup::kStanzaOk;
  info.backups = std::move(sets);
  return info;
}

std::string DueType(const pgbackup::StanzaInfo& info, std::int64_t now,
                    const BackupIntervals& intervals = {}) {
  auto due = DueControlPlaneBackup(info, At(now), intervals);
  return due ? due->type : "none";
}

TEST(DueControlPlaneBackupTest, AWeekOfDefaultSchedule) {
  // An empty repository: a full at once.
  auto first = DueControlPlaneBackup(Info({}), At(kT0), {});
  ASSERT_TRUE(first);
  EXPECT_EQ(first->type, "full");
  EXPECT_EQ(first->reason, "no full backup yet");

  // Walk a week hour by hour, "taking" whatever is due: one full, then a
  // diff a day, an incr every other hour, a full again after 7 days.
  std::vector<pgbackup::BackupSet> sets = {Set("full", kT0)};
  std::map<std::string, int> taken;
  for (std::int64_t now = kT0 + 600; now <= kT0 + 7 * 86400; now += 600) {
    const std::string type = DueType(Info(sets), now);
    if (type == "none") continue;
    sets.push_back(Set(type, now));
    ++taken[type];
  }
  EXPECT_EQ(taken["full"], 1);  // at exactly 7 days
  EXPECT_EQ(sets.back().type, "full");
  EXPECT_EQ(taken["diff"], 6);  // days 1..6
  EXPECT_EQ(taken["incr"], 7 * 24 - 7);
  // Nothing due right after a backup, whatever its type.
  EXPECT_EQ(DueType(Info(sets), sets.back().start_time + 1), "none");
}

TEST(DueControlPlaneBackupTest, EachTypeFromTheNewestOfItsKind) {
  const auto info = Info({Set("full", kT0), Set("diff", kT0 + 86400), Set("incr", kT0 + 90000)});
  EXPECT_EQ(DueType(info, kT0 + 90000 + 3599), "none");
  EXPECT_EQ(DueType(info, kT0 + 90000 + 3600), "incr");
  // The diff counts from the newest full or diff, not from the incr.
  EXPECT_EQ(DueType(info, kT0 + 2 * 86400), "diff");
  auto full = DueControlPlaneBackup(info, At(kT0 + 7 * 86400), {});
  ASSERT_TRUE(full);
  EXPECT_EQ(full->type, "full");
  EXPECT_EQ(full->reason, "the last full backup started 7.0 d ago");
}

TEST(DueControlPlaneBackupTest, ZeroDisablesATypeAndNothingWhileBusyOrBroken) {
  const BackupIntervals fulls_only{
      .full_every = hours(24), .diff_every = seconds(0), .incr_every = seconds(0)};
  const auto info = Info({Set("full", kT0)});
  EXPECT_EQ(DueType(info, kT0 + 23 * 3600, fulls_only), "none");
  EXPECT_EQ(DueType(info, kT0 + 24 * 3600, fulls_only), "full");
  // Without fulls, a diff on an empty repository (pgBackRest makes it a full).
  const BackupIntervals no_full{.full_every = seconds(0)};
  EXPECT_EQ(DueType(Info({}), kT0, no_full), "diff");
  EXPECT_EQ(DueType(Info({}), kT0, BackupIntervals{seconds(0), seconds(0), seconds(0)}), "none");

  pgbackup::StanzaInfo busy = Info({});
  busy.backup_running = true;
  EXPECT_EQ(DueType(busy, kT0), "none");
  pgbackup::StanzaInfo missing = Info({});
  missing.status_code = pgbackup::kStanzaMissing;
  EXPECT_EQ(DueType(missing, kT0), "none");
  // A clock behind the repository's (a restored host) makes nothing due.
  EXPECT_EQ(DueType(Info({Set("full", kT0)}), kT0 - 86400 * 30), "none");
}

// Fails every `pgbackrest backup` while `fail` is set; runs the rest.
// Counts the backups started.
class FailingBackupRunner final : public CommandRunner {
 public:
  Result<CommandResult> Run(const CommandOptions& options) override {
    const bool backup = !options.args.empty() && options.args.back() == "backup";
    if (backup && fail)
      return CommandResult{.exit_status = 55,
                           .errors = "ERROR: [055]: unable to open repository (injected)\n"};
    if (backup) ++backups;
    return SystemCommandRunner().Run(options);
  }
  std::atomic<bool> fail{false};
  std::atomic<int> backups{0};
};

class ControlPlaneScheduleDrillTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::chmod(dir_.path().c_str(), 0755);  // the postgres user works inside
    state_ = dir_ / "state";
    fs::create_directories(state_ / "logs");
    port_ = 20000 + static_cast<int>(::getpid() % 20000);
    LocalPostgresOptions pg_options = DevPostgresOptions(state_, port_);
    pg_options.settings = {"fsync=off"};
    auto postgres = LocalPostgres::Create(pg_options);
    ASSERT_TRUE(postgres) << postgres.error().message();
    postgres_.emplace(std::move(*postgres));
    ASSERT_TRUE(postgres_->InitIfMissing());
    ASSERT_TRUE(postgres_->Start());
    ASSERT_TRUE(db::CreateDatabaseIfMissing(postgres_->SocketDsn("postgres"), "kindling"));
    db::DatabaseOptions db_options;
    db_options.dsn = postgres_->SocketDsn("kindling");
    db_options.max_connections = 2;
    auto database = db::Database::Open(db_options);
    ASSERT_TRUE(database) << database.error().message();
    database_ = std::move(*database);
    ASSERT_TRUE(db::RunMigrations(*database_));

    auto setup = DevBackupSetup(state_, crypto::RandomKey(), port_);
    ASSERT_TRUE(setup) << setup.error().message();
    setup_ = *setup;
    server_.emplace(*postgres_);
    pgbackup::ControlPlaneBackup configure(setup_, SystemCommandRunner(), *server_);
    auto configured = configure.Configure({.allow_restart = true});
    ASSERT_TRUE(configured) << configured.error().message();
    ASSERT_TRUE(configured->checked);
  }
  void TearDown() override {
    database_.reset();
    if (postgres_) (void)postgres_->Stop();
  }

  ControlPlaneScheduleOptions Options() {
    ControlPlaneScheduleOptions options;
    options.hostname = "db-test";
    options.process = "test";
    options.retry_after = minutes(15);
    options.now = [this] {
      std::lock_guard lock(mu_);
      return now_;
    };
    return options;
  }
  void Advance(std::chrono::seconds by) {
    std::lock_guard lock(mu_);
    now_ += by;
  }

  std::optional<db::ControlPlaneBackupStatus> Stored() {
    auto status =
        database_->Transact([](db::Tx& tx) { return db::GetControlPlaneBackupStatus(tx); });
    EXPECT_TRUE(status) << status.error().message();
    return status ? *status : std::nullopt;
  }
  std::vector<std::string> AuditActions() {
    auto events = database_->Transact([](db::Tx& tx) {
      return db::ListAuditEvents(tx, db::AuditFilter{.resource_type = "control_plane"});
    });
    EXPECT_TRUE(events);
    std::vector<std::string> actions;
    if (events)
      for (auto it = events->rbegin(); it != events->rend(); ++it) actions.push_back(it->action);
    return actions;
  }

  testutil::TempDir dir_;
  fs::path state_;
  int port_ = 0;
  std::optional<LocalPostgres> postgres_;
  std::optional<LocalServerControl> server_;
  std::unique_ptr<db::Database> database_;
  pgbackup::Setup setup_;
  std::mutex mu_;
  SystemTime now_ = std::chrono::system_clock::now();
};

TEST_F(ControlPlaneScheduleDrillTest, TakesDueBackupsStoresTheCheckAndRetriesFailuresDrill) {
  FailingBackupRunner runner;
  ControlPlaneScheduler scheduler(*database_, setup_, *server_, runner, Options());

  // An empty repository: a full backup, then the check, stored.
  ScheduleRound first = scheduler.RunOnce();
  ASSERT_TRUE(first.due);
  EXPECT_EQ(first.due->type, "full");
  ASSERT_TRUE(first.backup) << first.backup_error.value_or("");
  EXPECT_EQ(first.backup->backup.type, "full");
  ASSERT_TRUE(first.check);
  EXPECT_TRUE(first.check->ok()) << json(first.check->problems).dump();
  EXPECT_TRUE(first.stored);
  auto stored = Stored();
  ASSERT_TRUE(stored);
  EXPECT_TRUE(stored->ok);
  EXPECT_EQ(stored->hostname, "db-test");
  const json report = json::parse(stored->report_json);
  EXPECT_EQ(report["last_backup"].value("label", ""), first.backup->backup.label);
  EXPECT_EQ(report["last_backup"].value("type", ""), "full");
  EXPECT_EQ(report.value("wal_level", ""), "logical");
  EXPECT_TRUE(report["archiver"].is_object());
  EXPECT_EQ(report.value("check_every_seconds", 0), 300);
  EXPECT_EQ(report["checked_by"].value("process", ""), "test");
  // The passphrase never leaves the configuration file.
  EXPECT_EQ(stored->report_json.find(setup_.config.cipher_passphrase.Reveal()), std::string::npos);

  // A minute later: nothing due, no check yet.
  Advance(minutes(1));
  ScheduleRound idle = scheduler.RunOnce();
  EXPECT_FALSE(idle.due);
  EXPECT_FALSE(idle.check);

  // An hour after the full: an incremental (the repository says so, not
  // the scheduler's memory: a new scheduler agrees).
  Advance(minutes(60));
  ControlPlaneScheduler restarted(*database_, setup_, *server_, runner, Options());
  ScheduleRound incr = restarted.RunOnce();
  ASSERT_TRUE(incr.due);
  EXPECT_EQ(incr.due->type, "incr");
  ASSERT_TRUE(incr.backup) << incr.backup_error.value_or("");
  EXPECT_EQ(incr.backup->backup.type, "incr");

  // A day later the diff fails: warned, audited, a problem in the stored
  // check, not tried again before retry_after.
  Advance(hours(24));
  runner.fail = true;
  ScheduleRound failed = restarted.RunOnce();
  ASSERT_TRUE(failed.due);
  EXPECT_EQ(failed.due->type, "diff");
  EXPECT_FALSE(failed.backup);
  ASSERT_TRUE(failed.backup_error);
  EXPECT_NE(failed.backup_error->find("injected"), std::string::npos) << *failed.backup_error;
  ASSERT_TRUE(failed.check);
  EXPECT_FALSE(failed.check->ok());
  stored = Stored();
  ASSERT_TRUE(stored);
  EXPECT_FALSE(stored->ok);
  EXPECT_NE(stored->report_json.find("the scheduled diff backup failed"), std::string::npos)
      << stored->report_json;
  Advance(minutes(5));
  EXPECT_FALSE(restarted.RunOnce().due);

  // After retry_after, with the repository back: the diff, and all is well.
  runner.fail = false;
  Advance(minutes(11));
  ScheduleRound retried = restarted.RunOnce();
  ASSERT_TRUE(retried.due);
  ASSERT_TRUE(retried.backup) << retried.backup_error.value_or("");
  EXPECT_EQ(retried.backup->backup.type, "diff");
  ASSERT_TRUE(retried.check);
  EXPECT_TRUE(retried.check->ok()) << json(retried.check->problems).dump();
  EXPECT_TRUE(Stored()->ok);

  EXPECT_EQ(AuditActions(), (std::vector<std::string>{
                                "control_plane.backup.succeeded", "control_plane.backup.succeeded",
                                "control_plane.backup.failed", "control_plane.backup.succeeded"}));
}

TEST_F(ControlPlaneScheduleDrillTest, OneSchedulerAtATimeAndStopIsPromptDrill) {
  ControlPlaneScheduleOptions options = Options();
  options.poll_interval = std::chrono::milliseconds(100);
  FailingBackupRunner second_runner;
  ControlPlaneScheduler first(*database_, setup_, *server_, SystemCommandRunner(), options);
  ControlPlaneScheduler second(*database_, setup_, *server_, second_runner, options);
  first.Start();
  for (int i = 0; i < 100 && !first.is_scheduling(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_TRUE(first.is_scheduling());
  second.Start();
  // The first takes the full backup and stores its check.
  for (int i = 0; i < 1200 && !Stored(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_TRUE(Stored());
  EXPECT_FALSE(second.is_scheduling());

  // The first stops; the second takes over.
  const auto stop_started = std::chrono::steady_clock::now();
  first.Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - stop_started, seconds(10));
  for (int i = 0; i < 100 && !second.is_scheduling(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_TRUE(second.is_scheduling());

  // A scheduler stopped in the middle of a backup returns promptly (its
  // pgBackRest is stopped) and says so in the audit trail.
  Advance(hours(24 * 8));  // a full is due again
  for (int i = 0; i < 600 && second_runner.backups == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_EQ(second_runner.backups, 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const auto stopping = std::chrono::steady_clock::now();
  second.Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - stopping, seconds(5));
  const std::vector<std::string> actions = AuditActions();
  ASSERT_FALSE(actions.empty());
  EXPECT_EQ(actions.back(), "control_plane.backup.failed");
  // The check it did not finish was not stored as the cluster's state.
  EXPECT_TRUE(Stored()->ok) << Stored()->report_json;
}

TEST_F(ControlPlaneScheduleDrillTest, ServeWithAPgBackRestConfigurationSchedulesDrill) {
  std::atomic<bool> stop{false};
  ServeOptions options;
  options.components = {};
  options.dsn = postgres_->SocketDsn("kindling");
  options.state_dir = dir_ / "serve";
  options.hostname = "db-host";
  options.run_leader = false;
  options.handle_signals = false;
  options.stop = &stop;
  options.pgbackrest_config = setup_.config.config_file;
  options.control_plane.poll_interval = std::chrono::milliseconds(200);
  std::optional<Status> served;
  std::thread serve([&] { served = Serve(options); });
  for (int i = 0; i < 1200 && !Stored(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  stop = true;
  serve.join();
  ASSERT_TRUE(served);
  EXPECT_TRUE(*served) << served->error().message();
  auto stored = Stored();
  ASSERT_TRUE(stored);
  EXPECT_TRUE(stored->ok) << stored->report_json;
  EXPECT_EQ(stored->hostname, "db-host");
  EXPECT_TRUE(stored->server_id.has_value());
  EXPECT_EQ(json::parse(stored->report_json)["last_backup"].value("type", ""), "full");

  // A configuration named but missing is refused before anything starts.
  options.pgbackrest_config = dir_ / "missing.conf";
  auto refused = Serve(options);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_NE(refused.error().message().find("missing.conf"), std::string::npos);
}

}  // namespace
}  // namespace kindling::service
