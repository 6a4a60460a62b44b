// RunningOperation: one operation a worker claimed, while it executes. It
// owns the keeper thread that renews the lease and writes progress to the
// operation row, so the engine's progress callback never waits on the
// database, and it carries the cancellation flag the engine polls.
//
// `lease_owner` is the fencing token of this one claim (db/operations.h):
// every write this execution makes to the operation row passes it, so once
// the lease was taken over none of them lands, even when the same process
// has claimed the operation again. A renewal that finds the lease taken
// over (kCancelled: the leader's sweep re-queued the operation) sets
// lease_lost and cancel: the worker then stops and leaves the row alone.
//
// Thread-safety: SetProgress/SetPhase from any thread; Start/StopKeeper from
// the executing thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "db/database.h"
#include "db/types.h"
#include "engine/progress.h"

namespace kindling::reconcile {

struct KeeperTiming {
  std::chrono::milliseconds lease_duration{15'000};
  std::chrono::milliseconds lease_renew_interval{5'000};
  std::chrono::milliseconds progress_interval{500};
};

class RunningOperation {
 public:
  // REQUIRES: `db` outlives the object.
  RunningOperation(db::Database& db, std::string operation_id, std::string lease_owner,
                   KeeperTiming timing);
  ~RunningOperation();  // StopKeeper()
  RunningOperation(const RunningOperation&) = delete;
  RunningOperation& operator=(const RunningOperation&) = delete;

  const std::string& operation_id() const { return operation_id_; }
  // The claim's fencing token (lease_owner on the row while it is ours).
  const std::string& lease_owner() const { return lease_owner_; }

  // Starts the keeper thread.
  void StartKeeper();
  // Writes the last progress report and stops the keeper. Called right before
  // the transaction that finishes the operation: a renewal racing with it
  // would see the finished row and report the lease as lost. The lease is
  // still valid for lease_duration, plenty for one commit. Idempotent.
  void StopKeeper();

  void SetProgress(const engine::Progress& progress);
  void SetPhase(std::string_view phase);

  engine::CancelFlag cancel{false};
  std::atomic<bool> lease_lost{false};
  // Health found while executing (missing image, fsck verdict); applied to
  // the volume when the operation fails.
  std::optional<db::VolumeHealth> health;
  // A JSON object merged into result_metadata when the operation fails
  // (what a failed validation found).
  std::optional<std::string> failure_result_json;

 private:
  void KeeperLoop();

  db::Database& db_;
  const std::string operation_id_;
  const std::string lease_owner_;
  const KeeperTiming timing_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;          // guarded by mu_
  std::string progress_json_;  // guarded by mu_; empty: nothing new
  std::thread keeper_;
};

}  // namespace kindling::reconcile
