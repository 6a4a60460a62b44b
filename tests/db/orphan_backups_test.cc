// Backups found in a store that the database lacked: imported rows, failed
// rows recovered, orphans and their assignment, placeholder volumes.
#include "db/orphan_backups.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "db/backups.h"
#include "db/operations.h"
#include "db_test_util.h"

namespace kindling::db {
namespace {

using nlohmann::json;

class OrphanBackupsTest : public DbTest {
 protected:
  void SetUp() override {
    DbTest::SetUp();
    project_ = MakeProject(MakeOrganization());
    volume_ = MakeVolume(project_, MakeServer("w1"));
  }

  ImportedBackup Found(const std::string& id) {
    return ImportedBackup{
        .id = id,
        .volume_id = volume_.id,
        .storage_url = "file:///srv/backups",
        .storage_key = "project-volumes/" + volume_.id + "/backups/" + id + ".manifest",
        .size_bytes = 1 << 30,
        .metadata_json = R"({"image_sha256": "ab", "imported": true})",
        .created_at = *ParseTimestamp("2024-05-01 12:00:00+00"),
        .duration = std::chrono::milliseconds(1500)};
  }

  OrphanBackup Orphan(const std::string& backup_id, const std::string& volume_id) {
    return OrphanBackup{
        .backup_id = backup_id,
        .volume_id = volume_id,
        .storage_url = "file:///srv/backups",
        .storage_key = "project-volumes/" + volume_id + "/backups/" + backup_id + ".manifest",
        .size_bytes = 4096,
        .image_sha256 = "cd",
        .chunk_size = 1 << 20,
        .backup_created_at = *ParseTimestamp("2024-05-02 08:00:00+00")};
  }

  std::string project_;
  Volume volume_;
};

TEST_F(OrphanBackupsTest, ImportInsertsASucceededRowOnce) {
  const std::string id = NewUuidV7();
  ASSERT_OK_AND_ASSIGN(bool inserted,
                       db().Transact([&](Tx& tx) { return ImportBackup(tx, Found(id)); }));
  EXPECT_TRUE(inserted);
  ASSERT_OK_AND_ASSIGN(Backup row, db().Transact([&](Tx& tx) { return GetBackup(tx, id); }));
  EXPECT_EQ(row.status, BackupStatus::kSucceeded);
  EXPECT_EQ(row.kind, BackupKind::kManual);
  EXPECT_EQ(row.project_volume_id, volume_.id);
  EXPECT_EQ(row.storage_url.value_or(""), "file:///srv/backups");
  EXPECT_EQ(row.size_bytes.value_or(0), 1 << 30);
  EXPECT_EQ(json::parse(row.metadata_json)["imported"], true);
  EXPECT_EQ(row.created_at, *ParseTimestamp("2024-05-01 12:00:00+00"));
  EXPECT_EQ(row.completed_at, *ParseTimestamp("2024-05-01 12:00:00+00"));
  EXPECT_EQ(row.started_at, *ParseTimestamp("2024-05-01 11:59:58.5+00"));
  ASSERT_OK_AND_ASSIGN(
      auto last, db().Transact([&](Tx& tx) { return LastSuccessfulBackupAt(tx, volume_.id); }));
  EXPECT_EQ(last, row.completed_at);

  // Importing again changes nothing.
  ASSERT_OK_AND_ASSIGN(inserted,
                       db().Transact([&](Tx& tx) { return ImportBackup(tx, Found(id)); }));
  EXPECT_FALSE(inserted);
  EXPECT_EQ(Sql("SELECT count(*) FROM project_volume_backups")[0][0].as<int>(), 1);

  // Deleted volumes keep their backups; unknown ones have none.
  ASSERT_OK(db().Transact([&](Tx& tx) { return MarkVolumeDeleted(tx, volume_.id); }));
  ASSERT_OK_AND_ASSIGN(inserted,
                       db().Transact([&](Tx& tx) { return ImportBackup(tx, Found(NewUuidV7())); }));
  EXPECT_TRUE(inserted);
  ImportedBackup stranger = Found(NewUuidV7());
  stranger.volume_id = NewUuidV4();
  EXPECT_ERROR_KIND(db().Transact([&](Tx& tx) { return ImportBackup(tx, stranger); }),
                    ErrorKind::kNotFound);
}

TEST_F(OrphanBackupsTest, StatusesOfKnownIdsAndStorageUrls) {
  const std::string imported = NewUuidV7();
  ASSERT_OK(db().Transact([&](Tx& tx) { return ImportBackup(tx, Found(imported)); }));
  ASSERT_OK_AND_ASSIGN(Backup pending, db().Transact([&](Tx& tx) {
    return CreateBackup(tx, NewBackup{.volume_id = volume_.id});
  }));
  ASSERT_OK_AND_ASSIGN(auto statuses, db().Transact([&](Tx& tx) {
    return FindBackupStatuses(tx, {imported, pending.id, NewUuidV7(), "not-a-uuid"});
  }));
  ASSERT_EQ(statuses.size(), 2u);
  EXPECT_EQ(statuses[imported], BackupStatus::kSucceeded);
  EXPECT_EQ(statuses[pending.id], BackupStatus::kPending);
  ASSERT_OK_AND_ASSIGN(auto urls, db().Transact([&](Tx& tx) { return ListBackupStorageUrls(tx); }));
  EXPECT_EQ(urls, std::vector<std::string>{"file:///srv/backups"});
}

TEST_F(OrphanBackupsTest, FailedBackupIsRecoveredFromItsManifest) {
  ASSERT_OK_AND_ASSIGN(Backup b, db().Transact([&](Tx& tx) {
    return CreateBackup(tx, NewBackup{.volume_id = volume_.id});
  }));
  ASSERT_OK(db().Transact([&](Tx& tx) { return MarkBackupFailed(tx, b.id, "server dead"); }));
  const Timestamp at = *ParseTimestamp("2024-05-03 10:00:00+00");
  const BackupSuccess success{.storage_url = "file:///srv/backups",
                              .storage_key = "k",
                              .size_bytes = 42,
                              .metadata_json = R"({"imported": true})"};
  ASSERT_OK_AND_ASSIGN(Backup recovered, db().Transact([&](Tx& tx) {
    return RecoverFailedBackup(tx, b.id, success, at);
  }));
  EXPECT_EQ(recovered.status, BackupStatus::kSucceeded);
  EXPECT_FALSE(recovered.error.has_value());
  EXPECT_FALSE(recovered.failed_at.has_value());
  EXPECT_EQ(recovered.completed_at, at);
  EXPECT_EQ(json::parse(recovered.metadata_json)["previous_error"], "server dead");
  // Only from failed.
  EXPECT_ERROR_KIND(
      db().Transact([&](Tx& tx) { return RecoverFailedBackup(tx, b.id, success, at); }),
      ErrorKind::kInvalidArgument);
}

TEST_F(OrphanBackupsTest, OrphansAreRecordedOnceAndAssignedOnce) {
  const std::string volume_id = NewUuidV4();
  const std::string first = NewUuidV7();
  ASSERT_OK_AND_ASSIGN(RecordedOrphan recorded, db().Transact([&](Tx& tx) {
    return RecordOrphanBackup(tx, Orphan(first, volume_id));
  }));
  EXPECT_TRUE(recorded.inserted);
  EXPECT_EQ(recorded.orphan.volume_id, volume_id);
  EXPECT_EQ(recorded.orphan.chunk_size, 1 << 20);
  EXPECT_FALSE(recorded.orphan.assigned_at.has_value());
  // Found again: only last_seen_at moves.
  OrphanBackup changed = Orphan(first, volume_id);
  changed.size_bytes = 1;
  ASSERT_OK_AND_ASSIGN(recorded,
                       db().Transact([&](Tx& tx) { return RecordOrphanBackup(tx, changed); }));
  EXPECT_FALSE(recorded.inserted);
  EXPECT_EQ(recorded.orphan.size_bytes, 4096);
  EXPECT_GE(recorded.orphan.last_seen_at, recorded.orphan.found_at);
  // Ids the engine's CLI allows, not only UUIDs.
  ASSERT_OK(db().Transact([&](Tx& tx) { return RecordOrphanBackup(tx, Orphan("b-1", "vol-42")); }));

  ASSERT_OK_AND_ASSIGN(auto listed, db().Transact([&](Tx& tx) { return ListOrphanBackups(tx); }));
  ASSERT_EQ(listed.size(), 2u);
  ASSERT_OK_AND_ASSIGN(OrphanBackup assigned, db().Transact([&](Tx& tx) {
    return MarkOrphanAssigned(tx, first, project_);
  }));
  EXPECT_EQ(assigned.assigned_project_id.value_or(""), project_);
  EXPECT_TRUE(assigned.assigned_at.has_value());
  EXPECT_ERROR_KIND(db().Transact([&](Tx& tx) { return MarkOrphanAssigned(tx, first, project_); }),
                    ErrorKind::kInvalidArgument);
  EXPECT_ERROR_KIND(
      db().Transact([&](Tx& tx) { return MarkOrphanAssigned(tx, "missing", project_); }),
      ErrorKind::kNotFound);
  ASSERT_OK_AND_ASSIGN(listed, db().Transact([&](Tx& tx) { return ListOrphanBackups(tx); }));
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].backup_id, "b-1");
  ASSERT_OK_AND_ASSIGN(listed, db().Transact([&](Tx& tx) { return ListOrphanBackups(tx, true); }));
  EXPECT_EQ(listed.size(), 2u);
  // An assigned orphan found again stays assigned.
  ASSERT_OK_AND_ASSIGN(recorded, db().Transact([&](Tx& tx) {
    return RecordOrphanBackup(tx, Orphan(first, volume_id));
  }));
  EXPECT_TRUE(recorded.orphan.assigned_at.has_value());
}

TEST_F(OrphanBackupsTest, PlaceholderVolumeIsADeletedVolumeOfTheProject) {
  const std::string id = NewUuidV4();
  ASSERT_OK_AND_ASSIGN(Volume placeholder, db().Transact([&](Tx& tx) {
    return CreatePlaceholderVolume(tx, id, project_, 3);
  }));
  EXPECT_EQ(placeholder.id, id);
  EXPECT_EQ(placeholder.project_id, project_);
  EXPECT_TRUE(placeholder.deleted_at.has_value());
  EXPECT_FALSE(placeholder.server_id.has_value());
  EXPECT_EQ(placeholder.size_gb, 3);
  // The project's live volume is still the one it had.
  ASSERT_OK_AND_ASSIGN(auto live,
                       db().Transact([&](Tx& tx) { return FindProjectVolume(tx, project_); }));
  ASSERT_TRUE(live.has_value());
  EXPECT_EQ(live->id, volume_.id);
  EXPECT_ERROR_KIND(
      db().Transact([&](Tx& tx) { return CreatePlaceholderVolume(tx, volume_.id, project_, 1); }),
      ErrorKind::kAlreadyExists);
}

}  // namespace
}  // namespace kindling::db
