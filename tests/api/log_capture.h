// LogCapture: spdlog's default logger replaced, for the test's lifetime, by
// one that keeps every line ("<level> <message>") in memory.
#pragma once

#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace kindling::api {

class LogCapture {
 public:
  LogCapture()
      : previous_(spdlog::default_logger()),
        sink_(std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(10'000)) {
    sink_->set_pattern("%l %v");
    auto logger = std::make_shared<spdlog::logger>("test", sink_);
    logger->set_level(spdlog::level::trace);
    spdlog::set_default_logger(std::move(logger));
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  std::vector<std::string> Lines() const { return sink_->last_formatted(); }
  std::vector<std::string> LinesWith(std::string_view needle) const {
    std::vector<std::string> out;
    for (std::string& line : Lines())
      if (line.find(needle) != std::string::npos) out.push_back(std::move(line));
    return out;
  }
  // httplib logs a request after answering it: waits up to 5 s for a line.
  std::vector<std::string> AwaitLinesWith(std::string_view needle) const {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    for (;;) {
      auto lines = LinesWith(needle);
      if (!lines.empty() || std::chrono::steady_clock::now() > deadline) return lines;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

 private:
  std::shared_ptr<spdlog::logger> previous_;
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink_;
};

}  // namespace kindling::api
