#include "engine/pipeline.h"

namespace kindling::engine {

ProgressTicker::ProgressTicker(const ProgressFn& fn, const ProgressCounters& counters,
                               std::string_view phase, std::uint64_t bytes_total,
                               std::uint64_t chunks_total, std::chrono::milliseconds interval)
    : fn_(fn),
      counters_(counters),
      phase_(phase),
      bytes_total_(bytes_total),
      chunks_total_(chunks_total),
      interval_(interval) {
  if (!fn_) return;
  thread_ = std::thread([this] {
    std::unique_lock lock(mu_);
    while (!cv_.wait_for(lock, interval_, [&] { return stop_; })) fn_(Snapshot());
  });
}

ProgressTicker::~ProgressTicker() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ProgressTicker::Finish() {
  {
    std::lock_guard lock(mu_);
    if (stop_) return;
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (fn_) fn_(Snapshot());
}

Progress ProgressTicker::Snapshot() const {
  Progress p;
  p.phase = phase_;
  p.bytes_total = bytes_total_;
  p.chunks_total = chunks_total_;
  p.bytes_done = counters_.bytes_done.load(std::memory_order_relaxed);
  p.chunks_done = counters_.chunks_done.load(std::memory_order_relaxed);
  p.bytes_transferred = counters_.bytes_transferred.load(std::memory_order_relaxed);
  return p;
}

}  // namespace kindling::engine
