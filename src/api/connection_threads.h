// ConnectionThreads: the API server's httplib task queue.
//
// httplib hands each accepted connection to its task queue and serves it on
// one thread until the connection closes, keep-alive included: a thread
// waiting for an idle client's next request is held. Its default fixed pool
// (max(8, cores - 1) threads) therefore stops answering anyone once that
// many clients keep connections open. This queue starts a thread for each
// connection that finds none idle, up to `max_threads`; beyond that,
// connections wait in order until a thread is free (the server's keep-alive
// timeout bounds how long an idle connection holds one). Threads above
// `keep_threads` exit after `idle_exit` without work.
//
// Thread-safety: enqueue() may be called from any thread; shutdown() once,
// after the last enqueue(), runs the queued connections and joins.
#pragma once

#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <list>
#include <mutex>
#include <thread>

namespace kindling::api {

class ConnectionThreads final : public httplib::TaskQueue {
 public:
  // REQUIRES: 0 < keep_threads <= max_threads.
  ConnectionThreads(std::size_t keep_threads, std::size_t max_threads,
                    std::chrono::milliseconds idle_exit = std::chrono::seconds(30));
  ~ConnectionThreads() override;  // shutdown()s
  ConnectionThreads(const ConnectionThreads&) = delete;
  ConnectionThreads& operator=(const ConnectionThreads&) = delete;

  void enqueue(std::function<void()> fn) override;
  void shutdown() override;

  // Threads alive now (for tests).
  std::size_t threads() const;

 private:
  using Threads = std::list<std::thread>;
  void Work(Threads::iterator self);
  void JoinFinished();

  const std::size_t keep_threads_;
  const std::size_t max_threads_;
  const std::chrono::milliseconds idle_exit_;

  mutable std::mutex mu_;
  std::condition_variable work_;            // a job was queued, or shutdown
  std::condition_variable exited_;          // a thread moved itself to finished_
  std::deque<std::function<void()>> jobs_;  // guarded by mu_
  Threads running_;                         // guarded by mu_
  Threads finished_;                        // exited (or exiting), not joined yet; guarded by mu_
  std::size_t idle_ = 0;                    // threads waiting for a job; guarded by mu_
  bool shutdown_ = false;                   // guarded by mu_
};

}  // namespace kindling::api
