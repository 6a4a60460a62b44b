#include "api/request_gate.h"

#include <algorithm>

#include "common/blocking_region.h"

namespace kindling::api {
namespace {

// The request a thread is serving, as its BlockingHook.
struct ThreadPass final : BlockingHook {
  RequestGate* gate = nullptr;
  bool held = false;

  void Leave() override {
    if (held) gate->Exit();
    held = false;
  }
  void Return() override { held = gate->Reenter(); }
};
thread_local ThreadPass thread_pass;

}  // namespace

RequestGate::RequestGate(std::size_t capacity, std::chrono::milliseconds max_wait)
    : capacity_(capacity), max_wait_(max_wait), free_(capacity) {}

bool RequestGate::Enter() { return Wait(/*ahead=*/false); }

bool RequestGate::Reenter() { return Wait(/*ahead=*/true); }

bool RequestGate::Wait(bool ahead) {
  if (capacity_ == 0) return false;
  std::unique_lock lock(mu_);
  if (free_ > 0 && (waiters_.empty() || ahead)) {
    --free_;
    return true;
  }
  Waiter waiter;
  if (ahead) {
    waiters_.push_front(&waiter);
  } else {
    waiters_.push_back(&waiter);
  }
  if (waiter.ready.wait_for(lock, max_wait_, [&] { return waiter.granted; })) return true;
  waiters_.erase(std::find(waiters_.begin(), waiters_.end(), &waiter));
  ++bypassed_;
  return false;
}

void RequestGate::Exit() {
  std::lock_guard lock(mu_);
  if (waiters_.empty()) {
    ++free_;
    return;
  }
  Waiter* next = waiters_.front();
  waiters_.pop_front();
  next->granted = true;
  next->ready.notify_one();  // under mu_: the waiter cannot return (and go) before this
}

void RequestGate::BeginRequest() {
  if (thread_pass.gate != nullptr) thread_pass.gate->EndRequest();
  if (capacity_ == 0) return;
  thread_pass.gate = this;
  thread_pass.held = Enter();
  kindling::internal::blocking_hook = &thread_pass;
}

void RequestGate::EndRequest() {
  if (thread_pass.gate != this) return;
  if (thread_pass.held) Exit();
  thread_pass.gate = nullptr;
  thread_pass.held = false;
  if (kindling::internal::blocking_hook == &thread_pass)
    kindling::internal::blocking_hook = nullptr;
}

std::size_t RequestGate::free_slots() const {
  std::lock_guard lock(mu_);
  return free_;
}

std::size_t RequestGate::waiting() const {
  std::lock_guard lock(mu_);
  return waiters_.size();
}

std::uint64_t RequestGate::bypassed() const {
  std::lock_guard lock(mu_);
  return bypassed_;
}

}  // namespace kindling::api
