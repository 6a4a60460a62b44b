// FollowDeployment against a scripted server: it reports the followed
// deployment from every answer, stops once the workload runs, failed or was
// stopped for good (returning the document either way), reads the newest
// instance's status over the deployment's, and ends on an unknown
// deployment, a timeout or a cancel.
#include "client/deployment_follow.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "common/ids.h"
#include "testutil/fake_http_server.h"

namespace kindling::client {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

// Answers GET /api/projects/{id}/deployments from a script: each entry is
// used once, the last one forever. An entry is {status, body}.
class DeploymentFollowTest : public ::testing::Test {
 protected:
  void Script(std::vector<std::pair<int, json>> answers) {
    answers_ = std::move(answers);
    server_.Get(R"(/api/projects/([^/]+)/deployments)",
                [this](const httplib::Request&, httplib::Response& res) {
                  std::lock_guard lock(mu_);
                  const auto& [status, body] = answers_[std::min(next_, answers_.size() - 1)];
                  ++next_;
                  testutil::FakeHttpServer::Json(res, status, body.dump());
                });
    server_.Start();
    auto client = ApiClient::Create(ApiClientOptions{
        .base_url = server_.url(), .api_key = Secret::FromView("kdl_test_key_0123456789")});
    ASSERT_TRUE(client) << client.error().message();
    client_ = std::move(*client);
  }

  // The followed deployment, newest in a list with an older one.
  json List(const std::string& status, const std::string& instance_status,
            const json& instance_error = nullptr) {
    json followed = {
        {"id", id_},
        {"service", "web"},
        {"image", "canary"},
        {"status", status},
        {"desired_state", "running"},
        {"error", nullptr},
        {"superseded_at", nullptr},
        {"instance", {{"id", "i1"}, {"status", instance_status}, {"error", instance_error}}}};
    json older = {{"id", NewUuidV4()}, {"status", "running"}, {"instance", nullptr}};
    return json::array({followed, older});
  }

  DeploymentFollowOptions Fast() {
    DeploymentFollowOptions options;
    options.interval = milliseconds(10);
    options.timeout = std::chrono::seconds(20);
    options.on_update = [this](const json& d) { seen_.push_back(WorkloadStatus(d)); };
    return options;
  }

  testutil::FakeHttpServer server_;
  std::mutex mu_;
  std::vector<std::pair<int, json>> answers_;
  std::size_t next_ = 0;
  std::unique_ptr<ApiClient> client_;
  std::vector<std::string> seen_;
  const std::string project_ = NewUuidV4();
  const std::string id_ = NewUuidV4();
};

TEST_F(DeploymentFollowTest, ReportsEveryAnswerUntilRunning) {
  Script({{200, List("pending", "pending")},
          {200, List("starting", "starting")},
          {200, List("running", "running")}});
  auto done = FollowDeployment(*client_, project_, id_, Fast());
  ASSERT_TRUE(done) << done.error().message();
  EXPECT_TRUE(IsRunning(*done));
  EXPECT_EQ((*done)["id"], id_);
  EXPECT_EQ(seen_, (std::vector<std::string>{"pending", "starting", "running"}));
  ASSERT_EQ(server_.requests().size(), 3u);
  EXPECT_EQ(server_.requests()[0].path, "/api/projects/" + project_ + "/deployments");
}

TEST_F(DeploymentFollowTest, AFailedWorkloadIsAResultWithItsError) {
  Script({{200, List("starting", "starting")},
          {200, List("failed", "failed", "guest did not answer within 60 s")}});
  auto done = FollowDeployment(*client_, project_, id_, Fast());
  ASSERT_TRUE(done) << done.error().message();
  EXPECT_TRUE(IsSettled(*done));
  EXPECT_FALSE(IsRunning(*done));
  EXPECT_EQ(DeploymentError(*done), "guest did not answer within 60 s");
  json own_error = (*done);
  own_error["instance"]["error"] = nullptr;
  own_error["error"] = "no worker";
  EXPECT_EQ(DeploymentError(own_error), "no worker");
}

TEST_F(DeploymentFollowTest, TheNewestInstanceWinsOverAStaleDeploymentStatus) {
  // Right after `start` of a failed deployment: a new instance is pending.
  Script({{200, List("failed", "pending")},
          {200, List("failed", "starting")},
          {200, List("running", "running")}});
  auto done = FollowDeployment(*client_, project_, id_, Fast());
  ASSERT_TRUE(done) << done.error().message();
  EXPECT_EQ(seen_, (std::vector<std::string>{"pending", "starting", "running"}));
}

TEST_F(DeploymentFollowTest, StoppedForGoodEndsTheWait) {
  json superseded = List("stopped", "stopped");
  superseded[0]["superseded_at"] = "2024-05-01T12:00:00Z";
  superseded[0]["desired_state"] = "stopped";
  json restarting = List("stopped", "stopped");  // desired running: a start is coming
  EXPECT_FALSE(IsSettled(restarting[0]));
  Script({{200, List("starting", "starting")}, {200, superseded}});
  auto done = FollowDeployment(*client_, project_, id_, Fast());
  ASSERT_TRUE(done) << done.error().message();
  EXPECT_EQ(WorkloadStatus(*done), "stopped");
  EXPECT_FALSE(IsRunning(*done));
}

TEST_F(DeploymentFollowTest, UnknownDeploymentAndRefusalsEndAtOnce) {
  Script({{200, json::array({{{"id", NewUuidV4()}, {"status", "running"}}})}});
  auto done = FollowDeployment(*client_, project_, id_, Fast());
  ASSERT_FALSE(done);
  EXPECT_EQ(done.error().kind(), ErrorKind::kNotFound);
  EXPECT_NE(done.error().message().find(id_), std::string::npos);
  EXPECT_EQ(server_.requests().size(), 1u);
}

TEST_F(DeploymentFollowTest, RidesOutTransientFailures) {
  const json unavailable = {{"error", "database unreachable"}, {"code", "service_unavailable"}};
  Script({{200, List("pending", "pending")},
          {503, unavailable},
          {503, unavailable},
          {200, List("running", "running")}});
  auto done = FollowDeployment(*client_, project_, id_, Fast());
  ASSERT_TRUE(done) << done.error().message();
  EXPECT_EQ(seen_, (std::vector<std::string>{"pending", "running"}));
}

TEST_F(DeploymentFollowTest, TimesOutWithTheLastStatus) {
  Script({{200, List("starting", "starting")}});
  DeploymentFollowOptions options = Fast();
  options.timeout = milliseconds(200);
  const auto start = std::chrono::steady_clock::now();
  auto done = FollowDeployment(*client_, project_, id_, options);
  ASSERT_FALSE(done);
  EXPECT_EQ(done.error().kind(), ErrorKind::kTransient);
  EXPECT_NE(done.error().message().find("deployment " + id_ + " is still starting after"),
            std::string::npos)
      << done.error().message();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

TEST_F(DeploymentFollowTest, CancelStopsPromptly) {
  Script({{200, List("pending", "pending")}});
  std::atomic<bool> cancel{false};
  DeploymentFollowOptions options = Fast();
  options.interval = milliseconds(10'000);
  options.cancelled = [&] { return cancel.load(); };
  options.on_update = [&](const json&) { cancel = true; };
  const auto start = std::chrono::steady_clock::now();
  auto done = FollowDeployment(*client_, project_, id_, options);
  ASSERT_FALSE(done);
  EXPECT_EQ(done.error().kind(), ErrorKind::kCancelled);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

}  // namespace
}  // namespace kindling::client
