#include "reconcile/running_operation.h"

#include <unistd.h>

#include <algorithm>
#include <future>

#include "common/thread_priority.h"
#include "reconcile_test_base.h"
#include "testutil/thread_nice.h"

namespace kindling::reconcile {
namespace {

using std::chrono::milliseconds;

class RunningOperationTest : public ReconcileTest {
 protected:
  // A repair claimed with a fresh fencing token, as a worker's claim would.
  db::Operation Claim(const std::string& lease_owner, milliseconds lease) {
    Worker& worker = AddSteppedWorker(FastOptions("w" + std::to_string(workers_.size())));
    const db::Volume volume = MakePinnedVolume(worker.server_id());
    Queue({.volume_id = volume.id,
           .kind = db::OperationKind::kRepair,
           .server_id = worker.server_id()});
    auto claimed = Must([&](db::Tx& tx) {
      return db::ClaimNextOperation(tx, worker.server_id(), lease_owner, lease, {});
    });
    EXPECT_TRUE(claimed && *claimed);
    return claimed && *claimed ? **claimed : db::Operation{};
  }

  static constexpr KeeperTiming kTiming{.lease_duration = milliseconds(1500),
                                        .lease_renew_interval = milliseconds(200),
                                        .progress_interval = milliseconds(50)};
};

// The executing thread runs at the lowest priority; the keeper, started from
// a thread at the normal one, renews the lease and writes progress at that
// priority, and the last report is written when the operation takes itself
// back.
TEST_F(RunningOperationTest, TheKeeperRenewsAtItsOwnPriorityNotTheOperations) {
  const std::string owner = NewUuidV4();
  const db::Operation op = Claim(owner, kTiming.lease_duration);
  ASSERT_FALSE(op.id.empty());
  const auto first_expiry = GetOperation(op.id).lease_expires_at;
  ASSERT_TRUE(first_expiry);
  const int before_at_19 =
      static_cast<int>(std::ranges::count(testutil::ThreadNiceValues(::getpid()), 19));

  LeaseKeeper keeper;
  keeper.Start();  // from the test's thread, at its priority
  std::promise<void> let_finish;
  std::promise<void> started;
  std::thread executor([&] {
    ASSERT_TRUE(SetThisThreadPriority({.nice = 19, .io_level = 7}));
    RunningOperation run(db(), keeper, op.id, owner, kTiming);
    run.StartKeeper();
    run.SetPhase("fsck");
    started.set_value();
    let_finish.get_future().wait();
    run.SetProgress({.phase = "done", .bytes_done = 7, .bytes_total = 7});
    run.StopKeeper();
    EXPECT_FALSE(run.lease_lost.load());
  });
  started.get_future().wait();
  // Only the executing thread was lowered: the keeper did not inherit it.
  EXPECT_EQ(std::ranges::count(testutil::ThreadNiceValues(::getpid()), 19), before_at_19 + 1);
  EXPECT_TRUE(WaitFor([&] {
    return GetOperation(op.id).progress_json.find("fsck") != std::string::npos;
  })) << "progress never written";
  EXPECT_TRUE(WaitFor([&] {
    const auto expiry = GetOperation(op.id).lease_expires_at;
    return expiry && *expiry > *first_expiry;
  })) << "lease never renewed";
  let_finish.set_value();
  executor.join();
  const db::Operation after = GetOperation(op.id);
  EXPECT_NE(after.progress_json.find("\"bytes_done\": 7"), std::string::npos)
      << after.progress_json;
  EXPECT_EQ(after.status, db::OperationStatus::kRunning);
  EXPECT_EQ(after.lease_owner, owner);
}

// A renewal that finds the lease taken over cancels the execution and leaves
// the row alone; the keeper goes on keeping the others.
TEST_F(RunningOperationTest, ALostLeaseCancelsOnlyItsOwnOperation) {
  const std::string lost_owner = NewUuidV4();
  const db::Operation lost = Claim(lost_owner, kTiming.lease_duration);
  const std::string kept_owner = NewUuidV4();
  const db::Operation kept = Claim(kept_owner, kTiming.lease_duration);
  ASSERT_FALSE(lost.id.empty());
  ASSERT_FALSE(kept.id.empty());

  LeaseKeeper keeper;  // started by the first StartKeeper
  RunningOperation lost_run(db(), keeper, lost.id, lost_owner, kTiming);
  RunningOperation kept_run(db(), keeper, kept.id, kept_owner, kTiming);
  lost_run.StartKeeper();
  kept_run.StartKeeper();
  // The sweep's take-over, as the leader writes it.
  ASSERT_TRUE(Must([&](db::Tx& tx) { return db::RequeueOperation(tx, lost.id); }));
  EXPECT_TRUE(WaitFor([&] { return lost_run.cancel.load(); })) << "never cancelled";
  EXPECT_TRUE(lost_run.lease_lost.load());
  EXPECT_FALSE(kept_run.cancel.load());
  const auto kept_expiry = GetOperation(kept.id).lease_expires_at;
  EXPECT_TRUE(WaitFor([&] {
    const auto expiry = GetOperation(kept.id).lease_expires_at;
    return expiry && kept_expiry && *expiry > *kept_expiry;
  })) << "the other lease was not renewed after the loss";
  lost_run.SetPhase("late");
  lost_run.StopKeeper();
  kept_run.StopKeeper();
  const db::Operation requeued = GetOperation(lost.id);
  EXPECT_EQ(requeued.status, db::OperationStatus::kPending);
  EXPECT_EQ(requeued.progress_json.find("late"), std::string::npos);
}

}  // namespace
}  // namespace kindling::reconcile
