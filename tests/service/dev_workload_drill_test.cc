// Workloads on `kindling dev` with the canary guest the build made (the
// workers detect the VM runtime by trying it: QEMU microvm under TCG here):
// deploy, records written and checked through the edge, stop and start, a
// worker killed while its workload runs, and dev's stop ending every VM; the
// acceptance round: a backup and a validated restore onto the other worker,
// both stopping and starting the workload themselves.
// Runs in the optimised build only ("Drill"; the sanitizer build makes no
// guest).
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "dev_process.h"
#include "drill_util.h"

namespace kindling::service {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

class DevWorkloadDrillTest : public DevDrillTest {
 protected:
  // The project's newest deployment once `done` holds for it (the last
  // answer after `timeout`).
  json WaitDeployment(const std::string& project, const std::function<bool(const json&)>& done,
                      seconds timeout = seconds(90)) {
    json newest = json::object();
    for (const auto deadline = Clock::now() + timeout; Clock::now() < deadline;) {
      const json all = Call("GET", "/api/projects/" + project + "/deployments");
      if (all.is_array() && !all.empty()) {
        newest = all[0];
        if (done(newest)) break;
      }
      std::this_thread::sleep_for(milliseconds(200));
    }
    return newest;
  }

  // A request to the edge for `host`: status and body.
  std::pair<int, std::string> Edge(const std::string& method, const std::string& host,
                                   const std::string& path, const std::string& body = "") {
    httplib::Client client(dev_->value("KINDLING_EDGE_URL"));
    client.set_read_timeout(30, 0);
    const httplib::Headers headers = {{"Host", host}};
    auto res = method == "GET" ? client.Get(path, headers)
                               : client.Post(path, headers, body, "text/plain");
    if (!res) return {0, ""};
    return {res->status, res->body};
  }

  // The JSON answer of `path` once `host` answers it with 200 through the
  // edge (which learns of a started instance within seconds, not at once);
  // a failure showing the last answer otherwise.
  json EdgeJson(const std::string& host, const std::string& path, seconds timeout = seconds(30)) {
    std::pair<int, std::string> answer = Edge("GET", host, path);
    for (const auto deadline = Clock::now() + timeout;
         answer.first != 200 && Clock::now() < deadline; answer = Edge("GET", host, path)) {
      std::this_thread::sleep_for(milliseconds(200));
    }
    EXPECT_EQ(answer.first, 200) << path << ": " << answer.second;
    json parsed = json::parse(answer.second, nullptr, /*allow_exceptions=*/false);
    EXPECT_FALSE(parsed.is_discarded()) << path << ": " << answer.second;
    return parsed;
  }

  // The operation once it finished and its workload came back (or did not:
  // the last answer after `timeout`).
  json WaitForWorkloadBack(const std::string& id, seconds timeout = seconds(120)) {
    json op = WaitForOperation(id, timeout);
    for (const auto deadline = Clock::now() + timeout; Clock::now() < deadline;) {
      op = Call("GET", "/api/operations/" + id);
      if (op["result"].is_object() && op["result"].contains("workload_restarted")) break;
      std::this_thread::sleep_for(milliseconds(200));
    }
    return op;
  }

  // The project's volume once it is healthy.
  json HealthyVolume(const std::string& project) {
    json volume = json::object();
    for (int i = 0; i < 300 && volume.value("health", "") != "healthy"; ++i) {
      volume = Call("GET", "/api/projects/" + project + "/volume");
      std::this_thread::sleep_for(milliseconds(100));
    }
    return volume;
  }
};

TEST_F(DevWorkloadDrillTest, DeployThroughTheEdgeStopStartAndAKilledWorkerDrill) {
  const auto test_start = Clock::now();
  dev_ = std::make_unique<DevProcess>(state_);
  // Both workers found a VM runtime and the canary image.
  for (const json& server : Call("GET", "/api/platform/servers")) {
    EXPECT_TRUE(server.value("runtime", "").starts_with("qemu-microvm-")) << server.dump();
  }
  Call("PUT", "/api/meta", {{"service_base_domain", "apps.test"}});
  const std::string project = CreateProject("Shop Front");
  Call("PUT", "/api/projects/" + project + "/volume", {{"size_gb", 1}});
  json volume = json::object();
  for (int i = 0; i < 300 && volume.value("health", "") != "healthy"; ++i) {
    volume = Call("GET", "/api/projects/" + project + "/volume");
    std::this_thread::sleep_for(milliseconds(100));
  }
  ASSERT_EQ(volume.value("health", ""), "healthy") << volume;

  // Deployed: running on the volume's worker, answering through the edge.
  const auto deploy_start = Clock::now();
  const json deployed = Call("POST", "/api/projects/" + project + "/deploy", {{"image", "canary"}});
  const std::string host = deployed.value("hostname", "");
  EXPECT_EQ(host, "web-shop-front.apps.test");
  auto running = [](const json& d) { return d.value("status", "") == "running"; };
  json deployment = WaitDeployment(project, running);
  ASSERT_EQ(deployment.value("status", ""), "running") << deployment.dump();
  const auto deploy_took = std::chrono::duration_cast<milliseconds>(Clock::now() - deploy_start);
  EXPECT_EQ(deployment["instance"].value("server_id", ""), volume.value("server_id", ""));
  volume = Call("GET", "/api/projects/" + project + "/volume");
  EXPECT_EQ(volume.value("status", ""), "attached") << volume;
  EXPECT_EQ(volume.value("attached_vm_id", ""), deployment["instance"].value("vm_id", "?"));
  for (int i = 1; i <= 3; ++i) {
    const auto [status, body] = Edge("POST", host, "/records", "record " + std::to_string(i));
    EXPECT_EQ(status, 201) << body;
  }
  EXPECT_EQ(EdgeJson(host, "/records/verify"),
            (json{{"records", 3}, {"intact", 3}, {"damaged", json::array()}}));
  EXPECT_EQ(Edge("GET", "web-nothing.apps.test", "/healthz").first, 404);

  // Stopped: 503 at the edge, the volume detached; started: the records
  // are still there.
  Call("POST", "/api/projects/" + project + "/stop", json::object());
  deployment =
      WaitDeployment(project, [](const json& d) { return d.value("status", "") == "stopped"; });
  ASSERT_EQ(deployment.value("status", ""), "stopped") << deployment.dump();
  volume = Call("GET", "/api/projects/" + project + "/volume");
  EXPECT_EQ(volume.value("status", ""), "detached") << volume;
  EXPECT_TRUE(volume["attached_vm_id"].is_null()) << volume;
  for (int i = 0; i < 50 && Edge("GET", host, "/healthz").first != 503; ++i)
    std::this_thread::sleep_for(milliseconds(100));
  EXPECT_EQ(Edge("GET", host, "/healthz").first, 503);
  Call("POST", "/api/projects/" + project + "/start", json::object());
  deployment = WaitDeployment(project, running);
  ASSERT_EQ(deployment.value("status", ""), "running") << deployment.dump();
  EXPECT_EQ(EdgeJson(host, "/records/verify")["intact"], 3);

  // The worker holding the workload is killed: its successor (dev restarts
  // it) records the VM lost, ends the VMM it left behind and starts the
  // workload again, with its data.
  const std::string lost_instance = deployment["instance"].value("id", "");
  std::string worker;
  for (const char* name : {"worker-1", "worker-2"}) {
    std::string id = ReadAll(state_ / name / "server-id");
    while (!id.empty() && std::isspace(static_cast<unsigned char>(id.back()))) id.pop_back();
    if (id == volume.value("server_id", "")) worker = name;
  }
  ASSERT_FALSE(worker.empty());
  const auto pid = ChildPid(state_ / worker);
  ASSERT_TRUE(pid.has_value());
  const auto kill_at = Clock::now();
  ASSERT_EQ(::kill(*pid, SIGKILL), 0);
  deployment = WaitDeployment(project, [&](const json& d) {
    return running(d) && d["instance"].value("id", "") != lost_instance;
  });
  ASSERT_EQ(deployment.value("status", ""), "running") << deployment.dump();
  const auto back_after = std::chrono::duration_cast<milliseconds>(Clock::now() - kill_at);
  EXPECT_LT(back_after, seconds(60));
  EXPECT_EQ(EdgeJson(host, "/records/verify")["intact"], 3);
  EXPECT_EQ(Strings(Unquoted(dev_->value("KINDLING_DSN")),
                    "SELECT exit_reason FROM vms v JOIN deployment_instances i ON i.vm_id = v.id "
                    "WHERE i.id = '" +
                        lost_instance + "'"),
            std::vector<std::string>{"lost"});

  // dev's stop ends every VM: no QEMU is left.
  ASSERT_TRUE(dev_->Terminate(seconds(90)).has_value());
  bool qemu_left = false;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string cmdline = ReadAll(entry.path() / "cmdline");
    if (cmdline.find("qemu-system") != std::string::npos &&
        cmdline.find(state_.string()) != std::string::npos)
      qemu_left = true;
  }
  EXPECT_FALSE(qemu_left);
  std::printf(
      "workload drill took %lld s: deploy to running %lld ms, back %lld ms after the "
      "worker was killed\n",
      static_cast<long long>(
          std::chrono::duration_cast<seconds>(Clock::now() - test_start).count()),
      static_cast<long long>(deploy_took.count()), static_cast<long long>(back_after.count()));
}

// The acceptance round on two workers: N records through the edge;
// a backup with stop_workload; more records; the first backup restored onto
// the other worker with stop_workload and validate; the canary answers
// through the edge from that worker with exactly the first N records.
TEST_F(DevWorkloadDrillTest, BackupAndValidatedRestoreOntoTheOtherWorkerDrill) {
  const auto test_start = Clock::now();
  dev_ = std::make_unique<DevProcess>(state_);
  Call("PUT", "/api/meta", {{"service_base_domain", "apps.test"}});
  const std::string project = CreateProject("Canary");
  Call("PUT", "/api/projects/" + project + "/volume", {{"size_gb", 1}});
  json volume = HealthyVolume(project);
  ASSERT_EQ(volume.value("health", ""), "healthy") << volume;
  const std::string first_worker = volume.value("server_id", "");
  std::string other_worker;
  for (const json& server : Call("GET", "/api/platform/servers"))
    if (server.value("id", "") != first_worker) other_worker = server.value("id", "");
  ASSERT_FALSE(other_worker.empty());

  const json deployed = Call("POST", "/api/projects/" + project + "/deploy", {{"image", "canary"}});
  const std::string host = deployed.value("hostname", "");
  auto running = [](const json& d) { return d.value("status", "") == "running"; };
  json deployment = WaitDeployment(project, running);
  ASSERT_EQ(deployment.value("status", ""), "running") << deployment.dump();
  constexpr int kFirst = 5;
  for (int i = 1; i <= kFirst; ++i)
    ASSERT_EQ(Edge("POST", host, "/records", "first " + std::to_string(i)).first, 201);

  // Backups are cold: refused while the workload runs, unless asked to stop
  // it; validate is for restores.
  int status = 0;
  json refused =
      Call("POST", "/api/projects/" + project + "/volume/backups", json::object(), &status);
  EXPECT_EQ(status, 409);
  EXPECT_EQ(refused.value("code", ""), "volume_attached") << refused;
  refused = Call("POST", "/api/projects/" + project + "/volume/backups",
                 {{"stop_workload", true}, {"validate", true}}, &status);
  EXPECT_EQ(status, 400) << refused;

  json op = Call("POST", "/api/projects/" + project + "/volume/backups", {{"stop_workload", true}});
  op = WaitForWorkloadBack(op.value("id", ""));
  ASSERT_EQ(op.value("status", ""), "succeeded") << op;
  const std::string first_backup = op.value("backup_id", "");
  const json backup_result = op["result"];
  EXPECT_TRUE(backup_result.value("workload_restarted", false)) << op;
  EXPECT_GT(backup_result.value("downtime_ms", 0), 0) << op;
  EXPECT_EQ(backup_result["workload_server_id"], first_worker) << op;
  deployment = WaitDeployment(project, running);
  ASSERT_EQ(deployment.value("status", ""), "running") << deployment.dump();
  // Written after the backup: not in what is restored.
  for (int i = 1; i <= 3; ++i)
    ASSERT_EQ(Edge("POST", host, "/records", "later " + std::to_string(i)).first, 201);
  EXPECT_EQ(EdgeJson(host, "/records/verify")["records"], kFirst + 3);

  op = Call("POST", "/api/projects/" + project + "/volume/restore",
            {{"backup_id", first_backup},
             {"target_server_id", other_worker},
             {"stop_workload", true},
             {"validate", true}});
  // Queued on the worker running the workload, which stops it first.
  EXPECT_EQ(op.value("server_id", ""), first_worker) << op;
  op = WaitForWorkloadBack(op.value("id", ""), seconds(180));
  ASSERT_EQ(op.value("status", ""), "succeeded") << op;
  const json restore_result = op["result"];
  EXPECT_EQ(restore_result["validation"]["records"], kFirst) << op;
  EXPECT_EQ(restore_result["validation"]["intact"], kFirst) << op;
  EXPECT_EQ(restore_result["validation"]["damaged"], json::array()) << op;
  EXPECT_EQ(restore_result.value("server_id", ""), other_worker) << op;
  EXPECT_TRUE(restore_result.value("workload_restarted", false)) << op;
  EXPECT_EQ(restore_result["workload_server_id"], other_worker) << op;
  EXPECT_GT(restore_result.value("downtime_ms", 0), 0) << op;

  deployment = WaitDeployment(project, running);
  ASSERT_EQ(deployment.value("status", ""), "running") << deployment.dump();
  EXPECT_EQ(deployment["instance"].value("server_id", ""), other_worker) << deployment.dump();
  volume = Call("GET", "/api/projects/" + project + "/volume");
  EXPECT_EQ(volume.value("server_id", ""), other_worker) << volume;
  EXPECT_EQ(volume.value("status", ""), "attached") << volume;
  json verify = json::object();
  for (int i = 0; i < 50; ++i) {  // the edge follows the new instance
    const auto [code, body] = Edge("GET", host, "/records/verify");
    if (code == 200) {
      verify = json::parse(body);
      if (verify.value("records", 0) == kFirst) break;
    }
    std::this_thread::sleep_for(milliseconds(200));
  }
  EXPECT_EQ(verify, (json{{"records", kFirst}, {"intact", kFirst}, {"damaged", json::array()}}));

  // The checklist passes, with the canary answering through the edge and
  // its records checked in the guest.
  const CliResult validate =
      Kindling({"admin", "validate", "--url", dev_->value("KINDLING_URL"), "--api-key",
                dev_->value("KINDLING_API_KEY"), "--dsn-file", (state_ / "postgres.dsn").string(),
                "--edge-url", dev_->value("KINDLING_EDGE_URL"), "--canary-project", project,
                "--volume-project", project, "--json"});
  EXPECT_EQ(validate.exit_status, 0) << validate.output << validate.errors;
  {
    const json report = validate.Json();
    std::map<std::string, std::string> outcomes;
    for (const json& step : report.value("steps", json::array()))
      outcomes[step.value("name", "")] = step.value("outcome", "");
    EXPECT_EQ(outcomes["canary"], "pass") << validate.output;
    EXPECT_EQ(outcomes["volume_records"], "pass") << validate.output;
  }

  ASSERT_TRUE(dev_->Terminate(seconds(90)).has_value());
  std::printf(
      "acceptance round took %lld s: backup downtime %lld ms, restore onto the other worker "
      "(validated in %lld ms) downtime %lld ms\n",
      static_cast<long long>(
          std::chrono::duration_cast<seconds>(Clock::now() - test_start).count()),
      static_cast<long long>(backup_result.value("downtime_ms", 0)),
      static_cast<long long>(restore_result["validation"].value("took_ms", 0)),
      static_cast<long long>(restore_result.value("downtime_ms", 0)));
}

// The README's main command: `kindling dev --canary` (scripts/dev.sh) runs
// the canary in a project of its own and shows it answering through the
// edge; the next start reuses that project.
TEST_F(DevWorkloadDrillTest, DevCanaryAnswersThroughTheEdgeDrill) {
  auto shown = [&] {
    std::string line;
    for (const auto deadline = Clock::now() + seconds(150); Clock::now() < deadline;) {
      const std::string log = ReadAll(dev_->log());
      if (const auto at = log.find("canary: "); at != std::string::npos) {
        const auto end = log.find('\n', at);
        if (end != std::string::npos) return log.substr(at, end - at);
      }
      std::this_thread::sleep_for(milliseconds(200));
    }
    return line;
  };
  dev_ = std::make_unique<DevProcess>(state_, std::vector<std::string>{"--canary"});
  std::string line = shown();
  EXPECT_TRUE(line.starts_with("canary: web-canary running")) << line;
  EXPECT_NE(line.find("answered 200"), std::string::npos) << line;
  EXPECT_EQ(Edge("POST", "web-canary", "/records", "kept").first, 201);
  ASSERT_TRUE(dev_->Terminate(seconds(90)).has_value());

  dev_ = std::make_unique<DevProcess>(state_, std::vector<std::string>{"--canary"});
  line = shown();
  EXPECT_NE(line.find("answered 200"), std::string::npos) << line;
  EXPECT_EQ(ProjectNames(), std::set<std::string>{"canary"});
  EXPECT_EQ(EdgeJson("web-canary", "/records/verify")["records"], 1);
  ASSERT_TRUE(dev_->Terminate(seconds(90)).has_value());
}

}  // namespace
}  // namespace kindling::service
