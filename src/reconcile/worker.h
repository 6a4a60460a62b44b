// Worker: the component of `kindling serve` that holds volumes. It registers
// its server, heartbeats, keeps the volume images pinned to it in line with
// the database (ImageReconciler), and executes the operations assigned to it
// (OperationRunner).
//
// Coordination goes only through PostgreSQL, so workers may be threads of one
// process (tests) or separate processes on separate hosts:
//   - operations: woken by NOTIFY kindling_operations within a second, plus a
//     periodic sweep; claimed with FOR UPDATE SKIP LOCKED (db::ClaimNextOperation);
//     the schema keeps one in-flight operation per volume; a lease (owner =
//     a fencing token drawn for that one claim) is renewed while working by
//     the worker's keeper thread (RunningOperation, LeaseKeeper), and an
//     execution whose lease was taken over stops and leaves the row alone. A
//     claim skips operations on volumes an execution of this process still
//     works on (claims pass one gate, ExecutingVolumes), so an operation
//     re-queued from under an execution that outlived its lease (a database
//     stall) is not run again here until that execution has wound down.
//   - images: <state_dir>/volumes/<volume_id>.img (see image_reconciler.h
//     and operation_runner.h for what happens to them). The heartbeat
//     reports the worker component degraded when it cannot work at all (no
//     mkfs.ext4, volumes directory not writable); one volume's problem (an
//     image too large to create) is that volume's, not the worker's.
//
//   - workloads (with a VMM, WorkerOptions::vmm): a WorkloadReconciler runs
//     the instances pinned to this server, woken by NOTIFY kindling_workloads
//     "<server_id>:..." and every sweep interval; at start it recovers what a
//     killed predecessor ran, at Stop it stops every VM cleanly. Backups,
//     restores and moves asked with stop_workload stop the workload on their
//     volume first and start it again after (operation_workloads.h); live
//     backups pause it for the reflink clone only (PauseAround);
//     restores and moves asked with validate boot the verify mode on the
//     new image before it replaces the old one (image_validator.h).
//
// Component status: upserts server_component_statuses 'worker' with metadata
// {"runtime": <runtime>, "instance_id", "dsn_sha256", "images",
// "volume_filesystem", "volume_snapshots" (a clone works in the volumes
// directory, probed at Register), "live_backups" (that, and a VMM)};
// live_backups lets the API queue backups of running workloads; restore/move
// eligibility requires a non-empty runtime (see Leader and
// ListRestoreTargets), deploying an image requires it in "images".
//
// Thread-safety: Start/Stop/Abandon from one controlling thread; the step
// functions (RunNextOperation, ...) are thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"
#include "common/thread_priority.h"
#include "db/database.h"
#include "db/operations.h"
#include "engine/snapshots.h"
#include "reconcile/busy_volumes.h"
#include "reconcile/image_quarantine.h"
#include "reconcile/image_reconciler.h"
#include "reconcile/image_validator.h"
#include "reconcile/operation_runner.h"
#include "reconcile/operation_workloads.h"
#include "reconcile/running_operation.h"
#include "reconcile/store_provider.h"
#include "reconcile/workload_reconciler.h"
#include "runtime/vmm.h"

namespace kindling::reconcile {

inline constexpr char kWorkerComponent[] = "worker";
inline constexpr char kDefaultRuntime[] = "sparse-image";

struct WorkerOptions {
  std::string server_id;  // REQUIRED: the host's stable server-id (a UUID)
  std::string hostname;   // empty: gethostname()
  std::string internal_ip = "127.0.0.1";
  std::vector<std::string> enabled_components = {kWorkerComponent};
  std::filesystem::path state_dir;  // REQUIRED: volumes/ lives here
  // metadata.runtime of the worker component. Any non-empty name counts as
  // able to hold volumes.
  std::string runtime = kDefaultRuntime;
  // metadata.dsn_sha256: digest of the DSN this process uses
  // (service::DsnDigest), so `kindling admin validate` sees hosts whose DSN
  // files differ. Empty: not reported.
  std::string dsn_sha256;

  std::chrono::milliseconds heartbeat_interval{10'000};
  // Claim sweep and image reconcile period (NOTIFY wakes claims sooner).
  std::chrono::milliseconds sweep_interval{2'000};
  std::chrono::milliseconds lease_duration{15'000};
  std::chrono::milliseconds lease_renew_interval{5'000};
  // Progress is written to the operation row at most this often.
  std::chrono::milliseconds progress_interval{500};
  int max_concurrent_operations = 2;
  int engine_threads = 0;  // 0: the engine's default
  // Executor threads (and the engine threads and tools they start) run at
  // this priority, so backups and restores take the CPU and disk left over
  // by the API, heartbeats and the listener of the same host; their leases
  // are kept by a thread at the priority of the one that called Start. When
  // it cannot be set (a priority above the process's, without the
  // privilege), each executor logs a warning and runs at the priority it has.
  ThreadPriority operation_priority{.nice = 19, .io_level = 7};
  // LISTEN for wake-ups and config changes (off: sweeps only).
  bool listen = true;
  std::string mkfs_tool = "mkfs.ext4";
  std::string e2fsck_tool = "e2fsck";
  // Quarantine (image_reconciler.h): how long replaced copies and images of
  // deleted volumes are kept.
  std::chrono::seconds quarantine_grace{3600};
  std::chrono::seconds quarantine_retention{7 * 24 * 3600};
  // How often the current store's damage records are brought into the
  // backup rows (backup_damage.h), besides after restores, verifies and
  // healing backups.
  std::chrono::milliseconds damage_sync_interval{60'000};
  // Wall clock for quarantine purge times (tests inject one).
  std::function<std::chrono::system_clock::time_point()> now = [] {
    return std::chrono::system_clock::now();
  };
  // Workloads (workload_reconciler.h): with a VMM the worker runs the
  // deployments' instances pinned to it, and its metadata reports the VMM's
  // runtime (instead of `runtime`) and the images it can boot ("images").
  // Null: no workloads. REQUIRES: outlives the worker.
  vmm::Vmm* vmm = nullptr;
  GuestImageCatalogue images{};
  // Test seam: ImageReconcilerOptions::before_image_action.
  std::function<void(std::string_view action, const std::string& id)> before_image_action{};
};

class Worker {
 public:
  // REQUIRES: `db` and `stores` outlive the worker.
  Worker(db::Database& db, BackupStoreProvider& stores, WorkerOptions options);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Registers, removes temp files and interrupted quarantine entries a killed
  // process left, heartbeats, then starts the heartbeat, image reconcile
  // (first pass at once), listener and executor threads.
  [[nodiscard]] Status Start();
  // Graceful stop: operations in flight are cancelled and handed back as
  // pending (same server), so a restarted worker resumes them at once.
  void Stop();
  // Test seam for a crash: threads stop and in-flight work is dropped
  // without touching any row, like SIGKILL (leases simply expire).
  void Abandon();

  // Steps the threads run; public for tests and tools.
  [[nodiscard]] Status Register();
  [[nodiscard]] Status HeartbeatOnce();
  [[nodiscard]] Status ReconcileImagesOnce();
  // Claims and executes one operation; false when there was none.
  [[nodiscard]] Result<bool> RunNextOperation();
  // Makes idle executors look for work now.
  void Wake();

  const std::string& server_id() const { return options_.server_id; }
  // This process's id (new per start), reported in the worker component's
  // metadata. Leases are owned by per-claim tokens, not by it.
  const std::string& instance_id() const { return instance_id_; }
  std::filesystem::path ImageOf(const std::string& volume_id) const;
  ImageQuarantine& quarantine() { return quarantine_; }

 private:
  void HeartbeatLoop();
  void ReconcileLoop();
  void ListenLoop();
  void ExecutorLoop();
  void WorkloadLoop();
  void StopThreads();
  // Executes `op` and records the outcome unless the lease was lost or the
  // worker stopped. REQUIRES: the claim marked op's volume in executing_;
  // Execute releases it.
  void Execute(const db::Operation& op, const std::string& lease_owner);

  db::Database& db_;
  BackupStoreProvider& stores_;
  WorkerOptions options_;
  const std::string instance_id_;
  engine::SnapshotSupport snapshots_;  // probed by Register
  BusyVolumes busy_;
  // The volumes of the operations this process is executing (a subset of
  // busy_'s marks), which its claims skip; claims pass its gate.
  ExecutingVolumes executing_;
  // Renews the leases of the running operations, at the priority of the
  // thread that called Start (not the operations').
  LeaseKeeper keeper_;
  ImageQuarantine quarantine_;
  ImageReconciler reconciler_;
  std::unique_ptr<ImageValidator> validator_;  // with options_.vmm
  OperationRunner runner_;
  std::unique_ptr<WorkloadReconciler> workloads_;            // with options_.vmm
  std::unique_ptr<OperationWorkloads> operation_workloads_;  // with workloads_

  std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;                // guarded by mu_
  bool abandoned_ = false;               // guarded by mu_
  std::uint64_t wake_generation_ = 0;    // guarded by mu_
  std::set<RunningOperation*> running_;  // guarded by mu_
  std::vector<std::thread> threads_;
};

}  // namespace kindling::reconcile
