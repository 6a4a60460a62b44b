#include "common/thread_priority.h"

#include <gtest/gtest.h>

#include <thread>

namespace kindling {
namespace {

// Runs `fn` on a fresh thread, so the test process keeps its own priority.
template <typename F>
void OnThread(F fn) {
  std::thread t(fn);
  t.join();
}

TEST(ThreadPriorityTest, LowersOnlyTheCallingThreadAndNewThreadsInheritIt) {
  auto before = GetThisThreadPriority();
  ASSERT_TRUE(before) << before.error().message();
  OnThread([&] {
    ASSERT_TRUE(SetThisThreadPriority({.nice = 10, .io_level = 7}));
    auto now = GetThisThreadPriority();
    ASSERT_TRUE(now) << now.error().message();
    EXPECT_EQ(now->nice, 10);
    EXPECT_EQ(now->io_level, 7);
    // The engine's pipeline threads, started from an executor, inherit it.
    OnThread([] {
      auto child = GetThisThreadPriority();
      ASSERT_TRUE(child);
      EXPECT_EQ(child->nice, 10);
      EXPECT_EQ(child->io_level, 7);
    });
  });
  auto after = GetThisThreadPriority();
  ASSERT_TRUE(after);
  EXPECT_EQ(after->nice, before->nice);
  EXPECT_EQ(after->io_level, before->io_level);
}

TEST(ThreadPriorityTest, OutOfRangeValuesAreRefusedAndChangeNothing) {
  OnThread([] {
    auto before = GetThisThreadPriority();
    ASSERT_TRUE(before);
    auto nice = SetThisThreadPriority({.nice = 20});
    ASSERT_FALSE(nice);
    EXPECT_EQ(nice.error().kind(), ErrorKind::kInvalidArgument);
    auto io = SetThisThreadPriority({.nice = 5, .io_level = 8});
    ASSERT_FALSE(io);
    EXPECT_EQ(io.error().kind(), ErrorKind::kInvalidArgument);
    auto after = GetThisThreadPriority();
    ASSERT_TRUE(after);
    EXPECT_EQ(after->nice, before->nice);
  });
}

}  // namespace
}  // namespace kindling
