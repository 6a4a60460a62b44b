#include "api/read_cache.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "db/db_test_util.h"
#include "db/notifications.h"

namespace kindling::api {
namespace {

using std::chrono::milliseconds;
using Cache = ReadCache<std::string>;

// A fetch the test counts, and can hold until released.
class Fetcher {
 public:
  control::ControlResult<std::string> operator()() {
    std::unique_lock lock(mu_);
    ++calls_;
    ++waiting_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return !held_; });
    --waiting_;
    return value_;
  }
  void Hold() {
    std::lock_guard lock(mu_);
    held_ = true;
  }
  void Release(std::string value) {
    std::lock_guard lock(mu_);
    held_ = false;
    value_ = std::move(value);
    cv_.notify_all();
  }
  void AwaitHeld() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return waiting_ > 0; });
  }
  int calls() {
    std::lock_guard lock(mu_);
    return calls_;
  }
  void Set(std::string value) { Release(std::move(value)); }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool held_ = false;
  int waiting_ = 0;
  int calls_ = 0;
  std::string value_ = "v1";
};

class ReadCacheTest : public db::DbTest {
 protected:
  void SetUp() override {
    DbTest::SetUp();
    // This process's writes of projects as the test says: other tests' threads in this
    // binary may write meanwhile. No periodic check of the connection
    // during a test: while one runs, every Get reads the database, and the
    // counts below would depend on when it fell.
    watch_ = std::make_unique<ChangeWatch>(dsn(), std::chrono::hours(1), [this] {
      db::TableCounts counts{};
      counts[0] = writes_.load();  // projects
      return counts;
    });
    watch_->Start();
    AwaitListening(true);
  }
  void TearDown() override { watch_.reset(); }

  void AwaitListening(bool listening) {
    for (int i = 0; i < 1000 && watch_->listening() != listening; ++i)
      std::this_thread::sleep_for(milliseconds(10));
    ASSERT_EQ(watch_->listening(), listening);
  }
  // SQL over a connection of the test's own (another process, to the
  // cache), then waits until the watch has counted it.
  void ChangeElsewhere(const std::string& sql) {
    Sql(sql);
    const Status synced = watch_->Sync(
        [&](const std::string& payload) -> Status {
          Sql("SELECT pg_notify('" + std::string(db::kChangesChannel) + "', '" + payload + "')");
          return {};
        },
        std::chrono::seconds(10));
    ASSERT_TRUE(synced) << synced.error().message();
  }
  // Waits until the watch has counted every change committed so far.
  void SyncWatch() { ChangeElsewhere("SELECT 1"); }
  // `floor`: the caller's last write of projects.
  std::string Get(Cache& cache, Fetcher& fetch, std::uint64_t floor = 0) {
    db::TableCounts floors{};
    floors[0] = floor;
    auto got = cache.Get(
        "k", [&] { return fetch(); }, floors);
    EXPECT_TRUE(got) << got.error().message;
    return got ? *got : "";
  }

  std::atomic<std::uint64_t> writes_{0};
  std::unique_ptr<ChangeWatch> watch_;
};

TEST_F(ReadCacheTest, AValueIsReadOnceUntilATableItComesFromChanges) {
  const std::string server = MakeServer("w1");
  const std::string project = MakeProject(MakeOrganization());
  SyncWatch();
  Cache cache(watch_.get(), ChangeWatch::kProjects, 16);
  Fetcher fetch;
  EXPECT_EQ(Get(cache, fetch), "v1");
  EXPECT_EQ(Get(cache, fetch), "v1");
  EXPECT_EQ(fetch.calls(), 1);
  EXPECT_EQ(cache.hits(), 1u);

  // Another table, changed by another connection: still cached.
  ChangeElsewhere("UPDATE servers SET internal_ip = '10.0.0.9' WHERE id = '" + server + "'");
  EXPECT_EQ(Get(cache, fetch), "v1");
  EXPECT_EQ(fetch.calls(), 1);

  // Its table: read again, once.
  fetch.Set("v2");
  ChangeElsewhere("UPDATE projects SET name = 'renamed' WHERE id = '" + project + "'");
  EXPECT_EQ(Get(cache, fetch), "v2");
  EXPECT_EQ(Get(cache, fetch), "v2");
  EXPECT_EQ(fetch.calls(), 2);
}

TEST_F(ReadCacheTest, AWriteOfThisProcessIsSeenByTheNextGetWithoutWaitingForItsNotification) {
  Cache cache(watch_.get(), ChangeWatch::kProjects, 16);
  Fetcher fetch;
  EXPECT_EQ(Get(cache, fetch), "v1");
  fetch.Set("v2");
  ++writes_;  // a write of projects by this process ended
  EXPECT_EQ(Get(cache, fetch), "v2");
  EXPECT_EQ(fetch.calls(), 2);
  EXPECT_EQ(Get(cache, fetch), "v2");
  EXPECT_EQ(fetch.calls(), 2);
}

TEST_F(ReadCacheTest, GetsArrivingDuringAReadShareIt) {
  Cache cache(watch_.get(), ChangeWatch::kProjects, 16);
  Fetcher fetch;
  fetch.Hold();
  std::vector<std::thread> gets;
  std::atomic<int> answered{0};
  for (int i = 0; i < 8; ++i) {
    gets.emplace_back([&] {
      if (Get(cache, fetch) == "v1") ++answered;
    });
    if (i == 0) fetch.AwaitHeld();
  }
  while (cache.joined() < 7) std::this_thread::sleep_for(milliseconds(1));
  fetch.Release("v1");
  for (auto& t : gets) t.join();
  EXPECT_EQ(answered, 8);
  EXPECT_EQ(fetch.calls(), 1);
}

TEST_F(ReadCacheTest, WhileAChangeIsReReadOthersGetTheValueBeforeItButNotTheWriter) {
  Cache cache(watch_.get(), ChangeWatch::kProjects, 16);
  Fetcher fetch;
  EXPECT_EQ(Get(cache, fetch), "v1");
  // A client writes through this process...
  const std::uint64_t writers_floor = ++writes_;
  // ...and a first Get re-reads, slowly.
  fetch.Hold();
  std::thread first([&] { EXPECT_EQ(Get(cache, fetch), "v2"); });
  fetch.AwaitHeld();
  // Another client gets the value from before the change meanwhile...
  EXPECT_EQ(Get(cache, fetch), "v1");
  EXPECT_EQ(cache.stale_hits(), 1u);
  // ...the writer does not: it waits for the re-read.
  std::thread writer([&] { EXPECT_EQ(Get(cache, fetch, writers_floor), "v2"); });
  while (cache.joined() < 1) std::this_thread::sleep_for(milliseconds(1));
  fetch.Release("v2");
  first.join();
  writer.join();
  EXPECT_EQ(fetch.calls(), 2);
  EXPECT_EQ(Get(cache, fetch), "v2");
}

TEST_F(ReadCacheTest, AWriterOfAnotherTableGetsTheValueFromBeforeAReRead) {
  Cache cache(watch_.get(), ChangeWatch::kProjects, 16);
  Fetcher fetch;
  EXPECT_EQ(Get(cache, fetch), "v1");
  ++writes_;
  fetch.Hold();
  std::thread first([&] { EXPECT_EQ(Get(cache, fetch), "v2"); });
  fetch.AwaitHeld();
  // Its last write was of servers only: projects as of before is fine.
  db::TableCounts floor{};
  floor[4] = 1000;
  auto got = cache.Get(
      "k", [&] { return fetch(); }, floor);
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, "v1");
  EXPECT_EQ(cache.stale_hits(), 1u);
  fetch.Release("v2");
  first.join();
}

TEST_F(ReadCacheTest, NothingIsCachedWhileTheListenerIsDown) {
  Cache cache(watch_.get(), ChangeWatch::kProjects, 16);
  Fetcher fetch;
  Get(cache, fetch);
  Get(cache, fetch);
  EXPECT_EQ(fetch.calls(), 1);
  Sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
      "WHERE datname = current_database() AND pid <> pg_backend_pid()");
  AwaitListening(false);
  fetch.Set("v2");
  EXPECT_EQ(Get(cache, fetch), "v2");
  EXPECT_EQ(Get(cache, fetch), "v2");
  EXPECT_EQ(fetch.calls(), 3);
  // It listens again (within a second) and caches again.
  AwaitListening(true);
  Get(cache, fetch);
  const int calls = fetch.calls();
  Get(cache, fetch);
  EXPECT_EQ(fetch.calls(), calls);
}

TEST_F(ReadCacheTest, WithoutAWatchEveryGetReads) {
  Cache cache(nullptr, ChangeWatch::kProjects, 16);
  Fetcher fetch;
  Get(cache, fetch);
  Get(cache, fetch);
  EXPECT_EQ(fetch.calls(), 2);
}

}  // namespace
}  // namespace kindling::api
