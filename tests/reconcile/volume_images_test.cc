#include "reconcile/volume_images.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace kindling::reconcile {
namespace {

using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

// The external tools (mkfs.ext4, e2fsck) run with a timeout and a cancel
// flag; `sleep` stands for a tool that hangs.
TEST(VolumeImagesTest, ToolPastItsTimeoutIsStoppedWithAClearError) {
  const auto start = Clock::now();
  auto ran =
      RunCommand({"/bin/sleep", "30"}, ToolLimits{.timeout = std::chrono::milliseconds(200)});
  ASSERT_FALSE(ran);
  EXPECT_EQ(ran.error().kind(), ErrorKind::kIo);
  EXPECT_THAT(ran.error().message(), HasSubstr("sleep timed out"));
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
}

TEST(VolumeImagesTest, CancelledToolIsStoppedPromptly) {
  std::atomic<bool> cancel{false};
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    cancel = true;
  });
  const auto start = Clock::now();
  auto ran = RunCommand({"/bin/sleep", "30"},
                        ToolLimits{.timeout = std::chrono::seconds(60), .cancel = &cancel});
  canceller.join();
  ASSERT_FALSE(ran);
  EXPECT_EQ(ran.error().kind(), ErrorKind::kCancelled);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
}

TEST(VolumeImagesTest, ToolThatFinishesReportsExitAndOutput) {
  auto ran = RunCommand({"/bin/sh", "-c", "echo out; echo err >&2; exit 1"});
  ASSERT_TRUE(ran) << ran.error().message();
  EXPECT_EQ(ran->exit_code, 1);
  EXPECT_THAT(ran->output, HasSubstr("out"));
  EXPECT_THAT(ran->output, HasSubstr("err"));
}

}  // namespace
}  // namespace kindling::reconcile
