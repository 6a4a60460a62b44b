// Leader: the cluster-wide sweeps, run by whichever process holds the
// leader advisory lock (db::SessionLock on a dedicated connection, so a
// crashed leader loses it and any other process takes over).
//
// Each sweep:
//   1. marks `active` servers silent for `silent_after` as dead;
//   1b. marks `draining` servers with no pending or running operation as
//      `drained` (audited server.drained): an operator's drain is over once
//      the server's work is;
//   2. records the workloads of dead servers lost: each live VM (booting,
//      running, stopping) of a dead server, in one transaction per VM with
//      the volume row locked first (db::EndLostVm), becomes crashed with
//      exit_reason lost; its instance failed ("the worker <hostname> (<id>)
//      died while it ran"); its volume lets go (attached_vm_id NULL) and
//      becomes `unavailable` with last_error kDeadWorkerPrefix... when its
//      image is on that server (the normal case: nobody else can run it),
//      detached otherwise; the deployment, when it has no other live
//      instance, gets status stopped with that error and keeps its desired
//      state, so that the worker, back with the image, makes the volume
//      detached and queues the deployment again (workload_reconciler.h) and
//      an operator's start runs it wherever the volume is usable. Audited as
//      workload.lost; announced on kindling_workloads (the edge drops the
//      route). With the defaults (silent_after 30 s, a sweep every 2 s;
//      `kindling serve` keeps both) this happens at most 32 s after the
//      worker's last heartbeat, which came before its death: within 60 s of
//      the death, unless the leader itself is in its start grace;
//   3. expired leases (a worker died or hung): the operation is re-queued up
//      to `max_attempts` claims, otherwise failed with a clear error. Backup,
//      repair and a move's backup phase go back to the volume's pinned server
//      (failed at once when that server is dead: the image lives there); an
//      adoption stays on the server holding the quarantined image (failed
//      when it is dead); restore, a move's restore phase and verify go to an
//      eligible worker, another one than the server that dropped the lease
//      when possible;
//   4. pending operations nobody picks up (assigned to a server that is not
//      active, or pending longer than `stuck_pending_after`) get the same
//      treatment;
//   5. every `schedule_interval`, the volumes' backup schedules
//      (control/backup_schedule.h): a volume whose backup_next_at has come
//      gets a 'scheduled' backup when it is idle (detached or available,
//      nothing in flight, its server active) or attached to a running
//      workload on a server that takes live backups (then queued live:
//      control/volume_service.h), and backup_next_at moves to
//      its first slot after now in the same transaction, row locked, only if
//      it still holds the slot this sweep read: each slot runs once however
//      many processes sweep. A leader back after downtime queues one backup
//      for all the slots it missed (the catch-up) and moves on. A busy
//      volume is tried again every sweep until its slot's window closes;
//      then the slot is missed (audited volume.backup.schedule_missed, the
//      reason in its details). A volume whose schedule has no slot yet (set
//      in SQL) gets one. (The reference stores schedules but never runs
//      them.)
// Every failure, loss or schedule it records is audited (user_id NULL).
//
// Start grace. A process that becomes the leader cannot tell a dead server
// from one whose last heartbeat it simply has not seen yet: after the
// database was restored from an older snapshot every server's
// last_heartbeat_at is old and every running operation's lease expired,
// although the workers are about to heartbeat and take their work back. So
// for max(start_grace, silent_after) after it starts leading (by the injected
// clock), a sweep marks no server dead, records no workload lost (step 2
// does not run) and fails no operation. Expired
// leases and stuck operations are re-queued as usual, except that a lease
// lost then does not count against max_attempts, and where the usual rules
// would fail an operation, an expired lease goes back to the server that
// held it (its worker claims it again when it is back) and a pending
// operation is left as it is (`deferred`). When the grace is over the usual
// rules apply to whoever has not heartbeated by then. A heartbeat revives a
// server as always.
//
// `on_leading` runs, on a thread of its own, each time this process starts
// leading (serve wires the backup rescan there, control/backup_rescan.h, so a
// restored database gets back the backups made after its snapshot).
//
// Thread-safety: Start/Stop from one thread; SweepOnce is thread-safe but is
// meant to run in one process at a time (the lock's job).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"
#include "db/database.h"
#include "db/servers.h"

namespace kindling::reconcile {

struct LeaderOptions {
  std::chrono::milliseconds sweep_interval{2'000};
  std::chrono::seconds silent_after{30};
  std::chrono::seconds stuck_pending_after{120};
  // Claims an operation gets before a lost lease fails it (a move's hand-off
  // to its target counts as one).
  int max_attempts = 3;
  db::WorkerEligibility eligibility{};
  std::chrono::milliseconds schedule_interval{60'000};
  // Wall clock for schedule decisions and the start grace (tests inject one).
  std::function<std::chrono::system_clock::time_point()> now = [] {
    return std::chrono::system_clock::now();
  };
  // The start grace is max(start_grace, silent_after).
  std::chrono::seconds start_grace{0};
  // Called on a thread of its own when this process starts leading (not
  // again while a previous call runs). Stop waits for it: keep it bounded.
  std::function<void()> on_leading;
};

struct SweepReport {
  std::vector<std::string> servers_marked_dead;
  std::vector<std::string> servers_drained;
  std::vector<std::string> requeued;        // operation ids
  std::vector<std::string> failed;          // operation ids
  std::vector<std::string> scheduled;       // volume ids that got a scheduled backup
  std::vector<std::string> missed;          // volume ids whose slot's window closed busy
  std::vector<std::string> workloads_lost;  // VM ids recorded lost (step 2)
  // Operations left as they are until the start grace is over.
  std::vector<std::string> deferred;
  bool in_start_grace = false;
};

// Workers a restore or move may go to: db::ListEligibleWorkers (active,
// recent heartbeat, healthy worker component, least loaded first) minus
// those that report no runtime (metadata.runtime must be non-empty: the
// reference's "VM runtime" rule for this project's image runtime).
[[nodiscard]] Result<std::vector<db::EligibleWorker>> ListRestoreTargets(
    db::Tx& tx, const db::WorkerEligibility& rules = {});

class Leader {
 public:
  // REQUIRES: `db` outlives the leader.
  Leader(db::Database& db, LeaderOptions options);
  ~Leader();
  Leader(const Leader&) = delete;
  Leader& operator=(const Leader&) = delete;

  // Starts the thread that tries to become leader every sweep_interval and
  // sweeps while it is.
  void Start();
  void Stop();
  bool is_leader() const { return is_leader_.load(); }

  // One sweep (without the lock: tests, and the loop while leader).
  // `with_schedules` also runs step 5.
  [[nodiscard]] Result<SweepReport> SweepOnce(bool with_schedules = true);

  // What the loop does when it takes the lock: the start grace begins now
  // (options.now) and on_leading starts. Public so tests can drive sweeps
  // through a start without the lock.
  void BeginLeading();
  // True from BeginLeading until the start grace is over.
  bool InStartGrace() const;

 private:
  void Loop();
  [[nodiscard]] Status EndLostWorkloads(SweepReport& report);
  [[nodiscard]] Status ScheduleBackups(SweepReport& report);

  db::Database& db_;
  LeaderOptions options_;
  std::atomic<bool> is_leader_{false};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // guarded by mu_
  // When this process last started leading; unset before.
  std::optional<std::chrono::system_clock::time_point> leading_since_;  // guarded by mu_
  std::thread thread_;
  std::thread on_leading_thread_;  // used by the controlling thread / the loop only
  std::atomic<bool> on_leading_running_{false};
};

}  // namespace kindling::reconcile
