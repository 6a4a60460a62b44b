#include "api/auth_cache.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <string>
#include <thread>

namespace kindling::api {
namespace {

using std::chrono::steady_clock;

class AuthCacheTest : public testing::Test {
 protected:
  AuthCache::Clock clock() {
    return [this] { return now_; };
  }
  static db::Principal For(const std::string& key_id) {
    db::Principal p;
    p.api_key.id = key_id;
    p.user.id = "user-of-" + key_id;
    return p;
  }
  // A lookup that finds `key_id` and counts its calls in lookups_.
  std::function<AuthCache::Lookup()> Finds(const std::string& key_id) {
    return [this, key_id]() -> AuthCache::Lookup {
      ++lookups_;
      return For(key_id);
    };
  }
  std::function<AuthCache::Lookup()> FindsNothing() {
    return [this]() -> AuthCache::Lookup {
      ++lookups_;
      return std::nullopt;
    };
  }

  steady_clock::time_point now_ = steady_clock::time_point{} + std::chrono::hours(1);
  std::atomic<int> lookups_{0};
};

TEST_F(AuthCacheTest, EntriesExpireAfterTheTtl) {
  AuthCache cache(std::chrono::seconds(10), 16, clock());
  auto first = cache.Get("kdl_a", Finds("a"));
  ASSERT_TRUE(first && *first);
  EXPECT_EQ((*first)->user.id, "user-of-a");
  EXPECT_EQ(lookups_, 1);
  // Within the first half of the ttl: answered from the cache.
  now_ += std::chrono::milliseconds(4'999);
  EXPECT_EQ((*cache.Get("kdl_a", Finds("a")))->user.id, "user-of-a");
  EXPECT_EQ(lookups_, 1);
  // Another secret is another entry.
  EXPECT_EQ((*cache.Get("kdl_b", Finds("b")))->user.id, "user-of-b");
  EXPECT_EQ(lookups_, 2);
  // Expired: looked up again.
  now_ += std::chrono::milliseconds(5'001);
  EXPECT_TRUE(*cache.Get("kdl_a", Finds("a")));
  EXPECT_EQ(lookups_, 3);
}

TEST_F(AuthCacheTest, PastHalfTheTtlOneCallerRefreshesWhileTheOthersUseTheEntry) {
  AuthCache cache(std::chrono::seconds(10), 16, clock());
  ASSERT_TRUE(cache.Get("kdl_a", Finds("a")));
  now_ += std::chrono::seconds(6);
  int inner_lookups = 0;
  auto refreshed = cache.Get("kdl_a", [&]() -> AuthCache::Lookup {
    ++lookups_;
    // While this refresh runs, another request of the key is answered from
    // the entry, without a lookup of its own.
    auto other = cache.Get("kdl_a", [&]() -> AuthCache::Lookup {
      ++inner_lookups;
      return std::nullopt;
    });
    EXPECT_TRUE(other && *other);
    return For("a");
  });
  ASSERT_TRUE(refreshed && *refreshed);
  EXPECT_EQ(lookups_, 2);
  EXPECT_EQ(inner_lookups, 0);
  // The refresh renewed the entry: 9 s after it, still cached.
  now_ += std::chrono::seconds(4);
  ASSERT_TRUE(cache.Get("kdl_a", Finds("a")));
  EXPECT_EQ(lookups_, 2);
}

TEST_F(AuthCacheTest, ARefreshThatFindsTheKeyRevokedDropsItAtOnce) {
  AuthCache cache(std::chrono::seconds(10), 16, clock());
  ASSERT_TRUE(cache.Get("kdl_a", Finds("a")));
  now_ += std::chrono::seconds(6);
  auto refreshed = cache.Get("kdl_a", FindsNothing());
  ASSERT_TRUE(refreshed);
  EXPECT_FALSE(*refreshed);
  EXPECT_EQ(cache.size(), 0u);
  auto next = cache.Get("kdl_a", FindsNothing());
  ASSERT_TRUE(next);
  EXPECT_FALSE(*next);
  EXPECT_EQ(lookups_, 3);
}

TEST_F(AuthCacheTest, AFailedRefreshKeepsTheEntryUntilItExpires) {
  AuthCache cache(std::chrono::seconds(10), 16, clock());
  ASSERT_TRUE(cache.Get("kdl_a", Finds("a")));
  auto fails = [this]() -> AuthCache::Lookup {
    ++lookups_;
    return std::unexpected(MakeError(ErrorKind::kTransient, "database unavailable"));
  };
  now_ += std::chrono::seconds(6);
  auto during = cache.Get("kdl_a", fails);
  ASSERT_TRUE(during && *during);
  EXPECT_EQ((*during)->api_key.id, "a");
  now_ += std::chrono::seconds(4);  // expired now
  auto after = cache.Get("kdl_a", fails);
  ASSERT_FALSE(after);
  EXPECT_EQ(after.error().kind(), ErrorKind::kTransient);
  EXPECT_EQ(lookups_, 3);
}

TEST_F(AuthCacheTest, ConcurrentMissesShareOneLookup) {
  AuthCache cache(std::chrono::seconds(10), 16, clock());
  std::promise<void> started;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  auto slow = [&]() -> AuthCache::Lookup {
    ++lookups_;
    started.set_value();
    released.wait();
    return For("a");
  };
  auto first = std::async(std::launch::async, [&] { return cache.Get("kdl_a", slow); });
  started.get_future().wait();
  // Misses arriving while the lookup runs wait for it rather than start
  // their own.
  std::atomic<int> others_looked_up{0};
  auto second = std::async(std::launch::async, [&] {
    return cache.Get("kdl_a", [&]() -> AuthCache::Lookup {
      ++others_looked_up;
      return std::nullopt;
    });
  });
  // The second caller is either waiting for the flight or not yet in: give
  // it time to join, then release the lookup.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  release.set_value();
  auto a = first.get();
  auto b = second.get();
  ASSERT_TRUE(a && *a);
  ASSERT_TRUE(b && *b);
  EXPECT_EQ((*b)->api_key.id, "a");
  EXPECT_EQ(lookups_, 1);
  EXPECT_EQ(others_looked_up, 0);
}

TEST_F(AuthCacheTest, ForgetDropsTheKeyAndALookupThatRacedWithIt) {
  AuthCache cache(std::chrono::seconds(10), 16, clock());
  ASSERT_TRUE(cache.Get("kdl_b", Finds("b")));
  // A lookup of key a began (read the row) before the revocation committed
  // and finishes after it: its (stale) answer is not kept.
  auto raced = cache.Get("kdl_a", [&]() -> AuthCache::Lookup {
    ++lookups_;
    cache.Forget("a");
    return For("a");
  });
  ASSERT_TRUE(raced && *raced);
  EXPECT_EQ(cache.size(), 1u);  // b only
  ASSERT_TRUE(cache.Get("kdl_a", Finds("a")));
  EXPECT_EQ(lookups_, 3);
  // Forget drops a kept key at once.
  cache.Forget("a");
  ASSERT_TRUE(cache.Get("kdl_a", Finds("a")));
  ASSERT_TRUE(cache.Get("kdl_b", Finds("b")));
  EXPECT_EQ(lookups_, 4);
}

TEST_F(AuthCacheTest, BoundedExpiredFirstThenOldest) {
  AuthCache cache(std::chrono::seconds(10), 3, clock());
  ASSERT_TRUE(cache.Get("kdl_1", Finds("1")));
  now_ += std::chrono::seconds(1);
  ASSERT_TRUE(cache.Get("kdl_2", Finds("2")));
  ASSERT_TRUE(cache.Get("kdl_3", Finds("3")));
  ASSERT_TRUE(cache.Get("kdl_4", Finds("4")));  // evicts the oldest
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_EQ(lookups_, 4);
  ASSERT_TRUE(cache.Get("kdl_2", Finds("2")));
  EXPECT_EQ(lookups_, 4);
  ASSERT_TRUE(cache.Get("kdl_1", Finds("1")));  // was evicted
  EXPECT_EQ(lookups_, 5);
  now_ += std::chrono::seconds(10);  // 2, 3 and 4 expired
  ASSERT_TRUE(cache.Get("kdl_5", Finds("5")));
  EXPECT_LE(cache.size(), 2u);
}

TEST_F(AuthCacheTest, ZeroTtlCachesNothing) {
  AuthCache cache(std::chrono::milliseconds(0), 16, clock());
  ASSERT_TRUE(cache.Get("kdl_a", Finds("a")));
  ASSERT_TRUE(cache.Get("kdl_a", Finds("a")));
  EXPECT_EQ(lookups_, 2);
  EXPECT_EQ(cache.size(), 0u);
}

}  // namespace
}  // namespace kindling::api
