// HealthChecker against real HTTP backends: answers below 500 are alive,
// 5xx and refused connections count as failures, N failures in a row make a
// backend unhealthy and one success healthy again; the background thread
// does the same on its own.
#include "edge/health_checker.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>

#include "edge/test_backend.h"
#include "testutil/fake_http_server.h"

namespace kindling::edge {
namespace {

using testing::TestBackend;
using testing::WaitFor;

HealthCheckOptions Fast(std::string path = "/healthz") {
  return HealthCheckOptions{.path = std::move(path),
                            .interval = std::chrono::milliseconds(10),
                            .timeout = std::chrono::milliseconds(300),
                            .unhealthy_after = 3};
}

class HealthCheckerTest : public ::testing::Test {
 protected:
  void SetUp() override { a_.Start(); }

  TestBackend a_{"a"};
  RouteTable table_;
};

TEST_F(HealthCheckerTest, FiveHundredsMakeABackendUnhealthyAfterThresholdOneSuccessHeals) {
  table_.Replace({Route{.hostname = "web.test", .backends = {a_.backend()}}});
  HealthChecker checker(table_, Fast());

  checker.CheckOnce();
  EXPECT_TRUE(table_.IsHealthy(a_.backend()));

  a_.set_health_status(503);
  checker.CheckOnce();
  checker.CheckOnce();
  EXPECT_TRUE(table_.IsHealthy(a_.backend()));
  checker.CheckOnce();
  EXPECT_FALSE(table_.IsHealthy(a_.backend()));

  a_.set_health_status(200);
  checker.CheckOnce();
  EXPECT_TRUE(table_.IsHealthy(a_.backend()));
}

TEST_F(HealthCheckerTest, ClientErrorsCountAsAlive) {
  // An application without a health route answers 404: it still serves.
  table_.Replace({Route{.hostname = "web.test", .backends = {a_.backend()}}});
  HealthChecker checker(table_, Fast("/status/404"));
  for (int i = 0; i < 3; ++i) checker.CheckOnce();
  EXPECT_TRUE(table_.IsHealthy(a_.backend()));

  HealthChecker failing(table_, Fast("/status/500"));
  for (int i = 0; i < 3; ++i) failing.CheckOnce();
  EXPECT_FALSE(table_.IsHealthy(a_.backend()));
}

TEST_F(HealthCheckerTest, RefusedConnectionsCountAsFailures) {
  const Backend closed{.instance_id = "gone", .host = "127.0.0.1", .port = testutil::ClosedPort()};
  table_.Replace({Route{.hostname = "web.test", .backends = {a_.backend(), closed}}});
  HealthChecker checker(table_, Fast());
  for (int i = 0; i < 3; ++i) checker.CheckOnce();
  EXPECT_FALSE(table_.IsHealthy(closed));
  EXPECT_TRUE(table_.IsHealthy(a_.backend()));
}

TEST_F(HealthCheckerTest, ProbesEachDistinctBackendOncePerRound) {
  TestBackend b("b");
  b.Start();
  table_.Replace({Route{.hostname = "web.test", .backends = {a_.backend(), b.backend()}},
                  Route{.hostname = "api.test", .backends = {a_.backend()}}});
  std::mutex mu;
  std::multiset<std::string> probed;
  HealthChecker checker(table_, Fast(), [&](const Backend& backend) {
    std::lock_guard lock(mu);
    probed.insert(backend.instance_id);
    return backend.instance_id != "b";
  });
  checker.CheckOnce();
  EXPECT_EQ(probed, (std::multiset<std::string>{"a", "b"}));
}

TEST_F(HealthCheckerTest, BackgroundThreadNoticesADeadBackendAndItsReturn) {
  table_.Replace({Route{.hostname = "web.test", .backends = {a_.backend()}}});
  HealthChecker checker(table_, Fast());
  checker.Start();
  const int port = a_.port();
  a_.Stop();
  EXPECT_TRUE(WaitFor([&] { return !table_.IsHealthy(a_.backend()); }));
  a_.Start(port);
  EXPECT_TRUE(WaitFor([&] { return table_.IsHealthy(a_.backend()); }));
  checker.Stop();
}

}  // namespace
}  // namespace kindling::edge
