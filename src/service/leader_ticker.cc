#include "service/leader_ticker.h"

#include <utility>

namespace kindling::service {

LeaderTicker::LeaderTicker(std::function<bool()> is_leader, std::chrono::milliseconds every,
                           std::function<void()> task)
    : is_leader_(std::move(is_leader)), every_(every), task_(std::move(task)) {}

LeaderTicker::~LeaderTicker() { Stop(); }

void LeaderTicker::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void LeaderTicker::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void LeaderTicker::Loop() {
  std::unique_lock lock(mu_);
  while (!cv_.wait_for(lock, every_, [this] { return stopping_; })) {
    lock.unlock();
    if (is_leader_()) task_();
    lock.lock();
  }
}

}  // namespace kindling::service
