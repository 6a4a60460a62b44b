#include "api/request_gate.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "common/blocking_region.h"

namespace kindling::api {
namespace {

using std::chrono::milliseconds;

// Waits until `n` requests wait at `gate`, so that threads queue in the
// order the test starts them.
void AwaitWaiting(const RequestGate& gate, std::size_t n) {
  while (gate.waiting() < n) std::this_thread::sleep_for(milliseconds(1));
}

TEST(RequestGateTest, AtMostCapacityRun) {
  RequestGate gate(2, std::chrono::seconds(10));
  ASSERT_TRUE(gate.Enter());
  ASSERT_TRUE(gate.Enter());
  EXPECT_EQ(gate.free_slots(), 0u);
  std::atomic<bool> third{false};
  std::thread waiter([&] {
    EXPECT_TRUE(gate.Enter());
    third = true;
    gate.Exit();
  });
  AwaitWaiting(gate, 1);
  EXPECT_FALSE(third);
  gate.Exit();
  waiter.join();
  EXPECT_TRUE(third);
  gate.Exit();
  EXPECT_EQ(gate.free_slots(), 2u);
}

TEST(RequestGateTest, WaitersGoInArrivalOrder) {
  RequestGate gate(1, std::chrono::seconds(10));
  ASSERT_TRUE(gate.Enter());
  std::mutex mu;
  std::vector<int> order;
  std::vector<std::thread> waiters;
  for (int i = 0; i < 4; ++i) {
    waiters.emplace_back([&, i] {
      EXPECT_TRUE(gate.Enter());
      {
        std::lock_guard lock(mu);
        order.push_back(i);
      }
      gate.Exit();
    });
    AwaitWaiting(gate, i + 1);
  }
  gate.Exit();
  for (auto& t : waiters) t.join();
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(gate.free_slots(), 1u);
  EXPECT_EQ(gate.bypassed(), 0u);
}

TEST(RequestGateTest, NoRequestWaitsLongerThanMaxWait) {
  RequestGate gate(1, milliseconds(100));
  ASSERT_TRUE(gate.Enter());
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(gate.Enter());  // the slot holder is stuck: go on without one
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(100));
  EXPECT_EQ(gate.bypassed(), 1u);
  gate.Exit();
  EXPECT_EQ(gate.free_slots(), 1u);
}

TEST(RequestGateTest, AReturningRequestGoesAheadOfNewArrivals) {
  RequestGate gate(1, std::chrono::seconds(10));
  ASSERT_TRUE(gate.Enter());
  std::mutex mu;
  std::vector<std::string> order;
  std::thread arrival([&] {
    EXPECT_TRUE(gate.Enter());
    std::lock_guard lock(mu);
    order.push_back("new");
    gate.Exit();
  });
  AwaitWaiting(gate, 1);
  std::thread returning([&] {
    EXPECT_TRUE(gate.Reenter());
    {
      std::lock_guard lock(mu);
      order.push_back("returning");
    }
    gate.Exit();
  });
  AwaitWaiting(gate, 2);
  gate.Exit();
  arrival.join();
  returning.join();
  EXPECT_EQ(order, (std::vector<std::string>{"returning", "new"}));
}

TEST(RequestGateTest, ARequestWaitingForTheDatabaseLeavesItsSlotToAnother) {
  RequestGate gate(1, std::chrono::seconds(10));
  std::atomic<bool> other_ran{false};
  std::thread request([&] {
    gate.BeginRequest();
    EXPECT_EQ(gate.free_slots(), 0u);
    {
      const BlockingRegion waiting_for_postgres;
      // Another request gets the slot while this one waits.
      std::thread other([&] {
        gate.BeginRequest();
        other_ran = true;
        gate.EndRequest();
      });
      other.join();
    }
    EXPECT_TRUE(other_ran);
    EXPECT_EQ(gate.free_slots(), 0u);  // taken back
    gate.EndRequest();
  });
  request.join();
  EXPECT_EQ(gate.free_slots(), 1u);
  EXPECT_EQ(gate.bypassed(), 0u);
}

TEST(RequestGateTest, ARequestNeverEndedIsEndedByTheThreadsNextOne) {
  RequestGate gate(1, milliseconds(100));
  std::thread thread([&] {
    gate.BeginRequest();
    gate.BeginRequest();  // the first one's end was never seen
    EXPECT_EQ(gate.free_slots(), 0u);
    gate.EndRequest();
    gate.EndRequest();  // nothing left to end
  });
  thread.join();
  EXPECT_EQ(gate.free_slots(), 1u);
  EXPECT_EQ(gate.bypassed(), 0u);
}

TEST(RequestGateTest, CapacityZeroIsNoGate) {
  RequestGate gate(0, milliseconds(100));
  EXPECT_FALSE(gate.Enter());
  gate.BeginRequest();
  { const BlockingRegion region; }
  gate.EndRequest();
  EXPECT_EQ(gate.bypassed(), 0u);
}

}  // namespace
}  // namespace kindling::api
