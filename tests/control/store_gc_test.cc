// Scheduled garbage collection of the cluster's backup store, against
// PostgreSQL and a local store: what is due comes from the audit trail.
#include "control/store_gc.h"

#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "db/audit.h"
#include "local_store_fixture.h"

namespace kindling::control {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

class StoreGcTest : public LocalStoreDbTest {
 protected:
  void SetUp() override {
    LocalStoreDbTest::SetUp();
    schedule_.grace = 0s;
    schedule_.timing.stale_after = 2s;
    schedule_.timing.refresh_every = 50ms;
    schedule_.timing.poll_every = 20ms;
  }
  // A 4 MiB random image's backup under volume `vol` (16 chunks).
  repo::Manifest EngineBackup(std::uint64_t seed) { return RandomBackup("vol", seed, 4u << 20); }
  std::vector<db::AuditEvent> Events(const std::string& action) {
    auto events = db().Transact(
        [&](db::Tx& tx) { return db::ListAuditEvents(tx, db::AuditFilter{.action = action}); });
    EXPECT_TRUE(events) << events.error().message();
    return events ? *events : std::vector<db::AuditEvent>{};
  }

  StoreGcSchedule schedule_;
};

TEST_F(StoreGcTest, RunsWhenDueFreesWhatNoBackupReferencesAndAuditsIt) {
  const repo::Manifest old = EngineBackup(1);
  const repo::Manifest kept = EngineBackup(2);
  ASSERT_EQ(StoredChunks(), 32u);
  ASSERT_TRUE(store_.repository->DeleteBackup("vol", old.backup_id));  // retention

  auto ran = CollectStoreGarbageIfDue(db(), master_key_, schedule_);
  ASSERT_TRUE(ran) << ran.error().message();
  ASSERT_TRUE(ran->has_value()) << "never collected: due";
  EXPECT_EQ((*ran)->chunks_deleted, 16u);
  EXPECT_EQ(StoredChunks(), 16u);
  const auto events = Events("backup_store.gc.succeeded");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].resource_id, store_.url);
  EXPECT_FALSE(events[0].user_id.has_value());
  const json details = json::parse(events[0].details_json);
  EXPECT_EQ(details["chunks_deleted"], 16);
  EXPECT_EQ(details["storage_url"], store_.url);

  // Not due again within `every`, whatever else changed.
  ASSERT_TRUE(store_.repository->DeleteBackup("vol", kept.backup_id));
  auto again = CollectStoreGarbageIfDue(db(), master_key_, schedule_);
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_FALSE(again->has_value());
  EXPECT_EQ(StoredChunks(), 16u);

  // A day later it is.
  schedule_.now = [] { return std::chrono::system_clock::now() + 25h; };
  auto later = CollectStoreGarbageIfDue(db(), master_key_, schedule_);
  ASSERT_TRUE(later) << later.error().message();
  ASSERT_TRUE(later->has_value());
  EXPECT_EQ((*later)->chunks_deleted, 16u);
  EXPECT_EQ(StoredChunks(), 0u);
  EXPECT_EQ(Events("backup_store.gc.succeeded").size(), 2u);
}

TEST_F(StoreGcTest, NeverDueWhenDisabled) {
  schedule_.every = 0s;
  auto off = CollectStoreGarbageIfDue(db(), master_key_, schedule_);
  ASSERT_TRUE(off) << off.error().message();
  EXPECT_FALSE(off->has_value());
  EXPECT_TRUE(Events("backup_store.gc.succeeded").empty());
}

TEST_F(StoreGcTest, AnUnreadableManifestFailsTheRunAuditedAndDeletesNothing) {
  const repo::Manifest old = EngineBackup(1);
  const repo::Manifest kept = EngineBackup(2);
  ASSERT_TRUE(store_.repository->DeleteBackup("vol", old.backup_id));
  ASSERT_TRUE(store_.store->Put(repo::ManifestKey("vol", kept.backup_id), "not a manifest"));
  auto ran = CollectStoreGarbageIfDue(db(), master_key_, schedule_);
  ASSERT_FALSE(ran);
  EXPECT_EQ(StoredChunks(), 32u);
  const auto failed = Events("backup_store.gc.failed");
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_NE(failed[0].details_json.find(kept.backup_id), std::string::npos)
      << failed[0].details_json;
  EXPECT_TRUE(Events("backup_store.gc.succeeded").empty());
}

}  // namespace
}  // namespace kindling::control
