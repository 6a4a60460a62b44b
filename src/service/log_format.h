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

}  // namespace kindling::service
