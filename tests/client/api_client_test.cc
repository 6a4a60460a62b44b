// ApiClient: what it sends (Bearer key, JSON bodies, encoded queries, UUID
// checks before anything is sent), how answers become errors (kinds by
// status, "message (code)", non-JSON bodies, unreachable API), that the key
// never shows in a message; then the same calls against the real ApiServer.
#include "client/api_client.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "api/api_server.h"
#include "common/ids.h"
#include "db/db_test_util.h"
#include "db/servers.h"
#include "testutil/fake_http_server.h"
#include "testutil/temp_dir.h"

namespace kindling::client {
namespace {

using nlohmann::json;

constexpr char kKey[] = "kdl_0123456789abcdef0123456789abcdef";

std::unique_ptr<ApiClient> MakeClient(const std::string& url, const std::string& key = kKey) {
  auto client =
      ApiClient::Create(ApiClientOptions{.base_url = url, .api_key = Secret::FromView(key)});
  EXPECT_TRUE(client) << client.error().message();
  return client ? std::move(*client) : nullptr;
}

class ApiClientFakeServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.Get("/api/projects", [](const httplib::Request&, httplib::Response& res) {
      testutil::FakeHttpServer::Json(res, 200, R"([{"id":"p1","name":"web"}])");
    });
    server_.Post("/api/projects", [](const httplib::Request& req, httplib::Response& res) {
      testutil::FakeHttpServer::Json(res, 201, req.body);
    });
    server_.Get("/api/platform/audit-events", [](const httplib::Request&, httplib::Response& res) {
      testutil::FakeHttpServer::Json(res, 200, "[]");
    });
    // /status/<code>: {"error","code"} with that status.
    server_.Get(R"(/status/(\d+))", [](const httplib::Request& req, httplib::Response& res) {
      const int status = std::stoi(req.matches[1]);
      testutil::FakeHttpServer::Json(
          res, status,
          json{{"error", "refused with " + std::to_string(status)}, {"code", "c"}}.dump());
    });
    server_.Get("/html", [](const httplib::Request&, httplib::Response& res) {
      res.status = 502;
      res.set_content("<html><body>Bad\ngateway</body></html>", "text/html");
    });
    server_.Get("/not-json", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("hello", "text/plain");
    });
    server_.Get("/no-content",
                [](const httplib::Request&, httplib::Response& res) { res.status = 204; });
    // A server that quotes the Authorization header back (it should not).
    server_.Get("/echo-key", [](const httplib::Request& req, httplib::Response& res) {
      testutil::FakeHttpServer::Json(
          res, 401,
          json{{"error", "bad key: " + req.get_header_value("Authorization")},
               {"code", "unauthorized"}}
              .dump());
    });
    server_.Start();
    client_ = MakeClient(server_.url() + "/");
  }

  testutil::FakeHttpServer server_;
  std::unique_ptr<ApiClient> client_;
};

TEST_F(ApiClientFakeServerTest, SendsBearerKeyAndJson) {
  auto projects = client_->ListProjects();
  ASSERT_TRUE(projects) << projects.error().message();
  EXPECT_EQ((*projects)[0]["name"], "web");
  auto created = client_->CreateProject("db");
  ASSERT_TRUE(created) << created.error().message();
  EXPECT_EQ(*created, json({{"name", "db"}}));

  const auto requests = server_.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].method, "GET");
  EXPECT_EQ(requests[0].path, "/api/projects");  // the trailing '/' of the URL is dropped
  EXPECT_EQ(requests[0].authorization, std::string("Bearer ") + kKey);
  EXPECT_TRUE(requests[0].user_agent.starts_with("kindling-cli")) << requests[0].user_agent;
  EXPECT_EQ(requests[1].method, "POST");
  EXPECT_EQ(requests[1].content_type, "application/json");
  EXPECT_EQ(json::parse(requests[1].body), json({{"name", "db"}}));
}

TEST_F(ApiClientFakeServerTest, EncodesQueryParameters) {
  auto events = client_->ListAuditEvents(AuditQuery{.action = "volume.backup.queue",
                                                    .resource_id = "a b&c=d",
                                                    .since = "2024-05-01T12:00:00+02:00",
                                                    .limit = 5});
  ASSERT_TRUE(events) << events.error().message();
  const auto requests = server_.requests();
  ASSERT_EQ(requests.size(), 1u);
  const auto& params = requests[0].params;
  EXPECT_EQ(params.find("action")->second, "volume.backup.queue");
  EXPECT_EQ(params.find("resource_id")->second, "a b&c=d");
  EXPECT_EQ(params.find("since")->second, "2024-05-01T12:00:00+02:00");
  EXPECT_EQ(params.find("limit")->second, "5");
  EXPECT_EQ(params.count("resource_type"), 0u);
}

TEST_F(ApiClientFakeServerTest, MapsStatusesToErrorKinds) {
  const std::pair<int, ErrorKind> cases[] = {
      {400, ErrorKind::kInvalidArgument},  {413, ErrorKind::kInvalidArgument},
      {401, ErrorKind::kPermissionDenied}, {403, ErrorKind::kPermissionDenied},
      {404, ErrorKind::kNotFound},         {409, ErrorKind::kFailedPrecondition},
      {503, ErrorKind::kTransient},        {500, ErrorKind::kInternal},
  };
  for (const auto& [status, kind] : cases) {
    auto answer = client_->Get("/status/" + std::to_string(status));
    ASSERT_FALSE(answer) << status;
    EXPECT_EQ(answer.error().kind(), kind) << status;
    EXPECT_TRUE(
        answer.error().message().starts_with("refused with " + std::to_string(status) + " (c)"))
        << answer.error().message();
  }
}

TEST_F(ApiClientFakeServerTest, OddAnswers) {
  auto html = client_->Get("/html");
  ASSERT_FALSE(html);
  EXPECT_EQ(html.error().kind(), ErrorKind::kTransient);
  EXPECT_NE(html.error().message().find("GET /html: HTTP 502: <html>"), std::string::npos)
      << html.error().message();
  EXPECT_EQ(html.error().message().find('\n'), std::string::npos);

  auto not_json = client_->Get("/not-json");
  ASSERT_FALSE(not_json);
  EXPECT_EQ(not_json.error().kind(), ErrorKind::kInternal);

  auto empty = client_->Get("/no-content");
  ASSERT_TRUE(empty) << empty.error().message();
  EXPECT_TRUE(empty->is_null());

  auto missing = client_->Get("/no-such-route");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().kind(), ErrorKind::kNotFound);
}

TEST_F(ApiClientFakeServerTest, KeyNeverInMessages) {
  auto answer = client_->Get("/echo-key");
  ASSERT_FALSE(answer);
  EXPECT_EQ(answer.error().kind(), ErrorKind::kPermissionDenied);
  EXPECT_EQ(answer.error().message().find(kKey), std::string::npos) << answer.error().message();
  EXPECT_NE(answer.error().message().find("(unauthorized)"), std::string::npos);
  EXPECT_NE(answer.error().message().find("KINDLING_API_KEY"), std::string::npos);
}

TEST_F(ApiClientFakeServerTest, ChecksIdsBeforeSending) {
  for (const std::string bad : {"", "../../api/meta", "not-a-uuid", "p1"}) {
    auto volume = client_->GetVolume(bad);
    ASSERT_FALSE(volume) << bad;
    EXPECT_EQ(volume.error().kind(), ErrorKind::kInvalidArgument);
    EXPECT_NE(volume.error().message().find("project id must be a UUID"), std::string::npos);
  }
  const std::string project = NewUuidV4();
  EXPECT_EQ(client_->QueueRestore(project, "nope").error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_EQ(client_->QueueMove(project, "nope").error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_EQ(client_->GetOperation("x").error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_EQ(client_->VerifyBackup(project, "nope").error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_EQ(client_->AdoptImage(project, "nope").error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_EQ(client_->ListProjectBackups("nope").error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_EQ(client_->DeleteVolume("nope").error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_EQ(client_->PurgeQuarantined("nope").error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_EQ(client_->PurgeQuarantined(NewUuidV4(), "nope").error().kind(),
            ErrorKind::kInvalidArgument);
  EXPECT_EQ(client_->Deploy("nope", DeployRequest{.image = "canary"}).error().kind(),
            ErrorKind::kInvalidArgument);
  auto no_image = client_->Deploy(project, DeployRequest{});
  ASSERT_FALSE(no_image);
  EXPECT_EQ(no_image.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_NE(no_image.error().message().find("needs an image"), std::string::npos);
  EXPECT_EQ(client_->ListDeployments("../x").error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_EQ(client_->StopWorkload("nope").error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_EQ(client_->StartWorkload("nope", "web").error().kind(), ErrorKind::kInvalidArgument);
  auto bad_filter = client_->ListPlatformQuarantine(QuarantineQuery{.server_id = "../x"});
  ASSERT_FALSE(bad_filter);
  EXPECT_NE(bad_filter.error().message().find("server id must be a UUID"), std::string::npos);
  EXPECT_EQ(client_->ListPlatformQuarantine(QuarantineQuery{.volume_id = "v"}).error().kind(),
            ErrorKind::kInvalidArgument);
  EXPECT_TRUE(server_.requests().empty());
}

TEST(ApiClientDataSafetyTest, CallsSendWhatTheRoutesTake) {
  testutil::FakeHttpServer server;
  auto echo = [](int status) {
    return [status](const httplib::Request& req, httplib::Response& res) {
      testutil::FakeHttpServer::Json(res, status, json{{"path", req.path}}.dump());
    };
  };
  server.Get(R"(/api/projects/[^/]+/backups)", echo(200));
  server.Post(R"(/api/projects/[^/]+/volume/backups/[^/]+/verify)", echo(202));
  server.Post(R"(/api/projects/[^/]+/volume/adopt-image)", echo(202));
  server.Get(R"(/api/projects/[^/]+/volume/quarantine)", echo(200));
  server.Delete(R"(/api/projects/[^/]+/volume/quarantine/[^/]+)", echo(200));
  server.Delete(R"(/api/projects/[^/]+/volume)",
                [](const httplib::Request&, httplib::Response& res) { res.status = 204; });
  server.Get("/api/platform/quarantine", echo(200));
  server.Delete(R"(/api/platform/quarantine/[^/]+)", echo(200));
  server.Get("/api/platform/volume-backup-stores", echo(200));
  server.Start();
  auto client = MakeClient(server.url());
  const std::string project = NewUuidV4();
  const std::string backup = NewUuidV4();
  const std::string entry = NewUuidV4();
  const std::string worker = NewUuidV4();

  ASSERT_TRUE(client->ListProjectBackups(project));
  ASSERT_TRUE(client->VerifyBackup(project, backup));
  ASSERT_TRUE(client->AdoptImage(project, entry));
  ASSERT_TRUE(client->ListVolumeQuarantine(project));
  ASSERT_TRUE(client->PurgeQuarantined(entry, project));
  auto deleted = client->DeleteVolume(project);
  ASSERT_TRUE(deleted) << deleted.error().message();
  EXPECT_TRUE(deleted->is_null());
  ASSERT_TRUE(client->ListPlatformQuarantine());
  ASSERT_TRUE(client->ListPlatformQuarantine(
      QuarantineQuery{.server_id = worker, .volume_id = backup, .status = "held"}));
  ASSERT_TRUE(client->PurgeQuarantined(entry));
  ASSERT_TRUE(client->ListBackupStores());

  const auto requests = server.requests();
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"GET", "/api/projects/" + project + "/backups"},
      {"POST", "/api/projects/" + project + "/volume/backups/" + backup + "/verify"},
      {"POST", "/api/projects/" + project + "/volume/adopt-image"},
      {"GET", "/api/projects/" + project + "/volume/quarantine"},
      {"DELETE", "/api/projects/" + project + "/volume/quarantine/" + entry},
      {"DELETE", "/api/projects/" + project + "/volume"},
      {"GET", "/api/platform/quarantine"},
      {"GET", "/api/platform/quarantine"},
      {"DELETE", "/api/platform/quarantine/" + entry},
      {"GET", "/api/platform/volume-backup-stores"},
  };
  ASSERT_EQ(requests.size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(requests[i].method, expected[i].first) << i;
    EXPECT_EQ(requests[i].path, expected[i].second) << i;
  }
  EXPECT_EQ(json::parse(requests[1].body), json::object());
  EXPECT_EQ(json::parse(requests[2].body), json({{"quarantine_id", entry}}));
  EXPECT_TRUE(requests[6].params.empty());
  EXPECT_EQ(requests[7].params.find("server_id")->second, worker);
  EXPECT_EQ(requests[7].params.find("volume_id")->second, backup);
  EXPECT_EQ(requests[7].params.find("status")->second, "held");
}

TEST(ApiClientWorkloadTest, CallsSendWhatTheRoutesTake) {
  testutil::FakeHttpServer server;
  auto echo = [](int status) {
    return [status](const httplib::Request& req, httplib::Response& res) {
      testutil::FakeHttpServer::Json(res, status, json{{"path", req.path}}.dump());
    };
  };
  server.Post(R"(/api/projects/[^/]+/deploy)", echo(202));
  server.Get(R"(/api/projects/[^/]+/deployments)", echo(200));
  server.Post(R"(/api/projects/[^/]+/(stop|start))", echo(202));
  server.Start();
  auto client = MakeClient(server.url());
  const std::string project = NewUuidV4();

  ASSERT_TRUE(client->Deploy(project, DeployRequest{.image = "canary"}));
  ASSERT_TRUE(client->Deploy(project, DeployRequest{.image = "canary",
                                                    .service = "api",
                                                    .memory_mib = 256,
                                                    .vcpus = 2,
                                                    .boot_timeout_seconds = 90,
                                                    .stop_timeout_seconds = 5}));
  ASSERT_TRUE(client->ListDeployments(project));
  ASSERT_TRUE(client->StopWorkload(project));
  ASSERT_TRUE(client->StartWorkload(project, "api"));

  const auto requests = server.requests();
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"POST", "/api/projects/" + project + "/deploy"},
      {"POST", "/api/projects/" + project + "/deploy"},
      {"GET", "/api/projects/" + project + "/deployments"},
      {"POST", "/api/projects/" + project + "/stop"},
      {"POST", "/api/projects/" + project + "/start"},
  };
  ASSERT_EQ(requests.size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(requests[i].method, expected[i].first) << i;
    EXPECT_EQ(requests[i].path, expected[i].second) << i;
  }
  // Unset fields are left to the API's defaults.
  EXPECT_EQ(json::parse(requests[0].body), json({{"image", "canary"}}));
  EXPECT_EQ(json::parse(requests[1].body), json({{"image", "canary"},
                                                 {"service", "api"},
                                                 {"memory_mib", 256},
                                                 {"vcpus", 2},
                                                 {"boot_timeout_seconds", 90},
                                                 {"stop_timeout_seconds", 5}}));
  EXPECT_EQ(json::parse(requests[3].body), json::object());
  EXPECT_EQ(json::parse(requests[4].body), json({{"service", "api"}}));
}

TEST(ApiClientCreateTest, RefusesBadUrlsAndKeys) {
  for (const std::string url : {"", "ftp://host", "127.0.0.1:8080", "http://", "http:///x"}) {
    auto client =
        ApiClient::Create(ApiClientOptions{.base_url = url, .api_key = Secret::FromView(kKey)});
    ASSERT_FALSE(client) << url;
    EXPECT_EQ(client.error().kind(), ErrorKind::kInvalidArgument);
  }
  for (const std::string key : {"", "two words", "line\nbreak"}) {
    auto client = ApiClient::Create(
        ApiClientOptions{.base_url = "http://h", .api_key = Secret::FromView(key)});
    ASSERT_FALSE(client);
    EXPECT_EQ(client.error().kind(), ErrorKind::kInvalidArgument);
  }
  const std::string secret = "kdl_but with a space";
  auto client = ApiClient::Create(
      ApiClientOptions{.base_url = "http://h", .api_key = Secret::FromView(secret)});
  ASSERT_FALSE(client);
  EXPECT_EQ(client.error().message().find(secret), std::string::npos);
}

TEST(ApiClientUnreachableTest, SaysWhichUrlCannotBeReached) {
  const std::string url = "http://127.0.0.1:" + std::to_string(testutil::ClosedPort());
  auto client = MakeClient(url);
  auto projects = client->ListProjects();
  ASSERT_FALSE(projects);
  EXPECT_EQ(projects.error().kind(), ErrorKind::kTransient);
  EXPECT_TRUE(projects.error().message().starts_with("cannot reach the API at " + url))
      << projects.error().message();
  EXPECT_EQ(projects.error().message().find(kKey), std::string::npos);
}

// The real API server on a throwaway PostgreSQL.
class ApiClientServerTest : public db::DbTest {
 protected:
  void SetUp() override {
    DbTest::SetUp();
    if (HasFatalFailure()) return;
    auto boot = Must([&](db::Tx& tx) {
      return db::BootstrapPlatformAdmin(tx, "admin@example.com", "Admin", "acme");
    });
    ASSERT_TRUE(boot);
    admin_key_ = std::string(boot->api_key.secret.Reveal());
    server_ = std::make_unique<api::ApiServer>(db(), master_key_);
    ASSERT_TRUE(server_->Start());
    url_ = "http://127.0.0.1:" + std::to_string(server_->port());
    client_ = MakeClient(url_, admin_key_);
  }
  void TearDown() override {
    client_.reset();  // its idle connections first: the server waits for them
    server_.reset();
  }

  crypto::Key master_key_ = crypto::RandomKey();
  std::string admin_key_;
  std::string url_;
  std::unique_ptr<api::ApiServer> server_;
  std::unique_ptr<ApiClient> client_;
};

TEST_F(ApiClientServerTest, ProjectsVolumesAndRefusals) {
  auto created = client_->CreateProject("web");
  ASSERT_TRUE(created) << created.error().message();
  const std::string project = created->value("id", "");
  ASSERT_TRUE(IsUuid(project));
  auto listed = client_->ListProjects();
  ASSERT_TRUE(listed) << listed.error().message();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0]["id"], project);

  // No worker yet: the volume cannot be placed (409).
  auto volume = client_->PutVolume(project, VolumeSettings{.size_gb = 1});
  ASSERT_FALSE(volume);
  EXPECT_EQ(volume.error().kind(), ErrorKind::kFailedPrecondition);
  EXPECT_TRUE(volume.error().message().ends_with("(volume_unavailable)"))
      << volume.error().message();

  MakeServer("w1");
  auto bad_size = client_->PutVolume(project, VolumeSettings{.size_gb = 0});
  ASSERT_FALSE(bad_size);
  EXPECT_EQ(bad_size.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_TRUE(bad_size.error().message().ends_with("(validation_error)"));
  volume = client_->PutVolume(project, VolumeSettings{.size_gb = 2, .backup_schedule = "daily"});
  ASSERT_TRUE(volume) << volume.error().message();
  EXPECT_EQ((*volume)["size_gb"], 2);
  EXPECT_EQ((*volume)["backup_policy"]["schedule"], "daily");

  // No backup store configured yet.
  auto backup = client_->QueueBackup(project);
  ASSERT_FALSE(backup);
  EXPECT_EQ(backup.error().kind(), ErrorKind::kFailedPrecondition);
  EXPECT_TRUE(backup.error().message().ends_with("(backup_store_unavailable)"));

  auto missing = client_->GetVolume(NewUuidV4());
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().kind(), ErrorKind::kNotFound);
  EXPECT_TRUE(missing.error().message().ends_with("(not_found)"));
}

TEST_F(ApiClientServerTest, WorkloadRoutes) {
  auto created = client_->CreateProject("Shop Front");
  ASSERT_TRUE(created) << created.error().message();
  const std::string project = created->value("id", "");

  // No volume: a workload runs where its volume is.
  auto refused = client_->Deploy(project, DeployRequest{.image = "canary"});
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().kind(), ErrorKind::kFailedPrecondition);
  EXPECT_TRUE(refused.error().message().ends_with("(volume_unavailable)"))
      << refused.error().message();
  auto none = client_->StopWorkload(project);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().kind(), ErrorKind::kNotFound);

  // A worker whose runtime has the canary image holds the volume.
  const std::string worker = MakeServer("w1", "qemu-microvm-tcg");
  ASSERT_TRUE(Must([&](db::Tx& tx) {
    return db::UpsertComponentStatus(
        tx, db::ComponentStatusUpdate{
                .server_id = worker,
                .component = "worker",
                .status = db::ComponentHealth::kHealthy,
                .metadata_json = R"({"runtime": "qemu-microvm-tcg", "images": ["canary"]})"});
  }));
  ASSERT_TRUE(client_->PutVolume(project, VolumeSettings{.size_gb = 1}));

  auto unknown = client_->Deploy(project, DeployRequest{.image = "nginx"});
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_NE(unknown.error().message().find("it has: canary"), std::string::npos)
      << unknown.error().message();
  EXPECT_TRUE(unknown.error().message().ends_with("(validation_error)"));
  auto small = client_->Deploy(project, DeployRequest{.image = "canary", .memory_mib = 64});
  ASSERT_FALSE(small);
  EXPECT_EQ(small.error().kind(), ErrorKind::kInvalidArgument);

  auto deployed = client_->Deploy(
      project, DeployRequest{.image = "canary", .memory_mib = 256, .boot_timeout_seconds = 90});
  ASSERT_TRUE(deployed) << deployed.error().message();
  const std::string first = deployed->value("id", "");
  EXPECT_TRUE(IsUuid(first));
  EXPECT_EQ((*deployed)["service"], "web");
  EXPECT_EQ((*deployed)["status"], "pending");
  EXPECT_EQ((*deployed)["memory_mib"], 256);
  EXPECT_EQ((*deployed)["vcpus"], 1);
  EXPECT_EQ((*deployed)["boot_timeout_seconds"], 90);
  EXPECT_EQ((*deployed)["instance"]["server_id"], worker);

  auto stopped = client_->StopWorkload(project);
  ASSERT_TRUE(stopped) << stopped.error().message();
  EXPECT_EQ((*stopped)["id"], first);
  EXPECT_EQ((*stopped)["desired_state"], "stopped");
  auto other = client_->StartWorkload(project, "api");
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().kind(), ErrorKind::kNotFound);
  EXPECT_TRUE(other.error().message().ends_with("(not_found)"));
  auto started = client_->StartWorkload(project, "web");
  ASSERT_TRUE(started) << started.error().message();
  EXPECT_EQ((*started)["desired_state"], "running");

  auto second = client_->Deploy(project, DeployRequest{.image = "canary"});
  ASSERT_TRUE(second) << second.error().message();
  auto listed = client_->ListDeployments(project);
  ASSERT_TRUE(listed) << listed.error().message();
  ASSERT_EQ(listed->size(), 2u) << listed->dump();
  EXPECT_EQ((*listed)[0]["id"], (*second)["id"]);
  EXPECT_EQ((*listed)[1]["id"], first);
  EXPECT_FALSE((*listed)[1]["superseded_at"].is_null());
  EXPECT_EQ(client_->ListDeployments(NewUuidV4()).error().kind(), ErrorKind::kNotFound);
}

TEST_F(ApiClientServerTest, WrongKeyIsPermissionDenied) {
  const std::string wrong = "kdl_" + std::string(64, '7');
  auto client = MakeClient(url_, wrong);
  auto projects = client->ListProjects();
  ASSERT_FALSE(projects);
  EXPECT_EQ(projects.error().kind(), ErrorKind::kPermissionDenied);
  EXPECT_NE(projects.error().message().find("(unauthorized)"), std::string::npos);
  EXPECT_EQ(projects.error().message().find(wrong), std::string::npos);
}

TEST_F(ApiClientServerTest, SettingsAuditAndKeys) {
  testutil::TempDir store;
  auto saved = client_->PutBackupSettings(json{{"local_directory", store.path().string()}});
  ASSERT_TRUE(saved) << saved.error().message();
  EXPECT_EQ((*saved)["store"]["ready"], true);
  auto probe = client_->TestBackupSettings();
  ASSERT_TRUE(probe) << probe.error().message();
  EXPECT_EQ((*probe)["ok"], true);
  auto relative = client_->PutBackupSettings(json{{"local_directory", "relative"}});
  ASSERT_FALSE(relative);
  EXPECT_EQ(relative.error().kind(), ErrorKind::kInvalidArgument);

  auto events = client_->ListAuditEvents(AuditQuery{.limit = 10});
  ASSERT_TRUE(events) << events.error().message();
  ASSERT_FALSE(events->empty());
  auto bad_limit = client_->ListAuditEvents(AuditQuery{.limit = 0});
  ASSERT_FALSE(bad_limit);
  EXPECT_EQ(bad_limit.error().kind(), ErrorKind::kInvalidArgument);

  auto key = client_->CreateApiKey("ci");
  ASSERT_TRUE(key) << key.error().message();
  auto keys = client_->ListApiKeys();
  ASSERT_TRUE(keys) << keys.error().message();
  EXPECT_EQ(keys->size(), 2u);
  auto servers = client_->ListServers(/*all=*/true);
  ASSERT_TRUE(servers) << servers.error().message();
  EXPECT_TRUE(servers->is_array());
}

TEST_F(ApiClientServerTest, DataSafetyRoutes) {
  auto created = client_->CreateProject("web");
  ASSERT_TRUE(created) << created.error().message();
  const std::string project = created->value("id", "");

  auto backups = client_->ListProjectBackups(project);
  ASSERT_TRUE(backups) << backups.error().message();
  EXPECT_EQ(*backups, json::array());
  auto held = client_->ListVolumeQuarantine(project);
  ASSERT_TRUE(held) << held.error().message();
  EXPECT_EQ(*held, json::array());
  auto all = client_->ListPlatformQuarantine(QuarantineQuery{.status = "held"});
  ASSERT_TRUE(all) << all.error().message();
  EXPECT_EQ(*all, json::array());
  auto bad_status = client_->ListPlatformQuarantine(QuarantineQuery{.status = "lost"});
  ASSERT_FALSE(bad_status);
  EXPECT_EQ(bad_status.error().kind(), ErrorKind::kInvalidArgument);
  auto unknown = client_->PurgeQuarantined(NewUuidV4());
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().kind(), ErrorKind::kNotFound);

  // No volume yet: nothing to verify, adopt into or delete.
  auto verify = client_->VerifyBackup(project, NewUuidV4());
  ASSERT_FALSE(verify);
  EXPECT_EQ(verify.error().kind(), ErrorKind::kNotFound);
  EXPECT_TRUE(verify.error().message().ends_with("(not_found)")) << verify.error().message();
  EXPECT_EQ(client_->DeleteVolume(project).error().kind(), ErrorKind::kNotFound);

  MakeServer("w1");
  ASSERT_TRUE(client_->PutVolume(project, VolumeSettings{.size_gb = 1}));
  auto adopt = client_->AdoptImage(project, NewUuidV4());
  ASSERT_FALSE(adopt);
  EXPECT_EQ(adopt.error().kind(), ErrorKind::kNotFound);
  verify = client_->VerifyBackup(project, NewUuidV4());
  ASSERT_FALSE(verify);
  EXPECT_EQ(verify.error().kind(), ErrorKind::kNotFound);
  EXPECT_NE(verify.error().message().find("does not exist"), std::string::npos);
  auto deleted = client_->DeleteVolume(project);
  ASSERT_TRUE(deleted) << deleted.error().message();
  EXPECT_TRUE(deleted->is_null());  // 204: no pre-delete backup asked for
  EXPECT_EQ(client_->GetVolume(project).error().kind(), ErrorKind::kNotFound);

  // The store history records each store the settings selected.
  testutil::TempDir first, second;
  ASSERT_TRUE(client_->PutBackupSettings(json{{"local_directory", first.path().string()}}));
  ASSERT_TRUE(client_->PutBackupSettings(json{{"local_directory", second.path().string()}}));
  auto both = client_->PutBackupSettings(
      json{{"local_directory", first.path().string()}, {"s3_bucket", "b"}});
  ASSERT_FALSE(both);
  EXPECT_EQ(both.error().kind(), ErrorKind::kInvalidArgument);
  auto stores = client_->ListBackupStores();
  ASSERT_TRUE(stores) << stores.error().message();
  ASSERT_EQ(stores->size(), 2u) << stores->dump();
  std::vector<std::string> urls;
  for (const json& store : *stores) urls.push_back(store.value("storage_url", ""));
  std::sort(urls.begin(), urls.end());
  std::vector<std::string> expected = {"file://" + first.path().string(),
                                       "file://" + second.path().string()};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(urls, expected);
}

}  // namespace
}  // namespace kindling::client
