#include "storage/local_store.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
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

// The entries of the store's staging folder (batches in progress or left).
std::vector<std::string> StagingFolders(const fs::path& root) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root / ".staging", ec))
    names.push_back(entry.path().filename().string());
  return names;
}

TEST_F(LocalStoreTest, ABatchsObjectsAppearOnlyAtCommit) {
  auto batch = store_->NewBatch();
  ASSERT_TRUE(batch) << batch.error().message();
  const std::string big(3 << 20, 'b');  // written with O_DIRECT where it can be
  ASSERT_TRUE((*batch)->Put("chunks/aa/one", "first"));
  ASSERT_TRUE((*batch)->Put("chunks/bb/two", big));
  ASSERT_TRUE((*batch)->Put("chunks/aa/one", "again"));  // the last Put wins
  EXPECT_TRUE(store_->Get("chunks/aa/one").error().is_not_found());
  EXPECT_TRUE(store_->Head("chunks/bb/two").error().is_not_found());
  auto before = store_->List("");
  ASSERT_TRUE(before);
  EXPECT_TRUE(before->empty()) << Keys(*before).front();

  ASSERT_TRUE((*batch)->Commit());
  EXPECT_EQ(store_->Get("chunks/aa/one").value_or(""), "again");
  EXPECT_EQ(store_->Get("chunks/bb/two").value_or(""), big);
  auto after = store_->List("");
  ASSERT_TRUE(after);
  EXPECT_EQ(Keys(*after), (std::vector<std::string>{"chunks/aa/one", "chunks/bb/two"}));
  batch->reset();
  EXPECT_TRUE(StagingFolders(store_->root()).empty());
}

TEST_F(LocalStoreTest, ABatchDroppedBeforeCommitLeavesNothing) {
  {
    auto batch = store_->NewBatch();
    ASSERT_TRUE(batch);
    ASSERT_TRUE((*batch)->Put("chunks/aa/one", "first"));
    EXPECT_EQ(StagingFolders(store_->root()).size(), 1u);
  }
  auto listed = store_->List("");
  ASSERT_TRUE(listed);
  EXPECT_TRUE(listed->empty());
  EXPECT_TRUE(StagingFolders(store_->root()).empty());
}

TEST_F(LocalStoreTest, ABatchRejectsInvalidKeysAndOverwritesAtCommit) {
  ASSERT_TRUE(store_->Put("k", "old"));
  auto batch = store_->NewBatch();
  ASSERT_TRUE(batch);
  EXPECT_EQ((*batch)->Put("../escape", "x").error().kind(), ErrorKind::kInvalidArgument);
  ASSERT_TRUE((*batch)->Put("k", "new"));
  EXPECT_EQ(store_->Get("k").value_or(""), "old");
  ASSERT_TRUE((*batch)->Commit());
  EXPECT_EQ(store_->Get("k").value_or(""), "new");
}

TEST_F(LocalStoreTest, ConcurrentPutsIntoOneBatch) {
  auto batch = store_->NewBatch();
  ASSERT_TRUE(batch);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        const std::string key = "t" + std::to_string(t) + "/" + std::to_string(i);
        EXPECT_TRUE((*batch)->Put(key, key));
      }
    });
  }
  for (auto& thread : threads) thread.join();
  ASSERT_TRUE((*batch)->Commit());
  auto listed = store_->List("");
  ASSERT_TRUE(listed);
  EXPECT_EQ(listed->size(), 160u);
  EXPECT_EQ(store_->Get("t5/7").value_or(""), "t5/7");
}

TEST_F(LocalStoreTest, ANewBatchRemovesWhatAKilledProcessStagedButNotALiveBatch) {
  auto live = store_->NewBatch();
  ASSERT_TRUE(live);
  ASSERT_TRUE((*live)->Put("live/one", "kept"));

  // A process killed mid-batch: its staging folder stays, its lock goes.
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto batch = store_->NewBatch();
    const bool ok = batch && (*batch)->Put("dead/one", std::string(1 << 20, 'd'));
    const char byte = ok ? 'y' : 'n';
    (void)!::write(ready[1], &byte, 1);
    ::pause();
    ::_exit(0);
  }
  ::close(ready[1]);
  char byte = 0;
  ASSERT_EQ(::read(ready[0], &byte, 1), 1);
  ::close(ready[0]);
  EXPECT_EQ(byte, 'y');
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_EQ(StagingFolders(store_->root()).size(), 2u);
  // What a process killed between creating its folder and locking it leaves,
  // an hour old, and the same just made (its creator may be about to lock it).
  const fs::path old_new = store_->root() / ".staging" / "0000.new";
  fs::create_directory(old_new);
  fs::last_write_time(old_new, fs::file_time_type::clock::now() - std::chrono::hours(1));
  fs::create_directory(store_->root() / ".staging" / "0001.new");

  auto next = store_->NewBatch();
  ASSERT_TRUE(next);
  // Left: the live batch's folder, the next one's, the fresh ".new".
  auto folders = StagingFolders(store_->root());
  EXPECT_EQ(folders.size(), 3u);
  EXPECT_FALSE(fs::exists(old_new));
  EXPECT_TRUE(fs::exists(store_->root() / ".staging" / "0001.new"));
  ASSERT_TRUE((*live)->Commit());
  EXPECT_EQ(store_->Get("live/one").value_or(""), "kept");
  EXPECT_TRUE(store_->Get("dead/one").error().is_not_found());
}

TEST_F(LocalStoreTest, ListSkipsHiddenFolders) {
  ASSERT_TRUE(store_->Put("dir/real", "x"));
  fs::create_directories(store_->root() / "dir/.hidden");
  std::ofstream(store_->root() / "dir/.hidden/object") << "not an object";
  auto listed = store_->List("");
  ASSERT_TRUE(listed);
  EXPECT_EQ(Keys(*listed), (std::vector<std::string>{"dir/real"}));
}

}  // namespace
}  // namespace kindling::storage
