// LeaderTicker: runs a task every `every`, on a thread of its own, while
// `is_leader()` says this process leads the cluster (the leader-only loops
// of `kindling serve`: store_gc_loop.h, backup_verify_loop.h).
//
// The first run comes one interval after Start. Stop wakes the thread and
// joins it; a run in progress finishes first (a task that may run long
// watches a cancel flag its owner sets before calling Stop).
//
// Thread-safety: Start/Stop from one thread; the task runs on the ticker's.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace kindling::service {

class LeaderTicker {
 public:
  LeaderTicker(std::function<bool()> is_leader, std::chrono::milliseconds every,
               std::function<void()> task);
  ~LeaderTicker();
  LeaderTicker(const LeaderTicker&) = delete;
  LeaderTicker& operator=(const LeaderTicker&) = delete;

  void Start();
  void Stop();

 private:
  void Loop();

  const std::function<bool()> is_leader_;
  const std::chrono::milliseconds every_;
  const std::function<void()> task_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace kindling::service
