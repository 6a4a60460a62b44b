// The HTTP API against real PostgreSQL and a real HTTP client: auth, input
// validation, every reference error code with the state unchanged after each
// refusal, secrets never echoed, audit rows written with the change.
#include "api/api_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <set>

#include "api/api_context.h"
#include "api_test_fixture.h"
#include "common/ids.h"
#include "control/backup_store.h"
#include "db/backups.h"
#include "db/control_plane_status.h"
#include "db/db_test_util.h"
#include "db/operations.h"
#include "db/quarantine.h"
#include "db/volumes.h"
#include "engine/backup.h"
#include "testutil/s3_test_server.h"
#include "testutil/sparse_image.h"
#include "testutil/temp_dir.h"

namespace kindling::api {
namespace {

TEST_F(ApiServerTest, AuthenticationAndAuthorisation) {
  EXPECT_EQ(Send("GET", "/healthz", "").status, 200);
  ExpectRefused("GET", "/api/meta", "", "", 401, "unauthorized");
  ExpectRefused("GET", "/api/meta", "kdl_" + std::string(64, '0'), "", 401, "unauthorized");
  ExpectRefused("GET", "/api/meta", "garbage", "", 401, "unauthorized");
  ExpectRefused("GET", "/api/meta", member_key_, "", 403, "forbidden");
  ExpectRefused("GET", "/api/platform/servers", org_admin_key_, "", 403, "forbidden");
  ExpectRefused("GET", "/api/platform/volume-backup-settings", member_key_, "", 403, "forbidden");
  ExpectRefused("GET", "/metrics", member_key_, "", 403, "forbidden");
  const std::string server = MakeServer("w1");
  ExpectRefused("POST", "/api/servers/" + server + "/drain", member_key_, "", 403, "forbidden");
  const std::string project = CreateProject();
  ExpectRefused("POST", "/api/projects/" + project + "/volume/backups", member_key_, "{}", 403,
                "forbidden");
  EXPECT_EQ(Send("GET", "/api/projects/" + project, member_key_).status, 200);
}

TEST_F(ApiServerTest, MalformedRequestsAreRefused) {
  MakeServer("w1");
  const std::string project = CreateProject();
  const std::string volume = "/api/projects/" + project + "/volume";
  ExpectRefused("PUT", volume, admin_key_, "{not json", 400, "validation_error");
  ExpectRefused("PUT", volume, admin_key_, "[1,2]", 400, "validation_error");
  ExpectRefused("PUT", volume, admin_key_, R"({"size_gb": "big"})", 400, "validation_error");
  ExpectRefused("PUT", volume, admin_key_, R"({"size_gb": 1.5})", 400, "validation_error");
  ExpectRefused("PUT", volume, admin_key_, R"({"pre_delete_backup_enabled": "yes"})", 400,
                "validation_error");
  ExpectRefused("PUT", volume, admin_key_, R"({"surprise": {"x": 1}})", 400, "validation_error");
  ExpectRefused("PUT", volume, admin_key_, R"({"backup_schedule": "hourly"})", 400,
                "validation_error");
  ExpectRefused("GET", "/api/projects/not-a-uuid/volume", admin_key_, "", 400, "validation_error");
  ExpectRefused("POST", volume + "/restore", admin_key_, R"({"backup_id": "nope"})", 400,
                "validation_error");
  ExpectRefused("PUT", volume, admin_key_, json{{"mount_path", std::string(2 << 20, 'a')}}.dump(),
                413, "payload_too_large");
  ExpectRefused("GET", "/api/no-such-route", admin_key_, "", 404, "not_found");
  ExpectRefused("GET", "/api/projects/" + NewUuidV4(), admin_key_, "", 404, "not_found");
}

// /healthz is liveness only; /readyz says whether backups and restores can
// run (database, backup store, a healthy worker), publicly with counts only;
// platform admins see which workers and why in /api/platform/health.
TEST_F(ApiServerTest, ReadinessNamesTheStoreAndTheDegradedWorkers) {
  ApiServerOptions options;
  options.store_probe_fresh = std::chrono::milliseconds(0);
  client_.reset();
  server_ = std::make_unique<ApiServer>(db(), master_key_, options);
  ASSERT_TRUE(server_->Start());
  client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());

  Response before = Send("GET", "/readyz", "");
  EXPECT_EQ(before.status, 503) << before.raw;
  EXPECT_EQ(before.body["code"], "service_unavailable");
  EXPECT_EQ(before.body["database"]["ok"], true);
  EXPECT_EQ(before.body["backup_store"]["ok"], false);
  EXPECT_FALSE(before.body["backup_store"].contains("error")) << "public: no details";
  EXPECT_EQ(before.body["workers"]["total"], 0);
  EXPECT_EQ(Send("GET", "/healthz", "").status, 200);

  const std::string w1 = MakeServer("w1");
  ConfigureLocalStore();
  Response ready = Send("GET", "/readyz", "");
  EXPECT_EQ(ready.status, 200) << ready.raw;
  EXPECT_EQ(ready.body["ready"], true);
  EXPECT_EQ(ready.body["workers"]["healthy"], 1);

  Sql("UPDATE server_component_statuses SET status = 'degraded', "
      "last_error_message = 'mkfs.ext4 not found' WHERE server_id = '" +
      w1 + "'");
  Response degraded = Send("GET", "/readyz", "");
  EXPECT_EQ(degraded.status, 503) << degraded.raw;
  EXPECT_EQ(degraded.body["workers"]["degraded"], 1);
  EXPECT_FALSE(degraded.body["workers"].contains("problems")) << "public: no details";
  Response health = Send("GET", "/api/platform/health", admin_key_);
  ASSERT_EQ(health.status, 200) << health.raw;
  EXPECT_EQ(health.body["ok"], false);
  ASSERT_EQ(health.body["workers"]["problems"].size(), 1u) << health.raw;
  EXPECT_EQ(health.body["workers"]["problems"][0]["hostname"], "w1");
  EXPECT_EQ(health.body["workers"]["problems"][0]["error"], "mkfs.ext4 not found");
  EXPECT_EQ(health.body["backup_store"]["ok"], true);
}

// A larger size_gb of a volume whose image exists queues a grow on its
// worker; the row shows the new size once the image has it.
TEST_F(ApiServerTest, RestoreTargetsListEveryWorkerWithWhyNot) {
  const std::string w1 = MakeServer("w1");
  const std::string w2 = MakeServer("w2");
  const std::string project = CreateProject();
  const std::string volume = "/api/projects/" + project + "/volume";
  ExpectRefused("GET", volume + "/restore-targets", admin_key_, "", 404, "not_found");
  ASSERT_EQ(Send("PUT", volume, admin_key_, "{}").status, 200);
  const std::string pinned = Send("GET", volume, admin_key_).body.value("server_id", "");
  const std::string other = pinned == w1 ? w2 : w1;
  ASSERT_EQ(Send("POST", "/api/servers/" + other + "/drain", admin_key_, "{}").status, 200);

  Response targets = Send("GET", volume + "/restore-targets", org_admin_key_);
  ASSERT_EQ(targets.status, 200) << targets.raw;
  ASSERT_EQ(targets.body.size(), 2u) << targets.raw;
  EXPECT_EQ(targets.body[0]["server_id"], pinned);
  EXPECT_TRUE(targets.body[0]["eligible"].get<bool>());
  EXPECT_TRUE(targets.body[0]["current"].get<bool>());
  EXPECT_TRUE(targets.body[0]["reason"].is_null());
  EXPECT_EQ(targets.body[1]["server_id"], other);
  EXPECT_FALSE(targets.body[1]["eligible"].get<bool>());
  EXPECT_EQ(targets.body[1]["reason"], "the server is draining");
  // Members do not restore, so they get no targets either.
  ExpectRefused("GET", volume + "/restore-targets", member_key_, "", 403, "forbidden");
}

TEST_F(ApiServerTest, GrowingAVolumeIsAnOperation) {
  MakeServer("w1");
  const std::string project = CreateProject();
  const std::string volume = "/api/projects/" + project + "/volume";
  Response created = Send("PUT", volume, org_admin_key_, R"({"size_gb": 2})");
  ASSERT_EQ(created.status, 200) << created.raw;
  // No image yet (health unknown): the worker makes it at the new size.
  Response bigger = Send("PUT", volume, org_admin_key_, R"({"size_gb": 3})");
  ASSERT_EQ(bigger.status, 200) << bigger.raw;
  EXPECT_EQ(bigger.body["size_gb"], 3);
  EXPECT_TRUE(bigger.body["current_operation"].is_null()) << bigger.raw;

  Sql("UPDATE project_volumes SET health = 'healthy' WHERE project_id = '" + project + "'");
  ExpectRefused("PUT", volume, org_admin_key_, R"({"size_gb": 2})", 400, "validation_error");
  Response grow = Send("PUT", volume, org_admin_key_, R"({"size_gb": 5, "mount_path": "/srv"})");
  ASSERT_EQ(grow.status, 200) << grow.raw;
  EXPECT_EQ(grow.body["size_gb"], 3) << "the image is not grown yet";
  EXPECT_EQ(grow.body["mount_path"], "/srv");
  EXPECT_EQ(grow.body["status"], "repairing");
  EXPECT_EQ(grow.body["current_operation"]["kind"], "grow") << grow.raw;
  ExpectRefused("PUT", volume, org_admin_key_, R"({"size_gb": 6})", 409, "volume_busy");
  EXPECT_EQ(
      Sql("SELECT count(*) FROM cluster_audit_events WHERE action = 'volume.grow.queue'")[0][0]
          .as<int>(),
      1);
}

// Names print as they are, guest paths are normalised, and the cluster's
// maximum volume size holds on create and grow.
TEST_F(ApiServerTest, NamesPathsAndSizesAreBounded) {
  MakeServer("w1");
  for (const std::string& bad :
       {std::string("a\0b", 3), std::string("new\nline"), std::string("\x1b[31mred"),
        std::string("c1\xc2\x9b"), std::string(Body::kMaxNameBytes + 1, 'n'), std::string()}) {
    ExpectRefused("POST", "/api/projects", admin_key_, json{{"name", bad}}.dump(), 400,
                  "validation_error");
    ExpectRefused("POST", "/api/api-keys", admin_key_, json{{"name", bad}}.dump(), 400,
                  "validation_error");
  }
  const std::string project = CreateProject("caf\xc3\xa9 \xe2\x9c\x93");  // UTF-8 is fine
  const std::string volume = "/api/projects/" + project + "/volume";
  for (const char* bad :
       {"data", "/", "/data/", "/a//b", "/a/../etc", "/./data", "/a/..", "/a\tb"}) {
    ExpectRefused("PUT", volume, admin_key_, json{{"mount_path", bad}}.dump(), 400,
                  "validation_error");
  }
  ExpectRefused("PUT", volume, admin_key_, R"({"size_gb": 1000000})", 400, "validation_error");

  // The limit is a cluster setting (platform admins), shown by GET /api/meta.
  EXPECT_EQ(Send("GET", "/api/meta", admin_key_).body["max_volume_size_gb"], 16384);
  ExpectRefused("PUT", "/api/meta", admin_key_, R"({"max_volume_size_gb": 0})", 400,
                "validation_error");
  ExpectRefused("PUT", "/api/meta", org_admin_key_, R"({"max_volume_size_gb": 100})", 403,
                "forbidden");
  Response set = Send("PUT", "/api/meta", admin_key_, R"({"max_volume_size_gb": 8})");
  ASSERT_EQ(set.status, 200) << set.raw;
  EXPECT_EQ(set.body["max_volume_size_gb"], 8);
  ExpectRefused("PUT", volume, org_admin_key_, R"({"size_gb": 9})", 400, "validation_error");
  Response created =
      Send("PUT", volume, org_admin_key_, R"({"size_gb": 8, "mount_path": "/srv/app-data"})");
  ASSERT_EQ(created.status, 200) << created.raw;
  EXPECT_EQ(created.body["mount_path"], "/srv/app-data");
  ExpectRefused("PUT", volume, org_admin_key_, R"({"size_gb": 9})", 400, "validation_error");
  // Back to the default.
  set = Send("PUT", "/api/meta", admin_key_, R"({"max_volume_size_gb": null})");
  ASSERT_EQ(set.status, 200) << set.raw;
  EXPECT_EQ(set.body["max_volume_size_gb"], 16384);
  EXPECT_EQ(Send("PUT", volume, org_admin_key_, R"({"size_gb": 9})").status, 200);
}

// RFC 7235: the scheme's name in any case. Authentication comes before the
// body is looked at, and a known route with another method is a 405.
TEST_F(ApiServerTest, AuthenticationFirstAnyCaseBearerAnd405) {
  httplib::Headers lower{{"Authorization", "bearer " + admin_key_}};
  auto got = client_->Get("/api/projects", lower);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status, 200) << got->body;

  const std::string project = CreateProject();
  for (const std::string& path :
       {std::string("/api/projects"), "/api/projects/" + project + "/volume/backups"}) {
    auto posted = client_->Post(path, httplib::Headers{}, "", "");
    ASSERT_TRUE(posted);
    EXPECT_EQ(posted->status, 401) << path << ": " << posted->body;
    posted = client_->Post(path, httplib::Headers{}, "{not json", "application/json");
    ASSERT_TRUE(posted);
    EXPECT_EQ(posted->status, 401) << path << ": " << posted->body;
  }

  // No Content-Length at all (curl -X POST): still a 401.
  {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(server_->port()));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    const std::string request =
        "POST /api/projects HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    ASSERT_EQ(::send(fd, request.data(), request.size(), 0), static_cast<ssize_t>(request.size()));
    std::string answer(4096, '\0');
    const ssize_t n = ::recv(fd, answer.data(), answer.size(), 0);
    ::close(fd);
    ASSERT_GT(n, 0);
    answer.resize(static_cast<std::size_t>(n));
    EXPECT_TRUE(answer.starts_with("HTTP/1.1 401")) << answer;
  }

  ExpectRefused("DELETE", "/api/meta", admin_key_, "", 405, "method_not_allowed");
  auto put = client_->Put("/api/servers", lower, "{}", "application/json");
  ASSERT_TRUE(put);
  EXPECT_EQ(put->status, 405) << put->body;
  EXPECT_EQ(put->get_header_value("Allow"), "GET");
  ExpectRefused("GET", "/api/no-such-route", admin_key_, "", 404, "not_found");
}

TEST_F(ApiServerTest, VolumeLifecycleAndEveryErrorCode) {
  const std::string project = CreateProject();
  const std::string volume = "/api/projects/" + project + "/volume";
  ExpectRefused("GET", volume, admin_key_, "", 404, "not_found");
  ExpectRefused("POST", volume + "/backups", admin_key_, "{}", 404, "not_found");
  ExpectRefused("PUT", volume, admin_key_, "{}", 409, "volume_unavailable");

  const std::string w1 = MakeServer("w1");
  Response created = Send("PUT", volume, org_admin_key_, R"({"size_gb": 2})");
  ASSERT_EQ(created.status, 200) << created.raw;
  EXPECT_EQ(created.body["server_id"], w1);
  EXPECT_EQ(created.body["status"], "detached");
  EXPECT_EQ(created.body["health"], "unknown");
  EXPECT_EQ(created.body["backup_policy"]["schedule"], "manual");
  EXPECT_EQ(created.body["backup_policy"]["retention_count"], 7);
  EXPECT_TRUE(created.body["current_operation"].is_null());
  const std::string volume_id = created.body["id"];

  ExpectRefused("POST", volume + "/backups", admin_key_, "{}", 409, "backup_store_unavailable");
  ConfigureLocalStore();

  // A workload holds it.
  const std::string vm = NewUuidV4();
  Sql("UPDATE project_volumes SET attached_vm_id = '" + vm + "', status = 'attached' WHERE id = '" +
      volume_id + "'");
  ExpectRefused("POST", volume + "/backups", admin_key_, "{}", 409, "volume_attached");
  Sql("UPDATE project_volumes SET attached_vm_id = NULL, status = 'detached' WHERE id = '" +
      volume_id + "'");

  // Pinned server gone.
  Sql("UPDATE servers SET status = 'dead' WHERE id = '" + w1 + "'");
  ExpectRefused("POST", volume + "/backups", admin_key_, "{}", 409, "volume_unavailable");
  Sql("UPDATE servers SET status = 'active' WHERE id = '" + w1 + "'");

  Response queued = Send("POST", volume + "/backups", admin_key_, "{}");
  ASSERT_EQ(queued.status, 202) << queued.raw;
  EXPECT_EQ(queued.body["kind"], "backup");
  EXPECT_EQ(queued.body["status"], "pending");
  EXPECT_EQ(queued.body["server_id"], w1);
  const std::string op_id = queued.body["id"];
  const std::string backup_id = queued.body["backup_id"];
  ExpectRefused("POST", volume + "/repair", admin_key_, "{}", 409, "volume_busy");
  ExpectRefused("POST", volume + "/backups", admin_key_, "{}", 409, "volume_busy");

  Response op = Send("GET", "/api/operations/" + op_id, member_key_);
  ASSERT_EQ(op.status, 200) << op.raw;
  EXPECT_TRUE(op.body["progress"].contains("bytes_done"));
  EXPECT_EQ(Send("GET", volume, member_key_).body["current_operation"]["id"], op_id);
  auto backups = Send("GET", volume + "/backups", member_key_);
  ASSERT_EQ(backups.status, 200);
  ASSERT_EQ(backups.body.size(), 1u);
  EXPECT_EQ(backups.body[0]["status"], "pending");

  // The worker finishes (simulated through db/).
  const std::string lease = NewUuidV4();
  ASSERT_TRUE(Must([&](db::Tx& tx) -> Status {
    KINDLING_ASSIGN_OR_RETURN(auto claimed,
                              db::ClaimNextOperation(tx, w1, lease, std::chrono::seconds(30)));
    if (!claimed || claimed->id != op_id) return InternalError("claimed the wrong operation");
    KINDLING_RETURN_IF_ERROR(db::UpdateProgress(
        tx, op_id, lease, R"({"phase": "upload", "bytes_done": 10, "bytes_total": 20})"));
    KINDLING_RETURN_IF_ERROR(
        db::CompleteOperation(tx, op_id, lease, R"({"stored_bytes": 5, "chunks_uploaded": 1})"));
    KINDLING_RETURN_IF_ERROR(db::MarkBackupSucceeded(
        tx, backup_id,
        db::BackupSuccess{.storage_url = "file:///x", .storage_key = "k", .size_bytes = 20}));
    KINDLING_RETURN_IF_ERROR(db::UpdateVolumeState(
        tx, volume_id, db::VolumeStateUpdate{.status = db::VolumeStatus::kDetached}));
    return OkStatus();
  }));
  op = Send("GET", "/api/operations/" + op_id, member_key_);
  EXPECT_EQ(op.body["status"], "succeeded");
  EXPECT_EQ(op.body["progress"]["bytes_done"], 10);
  EXPECT_EQ(op.body["result"]["chunks_uploaded"], 1);

  // Restore rules.
  ExpectRefused("POST", volume + "/restore", admin_key_, "{}", 400, "validation_error");
  ExpectRefused("POST", volume + "/restore", admin_key_, json{{"backup_id", NewUuidV4()}}.dump(),
                404, "not_found");
  const std::string other = CreateProject("other");
  const std::string other_volume = MakeVolume(other, w1).id;
  auto foreign = Must(
      [&](db::Tx& tx) { return db::CreateBackup(tx, db::NewBackup{.volume_id = other_volume}); });
  ASSERT_TRUE(foreign);
  ExpectRefused("POST", volume + "/restore", admin_key_, json{{"backup_id", foreign->id}}.dump(),
                400, "validation_error");
  const std::string stale = MakeServer("w0");
  Sql("UPDATE servers SET last_heartbeat_at = now() - interval '1 minute' WHERE id = '" + stale +
      "'");
  ExpectRefused("POST", volume + "/restore", admin_key_,
                json{{"backup_id", backup_id}, {"target_server_id", stale}}.dump(), 400,
                "validation_error");
  ExpectRefused("POST", volume + "/move", admin_key_, "{}", 409, "volume_unavailable");

  const std::string w2 = MakeServer("w2");
  Response restore = Send("POST", volume + "/restore", admin_key_,
                          json{{"backup_id", backup_id}, {"target_server_id", w2}}.dump());
  ASSERT_EQ(restore.status, 202) << restore.raw;
  EXPECT_EQ(restore.body["target_server_id"], w2);
  EXPECT_EQ(restore.body["server_id"], w2);
  EXPECT_EQ(Send("GET", volume, admin_key_).body["status"], "restoring");
  ExpectRefused("DELETE", volume, admin_key_, "", 409, "volume_busy");

  // Every queue wrote exactly one audit event, in the same transaction.
  auto audit = Sql(
      "SELECT action, resource_type, resource_id, details, created_at FROM cluster_audit_events "
      "ORDER BY created_at DESC LIMIT 50");
  std::multiset<std::string> actions;
  for (const auto& row : audit) actions.insert(row[0].as<std::string>());
  EXPECT_EQ(actions.count("volume.backup.queue"), 1u);
  EXPECT_EQ(actions.count("volume.restore.queue"), 1u);
  EXPECT_EQ(actions.count("volume.create"), 1u);
  auto listed =
      Send("GET", "/api/platform/audit-events?action=volume.restore.queue&limit=5", admin_key_);
  ASSERT_EQ(listed.status, 200) << listed.raw;
  ASSERT_EQ(listed.body.size(), 1u);
  EXPECT_EQ(listed.body[0]["details"]["target_server_id"], w2);
  ExpectRefused("GET", "/api/platform/audit-events?limit=0", admin_key_, "", 400,
                "validation_error");
  ExpectRefused("GET", "/api/platform/audit-events?since=yesterday", admin_key_, "", 400,
                "validation_error");
}

TEST_F(ApiServerTest, DeleteVolume) {
  MakeServer("w1");
  const std::string project = CreateProject();
  const std::string volume = "/api/projects/" + project + "/volume";
  ASSERT_EQ(Send("PUT", volume, admin_key_, "{}").status, 200);
  ExpectRefused("DELETE", volume, member_key_, "", 403, "forbidden");
  EXPECT_EQ(Send("DELETE", volume, admin_key_).status, 204);
  ExpectRefused("DELETE", volume, admin_key_, "", 404, "not_found");
  EXPECT_EQ(Sql("SELECT count(*) FROM cluster_audit_events WHERE action = 'volume.delete'")[0][0]
                .as<int>(),
            1);
}

TEST_F(ApiServerTest, RetentionPolicyIsSetShownAndPreviewed) {
  MakeServer("w1");
  const std::string project = CreateProject();
  const std::string volume = "/api/projects/" + project + "/volume";
  ExpectRefused("GET", volume + "/retention", admin_key_, "", 404, "not_found");
  Response created = Send("PUT", volume, org_admin_key_,
                          R"({"backup_retention_count": 1, "backup_keep_daily": 2})");
  ASSERT_EQ(created.status, 200) << created.raw;
  EXPECT_EQ(created.body["backup_policy"]["keep_daily"], 2);
  EXPECT_EQ(created.body["backup_policy"]["keep_weekly"], 0);
  const std::string volume_id = created.body["id"];
  ExpectRefused("PUT", volume, org_admin_key_, R"({"backup_keep_weekly": 100001})", 400,
                "validation_error");
  ExpectRefused("PUT", volume, org_admin_key_, R"({"backup_keep_weekly": -1})", 400,
                "validation_error");
  ExpectRefused("PUT", volume, member_key_, R"({"backup_keep_weekly": 1})", 403, "forbidden");
  Response updated = Send("PUT", volume, org_admin_key_, R"({"backup_keep_weekly": 4})");
  ASSERT_EQ(updated.status, 200) << updated.raw;
  EXPECT_EQ(updated.body["backup_policy"]["keep_weekly"], 4);
  EXPECT_EQ(updated.body["backup_policy"]["keep_daily"], 2) << "kept when not given";
  // (Weekly periods depend on today's weekday: the engine's tests cover them.)
  ASSERT_EQ(Send("PUT", volume, org_admin_key_, R"({"backup_keep_weekly": 0})").status, 200);

  // Backups completed 1 day ago (10:00 UTC), 2 days ago (12:00 and 10:00)
  // and 3 days ago (10:00), and a pre-delete one 5 days ago.
  const auto add = [&](const std::string& kind, int hours_before_midnight) {
    return Sql("INSERT INTO project_volume_backups (project_volume_id, kind, status, "
               "completed_at) VALUES ('" +
               volume_id + "', '" + kind +
               "', 'succeeded', (date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') "
               "- interval '" +
               std::to_string(hours_before_midnight) + " hours') RETURNING id")[0][0]
        .as<std::string>();
  };
  const std::string one = add("manual", 14);
  const std::string two_late = add("scheduled", 36);
  const std::string two_early = add("scheduled", 38);
  const std::string three = add("scheduled", 62);
  const std::string pre_delete = add("pre_delete", 120);
  // A member may look.
  Response preview = Send("GET", volume + "/retention", member_key_);
  ASSERT_EQ(preview.status, 200) << preview.raw;
  EXPECT_EQ(preview.body["policy"], (json{{"keep_last", 1},
                                          {"keep_hourly", 0},
                                          {"keep_daily", 2},
                                          {"keep_weekly", 0},
                                          {"keep_monthly", 0},
                                          {"keep_yearly", 0}}));
  std::map<std::string, json> by_id;
  for (const json& b : preview.body["backups"]) by_id[b["id"]] = b;
  ASSERT_EQ(by_id.size(), 5u) << preview.raw;
  EXPECT_EQ(preview.body["backups"][0]["id"], one) << "newest first";
  EXPECT_EQ(by_id[one]["reasons"], (json{"last", "daily"}));
  EXPECT_EQ(by_id[two_late]["reasons"], (json{"daily"}));
  EXPECT_EQ(by_id[two_early]["keep"], false) << "its day's newest is kept";
  EXPECT_EQ(by_id[two_early]["reasons"], json::array());
  EXPECT_EQ(by_id[three]["keep"], false) << "two days kept already";
  EXPECT_EQ(by_id[pre_delete]["reasons"], (json{"pre_delete"}));
  EXPECT_EQ(preview.body["kept"], 3);
  EXPECT_EQ(preview.body["dropped"], 2);
  // A preview changes nothing.
  EXPECT_EQ(Sql("SELECT count(*) FROM project_volume_backups WHERE project_volume_id = '" +
                volume_id + "'")[0][0]
                .as<int>(),
            5);
}

TEST_F(ApiServerTest, ScheduleWithCronWindowAndZoneShowsItsNextBackup) {
  MakeServer("w1");
  const std::string project = CreateProject();
  const std::string volume = "/api/projects/" + project + "/volume";
  Response created = Send("PUT", volume, org_admin_key_, "{}");
  ASSERT_EQ(created.status, 200) << created.raw;
  EXPECT_TRUE(created.body["next_backup_at"].is_null()) << "manual: no slot";
  EXPECT_EQ(created.body["backup_policy"]["time_zone"], "UTC");

  // A cron expression alone makes the schedule cron.
  Response cron = Send("PUT", volume, org_admin_key_,
                       R"({"backup_cron": "30 1 * * *", "backup_time_zone": "Europe/Paris"})");
  ASSERT_EQ(cron.status, 200) << cron.raw;
  EXPECT_EQ(cron.body["backup_policy"]["schedule"], "cron");
  EXPECT_EQ(cron.body["backup_policy"]["cron"], "30 1 * * *");
  ASSERT_TRUE(cron.body["next_backup_at"].is_string()) << cron.raw;
  // 01:30 in Paris is 00:30 UTC in winter or 23:30 in summer, plus at most
  // half an hour of spread.
  const std::string next = cron.body["next_backup_at"];
  EXPECT_TRUE(next.find("T00:") != std::string::npos || next.find("T23:") != std::string::npos)
      << next;
  EXPECT_EQ(Send("GET", volume, member_key_).body["next_backup_at"], next);

  // Bad settings: 400 with the field named, and nothing changes.
  const auto refused = [&](const std::string& body, const std::string& needle) {
    Response r = Send("PUT", volume, org_admin_key_, body);
    EXPECT_EQ(r.status, 400) << body << " -> " << r.raw;
    EXPECT_EQ(r.body.value("code", ""), "validation_error") << r.raw;
    EXPECT_NE(r.body.value("error", "").find(needle), std::string::npos) << r.raw;
  };
  refused(R"({"backup_cron": "61 * * * *"})", "backup_cron: cron field 1 (minute)");
  refused(R"({"backup_time_zone": "Mars/Olympus"})", "backup_time_zone");
  refused(R"({"backup_window_start": "25:00"})", "backup_window_start");
  refused(R"({"backup_schedule": "daily", "backup_cron": "0 * * * *"})", "backup_cron");
  refused(R"({"backup_schedule": "hourly"})", "cron");
  refused(R"({"backup_window_minutes": 2000})", "backup_window_minutes");
  Response same = Send("GET", volume, org_admin_key_);
  EXPECT_EQ(same.body["backup_policy"]["cron"], "30 1 * * *");
  EXPECT_EQ(same.body["backup_policy"]["time_zone"], "Europe/Paris");
  EXPECT_EQ(same.body["next_backup_at"], next);

  // Daily in a window: the expression goes, the window shows, null clears it.
  Response daily = Send("PUT", volume, org_admin_key_,
                        R"({"backup_schedule": "daily", "backup_window_start": "22:00",
                            "backup_window_minutes": 120, "backup_time_zone": "UTC"})");
  ASSERT_EQ(daily.status, 200) << daily.raw;
  EXPECT_TRUE(daily.body["backup_policy"]["cron"].is_null());
  EXPECT_EQ(daily.body["backup_policy"]["window_start"], "22:00");
  EXPECT_EQ(daily.body["backup_policy"]["window_minutes"], 120);
  const std::string in_window = daily.body["next_backup_at"];
  EXPECT_NE(in_window.find("T22:"), std::string::npos) << in_window;
  Response cleared = Send("PUT", volume, org_admin_key_,
                          R"({"backup_window_start": null, "backup_window_minutes": null})");
  ASSERT_EQ(cleared.status, 200) << cleared.raw;
  EXPECT_TRUE(cleared.body["backup_policy"]["window_start"].is_null());
  EXPECT_TRUE(cleared.body["backup_policy"]["window_minutes"].is_null());
  // The newest succeeded backup's age and last verification.
  EXPECT_TRUE(cleared.body["last_backup_age_seconds"].is_null());
  const std::string volume_id = cleared.body["id"];
  Sql("INSERT INTO project_volume_backups (project_volume_id, kind, status, completed_at, "
      "verified_at, verify_state) VALUES ('" +
      volume_id + "', 'scheduled', 'succeeded', now() - interval '2 hours', now(), 'ok'), ('" +
      volume_id + "', 'scheduled', 'succeeded', now() - interval '3 days', NULL, NULL)");
  Response shown = Send("GET", volume, member_key_);
  ASSERT_EQ(shown.status, 200) << shown.raw;
  EXPECT_NEAR(shown.body["last_backup_age_seconds"].get<double>(), 7200, 60) << shown.raw;
  EXPECT_EQ(shown.body["last_backup_verify_state"], "ok") << shown.raw;
  EXPECT_TRUE(shown.body["last_backup_verified_at"].is_string()) << shown.raw;
  // Off: no next backup.
  Response off = Send("PUT", volume, org_admin_key_, R"({"backup_schedule": "off"})");
  ASSERT_EQ(off.status, 200) << off.raw;
  EXPECT_TRUE(off.body["next_backup_at"].is_null());
  EXPECT_EQ(off.body["last_backup_verify_state"], "ok") << "PUT answers as GET does";
  // The cron, daily and clearing updates changed the details; "off" did not.
  EXPECT_EQ(Sql("SELECT count(*) FROM cluster_audit_events WHERE action = 'volume.update' "
                "AND details->'changed' ? 'backup_window'")[0][0]
                .as<int>(),
            3);
}

TEST_F(ApiServerTest, BackupSettingsSecretsNeverShown) {
  testutil::S3TestServer s3;
  const std::string secret = s3.options().secret_access_key;
  const std::string akid = s3.options().access_key_id;
  Response empty = Send("GET", "/api/platform/volume-backup-settings", admin_key_);
  ASSERT_EQ(empty.status, 200);
  EXPECT_EQ(empty.body["s3_secret_access_key"], "not set");
  EXPECT_FALSE(empty.body["configured"].get<bool>());

  ExpectRefused("PUT", "/api/platform/volume-backup-settings", admin_key_, R"({"s3_bucket": 5})",
                400, "validation_error");
  ExpectRefused("PUT", "/api/platform/volume-backup-settings", admin_key_,
                R"({"local_directory": "relative/dir"})", 400, "validation_error");

  Response put = Send("PUT", "/api/platform/volume-backup-settings", admin_key_,
                      json{{"s3_bucket", s3.options().bucket},
                           {"s3_region", "us-east-1"},
                           {"s3_endpoint", s3.endpoint()},
                           {"s3_prefix", "kindling"},
                           {"s3_access_key_id", akid},
                           {"s3_secret_access_key", secret}}
                          .dump());
  ASSERT_EQ(put.status, 200) << put.raw;
  EXPECT_EQ(put.body["s3_secret_access_key"], "set");
  EXPECT_EQ(put.body["s3_access_key_id"], "set");
  EXPECT_TRUE(put.body["store"]["ready"].get<bool>()) << put.raw;
  EXPECT_EQ(put.body["storage_url"], "s3://" + s3.options().bucket + "/kindling");

  Response ok = Send("POST", "/api/platform/volume-backup-settings/test", admin_key_, "{}");
  ASSERT_EQ(ok.status, 200);
  EXPECT_TRUE(ok.body["ok"].get<bool>()) << ok.raw;

  Response bad = Send("POST", "/api/platform/volume-backup-settings/test", admin_key_,
                      json{{"s3_secret_access_key", "another-wrong-secret-123"}}.dump());
  ASSERT_EQ(bad.status, 200);
  EXPECT_FALSE(bad.body["ok"].get<bool>());
  EXPECT_EQ(bad.body["step"], "write") << bad.raw;
  EXPECT_EQ(bad.raw.find("another-wrong-secret-123"), std::string::npos);

  testutil::TempDir local;
  Response local_ok =
      Send("POST", "/api/platform/volume-backup-settings/test", admin_key_,
           json{{"s3_bucket", nullptr}, {"local_directory", local.path().string()}}.dump());
  EXPECT_TRUE(local_ok.body["ok"].get<bool>()) << local_ok.raw;

  Send("GET", "/api/platform/volume-backup-settings", admin_key_);
  Send("GET", "/api/platform/audit-events", admin_key_);
  EXPECT_EQ(all_answers_.find(secret), std::string::npos);
  EXPECT_EQ(all_answers_.find(akid), std::string::npos);
  for (const auto& row : Sql("SELECT details::text FROM cluster_audit_events")) {
    EXPECT_EQ(row[0].as<std::string>().find(secret), std::string::npos);
    EXPECT_EQ(row[0].as<std::string>().find(akid), std::string::npos);
  }
  EXPECT_EQ(Sql("SELECT count(*) FROM cluster_audit_events WHERE action = "
                "'cluster.secrets.update'")[0][0]
                .as<int>(),
            1);
}

TEST_F(ApiServerTest, MetaServersAndDrain) {
  Response meta =
      Send("PUT", "/api/meta", admin_key_, R"({"public_base_url": "https://k.example.com"})");
  ASSERT_EQ(meta.status, 200) << meta.raw;
  EXPECT_TRUE(meta.body["public_base_url_configured"].get<bool>());
  auto changed =
      Sql("SELECT details->'changed'->>0 FROM cluster_audit_events WHERE action = "
          "'cluster.settings.update'");
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[0][0].as<std::string>(), "public_base_url");
  ExpectRefused("PUT", "/api/meta", admin_key_, R"({"public_base_url": 3})", 400,
                "validation_error");

  const std::string w1 = MakeServer("w1");
  const std::string w2 = MakeServer("w2");
  Sql("UPDATE servers SET last_heartbeat_at = now() - interval '25 seconds' WHERE id = '" + w2 +
      "'");
  Response all = Send("GET", "/api/platform/servers", admin_key_);
  ASSERT_EQ(all.status, 200);
  ASSERT_EQ(all.body.size(), 2u);
  EXPECT_EQ(all.body[0]["heartbeat_health"], "healthy");
  EXPECT_EQ(all.body[0]["runtime"], "sparse-file");
  EXPECT_EQ(all.body[1]["heartbeat_health"], "stale");
  EXPECT_GE(all.body[1]["heartbeat_age_seconds"].get<double>(), 24.0);

  // Org-scoped: only servers pinning the caller's volumes.
  EXPECT_EQ(Send("GET", "/api/servers", member_key_).body.size(), 0u);
  MakeVolume(CreateProject(), w1);
  auto scoped = Send("GET", "/api/servers", member_key_);
  ASSERT_EQ(scoped.body.size(), 1u);
  EXPECT_EQ(scoped.body[0]["id"], w1);

  Response drained = Send("POST", "/api/servers/" + w1 + "/drain", admin_key_);
  ASSERT_EQ(drained.status, 200) << drained.raw;
  EXPECT_EQ(drained.body["status"], "draining");
  EXPECT_EQ(Send("POST", "/api/servers/" + w1 + "/activate", admin_key_).body["status"], "active");
  ExpectRefused("POST", "/api/servers/" + NewUuidV4() + "/drain", admin_key_, "", 404, "not_found");
  EXPECT_EQ(Sql("SELECT count(*) FROM cluster_audit_events WHERE action IN ('server.drain', "
                "'server.activate')")[0][0]
                .as<int>(),
            2);

  auto metrics = client_->Get("/metrics", {{"Authorization", "Bearer " + admin_key_}});
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 200);
  EXPECT_NE(metrics->body.find("kindling_server_heartbeat_age_seconds"), std::string::npos);
}

TEST_F(ApiServerTest, ApiKeysShownOnceAndRevocable) {
  Response created = Send("POST", "/api/api-keys", member_key_, R"({"name": "ci"})");
  ASSERT_EQ(created.status, 201) << created.raw;
  const std::string secret = created.body["secret"];
  const std::string id = created.body["id"];
  EXPECT_EQ(Send("GET", "/api/projects", secret).status, 200);
  Response listed = Send("GET", "/api/api-keys", member_key_);
  ASSERT_EQ(listed.status, 200);
  EXPECT_EQ(listed.raw.find(secret), std::string::npos);
  // Another user cannot revoke it.
  ExpectRefused("DELETE", "/api/api-keys/" + id, org_admin_key_, "", 404, "not_found");
  EXPECT_EQ(Send("DELETE", "/api/api-keys/" + id, member_key_).status, 204);
  ExpectRefused("GET", "/api/projects", secret, "", 401, "unauthorized");
  for (const auto& row : Sql("SELECT details::text FROM cluster_audit_events")) {
    EXPECT_EQ(row[0].as<std::string>().find(secret), std::string::npos);
  }
  EXPECT_EQ(Sql("SELECT count(*) FROM cluster_audit_events WHERE action LIKE 'api_key.%'")[0][0]
                .as<int>(),
            2);
}

TEST_F(ApiServerTest, BackupSettingsSelectOneStoreAndTestWhatTheBodySays) {
  const std::string settings = "/api/platform/volume-backup-settings";
  ExpectRefused("PUT", settings, admin_key_,
                json{{"local_directory", store_dir_.path().string()}, {"s3_bucket", "b"}}.dump(),
                400, "validation_error");
  // An S3 store, complete but unreachable: saved and remembered all the same.
  Response s3 = Send("PUT", settings, admin_key_,
                     json{{"s3_bucket", "old-bucket"},
                          {"s3_region", "eu-west-1"},
                          {"s3_endpoint", "http://127.0.0.1:9"},
                          {"s3_access_key_id", "AKIDOLD"},
                          {"s3_secret_access_key", "old-secret-value"}}
                         .dump());
  ASSERT_EQ(s3.status, 200) << s3.raw;
  EXPECT_EQ(s3.body["storage_url"], "s3://old-bucket");
  // A local directory switches the store: the bucket does not win any more.
  ConfigureLocalStore();
  Response shown = Send("GET", settings, admin_key_);
  EXPECT_EQ(shown.body["s3_bucket"], "");
  EXPECT_EQ(shown.body["storage_url"], "file://" + store_dir_.path().string());
  // The history keeps both stores, without secrets.
  Response stores = Send("GET", "/api/platform/volume-backup-stores", admin_key_);
  ASSERT_EQ(stores.status, 200) << stores.raw;
  std::set<std::string> urls;
  for (const auto& s : stores.body) urls.insert(s["storage_url"].get<std::string>());
  EXPECT_EQ(urls,
            (std::set<std::string>{"s3://old-bucket", "file://" + store_dir_.path().string()}));
  EXPECT_EQ(stores.raw.find("old-secret-value"), std::string::npos);
  ExpectRefused("GET", "/api/platform/volume-backup-stores", org_admin_key_, "", 403, "forbidden");

  // POST .../test tests the body's store, not the saved one.
  Response saved_ok = Send("POST", settings + "/test", admin_key_, "{}");
  EXPECT_TRUE(saved_ok.body["ok"].get<bool>()) << saved_ok.raw;
  const std::string before = State();
  Response other = Send("POST", settings + "/test", admin_key_,
                        json{{"local_directory", "/proc/kindling-cannot-write-here"}}.dump());
  ASSERT_EQ(other.status, 200) << other.raw;
  EXPECT_FALSE(other.body["ok"].get<bool>()) << other.raw;
  EXPECT_EQ(other.body["storage_url"], "file:///proc/kindling-cannot-write-here");
  EXPECT_EQ(State(), before);
  Response bucket =
      Send("POST", settings + "/test", admin_key_, json{{"s3_bucket", "old-bucket"}}.dump());
  EXPECT_EQ(bucket.body["storage_url"], "s3://old-bucket") << bucket.raw;
  EXPECT_FALSE(bucket.body["ok"].get<bool>()) << bucket.raw;
  EXPECT_EQ(Send("GET", settings, admin_key_).body["storage_url"],
            "file://" + store_dir_.path().string());
}

TEST_F(ApiServerTest, BackupsOutliveTheirVolumeAndRestoreIntoTheNextOne) {
  const std::string w1 = MakeServer("w1");
  ConfigureLocalStore();
  const std::string project = CreateProject();
  const std::string volume = "/api/projects/" + project + "/volume";
  Response created = Send("PUT", volume, admin_key_, "{}");
  ASSERT_EQ(created.status, 200) << created.raw;
  const std::string old_volume = created.body["id"];
  auto backup = Must([&](db::Tx& tx) -> Result<db::Backup> {
    KINDLING_ASSIGN_OR_RETURN(
        auto b, db::CreateBackup(tx, db::NewBackup{.volume_id = old_volume,
                                                   .kind = db::BackupKind::kPreDelete}));
    return db::MarkBackupSucceeded(
        tx, b.id,
        db::BackupSuccess{.storage_url = "file://" + store_dir_.path().string(),
                          .storage_key = "k",
                          .size_bytes = 1 << 30});
  });
  ASSERT_TRUE(backup);
  ASSERT_EQ(Send("DELETE", volume, admin_key_).status, 204);
  ExpectRefused("GET", volume + "/backups", member_key_, "", 404, "not_found");
  Response listed = Send("GET", "/api/projects/" + project + "/backups", member_key_);
  ASSERT_EQ(listed.status, 200) << listed.raw;
  ASSERT_EQ(listed.body.size(), 1u) << listed.raw;
  EXPECT_EQ(listed.body[0]["id"], backup->id);
  EXPECT_EQ(listed.body[0]["kind"], "pre_delete");
  EXPECT_EQ(listed.body[0]["project_volume_id"], old_volume);
  EXPECT_TRUE(listed.body[0]["volume_deleted"].get<bool>());
  EXPECT_TRUE(listed.body[0]["damage"].is_null());
  // Not visible to other organisations.
  const std::string outsider =
      Must([&](db::Tx& tx) -> Result<std::string> {
        KINDLING_ASSIGN_OR_RETURN(auto org, db::CreateOrganization(tx, "other-org"));
        KINDLING_ASSIGN_OR_RETURN(auto user, db::CreateUser(tx, db::NewUser{.email = "o@x.com"}));
        KINDLING_RETURN_IF_ERROR(db::SetMembership(tx, org.id, user.id, db::OrgRole::kOwner));
        KINDLING_ASSIGN_OR_RETURN(auto key, db::CreateApiKey(tx, user.id, "k"));
        return std::string(key.secret.Reveal());
      }).value_or("");
  ExpectRefused("GET", "/api/projects/" + project + "/backups", outsider, "", 404, "not_found");

  // The project's next volume takes the earlier volume's backup.
  Response next = Send("PUT", volume, admin_key_, "{}");
  ASSERT_EQ(next.status, 200) << next.raw;
  Response restore =
      Send("POST", volume + "/restore", org_admin_key_, json{{"backup_id", backup->id}}.dump());
  ASSERT_EQ(restore.status, 202) << restore.raw;
  EXPECT_EQ(restore.body["backup_id"], backup->id);
  EXPECT_EQ(restore.body["server_id"], w1);
  auto audit =
      Sql("SELECT details->>'source_volume_id' FROM cluster_audit_events "
          "WHERE action = 'volume.restore.queue'");
  ASSERT_EQ(audit.size(), 1u);
  EXPECT_EQ(audit[0][0].as<std::string>(), old_volume);
}

TEST_F(ApiServerTest, DamagedBackupIsShownRefusedForRestoreAndVerifiable) {
  MakeServer("w1");
  ConfigureLocalStore();
  const std::string project = CreateProject();
  const std::string volume = "/api/projects/" + project + "/volume";
  Response created = Send("PUT", volume, admin_key_, "{}");
  ASSERT_EQ(created.status, 200) << created.raw;
  const std::string volume_id = created.body["id"];
  const std::string chunk(64, 'a');
  auto backup = Must([&](db::Tx& tx) -> Result<db::Backup> {
    KINDLING_ASSIGN_OR_RETURN(auto b, db::CreateBackup(tx, db::NewBackup{.volume_id = volume_id}));
    KINDLING_RETURN_IF_ERROR(db::MarkBackupSucceeded(
        tx, b.id,
        db::BackupSuccess{.storage_url = "file://" + store_dir_.path().string(),
                          .storage_key = "k",
                          .size_bytes = 1 << 30}));
    return db::MarkBackupDamaged(
        tx, b.id,
        json{{"chunks", {{{"chunk_id", chunk}, {"problem", "corrupt"}, {"offsets", {0, 4194304}}}}}}
            .dump());
  });
  ASSERT_TRUE(backup);
  Response listed = Send("GET", volume + "/backups", member_key_);
  ASSERT_EQ(listed.body.size(), 1u) << listed.raw;
  EXPECT_EQ(listed.body[0]["status"], "damaged");
  EXPECT_EQ(listed.body[0]["damage"]["chunks"][0]["offsets"][1], 4194304);
  const std::string before = State();
  Response refused =
      Send("POST", volume + "/restore", admin_key_, json{{"backup_id", backup->id}}.dump());
  EXPECT_EQ(refused.status, 409) << refused.raw;
  EXPECT_EQ(refused.body["code"], "backup_damaged");
  EXPECT_NE(refused.raw.find(chunk), std::string::npos) << refused.raw;
  EXPECT_NE(refused.raw.find("4194304"), std::string::npos) << refused.raw;
  EXPECT_EQ(State(), before);

  // A verify can be queued for it; the volume keeps its status.
  ExpectRefused("POST", volume + "/backups/" + backup->id + "/verify", member_key_, "", 403,
                "forbidden");
  ExpectRefused("POST", volume + "/backups/not-a-uuid/verify", admin_key_, "", 400,
                "validation_error");
  ExpectRefused("POST", volume + "/backups/" + NewUuidV4() + "/verify", admin_key_, "", 404,
                "not_found");
  Response verify = Send("POST", volume + "/backups/" + backup->id + "/verify", admin_key_);
  ASSERT_EQ(verify.status, 202) << verify.raw;
  EXPECT_EQ(verify.body["kind"], "verify");
  EXPECT_EQ(verify.body["backup_id"], backup->id);
  EXPECT_EQ(Send("GET", volume, admin_key_).body["status"], "detached");
  ExpectRefused("POST", volume + "/backups", admin_key_, "{}", 409, "volume_busy");
}

TEST_F(ApiServerTest, QuarantinedImagesAreListedAdoptedAndPurgedPerProject) {
  const std::string w1 = MakeServer("w1");
  ConfigureLocalStore();
  const std::string mine = CreateProject("mine");
  const std::string theirs = CreateProject("theirs");
  const std::string volume = "/api/projects/" + mine + "/volume";
  ASSERT_EQ(Send("PUT", volume, admin_key_, "{}").status, 200);
  const std::string their_volume = MakeVolume(theirs, w1).id;
  auto held = [&](const std::string& volume_id) {
    db::QuarantineEntry e;
    e.id = NewUuidV4();
    e.server_id = w1;
    e.project_volume_id = volume_id;
    e.reason = db::QuarantineReason::kConflict;
    e.path = "/var/lib/kindling/quarantine/" + e.id + "/image.img";
    e.size_bytes = 1 << 30;
    e.image_sha256 = std::string(64, 'c');
    EXPECT_TRUE(Must([&](db::Tx& tx) { return db::UpsertQuarantineEntry(tx, e); }));
    return e.id;
  };
  const std::string my_volume_id = Send("GET", volume, admin_key_).body["id"];
  const std::string my_entry = held(my_volume_id);
  const std::string their_entry = held(their_volume);
  const std::string unknown_entry = held(NewUuidV4());

  Response listed = Send("GET", volume + "/quarantine", member_key_);
  ASSERT_EQ(listed.status, 200) << listed.raw;
  ASSERT_EQ(listed.body.size(), 1u) << listed.raw;
  EXPECT_EQ(listed.body[0]["id"], my_entry);
  EXPECT_EQ(listed.body[0]["reason"], "conflict");
  EXPECT_EQ(listed.body[0]["status"], "held");
  EXPECT_TRUE(listed.body[0]["purge_after"].is_null());
  Response all = Send("GET", "/api/platform/quarantine?status=held", admin_key_);
  ASSERT_EQ(all.status, 200) << all.raw;
  EXPECT_EQ(all.body.size(), 3u);
  EXPECT_EQ(
      Send("GET", "/api/platform/quarantine?server_id=" + NewUuidV4(), admin_key_).body.size(), 0u);
  ExpectRefused("GET", "/api/platform/quarantine", org_admin_key_, "", 403, "forbidden");
  ExpectRefused("GET", "/api/platform/quarantine?status=gone", admin_key_, "", 400,
                "validation_error");

  // Adoption: only images of this project's volumes; unknown volumes are
  // for platform admins.
  ExpectRefused("POST", volume + "/adopt-image", org_admin_key_,
                json{{"quarantine_id", their_entry}}.dump(), 404, "not_found");
  ExpectRefused("POST", volume + "/adopt-image", org_admin_key_,
                json{{"quarantine_id", unknown_entry}}.dump(), 404, "not_found");
  ExpectRefused("POST", volume + "/adopt-image", member_key_,
                json{{"quarantine_id", my_entry}}.dump(), 403, "forbidden");
  ExpectRefused("POST", volume + "/adopt-image", org_admin_key_, "{}", 400, "validation_error");
  Response adopt = Send("POST", volume + "/adopt-image", org_admin_key_,
                        json{{"quarantine_id", my_entry}}.dump());
  ASSERT_EQ(adopt.status, 202) << adopt.raw;
  EXPECT_EQ(adopt.body["kind"], "adopt");
  EXPECT_EQ(adopt.body["server_id"], w1);
  EXPECT_EQ(Send("GET", volume, admin_key_).body["status"], "restoring");
  // No purge while it is being adopted.
  ExpectRefused("DELETE", volume + "/quarantine/" + my_entry, org_admin_key_, "", 409,
                "failed_precondition");

  // Purge requests: per project for organisation admins, any for platform admins.
  ExpectRefused("DELETE", volume + "/quarantine/" + their_entry, org_admin_key_, "", 404,
                "not_found");
  ExpectRefused("DELETE", "/api/platform/quarantine/" + unknown_entry, org_admin_key_, "", 403,
                "forbidden");
  Response purge = Send("DELETE", "/api/platform/quarantine/" + unknown_entry, admin_key_);
  ASSERT_EQ(purge.status, 200) << purge.raw;
  EXPECT_FALSE(purge.body["purge_after"].is_null());
  EXPECT_EQ(purge.body["status"], "held");  // the worker deletes it on its next pass
  EXPECT_EQ(Sql("SELECT count(*) FROM cluster_audit_events WHERE action = "
                "'volume.image.purge_requested'")[0][0]
                .as<int>(),
            1);
}

TEST_F(ApiServerTest, BackupRescanOrphansAndAssignmentArePlatformAdminOnly) {
  ConfigureLocalStore();
  const std::string project = CreateProject();
  // A backup in the store whose volume the database does not know.
  auto store = control::OpenCurrentBackupStore(db(), master_key_);
  ASSERT_TRUE(store) << store.error().message();
  testutil::MakeSparseFile(store_dir_.path() / "image.img", 8u << 20,
                           {{.offset = 0, .length = 1u << 20}});
  engine::BackupOptions backup;
  backup.volume_id = NewUuidV4();
  backup.backup_id = NewUuidV7();
  backup.image = store_dir_.path() / "image.img";
  ASSERT_TRUE(engine::CreateBackup(*store->repository, backup));
  const std::string rescan = "/api/platform/backups/rescan";
  const std::string assign = "/api/platform/backups/" + backup.backup_id + "/assign";
  const std::string body = json{{"project_id", project}}.dump();

  for (const std::string& key : {member_key_, org_admin_key_}) {
    ExpectRefused("POST", rescan, key, "{}", 403, "forbidden");
    ExpectRefused("GET", "/api/platform/backups/orphans", key, "", 403, "forbidden");
    ExpectRefused("POST", assign, key, body, 403, "forbidden");
  }
  ExpectRefused("POST", rescan, "", "{}", 401, "unauthorized");
  ExpectRefused("POST", rescan, admin_key_, R"({"force": true})", 400, "validation_error");
  EXPECT_EQ(Sql("SELECT count(*) FROM orphan_volume_backups")[0][0].as<int>(), 0);

  Response scanned = Send("POST", rescan, admin_key_, "{}");
  ASSERT_EQ(scanned.status, 200) << scanned.raw;
  EXPECT_EQ(scanned.body["manifests"], 1);
  EXPECT_EQ(scanned.body["imported"], json::array());
  EXPECT_EQ(scanned.body["unreadable"], json::array());
  ASSERT_EQ(scanned.body["orphaned"].size(), 1u) << scanned.raw;
  const json& orphan = scanned.body["orphaned"][0];
  EXPECT_EQ(orphan["backup_id"], backup.backup_id);
  EXPECT_EQ(orphan["volume_id"], backup.volume_id);
  EXPECT_EQ(orphan["first_found"], true);
  EXPECT_EQ(orphan["assignable"], true);
  EXPECT_EQ(orphan["storage_url"], "file://" + store_dir_.path().string());
  Response listed = Send("GET", "/api/platform/backups/orphans", admin_key_);
  ASSERT_EQ(listed.status, 200) << listed.raw;
  ASSERT_EQ(listed.body.size(), 1u);
  ExpectRefused("GET", "/api/platform/backups/orphans?all=1", admin_key_, "", 400,
                "validation_error");

  ExpectRefused("POST", assign, admin_key_, "{}", 400, "validation_error");
  ExpectRefused("POST", assign, admin_key_, R"({"project_id": "web"})", 400, "validation_error");
  ExpectRefused("POST", "/api/platform/backups/" + NewUuidV7() + "/assign", admin_key_, body, 404,
                "not_found");
  ExpectRefused("POST", assign, admin_key_, json{{"project_id", NewUuidV4()}}.dump(), 404,
                "not_found");
  Response assigned = Send("POST", assign, admin_key_, body);
  ASSERT_EQ(assigned.status, 200) << assigned.raw;
  EXPECT_EQ(assigned.body["backup"]["id"], backup.backup_id);
  EXPECT_EQ(assigned.body["backup"]["status"], "succeeded");
  EXPECT_EQ(assigned.body["backup"]["volume_deleted"], true);
  EXPECT_EQ(assigned.body["volume_id"], backup.volume_id);
  EXPECT_EQ(assigned.body["volume_created"], true);
  EXPECT_EQ(assigned.body["orphan"]["assigned_project_id"], project);
  Response project_backups = Send("GET", "/api/projects/" + project + "/backups", admin_key_);
  ASSERT_EQ(project_backups.body.size(), 1u) << project_backups.raw;
  EXPECT_EQ(project_backups.body[0]["id"], backup.backup_id);
  EXPECT_EQ(project_backups.body[0]["volume_deleted"], true);
  ExpectRefused("POST", assign, admin_key_, body, 409, "failed_precondition");
  EXPECT_EQ(Send("GET", "/api/platform/backups/orphans", admin_key_).body, json::array());
  EXPECT_EQ(
      Send("GET", "/api/platform/backups/orphans?include_assigned=true", admin_key_).body.size(),
      1u);
  // Audited with the admin as actor.
  EXPECT_EQ(Sql("SELECT count(*) FROM cluster_audit_events WHERE action IN "
                "('backups.rescan', 'backup.orphan.found', 'volume.backup.assigned') "
                "AND user_id IS NOT NULL")[0][0]
                .as<int>(),
            3);
}

TEST_F(ApiServerTest, PlatformHealthReportsTheControlPlaneBackupCheck) {
  // What the scheduling process on the database host stores, as it stores it.
  auto store_check = [&](bool ok, const json& report) {
    ASSERT_TRUE(Must([&](db::Tx& tx) {
      return db::PutControlPlaneBackupStatus(
          tx, db::ControlPlaneBackupStatusInput{.stanza = "kindling",
                                                .ok = ok,
                                                .report_json = report.dump(),
                                                .server_id = std::nullopt,
                                                .hostname = "db-1"});
    }));
  };
  ExpectRefused("GET", "/api/platform/health", "", "", 401, "unauthorized");
  ExpectRefused("GET", "/api/platform/health", member_key_, "", 403, "forbidden");
  ExpectRefused("GET", "/api/platform/health", org_admin_key_, "", 403, "forbidden");
  ExpectRefused("GET", "/api/platform/health?verbose=1", admin_key_, "", 400, "validation_error");

  // Nothing reported yet: not configured, and said how to configure it.
  Response none = Send("GET", "/api/platform/health", admin_key_);
  ASSERT_EQ(none.status, 200) << none.raw;
  const json& nothing = none.body["control_plane_backup"];
  EXPECT_FALSE(nothing.value("configured", true)) << none.raw;
  EXPECT_TRUE(nothing["ok"].is_null());
  EXPECT_NE(nothing.value("hint", "").find("--pgbackrest-config"), std::string::npos);
  EXPECT_FALSE(none.body.value("ok", true));
  EXPECT_TRUE(none.body["servers"].is_object());
  auto metrics = client_->Get("/metrics", {{"Authorization", "Bearer " + admin_key_}});
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("\nkindling_control_plane_backup_configured 0\n"), std::string::npos)
      << metrics->body;
  EXPECT_EQ(metrics->body.find("kindling_control_plane_backup_ok"), std::string::npos);

  const json report = {{"ok", true},
                       {"problems", json::array()},
                       {"last_backup", {{"label", "20261201-010000F"}, {"type", "full"}}},
                       {"last_backup_age_seconds", 1800.5},
                       {"last_archived_age_seconds", 42},
                       {"archiver", {{"failed_count", 3}, {"failing", false}}},
                       {"wal_level", "logical"},
                       {"check_every_seconds", 300},
                       {"checked_by", {{"hostname", "db-1"}, {"process", "kindling serve"}}}};
  store_check(true, report);
  Response fresh = Send("GET", "/api/platform/health", admin_key_);
  ASSERT_EQ(fresh.status, 200) << fresh.raw;
  const json& backup = fresh.body["control_plane_backup"];
  EXPECT_TRUE(backup.value("configured", false)) << fresh.raw;
  EXPECT_TRUE(backup.value("ok", false));
  EXPECT_FALSE(backup.value("stale", true));
  EXPECT_FALSE(backup.value("checked_at", "").empty());
  EXPECT_LT(backup.value("check_age_seconds", 1e9), 60);
  EXPECT_EQ(backup["last_backup"].value("label", ""), "20261201-010000F");
  EXPECT_EQ(backup.value("wal_level", ""), "logical");
  EXPECT_EQ(backup["archiver"].value("failed_count", 0), 3);
  EXPECT_TRUE(backup["problems"].empty());
  metrics = client_->Get("/metrics", {{"Authorization", "Bearer " + admin_key_}});
  ASSERT_TRUE(metrics);
  for (const char* line :
       {"\nkindling_control_plane_backup_configured 1\n", "\nkindling_control_plane_backup_ok 1\n",
        "\nkindling_control_plane_backup_last_age_seconds 1800.5\n",
        "\nkindling_control_plane_wal_archive_age_seconds 42\n",
        "\nkindling_control_plane_wal_archive_failed_total 3\n",
        "\nkindling_control_plane_backup_check_age_seconds "})
    EXPECT_NE(metrics->body.find(line), std::string::npos) << line << " in\n" << metrics->body;

  // Nobody checked for an hour: stale, whatever the last check said.
  Sql("UPDATE control_plane_backup_status SET checked_at = now() - interval '1 hour'");
  Response stale = Send("GET", "/api/platform/health", admin_key_);
  ASSERT_EQ(stale.status, 200) << stale.raw;
  EXPECT_TRUE(stale.body["control_plane_backup"].value("stale", false)) << stale.raw;
  EXPECT_FALSE(stale.body.value("ok", true));
  ASSERT_EQ(stale.body["control_plane_backup"]["problems"].size(), 1u) << stale.raw;
  EXPECT_NE(stale.body["control_plane_backup"]["problems"][0].get<std::string>().find("db-1"),
            std::string::npos);
  metrics = client_->Get("/metrics", {{"Authorization", "Bearer " + admin_key_}});
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("\nkindling_control_plane_backup_ok 0\n"), std::string::npos);

  // A check with problems: not ok, the problems as reported.
  json failing = report;
  failing["ok"] = false;
  failing["problems"] = {"WAL archiving fails: the last attempt failed"};
  store_check(false, failing);
  Response bad = Send("GET", "/api/platform/health", admin_key_);
  EXPECT_FALSE(bad.body["control_plane_backup"].value("ok", true)) << bad.raw;
  EXPECT_FALSE(bad.body["control_plane_backup"].value("stale", true));
  EXPECT_EQ(bad.body["control_plane_backup"]["problems"][0],
            "WAL archiving fails: the last attempt failed");
}

}  // namespace
}  // namespace kindling::api
