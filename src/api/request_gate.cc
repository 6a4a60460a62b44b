#include "api/request_gate.h"

#include <algorithm>
#include <memory>

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

std::shared_ptr<RequestGate::Waiter> RequestGate::ThreadWaiter() {
  // One per thread, reused while no Exit still holds it (it may be about to
  // signal it).
  thread_local std::shared_ptr<Waiter> mine;
  if (!mine || mine.use_count() != 1) mine = std::make_shared<Waiter>();
  return mine;
}

bool RequestGate::Wait(bool ahead) {
  if (capacity_ == 0) return false;
  std::shared_ptr<Waiter> waiter;
  {
    std::lock_guard lock(mu_);
    if (free_ > 0 && (waiters_.empty() || ahead)) {
      --free_;
      return true;
    }
    waiter = ThreadWaiter();
    waiter->granted = false;
    {
      std::lock_guard signal_lock(waiter->mu);
      waiter->signalled = false;
    }
    if (ahead) {
      waiters_.push_front(waiter);
    } else {
      waiters_.push_back(waiter);
    }
  }
  const auto deadline = std::chrono::steady_clock::now() + max_wait_;
  for (;;) {
    bool signalled = false;
    {
      std::unique_lock signal_lock(waiter->mu);
      signalled =
          waiter->ready.wait_until(signal_lock, deadline, [&] { return waiter->signalled; });
      waiter->signalled = false;
    }
    std::lock_guard lock(mu_);
    if (waiter->granted) return true;
    if (!signalled) {
      waiters_.erase(std::find(waiters_.begin(), waiters_.end(), waiter));
      ++bypassed_;
      return false;
    }
    // Not granted yet: a wake-up for an earlier wait of this thread.
  }
}

void RequestGate::Exit() {
  std::shared_ptr<Waiter> next;
  {
    std::lock_guard lock(mu_);
    if (waiters_.empty()) {
      ++free_;
      return;
    }
    next = std::move(waiters_.front());
    waiters_.pop_front();
    next->granted = true;
  }
  // Signalled outside mu_, so that the waiter does not wake only to wait
  // for it; `next` keeps the waiter alive until this is done.
  {
    std::lock_guard signal_lock(next->mu);
    next->signalled = true;
  }
  next->ready.notify_one();
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
