// WorkloadReconciler: makes the workloads of one server (deployments'
// instances pinned to it, db/workloads.h) match the database, by booting and
// stopping microVMs through the VMM seam (runtime/vmm.h) with the project's
// volume image attached. The worker owns one and runs ReconcileOnce on its
// NOTIFY (kindling_workloads "<server_id>:...") and periodically.
//
// What a pass does, per live instance of this server:
//   pending, deployment current and desired running
//       -> start: in one transaction (volume row locked first) the volume must
//          be pinned here, not transitional or unavailable, with no operation
//          in flight and its image on disk, and no other live VM on it
//          (db::CreateVm's rule); else the instance stays pending for a later
//          pass. On success: vms row booting, instance starting, volume
//          attached (attached_vm_id), deployment starting; then the VM boots.
//   pending, deployment stopped or superseded -> stopped (it never ran).
//   starting/running here, deployment stopped or superseded -> stop.
//   a VM here whose instance is no longer live in the database -> stop.
// A volume pinned to another server now (moved while the instance waited):
// the instance ends stopped and a pending one is queued there. No live or
// pinned volume, or an image this worker does not have: the instance and
// its deployment fail (it can never start here).
//
// Back from the dead. Before the instances, a pass takes back each volume
// pinned here that the leader made unavailable because this server was dead
// (last_error kDeadWorkerPrefix..., reconcile/leader.h), once the server is
// no longer dead (a heartbeat revived it) and the image is on disk (without
// it the image reconciler marks the volume missing): in one transaction the
// volume becomes detached with no last_error, and the current deployments
// desired running that the leader left stopped are queued here, as after an
// operation (RestartAfterOperation).
//
// Each VM this process runs has its own supervisor thread, which owns the
// VmInstance from Start to the end (the VMM calls block: WaitReady for the
// boot timeout, Stop for the stop timeout) and writes its instance's rows:
// ready (vm/instance/deployment running, address 127.0.0.1:<port>), boot
// failure or timeout (killed; vm crashed, instance and deployment failed,
// volume detached with last_error), a VM exiting on its own (the same, "the
// workload's VM exited: ..."), and stops (instance stopping, power button,
// then vm stopped with exit_reason powerdown or killed, instance stopped,
// volume detached; a VM the leader already recorded lost while this worker
// was cut off keeps the leader's rows). A pass only decides and signals, so
// it never waits on a VM and one slow boot delays no other instance; a
// thread per VM is cheap at the tens of VMs a host runs. No transaction is
// open while a VM call runs.
//
// Restarts. A stop that ends while the deployment is current and desired
// running (the worker stopping, an operator's start arriving during a stop)
// queues a new pending instance on the volume's server in the same
// transaction, so the workload comes back with the next pass of whichever
// worker holds the volume, without inferring it from history later. The same
// holds for instances a killed worker lost (RecoverAfterRestart). Crashes and
// boot failures are not restarted (a crashing guest would loop); an
// operator's start does that.
//
// Files: <state_dir>/vms/<vm_id>/ holds the VM's console.log, the VMM's
// control socket and log, and `pid` (the VMM process, so that a restarted
// worker can kill a VMM its predecessor left behind).
//
// Thread-safety: thread-safe. Passes run one at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "db/database.h"
#include "db/workloads.h"
#include "reconcile/busy_volumes.h"
#include "runtime/vmm.h"

namespace kindling::reconcile {

// A guest image a worker can boot: what a deployment's `image` names.
struct GuestImage {
  std::filesystem::path kernel{};     // vmlinux
  std::filesystem::path initramfs{};  // empty: none
  // The guest's kernel parameters; "<mount_parameter>=<volume mount path>"
  // is appended per VM.
  std::string cmdline{};
  std::string mount_parameter{};  // empty: the guest is not told
  std::uint16_t guest_port = 8080;
  // The kernel parameters of the image's one-shot verify mode (check the
  // volume's data, print canary::VerifyConsoleLine, power off), which
  // validates a restored image; empty: the image has none.
  std::string verify_cmdline{};
};
using GuestImageCatalogue = std::map<std::string, GuestImage>;

// The kernel command line of `image` for a volume mounted at `mount_path`:
// its serving parameters, or its verify mode's, with the mount parameter.
std::string GuestCmdline(const GuestImage& image, bool verify, const std::string& mount_path);

inline constexpr char kCanaryImage[] = "canary";

// {"canary": ...} from a directory with vmlinux and initramfs.cpio.gz (what
// the guest_image target builds). kNotFound when either is missing.
[[nodiscard]] Result<GuestImageCatalogue> CanaryCatalogue(const std::filesystem::path& guest_dir);

// The names, for the worker component's metadata ("images").
std::vector<std::string> ImageNames(const GuestImageCatalogue& catalogue);

// <state_dir>/vms/<vm_id>
std::filesystem::path VmDir(const std::filesystem::path& state_dir, const std::string& vm_id);

// What the last_error of a volume whose workload failed starts with (set by
// this reconciler, cleared by it when a VM is ready on the volume again).
inline constexpr char kWorkloadErrorPrefix[] = "the workload's VM ";

// What the last_error of a volume starts with when the leader found the
// worker that ran its workload dead while the volume's image is on that
// server (reconcile/leader.h): the volume is unavailable until that worker is
// back and sees the image (see the pass).
inline constexpr char kDeadWorkerPrefix[] = "the worker that ran its workload is dead: ";
// kDeadWorkerPrefix + what happened to `worker` ("<hostname> (<server id>)").
std::string DeadWorkerVolumeError(std::string_view worker);
bool IsDeadWorkerError(const std::optional<std::string>& last_error);

struct WorkloadReconcilerOptions {
  std::string server_id{};            // REQUIRED
  std::filesystem::path state_dir{};  // REQUIRED: volumes/ and vms/ live here
  GuestImageCatalogue images{};
  // When set: a VM marks its volume busy while it holds it, and an instance
  // whose volume is busy (an operation, the image reconciler) waits.
  BusyVolumes* busy = nullptr;
  // Called (from a supervisor thread) when a VM ended, so that the owner
  // runs a pass soon: an instance waiting for the volume may start now. It
  // must not run the pass itself.
  std::function<void()> wake{};
  // How often a supervisor looks at its VM (exit, stop requests).
  std::chrono::milliseconds poll_interval{200};
  // How long a supervisor keeps retrying a transaction the database refuses
  // as retryable (it is down) before it logs and gives up on that write.
  std::chrono::milliseconds db_retry_for{30'000};
};

// What StopForOperation did.
struct OperationStop {
  bool stopped = false;  // a VM of this worker held the volume and was stopped
  std::optional<std::string> instance_id{};
  std::optional<vmm::StopOutcome> outcome{};
  std::chrono::milliseconds elapsed{0};
};

// What PauseAround did.
struct PauseOutcome {
  bool paused = false;
  std::chrono::milliseconds paused_for{0};  // from the pause request to the resume's answer
};

class WorkloadReconciler {
 public:
  // REQUIRES: `db`, `vmm` and options.busy outlive the reconciler.
  WorkloadReconciler(db::Database& db, vmm::Vmm& vmm, WorkloadReconcilerOptions options);
  // Shutdown(), unless it or Abandon() ran.
  ~WorkloadReconciler();
  WorkloadReconciler(const WorkloadReconciler&) = delete;
  WorkloadReconciler& operator=(const WorkloadReconciler&) = delete;

  // At worker start, before the first pass: every starting, running or
  // stopping instance and every live VM of this server that this process
  // does not run was lost with a previous process. Its VMM, if still alive
  // (the pid file, checked against /proc/<pid>/cmdline naming the VM), is
  // killed; the vm becomes crashed with exit_reason lost, the instance
  // failed ("the worker restarted while it ran"), the volume detached with
  // last_error (db::EndLostVm), and a current deployment desired running
  // gets a new pending instance (status pending); others get status stopped.
  // Rows someone else ended meanwhile (the leader, when this server was
  // dead: see the pass for its volumes) are left as they are.
  [[nodiscard]] Status RecoverAfterRestart();

  // One pass (see above). Returns after deciding and signalling; VMs boot
  // and stop on their own threads. A no-op after Shutdown().
  [[nodiscard]] Status ReconcileOnce();

  // For a backup, restore or move with stop_workload: stops the VM of this
  // worker that holds `volume_id` (power button, killed after `timeout`) and
  // waits for it. The instance ends stopped with error "stopped for <why>",
  // the deployment keeps desired running with status stopped, the volume
  // detaches (a transitional status the operation set is kept). Nothing to
  // stop: stopped = false. Errors only for the database.
  [[nodiscard]] Result<OperationStop> StopForOperation(
      const std::string& volume_id, std::chrono::milliseconds timeout,
      std::string_view why = "an operation on its volume");

  // For a live backup (a reflink snapshot of a running workload's volume):
  // runs `take` with the VM of this worker that holds `volume_id` paused
  // (Pause, take, Resume), so that what `take` clones of the image is
  // crash-consistent, and returns how long the VM was paused. No VM of this
  // worker holds the volume: `take` runs alone (paused = false); a VM that
  // is stopping is waited for first (it may still write). The VM is not
  // stopped meanwhile: a stop waits for the resume. Errors: pausing failed
  // (take did not run), then take's own error, then resuming failed (tried
  // three times; logged as an error, the VM stays paused until an operator
  // or a stop deals with it).
  [[nodiscard]] Result<PauseOutcome> PauseAround(const std::string& volume_id,
                                                 const std::function<Status()>& take);

  // After that operation (call once its row is finished and the volume's
  // status settled, or the instance waits for a later pass): each current
  // deployment of the volume's project that is desired running, has status
  // stopped and no live instance gets a pending instance on the volume's
  // server (possibly another one, after a move); when that is this server a
  // pass runs at once. Returns the queued instances.
  [[nodiscard]] Result<std::vector<db::Instance>> RestartAfterOperation(
      const std::string& volume_id);

  // The worker stops: every VM is stopped cleanly, in parallel (each within
  // its deployment's stop timeout), instances end stopped with error "the
  // worker stopped", and deployments desired running get a pending instance
  // for the next start of a worker (see Restarts). Later passes do nothing.
  void Shutdown();

  // Test seam for a killed worker: supervisors end and their VMs are killed
  // without any row being written.
  void Abandon();

  // Instances this process runs a VM for (booting, running or stopping).
  std::vector<std::string> HeldInstances() const;

 private:
  struct Held;
  enum class StopReason : std::uint8_t { kDesired, kOperation, kWorkerStop };
  // A pass's decision about a pending instance.
  enum class StartOutcome : std::uint8_t { kStarted, kWaiting, kEnded };

  [[nodiscard]] Result<StartOutcome> TryStart(const db::Instance& instance,
                                              const db::Deployment& deployment,
                                              std::string& why_waiting);
  [[nodiscard]] Status EndPending(const db::Instance& instance, const db::Deployment& deployment);
  // The first step of a pass: volumes the leader made unavailable because
  // this server was dead (see above). REQUIRES: pass_mu_ held.
  [[nodiscard]] Status ReclaimAfterDeadWorker();
  void RequestStop(Held& held, StopReason reason, std::chrono::milliseconds timeout,
                   std::string why);
  void Supervise(const std::shared_ptr<Held>& held);
  // Stops the VM as held.stop asks and records how it ended.
  void StopAndRecord(Held& held, vmm::VmInstance& vm);
  // The VM failed: rows for the VM, instance, deployment (failed, `error`)
  // and volume (detached, last_error `volume_error`).
  void RecordFailure(Held& held, db::VmStatus vm_status, db::VmExit exit_reason,
                     const std::string& error, const std::string& volume_error);
  // Runs `fn` in a transaction, retrying while the database is unreachable
  // (up to db_retry_for); false when it gave up (logged).
  bool Write(const Held& held, std::string_view what, const std::function<Status(db::Tx&)>& fn);
  // The supervisor's end: busy mark released, `ended`, the owner woken.
  void Finish(Held& held);
  // Joins and forgets supervisors that ended. REQUIRES: pass_mu_ held.
  void ReapEnded();
  bool abandoned() const;
  // The VM of this process on the volume, described; empty when none.
  std::string HolderOf(const std::string& volume_id) const;

  db::Database& db_;
  vmm::Vmm& vmm_;
  const WorkloadReconcilerOptions options_;

  std::mutex pass_mu_;  // one pass (or recovery, stop lookup) at a time
  // Why each pending instance waits, logged when it changes. Guarded by
  // pass_mu_.
  std::map<std::string, std::string> waiting_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Held>> held_;  // by instance id; guarded by mu_
  bool shut_down_ = false;                             // guarded by mu_
  bool abandoned_ = false;                             // guarded by mu_
};

}  // namespace kindling::reconcile
