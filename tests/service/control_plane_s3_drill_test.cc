// Control-plane disaster recovery with the pgBackRest repository in an S3
// bucket: the S3 test server over HTTPS (a certificate for `localhost` from a
// CA made for the test; it verifies SigV4 signatures), the built `kindling
// dev`, and `kindling admin control-plane configure/backup/restore/check`.
// The first drill is the whole point-in-time drill (point_in_time_drill.h)
// with configure switching a running `kindling dev` to the bucket (the
// secret from the environment, never a flag value) and the volume backups
// in a second bucket set through the API, as an operator's cluster keeps
// them: dev keeps the bucket across restarts (it renders pgBackRest's file
// again at every start), the rescan after the restore reads the volume
// bucket, and no secret reaches a log. A second drill stops the S3 server
// during normal operation and shows that nothing waits for it.
// The drills run in the optimised build only ("Drill" in their names).
#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "dev_process.h"
#include "drill_util.h"
#include "point_in_time_drill.h"
#include "testutil/require.h"
#include "testutil/s3_test_server.h"
#include "testutil/temp_dir.h"

namespace kindling::service {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr char kBucket[] = "kindling-control-plane";
constexpr char kKeyId[] = "AKIAS3DRILLKEY000001";
constexpr char kSecret[] = "s3-drill-secret-5d2e9b7c1a3f4e60";
// The volume backups' bucket, on a second S3 test server (plain HTTP).
constexpr char kVolumeBucket[] = "kindling-volumes";
constexpr char kVolumeKeyId[] = "AKIAS3DRILLVOLUMES01";
constexpr char kVolumeSecret[] = "s3-drill-volume-secret-0c8e41f2b7a9";

class ControlPlaneS3DrillTest : public ControlPlaneDrillTest {
 protected:
  // The secret reaches the commands through the environment only.
  CliResult ControlPlane(const std::string& command, std::vector<std::string> args = {}) {
    CliResult result =
        DevDrillTest::ControlPlane(command, std::move(args), seconds(180),
                                   {std::string("PGBACKREST_REPO1_S3_KEY_SECRET=") + kSecret});
    EXPECT_EQ(result.output.find(kSecret), std::string::npos) << command << " printed the secret";
    EXPECT_EQ(result.errors.find(kSecret), std::string::npos) << command << " printed the secret";
    return result;
  }

  // configure on the running dev: the repository moves to the bucket (path
  // style: `localhost` has no subdomains), checked end to end.
  CliResult ConfigureBucket(const testutil::S3TestServer& s3) {
    return ControlPlane(
        "configure",
        {"--repo-s3-bucket", kBucket, "--repo-s3-endpoint", s3.host_port(), "--repo-s3-region",
         "us-east-1", "--repo-s3-uri-style", "path", "--repo-s3-prefix", "/control-plane",
         "--repo-s3-key-id", kKeyId, "--repo-s3-ca-file", s3.ca_file(), "--restart", "--json"});
  }
};

TEST_F(ControlPlaneS3DrillTest, PointInTimeRestoreFromAnHttpsS3RepositoryDrill) {
  KINDLING_REQUIRE_S3_TEST_SERVER();
  testutil::S3TestServerOptions s3_options;
  s3_options.bucket = kBucket;
  s3_options.access_key_id = kKeyId;
  s3_options.secret_access_key = kSecret;
  s3_options.tls = true;
  testutil::S3TestServer s3(s3_options);
  testutil::S3TestServerOptions volume_options;
  volume_options.bucket = kVolumeBucket;
  volume_options.access_key_id = kVolumeKeyId;
  volume_options.secret_access_key = kVolumeSecret;
  testutil::S3TestServer volume_s3(volume_options);

  dev_ = std::make_unique<DevProcess>(state_, kBackupsByHand);
  const CliResult configured = ConfigureBucket(s3);
  ASSERT_EQ(configured.exit_status, 0) << configured.output << configured.errors;
  const std::string repository =
      std::string("s3://") + kBucket + "/control-plane (" + s3.host_port() + ")";
  EXPECT_EQ(configured.Json().value("repository", ""), repository) << configured.output;
  EXPECT_TRUE(configured.Json().value("stanza_created", false)) << configured.output;
  EXPECT_TRUE(configured.Json().value("checked", false)) << configured.output;
  EXPECT_FALSE(configured.Json().value("restart_required", true)) << configured.output;
  {
    const std::string config = ReadAll(state_ / "pgbackrest.conf");
    EXPECT_NE(config.find("repo1-type=s3\n"), std::string::npos) << config;
    EXPECT_NE(config.find("repo1-storage-ca-file=" + s3.ca_file() + "\n"), std::string::npos);
  }
  // The volume backups' credentials, through the API (runbook, section 2).
  {
    const json settings = Call("PUT", "/api/platform/volume-backup-settings",
                               {{"s3_bucket", kVolumeBucket},
                                {"s3_region", "us-east-1"},
                                {"s3_endpoint", volume_s3.endpoint()},
                                {"s3_prefix", "volumes"},
                                {"s3_access_key_id", kVolumeKeyId},
                                {"s3_secret_access_key", kVolumeSecret}});
    ASSERT_TRUE(settings["store"].value("ready", false)) << settings;
    EXPECT_EQ(settings.value("s3_secret_access_key", ""), "set") << settings;
  }

  const fs::path bucket = fs::path(s3.data_dir()) / kBucket;
  RunPointInTimeDrill(
      {.description = repository,
       .env = {std::string("PGBACKREST_REPO1_S3_KEY_SECRET=") + kSecret},
       .secret = kSecret,
       .holds_timeline = [bucket](int n) {
         char history[32];
         std::snprintf(history, sizeof history, "%08X.history", n);
         return !FindFileStartingWith(bucket / "control-plane" / "archive", history).empty();
       }});

  // dev kept the bucket across its restart; nothing went to its local
  // repository; the volume backups (the one the rescan imported among them)
  // are in their own bucket.
  {
    const std::string config = ReadAll(state_ / "pgbackrest.conf");
    EXPECT_NE(config.find("repo1-type=s3\n"), std::string::npos) << config;
    EXPECT_NE(config.find("repo1-storage-ca-file=" + s3.ca_file() + "\n"), std::string::npos);
  }
  EXPECT_NE(ReadAll(dev_->log()).find("control-plane backups: repository " + repository),
            std::string::npos)
      << FileTail(dev_->log(), 3000);
  EXPECT_TRUE(FindFileStartingWith(state_ / "pgbackrest", "00000002.history").empty());
  EXPECT_FALSE(FindFileStartingWith(fs::path(volume_s3.data_dir()) / kVolumeBucket, "").empty());
  EXPECT_TRUE(FindFileStartingWith(fs::path(s3.data_dir()) / kVolumeBucket, "").empty());

  // The secrets are in pgBackRest's file and the database only: no log
  // shows them.
  for (const char* secret : {kSecret, kVolumeSecret}) {
    for (const fs::path& log : {dev_->log(), fs::path(dev_->log().string() + ".previous")}) {
      EXPECT_EQ(ReadAll(log).find(secret), std::string::npos) << log;
    }
    for (const auto& entry : fs::recursive_directory_iterator(state_ / "logs")) {
      if (entry.is_regular_file()) {
        EXPECT_EQ(ReadAll(entry.path()).find(secret), std::string::npos) << entry.path();
      }
    }
  }
}

// The acceptance's "an unreachable repository during normal operation never
// stalls the API or the workers", with the S3 server stopped (its port
// refuses connections): the API answers, a volume is made and backed up (to
// the volume store, which is not the bucket), commits do not wait for WAL
// archiving, `check` names the failure and `backup` fails, both in bounded
// time, and kindling dev stops promptly.
TEST_F(ControlPlaneS3DrillTest, StoppedS3RepositoryNeverStallsTheControlPlaneDrill) {
  KINDLING_REQUIRE_S3_TEST_SERVER();
  const auto test_start = Clock::now();
  testutil::S3TestServerOptions s3_options;
  s3_options.bucket = kBucket;
  s3_options.access_key_id = kKeyId;
  s3_options.secret_access_key = kSecret;
  s3_options.tls = true;
  testutil::S3TestServer s3(s3_options);
  dev_ = std::make_unique<DevProcess>(state_, kBackupsByHand);
  const std::string dsn = Unquoted(dev_->value("KINDLING_DSN"));
  const CliResult configured = ConfigureBucket(s3);
  ASSERT_EQ(configured.exit_status, 0) << configured.output << configured.errors;
  const CliResult first = ControlPlane("backup", {"--type", "full"});
  ASSERT_EQ(first.exit_status, 0) << first.output << first.errors;
  Strings(dsn, "CREATE TABLE drill_writes (n int)");

  s3.Stop();
  const auto window_start = std::chrono::system_clock::now();
  // Failures before the stop (a transient one while the stanza was being
  // made) do not count below.
  const std::vector<std::string> failed_before_stop =
      Strings(dsn, "SELECT failed_count::text FROM pg_stat_archiver");
  ASSERT_EQ(failed_before_stop.size(), 1u);
  // Every call measured; each must answer well within a client's patience
  // (generous for a loaded machine, far below any pgBackRest timeout).
  constexpr milliseconds kPrompt{3000};
  milliseconds slowest_api{0};
  milliseconds slowest_insert{0};
  auto timed = [](const std::function<void()>& f) {
    const auto start = Clock::now();
    f();
    return std::chrono::duration_cast<milliseconds>(Clock::now() - start);
  };
  int calls = 0;
  auto api_round = [&] {
    int status = 0;
    slowest_api = std::max(
        slowest_api, timed([&] {
          Call("POST", "/api/projects", {{"name", "down-" + std::to_string(calls)}}, &status);
        }));
    EXPECT_EQ(status, 201);
    slowest_api =
        std::max(slowest_api, timed([&] { Call("GET", "/api/projects", nullptr, &status); }));
    EXPECT_EQ(status, 200);
    slowest_api = std::max(slowest_api, timed([&] { Call("GET", "/api/meta", nullptr, &status); }));
    EXPECT_EQ(status, 200);
    slowest_insert = std::max(slowest_insert, timed([&] {
                                Strings(dsn, "INSERT INTO drill_writes VALUES (" +
                                                 std::to_string(calls) + ") RETURNING n");
                              }));
    // WAL files to archive: each switch is another attempt to reach the bucket.
    if (calls % 5 == 0) Strings(dsn, "SELECT pg_switch_wal()::text");
    ++calls;
  };

  // A volume made and backed up while the bucket is down.
  const std::string project =
      Call("POST", "/api/projects", {{"name", "volume-while-down"}}).value("id", "");
  const auto volume_start = Clock::now();
  Call("PUT", "/api/projects/" + project + "/volume", {{"size_gb", 1}});
  json volume = json::object();
  while (Clock::now() - volume_start < seconds(60) && volume.value("health", "") != "healthy") {
    api_round();
    volume = Call("GET", "/api/projects/" + project + "/volume");
    std::this_thread::sleep_for(milliseconds(100));
  }
  ASSERT_EQ(volume.value("health", ""), "healthy") << volume;
  const auto volume_took = std::chrono::duration_cast<milliseconds>(Clock::now() - volume_start);
  const auto volume_backup_start = Clock::now();
  const json op = WaitForOperation(
      Call("POST", "/api/projects/" + project + "/volume/backups", json::object()).value("id", ""),
      seconds(90));
  EXPECT_EQ(op.value("status", ""), "succeeded") << op;
  const auto volume_backup_took =
      std::chrono::duration_cast<milliseconds>(Clock::now() - volume_backup_start);
  EXPECT_LT(volume_backup_took, seconds(60));

  // More calls (at least 10 s of them) until archiving fails: each attempt
  // takes pgBackRest's io-timeout to give up on the bucket. Segments the
  // asynchronous push sent ahead before the stop are still archived
  // meanwhile, so "fails" means a failure since the stop that no success
  // followed (what `check` reports as failing).
  auto archiving_failed = [&] {
    const auto failing = Strings(
        dsn,
        "SELECT (failed_count > " + failed_before_stop[0] +
            " AND (last_archived_time IS NULL OR last_failed_time > last_archived_time))::text "
            "FROM pg_stat_archiver");
    return failing.size() == 1 && failing[0] == "true";
  };
  const auto rounds_start = Clock::now();
  while (Clock::now() - rounds_start < seconds(10) ||
         (!archiving_failed() && Clock::now() - rounds_start < seconds(90))) {
    api_round();
    std::this_thread::sleep_for(milliseconds(100));
  }
  EXPECT_TRUE(archiving_failed()) << "archiving should have failed";
  EXPECT_GT(calls, 20);
  EXPECT_LT(slowest_api, kPrompt) << "an API call took " << slowest_api.count() << " ms";
  EXPECT_LT(slowest_insert, kPrompt) << "an insert took " << slowest_insert.count() << " ms";
  EXPECT_EQ(Strings(dsn, "SELECT count(*)::text FROM drill_writes"),
            std::vector<std::string>{std::to_string(calls)});
  EXPECT_TRUE(WorkersHeartbeatSince(window_start, seconds(10)));

  // check names the failure, in bounded time.
  const CliResult check = ControlPlane("check", {"--json"});
  EXPECT_EQ(check.exit_status, 1) << check.output << check.errors;
  const json report = check.Json();
  EXPECT_FALSE(report.value("ok", true)) << check.output;
  EXPECT_NE(report.value("pgbackrest_check", "ok"), "ok") << check.output;
  EXPECT_TRUE(report["archiver"].value("failing", false)) << check.output;
  EXPECT_NE(check.errors.find("WAL archiving fails"), std::string::npos) << check.errors;
  const std::string unreachable =
      "the repository's endpoint " + s3.host_port() + " is unreachable: Connection refused";
  EXPECT_NE(check.errors.find(unreachable), std::string::npos) << check.errors;
  EXPECT_LT(check.took, seconds(60));
  // So does a backup, instead of hanging.
  const CliResult backup = ControlPlane("backup", {"--type", "incr"});
  EXPECT_EQ(backup.exit_status, 1) << backup.output << backup.errors;
  EXPECT_NE(backup.errors.find(unreachable), std::string::npos) << backup.errors;
  EXPECT_LT(backup.took, seconds(60));

  // kindling dev stops promptly although the last WAL cannot be archived.
  const auto stop_start = Clock::now();
  const auto stopped = dev_->Terminate(seconds(90));
  ASSERT_TRUE(stopped.has_value()) << "kindling dev did not stop";
  const auto stop_took = std::chrono::duration_cast<milliseconds>(Clock::now() - stop_start);
  EXPECT_LT(stop_took, seconds(45));
  EXPECT_NE(ReadAll(dev_->log()).find("the last WAL file is not archived"), std::string::npos);
  EXPECT_EQ(ReadAll(dev_->log()).find(kSecret), std::string::npos);

  const auto took = std::chrono::duration_cast<seconds>(Clock::now() - test_start);
  std::printf(
      "stopped S3 drill took %lld s: %d API rounds, slowest API call %lld ms, slowest insert "
      "%lld ms; volume %lld ms, volume backup %lld ms; check %lld ms, backup %lld ms, dev stop "
      "%lld ms\n",
      static_cast<long long>(took.count()), calls, static_cast<long long>(slowest_api.count()),
      static_cast<long long>(slowest_insert.count()), static_cast<long long>(volume_took.count()),
      static_cast<long long>(volume_backup_took.count()),
      static_cast<long long>(check.took.count()), static_cast<long long>(backup.took.count()),
      static_cast<long long>(stop_took.count()));
}

}  // namespace
}  // namespace kindling::service
