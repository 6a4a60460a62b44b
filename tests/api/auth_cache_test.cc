#include "api/auth_cache.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

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

  steady_clock::time_point now_ = steady_clock::time_point{} + std::chrono::hours(1);
};

TEST_F(AuthCacheTest, EntriesExpireAfterTheTtl) {
  AuthCache cache(std::chrono::seconds(10), 16, clock());
  EXPECT_FALSE(cache.Find("kdl_a"));
  cache.Remember("kdl_a", For("a"), cache.generation());
  ASSERT_TRUE(cache.Find("kdl_a"));
  EXPECT_EQ(cache.Find("kdl_a")->user.id, "user-of-a");
  EXPECT_FALSE(cache.Find("kdl_b"));
  now_ += std::chrono::milliseconds(9'999);
  EXPECT_TRUE(cache.Find("kdl_a"));
  now_ += std::chrono::milliseconds(1);
  EXPECT_FALSE(cache.Find("kdl_a"));
  EXPECT_EQ(cache.size(), 0u);
}

TEST_F(AuthCacheTest, ForgetDropsTheKeyAndALookupThatRacedWithIt) {
  AuthCache cache(std::chrono::seconds(10), 16, clock());
  cache.Remember("kdl_a", For("a"), cache.generation());
  cache.Remember("kdl_b", For("b"), cache.generation());
  // A lookup of key a began (read the row) before the revocation committed...
  const std::uint64_t before = cache.generation();
  cache.Forget("a");
  EXPECT_FALSE(cache.Find("kdl_a"));
  EXPECT_TRUE(cache.Find("kdl_b"));
  // ...and finishes after it: its (stale) answer is not cached.
  cache.Remember("kdl_a", For("a"), before);
  EXPECT_FALSE(cache.Find("kdl_a"));
}

TEST_F(AuthCacheTest, BoundedExpiredFirstThenOldest) {
  AuthCache cache(std::chrono::seconds(10), 3, clock());
  cache.Remember("kdl_1", For("1"), cache.generation());
  now_ += std::chrono::seconds(1);
  cache.Remember("kdl_2", For("2"), cache.generation());
  cache.Remember("kdl_3", For("3"), cache.generation());
  cache.Remember("kdl_4", For("4"), cache.generation());  // evicts the oldest
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_FALSE(cache.Find("kdl_1"));
  EXPECT_TRUE(cache.Find("kdl_2"));
  now_ += std::chrono::seconds(10);  // 2, 3 and 4 expired
  cache.Remember("kdl_5", For("5"), cache.generation());
  EXPECT_EQ(cache.size(), 1u);
}

TEST_F(AuthCacheTest, ZeroTtlCachesNothing) {
  AuthCache cache(std::chrono::milliseconds(0), 16, clock());
  cache.Remember("kdl_a", For("a"), cache.generation());
  EXPECT_FALSE(cache.Find("kdl_a"));
}

}  // namespace
}  // namespace kindling::api
