#include "api/event_streams.h"

#include "common/blocking_region.h"

namespace kindling::api {

bool EventStreams::TryOpen() {
  std::lock_guard lock(mu_);
  if (stopped_ || open_ >= options_.max_open) return false;
  ++open_;
  return true;
}

void EventStreams::Close() {
  std::lock_guard lock(mu_);
  if (open_ > 0) --open_;
}

std::size_t EventStreams::open() const {
  std::lock_guard lock(mu_);
  return open_;
}

bool EventStreams::Sleep(std::chrono::milliseconds duration) {
  const BlockingRegion away;  // another thread serves requests meanwhile
  std::unique_lock lock(mu_);
  wake_.wait_for(lock, duration, [this] { return stopped_; });
  return !stopped_;
}

bool EventStreams::stopped() const {
  std::lock_guard lock(mu_);
  return stopped_;
}

void EventStreams::Stop() {
  {
    std::lock_guard lock(mu_);
    stopped_ = true;
  }
  wake_.notify_all();
}

void EventStreams::Start() {
  std::lock_guard lock(mu_);
  stopped_ = false;
}

}  // namespace kindling::api
