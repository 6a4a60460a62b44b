#include "db/backups.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "db/operations.h"
#include "db_test_util.h"

namespace kindling::db {
namespace {

class BackupsTest : public DbTest {
 protected:
  void SetUp() override {
    DbTest::SetUp();
    server_ = MakeServer("w1");
    volume_ = MakeVolume(MakeProject(MakeOrganization()), server_);
  }

  Backup Create(BackupKind kind = BackupKind::kManual) {
    auto b = Must(
        [&](Tx& tx) { return CreateBackup(tx, NewBackup{.volume_id = volume_.id, .kind = kind}); });
    return b ? *b : Backup{};
  }
  Backup Succeed(const std::string& id, std::int64_t size = 100) {
    auto b = Must([&](Tx& tx) {
      return MarkBackupSucceeded(tx, id,
                                 BackupSuccess{.storage_url = "file:///srv/backups",
                                               .storage_key = "manifests/" + id,
                                               .size_bytes = size});
    });
    return b ? *b : Backup{};
  }

  std::string server_;
  Volume volume_;
};

TEST_F(BackupsTest, ListedNewestFirst) {
  const Backup a = Create();
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  const Backup b = Create(BackupKind::kScheduled);
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  const Backup c = Create(BackupKind::kPreDelete);
  ASSERT_OK_AND_ASSIGN(std::vector<Backup> all,
                       db().Transact([&](Tx& tx) { return ListBackups(tx, volume_.id); }));
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].id, c.id);
  EXPECT_EQ(all[1].id, b.id);
  EXPECT_EQ(all[2].id, a.id);
  EXPECT_EQ(all[0].kind, BackupKind::kPreDelete);
  // Ids are UUIDv7: they sort by creation like the engine's store keys.
  EXPECT_LT(a.id, c.id);
  ASSERT_OK_AND_ASSIGN(std::vector<Backup> one,
                       db().Transact([&](Tx& tx) { return ListBackups(tx, volume_.id, 1); }));
  EXPECT_EQ(one.size(), 1u);
}

TEST_F(BackupsTest, StatusTransitions) {
  const Backup b = Create();
  ASSERT_OK_AND_ASSIGN(Backup running,
                       db().Transact([&](Tx& tx) { return MarkBackupRunning(tx, b.id); }));
  EXPECT_EQ(running.status, BackupStatus::kRunning);
  const Backup done = Succeed(b.id, 12345);
  EXPECT_EQ(done.status, BackupStatus::kSucceeded);
  EXPECT_EQ(done.size_bytes, 12345);
  EXPECT_EQ(done.storage_url, "file:///srv/backups");
  EXPECT_TRUE(done.completed_at.has_value());
  // Idempotent: a worker repeating its commit after a lost connection.
  EXPECT_EQ(Succeed(b.id, 12345).status, BackupStatus::kSucceeded);
  auto fail = db().Transact([&](Tx& tx) { return MarkBackupFailed(tx, b.id, "late"); });
  ASSERT_FALSE(fail);
  EXPECT_EQ(fail.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_NE(fail.error().message().find("succeeded"), std::string::npos);

  const Backup other = Create();
  ASSERT_OK_AND_ASSIGN(Backup failed, db().Transact([&](Tx& tx) {
    return MarkBackupFailed(tx, other.id, "upload failed");
  }));
  EXPECT_EQ(failed.status, BackupStatus::kFailed);
  EXPECT_EQ(failed.error, "upload failed");
  EXPECT_ERROR_KIND(db().Transact([&](Tx& tx) { return MarkBackupRunning(tx, other.id); }),
                    ErrorKind::kInvalidArgument);
  EXPECT_ERROR_KIND(db().Transact([&](Tx& tx) { return MarkBackupRunning(tx, NewUuidV4()); }),
                    ErrorKind::kNotFound);
}

TEST_F(BackupsTest, RetentionInputsAreTheSucceededBackupsNewestFirstWithThoseInUse) {
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    const Backup b = Create();
    Succeed(b.id);
    ids.push_back(b.id);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  const Backup failed = Create();
  ASSERT_OK(db().Transact([&](Tx& tx) { return MarkBackupFailed(tx, failed.id, "x"); }));

  ASSERT_OK_AND_ASSIGN(std::vector<RetentionInput> inputs,
                       db().Transact([&](Tx& tx) { return ListRetentionInputs(tx, volume_.id); }));
  ASSERT_EQ(inputs.size(), 5u) << "the failed one is not listed";
  for (std::size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(inputs[i].backup.id, ids[4 - i]);
    EXPECT_FALSE(inputs[i].in_use);
  }

  // A restore in flight from the oldest keeps it.
  ASSERT_OK(db().Transact([&](Tx& tx) {
    return QueueOperation(tx, QueueOperationRequest{.volume_id = volume_.id,
                                                    .kind = OperationKind::kRestore,
                                                    .server_id = server_,
                                                    .backup_id = ids[0]});
  }));
  ASSERT_OK_AND_ASSIGN(std::vector<RetentionInput> in_use,
                       db().Transact([&](Tx& tx) { return ListRetentionInputs(tx, volume_.id); }));
  ASSERT_EQ(in_use.size(), 5u);
  EXPECT_EQ(in_use[4].backup.id, ids[0]);
  EXPECT_TRUE(in_use[4].in_use);
  EXPECT_FALSE(in_use[3].in_use);

  ASSERT_OK_AND_ASSIGN(bool deleted,
                       db().Transact([&](Tx& tx) { return DeleteBackup(tx, ids[1]); }));
  EXPECT_TRUE(deleted);
  ASSERT_OK_AND_ASSIGN(bool again, db().Transact([&](Tx& tx) { return DeleteBackup(tx, ids[1]); }));
  EXPECT_FALSE(again);
}

TEST_F(BackupsTest, LastSuccessfulBackupTime) {
  ASSERT_OK_AND_ASSIGN(std::optional<Timestamp> none, db().Transact([&](Tx& tx) {
    return LastSuccessfulBackupAt(tx, volume_.id);
  }));
  EXPECT_FALSE(none);
  const Backup b = Succeed(Create().id);
  ASSERT_OK_AND_ASSIGN(std::optional<Timestamp> last, db().Transact([&](Tx& tx) {
    return LastSuccessfulBackupAt(tx, volume_.id);
  }));
  EXPECT_EQ(last, b.completed_at);
}

TEST_F(BackupsTest, DamagedAndHealedTransitions) {
  const Backup b = Succeed(Create().id);
  const std::string damage =
      R"({"chunks": [{"chunk_id": "ab", "problem": "corrupt", "offsets": [1048576]}]})";
  ASSERT_OK_AND_ASSIGN(Backup damaged,
                       db().Transact([&](Tx& tx) { return MarkBackupDamaged(tx, b.id, damage); }));
  EXPECT_EQ(damaged.status, BackupStatus::kDamaged);
  ASSERT_TRUE(damaged.damage_json.has_value());
  EXPECT_EQ(nlohmann::json::parse(*damaged.damage_json), nlohmann::json::parse(damage));
  // What it records and when it was made stay.
  EXPECT_EQ(damaged.storage_url, b.storage_url);
  EXPECT_EQ(damaged.completed_at, b.completed_at);

  // Damaged again (more chunks found) replaces the damage.
  const std::string more =
      R"({"chunks": [{"chunk_id": "ab", "problem": "corrupt", "offsets": [1048576]},)"
      R"( {"chunk_id": "cd", "problem": "missing", "offsets": [0, 2097152]}]})";
  ASSERT_OK_AND_ASSIGN(Backup again,
                       db().Transact([&](Tx& tx) { return MarkBackupDamaged(tx, b.id, more); }));
  EXPECT_EQ(nlohmann::json::parse(*again.damage_json)["chunks"].size(), 2u);

  ASSERT_OK_AND_ASSIGN(Backup healed,
                       db().Transact([&](Tx& tx) { return MarkBackupHealed(tx, b.id); }));
  EXPECT_EQ(healed.status, BackupStatus::kSucceeded);
  EXPECT_FALSE(healed.damage_json.has_value());
  EXPECT_EQ(healed.completed_at, b.completed_at);
  // Healing a sound backup is refused, naming its status.
  auto refused = db().Transact([&](Tx& tx) { return MarkBackupHealed(tx, b.id); });
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_NE(refused.error().message().find("succeeded"), std::string::npos);

  // Only a backup that exists in the store can be damaged.
  const Backup pending = Create();
  EXPECT_ERROR_KIND(
      db().Transact([&](Tx& tx) { return MarkBackupDamaged(tx, pending.id, damage); }),
      ErrorKind::kInvalidArgument);
  const Backup failed = Create();
  ASSERT_OK(db().Transact([&](Tx& tx) { return MarkBackupFailed(tx, failed.id, "x"); }));
  EXPECT_ERROR_KIND(db().Transact([&](Tx& tx) { return MarkBackupDamaged(tx, failed.id, damage); }),
                    ErrorKind::kInvalidArgument);
  EXPECT_ERROR_KIND(db().Transact([&](Tx& tx) { return MarkBackupHealed(tx, failed.id); }),
                    ErrorKind::kInvalidArgument);
  EXPECT_ERROR_KIND(
      db().Transact([&](Tx& tx) { return MarkBackupDamaged(tx, NewUuidV4(), damage); }),
      ErrorKind::kNotFound);
  EXPECT_FALSE(db().Transact([&](Tx& tx) { return MarkBackupDamaged(tx, b.id, "not json"); }));
}

TEST_F(BackupsTest, DamagedBackupsStayOutOfRetentionAndLastSuccess) {
  const Backup b = Succeed(Create().id);
  ASSERT_OK(
      db().Transact([&](Tx& tx) { return MarkBackupDamaged(tx, b.id, R"({"chunks": []})"); }));
  ASSERT_OK_AND_ASSIGN(std::optional<Timestamp> last, db().Transact([&](Tx& tx) {
    return LastSuccessfulBackupAt(tx, volume_.id);
  }));
  EXPECT_FALSE(last.has_value());
  ASSERT_OK_AND_ASSIGN(std::vector<RetentionInput> inputs,
                       db().Transact([&](Tx& tx) { return ListRetentionInputs(tx, volume_.id); }));
  EXPECT_TRUE(inputs.empty());
}

TEST_F(BackupsTest, StoreBackupsAreTheSucceededAndDamagedOnesOfThatStore) {
  const Backup sound = Succeed(Create().id);
  const Backup damaged = Succeed(Create().id);
  ASSERT_OK(db().Transact(
      [&](Tx& tx) { return MarkBackupDamaged(tx, damaged.id, R"({"chunks": []})"); }));
  const Backup elsewhere = Create();
  ASSERT_OK(db().Transact([&](Tx& tx) {
    return MarkBackupSucceeded(
        tx, elsewhere.id,
        BackupSuccess{.storage_url = "s3://other", .storage_key = "k", .size_bytes = 1});
  }));
  const Backup pending = Create();
  const Backup failed = Create();
  ASSERT_OK(db().Transact([&](Tx& tx) { return MarkBackupFailed(tx, failed.id, "x"); }));

  ASSERT_OK_AND_ASSIGN(std::vector<Backup> in_store, db().Transact([&](Tx& tx) {
    return ListStoreBackups(tx, "file:///srv/backups");
  }));
  ASSERT_EQ(in_store.size(), 2u);
  EXPECT_EQ(in_store[0].id, sound.id);
  EXPECT_EQ(in_store[1].id, damaged.id);
  EXPECT_EQ(in_store[1].status, BackupStatus::kDamaged);
  ASSERT_OK_AND_ASSIGN(std::vector<Backup> other,
                       db().Transact([&](Tx& tx) { return ListStoreBackups(tx, "s3://other"); }));
  ASSERT_EQ(other.size(), 1u);
  EXPECT_EQ(other[0].id, elsewhere.id);
  (void)pending;
}

TEST_F(BackupsTest, ProjectBackupsIncludeThoseOfDeletedVolumes) {
  const Backup old_backup = Succeed(Create().id);
  ASSERT_OK(db().Transact([&](Tx& tx) { return MarkVolumeDeleted(tx, volume_.id); }));
  const Volume current = MakeVolume(volume_.project_id, server_);
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  auto created = Must([&](Tx& tx) { return CreateBackup(tx, NewBackup{.volume_id = current.id}); });
  ASSERT_TRUE(created);
  const Backup new_backup = Succeed(created->id);
  // Another project's backups are not listed.
  const Volume stranger = MakeVolume(MakeProject(MakeOrganization("other"), "x"), server_);
  ASSERT_TRUE(Must([&](Tx& tx) { return CreateBackup(tx, NewBackup{.volume_id = stranger.id}); }));

  ASSERT_OK_AND_ASSIGN(std::vector<ProjectBackup> all, db().Transact([&](Tx& tx) {
    return ListProjectBackups(tx, volume_.project_id);
  }));
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].backup.id, new_backup.id);
  EXPECT_FALSE(all[0].volume_deleted);
  EXPECT_EQ(all[1].backup.id, old_backup.id);
  EXPECT_TRUE(all[1].volume_deleted);
  EXPECT_EQ(all[1].backup.project_volume_id, volume_.id);
  EXPECT_EQ(all[1].backup.status, BackupStatus::kSucceeded);
  ASSERT_OK_AND_ASSIGN(std::vector<ProjectBackup> one, db().Transact([&](Tx& tx) {
    return ListProjectBackups(tx, volume_.project_id, 1);
  }));
  EXPECT_EQ(one.size(), 1u);

  // Restoring the deleted volume's backup into the project's current volume
  // is accepted; into another project's volume it is not.
  ASSERT_OK_AND_ASSIGN(QueuedOperation restore, db().Transact([&](Tx& tx) {
    return QueueOperation(tx, QueueOperationRequest{.volume_id = current.id,
                                                    .kind = OperationKind::kRestore,
                                                    .server_id = server_,
                                                    .backup_id = old_backup.id});
  }));
  EXPECT_EQ(restore.operation.backup_id, old_backup.id);
  EXPECT_EQ(restore.volume.status, VolumeStatus::kRestoring);
  EXPECT_ERROR_KIND(db().Transact([&](Tx& tx) {
    return QueueOperation(tx, QueueOperationRequest{.volume_id = stranger.id,
                                                    .kind = OperationKind::kRestore,
                                                    .server_id = server_,
                                                    .backup_id = old_backup.id});
  }),
                    ErrorKind::kInvalidArgument);
}

TEST_F(BackupsTest, DamagedBackupsCanBeVerifiedButNotRestored) {
  const Backup b = Succeed(Create().id);
  ASSERT_OK(
      db().Transact([&](Tx& tx) { return MarkBackupDamaged(tx, b.id, R"({"chunks": []})"); }));
  EXPECT_ERROR_KIND(db().Transact([&](Tx& tx) {
    return QueueOperation(tx, QueueOperationRequest{.volume_id = volume_.id,
                                                    .kind = OperationKind::kRestore,
                                                    .server_id = server_,
                                                    .backup_id = b.id});
  }),
                    ErrorKind::kInvalidArgument);
  ASSERT_OK_AND_ASSIGN(QueuedOperation verify, db().Transact([&](Tx& tx) {
    return QueueOperation(tx, QueueOperationRequest{.volume_id = volume_.id,
                                                    .kind = OperationKind::kVerify,
                                                    .server_id = server_,
                                                    .backup_id = b.id});
  }));
  EXPECT_EQ(verify.operation.kind, OperationKind::kVerify);
  EXPECT_EQ(verify.volume.status, VolumeStatus::kDetached) << "verify does not touch the image";
}

// The pin and the last verification are columns of the row, read back by
// every listing; a missing backup is kNotFound.
TEST_F(BackupsTest, PinAndVerificationAreRecordedAndListed) {
  const Backup b = Succeed(Create().id);
  EXPECT_FALSE(b.pinned);
  EXPECT_FALSE(b.verified_at.has_value());
  EXPECT_FALSE(b.verify_state.has_value());
  ASSERT_OK_AND_ASSIGN(Backup pinned,
                       db().Transact([&](Tx& tx) { return SetBackupPinned(tx, b.id, true); }));
  EXPECT_TRUE(pinned.pinned);
  ASSERT_OK_AND_ASSIGN(Backup verified, db().Transact([&](Tx& tx) {
    return RecordBackupVerification(tx, b.id, VerifyState::kDamaged);
  }));
  EXPECT_TRUE(verified.pinned);
  EXPECT_EQ(verified.verify_state, VerifyState::kDamaged);
  ASSERT_TRUE(verified.verified_at.has_value());
  // Status is another matter: only damage records change it.
  EXPECT_EQ(verified.status, BackupStatus::kSucceeded);

  ASSERT_OK_AND_ASSIGN(std::vector<Backup> listed,
                       db().Transact([&](Tx& tx) { return ListBackups(tx, volume_.id); }));
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_TRUE(listed[0].pinned);
  EXPECT_EQ(listed[0].verify_state, VerifyState::kDamaged);
  ASSERT_OK_AND_ASSIGN(std::vector<ProjectBackup> project, db().Transact([&](Tx& tx) {
    return ListProjectBackups(tx, volume_.project_id);
  }));
  ASSERT_EQ(project.size(), 1u);
  EXPECT_TRUE(project[0].backup.pinned);
  EXPECT_EQ(project[0].backup.verified_at, verified.verified_at);
  EXPECT_FALSE(project[0].volume_deleted);
  ASSERT_OK_AND_ASSIGN(std::vector<RetentionInput> inputs,
                       db().Transact([&](Tx& tx) { return ListRetentionInputs(tx, volume_.id); }));
  ASSERT_EQ(inputs.size(), 1u);
  EXPECT_TRUE(inputs[0].backup.pinned);

  ASSERT_OK_AND_ASSIGN(Backup unpinned,
                       db().Transact([&](Tx& tx) { return SetBackupPinned(tx, b.id, false); }));
  EXPECT_FALSE(unpinned.pinned);
  EXPECT_ERROR_KIND(db().Transact([&](Tx& tx) { return SetBackupPinned(tx, NewUuidV4(), true); }),
                    ErrorKind::kNotFound);
  EXPECT_ERROR_KIND(db().Transact([&](Tx& tx) {
    return RecordBackupVerification(tx, NewUuidV4(), VerifyState::kOk);
  }),
                    ErrorKind::kNotFound);
}

}  // namespace
}  // namespace kindling::db
