#include "common/subprocess.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <string>
#include <thread>

#include "testutil/temp_dir.h"

namespace kindling {
namespace {

using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

CommandOptions Shell(const std::string& script) {
  CommandOptions options;
  options.args = {"/bin/sh", "-c", script};
  return options;
}

TEST(SubprocessTest, CapturesOutputErrorsAndExitStatus) {
  auto result = SystemCommandRunner().Run(Shell("echo out; echo err >&2; exit 3"));
  ASSERT_TRUE(result) << result.error().message();
  EXPECT_EQ(result->exit_status, 3);
  EXPECT_EQ(result->output, "out\n");
  EXPECT_EQ(result->errors, "err\n");
  EXPECT_FALSE(result->timed_out);
}

TEST(SubprocessTest, TimeoutStopsTheWholeProcessGroup) {
  testutil::TempDir dir;
  const std::string marker = (dir / "helper-alive").string();
  // A helper forked by the command would touch the marker after 3 s unless
  // the timeout stops it with its parent.
  CommandOptions options = Shell("(sleep 3; touch " + marker + ") & sleep 30");
  options.timeout = std::chrono::milliseconds(300);
  const auto start = Clock::now();
  auto result = SystemCommandRunner().Run(options);
  ASSERT_TRUE(result) << result.error().message();
  EXPECT_TRUE(result->timed_out);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
  EXPECT_THAT(DescribeExit(*result, options), HasSubstr("timed out"));
  ::sleep(4);
  EXPECT_FALSE(std::filesystem::exists(marker));
}

TEST(SubprocessTest, CancelStopsTheWholeProcessGroupPromptly) {
  testutil::TempDir dir;
  const std::string marker = (dir / "helper-alive").string();
  CommandOptions options = Shell("(sleep 3; touch " + marker + ") & sleep 30");
  options.timeout = std::chrono::seconds(60);
  std::atomic<bool> cancel{false};
  options.cancel = &cancel;
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    cancel = true;
  });
  const auto start = Clock::now();
  auto result = SystemCommandRunner().Run(options);
  canceller.join();
  ASSERT_TRUE(result) << result.error().message();
  EXPECT_TRUE(result->cancelled);
  EXPECT_FALSE(result->timed_out);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
  EXPECT_THAT(DescribeExit(*result, options), HasSubstr("cancelled"));
  ::sleep(4);
  EXPECT_FALSE(std::filesystem::exists(marker));
}

TEST(SubprocessTest, DaemonsLeftBehindDoNotHoldTheCallUp) {
  // The background child inherits stdout and outlives the command (as a
  // server started by pg_ctl does); Run returns once the command exits.
  CommandOptions options = Shell("sleep 5 & echo started");
  const auto start = Clock::now();
  auto result = SystemCommandRunner().Run(options);
  ASSERT_TRUE(result) << result.error().message();
  EXPECT_EQ(result->exit_status, 0);
  EXPECT_EQ(result->output, "started\n");
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(3));
}

TEST(SubprocessTest, OutputIsCappedButFullyRead) {
  CommandOptions options = Shell("head -c 1000000 /dev/zero; echo done >&2");
  options.max_output = 1000;
  auto result = SystemCommandRunner().Run(options);
  ASSERT_TRUE(result) << result.error().message();
  EXPECT_EQ(result->exit_status, 0);
  EXPECT_EQ(result->output.size(), 1000u);
  EXPECT_EQ(result->errors, "done\n");
}

TEST(SubprocessTest, EnvironmentIsFilteredAndExtended) {
  ::setenv("KINDLING_SUBPROCESS_TEST_DROP", "x", 1);
  CommandOptions options = Shell("echo \"${KINDLING_SUBPROCESS_TEST_DROP:-gone} $EXTRA\"");
  options.drop_env_prefixes = {"KINDLING_SUBPROCESS_TEST_"};
  options.extra_env = {"EXTRA=added"};
  auto result = SystemCommandRunner().Run(options);
  ASSERT_TRUE(result) << result.error().message();
  EXPECT_EQ(result->output, "gone added\n");
}

TEST(SubprocessTest, MissingProgramAndRelativePath) {
  CommandOptions missing;
  missing.args = {"/nonexistent/program"};
  auto result = SystemCommandRunner().Run(missing);
  ASSERT_TRUE(result);
  EXPECT_EQ(result->exit_status, 127);
  CommandOptions relative;
  relative.args = {"sh", "-c", "true"};
  auto refused = SystemCommandRunner().Run(relative);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().kind(), ErrorKind::kInvalidArgument);
}

TEST(SubprocessTest, RunsAsAnotherUser) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  auto nobody = LookUpSystemUser("nobody");
  ASSERT_TRUE(nobody) << nobody.error().message();
  CommandOptions options;
  options.args = {"/usr/bin/id", "-u"};
  options.run_as = *nobody;
  auto result = SystemCommandRunner().Run(options);
  ASSERT_TRUE(result) << result.error().message();
  EXPECT_EQ(result->output, std::to_string(nobody->uid) + "\n");
  EXPECT_FALSE(LookUpSystemUser("no-such-user-kindling"));
}

}  // namespace
}  // namespace kindling
