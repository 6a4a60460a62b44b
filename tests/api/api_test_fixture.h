// The API tests' fixture: a real ApiServer on an ephemeral port over a test
// database (db::DbTest), a platform admin, an org member and an org admin
// with their API keys, and a real HTTP client.
#pragma once

#include <gtest/gtest.h>
#include <httplib.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "api/api_server.h"
#include "common/ids.h"
#include "crypto/aead.h"
#include "db/auth.h"
#include "db/db_test_util.h"
#include "testutil/temp_dir.h"

namespace kindling::api {

using nlohmann::json;

struct Response {
  int status = 0;
  json body;
  std::string raw;
};

class ApiServerTest : public db::DbTest {
 protected:
  void SetUp() override {
    DbTest::SetUp();
    auto boot = Must([&](db::Tx& tx) {
      return db::BootstrapPlatformAdmin(tx, "admin@example.com", "Admin", "acme");
    });
    ASSERT_TRUE(boot);
    admin_key_ = std::string(boot->api_key.secret.Reveal());
    org_ = boot->organization.id;
    member_key_ = MakeUserKey("member@example.com", db::OrgRole::kMember);
    org_admin_key_ = MakeUserKey("orgadmin@example.com", db::OrgRole::kAdmin);
    server_ = std::make_unique<ApiServer>(db(), master_key_);
    ASSERT_TRUE(server_->Start());
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
  }
  void TearDown() override {
    client_.reset();
    server_.reset();
  }

  // Raw SQL as DbTest::Sql, then waits until the server's read cache has
  // counted the change (api/read_cache.h): a change over a connection of
  // the test's own reaches the API as another process's would.
  pqxx::result Sql(const std::string& sql) {
    pqxx::result result = DbTest::Sql(sql);
    if (server_) {
      const Status synced = server_->SyncChanges();
      EXPECT_TRUE(synced) << synced.error().message();
    }
    return result;
  }

  std::string MakeUserKey(const std::string& email, db::OrgRole role) {
    auto key = Must([&](db::Tx& tx) -> Result<db::CreatedApiKey> {
      KINDLING_ASSIGN_OR_RETURN(auto user,
                                db::CreateUser(tx, db::NewUser{.email = email, .name = email}));
      KINDLING_RETURN_IF_ERROR(db::SetMembership(tx, org_, user.id, role));
      return db::CreateApiKey(tx, user.id, "test");
    });
    return key ? std::string(key->secret.Reveal()) : "";
  }

  Response Send(const std::string& method, const std::string& path, const std::string& key,
                const std::string& body = "") {
    httplib::Headers headers;
    if (!key.empty()) headers.emplace("Authorization", "Bearer " + key);
    httplib::Result res = [&] {
      if (method == "GET") return client_->Get(path, headers);
      if (method == "POST") return client_->Post(path, headers, body, "application/json");
      if (method == "PUT") return client_->Put(path, headers, body, "application/json");
      return client_->Delete(path, headers);
    }();
    Response out;
    if (!res) {
      ADD_FAILURE() << method << " " << path << ": " << httplib::to_string(res.error());
      return out;
    }
    out.status = res->status;
    out.raw = res->body;
    all_answers_ += res->body;
    out.body = json::parse(res->body, nullptr, false);
    return out;
  }

  std::string CreateProject(const std::string& name = "web") {
    auto r = Send("POST", "/api/projects", admin_key_, json{{"name", name}}.dump());
    EXPECT_EQ(r.status, 201) << r.raw;
    return r.body.value("id", "");
  }

  std::string State() {
    std::string out;
    for (const auto& row : Sql("SELECT status, coalesce(server_id::text,''), updated_at::text, "
                               "coalesce(deleted_at::text,'') FROM project_volumes ORDER BY id")) {
      for (const auto& field : row) out += field.as<std::string>() + "|";
    }
    out += Sql("SELECT count(*) FROM project_volume_operations")[0][0].as<std::string>() + ";";
    out += Sql("SELECT count(*) FROM project_volume_backups")[0][0].as<std::string>() + ";";
    out += Sql("SELECT count(*) FROM cluster_audit_events")[0][0].as<std::string>() + ";";
    out += Sql("SELECT count(*) || '/' || count(*) FILTER (WHERE desired_state = 'running') FROM "
               "deployments")[0][0]
               .as<std::string>() +
           ";";
    out += Sql("SELECT count(*) FROM deployment_instances")[0][0].as<std::string>();
    return out;
  }

  // The request is refused with `status`/`code` and changes nothing.
  void ExpectRefused(const std::string& method, const std::string& path, const std::string& key,
                     const std::string& body, int status, const std::string& code) {
    const std::string before = State();
    Response r = Send(method, path, key, body);
    EXPECT_EQ(r.status, status) << method << " " << path << ": " << r.raw;
    ASSERT_TRUE(r.body.is_object()) << r.raw;
    EXPECT_EQ(r.body.value("code", ""), code) << r.raw;
    EXPECT_FALSE(r.body.value("error", "").empty()) << r.raw;
    EXPECT_EQ(State(), before) << method << " " << path;
  }

  void ConfigureLocalStore() {
    auto r = Send("PUT", "/api/platform/volume-backup-settings", admin_key_,
                  json{{"local_directory", store_dir_.path().string()}}.dump());
    ASSERT_EQ(r.status, 200) << r.raw;
    EXPECT_TRUE(r.body["store"]["ready"].get<bool>()) << r.raw;
  }

  crypto::Key master_key_ = crypto::RandomKey();
  testutil::TempDir store_dir_;
  std::string admin_key_, member_key_, org_admin_key_, org_;
  std::unique_ptr<ApiServer> server_;
  std::unique_ptr<httplib::Client> client_;
  std::string all_answers_;
};

}  // namespace kindling::api
