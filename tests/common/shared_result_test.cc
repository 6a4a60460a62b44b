#include "common/shared_result.h"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>

#include "common/blocking_region.h"

namespace kindling {
namespace {

// Counts the BlockingHook calls of the thread it is installed on.
struct CountingHook final : BlockingHook {
  int left = 0;
  int returned = 0;
  void Leave() override { ++left; }
  void Return() override { ++returned; }
};

TEST(SharedResultTest, WaitersGetTheValueSetAndTheirWaitIsABlockingRegion) {
  std::mutex mu;
  SharedResult<std::string> shared;
  std::atomic<int> waiting{0};
  std::string got[2];
  CountingHook hooks[2];
  std::thread waiters[2];
  for (int i = 0; i < 2; ++i) {
    waiters[i] = std::thread([&, i] {
      const ScopedBlockingHook installed(&hooks[i]);
      ++waiting;
      got[i] = shared.Await(mu);
    });
  }
  while (waiting.load() < 2) std::this_thread::yield();
  {
    std::lock_guard lock(mu);
    EXPECT_FALSE(shared.value().has_value());
    shared.Set("the read");
    ASSERT_TRUE(shared.value().has_value());
    EXPECT_EQ(*shared.value(), "the read");
  }
  for (auto& w : waiters) w.join();
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(got[i], "the read");
    EXPECT_EQ(hooks[i].left, 1);
    EXPECT_EQ(hooks[i].returned, 1);
  }
  // Once set, Await returns at once.
  EXPECT_EQ(shared.Await(mu), "the read");
}

}  // namespace
}  // namespace kindling
