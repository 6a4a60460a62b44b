#include "api/connection_threads.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <latch>
#include <mutex>
#include <vector>

namespace kindling::api {
namespace {

TEST(ConnectionThreadsTest, EveryBlockedJobGetsAThreadUpToTheMaximum) {
  ConnectionThreads pool(/*keep_threads=*/2, /*max_threads=*/6);
  std::latch release(1);
  std::latch started(6);
  for (int i = 0; i < 6; ++i) {
    pool.enqueue([&] {
      started.count_down();
      release.wait();
    });
  }
  // Six jobs that never return on their own all run at once: more than
  // keep_threads, each on its own thread.
  started.wait();
  EXPECT_EQ(pool.threads(), 6u);

  // A seventh waits for a free thread rather than exceeding the maximum.
  std::promise<void> seventh_ran;
  pool.enqueue([&] { seventh_ran.set_value(); });
  EXPECT_EQ(pool.threads(), 6u);
  release.count_down();
  seventh_ran.get_future().wait();
  pool.shutdown();
  EXPECT_EQ(pool.threads(), 0u);
}

TEST(ConnectionThreadsTest, QueuedJobsRunInOrderAndShutdownRunsTheRest) {
  std::mutex mu;
  std::vector<int> order;
  {
    ConnectionThreads pool(1, 1);
    std::latch release(1);
    pool.enqueue([&] { release.wait(); });
    for (int i = 0; i < 5; ++i) {
      pool.enqueue([&, i] {
        std::lock_guard lock(mu);
        order.push_back(i);
      });
    }
    release.count_down();
    pool.shutdown();
  }
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST(ConnectionThreadsTest, ExtraThreadsExitWhenIdleAndKeptOnesStay) {
  ConnectionThreads pool(1, 4, std::chrono::milliseconds(10));
  std::latch release(1);
  std::latch started(4);
  for (int i = 0; i < 4; ++i) {
    pool.enqueue([&] {
      started.count_down();
      release.wait();
    });
  }
  started.wait();
  release.count_down();
  while (pool.threads() > 1) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(pool.threads(), 1u);
  // Still serving after the others left (and their threads were joined).
  std::promise<void> ran;
  pool.enqueue([&] { ran.set_value(); });
  ran.get_future().wait();
}

}  // namespace
}  // namespace kindling::api
