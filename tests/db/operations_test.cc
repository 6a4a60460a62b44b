#include "db/operations.h"

#include <gtest/gtest.h>

#include <atomic>
#include <latch>
#include <mutex>
#include <set>
#include <thread>

#include "db/notifications.h"
#include "db_test_util.h"

namespace kindling::db {
namespace {

using std::chrono::milliseconds;

class OperationsTest : public DbTest {
 protected:
  void SetUp() override {
    DbTest::SetUp();
    org_ = MakeOrganization();
    server_ = MakeServer("w1");
    other_server_ = MakeServer("w2");
    volume_ = MakeVolume(MakeProject(org_), server_);
  }

  Result<QueuedOperation> QueueBackup(const std::string& volume_id) {
    return db().Transact([&](Tx& tx) {
      return QueueOperation(tx, QueueOperationRequest{.volume_id = volume_id,
                                                      .kind = OperationKind::kBackup,
                                                      .server_id = server_,
                                                      .create_backup = BackupKind::kManual});
    });
  }

  Result<std::optional<Operation>> Claim(const std::string& server, const std::string& owner,
                                         milliseconds lease = milliseconds(30'000)) {
    return db().Transact([&](Tx& tx) { return ClaimNextOperation(tx, server, owner, lease); });
  }

  Volume GetVol(const std::string& id) {
    auto v = Must([&](Tx& tx) { return GetVolume(tx, id); });
    return v ? *v : Volume{};
  }
  Backup GetB(const std::string& id) {
    auto b = Must([&](Tx& tx) { return GetBackup(tx, id); });
    return b ? *b : Backup{};
  }

  std::string org_;
  std::string server_;
  std::string other_server_;
  Volume volume_;
  const std::string owner_ = NewUuidV4();
};

TEST_F(OperationsTest, QueueingABackupIsOneTransaction) {
  ASSERT_OK_AND_ASSIGN(auto listener, Listener::Open(dsn(), {kOperationsChannel}));
  ASSERT_OK_AND_ASSIGN(QueuedOperation queued, QueueBackup(volume_.id));
  EXPECT_EQ(queued.operation.kind, OperationKind::kBackup);
  EXPECT_EQ(queued.operation.status, OperationStatus::kPending);
  EXPECT_EQ(queued.operation.server_id, server_);
  ASSERT_TRUE(queued.backup);
  EXPECT_EQ(queued.backup->status, BackupStatus::kPending);
  EXPECT_EQ(queued.operation.backup_id, queued.backup->id);
  EXPECT_EQ(queued.volume.status, VolumeStatus::kBackingUp);
  EXPECT_EQ(GetVol(volume_.id).status, VolumeStatus::kBackingUp);

  std::vector<Notification> got;
  for (int i = 0; i < 10 && got.empty(); ++i) {
    ASSERT_OK_AND_ASSIGN(got, listener->Wait(milliseconds(500)));
  }
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload, server_ + ":" + queued.operation.id);

  ASSERT_OK_AND_ASSIGN(std::optional<Operation> active,
                       db().Transact([&](Tx& tx) { return FindActiveOperation(tx, volume_.id); }));
  ASSERT_TRUE(active);
  EXPECT_EQ(active->id, queued.operation.id);
}

TEST_F(OperationsTest, AFailedCallerTransactionLeavesNothingBehind) {
  auto status = db().Transact([&](Tx& tx) -> Status {
    KINDLING_RETURN_IF_ERROR(
        QueueOperation(tx, QueueOperationRequest{.volume_id = volume_.id,
                                                 .kind = OperationKind::kBackup,
                                                 .server_id = server_,
                                                 .create_backup = BackupKind::kManual}));
    return InternalError("audit write failed");
  });
  ASSERT_FALSE(status);
  EXPECT_EQ(Sql("SELECT count(*) FROM project_volume_operations")[0][0].as<int>(), 0);
  EXPECT_EQ(Sql("SELECT count(*) FROM project_volume_backups")[0][0].as<int>(), 0);
  EXPECT_EQ(GetVol(volume_.id).status, VolumeStatus::kDetached);
}

TEST_F(OperationsTest, ABusyVolumeTakesNoSecondOperation) {
  ASSERT_OK(QueueBackup(volume_.id));
  auto second = QueueBackup(volume_.id);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_NE(second.error().message().find("busy"), std::string::npos);

  // Even bypassing the status check, the index allows one in flight.
  Sql("UPDATE project_volumes SET status = 'detached'");
  auto third = QueueBackup(volume_.id);
  ASSERT_FALSE(third);
  EXPECT_EQ(third.error().message(), "the volume already has a pending or running operation");
}

TEST_F(OperationsTest, RequestsAreValidated) {
  EXPECT_ERROR_KIND(db().Transact([&](Tx& tx) {
    return QueueOperation(
        tx, QueueOperationRequest{
                .volume_id = volume_.id, .kind = OperationKind::kBackup, .server_id = server_});
  }),
                    ErrorKind::kInvalidArgument);
  EXPECT_ERROR_KIND(db().Transact([&](Tx& tx) {
    return QueueOperation(
        tx, QueueOperationRequest{
                .volume_id = volume_.id, .kind = OperationKind::kRestore, .server_id = server_});
  }),
                    ErrorKind::kInvalidArgument);
  EXPECT_ERROR_KIND(db().Transact([&](Tx& tx) {
    return QueueOperation(
        tx, QueueOperationRequest{
                .volume_id = NewUuidV4(), .kind = OperationKind::kRepair, .server_id = server_});
  }),
                    ErrorKind::kNotFound);
}

TEST_F(OperationsTest, RestoreNeedsASucceededBackupOfTheSameVolume) {
  const Volume other = MakeVolume(MakeProject(org_, "other"), server_);
  ASSERT_OK_AND_ASSIGN(Backup foreign, db().Transact([&](Tx& tx) {
    return CreateBackup(tx, NewBackup{.volume_id = other.id});
  }));
  ASSERT_OK_AND_ASSIGN(Backup pending, db().Transact([&](Tx& tx) {
    return CreateBackup(tx, NewBackup{.volume_id = volume_.id});
  }));
  auto restore = [&](const std::string& backup_id) {
    return db().Transact([&](Tx& tx) {
      return QueueOperation(tx, QueueOperationRequest{.volume_id = volume_.id,
                                                      .kind = OperationKind::kRestore,
                                                      .server_id = other_server_,
                                                      .backup_id = backup_id,
                                                      .target_server_id = other_server_});
    });
  };
  EXPECT_ERROR_KIND(restore(NewUuidV4()), ErrorKind::kNotFound);
  EXPECT_ERROR_KIND(restore(foreign.id), ErrorKind::kInvalidArgument);
  EXPECT_ERROR_KIND(restore(pending.id), ErrorKind::kInvalidArgument);

  ASSERT_OK(db().Transact([&](Tx& tx) {
    return MarkBackupSucceeded(
        tx, pending.id,
        BackupSuccess{.storage_url = "file:///b", .storage_key = "k", .size_bytes = 1});
  }));
  ASSERT_OK_AND_ASSIGN(QueuedOperation queued, restore(pending.id));
  EXPECT_EQ(queued.operation.backup_id, pending.id);
  EXPECT_EQ(queued.operation.target_server_id, other_server_);
  EXPECT_EQ(queued.volume.status, VolumeStatus::kRestoring);
  EXPECT_FALSE(queued.backup);

  // A restore claim leaves the source backup alone.
  ASSERT_OK_AND_ASSIGN(std::optional<Operation> claimed, Claim(other_server_, owner_));
  ASSERT_TRUE(claimed);
  EXPECT_EQ(GetB(pending.id).status, BackupStatus::kSucceeded);
}

TEST_F(OperationsTest, ClaimTakesTheServersOldestOperationWithALease) {
  ASSERT_OK_AND_ASSIGN(QueuedOperation first, QueueBackup(volume_.id));
  const Volume second_volume = MakeVolume(MakeProject(org_, "p2"), server_);
  ASSERT_OK_AND_ASSIGN(QueuedOperation second, QueueBackup(second_volume.id));

  ASSERT_OK_AND_ASSIGN(std::optional<Operation> none, Claim(other_server_, owner_));
  EXPECT_FALSE(none);

  ASSERT_OK_AND_ASSIGN(std::optional<Operation> claimed, Claim(server_, owner_));
  ASSERT_TRUE(claimed);
  EXPECT_EQ(claimed->id, first.operation.id);
  EXPECT_EQ(claimed->status, OperationStatus::kRunning);
  EXPECT_EQ(claimed->lease_owner, owner_);
  ASSERT_TRUE(claimed->lease_expires_at && claimed->started_at);
  EXPECT_GT(*claimed->lease_expires_at, *claimed->started_at + std::chrono::seconds(20));
  EXPECT_EQ(claimed->attempts, 1);
  const Backup running = GetB(first.backup->id);
  EXPECT_EQ(running.status, BackupStatus::kRunning);
  EXPECT_TRUE(running.started_at.has_value());

  ASSERT_OK_AND_ASSIGN(std::optional<Operation> next, Claim(server_, owner_));
  ASSERT_TRUE(next);
  EXPECT_EQ(next->id, second.operation.id);
  ASSERT_OK_AND_ASSIGN(std::optional<Operation> empty, Claim(server_, owner_));
  EXPECT_FALSE(empty);
}

// Two connections claiming at the same moment: the second skips the row the
// first holds locked instead of waiting for it or taking it too.
TEST_F(OperationsTest, ConcurrentClaimsSkipLockedRows) {
  ASSERT_OK_AND_ASSIGN(QueuedOperation a, QueueBackup(volume_.id));
  const Volume v2 = MakeVolume(MakeProject(org_, "p2"), server_);
  ASSERT_OK_AND_ASSIGN(QueuedOperation b, QueueBackup(v2.id));

  std::latch first_claimed(1);
  std::latch second_done(1);
  std::optional<Operation> first_op;
  std::thread holder([&] {
    auto r = db().Transact([&](Tx& tx) -> Status {
      KINDLING_ASSIGN_OR_RETURN(first_op,
                                ClaimNextOperation(tx, server_, NewUuidV4(), milliseconds(30'000)));
      first_claimed.count_down();
      second_done.wait();  // keep the row locked while the other claims
      return {};
    });
    EXPECT_TRUE(r) << r.error().message();
  });
  first_claimed.wait();
  auto second = Claim(server_, NewUuidV4());
  second_done.count_down();
  holder.join();
  ASSERT_TRUE(second) << second.error().message();
  ASSERT_TRUE(first_op && *second);
  EXPECT_EQ(first_op->id, a.operation.id);
  EXPECT_EQ((*second)->id, b.operation.id);
}

TEST_F(OperationsTest, ManyClaimersNeverShareAnOperation) {
  constexpr int kVolumes = 24;
  std::set<std::string> queued;
  for (int i = 0; i < kVolumes; ++i) {
    const Volume v = MakeVolume(MakeProject(org_, "p" + std::to_string(i)), server_);
    auto op = QueueBackup(v.id);
    ASSERT_TRUE(op) << op.error().message();
    queued.insert(op->operation.id);
  }
  std::mutex mu;
  std::vector<std::string> claimed;
  std::vector<std::thread> workers;
  for (int w = 0; w < 4; ++w) {
    workers.emplace_back([&] {
      // Each worker process has its own pool.
      auto pool = Database::Open(Options());
      ASSERT_TRUE(pool);
      const std::string owner = NewUuidV4();
      while (true) {
        auto op = (*pool)->Transact([&](Tx& tx) -> Result<std::optional<Operation>> {
          KINDLING_ASSIGN_OR_RETURN(auto got,
                                    ClaimNextOperation(tx, server_, owner, milliseconds(30'000)));
          // Hold the lock a little so claims overlap.
          std::this_thread::sleep_for(milliseconds(5));
          return got;
        });
        ASSERT_TRUE(op) << op.error().message();
        if (!*op) return;
        std::lock_guard lock(mu);
        claimed.push_back((*op)->id);
      }
    });
  }
  for (auto& t : workers) t.join();
  ASSERT_EQ(claimed.size(), queued.size());
  EXPECT_EQ(std::set<std::string>(claimed.begin(), claimed.end()), queued);
}

TEST_F(OperationsTest, LeasesRenewExpireAndAreLost) {
  ASSERT_OK_AND_ASSIGN(QueuedOperation queued, QueueBackup(volume_.id));
  ASSERT_OK_AND_ASSIGN(std::optional<Operation> op, Claim(server_, owner_, milliseconds(1)));
  ASSERT_TRUE(op);
  std::this_thread::sleep_for(milliseconds(20));

  ASSERT_OK_AND_ASSIGN(std::vector<Operation> expired,
                       db().Transact([](Tx& tx) { return ListExpiredLeases(tx); }));
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_EQ(expired[0].id, op->id);

  // Renewing in time takes it off the list.
  ASSERT_OK(
      db().Transact([&](Tx& tx) { return RenewLease(tx, op->id, owner_, milliseconds(60'000)); }));
  ASSERT_OK_AND_ASSIGN(std::vector<Operation> none,
                       db().Transact([](Tx& tx) { return ListExpiredLeases(tx); }));
  EXPECT_TRUE(none.empty());
  EXPECT_ERROR_KIND(db().Transact([&](Tx& tx) {
    return RenewLease(tx, op->id, NewUuidV4(), milliseconds(60'000));
  }),
                    ErrorKind::kCancelled);

  // The sweep requeues it elsewhere: the old owner's lease is lost.
  ASSERT_OK_AND_ASSIGN(Operation requeued, db().Transact([&](Tx& tx) {
    return RequeueOperation(tx, op->id, other_server_);
  }));
  EXPECT_EQ(requeued.status, OperationStatus::kPending);
  EXPECT_EQ(requeued.server_id, other_server_);
  EXPECT_FALSE(requeued.lease_owner);
  EXPECT_EQ(GetB(queued.backup->id).status, BackupStatus::kPending);
  EXPECT_ERROR_KIND(
      db().Transact([&](Tx& tx) { return RenewLease(tx, op->id, owner_, milliseconds(60'000)); }),
      ErrorKind::kCancelled);
  EXPECT_ERROR_KIND(db().Transact([&](Tx& tx) { return CompleteOperation(tx, op->id, owner_); }),
                    ErrorKind::kCancelled);
  EXPECT_ERROR_KIND(db().Transact([&](Tx& tx) { return FailOperation(tx, op->id, owner_, "x"); }),
                    ErrorKind::kCancelled);

  const std::string new_owner = NewUuidV4();
  ASSERT_OK_AND_ASSIGN(std::optional<Operation> retried, Claim(other_server_, new_owner));
  ASSERT_TRUE(retried);
  EXPECT_EQ(retried->attempts, 2);
  EXPECT_EQ(retried->started_at, op->started_at);  // set once
}

// The same server (even the same process) claiming an operation again after
// its lease was taken over: the first claim's token is stale, so whatever
// the first execution still tries to write is refused, and the second
// claim's writes land.
TEST_F(OperationsTest, AStaleClaimCannotWriteAfterAReclaimBySameServer) {
  ASSERT_OK_AND_ASSIGN(QueuedOperation queued, QueueBackup(volume_.id));
  const std::string first = NewUuidV4();
  ASSERT_OK_AND_ASSIGN(std::optional<Operation> op, Claim(server_, first));
  ASSERT_TRUE(op);
  EXPECT_EQ(op->lease_owner, first);
  ASSERT_OK(db().Transact([&](Tx& tx) { return RequeueOperation(tx, op->id); }));
  const std::string second = NewUuidV4();
  ASSERT_OK_AND_ASSIGN(std::optional<Operation> again, Claim(server_, second));
  ASSERT_TRUE(again);
  ASSERT_EQ(again->id, op->id);
  EXPECT_EQ(again->status, OperationStatus::kRunning);
  EXPECT_EQ(again->attempts, 2);

  // The first claim: every lease-checked write is refused.
  EXPECT_ERROR_KIND(
      db().Transact([&](Tx& tx) { return RenewLease(tx, op->id, first, milliseconds(60'000)); }),
      ErrorKind::kCancelled);
  EXPECT_ERROR_KIND(
      db().Transact([&](Tx& tx) { return UpdateProgress(tx, op->id, first, R"({"phase":"x"})"); }),
      ErrorKind::kCancelled);
  EXPECT_ERROR_KIND(db().Transact([&](Tx& tx) {
    return MergeOperationRequest(tx, op->id, first, R"({"stale":true})");
  }),
                    ErrorKind::kCancelled);
  EXPECT_ERROR_KIND(
      db().Transact([&](Tx& tx) { return CompleteOperation(tx, op->id, first, R"({"by":1})"); }),
      ErrorKind::kCancelled);
  EXPECT_ERROR_KIND(
      db().Transact([&](Tx& tx) { return FailOperation(tx, op->id, first, "stale"); }),
      ErrorKind::kCancelled);
  Operation current = Must([&](Tx& tx) { return GetOperation(tx, op->id); }).value();
  EXPECT_EQ(current.status, OperationStatus::kRunning);
  EXPECT_EQ(current.lease_owner, second);
  EXPECT_EQ(current.request_metadata_json.find("stale"), std::string::npos);
  EXPECT_EQ(current.progress_json, "{}");
  EXPECT_EQ(GetB(queued.backup->id).status, BackupStatus::kRunning);

  // The second claim holds it.
  ASSERT_OK(
      db().Transact([&](Tx& tx) { return RenewLease(tx, op->id, second, milliseconds(60'000)); }));
  ASSERT_OK(db().Transact(
      [&](Tx& tx) { return UpdateProgress(tx, op->id, second, R"({"phase":"upload"})"); }));
  ASSERT_OK(db().Transact(
      [&](Tx& tx) { return MergeOperationRequest(tx, op->id, second, R"({"fresh":true})"); }));
  ASSERT_OK_AND_ASSIGN(Operation done, db().Transact([&](Tx& tx) {
    return CompleteOperation(tx, op->id, second, R"({"by":2})");
  }));
  EXPECT_EQ(done.status, OperationStatus::kSucceeded);
  EXPECT_NE(done.request_metadata_json.find("fresh"), std::string::npos);
  EXPECT_NE(done.result_metadata_json.find("\"by\": 2"), std::string::npos)
      << done.result_metadata_json;
  // And after the end, neither claim can write.
  EXPECT_ERROR_KIND(db().Transact([&](Tx& tx) { return CompleteOperation(tx, op->id, first); }),
                    ErrorKind::kCancelled);
  EXPECT_ERROR_KIND(
      db().Transact([&](Tx& tx) { return RenewLease(tx, op->id, second, milliseconds(60'000)); }),
      ErrorKind::kCancelled);
}

TEST_F(OperationsTest, AClaimSkipsTheVolumesItIsToldAreBusy) {
  const Volume other = MakeVolume(MakeProject(org_, "api"), server_);
  ASSERT_OK_AND_ASSIGN(QueuedOperation older, QueueBackup(volume_.id));
  ASSERT_OK_AND_ASSIGN(QueuedOperation newer, QueueBackup(other.id));
  // The oldest operation's volume is busy: the next one is claimed.
  ASSERT_OK_AND_ASSIGN(std::optional<Operation> got, db().Transact([&](Tx& tx) {
    return ClaimNextOperation(tx, server_, NewUuidV4(), milliseconds(30'000), {volume_.id});
  }));
  ASSERT_TRUE(got);
  EXPECT_EQ(got->id, newer.operation.id);
  // Nothing left on idle volumes.
  ASSERT_OK_AND_ASSIGN(std::optional<Operation> none, db().Transact([&](Tx& tx) {
    return ClaimNextOperation(tx, server_, NewUuidV4(), milliseconds(30'000), {volume_.id});
  }));
  EXPECT_FALSE(none);
  ASSERT_OK_AND_ASSIGN(std::optional<Operation> rest, Claim(server_, NewUuidV4()));
  ASSERT_TRUE(rest);
  EXPECT_EQ(rest->id, older.operation.id);
}

TEST_F(OperationsTest, ASweepWaitsForAConcurrentRenewal) {
  ASSERT_OK(QueueBackup(volume_.id));
  ASSERT_OK_AND_ASSIGN(std::optional<Operation> op, Claim(server_, owner_, milliseconds(1)));
  std::this_thread::sleep_for(milliseconds(20));
  // The sweep holds the expired row locked; a second sweep does not see it.
  std::latch locked(1);
  std::latch checked(1);
  std::thread sweep([&] {
    auto r = db().Transact([&](Tx& tx) -> Status {
      KINDLING_ASSIGN_OR_RETURN(auto expired, ListExpiredLeases(tx));
      EXPECT_EQ(expired.size(), 1u);
      locked.count_down();
      checked.wait();
      return {};
    });
    EXPECT_TRUE(r);
  });
  locked.wait();
  ASSERT_OK_AND_ASSIGN(std::vector<Operation> second,
                       db().Transact([](Tx& tx) { return ListExpiredLeases(tx); }));
  EXPECT_TRUE(second.empty());
  checked.count_down();
  sweep.join();
}

TEST_F(OperationsTest, CompletionRecordsResultsAndProgress) {
  ASSERT_OK_AND_ASSIGN(QueuedOperation queued, QueueBackup(volume_.id));
  ASSERT_OK_AND_ASSIGN(std::optional<Operation> op, Claim(server_, owner_));
  ASSERT_OK(db().Transact([&](Tx& tx) {
    return UpdateProgress(tx, op->id, owner_,
                          R"({"phase":"upload","bytes_done":10,"bytes_total":100})");
  }));
  EXPECT_ERROR_KIND(
      db().Transact([&](Tx& tx) { return UpdateProgress(tx, op->id, NewUuidV4(), "{}"); }),
      ErrorKind::kCancelled);
  ASSERT_OK_AND_ASSIGN(Operation progressed,
                       db().Transact([&](Tx& tx) { return GetOperation(tx, op->id); }));
  EXPECT_EQ(progressed.progress_json,
            R"({"phase": "upload", "bytes_done": 10, "bytes_total": 100})");

  // The worker's final transaction: operation, backup and volume together.
  ASSERT_OK_AND_ASSIGN(Operation done, db().Transact([&](Tx& tx) -> Result<Operation> {
    KINDLING_ASSIGN_OR_RETURN(Operation completed,
                              CompleteOperation(tx, op->id, owner_, R"({"size_bytes": 4096})"));
    KINDLING_RETURN_IF_ERROR(
        MarkBackupSucceeded(tx, *completed.backup_id,
                            BackupSuccess{.storage_url = "file:///srv/b",
                                          .storage_key = "manifests/x",
                                          .size_bytes = 4096,
                                          .metadata_json = R"({"chunks": 3})"}));
    KINDLING_RETURN_IF_ERROR(UpdateVolumeState(
        tx, completed.project_volume_id, VolumeStateUpdate{.status = VolumeStatus::kDetached}));
    return completed;
  }));
  EXPECT_EQ(done.status, OperationStatus::kSucceeded);
  EXPECT_TRUE(done.completed_at.has_value());
  EXPECT_FALSE(done.lease_owner);
  EXPECT_EQ(done.result_metadata_json, R"({"size_bytes": 4096})");
  const Backup backup = GetB(queued.backup->id);
  EXPECT_EQ(backup.status, BackupStatus::kSucceeded);
  EXPECT_EQ(backup.size_bytes, 4096);
  EXPECT_EQ(backup.metadata_json, R"({"chunks": 3})");
  EXPECT_EQ(GetVol(volume_.id).status, VolumeStatus::kDetached);
  ASSERT_OK_AND_ASSIGN(std::optional<Operation> active,
                       db().Transact([&](Tx& tx) { return FindActiveOperation(tx, volume_.id); }));
  EXPECT_FALSE(active);
  // The volume takes new work again.
  ASSERT_OK(QueueBackup(volume_.id));
}

// GetProjectVolume reads in one statement what GetProject,
// FindProjectVolume, FindActiveOperation and LastSuccessfulBackupAt read.
TEST_F(OperationsTest, GetProjectVolumeReadsWhatItsPartsRead) {
  auto read = [&](const std::string& project_id) {
    return db().Transact([&](Tx& tx) { return GetProjectVolume(tx, project_id); }, kAutocommitRead);
  };
  EXPECT_ERROR_KIND(read(NewUuidV4()), ErrorKind::kNotFound);

  const std::string bare = MakeProject(org_, "bare");
  ASSERT_OK_AND_ASSIGN(ProjectVolume without, read(bare));
  EXPECT_EQ(without.project.id, bare);
  EXPECT_EQ(without.project.organization_id, org_);
  EXPECT_EQ(without.project.name, "bare");
  EXPECT_FALSE(without.volume);
  EXPECT_FALSE(without.active_operation);
  EXPECT_FALSE(without.last_successful_backup_at);

  ASSERT_OK_AND_ASSIGN(ProjectVolume idle, read(volume_.project_id));
  EXPECT_EQ(idle.project.id, volume_.project_id);
  ASSERT_TRUE(idle.volume);
  EXPECT_EQ(idle.volume->id, volume_.id);
  EXPECT_EQ(idle.volume->server_id, server_);
  EXPECT_EQ(idle.volume->updated_at, volume_.updated_at);
  EXPECT_FALSE(idle.active_operation);
  EXPECT_FALSE(idle.last_successful_backup_at);

  // One succeeded backup, then a second one running.
  ASSERT_OK(QueueBackup(volume_.id));
  ASSERT_OK_AND_ASSIGN(std::optional<Operation> first, Claim(server_, owner_));
  ASSERT_OK(db().Transact([&](Tx& tx) -> Status {
    KINDLING_ASSIGN_OR_RETURN(Operation done, CompleteOperation(tx, first->id, owner_, "{}"));
    KINDLING_RETURN_IF_ERROR(MarkBackupSucceeded(
        tx, *done.backup_id,
        BackupSuccess{.storage_url = "file:///srv/b", .storage_key = "manifests/a"}));
    KINDLING_RETURN_IF_ERROR(
        UpdateVolumeState(tx, volume_.id, VolumeStateUpdate{.status = VolumeStatus::kDetached}));
    return {};
  }));
  ASSERT_OK_AND_ASSIGN(QueuedOperation second, QueueBackup(volume_.id));
  ASSERT_OK(Claim(server_, owner_));
  ASSERT_OK(db().Transact([&](Tx& tx) {
    return UpdateProgress(tx, second.operation.id, owner_, R"({"phase":"upload"})");
  }));

  ASSERT_OK_AND_ASSIGN(ProjectVolume busy, read(volume_.project_id));
  ASSERT_TRUE(busy.volume);
  const Volume volume = GetVol(volume_.id);
  EXPECT_EQ(busy.volume->status, volume.status);
  EXPECT_EQ(busy.volume->updated_at, volume.updated_at);
  ASSERT_TRUE(busy.active_operation);
  ASSERT_OK_AND_ASSIGN(
      Operation op, db().Transact([&](Tx& tx) { return GetOperation(tx, second.operation.id); }));
  EXPECT_EQ(busy.active_operation->id, op.id);
  EXPECT_EQ(busy.active_operation->status, OperationStatus::kRunning);
  EXPECT_EQ(busy.active_operation->backup_id, op.backup_id);
  EXPECT_EQ(busy.active_operation->lease_owner, op.lease_owner);
  EXPECT_EQ(busy.active_operation->progress_json, op.progress_json);
  EXPECT_EQ(busy.active_operation->target_requested, op.target_requested);
  EXPECT_EQ(busy.active_operation->updated_at, op.updated_at);
  ASSERT_OK_AND_ASSIGN(std::optional<Timestamp> last, db().Transact([&](Tx& tx) {
    return LastSuccessfulBackupAt(tx, volume_.id);
  }));
  ASSERT_TRUE(last);
  EXPECT_EQ(busy.last_successful_backup_at, last);
}

TEST_F(OperationsTest, FailureFailsTheBackupItCreated) {
  ASSERT_OK_AND_ASSIGN(QueuedOperation queued, QueueBackup(volume_.id));
  ASSERT_OK_AND_ASSIGN(std::optional<Operation> op, Claim(server_, owner_));
  ASSERT_OK_AND_ASSIGN(Operation failed, db().Transact([&](Tx& tx) {
    return FailOperation(tx, op->id, owner_, "disk image missing");
  }));
  EXPECT_EQ(failed.status, OperationStatus::kFailed);
  EXPECT_EQ(failed.error, "disk image missing");
  EXPECT_TRUE(failed.failed_at.has_value());
  const Backup backup = GetB(queued.backup->id);
  EXPECT_EQ(backup.status, BackupStatus::kFailed);
  EXPECT_EQ(backup.error, "disk image missing");

  EXPECT_ERROR_KIND(
      db().Transact([&](Tx& tx) { return FailOperation(tx, op->id, std::nullopt, "again"); }),
      ErrorKind::kInvalidArgument);
  EXPECT_ERROR_KIND(db().Transact([&](Tx& tx) { return RequeueOperation(tx, op->id); }),
                    ErrorKind::kInvalidArgument);
}

TEST_F(OperationsTest, TheSweepFailsWithoutALease) {
  ASSERT_OK_AND_ASSIGN(QueuedOperation queued, QueueBackup(volume_.id));
  ASSERT_OK_AND_ASSIGN(Operation failed, db().Transact([&](Tx& tx) {
    return FailOperation(tx, queued.operation.id, std::nullopt, "no eligible worker");
  }));
  EXPECT_EQ(failed.status, OperationStatus::kFailed);
}

TEST_F(OperationsTest, StuckPendingOperationsAreFound) {
  ASSERT_OK_AND_ASSIGN(QueuedOperation queued, QueueBackup(volume_.id));
  ASSERT_OK_AND_ASSIGN(std::vector<Operation> fresh, db().Transact([](Tx& tx) {
    return ListStuckPendingOperations(tx, std::chrono::seconds(120));
  }));
  EXPECT_TRUE(fresh.empty());
  Sql("UPDATE servers SET status = 'dead' WHERE id = '" + server_ + "'");
  ASSERT_OK_AND_ASSIGN(std::vector<Operation> on_dead, db().Transact([](Tx& tx) {
    return ListStuckPendingOperations(tx, std::chrono::seconds(120));
  }));
  ASSERT_EQ(on_dead.size(), 1u);
  EXPECT_EQ(on_dead[0].id, queued.operation.id);
  Sql("UPDATE servers SET status = 'active'");
  Sql("UPDATE project_volume_operations SET updated_at = now() - interval '10 minutes'");
  ASSERT_OK_AND_ASSIGN(std::vector<Operation> old, db().Transact([](Tx& tx) {
    return ListStuckPendingOperations(tx, std::chrono::seconds(120));
  }));
  EXPECT_EQ(old.size(), 1u);
}

TEST_F(OperationsTest, CountsAndHistory) {
  ASSERT_OK_AND_ASSIGN(QueuedOperation first, QueueBackup(volume_.id));
  ASSERT_OK(db().Transact(
      [&](Tx& tx) { return FailOperation(tx, first.operation.id, std::nullopt, "x"); }));
  ASSERT_OK(db().Transact([&](Tx& tx) {
    return UpdateVolumeState(tx, volume_.id, VolumeStateUpdate{.status = VolumeStatus::kDetached});
  }));
  ASSERT_OK_AND_ASSIGN(QueuedOperation second, db().Transact([&](Tx& tx) {
    return QueueOperation(
        tx, QueueOperationRequest{
                .volume_id = volume_.id, .kind = OperationKind::kRepair, .server_id = server_});
  }));
  EXPECT_EQ(second.volume.status, VolumeStatus::kRepairing);
  ASSERT_OK_AND_ASSIGN(std::vector<OperationCount> counts,
                       db().Transact([](Tx& tx) { return CountOperations(tx); }));
  ASSERT_EQ(counts.size(), 2u);
  EXPECT_EQ(counts[0].kind, OperationKind::kBackup);
  EXPECT_EQ(counts[0].status, OperationStatus::kFailed);
  EXPECT_EQ(counts[1].kind, OperationKind::kRepair);
  EXPECT_EQ(counts[1].count, 1);
  ASSERT_OK_AND_ASSIGN(std::vector<Operation> history,
                       db().Transact([&](Tx& tx) { return ListVolumeOperations(tx, volume_.id); }));
  ASSERT_EQ(history.size(), 2u);
  EXPECT_EQ(history[0].id, second.operation.id);  // newest first
}

// GET /metrics runs CountOperations on every scrape: one query that
// aggregates every volume's operations (deleted volumes' too), so its rows
// and its cost do not grow with the number of volumes.
TEST_F(OperationsTest, CountOperationsAggregatesEveryVolumeInOneRowPerKindAndStatus) {
  for (int i = 0; i < 5; ++i) {
    const Volume volume = MakeVolume(MakeProject(org_, "p" + std::to_string(i)), server_);
    const std::string v = "'" + volume.id + "'";
    Sql("INSERT INTO project_volume_operations (project_volume_id, kind, status, started_at, "
        "completed_at, progress) VALUES (" +
        v +
        ", 'backup', 'succeeded', now() - interval '2 seconds', now(), '{\"bytes_done\": 100}')");
    Sql("INSERT INTO project_volume_operations (project_volume_id, kind, status, failed_at, "
        "progress) VALUES (" +
        v + ", 'backup', 'failed', now(), '{\"bytes_done\": \"not a number\"}')");
    if (i % 2 == 0) Sql("UPDATE project_volumes SET deleted_at = now() WHERE id = " + v);
  }
  ASSERT_OK_AND_ASSIGN(std::vector<OperationCount> counts,
                       db().Transact([](Tx& tx) { return CountOperations(tx); }));
  ASSERT_EQ(counts.size(), 2u);
  EXPECT_EQ(counts[0].status, OperationStatus::kFailed);
  EXPECT_EQ(counts[0].count, 5);
  EXPECT_EQ(counts[0].timed_count, 0);
  EXPECT_EQ(counts[0].bytes_done, 0);
  EXPECT_EQ(counts[1].status, OperationStatus::kSucceeded);
  EXPECT_EQ(counts[1].count, 5);
  EXPECT_EQ(counts[1].timed_count, 5);
  EXPECT_NEAR(counts[1].duration_seconds, 10.0, 0.5);
  EXPECT_EQ(counts[1].bytes_done, 500);
}

TEST_F(OperationsTest, PreDeleteBackupMarksTheVolumeDeleting) {
  ASSERT_OK_AND_ASSIGN(QueuedOperation queued, db().Transact([&](Tx& tx) {
    return QueueOperation(
        tx, QueueOperationRequest{.volume_id = volume_.id,
                                  .kind = OperationKind::kBackup,
                                  .server_id = server_,
                                  .create_backup = BackupKind::kPreDelete,
                                  .volume_status = VolumeStatus::kDeleting,
                                  .extra_request_metadata_json = R"({"delete_volume": true})"});
  }));
  EXPECT_EQ(queued.volume.status, VolumeStatus::kDeleting);
  EXPECT_EQ(queued.backup->kind, BackupKind::kPreDelete);
  EXPECT_NE(queued.operation.request_metadata_json.find(R"("delete_volume": true)"),
            std::string::npos);
  EXPECT_NE(queued.operation.request_metadata_json.find(queued.backup->id), std::string::npos);
}

}  // namespace
}  // namespace kindling::db
