// Small concurrency pieces the engine's pipelines share: a first-error
// latch, a worker group and a progress ticker.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"
#include "engine/progress.h"

namespace kindling::engine {

// Keeps the first error reported by any thread; failed() is cheap to poll.
class FirstError {
 public:
  void Set(Error error) {
    std::lock_guard lock(mu_);
    if (!error_) error_ = std::move(error);
    failed_.store(true, std::memory_order_release);
  }
  bool failed() const { return failed_.load(std::memory_order_acquire); }
  // REQUIRES: failed().
  Error Take() {
    std::lock_guard lock(mu_);
    return *error_;
  }
  // Latches kCancelled when the flag is set; returns failed().
  bool CheckCancel(const CancelFlag* cancel) {
    if (cancel != nullptr && cancel->load(std::memory_order_relaxed) && !failed())
      Set(Error(ErrorKind::kCancelled, "cancelled"));
    return failed();
  }

 private:
  std::mutex mu_;
  std::optional<Error> error_;
  std::atomic<bool> failed_{false};
};

// Runs `body(worker_index)` on `count` threads; the destructor joins them.
class WorkerGroup {
 public:
  WorkerGroup(int count, const std::function<void(int)>& body) {
    threads_.reserve(static_cast<std::size_t>(count));
    for (int i = 0; i < count; ++i) threads_.emplace_back(body, i);
  }
  ~WorkerGroup() { Join(); }
  void Join() {
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }

 private:
  std::vector<std::thread> threads_;
};

// Counters that workers bump, and a thread that reports them every interval.
struct ProgressCounters {
  std::atomic<std::uint64_t> bytes_done{0};
  std::atomic<std::uint64_t> chunks_done{0};
  std::atomic<std::uint64_t> bytes_transferred{0};
};

class ProgressTicker {
 public:
  ProgressTicker(const ProgressFn& fn, const ProgressCounters& counters, std::string_view phase,
                 std::uint64_t bytes_total, std::uint64_t chunks_total,
                 std::chrono::milliseconds interval = std::chrono::milliseconds(100));
  ~ProgressTicker();
  // Emits a final report for the phase and stops the thread.
  void Finish();

 private:
  Progress Snapshot() const;

  const ProgressFn& fn_;
  const ProgressCounters& counters_;
  std::string_view phase_;
  std::uint64_t bytes_total_;
  std::uint64_t chunks_total_;
  std::chrono::milliseconds interval_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace kindling::engine
