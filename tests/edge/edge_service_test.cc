// EdgeService with a scripted RouteSource: routes are loaded at start, on
// Reload() (bursts coalesced into one more load) and periodically; a failing
// source keeps the previous routes and is logged once.
#include "edge/edge_service.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <utility>

#include "edge/test_backend.h"
#include "testutil/fake_http_server.h"

namespace kindling::edge {
namespace {

using testing::LogCapture;
using testing::ProxyGet;
using testing::TestBackend;
using testing::WaitFor;

constexpr const char* kWeb = "web-shop.apps.test";

// Answers the routes it is given, or an error; can hold a Load() until
// Unblock(). Thread-safe.
class ScriptedSource final : public RouteSource {
 public:
  Result<std::vector<Route>> Load() override {
    std::unique_lock lock(mu_);
    ++started_;
    changed_.notify_all();
    changed_.wait(lock, [this] { return !blocked_; });
    if (failing_) return TransientError("database unreachable");
    return routes_;
  }

  void Set(std::vector<Route> routes) {
    std::lock_guard lock(mu_);
    routes_ = std::move(routes);
  }
  void SetFailing(bool failing) {
    std::lock_guard lock(mu_);
    failing_ = failing;
  }
  void Block() {
    std::lock_guard lock(mu_);
    blocked_ = true;
  }
  void Unblock() {
    {
      std::lock_guard lock(mu_);
      blocked_ = false;
    }
    changed_.notify_all();
  }
  // Waits until `n` loads have started.
  bool WaitForStarted(int n) {
    std::unique_lock lock(mu_);
    return changed_.wait_for(lock, std::chrono::seconds(3), [&] { return started_ >= n; });
  }
  int started() {
    std::lock_guard lock(mu_);
    return started_;
  }

 private:
  std::mutex mu_;
  std::condition_variable changed_;
  std::vector<Route> routes_;
  bool failing_ = false;
  bool blocked_ = false;
  int started_ = 0;
};

class EdgeServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    a_.Start();
    b_.Start();
  }

  // Starts the service; `source_` stays usable through the raw pointer.
  void StartService(std::chrono::milliseconds reload_interval = std::chrono::minutes(10)) {
    auto source = std::make_unique<ScriptedSource>();
    source_ = source.get();
    source_->Set(routes_);
    service_ = std::make_unique<EdgeService>(
        std::move(source),
        EdgeServiceOptions{
            .proxy = EdgeProxyOptions{.backend_timeout = std::chrono::milliseconds(500)},
            .health = HealthCheckOptions{.interval = std::chrono::minutes(10)},
            .reload_interval = reload_interval});
    ASSERT_TRUE(service_->Start());
  }

  // Waits until no reload is pending or running and `loads` have finished.
  bool WaitForLoads(std::uint64_t loads) {
    return WaitFor([&] {
      const auto stats = service_->reload_stats();
      return !stats.pending && !stats.loading && stats.loads == loads;
    });
  }

  std::string Answer(const std::string& host = kWeb) {
    auto res = ProxyGet(service_->port(), host, "/");
    if (!res) return "(no answer)";
    return std::to_string(res->status) + " " + (res->status == 200 ? res->body : "");
  }

  LogCapture log_;  // outlives everything that logs
  TestBackend a_{"a"};
  TestBackend b_{"b"};
  std::vector<Route> routes_;
  ScriptedSource* source_ = nullptr;
  std::unique_ptr<EdgeService> service_;
};

TEST_F(EdgeServiceTest, StartLoadsRoutesAndServes) {
  routes_ = {Route{.hostname = kWeb, .backends = {a_.backend()}}};
  StartService();
  EXPECT_EQ(source_->started(), 1);
  EXPECT_EQ(Answer(), "200 a");
  EXPECT_EQ(Answer("other.apps.test"), "404 ");
  EXPECT_EQ(service_->reload_stats().loads, 1u);
}

TEST_F(EdgeServiceTest, ReloadInstallsTheNewRoutes) {
  routes_ = {Route{.hostname = kWeb, .backends = {a_.backend()}}};
  StartService();
  source_->Set({Route{.hostname = kWeb, .backends = {b_.backend()}},
                Route{.hostname = "api-shop.apps.test", .backends = {a_.backend()}}});
  service_->Reload();
  ASSERT_TRUE(WaitForLoads(2));
  EXPECT_EQ(Answer(), "200 b");
  EXPECT_EQ(Answer("api-shop.apps.test"), "200 a");
}

TEST_F(EdgeServiceTest, ReloadBurstsAreCoalesced) {
  routes_ = {Route{.hostname = kWeb, .backends = {a_.backend()}}};
  StartService();
  source_->Block();
  service_->Reload();
  ASSERT_TRUE(source_->WaitForStarted(2));
  // A burst of notifications while that load runs...
  for (int i = 0; i < 50; ++i) service_->Reload();
  EXPECT_TRUE(service_->reload_stats().pending);
  source_->Set({Route{.hostname = kWeb, .backends = {b_.backend()}}});
  source_->Unblock();
  // ...is served by exactly one more load, which sees the newest routes.
  ASSERT_TRUE(WaitForLoads(3));
  EXPECT_EQ(source_->started(), 3);
  EXPECT_EQ(Answer(), "200 b");
}

TEST_F(EdgeServiceTest, PeriodicReloadHealsAMissedNotification) {
  routes_ = {Route{.hostname = kWeb, .backends = {a_.backend()}}};
  StartService(std::chrono::milliseconds(20));
  source_->Set({Route{.hostname = kWeb, .backends = {b_.backend()}}});
  EXPECT_TRUE(WaitFor([&] { return Answer() == "200 b"; }));
  EXPECT_GE(source_->started(), 2);
}

TEST_F(EdgeServiceTest, FailingSourceKeepsThePreviousRoutesAndLogsOnce) {
  routes_ = {Route{.hostname = kWeb, .backends = {a_.backend()}}};
  StartService();
  source_->SetFailing(true);
  for (std::uint64_t load = 2; load <= 4; ++load) {
    service_->Reload();
    ASSERT_TRUE(WaitForLoads(load));
    EXPECT_EQ(Answer(), "200 a");
  }
  EXPECT_EQ(service_->reload_stats().failures, 3u);
  EXPECT_EQ(log_.Count("loading routes failed, keeping the previous 1 routes: database "
                       "unreachable"),
            1u)
      << log_.text();

  source_->SetFailing(false);
  source_->Set({Route{.hostname = kWeb, .backends = {b_.backend()}}});
  service_->Reload();
  ASSERT_TRUE(WaitForLoads(5));
  EXPECT_EQ(Answer(), "200 b");
  EXPECT_EQ(log_.Count("routes load again"), 1u);

  const std::string metrics = service_->MetricsText();
  EXPECT_NE(metrics.find("kindling_edge_route_loads_total{result=\"ok\"} 2\n"), std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("kindling_edge_route_loads_total{result=\"error\"} 3\n"),
            std::string::npos);
  EXPECT_NE(metrics.find("kindling_edge_responses_total{class=\"2xx\"}"), std::string::npos);
}

TEST_F(EdgeServiceTest, FailedFirstLoadStillServesAndHealsLater) {
  auto source = std::make_unique<ScriptedSource>();
  ScriptedSource* raw = source.get();
  raw->SetFailing(true);
  EdgeService service(std::move(source),
                      EdgeServiceOptions{.reload_interval = std::chrono::milliseconds(20)});
  ASSERT_TRUE(service.Start());
  auto res = ProxyGet(service.port(), kWeb, "/");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
  raw->Set({Route{.hostname = kWeb, .backends = {a_.backend()}}});
  raw->SetFailing(false);
  EXPECT_TRUE(WaitFor([&] {
    auto again = ProxyGet(service.port(), kWeb, "/");
    return again && again->status == 200 && again->body == "a";
  }));
  service.Stop();
}

TEST_F(EdgeServiceTest, StartFailsWhenThePortIsTaken) {
  auto source = std::make_unique<ScriptedSource>();
  EdgeService service(std::move(source),
                      EdgeServiceOptions{.proxy = EdgeProxyOptions{.port = a_.port()}});
  auto started = service.Start();
  ASSERT_FALSE(started);
  EXPECT_EQ(started.error().kind(), ErrorKind::kIo);
  service.Stop();
}

}  // namespace
}  // namespace kindling::edge
