// The edge steps of the validation checklist (canary, volume_records)
// against two scripted servers: one plays the API's deployment routes, the
// other the edge (answers chosen per request, the Host header recorded).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "client/cluster_validation.h"
#include "common/ids.h"
#include "testutil/fake_http_server.h"

namespace kindling::client {
namespace {

using json = nlohmann::json;
using Outcome = ValidationStep::Outcome;
using std::chrono::milliseconds;

constexpr char kDomain[] = "apps.example.test";

class CanaryValidationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    api_.Get(R"(/api/projects/([^/]+)/deployments)",
             [this](const httplib::Request& req, httplib::Response& res) {
               std::lock_guard lock(mu_);
               Project& p = projects_[req.matches[1].str()];
               // The deployment made here advances one status per poll.
               if (p.deployed && !p.script.empty()) {
                 p.list[0]["status"] = p.script.front();
                 p.list[0]["instance"]["status"] = p.script.front();
                 if (p.script.size() > 1) p.script.erase(p.script.begin());
               }
               testutil::FakeHttpServer::Json(res, 200, p.list.dump());
             });
    api_.Post(R"(/api/projects/([^/]+)/deploy)",
              [this](const httplib::Request& req, httplib::Response& res) {
                std::lock_guard lock(mu_);
                Project& p = projects_[req.matches[1].str()];
                if (p.deploy_refusal.is_object()) {
                  testutil::FakeHttpServer::Json(res, 409, p.deploy_refusal.dump());
                  return;
                }
                for (json& d : p.list) d["superseded_at"] = "2026-12-01T10:00:00Z";
                const json body = json::parse(req.body);
                json created = Deployment(p.slug, body.value("image", ""), "pending");
                p.list.insert(p.list.begin(), created);
                p.deployed = true;
                testutil::FakeHttpServer::Json(res, 202, created.dump());
              });
    api_.Start();
    edge_.Get(R"(/(healthz|records/verify))",
              [this](const httplib::Request& req, httplib::Response& res) {
                std::lock_guard lock(mu_);
                auto& answers = edge_answers_[req.path];
                if (answers.empty()) {
                  res.status = 404;
                  return;
                }
                const auto [status, body] = answers.front();
                if (answers.size() > 1) answers.erase(answers.begin());
                res.status = status;
                res.set_content(body, body.starts_with("<") ? "text/html" : "application/json");
              });
    edge_.Start();
    auto client = ApiClient::Create(ApiClientOptions{
        .base_url = api_.url(), .api_key = Secret::FromView("kdl_test_key_0123456789")});
    ASSERT_TRUE(client) << client.error().message();
    client_ = std::move(*client);
  }

  static json Deployment(const std::string& slug, const std::string& image,
                         const std::string& status) {
    return {{"id", NewUuidV4()},
            {"service", "web"},
            {"image", image},
            {"status", status},
            {"desired_state", "running"},
            {"hostname", "web-" + slug + "." + kDomain},
            {"error", nullptr},
            {"superseded_at", nullptr},
            {"instance", {{"id", NewUuidV4()}, {"status", status}, {"error", nullptr}}}};
  }

  // A project whose current deployment runs `image` with `status` (none
  // when `image` is empty); deployments made later go through `script`.
  std::string AddProject(const std::string& slug, const std::string& image,
                         const std::string& status, std::vector<std::string> script = {"running"}) {
    const std::string id = NewUuidV4();
    std::lock_guard lock(mu_);
    Project& p = projects_[id];
    p.slug = slug;
    if (!image.empty()) p.list.push_back(Deployment(slug, image, status));
    p.script = std::move(script);
    return id;
  }

  void EdgeAnswers(const std::string& path, std::vector<std::pair<int, std::string>> answers) {
    std::lock_guard lock(mu_);
    edge_answers_[path] = std::move(answers);
  }

  ValidationInputs Inputs() {
    ValidationInputs inputs;
    inputs.edge_url = edge_.url();
    inputs.canary_timeout = milliseconds(3'000);
    inputs.poll_interval = milliseconds(10);
    return inputs;
  }

  static ValidationStep StepNamed(const ValidationReport& report, std::string_view name) {
    for (const ValidationStep& step : report.steps)
      if (step.name == name) return step;
    ADD_FAILURE() << "no step " << name;
    return {};
  }

  ValidationStep Run(const ValidationInputs& inputs, std::string_view name) {
    report_ = ValidateCluster(*client_, inputs);
    return StepNamed(report_, name);
  }

  std::vector<testutil::RecordedRequest> Requests(const std::string& method) {
    std::vector<testutil::RecordedRequest> out;
    for (auto& r : api_.requests())
      if (r.method == method && r.path.find("/deploy") != std::string::npos) out.push_back(r);
    return out;
  }
  std::size_t DeployPosts() { return Requests("POST").size(); }

  static std::string Page(int status, const std::string& message) {
    return "<!doctype html>\n<html><head><title>" + std::to_string(status) +
           "</title></head>\n<body><h1>" + std::to_string(status) + "</h1>\n<p>" + message +
           "</p>\n<hr><p>kindling edge</p></body></html>\n";
  }

  struct Project {
    std::string slug;
    json list = json::array();
    std::vector<std::string> script;
    json deploy_refusal = nullptr;
    bool deployed = false;
  };

  testutil::FakeHttpServer api_;
  testutil::FakeHttpServer edge_;
  std::mutex mu_;
  std::map<std::string, Project> projects_;
  std::map<std::string, std::vector<std::pair<int, std::string>>> edge_answers_;
  std::unique_ptr<ApiClient> client_;
  ValidationReport report_;
};

TEST_F(CanaryValidationTest, WithoutFlagsBothStepsAreSkippedWithTheReason) {
  const ValidationStep canary = Run(ValidationInputs{}, "canary");
  EXPECT_EQ(canary.outcome, Outcome::kSkip);
  EXPECT_NE(canary.evidence.find("--canary-project ID"), std::string::npos) << canary.evidence;
  const ValidationStep records = StepNamed(report_, "volume_records");
  EXPECT_EQ(records.outcome, Outcome::kSkip);
  EXPECT_NE(records.evidence.find("--volume-project ID"), std::string::npos) << records.evidence;
  // The last two steps, in this order; nothing asked about deployments.
  ASSERT_GE(report_.steps.size(), 2u);
  EXPECT_EQ(report_.steps[report_.steps.size() - 2].name, "canary");
  EXPECT_EQ(report_.steps.back().name, "volume_records");
  for (const auto& r : api_.requests()) EXPECT_EQ(r.path.find("/deploy"), std::string::npos);
  EXPECT_TRUE(edge_.requests().empty());
  EXPECT_FALSE(report_.ToJson()["steps"].back().contains("details"));
}

TEST_F(CanaryValidationTest, ARunningCanaryAnswersThroughTheEdge) {
  const std::string project = AddProject("canary", "canary", "running");
  EdgeAnswers("/healthz", {{200, R"({"status":"ok"})"}});
  ValidationInputs inputs = Inputs();
  inputs.canary_project_id = project;
  const ValidationStep step = Run(inputs, "canary");
  EXPECT_EQ(step.outcome, Outcome::kPass) << step.evidence;
  EXPECT_NE(step.evidence.find("web-canary.apps.example.test running"), std::string::npos)
      << step.evidence;
  EXPECT_NE(step.evidence.find("already running"), std::string::npos) << step.evidence;
  EXPECT_EQ(DeployPosts(), 0u);
  const auto asked = edge_.requests();
  ASSERT_EQ(asked.size(), 1u);
  EXPECT_EQ(asked[0].path, "/healthz");
  EXPECT_EQ(asked[0].host, "web-canary.apps.example.test");
  EXPECT_EQ(asked[0].authorization, "");  // the API key stays with the API
  EXPECT_EQ(step.details["hostname"], "web-canary.apps.example.test");
  EXPECT_EQ(step.details["status"], "running");
  EXPECT_EQ(step.details["deployed"], false);
  EXPECT_EQ(step.details["edge_status"], 200);
  EXPECT_TRUE(step.details["seconds_to_answer"].is_number());
  const json as_json = report_.ToJson()["steps"];
  const auto it = std::find_if(as_json.begin(), as_json.end(),
                               [](const json& s) { return s["name"] == "canary"; });
  ASSERT_NE(it, as_json.end());
  EXPECT_EQ((*it)["details"]["project_id"], project);
}

TEST_F(CanaryValidationTest, ACanaryThatIsNotRunningIsDeployedThenPolledUntilItAnswers) {
  const std::string project =
      AddProject("canary", "canary", "stopped", {"pending", "starting", "running"});
  // The fresh route: unknown for a moment, then no instance up, then there.
  EdgeAnswers("/healthz", {{404, Page(404, "No service is published at web-canary.")},
                           {503, Page(503, "No instance is up.")},
                           {200, R"({"status":"ok"})"}});
  ValidationInputs inputs = Inputs();
  inputs.canary_project_id = project;
  const ValidationStep step = Run(inputs, "canary");
  EXPECT_EQ(step.outcome, Outcome::kPass) << step.evidence;
  EXPECT_NE(step.evidence.find("deployed: it was stopped"), std::string::npos) << step.evidence;
  const auto posts = Requests("POST");
  ASSERT_EQ(posts.size(), 1u);
  EXPECT_EQ(posts[0].path, "/api/projects/" + project + "/deploy");
  EXPECT_EQ(json::parse(posts[0].body), (json{{"image", "canary"}}));
  std::size_t polls = 0;
  for (const auto& r : api_.requests()) polls += r.path.ends_with("/deployments") ? 1 : 0;
  EXPECT_GE(polls, 4u);  // the list before the deploy, then until running
  EXPECT_EQ(edge_.requests().size(), 3u);
  EXPECT_EQ(step.details["deployed"], true);
  EXPECT_EQ(step.details["deploy_reason"], "it was stopped");
  EXPECT_TRUE(step.details["seconds_to_running"].is_number()) << step.details.dump();
  EXPECT_EQ(step.details["status"], "running");
}

TEST_F(CanaryValidationTest, ADeploymentOnItsWayIsWaitedForNotReplaced) {
  const std::string project = AddProject("canary", "canary", "starting", {"starting", "running"});
  {
    std::lock_guard lock(mu_);
    projects_[project].deployed = true;  // advances as if just deployed
  }
  EdgeAnswers("/healthz", {{200, "ok"}});
  ValidationInputs inputs = Inputs();
  inputs.canary_project_id = project;
  const ValidationStep step = Run(inputs, "canary");
  EXPECT_EQ(step.outcome, Outcome::kPass) << step.evidence;
  EXPECT_NE(step.evidence.find("found starting, waited for it"), std::string::npos)
      << step.evidence;
  EXPECT_EQ(DeployPosts(), 0u);
  EXPECT_EQ(step.details["deployed"], false);
}

TEST_F(CanaryValidationTest, NoDeploymentYetIsDeployed) {
  const std::string project = AddProject("fresh", "", "");
  EdgeAnswers("/healthz", {{200, "ok"}});
  ValidationInputs inputs = Inputs();
  inputs.canary_project_id = project;
  const ValidationStep step = Run(inputs, "canary");
  EXPECT_EQ(step.outcome, Outcome::kPass) << step.evidence;
  EXPECT_NE(step.evidence.find("it had no deployment"), std::string::npos) << step.evidence;
  EXPECT_EQ(DeployPosts(), 1u);
  EXPECT_EQ(edge_.requests().at(0).host, "web-fresh.apps.example.test");
}

TEST_F(CanaryValidationTest, RedeployDeploysARunningCanaryAgain) {
  const std::string project = AddProject("canary", "canary", "running", {"starting", "running"});
  EdgeAnswers("/healthz", {{200, "ok"}});
  ValidationInputs inputs = Inputs();
  inputs.canary_project_id = project;
  inputs.redeploy = true;
  const ValidationStep step = Run(inputs, "canary");
  EXPECT_EQ(step.outcome, Outcome::kPass) << step.evidence;
  EXPECT_NE(step.evidence.find("redeployed"), std::string::npos) << step.evidence;
  EXPECT_EQ(DeployPosts(), 1u);
  EXPECT_EQ(step.details["deploy_reason"], "redeploy");
}

TEST_F(CanaryValidationTest, AnEdgeThatKeepsAnswering503Fails) {
  const std::string project = AddProject("canary", "canary", "running");
  EdgeAnswers("/healthz", {{503, Page(503, "No instance of web-canary.apps.example.test is up.")}});
  ValidationInputs inputs = Inputs();
  inputs.canary_project_id = project;
  inputs.canary_timeout = milliseconds(300);
  const ValidationStep step = Run(inputs, "canary");
  EXPECT_EQ(step.outcome, Outcome::kFail);
  EXPECT_NE(step.evidence.find("HTTP 503 (No instance of web-canary.apps.example.test is up.)"),
            std::string::npos)
      << step.evidence;
  EXPECT_NE(step.evidence.find("Host: web-canary.apps.example.test"), std::string::npos)
      << step.evidence;
  EXPECT_GT(edge_.requests().size(), 1u);  // asked again until the limit
  EXPECT_EQ(step.details["edge_status"], 503);
  EXPECT_FALSE(report_.passed());
}

TEST_F(CanaryValidationTest, AnAnswerOtherThanARouteComingUpIsNotAskedAgain) {
  const std::string project = AddProject("canary", "canary", "running");
  EdgeAnswers("/healthz", {{500, R"({"error":"store failed"})"}});
  ValidationInputs inputs = Inputs();
  inputs.canary_project_id = project;
  const ValidationStep step = Run(inputs, "canary");
  EXPECT_EQ(step.outcome, Outcome::kFail);
  EXPECT_NE(step.evidence.find("answered HTTP 500"), std::string::npos) << step.evidence;
  EXPECT_EQ(edge_.requests().size(), 1u);
}

TEST_F(CanaryValidationTest, AnUnreachableEdgeFails) {
  const std::string project = AddProject("canary", "canary", "running");
  ValidationInputs inputs = Inputs();
  inputs.canary_project_id = project;
  inputs.edge_url = "http://127.0.0.1:" + std::to_string(testutil::ClosedPort());
  inputs.canary_timeout = milliseconds(300);
  const ValidationStep step = Run(inputs, "canary");
  EXPECT_EQ(step.outcome, Outcome::kFail);
  EXPECT_NE(step.evidence.find("still unreachable"), std::string::npos) << step.evidence;
  EXPECT_NE(step.evidence.find("cannot reach the edge at " + inputs.edge_url), std::string::npos)
      << step.evidence;
  EXPECT_TRUE(step.details["edge_status"].is_null());
}

TEST_F(CanaryValidationTest, WithoutAnEdgeUrlTheCanaryStepFailsBeforeDeploying) {
  const std::string project = AddProject("canary", "canary", "stopped");
  ValidationInputs inputs = Inputs();
  inputs.canary_project_id = project;
  inputs.volume_project_id = project;
  inputs.edge_url.clear();
  const ValidationStep step = Run(inputs, "canary");
  EXPECT_EQ(step.outcome, Outcome::kFail);
  EXPECT_NE(step.evidence.find("the edge URL is needed"), std::string::npos) << step.evidence;
  EXPECT_NE(step.evidence.find("KINDLING_EDGE_URL"), std::string::npos) << step.evidence;
  EXPECT_EQ(DeployPosts(), 0u);
  const ValidationStep records = StepNamed(report_, "volume_records");
  EXPECT_EQ(records.outcome, Outcome::kFail);
  EXPECT_NE(records.evidence.find("the edge URL is needed"), std::string::npos) << records.evidence;
}

TEST_F(CanaryValidationTest, ARefusedDeployFails) {
  const std::string project = AddProject("canary", "canary", "failed");
  {
    std::lock_guard lock(mu_);
    projects_[project].deploy_refusal = {{"error", "the volume's server is dead"},
                                         {"code", "volume_unavailable"}};
  }
  ValidationInputs inputs = Inputs();
  inputs.canary_project_id = project;
  const ValidationStep step = Run(inputs, "canary");
  EXPECT_EQ(step.outcome, Outcome::kFail);
  EXPECT_NE(step.evidence.find("no deployment could be made (it was failed)"), std::string::npos)
      << step.evidence;
  EXPECT_NE(step.evidence.find("volume_unavailable"), std::string::npos) << step.evidence;
  EXPECT_TRUE(edge_.requests().empty());
}

TEST_F(CanaryValidationTest, ACanaryThatDoesNotRunWithinTheLimitFails) {
  const std::string project = AddProject("canary", "canary", "stopped", {"pending"});
  ValidationInputs inputs = Inputs();
  inputs.canary_project_id = project;
  inputs.canary_timeout = milliseconds(300);
  const ValidationStep step = Run(inputs, "canary");
  EXPECT_EQ(step.outcome, Outcome::kFail);
  EXPECT_NE(step.evidence.find("did not run within"), std::string::npos) << step.evidence;
  EXPECT_NE(step.evidence.find("still pending"), std::string::npos) << step.evidence;
  EXPECT_EQ(step.details["status"], "pending");
  EXPECT_TRUE(edge_.requests().empty());
}

TEST_F(CanaryValidationTest, AFailedDeploymentFailsWithItsError) {
  const std::string project = AddProject("canary", "canary", "stopped", {"starting", "failed"});
  ValidationInputs inputs = Inputs();
  inputs.canary_project_id = project;
  const ValidationStep step = Run(inputs, "canary");
  EXPECT_EQ(step.outcome, Outcome::kFail);
  EXPECT_NE(step.evidence.find("is failed"), std::string::npos) << step.evidence;
}

TEST_F(CanaryValidationTest, AnotherImageIsLeftAlone) {
  const std::string project = AddProject("shop", "nginx", "running");
  ValidationInputs inputs = Inputs();
  inputs.canary_project_id = project;
  inputs.redeploy = true;
  const ValidationStep step = Run(inputs, "canary");
  EXPECT_EQ(step.outcome, Outcome::kFail);
  EXPECT_NE(step.evidence.find("\"nginx\", not the canary"), std::string::npos) << step.evidence;
  EXPECT_EQ(DeployPosts(), 0u);
}

TEST_F(CanaryValidationTest, IntactRecordsPass) {
  const std::string project = AddProject("data", "canary", "running");
  EdgeAnswers("/records/verify", {{503, Page(503, "No instance is up.")},
                                  {200, R"({"records":3,"intact":3,"damaged":[]})"}});
  ValidationInputs inputs = Inputs();
  inputs.volume_project_id = project;
  const ValidationStep step = Run(inputs, "volume_records");
  EXPECT_EQ(step.outcome, Outcome::kPass) << step.evidence;
  EXPECT_NE(step.evidence.find("3 record(s), 3 intact"), std::string::npos) << step.evidence;
  EXPECT_EQ(StepNamed(report_, "canary").outcome, Outcome::kSkip);
  const auto asked = edge_.requests();
  ASSERT_EQ(asked.size(), 2u);
  EXPECT_EQ(asked[1].path, "/records/verify");
  EXPECT_EQ(asked[1].host, "web-data.apps.example.test");
  EXPECT_EQ(step.details["records"], 3);
  EXPECT_EQ(step.details["intact"], 3);
  EXPECT_EQ(step.details["damaged"], json::array());
  EXPECT_EQ(DeployPosts(), 0u);  // this step only reads
}

TEST_F(CanaryValidationTest, DamagedRecordsFailWithTheirIds) {
  const std::string project = AddProject("data", "canary", "running");
  EdgeAnswers("/records/verify", {{200, R"({"records":10,"intact":8,"damaged":[4,9]})"}});
  ValidationInputs inputs = Inputs();
  inputs.volume_project_id = project;
  const ValidationStep step = Run(inputs, "volume_records");
  EXPECT_EQ(step.outcome, Outcome::kFail);
  EXPECT_NE(step.evidence.find("2 damaged record(s)"), std::string::npos) << step.evidence;
  EXPECT_NE(step.evidence.find("ids 4, 9"), std::string::npos) << step.evidence;
  EXPECT_NE(step.evidence.find("10 record(s), 8 intact"), std::string::npos) << step.evidence;
  EXPECT_EQ(step.details["damaged"], (json{4, 9}));
  EXPECT_FALSE(report_.passed());
}

TEST_F(CanaryValidationTest, RecordsCannotBeAskedWithoutARunningCanary) {
  ValidationInputs inputs = Inputs();
  const auto evidence = [&](const std::string& project) {
    inputs.volume_project_id = project;
    const ValidationStep step = Run(inputs, "volume_records");
    EXPECT_EQ(step.outcome, Outcome::kFail) << step.evidence;
    return step.evidence;
  };
  std::string text = evidence(AddProject("shop", "nginx", "running"));
  EXPECT_NE(text.find("\"nginx\", not the canary"), std::string::npos) << text;
  EXPECT_NE(text.find("needs the canary"), std::string::npos) << text;
  text = evidence(AddProject("idle", "canary", "stopped"));
  EXPECT_NE(text.find("is stopped, not running"), std::string::npos) << text;
  text = evidence(AddProject("empty", "", ""));
  EXPECT_NE(text.find("has no deployment"), std::string::npos) << text;
  EXPECT_TRUE(edge_.requests().empty());
  EXPECT_EQ(DeployPosts(), 0u);
}

TEST_F(CanaryValidationTest, AnAnswerThatIsNotAVerifyReportFails) {
  const std::string project = AddProject("data", "canary", "running");
  EdgeAnswers("/records/verify", {{200, R"({"status":"ok"})"}});
  ValidationInputs inputs = Inputs();
  inputs.volume_project_id = project;
  const ValidationStep step = Run(inputs, "volume_records");
  EXPECT_EQ(step.outcome, Outcome::kFail);
  EXPECT_NE(step.evidence.find("not {records, intact, damaged}"), std::string::npos)
      << step.evidence;
}

TEST_F(CanaryValidationTest, BothStepsTogether) {
  const std::string project = AddProject("canary", "canary", "stopped", {"starting", "running"});
  EdgeAnswers("/healthz", {{200, "ok"}});
  EdgeAnswers("/records/verify", {{200, R"({"records":0,"intact":0,"damaged":[]})"}});
  ValidationInputs inputs = Inputs();
  inputs.canary_project_id = project;
  inputs.volume_project_id = project;
  EXPECT_EQ(Run(inputs, "canary").outcome, Outcome::kPass);
  const ValidationStep records = StepNamed(report_, "volume_records");
  EXPECT_EQ(records.outcome, Outcome::kPass) << records.evidence;
  EXPECT_NE(records.evidence.find("no record to check yet"), std::string::npos) << records.evidence;
}

}  // namespace
}  // namespace kindling::client
