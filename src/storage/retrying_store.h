// RetryingStore: retries kTransient failures of its base store with exponential
// backoff and full jitter. Other errors pass through at once. Thread-safe if
// the base is.
#pragma once

#include <chrono>
#include <functional>
#include <memory>

#include "storage/object_store.h"

namespace kindling::storage {

struct RetryPolicy {
  int max_attempts = 8;  // including the first
  std::chrono::milliseconds initial_backoff{100};
  std::chrono::milliseconds max_backoff{10'000};
};

class RetryingStore final : public ObjectStoreWrapper {
 public:
  using SleepFn = std::function<void(std::chrono::milliseconds)>;
  // `sleep` defaults to std::this_thread::sleep_for; tests inject their own.
  RetryingStore(ObjectStore& base, RetryPolicy policy, SleepFn sleep = {});

  Status Put(std::string_view key, std::string_view data) override;
  // Retried like Put. An attempt that stored the object but whose answer was
  // lost makes the next attempt report kAlreadyExists: callers that must
  // tell it from a racing creator compare the stored object with theirs
  // (repo::InitStoreKeys does).
  Status PutIfAbsent(std::string_view key, std::string_view data) override;
  Result<std::string> Get(std::string_view key) override;
  Result<std::uint64_t> Head(std::string_view key) override;
  Status Delete(std::string_view key) override;
  Result<std::vector<ObjectInfo>> List(std::string_view prefix) override;

 private:
  template <typename Fn>
  auto Retry(Fn&& fn) -> decltype(fn());
  std::chrono::milliseconds Backoff(int attempt);

  RetryPolicy policy_;
  SleepFn sleep_;
};

}  // namespace kindling::storage
