// Scheduled verification end to end (control/backup_verification.h): rounds
// queued by the control plane run on a real worker against a local store;
// each verify records verified_at/verify_state on its backup; a chunk gone
// bad is found by the next round, marks every backup that uses it damaged,
// and a backup of the volume heals them, which the round after confirms.
#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "control/backup_verification.h"
#include "control/volume_service.h"
#include "reconcile_test_base.h"
#include "testutil/sparse_image.h"

namespace kindling::reconcile {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

class ScheduledVerificationTest : public ReconcileTest {
 protected:
  void SetUp() override {
    ReconcileTest::SetUp();
    if (HasFatalFailure()) return;
    schedule_.now = [this] { return std::chrono::system_clock::now() + offset_; };
    volumes_ = std::make_unique<control::VolumeService>(db(), crypto::RandomKey());
  }

  // One pass; the operations it queued, each waited for.
  std::vector<db::Operation> PassAndWait() {
    auto pass = control::QueueScheduledVerifications(db(), *volumes_, schedule_);
    EXPECT_TRUE(pass && *pass) << (pass ? "off" : pass.error().message());
    std::vector<db::Operation> finished;
    if (!pass || !*pass) return finished;
    for (const db::Operation& op : (*pass)->queued) finished.push_back(WaitFinished(op.id));
    return finished;
  }
  db::Backup Backup(const std::string& id) {
    auto b = Must([&](db::Tx& tx) { return db::GetBackup(tx, id); });
    return b ? *b : db::Backup{};
  }

  std::unique_ptr<control::VolumeService> volumes_;
  control::BackupVerifySchedule schedule_;
  std::chrono::seconds offset_{0};
};

TEST_F(ScheduledVerificationTest, RoundsVerifyEveryBackupFindDamageAndSeeItHealed) {
  Worker& worker = StartWorker(FastOptions("w1"));
  const db::Volume volume = MakePinnedVolume(worker.server_id());
  const auto image = worker.ImageOf(volume.id);
  ASSERT_TRUE(WaitFor([&] { return std::filesystem::exists(image); }, 20s));
  testutil::PatchFile(image, 64u << 20, testutil::RandomData(3u << 20, 11));
  std::vector<std::string> backups;
  for (int i = 0; i < 2; ++i) {
    const db::QueuedOperation op = QueueBackup(GetVolume(volume.id));
    ASSERT_EQ(WaitFinished(op.operation.id).status, db::OperationStatus::kSucceeded);
    backups.push_back(*op.operation.backup_id);
  }

  // Round 1: both backups, one at a time (one volume), oldest first.
  for (const std::string& expected : backups) {
    const std::vector<db::Operation> ops = PassAndWait();
    ASSERT_EQ(ops.size(), 1u);
    EXPECT_EQ(ops[0].backup_id, expected);
    ASSERT_EQ(ops[0].status, db::OperationStatus::kSucceeded) << ops[0].error.value_or("");
    EXPECT_EQ(json::parse(ops[0].result_metadata_json)["ok"], true);
    const db::Backup b = Backup(expected);
    EXPECT_EQ(b.verify_state, db::VerifyState::kOk);
    EXPECT_TRUE(b.verified_at.has_value());
  }
  EXPECT_TRUE(PassAndWait().empty()) << "the round is done";

  // A stored chunk goes bad; the next round finds it in both backups.
  auto chunks = local_->List("chunks/");
  ASSERT_TRUE(chunks && !chunks->empty());
  const std::string key = chunks->front().key;
  auto object = local_->Get(key);
  ASSERT_TRUE(object) << object.error().message();
  (*object)[object->size() / 2] ^= 0x20;
  ASSERT_TRUE(local_->Put(key, *object));
  offset_ += 7 * 24h;
  for (int i = 0; i < 2; ++i) {
    const std::vector<db::Operation> ops = PassAndWait();
    ASSERT_EQ(ops.size(), 1u);
    // Finding damage is a successful verify.
    ASSERT_EQ(ops[0].status, db::OperationStatus::kSucceeded) << ops[0].error.value_or("");
    EXPECT_EQ(json::parse(ops[0].result_metadata_json)["ok"], false);
  }
  for (const std::string& id : backups) {
    const db::Backup b = Backup(id);
    EXPECT_EQ(b.verify_state, db::VerifyState::kDamaged) << id;
    EXPECT_EQ(b.status, db::BackupStatus::kDamaged) << id;
  }

  // A backup of the unchanged image stores the chunk again: both heal, and
  // the next round finds them sound.
  const db::QueuedOperation healing = QueueBackup(GetVolume(volume.id));
  ASSERT_EQ(WaitFinished(healing.operation.id).status, db::OperationStatus::kSucceeded);
  for (const std::string& id : backups) EXPECT_EQ(Backup(id).status, db::BackupStatus::kSucceeded);
  offset_ += 7 * 24h;
  int verified = 0;
  for (std::vector<db::Operation> ops = PassAndWait(); !ops.empty(); ops = PassAndWait()) {
    for (const db::Operation& op : ops) {
      EXPECT_EQ(json::parse(op.result_metadata_json)["ok"], true) << op.result_metadata_json;
      ++verified;
    }
    ASSERT_LE(verified, 3);
  }
  EXPECT_EQ(verified, 3);
  for (const std::string& id : backups) EXPECT_EQ(Backup(id).verify_state, db::VerifyState::kOk);
}

}  // namespace
}  // namespace kindling::reconcile
