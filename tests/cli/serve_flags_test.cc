// `kindling serve`'s capacity, priority and backup verification flags,
// through the binary: --max-operations, --operation-nice,
// --api-db-connections and --backup-verify-* (and their environment
// variables) are checked before anything starts, a worker runs that many
// executors at that nice value, and the leader runs no verification rounds
// with --backup-verify-every 0.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <string>
#include <thread>

#include "cli/cli_harness.h"
#include "cli/exit_codes.h"
#include "testutil/postgres_server.h"
#include "testutil/thread_nice.h"

namespace kindling::clitest {
namespace {

class ServeFlagsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dsn_file_ = dir_.path() / "postgres.dsn";
    std::ofstream(dsn_file_) << database_.dsn() << "\n";
  }

  std::vector<std::string> Serve(const std::string& components) const {
    return {"serve",
            "--components",
            components,
            "--dsn-file",
            dsn_file_.string(),
            "--state-dir",
            (dir_.path() / "state").string(),
            "--hostname",
            "flags-test"};
  }

  testutil::TempDir dir_;
  testutil::TestDatabase database_;
  fs::path dsn_file_;
};

TEST_F(ServeFlagsTest, OutOfRangeValuesAreRefusedBeforeAnythingStarts) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"--max-operations", "0"},       {"--max-operations", "65"},
      {"--operation-nice", "-1"},      {"--operation-nice", "20"},
      {"--api-db-connections", "0"},   {"--api-db-connections", "many"},
      {"--api-threads", "-1"}, {"--api-threads", "1025"}};
  for (const auto& [flag, value] : bad) {
    std::vector<std::string> args = Serve("api,worker");
    args.insert(args.end(), {flag, value});
    const RunResult result = RunKindling(args);
    EXPECT_EQ(result.exit_code, cli::kExitUsage) << flag << " " << value << ": " << result.err;
    EXPECT_NE(result.err.find(flag), std::string::npos) << result.err;
    EXPECT_EQ(result.err.find("started"), std::string::npos) << result.err;
  }
  const RunResult env = RunKindling(Serve("worker"), {{"KINDLING_OPERATION_NICE", "25"}});
  EXPECT_EQ(env.exit_code, cli::kExitUsage) << env.err;
  EXPECT_NE(env.err.find("--operation-nice"), std::string::npos) << env.err;
}

TEST_F(ServeFlagsTest, AWorkerRunsThatManyExecutorsAtThatNiceValue) {
  std::vector<std::string> args = Serve("worker");
  args.insert(args.end(), {"--max-operations", "3"});
  Child child(args, {{"KINDLING_OPERATION_NICE", "7"}});
  constexpr std::string_view kStarted = "up to 3 operation(s) at nice 7";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  int at_seven = 0;
  while (std::chrono::steady_clock::now() < deadline && child.Running()) {
    if (child.StderrSoFar().find(kStarted) != std::string::npos) {
      at_seven = static_cast<int>(std::ranges::count(testutil::ThreadNiceValues(child.pid()), 7));
      if (at_seven == 3) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_NE(child.StderrSoFar().find(kStarted), std::string::npos) << child.StderrSoFar();
  // The three executors, and no other thread (the lease keeper among them).
  EXPECT_EQ(at_seven, 3);
  child.Signal(SIGTERM);
  const RunResult result = child.Wait(std::chrono::seconds(60));
  EXPECT_EQ(result.exit_code, 0) << result.err;
}

// --backup-verify-every and --backup-verify-sample (and their environment
// variables) are checked before anything starts; 0 turns the rounds off,
// which the leader says.
TEST_F(ServeFlagsTest, BackupVerifyFlagsAreCheckedAndZeroTurnsRoundsOff) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"--backup-verify-sample", "0%"},   {"--backup-verify-sample", "101%"},
      {"--backup-verify-sample", "half"}, {"--backup-verify-sample", "25"},
      {"--backup-verify-every", "-1d"},   {"--backup-verify-every", "weekly"}};
  for (const auto& [flag, value] : bad) {
    std::vector<std::string> args = Serve("worker");
    args.insert(args.end(), {flag, value});
    const RunResult result = RunKindling(args);
    EXPECT_EQ(result.exit_code, cli::kExitUsage) << flag << " " << value << ": " << result.err;
    EXPECT_NE(result.err.find(flag), std::string::npos) << result.err;
    EXPECT_EQ(result.err.find("started"), std::string::npos) << result.err;
  }
  const RunResult env = RunKindling(Serve("worker"), {{"KINDLING_BACKUP_VERIFY_SAMPLE", "most"}});
  EXPECT_EQ(env.exit_code, cli::kExitUsage) << env.err;
  EXPECT_NE(env.err.find("--backup-verify-sample"), std::string::npos) << env.err;

  std::vector<std::string> args = Serve("worker");
  args.insert(args.end(), {"--backup-verify-every", "0", "--backup-verify-sample", "25%"});
  Child child(args, {});
  constexpr std::string_view kOff = "backup verification: scheduled rounds are off";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline && child.Running() &&
         child.StderrSoFar().find(kOff) == std::string::npos) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_NE(child.StderrSoFar().find(kOff), std::string::npos) << child.StderrSoFar();
  child.Signal(SIGTERM);
  const RunResult result = child.Wait(std::chrono::seconds(60));
  EXPECT_EQ(result.exit_code, 0) << result.err;
}

}  // namespace
}  // namespace kindling::clitest
