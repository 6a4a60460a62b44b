// Small concurrency pieces the engine's pipelines share: a bounded blocking
// queue, a buffer pool, a first-error latch, a worker group and a progress
// ticker.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/aligned_buffer.h"
#include "common/result.h"
#include "engine/progress.h"

namespace kindling::engine {

// A FIFO with a capacity; Push blocks while full, Pop blocks while empty.
// After Close, Push drops items and Pop drains what is left, then returns
// nullopt. Thread-safe.
template <typename T>
class BoundedQueue {
 public:
  explicit BoundedQueue(std::size_t capacity) : capacity_(capacity) {}

  // Returns false (and drops `item`) when the queue is closed.
  bool Push(T item) {
    std::unique_lock lock(mu_);
    not_full_.wait(lock, [&] { return closed_ || items_.size() < capacity_; });
    if (closed_) return false;
    items_.push_back(std::move(item));
    not_empty_.notify_one();
    return true;
  }

  std::optional<T> Pop() {
    std::unique_lock lock(mu_);
    not_empty_.wait(lock, [&] { return closed_ || !items_.empty(); });
    if (items_.empty()) return std::nullopt;
    T item = std::move(items_.front());
    items_.pop_front();
    not_full_.notify_one();
    return item;
  }

  void Close() {
    std::lock_guard lock(mu_);
    closed_ = true;
    not_full_.notify_all();
    not_empty_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable not_full_;
  std::condition_variable not_empty_;
  std::deque<T> items_;
  std::size_t capacity_;
  bool closed_ = false;
};

// A fixed set of chunk buffers that circulate between pipeline stages, so
// memory is bounded by the pool size whatever the image size. Acquire blocks
// until a buffer is free; a buffer returns to the pool when the last copy of
// its handle is dropped, so several stages can share one (e.g. the digest and
// an upload worker). After Close, Acquire no longer blocks: it returns a free
// buffer or null. Thread-safe; the pool
// must outlive every handle (join the threads that hold them first).
class BufferPool {
 public:
  using Handle = std::shared_ptr<AlignedBuffer>;

  // `count` buffers of `capacity` bytes each, aligned for direct I/O (memory
  // is committed as the buffers are first used).
  BufferPool(std::size_t count, std::size_t capacity) : free_(count) {
    buffers_.reserve(count);
    for (std::size_t i = 0; i < count; ++i) {
      buffers_.push_back(std::make_unique<AlignedBuffer>(capacity));
      (void)free_.Push(buffers_.back().get());
    }
  }

  Handle Acquire() {
    auto buffer = free_.Pop();
    if (!buffer) return nullptr;
    return Handle(*buffer, [this](AlignedBuffer* b) { (void)free_.Push(b); });
  }

  void Close() { free_.Close(); }

 private:
  std::vector<std::unique_ptr<AlignedBuffer>> buffers_;
  BoundedQueue<AlignedBuffer*> free_;
};

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
