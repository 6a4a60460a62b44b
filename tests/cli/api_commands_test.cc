// The API commands end to end: the kindling binary against an in-process
// ApiServer and Worker on a throwaway PostgreSQL, the backup store configured
// through `kindling settings backup set`. Backups and restores really run;
// secrets and API keys never show in any output; refusals keep the API's code
// and map to the documented exit codes.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "api_cli_fixture.h"
#include "control/admin_service.h"
#include "control/backup_store.h"
#include "testutil/fake_http_server.h"
#include "testutil/s3_test_server.h"

namespace kindling::clitest {
namespace {

class ApiCommandsTest : public ApiCliTest {};

TEST_F(ApiCommandsTest, BackupAndRestoreThroughTheApi) {
  const std::string store = (dir_.path() / "bucket").string();
  ConfigureLocalStore();
  json shown = Ok({"settings", "backup", "show"});
  EXPECT_EQ(shown["configured"], true);
  EXPECT_EQ(shown["storage_url"], "file://" + store);
  RunResult human = Kindling({"settings", "backup", "show"});
  EXPECT_EQ(human.exit_code, 0) << human.Describe();
  EXPECT_NE(human.out.find("file://" + store), std::string::npos) << human.out;
  RunResult probe = Kindling({"settings", "backup", "test"});
  EXPECT_EQ(probe.exit_code, 0) << probe.Describe();
  EXPECT_NE(probe.out.find("ok: wrote, read and deleted a probe object"), std::string::npos);

  const auto [project, volume] = MakeProjectWithVolume("web");
  json projects = Ok({"project", "list"});
  EXPECT_TRUE(HasId(projects, project)) << projects.dump();
  RunResult listed = Kindling({"project", "list"});
  EXPECT_NE(listed.out.find("NAME"), std::string::npos) << listed.out;
  EXPECT_NE(listed.out.find(project + "  web"), std::string::npos) << listed.out;
  RunResult volume_text = Kindling({"volume", "show", "--project", project});
  EXPECT_EQ(volume_text.exit_code, 0) << volume_text.Describe();
  EXPECT_NE(volume_text.out.find("detached"), std::string::npos) << volume_text.out;
  EXPECT_NE(volume_text.out.find(server_id_), std::string::npos) << volume_text.out;

  // Back up, following with JSON progress lines on stderr.
  const fs::path image = worker_->ImageOf(volume);
  WriteAt(image, 5u << 20, RandomBytes(3u << 20, 7));
  const std::string backed_up_sha = FileSha256(image);
  RunResult backup = Kindling(
      {"volume", "backup", "--project", project, "--follow", "--json", "--progress", "json"});
  ASSERT_EQ(backup.exit_code, 0) << backup.Describe();
  const json backup_op = backup.Json();
  EXPECT_EQ(backup_op["kind"], "backup");
  EXPECT_EQ(backup_op["status"], "succeeded") << backup_op.dump();
  EXPECT_EQ(backup_op["result"]["image_sha256"], testutil::ImageDigestOfFile(image));
  EXPECT_NE(backup.err.find(R"("type":"status")"), std::string::npos) << backup.err;
  EXPECT_NE(backup.err.find(R"("status":"succeeded")"), std::string::npos) << backup.err;
  const std::string backup_id = backup_op.value("backup_id", "");
  ASSERT_TRUE(IsUuid(backup_id)) << backup_op.dump();

  json backups = Ok({"volume", "backups", "--project", project});
  ASSERT_EQ(backups.size(), 1u) << backups.dump();
  EXPECT_EQ(backups[0]["id"], backup_id);
  EXPECT_EQ(backups[0]["status"], "succeeded");
  RunResult backups_text = Kindling({"volume", "backups", "--project", project});
  EXPECT_NE(backups_text.out.find(backup_id + "  succeeded"), std::string::npos)
      << backups_text.out;

  // Damage the image, then restore the backup over it.
  WriteAt(image, 6u << 20, "overwritten after the backup");
  ASSERT_NE(FileSha256(image), backed_up_sha);
  RunResult restore = Kindling({"volume", "restore", "--project", project, "--backup", backup_id,
                                "--follow", "--json", "--quiet"});
  ASSERT_EQ(restore.exit_code, 0) << restore.Describe();
  const json restore_op = restore.Json();
  EXPECT_EQ(restore_op["kind"], "restore");
  EXPECT_EQ(restore_op["status"], "succeeded") << restore_op.dump();
  EXPECT_EQ(restore.err, "");  // --quiet
  EXPECT_EQ(FileSha256(image), backed_up_sha);

  json op = Ok({"operation", "show", restore_op.value("id", "")});
  EXPECT_EQ(op["status"], "succeeded");
  EXPECT_EQ(op["project_id"], project);
  RunResult op_text = Kindling({"operation", "show", restore_op.value("id", "")});
  EXPECT_NE(op_text.out.find("restore"), std::string::npos) << op_text.out;
  EXPECT_NE(op_text.out.find("succeeded"), std::string::npos) << op_text.out;

  // Servers with their heartbeat.
  for (bool all : {false, true}) {
    std::vector<std::string> args = {"servers", "list"};
    if (all) args.push_back("--all");
    json servers = Ok(args);
    ASSERT_TRUE(HasId(servers, server_id_)) << servers.dump();
    EXPECT_TRUE(servers[0]["heartbeat_age_seconds"].is_number()) << servers.dump();
    EXPECT_EQ(servers[0]["health"], "healthy") << servers.dump();
  }
  RunResult servers_text = Kindling({"servers", "list", "--all"});
  EXPECT_NE(servers_text.out.find("HEARTBEAT"), std::string::npos) << servers_text.out;
  EXPECT_NE(servers_text.out.find("w1"), std::string::npos) << servers_text.out;
  // Drain and activate (audited); the drained state is the leader's
  // (leader_test).
  EXPECT_EQ(Ok({"servers", "drain", server_id_})["status"], "draining");
  RunResult activated = Kindling({"servers", "activate", server_id_});
  EXPECT_EQ(activated.exit_code, 0) << activated.Describe();
  EXPECT_NE(activated.out.find("active"), std::string::npos) << activated.out;
  EXPECT_EQ(Ok({"audit", "list", "--action", "server.drain"}).size(), 1u);
  EXPECT_EQ(Kindling({"servers", "drain", "not-a-uuid"}).exit_code, 2);

  // The audit trail has the queued and the finished backup.
  json queued = Ok({"audit", "list", "--action", "volume.backup.queue"});
  ASSERT_EQ(queued.size(), 1u) << queued.dump();
  EXPECT_EQ(queued[0]["resource_id"], volume);
  json events = Ok({"audit", "list", "--limit", "100"});
  std::vector<std::string> actions;
  for (const json& e : events) actions.push_back(e.value("action", ""));
  for (const char* action : {"volume.backup.queue", "volume.backup.succeeded",
                             "volume.restore.queue", "volume.restore.succeeded"}) {
    EXPECT_NE(std::find(actions.begin(), actions.end(), action), actions.end()) << action;
  }
  RunResult audit_text = Kindling({"audit", "list", "--resource-id", volume});
  EXPECT_NE(audit_text.out.find("volume.backup.queue"), std::string::npos) << audit_text.out;
}

TEST_F(ApiCommandsTest, RetentionPolicyIsSetAndPreviewed) {
  const auto [project, volume] = MakeProjectWithVolume("web");
  json changed = Ok({"volume", "create", "--project", project, "--backup-retention-count", "2",
                     "--keep-daily", "3", "--keep-monthly", "6"});
  EXPECT_EQ(changed["backup_policy"]["retention_count"], 2) << changed.dump();
  EXPECT_EQ(changed["backup_policy"]["keep_daily"], 3) << changed.dump();
  EXPECT_EQ(changed["backup_policy"]["keep_monthly"], 6) << changed.dump();
  EXPECT_EQ(changed["backup_policy"]["keep_weekly"], 0) << changed.dump();
  Fails({"volume", "create", "--project", project, "--keep-weekly", "-1"}, 2, "--keep-weekly");

  // Three succeeded backups on one day: keep_last 2 keeps two, the daily and
  // monthly rules keep the newest (already kept), the third is dropped.
  for (int hour : {1, 2, 3}) {
    Sql("INSERT INTO project_volume_backups (project_volume_id, kind, status, completed_at) "
        "VALUES ('" +
        volume +
        "', 'manual', 'succeeded', (date_trunc('day', now() AT TIME ZONE 'UTC') AT "
        "TIME ZONE 'UTC') - interval '1 day' + interval '" +
        std::to_string(hour) + " hours')");
  }
  json preview = Ok({"volume", "retention", "--project", project, "--dry-run"});
  EXPECT_EQ(preview["policy"]["keep_last"], 2) << preview.dump();
  EXPECT_EQ(preview["kept"], 2) << preview.dump();
  EXPECT_EQ(preview["dropped"], 1) << preview.dump();
  ASSERT_EQ(preview["backups"].size(), 3u);
  EXPECT_EQ(preview["backups"][0]["reasons"], (json{"last", "daily", "monthly"}));
  EXPECT_EQ(preview["backups"][1]["reasons"], (json{"last"}));
  EXPECT_EQ(preview["backups"][2]["keep"], false);
  RunResult text = Kindling({"volume", "retention", "--project", project});
  ASSERT_EQ(text.exit_code, 0) << text.Describe();
  EXPECT_NE(text.out.find("policy: keep_last=2 keep_hourly=0 keep_daily=3"), std::string::npos)
      << text.out;
  EXPECT_NE(text.out.find("last,daily,monthly"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("kept 2, would drop 1"), std::string::npos) << text.out;
}

TEST_F(ApiCommandsTest, ScheduleFlagsSetCronWindowAndZoneAndShowTheNextBackup) {
  const auto [project, volume] = MakeProjectWithVolume("web");
  json cron = Ok({"volume", "create", "--project", project, "--backup-cron", "15 3 * * 1-5",
                  "--backup-time-zone", "America/New_York", "--backup-window-start", "03:00",
                  "--backup-window-minutes", "30"});
  EXPECT_EQ(cron["backup_policy"]["schedule"], "cron") << cron.dump();
  EXPECT_EQ(cron["backup_policy"]["cron"], "15 3 * * 1-5");
  EXPECT_EQ(cron["backup_policy"]["window_minutes"], 30);
  EXPECT_TRUE(cron["next_backup_at"].is_string()) << cron.dump();
  RunResult text = Kindling({"volume", "show", "--project", project});
  ASSERT_EQ(text.exit_code, 0) << text.Describe();
  EXPECT_NE(text.out.find("cron \"15 3 * * 1-5\" in 03:00+30min America/New_York"),
            std::string::npos)
      << text.out;
  EXPECT_NE(text.out.find("next backup"), std::string::npos) << text.out;
  // A bad expression: the API's message, a non-zero exit, nothing changed.
  RunResult bad =
      Kindling({"volume", "create", "--project", project, "--backup-cron", "0 0 31 2 *"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("never matches"), std::string::npos) << bad.Describe();
  Fails({"volume", "create", "--project", project, "--backup-schedule", "hourly"}, 2,
        "--backup-schedule");
  // Daily; "" and 0 clear the window.
  json daily = Ok({"volume", "create", "--project", project, "--backup-schedule", "daily",
                   "--backup-window-start", "", "--backup-window-minutes", "0"});
  EXPECT_TRUE(daily["backup_policy"]["window_start"].is_null());
  EXPECT_EQ(daily["backup_policy"]["schedule"], "daily") << daily.dump();
  EXPECT_TRUE(daily["backup_policy"]["cron"].is_null());
  EXPECT_TRUE(daily["backup_policy"]["window_minutes"].is_null());
  EXPECT_EQ(daily["backup_policy"]["time_zone"], "America/New_York");
}

TEST_F(ApiCommandsTest, SecretsNeverPrinted) {
  testutil::S3TestServer s3(testutil::S3TestServerOptions{
      .access_key_id = "AKIAKINDLINGTEST01", .secret_access_key = "kdl-test-secret-Zq8wX2vN5mR7"});
  const std::string secret = s3.options().secret_access_key;
  const std::string akid = s3.options().access_key_id;

  json saved = Ok(
      {"settings", "backup", "set", "--s3-bucket", s3.options().bucket, "--s3-region", "us-east-1",
       "--s3-endpoint", s3.endpoint(), "--s3-prefix", "kindling", "--s3-access-key-id", akid},
      {{"AWS_SECRET_ACCESS_KEY", secret}});
  EXPECT_EQ(saved["s3_secret_access_key"], "set");
  EXPECT_EQ(saved["s3_access_key_id"], "set");
  EXPECT_EQ(saved["storage_url"], "s3://" + s3.options().bucket + "/kindling");
  EXPECT_EQ(saved["store"]["ready"], true) << saved.dump();
  auto stored = control::GetBackupSettings(db(), master_key_);
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->s3_secret_access_key.Reveal(), secret);
  RunResult shown = Kindling({"settings", "backup", "show"});
  EXPECT_EQ(shown.exit_code, 0) << shown.Describe();
  EXPECT_NE(shown.out.find("s3 secret access key  set"), std::string::npos) << shown.out;
  RunResult probe = Kindling({"settings", "backup", "test"});
  EXPECT_EQ(probe.exit_code, 0) << probe.Describe();

  // A secret from a file (trailing newline dropped); this one is wrong, so
  // the probe fails and says where.
  const std::string wrong = "wrong-secret-from-file-Kp3";
  const fs::path secret_file = dir_.path() / "s3.secret";
  WriteWhole(secret_file, wrong + "\n");
  json replaced =
      Ok({"settings", "backup", "set", "--s3-secret-access-key-file", secret_file.string()});
  EXPECT_EQ(replaced["s3_secret_access_key"], "set");
  stored = control::GetBackupSettings(db(), master_key_);
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->s3_secret_access_key.Reveal(), wrong);
  RunResult failed_probe = Fails({"settings", "backup", "test"}, 1, "probe failed at step write");
  EXPECT_NE(failed_probe.out.find("failed at step write"), std::string::npos) << failed_probe.out;

  // A secret as a flag value is refused, and not echoed.
  Fails({"settings", "backup", "set", "--s3-secret-access-key", secret}, 2,
        "--s3-secret-access-key is refused");
  // Nothing to change is a usage error; so is a relative directory (the API's 400).
  Fails({"settings", "backup", "set"}, 2, "nothing to change");
  Fails({"settings", "backup", "set", "--local-directory", "relative/dir"}, 2,
        "(validation_error)");
  Fails({"settings", "backup", "set", "--s3-secret-access-key-file",
         (dir_.path() / "missing").string()},
        2, "--s3-secret-access-key-file");

  EXPECT_EQ(transcript_.find(secret), std::string::npos) << transcript_;
  EXPECT_EQ(transcript_.find(wrong), std::string::npos) << transcript_;
  EXPECT_EQ(transcript_.find(akid), std::string::npos) << transcript_;
}

TEST_F(ApiCommandsTest, WrongKeyUnreachableApiAndUsageErrors) {
  const std::string wrong = "kdl_" + std::string(64, 'a');
  RunResult denied = Fails({"project", "list"}, 1, "(unauthorized)", {{"KINDLING_API_KEY", wrong}});
  EXPECT_EQ(denied.err.find(wrong), std::string::npos) << denied.err;
  denied = Fails({"project", "list", "--api-key", wrong}, 1, "invalid or revoked API key");
  EXPECT_EQ(denied.err.find(wrong), std::string::npos) << denied.err;

  const std::string nowhere = "http://127.0.0.1:" + std::to_string(testutil::ClosedPort());
  RunResult unreachable =
      Fails({"project", "list", "--url", nowhere}, 1, "cannot reach the API at " + nowhere);
  EXPECT_EQ(unreachable.err.find(key_), std::string::npos);
  Fails({"servers", "list"}, 1, "cannot reach the API", {{"KINDLING_URL", nowhere}});

  Fails({"project", "list"}, 2, "--api-key", {{"KINDLING_API_KEY", ""}});
  Fails({"project", "list", "--url", "ftp://example.com"}, 2, "http:// or https://");
  Fails({"volume", "show", "--project", "nope"}, 2, "project id must be a UUID");
  Fails({"volume", "show"}, 2, "--project");
  Fails({"operation", "show", "not-an-id"}, 2, "operation id must be a UUID");

  json project = Ok({"project", "create", "--name", "web"});
  const std::string project_id = project.value("id", "");
  Fails({"volume", "create", "--project", project_id, "--size-gb", "0"}, 2, "(validation_error)");
  Fails({"volume", "show", "--project", project_id}, 1, "(not_found)");
  Fails({"volume", "show", "--project", NewUuidV4()}, 1, "(not_found)");
  Fails({"audit", "list", "--limit", "0"}, 2, "(validation_error)");

  // An organisation member may read projects but not platform settings.
  auto member = Must([&](db::Tx& tx) -> Result<db::CreatedApiKey> {
    KINDLING_ASSIGN_OR_RETURN(
        auto user, db::CreateUser(tx, db::NewUser{.email = "dev@example.com", .name = "Dev"}));
    KINDLING_RETURN_IF_ERROR(db::SetMembership(tx, org_, user.id, db::OrgRole::kMember));
    return db::CreateApiKey(tx, user.id, "dev");
  });
  ASSERT_TRUE(member);
  const Env as_member = {{"KINDLING_API_KEY", std::string(member->secret.Reveal())}};
  json visible = Ok({"project", "list"}, as_member);
  EXPECT_TRUE(HasId(visible, project_id));
  RunResult forbidden = Fails({"settings", "backup", "show"}, 1, "(forbidden)", as_member);
  EXPECT_EQ(forbidden.err.find(std::string(member->secret.Reveal())), std::string::npos);
  EXPECT_EQ(transcript_.find(std::string(member->secret.Reveal())), std::string::npos);
}

TEST_F(ApiCommandsTest, BusyVolumeAndInterruptedFollow) {
  ConfigureLocalStore();
  const auto [project, volume] = MakeProjectWithVolume("db");
  worker_->Stop();  // queued operations now wait

  json queued = Ok({"volume", "backup", "--project", project});
  EXPECT_EQ(queued["status"], "pending") << queued.dump();
  const std::string operation = queued.value("id", "");
  ASSERT_TRUE(IsUuid(operation));
  RunResult queued_text = Kindling({"volume", "repair", "--project", project});
  EXPECT_EQ(queued_text.exit_code, 1) << queued_text.Describe();
  EXPECT_NE(queued_text.err.find("(volume_busy)"), std::string::npos) << queued_text.err;
  Fails({"volume", "backup", "--project", project}, 1, "(volume_busy)");
  json pending = Ok({"operation", "show", operation});
  EXPECT_EQ(pending["status"], "pending");

  // SIGINT while following: exit 130, the operation goes on.
  Env env = {{"KINDLING_URL", url_}, {"KINDLING_API_KEY", key_}};
  Child follower({"operation", "follow", operation, "--progress", "json"}, env);
  ASSERT_TRUE(WaitFor(
      [&] { return follower.StderrSoFar().find(R"("status":"pending")") != std::string::npos; },
      std::chrono::seconds(30)))
      << follower.StderrSoFar();
  follower.Signal(SIGINT);
  RunResult interrupted = follower.Wait(std::chrono::seconds(30));
  transcript_ += interrupted.out + interrupted.err;
  EXPECT_EQ(interrupted.exit_code, 130) << interrupted.Describe();
  EXPECT_NE(interrupted.err.find("carries on on the server"), std::string::npos)
      << interrupted.Describe();
  EXPECT_EQ(Ok({"operation", "show", operation})["status"], "pending");

  // The worker comes back and finishes it; following again sees it through.
  StartWorker();
  RunResult followed = Kindling({"operation", "follow", operation, "--json", "--quiet"});
  ASSERT_EQ(followed.exit_code, 0) << followed.Describe();
  EXPECT_EQ(followed.Json()["status"], "succeeded");
  json backups = Ok({"volume", "backups", "--project", project});
  ASSERT_EQ(backups.size(), 1u);
  EXPECT_EQ(backups[0]["status"], "succeeded");
}

// Against a scripted server: what the real one cannot be made to answer on
// demand (an operation that fails).
TEST(ApiCommandsFakeServerTest, FailedOperationExitsOneWithItsError) {
  const std::string operation = NewUuidV4();
  const std::string backup = NewUuidV4();
  const json queued = {{"id", operation},     {"kind", "backup"}, {"status", "pending"},
                       {"backup_id", backup}, {"error", nullptr}, {"progress", json::object()}};
  json failed = queued;
  failed["status"] = "failed";
  failed["error"] = "reading the volume image: no such file";
  testutil::FakeHttpServer fake;
  fake.Post(R"(/api/projects/([^/]+)/volume/backups)",
            [&](const httplib::Request&, httplib::Response& res) {
              testutil::FakeHttpServer::Json(res, 202, queued.dump());
            });
  fake.Get(R"(/api/operations/([^/]+))", [&](const httplib::Request&, httplib::Response& res) {
    testutil::FakeHttpServer::Json(res, 200, failed.dump());
  });
  fake.Start();
  const Env env = {{"KINDLING_URL", fake.url()}, {"KINDLING_API_KEY", "kdl_fake_key_123456"}};

  RunResult followed = RunKindling({"operation", "follow", operation, "--progress", "none"}, env);
  EXPECT_EQ(followed.exit_code, 1) << followed.Describe();
  EXPECT_NE(followed.err.find("kindling: error: operation " + operation +
                              " (backup) failed: reading the volume image: no such file"),
            std::string::npos)
      << followed.Describe();
  EXPECT_NE(followed.out.find("failed"), std::string::npos) << followed.Describe();

  RunResult queued_and_followed = RunKindling(
      {"volume", "backup", "--project", NewUuidV4(), "--follow", "--json", "--quiet"}, env);
  EXPECT_EQ(queued_and_followed.exit_code, 1) << queued_and_followed.Describe();
  EXPECT_EQ(queued_and_followed.Json()["status"], "failed") << queued_and_followed.Describe();

  RunResult queued_only = RunKindling({"volume", "backup", "--project", NewUuidV4()}, env);
  EXPECT_EQ(queued_only.exit_code, 0) << queued_only.Describe();
  EXPECT_NE(queued_only.out.find("queued backup: operation " + operation + ", backup " + backup),
            std::string::npos)
      << queued_only.out;
  for (const auto& request : fake.requests()) {
    EXPECT_EQ(request.authorization, "Bearer kdl_fake_key_123456");
  }
}

TEST_F(ApiCommandsTest, AdminValidateRunsTheChecklist) {
  // The worker heartbeats and reports the DSN this test's database uses.
  const fs::path same = dir_.path() / "same.dsn";
  const fs::path other = dir_.path() / "other.dsn";
  WriteWhole(same, dsn() + "\n");
  WriteWhole(other, "postgresql://kindling@standby.internal/kindling\n");
  json report = Ok({"admin", "validate", "--dsn-file", same.string()});
  EXPECT_EQ(report["passed"], true) << report.dump(2);
  std::map<std::string, std::string> outcomes;
  for (const json& step : report["steps"]) outcomes[step["name"]] = step["outcome"];
  EXPECT_EQ(outcomes["api_meta"], "pass");
  EXPECT_EQ(outcomes["server_heartbeats"], "pass");
  EXPECT_EQ(outcomes["dsn_files_agree"], "pass");
  EXPECT_EQ(outcomes["dsn_reaches_primary"], "pass");
  EXPECT_EQ(outcomes["control_plane_backup"], "skip");
  EXPECT_EQ(outcomes["canary"], "skip");
  EXPECT_EQ(outcomes["volume_records"], "skip");

  // Another DSN on this host: named, and the exit status says so.
  RunResult differs = Kindling({"admin", "validate", "--dsn-file", other.string()});
  EXPECT_EQ(differs.exit_code, 1) << differs.Describe();
  EXPECT_NE(differs.out.find("fail  dsn_files_agree"), std::string::npos) << differs.Describe();
  // ...which does not connect either.
  EXPECT_NE(differs.out.find("fail  dsn_reaches_primary"), std::string::npos) << differs.Describe();
  EXPECT_NE(differs.out.find("validation FAILED"), std::string::npos) << differs.Describe();
  Fails({"admin", "validate", "--dsn-file", (dir_.path() / "missing.dsn").string()}, 1,
        "missing.dsn");

  // The canary flags: bad values are usage errors; the project comes from
  // the environment too, and an unknown one fails its step.
  Fails({"admin", "validate", "--canary-project", "nope"}, 2,
        "--canary-project must be a project id (a UUID)");
  Fails({"admin", "validate", "--volume-project", "nope"}, 2,
        "--volume-project must be a project id (a UUID)");
  Fails({"admin", "validate", "--edge-url", "edge.internal:8000"}, 2,
        "the edge URL must start with http:// or https://");
  Fails({"admin", "validate", "--canary-timeout", "0"}, 2, "--canary-timeout");
  const std::string unknown = NewUuidV4();
  RunResult no_edge =
      Kindling({"admin", "validate", "--canary-project", unknown}, {{"KINDLING_EDGE_URL", ""}});
  EXPECT_EQ(no_edge.exit_code, 1) << no_edge.Describe();
  EXPECT_NE(no_edge.out.find("fail  canary                 the edge URL is needed"),
            std::string::npos)
      << no_edge.Describe();
  RunResult from_env =
      Kindling({"admin", "validate", "--json"},
               {{"KINDLING_CANARY_PROJECT", unknown}, {"KINDLING_EDGE_URL", "http://127.0.0.1:9"}});
  EXPECT_EQ(from_env.exit_code, 1) << from_env.Describe();
  EXPECT_NE(from_env.out.find("cannot list the canary project's deployments"), std::string::npos)
      << from_env.Describe();
  EXPECT_NE(from_env.out.find("(not_found)"), std::string::npos) << from_env.Describe();
}

}  // namespace
}  // namespace kindling::clitest
