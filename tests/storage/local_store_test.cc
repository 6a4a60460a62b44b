#include "storage/local_store.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "testutil/temp_dir.h"

namespace kindling::storage {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> Keys(const std::vector<ObjectInfo>& objects) {
  std::vector<std::string> keys;
  for (const auto& object : objects) keys.push_back(object.key);
  return keys;
}

class LocalStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = LocalStore::Open(dir_.path() / "store");
    ASSERT_TRUE(store) << store.error().message();
    store_ = std::move(*store);
  }

  testutil::TempDir dir_;
  std::unique_ptr<LocalStore> store_;
};

TEST_F(LocalStoreTest, PutGetHeadDelete) {
  ASSERT_TRUE(store_->Put("a/b/c", "hello"));
  EXPECT_EQ(store_->Get("a/b/c").value_or("<error>"), "hello");
  EXPECT_EQ(store_->Head("a/b/c").value_or(0), 5u);
  EXPECT_TRUE(fs::is_regular_file(dir_.path() / "store/a/b/c"));

  ASSERT_TRUE(store_->Delete("a/b/c"));
  auto gone = store_->Get("a/b/c");
  ASSERT_FALSE(gone);
  EXPECT_TRUE(gone.error().is_not_found());
  EXPECT_TRUE(store_->Delete("a/b/c"));
}

TEST_F(LocalStoreTest, MissingKeyIsNotFound) {
  auto get = store_->Get("nope");
  ASSERT_FALSE(get);
  EXPECT_EQ(get.error().kind(), ErrorKind::kNotFound);
  auto head = store_->Head("no/such/dir/key");
  ASSERT_FALSE(head);
  EXPECT_EQ(head.error().kind(), ErrorKind::kNotFound);
}

TEST_F(LocalStoreTest, PutOverwritesAndKeepsBinaryAndEmptyObjects) {
  std::string binary;
  for (int i = 0; i < 256; ++i) binary += static_cast<char>(i);
  ASSERT_TRUE(store_->Put("k", "old"));
  ASSERT_TRUE(store_->Put("k", binary));
  EXPECT_EQ(store_->Get("k").value_or(""), binary);
  ASSERT_TRUE(store_->Put("empty", ""));
  EXPECT_EQ(store_->Get("empty").value_or("x"), "");
  EXPECT_EQ(store_->Head("empty").value_or(1), 0u);
}

TEST_F(LocalStoreTest, InvalidKeysAreRejected) {
  for (const char* key : {"", "/abs", "a/../b", "..", "a//b", "trailing/", "./a", "sp ace"}) {
    auto status = store_->Put(key, "x");
    ASSERT_FALSE(status) << key;
    EXPECT_EQ(status.error().kind(), ErrorKind::kInvalidArgument) << key;
  }
  EXPECT_FALSE(fs::exists(dir_.path() / "b"));
}

TEST_F(LocalStoreTest, ListsByPrefixInLexicalOrder) {
  for (const char* key : {"p/z", "p/a", "p-b", "p/sub/c", "q/c", "p2/x"})
    ASSERT_TRUE(store_->Put(key, key));
  auto all = store_->List("");
  ASSERT_TRUE(all);
  EXPECT_EQ(Keys(*all), (std::vector<std::string>{"p-b", "p/a", "p/sub/c", "p/z", "p2/x", "q/c"}));
  auto under_p = store_->List("p/");
  ASSERT_TRUE(under_p);
  EXPECT_EQ(Keys(*under_p), (std::vector<std::string>{"p/a", "p/sub/c", "p/z"}));
  EXPECT_EQ((*under_p)[1].size, 7u);
  auto starting_with_p = store_->List("p");
  ASSERT_TRUE(starting_with_p);
  EXPECT_EQ(starting_with_p->size(), 5u);
  auto partial_name = store_->List("p/s");
  ASSERT_TRUE(partial_name);
  EXPECT_EQ(Keys(*partial_name), (std::vector<std::string>{"p/sub/c"}));
  auto none = store_->List("nothing/here/");
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
}

TEST_F(LocalStoreTest, ListSkipsTempFilesOfPutsInFlight) {
  ASSERT_TRUE(store_->Put("dir/real", "x"));
  // What a crashed Put leaves behind.
  std::ofstream(dir_.path() / "store/dir/.real.tmp-123") << "partial";
  auto listed = store_->List("");
  ASSERT_TRUE(listed);
  EXPECT_EQ(Keys(*listed), (std::vector<std::string>{"dir/real"}));
}

TEST_F(LocalStoreTest, ConcurrentPutsOfDistinctKeys) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        const std::string key = "t" + std::to_string(t) + "/" + std::to_string(i);
        EXPECT_TRUE(store_->Put(key, key));
      }
    });
  }
  for (auto& thread : threads) thread.join();
  auto listed = store_->List("");
  ASSERT_TRUE(listed);
  EXPECT_EQ(listed->size(), 160u);
  EXPECT_EQ(store_->Get("t7/19").value_or(""), "t7/19");
}

TEST_F(LocalStoreTest, DescribeIsTheFileUrl) {
  EXPECT_EQ(store_->Describe(), "file://" + (dir_.path() / "store").string());
}

TEST(LocalStoreOpenTest, CreatesTheRootAndRejectsAFile) {
  testutil::TempDir dir;
  auto store = LocalStore::Open(dir.path() / "new/nested/root");
  ASSERT_TRUE(store);
  EXPECT_TRUE(fs::is_directory(dir.path() / "new/nested/root"));

  testutil::WriteFile(dir.path() / "file", "x");
  auto on_file = LocalStore::Open(dir.path() / "file");
  ASSERT_FALSE(on_file);
}

TEST_F(LocalStoreTest, PutIfAbsentNeverReplaces) {
  ASSERT_TRUE(store_->PutIfAbsent("kindling-store/config", "first"));
  auto again = store_->PutIfAbsent("kindling-store/config", "second");
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().kind(), ErrorKind::kAlreadyExists);
  EXPECT_EQ(*store_->Get("kindling-store/config"), "first");
  EXPECT_EQ(Keys(*store_->List("")), std::vector<std::string>{"kindling-store/config"});
}

TEST_F(LocalStoreTest, PutIfAbsentHasOneWinnerAmongRacers) {
  constexpr int kRacers = 8;
  std::vector<Status> results(kRacers);
  std::vector<std::thread> threads;
  for (int i = 0; i < kRacers; ++i)
    threads.emplace_back(
        [&, i] { results[i] = store_->PutIfAbsent("deep/new/dir/object", std::to_string(i)); });
  for (auto& t : threads) t.join();
  int wins = 0;
  std::string winner;
  for (int i = 0; i < kRacers; ++i) {
    if (results[i]) {
      ++wins;
      winner = std::to_string(i);
    } else {
      EXPECT_EQ(results[i].error().kind(), ErrorKind::kAlreadyExists);
    }
  }
  EXPECT_EQ(wins, 1);
  EXPECT_EQ(*store_->Get("deep/new/dir/object"), winner);
}

// Put creates (and fsyncs) every missing directory level of a key; racing
// Puts into the same new directories all succeed.
TEST_F(LocalStoreTest, PutCreatesNewDirectoriesForRacingWriters) {
  std::vector<std::thread> threads;
  std::vector<Status> results(8);
  for (int i = 0; i < 8; ++i)
    threads.emplace_back(
        [&, i] { results[i] = store_->Put("chunks/ab/new/obj" + std::to_string(i), "x"); });
  for (auto& t : threads) t.join();
  for (const Status& r : results) EXPECT_TRUE(r) << r.error().message();
  EXPECT_EQ(store_->List("chunks/")->size(), 8u);
}

}  // namespace
}  // namespace kindling::storage
