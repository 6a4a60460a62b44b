// The workload commands end to end: `kindling project deploy`, `deployments`,
// `stop` and `start` against the in-process API, on a project whose volume is
// on the fixture's worker. That worker does not run workloads (its heartbeat
// would also overwrite the images it reports), so it is stopped and the
// instance and deployment rows are moved along with SQL while a --follow
// watches: failed ends with exit 1 and the instance's error, running with 0.
#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "api_cli_fixture.h"
#include "db/servers.h"
#include "testutil/fake_http_server.h"

namespace kindling::clitest {
namespace {

class DeployCommandsTest : public ApiCliTest {
 protected:
  // A project with a volume on the fixture's worker, which then stops and is
  // reported as a microVM worker that has the canary image.
  std::string MakeDeployableProject(const std::string& name) {
    const std::string project = MakeProjectWithVolume(name).first;
    worker_->Stop();
    EXPECT_TRUE(Must([&](db::Tx& tx) {
      return db::UpsertComponentStatus(
          tx, db::ComponentStatusUpdate{
                  .server_id = server_id_,
                  .component = "worker",
                  .status = db::ComponentHealth::kHealthy,
                  .metadata_json = R"({"runtime": "qemu-microvm-tcg", "images": ["canary"]})"});
    }));
    return project;
  }

  // Starts a `kindling` that follows, waits until it reported `text` on
  // stderr, runs `then` and returns how the command ended.
  RunResult FollowWhile(const std::vector<std::string>& args, const std::string& text,
                        const std::function<void()>& then) {
    Child child(args, {{"KINDLING_URL", url_}, {"KINDLING_API_KEY", key_}});
    EXPECT_TRUE(WaitFor([&] { return child.StderrSoFar().find(text) != std::string::npos; },
                        std::chrono::seconds(30)))
        << child.StderrSoFar();
    then();
    RunResult result = child.Wait(std::chrono::seconds(30));
    transcript_ += result.out + result.err;
    return result;
  }
};

// The value of the "label  value" line for `label` in `text`.
std::string FieldOf(const std::string& text, const std::string& label) {
  const std::size_t at = text.find("\n" + label + "  ");
  if (at == std::string::npos) return "<none>";
  const std::size_t value = text.find_first_not_of(' ', at + 1 + label.size());
  return text.substr(value, text.find('\n', value) - value);
}

TEST_F(DeployCommandsTest, DeployListStopStartAndRefusals) {
  const std::string project = MakeDeployableProject("Shop Front");

  // Refusals and bad input change nothing.
  RunResult unknown = Fails({"project", "deploy", "--project", project, "--image", "nginx"}, 2,
                            "(validation_error)");
  EXPECT_NE(unknown.err.find("image 'nginx' is not available on worker w1 (it has: canary)"),
            std::string::npos)
      << unknown.Describe();
  Fails({"project", "deploy", "--project", project}, 2, "--image");
  Fails({"project", "deploy", "--project", "nope", "--image", "canary"}, 2,
        "project id must be a UUID");
  Fails({"project", "deploy", "--project", project, "--image", "canary", "--boot-timeout", "2s"}, 2,
        "boot_timeout_seconds must be from 5 to 3600 (validation_error)");
  Fails({"project", "deploy", "--project", project, "--image", "canary", "--boot-timeout", "soon"},
        2, "--boot-timeout");
  Fails({"project", "deploy", "--project", project, "--image", "canary", "--follow", "--timeout",
         "0"},
        2, "--timeout: must be at least 1s");
  Fails({"project", "stop", "--project", project}, 1,
        "the project has no deployment of service 'web' (not_found)");
  Fails({"project", "deployments", "--project", NewUuidV4()}, 1, "(not_found)");
  EXPECT_EQ(Ok({"project", "deployments", "--project", project}), json::array());
  EXPECT_EQ(Kindling({"project", "deployments", "--project", project}).out, "no deployments\n");

  // Deployed with every flag; pending on the volume's worker.
  json deployed =
      Ok({"project", "deploy", "--project", project, "--image", "canary", "--memory-mib", "256",
          "--vcpus", "2", "--boot-timeout", "2m", "--stop-timeout", "5s"});
  const std::string web = deployed.value("id", "");
  ASSERT_TRUE(IsUuid(web)) << deployed.dump();
  EXPECT_EQ(deployed["service"], "web");
  EXPECT_EQ(deployed["status"], "pending");
  EXPECT_EQ(deployed["memory_mib"], 256);
  EXPECT_EQ(deployed["vcpus"], 2);
  EXPECT_EQ(deployed["boot_timeout_seconds"], 120);
  EXPECT_EQ(deployed["stop_timeout_seconds"], 5);
  EXPECT_EQ(deployed["instance"]["server_id"], server_id_);

  RunResult api = Kindling(
      {"project", "deploy", "--project", project, "--image", "canary", "--service", "api"});
  ASSERT_EQ(api.exit_code, 0) << api.Describe();
  EXPECT_EQ(FieldOf(api.out, "service"), "api");
  EXPECT_EQ(FieldOf(api.out, "status"), "pending");
  EXPECT_EQ(FieldOf(api.out, "hostname"), "api-shop-front");
  EXPECT_EQ(FieldOf(api.out, "resources"), "128 MiB, 1 vCPU");
  EXPECT_EQ(FieldOf(api.out, "server"), server_id_);
  EXPECT_NE(api.out.find("see how it goes with: kindling project deployments --project " + project),
            std::string::npos)
      << api.out;

  // Listed newest first, as JSON and as a table.
  json listed = Ok({"project", "deployments", "--project", project});
  ASSERT_EQ(listed.size(), 2u) << listed.dump();
  EXPECT_EQ(listed[0]["service"], "api");
  EXPECT_EQ(listed[1]["id"], web);
  RunResult table = Kindling({"project", "deployments", "--project", project});
  ASSERT_EQ(table.exit_code, 0) << table.Describe();
  EXPECT_TRUE(table.out.starts_with("ID")) << table.out;
  for (const char* column : {"SERVICE", "IMAGE", "STATUS", "DESIRED", "HOSTNAME", "SERVER"}) {
    EXPECT_NE(table.out.find(column), std::string::npos) << column << "\n" << table.out;
  }
  EXPECT_NE(
      table.out.find(web + "  web      canary  pending  running  web-shop-front  " + server_id_),
      std::string::npos)
      << table.out;

  // Stop and start change the desired state.
  RunResult stopped = Kindling({"project", "stop", "--project", project});
  ASSERT_EQ(stopped.exit_code, 0) << stopped.Describe();
  EXPECT_EQ(FieldOf(stopped.out, "desired"), "stopped");
  EXPECT_EQ(FieldOf("\n" + stopped.out, "deployment"), web);
  json api_stopped = Ok({"project", "stop", "--project", project, "--service", "api"});
  EXPECT_EQ(api_stopped["desired_state"], "stopped");
  EXPECT_EQ(api_stopped["service"], "api");
  json started = Ok({"project", "start", "--project", project});
  EXPECT_EQ(started["id"], web);
  EXPECT_EQ(started["desired_state"], "running");
  Fails({"project", "start", "--project", project, "--service", "db"}, 1, "(not_found)");
  Fails({"project", "start", "--project", project, "--service", "Web!"}, 1, "(not_found)");

  // A busy volume takes no deployment.
  Sql("UPDATE project_volumes SET status = 'backing_up'");
  Fails({"project", "deploy", "--project", project, "--image", "canary"}, 1, "(volume_busy)");
  Fails({"project", "start", "--project", project}, 1, "(volume_busy)");
  Sql("UPDATE project_volumes SET status = 'detached'");
}

TEST_F(DeployCommandsTest, FollowEndsWithTheWorkload) {
  const std::string project = MakeDeployableProject("shop");

  // Failed while followed: exit 1 with the instance's error; the last line of
  // stdout is the failed deployment.
  RunResult failed = FollowWhile(
      {"project", "deploy", "--project", project, "--image", "canary", "--follow", "--json"},
      R"("instance_status":"pending")", [&] {
        Sql("UPDATE deployment_instances SET status = 'failed', "
            "error = 'guest did not answer its health check within 60 s'");
        Sql("UPDATE deployments SET status = 'failed'");
      });
  EXPECT_EQ(failed.exit_code, 1) << failed.Describe();
  const json last = failed.Json();
  const std::string id = last.value("id", "");
  EXPECT_EQ(last["status"], "failed") << failed.Describe();
  EXPECT_NE(failed.err.find("kindling: error: deployment " + id +
                            " (web, canary) failed: guest did not answer its health check "
                            "within 60 s"),
            std::string::npos)
      << failed.Describe();
  EXPECT_NE(failed.err.find(R"("type":"status")"), std::string::npos) << failed.err;
  EXPECT_NE(failed.err.find(R"("instance_status":"failed")"), std::string::npos) << failed.err;

  // Started again: a new instance, followed (in text) until it runs, although
  // the deployment still says failed until its worker acts.
  RunResult running = FollowWhile(
      {"project", "start", "--project", project, "--follow"}, R"("instance_status":"pending")",
      [&] {
        Sql("UPDATE deployment_instances SET status = 'running', address = '10.0.0.9:8080' "
            "WHERE status = 'pending'");
        Sql("UPDATE deployments SET status = 'running'");
      });
  EXPECT_EQ(running.exit_code, 0) << running.Describe();
  EXPECT_NE(running.out.find("deployment " + id + " (web, canary): pending, desired running\n"),
            std::string::npos)
      << running.out;
  EXPECT_EQ(FieldOf(running.out, "status"), "running") << running.out;
  EXPECT_EQ(FieldOf(running.out, "address"), "10.0.0.9:8080") << running.out;
  EXPECT_EQ(Sql("SELECT count(*) FROM deployment_instances")[0][0].as<int>(), 2);

  // Nothing happens: --timeout ends the wait with exit 1; the deployment
  // stays. The terminal's status line is redrawn in place, then ended.
  RunResult waited = Kindling({"project", "deploy", "--project", project, "--image", "canary",
                               "--follow", "--timeout", "1s", "--progress", "bar"});
  EXPECT_EQ(waited.exit_code, 1) << waited.Describe();
  EXPECT_NE(waited.err.find("\rweb (canary): pending; instance pending on server " +
                            server_id_.substr(0, 8) + "  (0s)\x1b[K"),
            std::string::npos)
      << waited.Describe();
  EXPECT_NE(waited.err.find("\x1b[K\nkindling: error: deployment "), std::string::npos)
      << waited.Describe();
  EXPECT_NE(waited.err.find("is still pending after 1 s"), std::string::npos) << waited.Describe();
  EXPECT_EQ(waited.err.find(R"("type":"status")"), std::string::npos) << waited.err;
  EXPECT_EQ(Ok({"project", "deployments", "--project", project}).size(), 2u);
}

TEST_F(DeployCommandsTest, HelpDescribesEveryCommand) {
  for (const char* command : {"deploy", "deployments", "stop", "start"}) {
    RunResult help = Kindling({"project", command, "--help"});
    EXPECT_EQ(help.exit_code, 0) << help.Describe();
    EXPECT_NE(help.out.find("--project"), std::string::npos) << help.out;
    EXPECT_NE(help.out.find("Exit codes"), std::string::npos) << help.out;
  }
  RunResult deploy = Kindling({"project", "deploy", "--help"});
  for (const char* flag : {"--image", "--service", "--memory-mib", "--vcpus", "--boot-timeout",
                           "--stop-timeout", "--follow", "--timeout", "--json"}) {
    EXPECT_NE(deploy.out.find(flag), std::string::npos) << flag;
  }
}

TEST_F(DeployCommandsTest, AdminValidateDeploysTheCanaryAndAsksItThroughTheEdge) {
  const std::string project = MakeDeployableProject("canary");
  // The edge: the canary's hostname (no service domain here) is routed.
  testutil::FakeHttpServer edge;
  edge.Get("/healthz", [](const httplib::Request& req, httplib::Response& res) {
    res.status = req.get_header_value("Host") == "web-canary" ? 200 : 404;
  });
  edge.Get("/records/verify", [](const httplib::Request&, httplib::Response& res) {
    testutil::FakeHttpServer::Json(res, 200, R"({"records":2,"intact":2,"damaged":[]})");
  });
  edge.Start();
  const std::vector<std::string> args = {"admin",
                                         "validate",
                                         "--canary-project",
                                         project,
                                         "--volume-project",
                                         project,
                                         "--edge-url",
                                         edge.url(),
                                         "--canary-timeout",
                                         "30s",
                                         "--json"};
  const auto step_of = [](const json& report, const std::string& name) {
    for (const json& step : report["steps"])
      if (step["name"] == name) return step;
    return json(nullptr);
  };

  // No deployment yet: the canary is deployed, polled until it runs (the
  // worker's part is played with SQL), then asked through the edge.
  Child child(args, {{"KINDLING_URL", url_}, {"KINDLING_API_KEY", key_}});
  EXPECT_TRUE(WaitFor([&] { return Sql("SELECT count(*) FROM deployments")[0][0].as<int>() > 0; },
                      std::chrono::seconds(30)));
  Sql("UPDATE deployment_instances SET status = 'running', address = '10.0.0.9:8080'");
  Sql("UPDATE deployments SET status = 'running'");
  RunResult first = child.Wait(std::chrono::seconds(60));
  transcript_ += first.out + first.err;
  const json report = first.Json();
  const json canary = step_of(report, "canary");
  EXPECT_EQ(canary["outcome"], "pass") << first.Describe();
  EXPECT_EQ(canary["details"]["deployed"], true) << canary.dump();
  EXPECT_EQ(canary["details"]["hostname"], "web-canary") << canary.dump();
  EXPECT_EQ(canary["details"]["status"], "running") << canary.dump();
  EXPECT_EQ(Sql("SELECT image FROM deployments")[0][0].as<std::string>(), "canary");
  const json records = step_of(report, "volume_records");
  EXPECT_EQ(records["outcome"], "pass") << first.Describe();
  EXPECT_EQ(records["details"]["records"], 2) << records.dump();
  EXPECT_EQ(first.exit_code, report["passed"] == true ? 0 : 1) << first.Describe();

  // Running: asked as it is, nothing deployed; in text, one line per step.
  RunResult again = Kindling({"admin", "validate", "--canary-project", project, "--edge-url",
                              edge.url(), "--canary-timeout", "30s"});
  EXPECT_NE(again.out.find("pass  canary                 web-canary running (deployment "),
            std::string::npos)
      << again.Describe();
  EXPECT_NE(again.out.find("already running"), std::string::npos) << again.Describe();
  EXPECT_NE(again.out.find("skip  volume_records"), std::string::npos) << again.Describe();
  EXPECT_EQ(Sql("SELECT count(*) FROM deployments")[0][0].as<int>(), 1);

  // --redeploy makes a new deployment, which does not run within the limit.
  RunResult redeployed = Kindling({"admin", "validate", "--canary-project", project, "--edge-url",
                                   edge.url(), "--canary-timeout", "2s", "--redeploy"});
  EXPECT_EQ(redeployed.exit_code, 1) << redeployed.Describe();
  EXPECT_NE(redeployed.out.find("did not run within 2 s: still pending"), std::string::npos)
      << redeployed.Describe();
  EXPECT_EQ(Sql("SELECT count(*) FROM deployments")[0][0].as<int>(), 2);
}

}  // namespace
}  // namespace kindling::clitest
