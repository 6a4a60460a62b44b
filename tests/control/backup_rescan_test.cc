// The rescan against real stores and PostgreSQL: backups made by the engine
// in stores the cluster knows, with the database lacking their rows as a
// database restored from an older snapshot would.
#include "control/backup_rescan.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>

#include "control/admin_service.h"
#include "control/backup_store.h"
#include "crypto/sha256.h"
#include "db/backups.h"
#include "db/db_test_util.h"
#include "engine/backup.h"
#include "local_store_fixture.h"
#include "repo/layout.h"
#include "storage/local_store.h"
#include "testutil/sparse_image.h"
#include "testutil/temp_dir.h"

namespace kindling::control {
namespace {

using nlohmann::json;

class BackupRescanTest : public LocalStoreDbTest {
 protected:
  void SetUp() override {
    LocalStoreDbTest::SetUp();
    if (HasFatalFailure()) return;
    project_ = MakeProject(MakeOrganization());
    volume_ = MakeVolume(project_, MakeServer("w1"));
  }

  // A backup of a small image made with the engine under these ids; its
  // image digest.
  std::string EngineBackup(const engine::Repository& repository, const std::string& volume_id,
                           const std::string& backup_id, std::uint64_t seed = 1) {
    const auto image = dir_.path() / ("image-" + backup_id);
    testutil::MakeSparseFile(
        image, 12u << 20,
        {{.offset = 1u << 20, .length = 3u << 20},
         {.offset = 9u << 20, .length = 1u << 20, .fill = testutil::Fill::kText}},
        seed);
    engine::BackupOptions options;
    options.volume_id = volume_id;
    options.backup_id = backup_id;
    options.image = image;
    options.threads = 2;
    auto manifest = engine::CreateBackup(repository, options);
    EXPECT_TRUE(manifest) << manifest.error().message();
    return manifest ? crypto::DigestHex(manifest->image_digest) : "";
  }
  std::string EngineBackup(const std::string& volume_id, const std::string& backup_id,
                           std::uint64_t seed = 1) {
    return EngineBackup(*store_.repository, volume_id, backup_id, seed);
  }

  RescanReport Rescan(const Actor& actor = Actor{}) {
    auto report = RescanBackupStores(db(), master_key_, actor);
    EXPECT_TRUE(report) << report.error().message;
    return report ? std::move(*report) : RescanReport{};
  }

  int Count(const std::string& sql) { return Sql(sql)[0][0].as<int>(); }

  static const RescanOrphan* FindOrphan(const RescanReport& report, const std::string& id) {
    auto it = std::ranges::find_if(report.orphaned,
                                   [&](const RescanOrphan& o) { return o.orphan.backup_id == id; });
    return it == report.orphaned.end() ? nullptr : &*it;
  }

  std::string project_;
  db::Volume volume_;
};

TEST_F(BackupRescanTest, ImportsBackupsOfKnownVolumesAndListsOrphansOnce) {
  const std::string known = NewUuidV7();
  const std::string known_digest = EngineBackup(volume_.id, known, 1);
  // A deleted volume's backup, and one the database has a row for.
  const db::Volume deleted = MakeVolume(MakeProject(MakeOrganization("other"), "old"), {});
  ASSERT_TRUE(Must([&](db::Tx& tx) { return db::MarkVolumeDeleted(tx, deleted.id); }));
  const std::string of_deleted = NewUuidV7();
  EngineBackup(deleted.id, of_deleted, 2);
  const std::string recorded = NewUuidV7();
  EngineBackup(volume_.id, recorded, 3);
  ASSERT_TRUE(Must([&](db::Tx& tx) -> Result<bool> {
    return db::ImportBackup(tx, db::ImportedBackup{.id = recorded,
                                                   .volume_id = volume_.id,
                                                   .storage_url = store_.url,
                                                   .storage_key = "k",
                                                   .created_at = db::Timestamp{}});
  }));
  // Volumes the database does not know: one the control plane made, one the
  // engine's CLI made under its own ids.
  const std::string unknown_volume = NewUuidV4();
  const std::string orphan = NewUuidV7();
  const std::string orphan_digest = EngineBackup(unknown_volume, orphan, 4);
  EngineBackup("vol-42", "manual-1", 5);
  const int events_before = Count("SELECT count(*) FROM cluster_audit_events");

  const RescanReport report = Rescan();
  EXPECT_EQ(report.stores, std::vector<std::string>{store_.url});
  EXPECT_EQ(report.manifests, 5u);
  EXPECT_EQ(report.known, 1u);
  EXPECT_TRUE(report.unreadable.empty());
  ASSERT_EQ(report.imported.size(), 2u);
  for (const RescannedBackup& b : report.imported) {
    if (b.backup_id == known) {
      EXPECT_EQ(b.volume_id, volume_.id);
      EXPECT_EQ(b.project_id, project_);
      EXPECT_FALSE(b.volume_deleted);
      EXPECT_EQ(b.image_sha256, known_digest);
    } else {
      EXPECT_EQ(b.backup_id, of_deleted);
      EXPECT_TRUE(b.volume_deleted);
    }
    EXPECT_FALSE(b.recovered);
  }
  auto row = Must([&](db::Tx& tx) { return db::GetBackup(tx, known); });
  ASSERT_TRUE(row);
  EXPECT_EQ(row->status, db::BackupStatus::kSucceeded);
  EXPECT_EQ(row->kind, db::BackupKind::kManual);
  EXPECT_EQ(row->storage_url.value_or(""), store_.url);
  EXPECT_EQ(row->storage_key.value_or(""), repo::ManifestKey(volume_.id, known));
  EXPECT_EQ(row->size_bytes.value_or(0), 12 << 20);
  const json metadata = json::parse(row->metadata_json);
  EXPECT_EQ(metadata["image_sha256"], known_digest);
  EXPECT_EQ(metadata["imported"], true);
  EXPECT_GT(metadata["stored_bytes"].get<std::uint64_t>(), 0u);
  EXPECT_GT(metadata["referenced_bytes"].get<std::uint64_t>(), 0u);
  EXPECT_EQ(metadata["chunk_size"], 4u << 20);
  ASSERT_TRUE(row->completed_at.has_value());
  EXPECT_LT(std::chrono::system_clock::now() - *row->completed_at, std::chrono::minutes(5));

  ASSERT_EQ(report.orphaned.size(), 2u);
  const RescanOrphan* found = FindOrphan(report, orphan);
  ASSERT_NE(found, nullptr);
  EXPECT_TRUE(found->first_found);
  EXPECT_EQ(found->orphan.volume_id, unknown_volume);
  EXPECT_EQ(found->orphan.image_sha256, orphan_digest);
  EXPECT_EQ(found->orphan.storage_url, store_.url);
  EXPECT_EQ(found->orphan.size_bytes, 12 << 20);
  ASSERT_NE(FindOrphan(report, "manual-1"), nullptr);
  EXPECT_EQ(Count("SELECT count(*) FROM cluster_audit_events WHERE action = "
                  "'volume.backup.imported'"),
            2);
  EXPECT_EQ(Count("SELECT count(*) FROM cluster_audit_events WHERE action = "
                  "'backup.orphan.found'"),
            2);
  EXPECT_EQ(Count("SELECT count(*) FROM cluster_audit_events WHERE action = 'backups.rescan' "
                  "AND user_id IS NULL"),
            1);
  const int events_after = Count("SELECT count(*) FROM cluster_audit_events");
  EXPECT_EQ(events_after, events_before + 5);

  // A second rescan finds the same and changes nothing.
  const int backups = Count("SELECT count(*) FROM project_volume_backups");
  const RescanReport again = Rescan();
  EXPECT_TRUE(again.imported.empty());
  EXPECT_EQ(again.known, 3u);
  ASSERT_EQ(again.orphaned.size(), 2u);
  for (const RescanOrphan& o : again.orphaned) EXPECT_FALSE(o.first_found);
  EXPECT_EQ(Count("SELECT count(*) FROM project_volume_backups"), backups);
  EXPECT_EQ(Count("SELECT count(*) FROM orphan_volume_backups"), 2);
  EXPECT_EQ(Count("SELECT count(*) FROM cluster_audit_events"), events_after);
  // An admin's rescan is audited even when it changes nothing.
  Rescan(Actor{.user_id = NewUuidV4()});
  EXPECT_EQ(Count("SELECT count(*) FROM cluster_audit_events"), events_after + 1);
}

TEST_F(BackupRescanTest, StoresInTheHistoryAreScannedAndUnreadableOnesReported) {
  // An older store, recorded in the history when it was the current one.
  const std::string old_dir = (dir_.path() / "old-store").string();
  ASSERT_TRUE(UpdateBackupSettings(db(), master_key_, Actor{},
                                   BackupSettingsUpdate{.local_directory = old_dir}));
  auto old_store = OpenCurrentBackupStore(db(), master_key_);
  ASSERT_TRUE(old_store) << old_store.error().message();
  ASSERT_TRUE(UpdateBackupSettings(db(), master_key_, Actor{},
                                   BackupSettingsUpdate{.local_directory = store_dir_.string()}));
  const std::string in_old = NewUuidV7();
  EngineBackup(*old_store->repository, volume_.id, in_old);
  // A recorded store that another master key initialised, and an S3 store a
  // backup row names but the history lacks: neither opens.
  const std::string foreign_dir = (dir_.path() / "foreign").string();
  {
    auto local = storage::LocalStore::Open(foreign_dir);
    ASSERT_TRUE(local);
    ASSERT_TRUE(engine::Repository::Init(**local, crypto::RandomKey()));
  }
  ASSERT_TRUE(Must([&](db::Tx& tx) {
    return RecordBackupStore(tx, master_key_, BackupStoreSettings{.local_directory = foreign_dir});
  }));
  Sql("INSERT INTO project_volume_backups (id, project_volume_id, kind, status, storage_url) "
      "VALUES ('" +
      NewUuidV7() + "', '" + volume_.id + "', 'manual', 'succeeded', 's3://gone/prefix')");
  // In the current store: a good backup and a manifest that does not
  // authenticate.
  const std::string good = NewUuidV7();
  EngineBackup(volume_.id, good);
  const std::string bad = NewUuidV7();
  ASSERT_TRUE(store_.store->Put(repo::ManifestKey(volume_.id, bad), "not a manifest"));

  const RescanReport report = Rescan();
  std::vector<std::string> imported;
  for (const RescannedBackup& b : report.imported) imported.push_back(b.backup_id + b.storage_url);
  std::ranges::sort(imported);
  std::vector<std::string> expected = {good + store_.url, in_old + old_store->url};
  std::ranges::sort(expected);
  EXPECT_EQ(imported, expected);
  EXPECT_EQ(report.stores.size(), 2u);
  ASSERT_EQ(report.unreadable.size(), 3u);
  std::map<std::string, RescanProblem> problems;
  for (const RescanProblem& p : report.unreadable) problems[p.storage_url] = p;
  EXPECT_EQ(problems["file://" + foreign_dir].key, "");
  EXPECT_NE(problems["file://" + foreign_dir].error.find("another master key"), std::string::npos)
      << problems["file://" + foreign_dir].error;
  EXPECT_NE(problems["s3://gone/prefix"].error.find("not recorded"), std::string::npos)
      << problems["s3://gone/prefix"].error;
  EXPECT_EQ(problems[store_.url].key, repo::ManifestKey(volume_.id, bad));
  auto row = Must([&](db::Tx& tx) { return db::GetBackup(tx, in_old); });
  ASSERT_TRUE(row);
  EXPECT_EQ(row->storage_url.value_or(""), old_store->url);
}

TEST_F(BackupRescanTest, FailedRowWithAManifestIsRecoveredAndInFlightOnesAreLeft) {
  auto failed = Must([&](db::Tx& tx) -> Result<db::Backup> {
    KINDLING_ASSIGN_OR_RETURN(db::Backup b,
                              db::CreateBackup(tx, db::NewBackup{.volume_id = volume_.id}));
    return db::MarkBackupFailed(tx, b.id, "server holding the volume is dead");
  });
  ASSERT_TRUE(failed);
  const std::string digest = EngineBackup(volume_.id, failed->id);
  auto pending = Must(
      [&](db::Tx& tx) { return db::CreateBackup(tx, db::NewBackup{.volume_id = volume_.id}); });
  ASSERT_TRUE(pending);
  EngineBackup(volume_.id, pending->id, 7);

  const RescanReport report = Rescan();
  ASSERT_EQ(report.imported.size(), 1u);
  EXPECT_TRUE(report.imported[0].recovered);
  EXPECT_EQ(report.in_flight, std::vector<std::string>{pending->id});
  auto row = Must([&](db::Tx& tx) { return db::GetBackup(tx, failed->id); });
  ASSERT_TRUE(row);
  EXPECT_EQ(row->status, db::BackupStatus::kSucceeded);
  EXPECT_FALSE(row->error.has_value());
  const json metadata = json::parse(row->metadata_json);
  EXPECT_EQ(metadata["image_sha256"], digest);
  EXPECT_EQ(metadata["previous_error"], "server holding the volume is dead");
  EXPECT_EQ(Must([&](db::Tx& tx) { return db::GetBackup(tx, pending->id); })->status,
            db::BackupStatus::kPending);
  EXPECT_TRUE(Rescan().imported.empty());
}

TEST_F(BackupRescanTest, AssigningAnOrphanMakesItABackupOfTheProject) {
  const std::string unknown_volume = NewUuidV4();
  const std::string orphan = NewUuidV7();
  EngineBackup(unknown_volume, orphan);
  EngineBackup("vol-42", "manual-1");
  ASSERT_EQ(Rescan().orphaned.size(), 2u);
  const Actor admin{.user_id = NewUuidV4()};

  auto refused = AssignOrphanBackup(db(), master_key_, admin, "missing", project_);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().http_status, 404);
  refused = AssignOrphanBackup(db(), master_key_, admin, orphan, NewUuidV4());
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().http_status, 404);
  refused = AssignOrphanBackup(db(), master_key_, admin, "manual-1", project_);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().http_status, 409);
  EXPECT_NE(refused.error().message.find("kindling backup restore --store " + store_.url),
            std::string::npos)
      << refused.error().message;

  auto assigned = AssignOrphanBackup(db(), master_key_, admin, orphan, project_);
  ASSERT_TRUE(assigned) << assigned.error().message;
  EXPECT_TRUE(assigned->volume_created);
  EXPECT_EQ(assigned->volume.id, unknown_volume);
  EXPECT_EQ(assigned->volume.project_id, project_);
  EXPECT_TRUE(assigned->volume.deleted_at.has_value());
  EXPECT_EQ(assigned->backup.status, db::BackupStatus::kSucceeded);
  EXPECT_EQ(assigned->orphan.assigned_project_id.value_or(""), project_);
  auto listed = Must([&](db::Tx& tx) { return db::ListProjectBackups(tx, project_); });
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ(listed->front().backup.id, orphan);
  EXPECT_TRUE(listed->front().volume_deleted);
  EXPECT_EQ(Count("SELECT count(*) FROM cluster_audit_events WHERE action = "
                  "'volume.backup.assigned' AND resource_id = '" +
                  unknown_volume + "'"),
            1);

  refused = AssignOrphanBackup(db(), master_key_, admin, orphan, project_);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().http_status, 409);
  // The rescan knows it now; the orphan list keeps it as history.
  const RescanReport after = Rescan();
  EXPECT_TRUE(after.imported.empty());
  ASSERT_EQ(after.orphaned.size(), 1u);
  EXPECT_EQ(after.orphaned[0].orphan.backup_id, "manual-1");
  auto orphans = ListOrphanBackups(db(), /*include_assigned=*/true);
  ASSERT_TRUE(orphans);
  EXPECT_EQ(orphans->size(), 2u);
}

// The leader rescans whenever it starts leading; with nothing missing that
// must stay cheap: one listing per store and no manifest read.
TEST_F(BackupRescanTest, RescanWithNothingMissingReadsNoManifest) {
  for (int i = 0; i < 20; ++i) EngineBackup(volume_.id, NewUuidV7(), i);
  ASSERT_EQ(Rescan().imported.size(), 20u);
  // Manifests that no longer open would be reported if they were read.
  auto listed = store_.store->List(repo::kVolumesPrefix);
  ASSERT_TRUE(listed);
  for (const auto& object : *listed) ASSERT_TRUE(store_.store->Put(object.key, "garbage"));
  const RescanReport again = Rescan();
  EXPECT_TRUE(again.unreadable.empty());
  EXPECT_EQ(again.known, 20u);
}

}  // namespace
}  // namespace kindling::control
