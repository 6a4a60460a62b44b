// SharedResult<T>: the result of one computation that several threads wait
// for (concurrent misses of a cache sharing one database read).
//
// The owner computes and calls Set; the others Await. Both name the mutex
// that guards the SharedResult. Awaiting counts as a BlockingRegion
// (common/blocking_region.h): a thread waiting for another's database read
// gives its turn back, as the reader does.
//
// Thread-safety: guarded by the caller's mutex, as above.
#pragma once

#include <condition_variable>
#include <mutex>
#include <optional>
#include <utility>

#include "common/blocking_region.h"

namespace kindling {

template <typename T>
class SharedResult {
 public:
  // Waits until Set, then returns a copy of the result. REQUIRES: `mu`
  // (the one guarding this) not held by the caller.
  T Await(std::mutex& mu) {
    // The region ends after the lock is released.
    const BlockingRegion blocking;
    std::unique_lock lock(mu);
    done_.wait(lock, [&] { return result_.has_value(); });
    return *result_;
  }

  // The result once Set. REQUIRES: `mu` held.
  const std::optional<T>& value() const { return result_; }

  // Hands `value` to the waiters. REQUIRES: `mu` held.
  void Set(T value) {
    result_ = std::move(value);
    done_.notify_all();
  }

 private:
  std::optional<T> result_;
  std::condition_variable done_;
};

}  // namespace kindling
