// The leader's scheduled garbage collection in `kindling serve`: it runs
// only while this process leads, and frees what no backup references.
#include "service/store_gc_loop.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "control/admin_service.h"
#include "control/backup_store.h"
#include "crypto/aead.h"
#include "db/db_test_util.h"
#include "engine/backup.h"
#include "testutil/sparse_image.h"
#include "testutil/temp_dir.h"

namespace kindling::service {
namespace {

using namespace std::chrono_literals;

class StoreGcLoopTest : public db::DbTest {
 protected:
  void SetUp() override {
    DbTest::SetUp();
    if (HasFatalFailure()) return;
    auto saved = control::UpdateBackupSettings(
        db(), master_key_, control::Actor{},
        control::BackupSettingsUpdate{.local_directory = (dir_.path() / "store").string()});
    ASSERT_TRUE(saved) << saved.error().message;
    auto opened = control::OpenCurrentBackupStore(db(), master_key_);
    ASSERT_TRUE(opened) << opened.error().message();
    store_ = std::move(*opened);
  }
  std::string Backup(std::uint64_t seed) {
    const auto image = dir_.path() / ("image-" + std::to_string(seed));
    testutil::MakeSparseFile(image, 2u << 20, {{.offset = 0, .length = 2u << 20}}, seed);
    engine::BackupOptions options;
    options.volume_id = "vol";
    options.image = image;
    options.chunk_size = 256u << 10;
    auto manifest = engine::CreateBackup(*store_.repository, options);
    EXPECT_TRUE(manifest) << manifest.error().message();
    return manifest ? manifest->backup_id : "";
  }
  std::size_t StoredChunks() { return store_.store->List("chunks/")->size(); }

  testutil::TempDir dir_;
  crypto::Key master_key_ = crypto::RandomKey();
  control::OpenedBackupStore store_;
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
