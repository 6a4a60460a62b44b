// RunningOperation: one operation a worker claimed, while it executes. It
// carries the cancellation flag the engine polls and the progress the
// engine reports; a LeaseKeeper renews its lease and writes that progress to
// the operation row, so the engine's progress callback never waits on the
// database.
//
// `lease_owner` is the fencing token of this one claim (db/operations.h):
// every write this execution makes to the operation row passes it, so once
// the lease was taken over none of them lands, even when the same process
// has claimed the operation again. A renewal that finds the lease taken
// over (kCancelled: the leader's sweep re-queued the operation) sets
// lease_lost and cancel: the worker then stops and leaves the row alone.
//
// LeaseKeeper: one thread per worker that keeps the leases of all its
// running operations. It runs at the priority of the thread that started
// it, not at the operations' (which may be lowered, WorkerOptions::
// operation_priority): a backup starved of CPU must not lose its lease for
// it. A keeper started from a lowered thread (a step function called before
// Start) keeps that thread's priority.
//
// Thread-safety: SetProgress/SetPhase from any thread; Start/StopKeeper from
// the executing thread. LeaseKeeper: thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
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

class LeaseKeeper;

class RunningOperation {
 public:
  using Clock = std::chrono::steady_clock;

  // REQUIRES: `db` and `keeper` outlive the object.
  RunningOperation(db::Database& db, LeaseKeeper& keeper, std::string operation_id,
                   std::string lease_owner, KeeperTiming timing);
  ~RunningOperation();  // StopKeeper()
  RunningOperation(const RunningOperation&) = delete;
  RunningOperation& operator=(const RunningOperation&) = delete;

  const std::string& operation_id() const { return operation_id_; }
  // The claim's fencing token (lease_owner on the row while it is ours).
  const std::string& lease_owner() const { return lease_owner_; }

  // Hands the operation to the keeper: its lease is renewed every
  // lease_renew_interval and its progress written at most every
  // progress_interval from now on.
  void StartKeeper();
  // Takes the operation back from the keeper (waiting for a write of it in
  // flight) and writes the last progress report. Called right before the
  // transaction that finishes the operation: a renewal racing with it would
  // see the finished row and report the lease as lost. The lease is still
  // valid for lease_duration, plenty for one commit. Idempotent.
  void StopKeeper();

  // The progress the keeper writes next: a step's phase and byte figures.
  // SetPhase names a step without figures of its own (retention, fsck, ...)
  // and keeps the last figures reported, so that a finished operation's
  // progress still says how many bytes it moved (GET /metrics sums them).
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
  friend class LeaseKeeper;
  // Writes new progress when progress_interval has passed and renews the
  // lease when due. Returns when it next wants to be called. Keeper thread.
  Clock::time_point KeepOnce(Clock::time_point now);
  // Applies the outcome of a write to the row (a lost lease cancels).
  void Note(const Status& status);

  db::Database& db_;
  LeaseKeeper& keeper_;
  const std::string operation_id_;
  const std::string lease_owner_;
  const KeeperTiming timing_;
  std::mutex mu_;
  std::string progress_json_;  // guarded by mu_; empty: nothing new
  // The last SetProgress's figures; guarded by mu_.
  struct Bytes {
    std::uint64_t done = 0;
    std::uint64_t total = 0;
    std::uint64_t transferred = 0;
  };
  std::optional<Bytes> last_bytes_;
  bool kept_ = false;                // executing thread only: handed to the keeper
  Clock::time_point next_progress_;  // keeper thread only
  Clock::time_point next_renew_;     // keeper thread only
};

class LeaseKeeper {
 public:
  LeaseKeeper() = default;
  ~LeaseKeeper();  // Stop()
  LeaseKeeper(const LeaseKeeper&) = delete;
  LeaseKeeper& operator=(const LeaseKeeper&) = delete;

  // Starts the thread at the calling thread's priority (Add starts it too
  // when it is not running). Idempotent.
  void Start();
  // Stops the thread; operations still added are no longer kept. Idempotent.
  void Stop();

  // REQUIRES: `run` stays alive until Remove(run) returned.
  void Add(RunningOperation& run);
  // After it returns, the keeper no longer touches `run`.
  void Remove(RunningOperation& run);

 private:
  void Loop();
  void StartLocked();

  std::mutex mu_;
  std::condition_variable cv_;
  // The operations kept, and when each is due next. Guarded by mu_.
  std::map<RunningOperation*, RunningOperation::Clock::time_point> runs_;
  RunningOperation* in_flight_ = nullptr;  // guarded by mu_; being kept now
  bool stopping_ = false;                  // guarded by mu_
  std::thread thread_;                     // guarded by mu_
};

}  // namespace kindling::reconcile
