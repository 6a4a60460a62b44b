#include "common/ids.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace kindling {
namespace {

class IdsTest : public ::testing::Test {
 protected:
  static void ExpectCanonical(const std::string& id, char version) {
    ASSERT_EQ(id.size(), 36u) << id;
    EXPECT_TRUE(IsUuid(id)) << id;
    for (std::size_t i = 0; i < id.size(); ++i) {
      if (i == 8 || i == 13 || i == 18 || i == 23) {
        EXPECT_EQ(id[i], '-') << id;
      } else {
        const char c = id[i];
        EXPECT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))
            << "not lower-case hex: " << id;
      }
    }
    EXPECT_EQ(id[14], version) << id;
    EXPECT_NE(std::string("89ab").find(id[19]), std::string::npos) << "variant: " << id;
  }
};

TEST_F(IdsTest, UuidV4Format) {
  for (int i = 0; i < 100; ++i) ExpectCanonical(NewUuidV4(), '4');
}

TEST_F(IdsTest, UuidV7Format) {
  for (int i = 0; i < 100; ++i) ExpectCanonical(NewUuidV7(), '7');
}

TEST_F(IdsTest, UuidsAreUnique) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    EXPECT_TRUE(seen.insert(NewUuidV4()).second);
    EXPECT_TRUE(seen.insert(NewUuidV7()).second);
  }
}

// Threads started together draw distinct ids (a per-thread generator
// seeded alike would repeat them).
TEST_F(IdsTest, ThreadsStartedTogetherDrawDistinctIds) {
  constexpr int kThreads = 8;
  constexpr int kEach = 500;
  std::vector<std::vector<std::string>> drawn(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&drawn, t] {
      for (int i = 0; i < kEach; ++i) drawn[t].push_back(NewUuidV4());
    });
  }
  for (auto& thread : threads) thread.join();
  std::set<std::string> all;
  for (const auto& ids : drawn) all.insert(ids.begin(), ids.end());
  EXPECT_EQ(all.size(), static_cast<std::size_t>(kThreads * kEach));
}

TEST_F(IdsTest, UuidV7SortsByCreationTime) {
  std::vector<std::string> ids;
  for (int i = 0; i < 20; ++i) {
    ids.push_back(NewUuidV7());
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
}

TEST_F(IdsTest, UuidV7EmbedsCurrentUnixMillis) {
  const auto before = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  const std::string id = NewUuidV7();
  const auto after = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  const long long ms = std::stoll(id.substr(0, 8) + id.substr(9, 4), nullptr, 16);
  EXPECT_GE(ms, before);
  EXPECT_LE(ms, after);
}

TEST_F(IdsTest, IsUuidRejectsOtherText) {
  EXPECT_TRUE(IsUuid("01890a5d-ac96-774b-bcce-b302099a8057"));
  EXPECT_TRUE(IsUuid("01890A5D-AC96-774B-BCCE-B302099A8057"));
  EXPECT_FALSE(IsUuid(""));
  EXPECT_FALSE(IsUuid("01890a5d-ac96-774b-bcce-b302099a805"));
  EXPECT_FALSE(IsUuid("01890a5d-ac96-774b-bcce-b302099a80577"));
  EXPECT_FALSE(IsUuid("01890a5dac96-774b-bcce-b302099a8057-"));
  EXPECT_FALSE(IsUuid("01890a5d-ac96-774b-bcce-b302099a805g"));
  EXPECT_FALSE(IsUuid("01890a5d_ac96_774b_bcce_b302099a8057"));
}

TEST_F(IdsTest, SafeKeyComponent) {
  EXPECT_TRUE(IsSafeKeyComponent("vol-1"));
  EXPECT_TRUE(IsSafeKeyComponent("A.b_c-9"));
  EXPECT_TRUE(IsSafeKeyComponent(NewUuidV7()));
  EXPECT_TRUE(IsSafeKeyComponent(std::string(128, 'a')));
  EXPECT_FALSE(IsSafeKeyComponent(std::string(129, 'a')));
  EXPECT_FALSE(IsSafeKeyComponent(""));
  EXPECT_FALSE(IsSafeKeyComponent("."));
  EXPECT_FALSE(IsSafeKeyComponent(".."));
  EXPECT_FALSE(IsSafeKeyComponent(".hidden"));
  EXPECT_FALSE(IsSafeKeyComponent("a/b"));
  EXPECT_FALSE(IsSafeKeyComponent("a b"));
  EXPECT_FALSE(IsSafeKeyComponent("a\\b"));
  EXPECT_FALSE(IsSafeKeyComponent("caf\xc3\xa9"));
  EXPECT_FALSE(IsSafeKeyComponent(std::string("a\0b", 3)));
}

}  // namespace
}  // namespace kindling
