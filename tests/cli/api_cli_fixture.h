// Fixture for end-to-end tests of the API commands: the kindling binary (run
// as a subprocess) against an in-process ApiServer and Worker on a throwaway
// PostgreSQL, with a platform admin whose key is in the binary's environment.
// The worker's state (volume images, quarantine) lives in a temp dir; tests
// write into its image files to give volumes data. Header-only so that every
// tests/cli/*_test.cc can derive from it (the layer's test target globs
// *_test.cc).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "api/api_server.h"
#include "cli_harness.h"
#include "common/ids.h"
#include "db/db_test_util.h"
#include "reconcile/worker.h"
#include "service/serve.h"
#include "testutil/temp_dir.h"

namespace kindling::clitest {

using nlohmann::json;
using std::chrono::milliseconds;

// Polls `done` every 20 ms until it holds or `timeout` passed.
inline bool WaitFor(const std::function<bool()>& done, std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(milliseconds(20));
  }
  return done();
}

inline bool HasId(const json& items, const std::string& id) {
  if (!items.is_array()) return false;
  for (const json& item : items) {
    if (item.value("id", "") == id) return true;
  }
  return false;
}

class ApiCliTest : public db::DbTest {
 protected:
  void SetUp() override {
    DbTest::SetUp();
    if (HasFatalFailure()) return;
    auto boot = Must([&](db::Tx& tx) {
      return db::BootstrapPlatformAdmin(tx, "ops@example.com", "Ops", "acme");
    });
    ASSERT_TRUE(boot);
    key_ = std::string(boot->api_key.secret.Reveal());
    org_ = boot->organization.id;
    server_ = std::make_unique<api::ApiServer>(db(), master_key_);
    ASSERT_TRUE(server_->Start());
    url_ = "http://127.0.0.1:" + std::to_string(server_->port());
    stores_ = service::MakeClusterStoreProvider(db(), master_key_);
    StartWorker();
  }

  void TearDown() override {
    if (worker_) worker_->Stop();
    worker_.reset();
    server_.reset();
    stores_.reset();
    // Nothing the commands printed may hold the admin's API key.
    EXPECT_EQ(transcript_.find(key_), std::string::npos);
  }

  void StartWorker() {
    if (worker_) worker_->Stop();
    reconcile::WorkerOptions o;
    o.server_id = server_id_;
    o.hostname = "w1";
    o.state_dir = dir_.path() / "w1";
    o.heartbeat_interval = milliseconds(200);
    o.sweep_interval = milliseconds(200);
    o.lease_duration = milliseconds(3000);
    o.lease_renew_interval = milliseconds(500);
    o.progress_interval = milliseconds(100);
    o.engine_threads = 2;
    o.dsn_sha256 = service::DsnDigest(dsn());
    worker_ = std::make_unique<reconcile::Worker>(db(), *stores_, o);
    auto started = worker_->Start();
    ASSERT_TRUE(started) << started.error().message();
  }

  // Runs kindling with the API's URL and the admin key in the environment
  // (`env` entries override them); keeps everything it printed.
  RunResult Kindling(const std::vector<std::string>& args, const Env& env = {}) {
    Env full = {{"KINDLING_URL", url_}, {"KINDLING_API_KEY", key_}, {"AWS_SECRET_ACCESS_KEY", ""}};
    for (const auto& [name, value] : env) {
      bool replaced = false;
      for (auto& entry : full) {
        if (entry.first == name) {
          entry.second = value;
          replaced = true;
        }
      }
      if (!replaced) full.emplace_back(name, value);
    }
    RunResult result = RunKindling(args, full);
    transcript_ += result.out + result.err;
    return result;
  }

  // Expects exit 0 and returns the --json answer.
  json Ok(std::vector<std::string> args, const Env& env = {}) {
    args.push_back("--json");
    RunResult result = Kindling(args, env);
    EXPECT_EQ(result.exit_code, 0) << result.Describe();
    json answer = result.Json();
    EXPECT_FALSE(answer.is_discarded()) << result.Describe();
    return answer;
  }

  // Expects `exit_code` and an error line on stderr containing `text`.
  RunResult Fails(const std::vector<std::string>& args, int exit_code, const std::string& text,
                  const Env& env = {}) {
    RunResult result = Kindling(args, env);
    EXPECT_EQ(result.exit_code, exit_code) << result.Describe();
    EXPECT_NE(result.err.find("kindling: error: "), std::string::npos) << result.Describe();
    EXPECT_NE(result.err.find(text), std::string::npos) << result.Describe();
    return result;
  }

  void ConfigureLocalStore() {
    const std::string store = (dir_.path() / "bucket").string();
    json saved = Ok({"settings", "backup", "set", "--local-directory", store});
    EXPECT_EQ(saved["local_directory"], store);
    EXPECT_EQ(saved["store"]["ready"], true) << saved.dump();
  }

  // A project with a 1 GiB volume on the worker, its image made.
  std::pair<std::string, std::string> MakeProjectWithVolume(const std::string& name) {
    json project = Ok({"project", "create", "--name", name});
    const std::string project_id = project.value("id", "");
    json volume = Ok({"volume", "create", "--project", project_id, "--size-gb", "1"});
    EXPECT_EQ(volume["server_id"], server_id_) << volume.dump();
    EXPECT_EQ(volume["size_gb"], 1);
    const std::string volume_id = volume.value("id", "");
    EXPECT_TRUE(
        WaitFor([&] { return fs::exists(worker_->ImageOf(volume_id)); }, std::chrono::seconds(30)));
    return {project_id, volume_id};
  }

  testutil::TempDir dir_;
  crypto::Key master_key_ = crypto::RandomKey();
  std::string key_, org_, url_;
  const std::string server_id_ = NewUuidV4();
  std::unique_ptr<api::ApiServer> server_;
  std::unique_ptr<reconcile::BackupStoreProvider> stores_;
  std::unique_ptr<reconcile::Worker> worker_;
  std::string transcript_;
};

// True when the S3 test server (s3rver) is installed; tests that need it skip
// without it.
}  // namespace kindling::clitest
