// Helpers shared by the control-plane drills of tests/service: the built
// `kindling` binary run as a command, the time now as --time takes it, and
// SQL answers as strings.
#pragma once

#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

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

// This machine's time, RFC 3339 in UTC to the millisecond.
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

}  // namespace kindling::service
