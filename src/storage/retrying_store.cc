#include "storage/retrying_store.h"

#include <algorithm>
#include <random>
#include <thread>

namespace kindling::storage {

RetryingStore::RetryingStore(ObjectStore& base, RetryPolicy policy, SleepFn sleep)
    : ObjectStoreWrapper(base), policy_(policy), sleep_(std::move(sleep)) {
  if (!sleep_) sleep_ = [](std::chrono::milliseconds d) { std::this_thread::sleep_for(d); };
}

std::chrono::milliseconds RetryingStore::Backoff(int attempt) {
  // Full jitter: uniform in [0, min(max, initial * 2^attempt)].
  thread_local std::mt19937_64 rng{std::random_device{}()};
  const auto cap = std::min<long long>(policy_.max_backoff.count(), policy_.initial_backoff.count()
                                                                        << std::min(attempt, 20));
  std::uniform_int_distribution<long long> dist(0, std::max<long long>(cap, 1));
  return std::chrono::milliseconds(dist(rng));
}

template <typename Fn>
auto RetryingStore::Retry(Fn&& fn) -> decltype(fn()) {
  for (int attempt = 0;; ++attempt) {
    auto result = fn();
    if (result || !result.error().retryable() || attempt + 1 >= policy_.max_attempts) {
      if (!result && result.error().retryable())
        return std::unexpected(result.error().WithContext(
            "gave up after " + std::to_string(attempt + 1) + " attempts"));
      return result;
    }
    sleep_(Backoff(attempt));
  }
}

Status RetryingStore::Put(std::string_view key, std::string_view data) {
  return Retry([&] { return base().Put(key, data); });
}

Status RetryingStore::PutIfAbsent(std::string_view key, std::string_view data) {
  return Retry([&] { return base().PutIfAbsent(key, data); });
}
Result<std::string> RetryingStore::Get(std::string_view key) {
  return Retry([&] { return base().Get(key); });
}
Result<std::uint64_t> RetryingStore::Head(std::string_view key) {
  return Retry([&] { return base().Head(key); });
}
Status RetryingStore::Delete(std::string_view key) {
  return Retry([&] { return base().Delete(key); });
}
Result<std::vector<ObjectInfo>> RetryingStore::List(std::string_view prefix) {
  return Retry([&] { return base().List(prefix); });
}

}  // namespace kindling::storage
