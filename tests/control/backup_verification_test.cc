// Scheduled verification rounds against PostgreSQL
// (control/backup_verification.h): the round's start and size come from the
// audit trail, a sample rotates through the least recently verified backups,
// the limits hold (planned count, cluster-wide cap, one operation per
// volume), a failed verify waits for the next round, and a new leader (or
// several at once) continues the round. Workers are simulated here: the
// test claims the queued operations and completes or fails them as a worker
// would (tests/reconcile/scheduled_verification_test.cc runs real ones).
#include "control/backup_verification.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "common/ids.h"
#include "db/audit.h"
#include "db/backups.h"
#include "db/db_test_util.h"
#include "db/operations.h"

namespace kindling::control {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

class BackupVerificationTest : public db::DbTest {
 protected:
  void SetUp() override {
    DbTest::SetUp();
    if (HasFatalFailure()) return;
    volumes_ = std::make_unique<VolumeService>(db(), master_key_);
    org_ = MakeOrganization();
    server_ = MakeServer("w1");
    schedule_.every = 7 * 24h;
    schedule_.now = [this] { return std::chrono::system_clock::now() + offset_; };
  }

  struct Project {
    std::string id;
    db::Volume volume;
    std::vector<std::string> backups;  // oldest first
  };

  // A project whose live volume has `n` succeeded backups.
  Project MakeProjectWithBackups(int n) {
    Project p;
    p.id = MakeProject(org_, "p-" + NewUuidV4().substr(0, 8));
    p.volume = MakeVolume(p.id, server_);
    for (int i = 0; i < n; ++i) p.backups.push_back(SucceededBackup(p.volume.id));
    return p;
  }
  std::string SucceededBackup(const std::string& volume_id) {
    auto backup = Must([&](db::Tx& tx) -> Result<db::Backup> {
      KINDLING_ASSIGN_OR_RETURN(auto b,
                                db::CreateBackup(tx, db::NewBackup{.volume_id = volume_id}));
      return db::MarkBackupSucceeded(
          tx, b.id, db::BackupSuccess{.storage_url = "file:///x", .storage_key = "k"});
    });
    return backup ? backup->id : "";
  }

  VerifyPass Pass() {
    auto pass = QueueScheduledVerifications(db(), *volumes_, schedule_);
    EXPECT_TRUE(pass) << pass.error().message();
    if (!pass || !*pass) {
      ADD_FAILURE() << "no pass";
      return VerifyPass{};
    }
    return **pass;
  }
  static std::set<std::string> BackupIds(const VerifyPass& pass) {
    std::set<std::string> out;
    for (const db::Operation& op : pass.queued) out.insert(op.backup_id.value_or(""));
    return out;
  }

  // As a worker: claims every pending operation of the server and completes
  // it (a verify records its finding on the backup), or fails it when its
  // backup is in `fail` (the store unreachable, say).
  void FinishPending(const std::set<std::string>& fail = {}) {
    for (;;) {
      const std::string owner = NewUuidV4();
      auto claimed = Must([&](db::Tx& tx) {
        return db::ClaimNextOperation(tx, server_, owner, std::chrono::milliseconds(30'000));
      });
      ASSERT_TRUE(claimed);
      if (!*claimed) return;
      const db::Operation& op = **claimed;
      ASSERT_TRUE(Must([&](db::Tx& tx) -> Status {
        if (op.backup_id && fail.contains(*op.backup_id)) {
          KINDLING_ASSIGN_OR_RETURN(auto failed,
                                    db::FailOperation(tx, op.id, owner, "store unreachable"));
          (void)failed;
          return OkStatus();
        }
        KINDLING_ASSIGN_OR_RETURN(auto done, db::CompleteOperation(tx, op.id, owner));
        (void)done;
        if (op.kind == db::OperationKind::kVerify) {
          KINDLING_ASSIGN_OR_RETURN(
              auto b, db::RecordBackupVerification(tx, *op.backup_id, db::VerifyState::kOk));
          (void)b;
          return OkStatus();
        }
        // A backup: recorded, and the volume settles.
        KINDLING_ASSIGN_OR_RETURN(
            auto b, db::MarkBackupSucceeded(
                        tx, *op.backup_id,
                        db::BackupSuccess{.storage_url = "file:///x", .storage_key = "k"}));
        (void)b;
        KINDLING_ASSIGN_OR_RETURN(
            auto v,
            db::UpdateVolumeState(tx, op.project_volume_id,
                                  db::VolumeStateUpdate{.status = db::VolumeStatus::kDetached}));
        (void)v;
        return OkStatus();
      }));
    }
  }

  std::vector<db::AuditEvent> Rounds() {
    auto events = Must([&](db::Tx& tx) {
      return db::ListAuditEvents(tx, db::AuditFilter{.action = kVerifyRoundStarted, .limit = 100});
    });
    return events ? *events : std::vector<db::AuditEvent>{};
  }
  db::Backup Backup(const std::string& id) {
    auto b = Must([&](db::Tx& tx) { return db::GetBackup(tx, id); });
    return b ? *b : db::Backup{};
  }

  crypto::Key master_key_ = crypto::RandomKey();
  std::unique_ptr<VolumeService> volumes_;
  std::string org_;
  std::string server_;
  BackupVerifySchedule schedule_;
  std::chrono::seconds offset_{0};
};

TEST(VerifySampleTest, ParsesAllOrAPercentage) {
  EXPECT_EQ(ParseVerifySample("all").value_or(-1), 100);
  EXPECT_EQ(ParseVerifySample("25%").value_or(-1), 25);
  EXPECT_EQ(ParseVerifySample("1%").value_or(-1), 1);
  EXPECT_EQ(ParseVerifySample("100%").value_or(-1), 100);
  for (const char* bad : {"", "%", "0%", "101%", "25", "-5%", "2.5%", "ALL", "25%%", " 25%"}) {
    auto parsed = ParseVerifySample(bad);
    ASSERT_FALSE(parsed) << bad;
    EXPECT_EQ(parsed.error().kind(), ErrorKind::kInvalidArgument) << bad;
  }
  EXPECT_EQ(VerifySampleName(100), "all");
  EXPECT_EQ(VerifySampleName(25), "25%");
}

TEST_F(BackupVerificationTest, OffQueuesNothingAndStartsNoRound) {
  MakeProjectWithBackups(2);
  schedule_.every = 0s;
  auto pass = QueueScheduledVerifications(db(), *volumes_, schedule_);
  ASSERT_TRUE(pass) << pass.error().message();
  EXPECT_FALSE(pass->has_value());
  EXPECT_TRUE(Rounds().empty());
  EXPECT_EQ(Sql("SELECT count(*) FROM project_volume_operations")[0][0].as<int>(), 0);
}

// 25% of 8 backups a round, least recently verified first: four rounds
// verify each backup once, the fifth starts over with the first round's.
TEST_F(BackupVerificationTest, ARotatingSampleVerifiesEveryBackupOverSuccessiveRounds) {
  schedule_.sample_percent = 25;
  schedule_.max_active = 8;
  std::vector<Project> projects;
  for (int i = 0; i < 4; ++i) projects.push_back(MakeProjectWithBackups(2));

  std::vector<std::set<std::string>> rounds;
  for (int round = 0; round < 5; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const VerifyPass first = Pass();
    EXPECT_TRUE(first.round_started);
    EXPECT_EQ(first.planned, 2);
    EXPECT_EQ(first.queued_before, 0);
    ASSERT_EQ(first.queued.size(), 2u);
    EXPECT_TRUE(first.refused.empty());
    EXPECT_TRUE(first.complete());
    for (const db::Operation& op : first.queued) {
      EXPECT_EQ(op.kind, db::OperationKind::kVerify);
      EXPECT_EQ(json::parse(op.request_metadata_json)["verify_round"], first.round_id);
    }
    rounds.push_back(BackupIds(first));
    // The round is planned in full: passes before its end queue nothing
    // more, even once the operations are done.
    FinishPending();
    const VerifyPass later = Pass();
    EXPECT_FALSE(later.round_started);
    EXPECT_EQ(later.round_id, first.round_id);
    EXPECT_EQ(later.queued_before, 2);
    EXPECT_TRUE(later.queued.empty());
    offset_ += 7 * 24h;
  }
  std::set<std::string> all;
  for (int i = 0; i < 4; ++i) {
    for (const std::string& id : rounds[i]) EXPECT_TRUE(all.insert(id).second) << id << " twice";
  }
  EXPECT_EQ(all.size(), 8u);
  // Never verified ones first, oldest first: round 0 took each of the two
  // oldest volumes' oldest backup (one operation per volume at a time).
  EXPECT_EQ(rounds[0], (std::set<std::string>{projects[0].backups[0], projects[1].backups[0]}));
  EXPECT_EQ(rounds[4], rounds[0]) << "the least recently verified come round again";
  for (const std::string& id : all) {
    const db::Backup b = Backup(id);
    EXPECT_EQ(b.verify_state, db::VerifyState::kOk) << id;
  }
  // Each round is one audit event, with its plan.
  const auto events = Rounds();
  ASSERT_EQ(events.size(), 5u);
  const json details = json::parse(events[0].details_json);
  EXPECT_EQ(details["planned"], 2);
  EXPECT_EQ(details["verifiable"], 8);
  EXPECT_EQ(details["sample"], "25%");
  EXPECT_FALSE(events[0].user_id.has_value());
}

// A round of every backup, two operations at most in flight cluster-wide
// (an operator's on-demand verify included), one per volume: a volume with
// a backup running waits, and so do its backups.
TEST_F(BackupVerificationTest, TheCapAndBusyVolumesHoldOperationsBack) {
  schedule_.max_active = 2;
  const Project a = MakeProjectWithBackups(2);
  const Project b = MakeProjectWithBackups(1);
  const Project c = MakeProjectWithBackups(1);
  const Project busy = MakeProjectWithBackups(1);
  // An operator verifies one of a's backups on demand, and busy's volume
  // is being backed up.
  auto manual = volumes_->QueueVerify(Actor{}, a.id, a.backups[1]);
  ASSERT_TRUE(manual) << manual.error().message;
  auto backing_up = Must([&](db::Tx& tx) {
    return db::QueueOperation(tx,
                              db::QueueOperationRequest{.volume_id = busy.volume.id,
                                                        .kind = db::OperationKind::kBackup,
                                                        .server_id = server_,
                                                        .create_backup = db::BackupKind::kManual});
  });
  ASSERT_TRUE(backing_up && backing_up->backup);
  const std::string new_backup = backing_up->backup->id;

  const VerifyPass first = Pass();
  EXPECT_EQ(first.planned, 5);
  // One slot left beside the manual verify; a's volume is busy with it.
  ASSERT_EQ(first.queued.size(), 1u);
  EXPECT_EQ(BackupIds(first), std::set<std::string>{b.backups[0]});
  EXPECT_TRUE(Pass().queued.empty()) << "the cap is reached";

  FinishPending();  // the manual verify, b's and busy's backup
  const VerifyPass second = Pass();
  // a's first backup and c's; a's second was verified by the operator
  // after the round started, so it is not verified again.
  EXPECT_EQ(BackupIds(second), (std::set<std::string>{a.backups[0], c.backups[0]}));
  FinishPending();
  // busy's volume is idle now, with the backup it made (never verified, so
  // the round takes it too): one at a time, the older first.
  EXPECT_EQ(BackupIds(Pass()), std::set<std::string>{busy.backups[0]});
  FinishPending();
  EXPECT_EQ(BackupIds(Pass()), std::set<std::string>{new_backup});
  FinishPending();
  const VerifyPass done = Pass();
  EXPECT_TRUE(done.queued.empty());
  EXPECT_EQ(done.queued_before, 5);
  EXPECT_TRUE(done.complete());
}

// A verify that fails (not one that finds damage: that one succeeds) is not
// queued again in its round; the next round takes it first.
TEST_F(BackupVerificationTest, AFailedVerifyWaitsForTheNextRound) {
  schedule_.max_active = 10;
  const Project a = MakeProjectWithBackups(1);
  const Project b = MakeProjectWithBackups(2);
  const VerifyPass first = Pass();
  EXPECT_EQ(first.planned, 3);
  ASSERT_EQ(BackupIds(first), (std::set<std::string>{a.backups[0], b.backups[0]}));
  FinishPending({a.backups[0]});
  const VerifyPass second = Pass();
  EXPECT_EQ(BackupIds(second), std::set<std::string>{b.backups[1]});
  FinishPending();
  // The round's plan is used up (one of its three failed): nothing more.
  const VerifyPass third = Pass();
  EXPECT_TRUE(third.queued.empty());
  EXPECT_FALSE(Backup(a.backups[0]).verified_at.has_value());

  offset_ += 7 * 24h;
  const VerifyPass next = Pass();
  EXPECT_TRUE(next.round_started);
  EXPECT_TRUE(BackupIds(next).contains(a.backups[0])) << "never verified: first";
}

// Backups outlive their volume: one of a deleted volume is verified through
// the project's live volume; a project with no live volume has nothing a
// verify could hang on, so its backups are not counted.
TEST_F(BackupVerificationTest, BackupsOfDeletedVolumesAreVerifiedThroughTheLiveVolume) {
  const Project p = MakeProjectWithBackups(1);
  ASSERT_TRUE(Must([&](db::Tx& tx) { return db::MarkVolumeDeleted(tx, p.volume.id); }));
  const db::Volume next = MakeVolume(p.id, server_);
  const Project orphaned = MakeProjectWithBackups(1);
  ASSERT_TRUE(Must([&](db::Tx& tx) { return db::MarkVolumeDeleted(tx, orphaned.volume.id); }));

  const VerifyPass pass = Pass();
  EXPECT_EQ(pass.planned, 1);
  ASSERT_EQ(pass.queued.size(), 1u);
  EXPECT_EQ(pass.queued[0].backup_id, p.backups[0]);
  EXPECT_EQ(pass.queued[0].project_volume_id, next.id);
}

// A new leader (another process, nothing in memory) continues the round;
// leaders starting at once start one round between them.
TEST_F(BackupVerificationTest, ANewLeaderContinuesTheRoundAndRacingLeadersStartOne) {
  schedule_.max_active = 1;
  for (int i = 0; i < 3; ++i) MakeProjectWithBackups(1);
  const VerifyPass first = Pass();
  ASSERT_EQ(first.queued.size(), 1u);
  FinishPending();

  VolumeService other(db(), master_key_);
  auto continued = QueueScheduledVerifications(db(), other, schedule_);
  ASSERT_TRUE(continued && *continued) << (continued ? "off" : continued.error().message());
  EXPECT_FALSE((*continued)->round_started);
  EXPECT_EQ((*continued)->round_id, first.round_id);
  EXPECT_EQ((*continued)->queued_before, 1);
  EXPECT_EQ((*continued)->queued.size(), 1u);
  EXPECT_EQ(Rounds().size(), 1u);

  offset_ += 8 * 24h;
  std::vector<std::thread> leaders;
  std::atomic<int> started{0};
  for (int i = 0; i < 4; ++i) {
    leaders.emplace_back([&] {
      VolumeService mine(db(), master_key_);
      auto pass = QueueScheduledVerifications(db(), mine, schedule_);
      EXPECT_TRUE(pass) << pass.error().message();
      if (pass && *pass && (*pass)->round_started) started.fetch_add(1);
    });
  }
  for (auto& t : leaders) t.join();
  EXPECT_EQ(started.load(), 1);
  EXPECT_EQ(Rounds().size(), 2u);
}

}  // namespace
}  // namespace kindling::control
