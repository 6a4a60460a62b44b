// Shows engine progress on stderr: a bar redrawn in place (terminals) or one
// JSON object per line (pipes, logs, the control plane), or nothing.
//
// Thread-safe: Report may be called from any thread. The bar is redrawn at
// most 10 times a second; JSON lines are throttled the same way except that a
// phase change and a phase's final figures are always written.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include "cli/flags.h"
#include "engine/progress.h"

namespace kindling::cli {

class ProgressReporter {
 public:
  enum class Style { kNone, kBar, kJsonLines };
  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  // `out` is not owned and must outlive the reporter. `clock` defaults to
  // std::chrono::steady_clock::now (tests inject their own).
  ProgressReporter(Style style, std::FILE* out, Clock clock = {});
  ~ProgressReporter();
  ProgressReporter(const ProgressReporter&) = delete;
  ProgressReporter& operator=(const ProgressReporter&) = delete;

  // --progress auto chooses the bar on a terminal, JSON lines otherwise;
  // --quiet wins over everything.
  static Style StyleFor(ProgressMode mode, bool quiet, bool out_is_terminal);

  Style style() const { return style_; }

  // A ProgressFn for the engine that forwards to Report; empty for kNone.
  // The reporter must outlive every call.
  engine::ProgressFn Callback();

  void Report(const engine::Progress& progress);

  // Ends the bar's line so that later output starts on a fresh line.
  // Idempotent; the destructor calls it.
  void Finish();

 private:
  void WriteBar(const engine::Progress& progress, double rate, std::optional<double> eta);
  void WriteJson(const engine::Progress& progress, double rate, std::optional<double> eta);

  const Style style_;
  std::FILE* const out_;
  const Clock clock_;

  std::mutex mu_;
  std::string phase_;  // of the last report
  std::chrono::steady_clock::time_point pass_start_{};
  std::uint64_t last_bytes_done_ = 0;
  std::uint64_t last_bytes_total_ = 0;
  bool started_ = false;
  std::chrono::steady_clock::time_point last_write_{};
  std::chrono::steady_clock::time_point last_report_;
  bool wrote_any_ = false;
  bool bar_open_ = false;  // a bar line without its newline is on screen
};

}  // namespace kindling::cli
