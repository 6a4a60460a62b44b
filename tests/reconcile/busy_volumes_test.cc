#include "reconcile/busy_volumes.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <optional>
#include <thread>

#include "common/result.h"

namespace kindling::reconcile {
namespace {

TEST(BusyVolumesTest, MarksAreCountedSoAnOperationOutlivesAReconcilerScope) {
  BusyVolumes busy;
  {
    BusyScope reconciler(busy, "v");
    ASSERT_TRUE(reconciler.acquired());
    busy.Mark("v");  // an operation claimed meanwhile
  }
  // The reconciler's scope ended; the operation still holds the volume.
  EXPECT_FALSE(BusyScope(busy, "v").acquired());
  busy.Release("v");
  EXPECT_TRUE(BusyScope(busy, "v").acquired());
}

TEST(BusyVolumesTest, VolumesAreIndependent) {
  BusyVolumes busy;
  BusyScope a(busy, "a");
  EXPECT_TRUE(a.acquired());
  EXPECT_FALSE(BusyScope(busy, "a").acquired());
  EXPECT_TRUE(BusyScope(busy, "b").acquired());
  busy.Release("never-marked");  // harmless
  EXPECT_FALSE(BusyScope(busy, "a").acquired());
}

// A claim that read the executing set before another claim's mark must not
// decide after it: the second claim waits at the gate, then sees the mark.
TEST(ExecutingVolumesTest, AClaimSeesEveryMarkMadeBeforeItDecides) {
  ExecutingVolumes executing;
  const auto volume_of = [](const std::string& v) { return v; };
  std::promise<void> first_inside;
  std::promise<void> let_first_decide;
  auto first = std::async(std::launch::async, [&] {
    return executing.Claim(
        [&](const std::vector<std::string>& seen) -> Result<std::optional<std::string>> {
          EXPECT_TRUE(seen.empty());
          first_inside.set_value();
          let_first_decide.get_future().wait();  // a slow database round trip
          return std::optional<std::string>("v");
        },
        volume_of);
  });
  first_inside.get_future().wait();
  std::atomic<bool> second_ran{false};
  std::vector<std::string> second_saw;
  auto second = std::async(std::launch::async, [&] {
    return executing.Claim(
        [&](const std::vector<std::string>& seen) -> Result<std::optional<std::string>> {
          second_ran = true;
          second_saw = seen;
          return std::optional<std::string>();  // the only operation's volume is busy
        },
        volume_of);
  });
  EXPECT_EQ(second.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout);
  EXPECT_FALSE(second_ran.load()) << "a claim decided while another one held the gate";
  let_first_decide.set_value();
  auto got = first.get();
  ASSERT_TRUE(got && *got);
  EXPECT_EQ(**got, "v");
  auto none = second.get();
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none);
  EXPECT_EQ(second_saw, std::vector<std::string>{"v"});
  EXPECT_EQ(executing.List(), std::vector<std::string>{"v"});
  executing.Release("v");
  EXPECT_TRUE(executing.List().empty());
}

TEST(ExecutingVolumesTest, AFailedOrEmptyClaimMarksNothing) {
  ExecutingVolumes executing;
  const auto volume_of = [](const std::string& v) { return v; };
  auto failed = executing.Claim(
      [](const std::vector<std::string>&) -> Result<std::optional<std::string>> {
        return std::unexpected(Error(ErrorKind::kTransient, "database down"));
      },
      volume_of);
  EXPECT_FALSE(failed);
  auto empty = executing.Claim(
      [](const std::vector<std::string>&) -> Result<std::optional<std::string>> {
        return std::optional<std::string>();
      },
      volume_of);
  ASSERT_TRUE(empty);
  EXPECT_TRUE(executing.List().empty());
}

}  // namespace
}  // namespace kindling::reconcile
