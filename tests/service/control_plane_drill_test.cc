// Control-plane disaster recovery against the real thing: the built
// `kindling dev` (private PostgreSQL with WAL archiving into a local
// pgBackRest repository), `kindling admin control-plane ...` commands and
// pgBackRest itself: the point-in-time drill (point_in_time_drill.h) with
// the local repository, an unusable repository during normal operation, a
// host's cluster through pg_ctl, and `kindling dev --dsn-file`. The drills
// run once, in the optimised build (their names hold "Drill";
// scripts/test.sh leaves them out of the sanitizer run).
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/subprocess.h"
#include "db/auth.h"
#include "db/database.h"
#include "db/migrations.h"
#include "db/projects.h"
#include "dev_process.h"
#include "drill_util.h"
#include "point_in_time_drill.h"
#include "service/child_process.h"
#include "service/local_postgres.h"
#include "service/serve.h"
#include "testutil/postgres_server.h"
#include "testutil/temp_dir.h"

namespace kindling::service {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

TEST_F(ControlPlaneDrillTest, PointInTimeRestoreInPlaceAndIntoACopyDrill) {
  dev_ = std::make_unique<DevProcess>(state_, kBackupsByHand);
  const fs::path repository = state_ / "pgbackrest";
  RunPointInTimeDrill({.description = repository.string(), .holds_timeline = [repository](int n) {
                         char history[32];
                         std::snprintf(history, sizeof history, "%08X.history", n);
                         return !FindFileStartingWith(repository / "archive", history).empty();
                       }});
}

// An unusable repository during normal operation: archiving fails, but the
// database, the API and the workers carry on at full speed, `check` names
// the failure, and kindling dev still stops promptly. Also: a PostgreSQL
// that dies is restarted by the supervisor.
TEST_F(ControlPlaneDrillTest, UnwritableRepositoryNeverStallsTheControlPlaneDrill) {
  dev_ = std::make_unique<DevProcess>(state_, kBackupsByHand);
  const std::string dsn = Unquoted(dev_->value("KINDLING_DSN"));
  ASSERT_EQ(ControlPlane("backup", {"--type", "full"}).exit_status, 0);

  // PostgreSQL killed under kindling dev comes back.
  {
    const std::string pid_line =
        ReadAll(state_ / "postgres" / "data" / "postmaster.pid").substr(0, 16);
    const pid_t postmaster = static_cast<pid_t>(std::stol(pid_line));
    ASSERT_GT(postmaster, 1);
    ASSERT_EQ(::kill(postmaster, SIGKILL), 0);
    bool back = false;
    for (int i = 0; i < 300 && !back; ++i) {
      std::this_thread::sleep_for(milliseconds(100));
      back = ReadAll(dev_->log()).find("PostgreSQL restarted (restart") != std::string::npos;
    }
    ASSERT_TRUE(back) << FileTail(dev_->log(), 2000);
    EXPECT_NE(ReadAll(dev_->log()).find("PostgreSQL exited; restarting in"), std::string::npos);
    int status = 0;
    for (int i = 0; i < 100; ++i) {
      Call("GET", "/api/meta", nullptr, &status);
      if (status == 200) break;
      std::this_thread::sleep_for(milliseconds(200));
    }
    EXPECT_EQ(status, 200);
  }

  // The repository becomes unusable for the postgres user.
  const fs::path repo = state_ / "pgbackrest";
  ASSERT_EQ(::chmod(repo.c_str(), 0), 0);
  const auto window_start = std::chrono::system_clock::now();
  const auto deadline = Clock::now() + seconds(13);  // more than a heartbeat interval
  milliseconds slowest{0};
  int calls = 0;
  while (Clock::now() < deadline) {
    const auto start = Clock::now();
    int status = 0;
    Call("POST", "/api/projects", {{"name", "p" + std::to_string(calls)}}, &status);
    EXPECT_EQ(status, 201);
    Call("GET", "/api/platform/servers", nullptr, &status);
    EXPECT_EQ(status, 200);
    slowest = std::max(slowest, std::chrono::duration_cast<milliseconds>(Clock::now() - start));
    ++calls;
    // WAL files to archive: each switch is another archiving attempt.
    if (calls % 5 == 0) Strings(dsn, "SELECT pg_switch_wal()::text");
    std::this_thread::sleep_for(milliseconds(100));
  }
  EXPECT_GT(calls, 20);
  EXPECT_LT(slowest, milliseconds(2000)) << "an API call took " << slowest.count() << " ms";
  EXPECT_TRUE(WorkersHeartbeatSince(window_start, seconds(5)));
  const auto failed = Strings(dsn, "SELECT failed_count::text FROM pg_stat_archiver");
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_GT(std::stoi(failed[0]), 0) << "archiving should have failed";

  // check names the failure, quickly.
  const CliResult check = ControlPlane("check", {"--json"});
  EXPECT_EQ(check.exit_status, 1) << check.output;
  const json report = check.Json();
  EXPECT_FALSE(report.value("ok", true));
  EXPECT_TRUE(report["archiver"].value("failing", false)) << report;
  EXPECT_NE(check.errors.find("WAL archiving fails"), std::string::npos) << check.errors;
  EXPECT_NE(check.errors.find("Permission denied"), std::string::npos) << check.errors;
  EXPECT_LT(check.took, seconds(45));
  // So does a backup, instead of hanging.
  const CliResult backup = ControlPlane("backup", {"--type", "incr"});
  EXPECT_EQ(backup.exit_status, 1);
  EXPECT_LT(backup.took, seconds(60));

  // kindling dev stops promptly although the last WAL cannot be archived.
  const auto stop_start = Clock::now();
  const auto stopped = dev_->Terminate(seconds(60));
  ASSERT_TRUE(stopped.has_value()) << "kindling dev did not stop";
  EXPECT_LT(Clock::now() - stop_start, seconds(30));
  EXPECT_NE(ReadAll(dev_->log()).find("the last WAL file is not archived"), std::string::npos);
  ::chmod(repo.c_str(), 0750);
  std::printf(
      "unwritable repository: %d API call pairs, slowest %lld ms; check %lld ms, backup %lld ms, "
      "dev stop %lld ms\n",
      calls, static_cast<long long>(slowest.count()), static_cast<long long>(check.took.count()),
      static_cast<long long>(backup.took.count()),
      static_cast<long long>(
          std::chrono::duration_cast<milliseconds>(Clock::now() - stop_start).count()));
}

// A host's cluster (here one started with pg_ctl in a temp dir, as a Debian
// cluster would be): configure with --restart (pg_ctl restart keeps the
// server's options), back up, refuse a restore while a `kindling serve`
// session is connected, then restore in place to T through pg_ctl stop and
// start with the options the server ran with.
TEST(ControlPlaneHostDrillTest, HostClusterThroughPgCtlDrill) {
  testutil::TempDir dir;
  ::chmod(dir.path().c_str(), 0755);
  LocalPostgresOptions pg_options;
  pg_options.data_dir = dir / "data";
  pg_options.socket_dir = dir / "run";
  pg_options.log_file = dir / "postgres.log";
  pg_options.port = 20000 + static_cast<int>(::getpid() % 20000);
  auto postgres = LocalPostgres::Create(pg_options);
  ASSERT_TRUE(postgres) << postgres.error().message();
  ASSERT_TRUE(postgres->InitIfMissing());
  ASSERT_TRUE(postgres->Start());
  struct StopAtEnd {
    LocalPostgres& pg;
    ~StopAtEnd() { (void)pg.Stop(); }
  } stop_at_end{*postgres};
  ASSERT_TRUE(db::CreateDatabaseIfMissing(postgres->SocketDsn("postgres"), "kindling"));
  const std::string dsn = postgres->SocketDsn("kindling");
  db::DatabaseOptions db_options;
  db_options.dsn = dsn;
  db_options.max_connections = 1;
  auto database = db::Database::Open(db_options);
  ASSERT_TRUE(database);
  ASSERT_TRUE(db::RunMigrations(**database));
  auto make_project = [&](const std::string& name) {
    auto made = (*database)->Transact([&](db::Tx& tx) -> Status {
      KINDLING_ASSIGN_OR_RETURN(db::Organization org, db::CreateOrganization(tx, "org-" + name));
      KINDLING_RETURN_IF_ERROR(db::CreateProject(tx, org.id, name));
      return OkStatus();
    });
    ASSERT_TRUE(made) << made.error().message();
  };
  make_project("before-t");
  ASSERT_TRUE(LoadOrCreateMasterKey(dir / "master.key"));

  const std::vector<std::string> host = {"--config", (dir / "etc" / "pgbackrest.conf").string(),
                                         "--pg-log", (dir / "pg_ctl.log").string()};
  auto run = [&](const std::string& command, std::vector<std::string> args) {
    std::vector<std::string> all = {"admin", "control-plane", command};
    all.insert(all.end(), host.begin(), host.end());
    all.insert(all.end(), args.begin(), args.end());
    return Kindling(all);
  };
  const std::vector<std::string> cluster = {"--pg-data",         pg_options.data_dir.string(),
                                            "--pg-socket-dir",   pg_options.socket_dir.string(),
                                            "--pg-port",         std::to_string(pg_options.port),
                                            "--spool-dir",       (dir / "spool").string(),
                                            "--log-dir",         (dir / "pgbackrest-log").string(),
                                            "--lock-dir",        (dir / "lock").string(),
                                            "--repo-path",       (dir / "repo").string(),
                                            "--master-key-file", (dir / "master.key").string()};
  // --config-only writes the file and touches nothing else.
  std::vector<std::string> config_only = cluster;
  config_only.push_back("--config-only");
  const CliResult written = run("configure", config_only);
  ASSERT_EQ(written.exit_status, 0) << written.output << written.errors;
  EXPECT_TRUE(fs::exists(dir / "etc" / "pgbackrest.conf"));
  EXPECT_EQ(Strings(dsn, "SHOW archive_mode"), std::vector<std::string>{"off"});
  // Without --restart, configure says what is left to do.
  const CliResult pending = run("configure", cluster);
  EXPECT_EQ(pending.exit_status, 1) << pending.output << pending.errors;
  EXPECT_NE(pending.errors.find("must restart"), std::string::npos) << pending.errors;
  std::vector<std::string> with_restart = cluster;
  with_restart.push_back("--restart");
  with_restart.push_back("--json");
  const CliResult configured = run("configure", with_restart);
  ASSERT_EQ(configured.exit_status, 0) << configured.output << configured.errors;
  EXPECT_TRUE(configured.Json().value("restarted", false));
  EXPECT_TRUE(configured.Json().value("checked", false));
  EXPECT_EQ(Strings(dsn, "SHOW wal_level"), std::vector<std::string>{"logical"});
  // The server kept the options it was started with.
  EXPECT_NE(ReadAll(pg_options.data_dir / "postmaster.opts").find(pg_options.socket_dir.string()),
            std::string::npos);

  ASSERT_EQ(run("backup", {"--type", "full"}).exit_status, 0);
  std::this_thread::sleep_for(milliseconds(1100));
  const std::string target = Rfc3339Now();
  std::this_thread::sleep_for(milliseconds(50));
  make_project("after-t");

  {
    // A `kindling serve` still connected: nothing is touched.
    db::DatabaseOptions serve_options = db_options;
    serve_options.application_name = "kindling serve";
    auto serve = db::Database::Open(serve_options);
    ASSERT_TRUE(serve);
    const CliResult refused = run("restore", {"--time", target});
    EXPECT_EQ(refused.exit_status, 1);
    EXPECT_NE(refused.errors.find("kindling sessions are connected"), std::string::npos)
        << refused.errors;
    EXPECT_EQ(Strings(dsn, "SELECT count(*)::text FROM projects"), std::vector<std::string>{"2"});
  }
  database->reset();
  // The text report: what was restored, its audit event, then the next
  // steps in order (a host's cluster is left running: the queries below).
  const CliResult restored = run("restore", {"--time", target});
  ASSERT_EQ(restored.exit_status, 0) << restored.output << restored.errors;
  const std::string& text = restored.output;
  EXPECT_NE(text.find("projects=1"), std::string::npos) << text;
  EXPECT_NE(text.find("new full backup: "), std::string::npos) << text;
  EXPECT_NE(text.find("audited: control_plane.restored (event "), std::string::npos) << text;
  std::size_t at = text.find("Next steps:\n");
  ASSERT_NE(at, std::string::npos) << text;
  for (const std::string& step : std::vector<std::string>{
           "  1. on every host, check the DSN file (/etc/kindling/postgres.dsn",
           "  2. put the master key in place on every host", "restart kindling serve on every host",
           "  3. kindling admin validate",
           "  4. the leader rescans the backup stores when it starts",
           "kindling admin backups rescan", "  5. kindling audit list --since " + target}) {
    const std::size_t next = text.find(step, at);
    EXPECT_NE(next, std::string::npos) << "missing or out of order: " << step << "\n" << text;
    if (next != std::string::npos) at = next;
  }
  EXPECT_EQ(Strings(dsn,
                    "SELECT count(*)::text FROM cluster_audit_events WHERE action = "
                    "'control_plane.restored'"),
            std::vector<std::string>{"1"});
  EXPECT_EQ(Strings(dsn, "SELECT name FROM projects"), std::vector<std::string>{"before-t"});
  EXPECT_EQ(Strings(dsn, "SELECT timeline_id::text FROM pg_control_checkpoint()"),
            std::vector<std::string>{"2"});
  EXPECT_NE(ReadAll(pg_options.data_dir / "postmaster.opts").find(pg_options.socket_dir.string()),
            std::string::npos);
  // The master key was never exported on this cluster: check says so in a
  // WARNING line, and passes all the same.
  const CliResult checked = run("check", {});
  EXPECT_EQ(checked.exit_status, 0) << checked.output << checked.errors;
  EXPECT_NE(checked.output.find("WARNING: no export of the master key recorded"), std::string::npos)
      << checked.output;
  EXPECT_NE(checked.output.find("control-plane backups: ok"), std::string::npos) << checked.output;
}

// `kindling dev --dsn-file`: the API and workers on an existing database; no
// private PostgreSQL, no pgBackRest files.
TEST(DevWithDsnFileTest, RunsAgainstAnExistingDatabase) {
  testutil::TempDir dir;
  ::chmod(dir.path().c_str(), 0755);
  testutil::TestDatabase database;
  const fs::path dsn_file = dir / "postgres.dsn";
  testutil::WriteFile(dsn_file, database.dsn() + "\n");
  const fs::path state = dir / "state";
  DevProcess dev(state, {"--dsn-file", dsn_file.string(), "--workers", "1"});
  EXPECT_EQ(Unquoted(dev.value("KINDLING_DSN")), database.dsn());
  httplib::Client client("127.0.0.1", dev.port());
  auto meta =
      client.Get("/api/meta", {{"Authorization", "Bearer " + dev.value("KINDLING_API_KEY")}});
  ASSERT_TRUE(meta);
  EXPECT_EQ(meta->status, 200);
  EXPECT_FALSE(fs::exists(state / "postgres"));
  EXPECT_FALSE(fs::exists(state / "pgbackrest.conf"));
  EXPECT_EQ(Strings(database.dsn(), "SELECT count(*)::text FROM servers"),
            std::vector<std::string>{"1"});
  ASSERT_TRUE(dev.Terminate(seconds(60)).has_value());
}

}  // namespace
}  // namespace kindling::service
