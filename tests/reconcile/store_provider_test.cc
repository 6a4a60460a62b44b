#include "reconcile/store_provider.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <string>

namespace kindling::reconcile {
namespace {

using Handle = std::shared_ptr<const StoreHandle>;
constexpr auto kPatience = std::chrono::seconds(20);

Handle MakeHandle(const std::string& url) {
  auto handle = std::make_shared<StoreHandle>();
  handle->url = url;
  return handle;
}

// An open function that blocks each call until the test lets it go.
class Gate {
 public:
  void Open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  void Close() {
    std::lock_guard lock(mu_);
    open_ = false;
  }
  void Pass() {
    std::unique_lock lock(mu_);
    ++waiting_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return open_; });
    --waiting_;
  }
  int waiting() {
    std::lock_guard lock(mu_);
    return waiting_;
  }
  // Until `n` calls wait at the gate.
  void AwaitWaiting(int n) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return waiting_ >= n; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
  int waiting_ = 0;
};

class StoreProviderTest : public ::testing::Test {
 protected:
  StoreProviderTest()
      : provider_(
            [this]() -> Result<Handle> {
              const int n = ++current_opens_;
              gate_.Pass();
              if (fail_current_) return TransientError("store unreachable");
              return MakeHandle("s3://current/" + std::to_string(n));
            },
            [this](const std::string& url) -> Result<Handle> {
              ++url_opens_;
              return MakeHandle(url);
            }) {}

  Gate gate_;
  std::atomic<int> current_opens_{0};
  std::atomic<int> url_opens_{0};
  std::atomic<bool> fail_current_{false};
  CachingStoreProvider provider_;
};

TEST_F(StoreProviderTest, ASlowOpenBlocksNeitherOtherStoresNorInvalidate) {
  auto slow = std::async(std::launch::async, [&] { return provider_.Get(); });
  gate_.AwaitWaiting(1);

  // Another store opens and is cached while the current one is opening.
  auto other = std::async(std::launch::async, [&] { return provider_.GetForUrl("s3://old"); });
  ASSERT_EQ(other.wait_for(kPatience), std::future_status::ready) << "blocked by a slow open";
  auto old_store = other.get();
  ASSERT_TRUE(old_store);
  EXPECT_EQ((*old_store)->url, "s3://old");
  auto again = provider_.GetForUrl("s3://old");
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, *old_store);
  EXPECT_EQ(url_opens_, 1);

  // Invalidate (the NOTIFY listener) does not wait either.
  auto invalidated = std::async(std::launch::async, [&] { provider_.Invalidate(); });
  ASSERT_EQ(invalidated.wait_for(kPatience), std::future_status::ready) << "blocked by a slow open";

  gate_.Open();
  auto first = slow.get();
  ASSERT_TRUE(first);
  EXPECT_EQ((*first)->url, "s3://current/1");  // the caller that asked before still gets it
  // ... but it began before the Invalidate: not cached, opened again now.
  auto second = provider_.Get();
  ASSERT_TRUE(second);
  EXPECT_EQ((*second)->url, "s3://current/2");
  EXPECT_EQ(current_opens_, 2);
  auto cached = provider_.Get();
  ASSERT_TRUE(cached);
  EXPECT_EQ(*cached, *second);
  EXPECT_EQ(current_opens_, 2);
  // The url cache was dropped by the Invalidate too.
  ASSERT_TRUE(provider_.GetForUrl("s3://old"));
  EXPECT_EQ(url_opens_, 2);
}

TEST_F(StoreProviderTest, ConcurrentRequestsShareOneOpen) {
  auto a = std::async(std::launch::async, [&] { return provider_.Get(); });
  gate_.AwaitWaiting(1);
  auto b = std::async(std::launch::async, [&] { return provider_.Get(); });
  // b waits for a's open rather than opening again (a second open would
  // wait at the gate too).
  EXPECT_EQ(b.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout);
  EXPECT_EQ(gate_.waiting(), 1);
  gate_.Open();
  auto ra = a.get();
  auto rb = b.get();
  ASSERT_TRUE(ra);
  ASSERT_TRUE(rb);
  EXPECT_EQ(*ra, *rb);
  EXPECT_EQ(current_opens_, 1);
  // The current store also answers GetForUrl for its url.
  auto by_url = provider_.GetForUrl((*ra)->url);
  ASSERT_TRUE(by_url);
  EXPECT_EQ(*by_url, *ra);
  EXPECT_EQ(url_opens_, 0);
}

TEST_F(StoreProviderTest, AnOpenAfterInvalidateDoesNotWaitForTheStaleOne) {
  auto stale = std::async(std::launch::async, [&] { return provider_.Get(); });
  gate_.AwaitWaiting(1);
  provider_.Invalidate();
  // A request after the Invalidate opens anew (with the new settings)
  // instead of taking the stale open's result.
  auto fresh = std::async(std::launch::async, [&] { return provider_.Get(); });
  gate_.AwaitWaiting(2);
  EXPECT_EQ(current_opens_, 2);
  gate_.Open();
  ASSERT_TRUE(stale.get());
  auto fresh_store = fresh.get();
  ASSERT_TRUE(fresh_store);
  EXPECT_EQ((*fresh_store)->url, "s3://current/2");
  auto cached = provider_.Get();
  ASSERT_TRUE(cached);
  EXPECT_EQ(*cached, *fresh_store);
  EXPECT_EQ(current_opens_, 2);
}

TEST_F(StoreProviderTest, ErrorsAreNotCached) {
  gate_.Open();
  fail_current_ = true;
  auto failed = provider_.Get();
  ASSERT_FALSE(failed);
  EXPECT_TRUE(failed.error().retryable());
  fail_current_ = false;
  auto ok = provider_.Get();
  ASSERT_TRUE(ok) << ok.error().message();
  EXPECT_EQ(current_opens_, 2);
}

}  // namespace
}  // namespace kindling::reconcile
