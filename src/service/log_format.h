// The process's log: spdlog's default logger on stderr, as text lines or as
// JSON lines (`--log-format json` of `kindling serve` and `kindling dev`, for
// log shippers).
//
// A JSON line is one object: {"time": "2024-05-01T12:00:00.123Z", "level":
// "info", "message": "...", "thread": 123} plus the message's key=value fields
// (common/log_fields.h) as string members, numbers for all-digit values; a
// field named like a fixed member is left out.
#pragma once

#include <spdlog/details/log_msg.h>
#include <spdlog/formatter.h>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"

namespace kindling::service {

enum class LogFormat { kText, kJson };

// "text" or "json"; kInvalidArgument otherwise.
[[nodiscard]] Result<LogFormat> ParseLogFormat(std::string_view name);
std::string_view LogFormatName(LogFormat format);

// One JSON line for `msg`, newline included.
std::string JsonLogLine(const spdlog::details::log_msg& msg);
std::unique_ptr<spdlog::formatter> NewJsonLogFormatter();

// Replaces the default logger: stderr, `level` (trace ... off), `format`.
// Text lines are "2024-05-01T12:00:00.123Z info [thread] message".
void SetUpLogging(const std::string& level, LogFormat format);

// For long-running services (`kindling serve`): the default logger's lines
// are written by a thread of their own, from a queue of kAsyncLogQueue lines
// (a full queue makes the logging thread wait). An API request thread then
// never waits for a write(2) to the log: on ext4, appending to a file can
// wait for a journal commit, tens of milliseconds while backups fsync, and
// every other request waited behind it (bench/api_load.sh). Lines still
// queued when the process exits normally are written; a killed process
// loses them. Idempotent; call once logging is set up, before threads.
inline constexpr std::size_t kAsyncLogQueue = 8192;
void UseAsyncLogging();

}  // namespace kindling::service
