// FollowOperation against a scripted server: it reports every answer, stops
// at succeeded or failed (returning the document either way), keeps going
// through transient failures within the grace period only, gives up at once
// on other errors, and stops promptly when cancelled.
#include "client/operation_follow.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/ids.h"
#include "testutil/fake_http_server.h"

namespace kindling::client {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

// Answers GET /api/operations/{id} from a script: each entry is used once,
// the last one forever. An entry is {status, body}.
class OperationFollowTest : public ::testing::Test {
 protected:
  void Script(std::vector<std::pair<int, json>> answers) {
    answers_ = std::move(answers);
    server_.Get(R"(/api/operations/([^/]+))",
                [this](const httplib::Request& req, httplib::Response& res) {
                  std::lock_guard lock(mu_);
                  const auto& [status, body] = answers_[std::min(next_, answers_.size() - 1)];
                  ++next_;
                  json out = body;
                  if (out.is_object() && !out.contains("id")) out["id"] = req.matches[1];
                  testutil::FakeHttpServer::Json(res, status, out.dump());
                });
    server_.Start();
    auto client = ApiClient::Create(ApiClientOptions{
        .base_url = server_.url(), .api_key = Secret::FromView("kdl_test_key_0123456789")});
    ASSERT_TRUE(client) << client.error().message();
    client_ = std::move(*client);
  }

  static json Op(const std::string& status, json progress = nullptr) {
    json op = {{"kind", "backup"}, {"status", status}, {"error", nullptr}};
    op["progress"] =
        progress.is_null()
            ? json{{"phase", nullptr}, {"bytes_done", nullptr}, {"bytes_total", nullptr}}
            : progress;
    return op;
  }

  FollowOptions Fast() {
    FollowOptions options;
    options.interval = milliseconds(10);
    options.on_update = [this](const json& op) { seen_.push_back(op.value("status", "")); };
    return options;
  }

  testutil::FakeHttpServer server_;
  std::mutex mu_;
  std::vector<std::pair<int, json>> answers_;
  std::size_t next_ = 0;
  std::unique_ptr<ApiClient> client_;
  std::vector<std::string> seen_;
  const std::string id_ = NewUuidV4();
};

TEST_F(OperationFollowTest, ReportsEveryAnswerUntilSucceeded) {
  Script({{200, Op("pending")},
          {200, Op("running", {{"phase", "backup"}, {"bytes_done", 10}, {"bytes_total", 100}})},
          {200, Op("running", {{"phase", "commit"}, {"bytes_done", 100}, {"bytes_total", 100}})},
          {200, Op("succeeded")}});
  auto done = FollowOperation(*client_, id_, Fast());
  ASSERT_TRUE(done) << done.error().message();
  EXPECT_EQ((*done)["status"], "succeeded");
  EXPECT_EQ(seen_, (std::vector<std::string>{"pending", "running", "running", "succeeded"}));
  EXPECT_TRUE(Succeeded(*done));
  EXPECT_EQ(server_.requests().size(), 4u);
  EXPECT_EQ(server_.requests()[0].path, "/api/operations/" + id_);
}

TEST_F(OperationFollowTest, AFailedOperationIsAResultNotAnError) {
  json failed = Op("failed");
  failed["error"] = "image missing";
  Script({{200, Op("running")}, {200, failed}});
  auto done = FollowOperation(*client_, id_, Fast());
  ASSERT_TRUE(done) << done.error().message();
  EXPECT_TRUE(IsFinished(*done));
  EXPECT_FALSE(Succeeded(*done));
  EXPECT_EQ((*done)["error"], "image missing");
}

TEST_F(OperationFollowTest, RidesOutTransientFailuresWithinGrace) {
  const json unavailable = {{"error", "database unreachable"}, {"code", "service_unavailable"}};
  Script({{200, Op("running")}, {503, unavailable}, {503, unavailable}, {200, Op("succeeded")}});
  auto done = FollowOperation(*client_, id_, Fast());
  ASSERT_TRUE(done) << done.error().message();
  EXPECT_EQ((*done)["status"], "succeeded");
  EXPECT_EQ(seen_, (std::vector<std::string>{"running", "succeeded"}));
}

TEST_F(OperationFollowTest, GivesUpAfterGrace) {
  const json unavailable = {{"error", "database unreachable"}, {"code", "service_unavailable"}};
  Script({{200, Op("running")}, {503, unavailable}});
  FollowOptions options = Fast();
  options.transient_grace = milliseconds(100);
  auto done = FollowOperation(*client_, id_, options);
  ASSERT_FALSE(done);
  EXPECT_EQ(done.error().kind(), ErrorKind::kTransient);
  EXPECT_NE(done.error().message().find("(service_unavailable)"), std::string::npos);
}

TEST_F(OperationFollowTest, OtherErrorsEndTheWaitAtOnce) {
  Script({{404, {{"error", "operation not found"}, {"code", "not_found"}}}});
  auto done = FollowOperation(*client_, id_, Fast());
  ASSERT_FALSE(done);
  EXPECT_EQ(done.error().kind(), ErrorKind::kNotFound);
  EXPECT_EQ(server_.requests().size(), 1u);
}

TEST_F(OperationFollowTest, CancelStopsPromptly) {
  Script({{200, Op("pending")}});
  std::atomic<bool> cancel{false};
  FollowOptions options = Fast();
  options.interval = milliseconds(10'000);
  options.cancelled = [&] { return cancel.load(); };
  options.on_update = [&](const json&) { cancel = true; };
  const auto start = std::chrono::steady_clock::now();
  auto done = FollowOperation(*client_, id_, options);
  ASSERT_FALSE(done);
  EXPECT_EQ(done.error().kind(), ErrorKind::kCancelled);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

}  // namespace
}  // namespace kindling::client
