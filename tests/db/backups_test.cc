#include "db/backups.h"

#include <gtest/gtest.h>

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

TEST_F(BackupsTest, RetentionKeepsTheNewestAndBackupsInUse) {
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    const Backup b = Create();
    Succeed(b.id);
    ids.push_back(b.id);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  const Backup failed = Create();
  ASSERT_OK(db().Transact([&](Tx& tx) { return MarkBackupFailed(tx, failed.id, "x"); }));

  ASSERT_OK_AND_ASSIGN(std::vector<Backup> candidates, db().Transact([&](Tx& tx) {
    return ListRetentionCandidates(tx, volume_.id, 2);
  }));
  ASSERT_EQ(candidates.size(), 3u);
  EXPECT_EQ(candidates[0].id, ids[2]);
  EXPECT_EQ(candidates[1].id, ids[1]);
  EXPECT_EQ(candidates[2].id, ids[0]);

  // A restore in flight from the oldest keeps it.
  ASSERT_OK(db().Transact([&](Tx& tx) {
    return QueueOperation(tx, QueueOperationRequest{.volume_id = volume_.id,
                                                    .kind = OperationKind::kRestore,
                                                    .server_id = server_,
                                                    .backup_id = ids[0]});
  }));
  ASSERT_OK_AND_ASSIGN(std::vector<Backup> in_use, db().Transact([&](Tx& tx) {
    return ListRetentionCandidates(tx, volume_.id, 2);
  }));
  ASSERT_EQ(in_use.size(), 2u);
  EXPECT_EQ(in_use[1].id, ids[1]);

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

}  // namespace
}  // namespace kindling::db
