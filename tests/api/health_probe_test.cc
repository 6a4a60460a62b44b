#include "api/health_probe.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

namespace kindling::api {
namespace {

using std::chrono::steady_clock;

class HealthProbeTest : public testing::Test {
 protected:
  HealthProbe::Clock clock() {
    return [this] { return now_.load(); };
  }
  std::atomic<steady_clock::time_point> now_{steady_clock::time_point{} + std::chrono::hours(1)};
  std::atomic<int> pings_{0};
  std::atomic<bool> database_up_{true};
  std::function<Status()> Ping() {
    return [this]() -> Status {
      ++pings_;
      if (!database_up_) return std::unexpected(MakeError(ErrorKind::kTransient, "refused"));
      return {};
    };
  }
};

TEST_F(HealthProbeTest, AnAnswerIsReusedWhileFreshThenThePingRunsAgain) {
  HealthProbe probe(Ping(), std::chrono::milliseconds(1000), clock());
  EXPECT_TRUE(probe.Check());
  now_.store(now_.load() + std::chrono::milliseconds(999));
  EXPECT_TRUE(probe.Check());
  EXPECT_EQ(pings_, 1);
  // The database stops answering: seen at the next ping.
  database_up_ = false;
  now_.store(now_.load() + std::chrono::milliseconds(1));
  auto down = probe.Check();
  ASSERT_FALSE(down);
  EXPECT_EQ(down.error().kind(), ErrorKind::kTransient);
  EXPECT_EQ(pings_, 2);
  // A failure is an answer like any: reused while fresh.
  EXPECT_FALSE(probe.Check());
  EXPECT_EQ(pings_, 2);
  database_up_ = true;
  now_.store(now_.load() + std::chrono::seconds(1));
  EXPECT_TRUE(probe.Check());
  EXPECT_EQ(pings_, 3);
}

TEST_F(HealthProbeTest, ZeroFreshnessPingsEveryTime) {
  HealthProbe probe(Ping(), std::chrono::milliseconds(0), clock());
  EXPECT_TRUE(probe.Check());
  EXPECT_TRUE(probe.Check());
  EXPECT_EQ(pings_, 2);
}

TEST_F(HealthProbeTest, ChecksArrivingDuringAPingWaitForIt) {
  std::promise<void> started;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  HealthProbe probe(
      [&]() -> Status {
        if (++pings_ == 1) {
          started.set_value();
          released.wait();
          return std::unexpected(MakeError(ErrorKind::kTransient, "refused"));
        }
        return {};
      },
      std::chrono::milliseconds(0), clock());
  auto first = std::async(std::launch::async, [&] { return probe.Check(); });
  started.get_future().wait();
  auto second = std::async(std::launch::async, [&] { return probe.Check(); });
  // Time for the second check to find the ping running and wait for it.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  release.set_value();
  EXPECT_FALSE(first.get());
  // The second got the first ping's answer (a ping of its own succeeds).
  EXPECT_FALSE(second.get());
  EXPECT_EQ(pings_, 1);
}

}  // namespace
}  // namespace kindling::api
