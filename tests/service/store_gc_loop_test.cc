// The leader's scheduled garbage collection in `kindling serve`: it runs
// only while this process leads, and frees what no backup references.
#include "service/store_gc_loop.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "control/local_store_fixture.h"

namespace kindling::service {
namespace {

using namespace std::chrono_literals;

class StoreGcLoopTest : public control::LocalStoreDbTest {
 protected:
  std::string Backup(std::uint64_t seed) { return RandomBackup("vol", seed, 2u << 20).backup_id; }
};

TEST_F(StoreGcLoopTest, CollectsOnlyWhileLeading) {
  const std::string old = Backup(1);
  Backup(2);
  ASSERT_TRUE(store_.repository->DeleteBackup("vol", old));
  ASSERT_EQ(StoredChunks(), 16u);

  std::atomic<bool> leading{false};
  control::StoreGcSchedule schedule;
  schedule.grace = 0s;
  schedule.timing.stale_after = 2s;
  schedule.timing.refresh_every = 50ms;
  schedule.timing.poll_every = 20ms;
  StoreGcLoop loop(
      db(), master_key_, schedule, [&] { return leading.load(); }, 20ms);
  loop.Start();
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(loop.completed(), 0) << "collected without leading";
  EXPECT_EQ(StoredChunks(), 16u);

  leading = true;
  for (int i = 0; i < 250 && loop.completed() == 0; ++i) std::this_thread::sleep_for(20ms);
  EXPECT_EQ(loop.completed(), 1);
  EXPECT_EQ(StoredChunks(), 8u);
  // Not due again for a day: polls go on, collections do not.
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(loop.completed(), 1);
  loop.Stop();
}

}  // namespace
}  // namespace kindling::service
