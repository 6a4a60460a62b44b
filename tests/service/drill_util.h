// Helpers shared by the control-plane drills of tests/service: the built
// `kindling` binary run as a command, the time now as --time takes it, and
// SQL answers as strings.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "dev_process.h"
#include "testutil/temp_dir.h"

namespace kindling::service {

struct CliResult {
  int exit_status = -1;  // -2: timed out
  std::string output;
  std::string errors;
  std::chrono::milliseconds took{0};
  // The --json document: the last line of stdout.
  nlohmann::json Json() const;
};

// Runs KINDLING_BINARY with `args`; `extra_env` ("NAME=value") on top of
// ours, for what must not be a flag value (secrets).
CliResult Kindling(std::vector<std::string> args,
                   std::chrono::seconds timeout = std::chrono::seconds(120),
                   std::vector<std::string> extra_env = {});

// This machine's time, RFC 3339 in UTC to the millisecond, rounded up: a
// commit made before the call is at or before it (PostgreSQL's commit times
// have microseconds, and recovery to a time leaves out every later commit).
std::string Rfc3339Now();

// A value of dev.env (shell-quoted when it has to be).
std::string Unquoted(std::string value);

// The first column of every row `sql` returns.
std::vector<std::string> Strings(const std::string& dsn, const std::string& sql);

// The `control_plane_backup` part of GET /api/platform/health (from
// `get_health`) once kindling dev stored an ok check made after `since`;
// the last answer after `timeout` otherwise.
nlohmann::json WaitForStoredCheck(const std::function<nlohmann::json()>& get_health,
                                  std::chrono::system_clock::time_point since,
                                  std::chrono::seconds timeout = std::chrono::seconds(60));

// `kindling dev` flags for drills that take their backups by hand: dev only
// checks (and stores the report), it schedules none.
inline const std::vector<std::string> kBackupsByHand = {"--control-plane-full-every", "0",
                                                        "--control-plane-diff-every", "0",
                                                        "--control-plane-incr-every", "0"};

// A drill's fixture: a temporary directory the postgres user can work in,
// the state directory of the `kindling dev` it starts (dev_), and calls to
// that dev's API and control-plane commands.
class DevDrillTest : public ::testing::Test {
 protected:
  void SetUp() override;

  // An API call that must answer; its status in *status when given
  // (otherwise a status of 300 or more fails the test).
  nlohmann::json Call(const std::string& method, const std::string& path,
                      const nlohmann::json& body = nullptr, int* status = nullptr);
  std::string CreateProject(const std::string& name);  // its id
  std::set<std::string> ProjectNames();
  // The operation once it succeeded or failed (the last answer after
  // `timeout`).
  nlohmann::json WaitForOperation(const std::string& id,
                                  std::chrono::seconds timeout = std::chrono::seconds(60));
  // Both workers heartbeat after `since` (the database's clock, which is
  // this machine's).
  bool WorkersHeartbeatSince(std::chrono::system_clock::time_point since,
                             std::chrono::seconds timeout);
  // `kindling admin control-plane COMMAND --state-dir <state> ARGS...`.
  CliResult ControlPlane(const std::string& command, std::vector<std::string> args = {},
                         std::chrono::seconds timeout = std::chrono::seconds(120),
                         std::vector<std::string> extra_env = {});

  testutil::TempDir dir_;
  std::filesystem::path state_;
  std::unique_ptr<DevProcess> dev_;
};

}  // namespace kindling::service
