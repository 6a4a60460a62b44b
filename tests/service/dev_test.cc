// `kindling dev` end to end with real processes: the built binary starts a
// private PostgreSQL, one API process and two worker processes; the test
// drives the runbook's volume section through the HTTP API against the S3
// test server, SIGKILLs a worker during a backup and during a restore, checks
// the validation checklist, greps every log for secrets, stops everything
// with SIGTERM and starts again on the same state directory.
#include "service/dev.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "dev_process.h"
#include "service/child_process.h"
#include "testutil/s3_test_server.h"
#include "testutil/temp_dir.h"

namespace kindling::service {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::seconds;

constexpr std::uint64_t kMiB = 1024 * 1024;

std::string FileSha256(const fs::path& path) { return testutil::Sha256OfFile(path); }

class DevEndToEndTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The postgres user must reach the cluster inside the temp dir.
    ::chmod(dir_.path().c_str(), 0755);
    state_ = dir_ / "state";
  }

  json Call(const std::string& method, const std::string& path, const json& body = nullptr,
            int expect_status = 0) {
    httplib::Client client("127.0.0.1", dev_->port());
    client.set_read_timeout(30, 0);
    const httplib::Headers headers = {
        {"Authorization", "Bearer " + dev_->value("KINDLING_API_KEY")}};
    const std::string payload = body.is_null() ? "" : body.dump();
    httplib::Result res = method == "GET" ? client.Get(path, headers)
                          : method == "POST"
                              ? client.Post(path, headers, payload, "application/json")
                          : method == "PUT" ? client.Put(path, headers, payload, "application/json")
                                            : client.Delete(path, headers);
    if (!res) {
      ADD_FAILURE() << method << " " << path << ": no answer";
      return json();
    }
    if (expect_status != 0) {
      EXPECT_EQ(res->status, expect_status) << method << " " << path << ": " << res->body;
    } else {
      EXPECT_LT(res->status, 300) << method << " " << path << ": " << res->body;
    }
    answers_ += res->body + "\n";
    return res->body.empty() ? json() : json::parse(res->body);
  }

  std::string WorkerName(const std::string& server_id) {
    for (int i = 1; i <= 2; ++i) {
      const std::string name = "worker-" + std::to_string(i);
      std::string id = ReadAll(state_ / name / "server-id");
      while (!id.empty() && std::isspace(static_cast<unsigned char>(id.back()))) id.pop_back();
      if (id == server_id) return name;
    }
    ADD_FAILURE() << "no worker has server id " << server_id;
    return "";
  }
  std::string ServerIdOf(const std::string& worker) {
    std::string id = ReadAll(state_ / worker / "server-id");
    while (!id.empty() && std::isspace(static_cast<unsigned char>(id.back()))) id.pop_back();
    return id;
  }
  fs::path ImageOn(const std::string& worker, const std::string& volume_id) {
    return state_ / worker / "volumes" / (volume_id + ".img");
  }

  // Polls the operation until `done(op)` or the timeout; the last answer.
  template <typename Pred>
  json WaitOperation(const std::string& id, Pred done, std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    json op;
    while (Clock::now() < deadline) {
      op = Call("GET", "/api/operations/" + id);
      if (done(op)) return op;
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    return op;
  }
  static bool Terminal(const json& op) {
    return op.value("status", "") == "succeeded" || op.value("status", "") == "failed";
  }
  static bool Moving(const json& op) {
    if (Terminal(op)) return true;
    const json progress = op.value("progress", json::object());
    return op.value("status", "") == "running" &&
           progress.value("bytes_done", json()).is_number() &&
           progress["bytes_done"].get<std::uint64_t>() > 0;
  }

  // Queues `path` (a backup or restore), SIGKILLs `worker` once the operation
  // moves data, and waits for its end: it must come within 60 s.
  json RunAndKillWorker(const std::string& path, const json& body, const std::string& worker) {
    const json queued = Call("POST", path, body, 202);
    const std::string op_id = queued.value("id", "");
    const json moving = WaitOperation(op_id, Moving, seconds(60));
    EXPECT_FALSE(Terminal(moving)) << "finished before it could be interrupted: " << moving;
    const auto pid = ChildPid(state_ / worker);
    EXPECT_TRUE(pid.has_value()) << worker << " not found";
    if (pid) ::kill(*pid, SIGKILL);
    const auto killed_at = Clock::now();
    const json end = WaitOperation(op_id, Terminal, seconds(90));
    const auto took = std::chrono::duration_cast<seconds>(Clock::now() - killed_at);
    EXPECT_TRUE(Terminal(end)) << end;
    EXPECT_LE(took.count(), 60) << "the operation ended " << took.count() << " s after the kill";
    return end;
  }

  testutil::TempDir dir_;
  fs::path state_;
  std::unique_ptr<DevProcess> dev_;
  std::string answers_;  // every API answer, for the secrets grep
};

TEST_F(DevEndToEndTest, RunbookWithWorkerKillsSlow) {
  testutil::S3TestServerOptions s3_options;
  s3_options.access_key_id = "AKIADEVTESTKEY0000001";
  s3_options.secret_access_key = "dev-test-secret-7f1c9a2b4d6e8f00";
  testutil::S3TestServer s3(s3_options);
  dev_ = std::make_unique<DevProcess>(state_);
  const std::string api_key = dev_->value("KINDLING_API_KEY");
  ASSERT_FALSE(api_key.empty());
  EXPECT_NE(dev_->value("KINDLING_DSN").find("postgresql://"), std::string::npos);
  EXPECT_NE(ReadAll(state_ / "dev.env").find("KINDLING_API_KEY=" + api_key), std::string::npos);
  // The edge answers for itself, and with a 404 page for a hostname no
  // deployment has.
  {
    const std::string edge_url = dev_->value("KINDLING_EDGE_URL");
    ASSERT_TRUE(edge_url.starts_with("http://127.0.0.1:")) << edge_url;
    httplib::Client edge(edge_url);
    auto health = edge.Get("/_edge/healthz");
    ASSERT_TRUE(health);
    EXPECT_EQ(health->status, 200);
    auto unknown = edge.Get("/", {{"Host", "web-nothing.apps.test"}});
    ASSERT_TRUE(unknown);
    EXPECT_EQ(unknown->status, 404);
    EXPECT_NE(unknown->body.find("web-nothing.apps.test"), std::string::npos) << unknown->body;
  }

  // Runbook, volume section: cluster-wide backup credentials through the API.
  const json settings = {{"s3_bucket", s3_options.bucket},
                         {"s3_region", "us-east-1"},
                         {"s3_endpoint", s3.endpoint()},
                         {"s3_prefix", "kindling"},
                         {"s3_access_key_id", s3_options.access_key_id},
                         {"s3_secret_access_key", s3_options.secret_access_key}};
  Call("POST", "/api/platform/volume-backup-settings/test", settings);
  const json saved = Call("PUT", "/api/platform/volume-backup-settings", settings);
  EXPECT_EQ(saved.value("s3_secret_access_key", ""), "set");

  const json project = Call("POST", "/api/projects", {{"name", "runbook"}}, 201);
  const std::string project_path = "/api/projects/" + project.value("id", "");
  Call("PUT", project_path + "/volume", {{"size_gb", 1}});
  json volume;
  for (int i = 0; i < 200; ++i) {
    volume = Call("GET", project_path + "/volume");
    if (volume.value("health", "") == "healthy") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(volume.value("health", ""), "healthy") << volume;
  const std::string volume_id = volume.value("id", "");
  const std::string first = WorkerName(volume.value("server_id", ""));
  const std::string second = first == "worker-1" ? "worker-2" : "worker-1";
  const fs::path image = ImageOn(first, volume_id);
  ASSERT_TRUE(fs::exists(image));

  // Data worth interrupting: 256 MiB of random bytes past the filesystem's
  // metadata at the start of the image.
  {
    const int fd = ::open(image.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    std::mt19937_64 rng(7);
    std::vector<std::uint64_t> block(kMiB / 8);
    for (std::uint64_t i = 0; i < 256; ++i) {
      for (auto& word : block) word = rng();
      ASSERT_EQ(::pwrite(fd, block.data(), kMiB, static_cast<off_t>((512 + i) * kMiB)),
                static_cast<ssize_t>(kMiB));
    }
    ::fsync(fd);
    ::close(fd);
  }
  const std::string source_sha = FileSha256(image);

  // A backup whose worker is SIGKILLed mid-way ends (here: succeeds on the
  // restarted worker, reusing the chunks already uploaded) within 60 s.
  const json backup_op = RunAndKillWorker(project_path + "/volume/backups", json::object(), first);
  ASSERT_EQ(backup_op.value("status", ""), "succeeded") << backup_op;
  const std::string backup_id = backup_op.value("backup_id", "");
  const json backups = Call("GET", project_path + "/volume/backups");
  ASSERT_TRUE(backups.is_array() && !backups.empty());
  EXPECT_EQ(backups[0].value("id", ""), backup_id);
  EXPECT_EQ(backups[0].value("status", ""), "succeeded");
  EXPECT_EQ(backups[0]["metadata"].value("image_sha256", ""), testutil::ImageDigestOfFile(image));

  // A restore to the other worker, SIGKILLed mid-way, ends within 60 s.
  const json restore_op = RunAndKillWorker(
      project_path + "/volume/restore",
      {{"backup_id", backup_id}, {"target_server_id", ServerIdOf(second)}}, second);
  // Whatever that restore's outcome, a later restore is bit-identical: to the
  // second worker if the interrupted one failed, else back to the first.
  std::string holder = restore_op.value("status", "") == "succeeded" ? second : first;
  const std::string target = holder == first ? second : first;
  volume = Call("GET", project_path + "/volume");
  EXPECT_EQ(volume.value("server_id", ""), ServerIdOf(holder)) << volume << "\n" << restore_op;
  EXPECT_EQ(volume.value("status", ""), "detached") << volume;
  const json again =
      Call("POST", project_path + "/volume/restore",
           {{"backup_id", backup_id}, {"target_server_id", ServerIdOf(target)}}, 202);
  const json done = WaitOperation(again.value("id", ""), Terminal, seconds(120));
  ASSERT_EQ(done.value("status", ""), "succeeded")
      << done << "\nafter the interrupted restore " << restore_op << "\nworker logs:\n"
      << FileTail(state_ / "logs" / (target + ".log"), 3000);
  EXPECT_EQ(FileSha256(ImageOn(target, volume_id)), source_sha);
  // The previous holder removes its copy once the volume moved.
  for (int i = 0; i < 100 && fs::exists(ImageOn(holder, volume_id)); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(fs::exists(ImageOn(holder, volume_id)));
  volume = Call("GET", project_path + "/volume");
  EXPECT_EQ(volume.value("server_id", ""), ServerIdOf(target));
  EXPECT_EQ(volume.value("last_error", json()), json()) << volume;

  // Validation checklist: /api/meta answers; /api/servers lists both
  // workers with healthy heartbeats (the killed ones came back).
  Call("GET", "/api/meta");
  bool healthy = false;
  for (int i = 0; i < 150 && !healthy; ++i) {
    const json servers = Call("GET", "/api/platform/servers");
    int ok = 0;
    for (const json& server : servers)
      if (server.value("heartbeat_health", "") == "healthy" &&
          server.value("health", "") == "healthy")
        ++ok;
    healthy = ok == 2;
    if (!healthy) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_TRUE(healthy);
  const json org_servers = Call("GET", "/api/servers");
  EXPECT_TRUE(org_servers.is_array());
  const std::string admin_id = Call("GET", "/api/me")["user"].value("id", "");
  ASSERT_FALSE(admin_id.empty());
  const json audit = Call("GET", "/api/platform/audit-events?limit=200");
  EXPECT_NE(audit.dump().find("volume_backup_settings.update"), std::string::npos);

  // SIGTERM stops every process it started.
  const auto status = dev_->Terminate(seconds(90));
  ASSERT_TRUE(status.has_value()) << "kindling dev did not stop";
  EXPECT_EQ(*status, 0) << FileTail(dev_->log(), 2000);
  EXPECT_FALSE(ChildPid(state_ / "api").has_value());
  EXPECT_FALSE(ChildPid(state_ / "worker-1").has_value());
  EXPECT_FALSE(fs::exists(state_ / "postgres" / "data" / "postmaster.pid"));

  // Secrets never appear in API answers or any log.
  std::string logs = ReadAll(dev_->log()) + ReadAll(dev_->log().string() + ".previous");
  for (const auto& entry : fs::directory_iterator(state_ / "logs")) logs += ReadAll(entry.path());
  EXPECT_GT(logs.size(), 1000u);
  for (const std::string& secret : {s3_options.secret_access_key, s3_options.access_key_id}) {
    EXPECT_EQ(logs.find(secret), std::string::npos) << "secret in a log";
    EXPECT_EQ(answers_.find(secret), std::string::npos) << "secret in an API answer";
  }
  // The dev admin's key is printed once on stdout (dev.log here) by design,
  // and never by the API or workers.
  std::string child_logs;
  for (const auto& entry : fs::directory_iterator(state_ / "logs"))
    child_logs += ReadAll(entry.path());
  EXPECT_EQ(child_logs.find(api_key), std::string::npos);

  // What an operator reads: each process's startup line, an access log line
  // per request naming its route template and user, and each operation's
  // start and end on the worker that ran it.
  const std::string api_log = ReadAll(state_ / "logs" / "api.log");
  for (const std::string line :
       {"kindling serve ", " started: server ", "components api", ", backup store "}) {
    EXPECT_NE(api_log.find(line), std::string::npos) << line << " not in the API's log";
  }
  EXPECT_NE(api_log.find("route=\"/api/projects/{id}/volume\" status=200"), std::string::npos);
  EXPECT_NE(api_log.find("user_id=" + admin_id), std::string::npos);
  const std::string& worker_logs = child_logs;  // a restarted worker's earlier log included
  const std::string backup_id_op = backup_op.value("id", "");
  EXPECT_NE(worker_logs.find("worker: running backup " + backup_id_op + " on volume " + volume_id),
            std::string::npos);
  EXPECT_NE(worker_logs.find("worker: backup " + backup_id_op + " done"), std::string::npos);
  EXPECT_NE(worker_logs.find("worker: restore " + again.value("id", "") + " done"),
            std::string::npos);

  // A second start on the same state directory keeps the data and the key.
  dev_ = std::make_unique<DevProcess>(state_);
  EXPECT_EQ(dev_->value("KINDLING_API_KEY"), api_key);
  const json after = Call("GET", project_path + "/volume/backups");
  ASSERT_TRUE(after.is_array());
  EXPECT_EQ(after.size(), 1u);
  EXPECT_TRUE(fs::exists(ImageOn(target, volume_id)));
  ASSERT_TRUE(dev_->Terminate(seconds(90)).has_value());
}

// The README's second command: scripts/dev-walkthrough.sh against a running
// `kindling dev` backs a volume up and restores it to the other worker with
// the CLI's API commands.
TEST_F(DevEndToEndTest, ReadmeWalkthroughScriptSlow) {
  dev_ = std::make_unique<DevProcess>(state_);
  SpawnOptions spawn;
  spawn.args = {"/bin/bash", std::string(KINDLING_SOURCE_DIR) + "/scripts/dev-walkthrough.sh",
                "--state-dir", state_.string()};
  spawn.log_file = dir_ / "walkthrough.log";
  spawn.extra_env = {std::string("KINDLING_BIN=") + KINDLING_BINARY,
                     "KINDLING_URL=", "KINDLING_API_KEY="};
  spawn.drop_env_prefixes = {"KINDLING_URL=", "KINDLING_API_KEY="};
  auto status = RunToCompletion(spawn);
  ASSERT_TRUE(status);
  const std::string output = ReadAll(dir_ / "walkthrough.log");
  EXPECT_EQ(*status, 0) << output;
  EXPECT_NE(output.find("bit-identical: yes"), std::string::npos) << output;
  EXPECT_NE(output.find("old copy on the first worker removed"), std::string::npos) << output;
  EXPECT_EQ(output.find(dev_->value("KINDLING_API_KEY")), std::string::npos);
  ASSERT_TRUE(dev_->Terminate(seconds(90)).has_value());
}

TEST_F(DevEndToEndTest, RefusesASecondInstanceOnTheSameStateDir) {
  dev_ = std::make_unique<DevProcess>(state_);
  SpawnOptions spawn;
  spawn.args = {KINDLING_BINARY, "dev", "--state-dir", state_.string(), "--listen", "127.0.0.1:0"};
  spawn.log_file = dir_ / "second.log";
  auto status = RunToCompletion(spawn);
  ASSERT_TRUE(status);
  EXPECT_NE(*status, 0);
  EXPECT_NE(ReadAll(dir_ / "second.log").find("another kindling dev is running"),
            std::string::npos);
  ASSERT_TRUE(dev_->Terminate(seconds(90)).has_value());
}

TEST(DevOptionsTest, EnvironmentLinesCanBeSourcedByAShell) {
  EXPECT_EQ(ShellAssignment("KINDLING_URL", "http://127.0.0.1:8080"),
            "KINDLING_URL=http://127.0.0.1:8080");
  EXPECT_EQ(ShellAssignment("KINDLING_DSN", "postgresql:///k?host=/d&port=1"),
            "KINDLING_DSN='postgresql:///k?host=/d&port=1'");
  EXPECT_EQ(ShellAssignment("X", "it's"), "X='it'\\''s'");
}

TEST(DevOptionsTest, BadListenAddressIsRefusedBeforeStartingAnything) {
  testutil::TempDir dir;
  DevOptions options;
  options.state_dir = dir / "state";
  options.listen = "localhost";
  options.handle_signals = false;
  auto st = RunDev(options);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_FALSE(fs::exists(dir / "state"));
}

}  // namespace
}  // namespace kindling::service
