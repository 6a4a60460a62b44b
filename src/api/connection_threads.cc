#include "api/connection_threads.h"

#include <cassert>
#include <utility>

namespace kindling::api {

ConnectionThreads::ConnectionThreads(std::size_t keep_threads, std::size_t max_threads,
                                     std::chrono::milliseconds idle_exit)
    : keep_threads_(keep_threads), max_threads_(max_threads), idle_exit_(idle_exit) {
  assert(keep_threads > 0 && keep_threads <= max_threads);
}

ConnectionThreads::~ConnectionThreads() { shutdown(); }

void ConnectionThreads::enqueue(std::function<void()> fn) {
  JoinFinished();
  std::lock_guard lock(mu_);
  jobs_.push_back(std::move(fn));
  // Threads already woken for earlier jobs count as busy: start one when the
  // waiting threads cannot take every queued job.
  if (jobs_.size() > idle_ && running_.size() < max_threads_) {
    running_.emplace_back();
    const auto self = std::prev(running_.end());
    // The new thread takes mu_ first thing, so it sees its handle assigned.
    *self = std::thread([this, self] { Work(self); });
  } else {
    work_.notify_one();
  }
}

void ConnectionThreads::Work(Threads::iterator self) {
  std::unique_lock lock(mu_);
  for (;;) {
    ++idle_;
    const bool woken =
        work_.wait_for(lock, idle_exit_, [this] { return shutdown_ || !jobs_.empty(); });
    --idle_;
    if (jobs_.empty()) {
      if (shutdown_) break;
      if (!woken && running_.size() > keep_threads_) break;
      continue;
    }
    std::function<void()> job = std::move(jobs_.front());
    jobs_.pop_front();
    lock.unlock();
    job();
    job = nullptr;  // a connection's captures go before the lock is taken again
    lock.lock();
  }
  finished_.splice(finished_.end(), running_, self);
  exited_.notify_all();
}

void ConnectionThreads::JoinFinished() {
  Threads done;
  {
    std::lock_guard lock(mu_);
    done.splice(done.end(), finished_);
  }
  for (std::thread& t : done) t.join();
}

void ConnectionThreads::shutdown() {
  std::unique_lock lock(mu_);
  shutdown_ = true;
  work_.notify_all();
  for (;;) {
    Threads done;
    done.splice(done.end(), finished_);
    const bool last = running_.empty();
    lock.unlock();
    for (std::thread& t : done) t.join();
    lock.lock();
    if (last && finished_.empty()) return;
    if (finished_.empty()) exited_.wait(lock, [this] { return !finished_.empty(); });
  }
}

std::size_t ConnectionThreads::threads() const {
  std::lock_guard lock(mu_);
  return running_.size();
}

}  // namespace kindling::api
