#include "cli/progress_reporter.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "cli/output.h"

namespace kindling::cli {
namespace {

constexpr auto kMinInterval = std::chrono::milliseconds(100);
constexpr int kBarWidth = 28;

}  // namespace

ProgressReporter::ProgressReporter(Style style, std::FILE* out, Clock clock)
    : style_(style),
      out_(out),
      clock_(clock ? std::move(clock) : Clock([] { return std::chrono::steady_clock::now(); })),
      last_report_(clock_()) {}

ProgressReporter::~ProgressReporter() { Finish(); }

ProgressReporter::Style ProgressReporter::StyleFor(ProgressMode mode, bool quiet,
                                                   bool out_is_terminal) {
  if (quiet) return Style::kNone;
  switch (mode) {
    case ProgressMode::kNone:
      return Style::kNone;
    case ProgressMode::kBar:
      return Style::kBar;
    case ProgressMode::kJson:
      return Style::kJsonLines;
    case ProgressMode::kAuto:
      return out_is_terminal ? Style::kBar : Style::kJsonLines;
  }
  return Style::kNone;
}

engine::ProgressFn ProgressReporter::Callback() {
  if (style_ == Style::kNone) return {};
  return [this](const engine::Progress& progress) { Report(progress); };
}

void ProgressReporter::Report(const engine::Progress& progress) {
  if (style_ == Style::kNone) return;
  std::lock_guard lock(mu_);
  const auto now = clock_();
  const bool new_phase = !wrote_any_ || progress.phase != phase_;
  if (new_phase) {
    if (bar_open_) {
      std::fputc('\n', out_);
      bar_open_ = false;
    }
    phase_ = std::string(progress.phase);
  }
  // The rate is measured over one pass through the image. Phases that carry
  // the byte count on (backup -> commit) continue the pass; a count that goes
  // back (restore -> digest) starts a new one. A pass began at the previous
  // report (or at construction): the engine reports a pass first at its first
  // progress, not at its start.
  if (!started_ || progress.bytes_done < last_bytes_done_ ||
      progress.bytes_total != last_bytes_total_) {
    pass_start_ = last_report_;
    started_ = true;
  }
  last_report_ = now;
  last_bytes_done_ = progress.bytes_done;
  last_bytes_total_ = progress.bytes_total;
  const bool phase_complete = progress.bytes_total > 0
                                  ? progress.bytes_done >= progress.bytes_total
                                  : progress.chunks_done >= progress.chunks_total;
  if (!new_phase && !phase_complete && now - last_write_ < kMinInterval) return;

  const double seconds = std::chrono::duration<double>(now - pass_start_).count();
  const double rate = seconds > 0.0 ? static_cast<double>(progress.bytes_done) / seconds : 0.0;
  std::optional<double> eta;
  if (progress.bytes_done >= progress.bytes_total) {
    eta = 0.0;
  } else if (rate > 0.0) {
    eta = static_cast<double>(progress.bytes_total - progress.bytes_done) / rate;
  }
  if (style_ == Style::kBar) {
    WriteBar(progress, rate, eta);
  } else {
    WriteJson(progress, rate, eta);
  }
  std::fflush(out_);
  last_write_ = now;
  wrote_any_ = true;
}

void ProgressReporter::WriteBar(const engine::Progress& progress, double rate,
                                std::optional<double> eta) {
  const double fraction = progress.bytes_total > 0 ? static_cast<double>(progress.bytes_done) /
                                                         static_cast<double>(progress.bytes_total)
                                                   : 1.0;
  const int filled = std::clamp(static_cast<int>(fraction * kBarWidth), 0, kBarWidth);
  std::string bar(static_cast<std::size_t>(filled), '#');
  bar.append(static_cast<std::size_t>(kBarWidth - filled), '.');
  const std::string eta_text = eta ? FormatEta(*eta) : std::string("--:--");
  // \r redraws the line in place; \x1b[K clears what a longer line left behind.
  std::fprintf(out_, "\r%-8s [%s] %5.1f%%  %s / %s  %s  ETA %s\x1b[K", phase_.c_str(), bar.c_str(),
               fraction * 100.0, FormatBytes(progress.bytes_done).c_str(),
               FormatBytes(progress.bytes_total).c_str(), FormatRate(rate).c_str(),
               eta_text.c_str());
  bar_open_ = true;
}

void ProgressReporter::WriteJson(const engine::Progress& progress, double rate,
                                 std::optional<double> eta) {
  nlohmann::json line = {
      {"type", "progress"},
      {"phase", phase_},
      {"bytes_done", progress.bytes_done},
      {"bytes_total", progress.bytes_total},
      {"chunks_done", progress.chunks_done},
      {"chunks_total", progress.chunks_total},
      {"bytes_transferred", progress.bytes_transferred},
      {"rate_bytes_per_second", std::round(rate)},
  };
  if (eta) {
    line["eta_seconds"] = std::round(*eta * 10.0) / 10.0;
  } else {
    line["eta_seconds"] = nullptr;
  }
  std::fprintf(out_, "%s\n", DumpJson(line).c_str());
}

void ProgressReporter::Finish() {
  std::lock_guard lock(mu_);
  if (bar_open_) {
    std::fputc('\n', out_);
    std::fflush(out_);
    bar_open_ = false;
  }
}

}  // namespace kindling::cli
