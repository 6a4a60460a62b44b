#include "service/log_format.h"

#include <fmt/format.h>
#include <spdlog/async.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <ctime>
#include <nlohmann/json.hpp>

#include "common/log_fields.h"

namespace kindling::service {
namespace {

class JsonLogFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const std::string line = JsonLogLine(msg);
    dest.append(line.data(), line.data() + line.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonLogFormatter>();
  }
};

// "2024-05-01T12:00:00.123Z" (UTC, like the text format).
std::string UtcTime(spdlog::log_clock::time_point time) {
  const auto since_epoch = time.time_since_epoch();
  const auto seconds = std::chrono::floor<std::chrono::seconds>(since_epoch);
  const auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch - seconds).count();
  const std::time_t t = seconds.count();
  std::tm tm{};
  gmtime_r(&t, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
}

bool AllDigits(std::string_view text) {
  if (text.empty() || text.size() > 15) return false;
  for (char c : text)
    if (c < '0' || c > '9') return false;
  return true;
}

}  // namespace

Result<LogFormat> ParseLogFormat(std::string_view name) {
  if (name == "text") return LogFormat::kText;
  if (name == "json") return LogFormat::kJson;
  return InvalidArgument("log format must be text or json, not \"" + std::string(name) + "\"");
}

std::string_view LogFormatName(LogFormat format) {
  return format == LogFormat::kJson ? "json" : "text";
}

std::string JsonLogLine(const spdlog::details::log_msg& msg) {
  using nlohmann::json;
  const std::string_view payload(msg.payload.data(), msg.payload.size());
  const auto level = spdlog::level::to_string_view(msg.level);
  json line = {
      {"time", UtcTime(msg.time)},
      {"level", std::string_view(level.data(), level.size())},
      {"message", payload},
      {"thread", msg.thread_id},
  };
  if (auto parsed = ParseLogFields(payload)) {
    for (auto& [key, value] : parsed->fields) {
      if (line.contains(key)) continue;
      if (AllDigits(value)) {
        line[key] = std::stoll(value);
      } else {
        line[key] = std::move(value);
      }
    }
  }
  // Invalid UTF-8 in a message becomes U+FFFD rather than an exception.
  return line.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

std::unique_ptr<spdlog::formatter> NewJsonLogFormatter() {
  return std::make_unique<JsonLogFormatter>();
}

void SetUpLogging(const std::string& level, LogFormat format) {
  auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  auto logger = std::make_shared<spdlog::logger>("kindling", std::move(sink));
  if (format == LogFormat::kJson) {
    logger->set_formatter(NewJsonLogFormatter());
  } else {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ [%t] %v", spdlog::pattern_time_type::utc);
  }
  logger->set_level(spdlog::level::from_str(level));
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(std::move(logger));
}

void UseAsyncLogging() {
  const std::shared_ptr<spdlog::logger> current = spdlog::default_logger();
  if (std::dynamic_pointer_cast<spdlog::async_logger>(current)) return;
  spdlog::init_thread_pool(kAsyncLogQueue, 1);
  auto logger = std::make_shared<spdlog::async_logger>(
      current->name(), current->sinks().begin(), current->sinks().end(), spdlog::thread_pool(),
      spdlog::async_overflow_policy::block);
  logger->set_level(current->level());
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(std::move(logger));
}

}  // namespace kindling::service
