#include "reconcile/worker.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "common/extents.h"
#include "common/ids.h"
#include "db/notifications.h"
#include "db/servers.h"
#include "db/settings.h"
#include "reconcile/volume_images.h"

namespace kindling::reconcile {
namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

// The current store's chunk size, so digests of quarantined images compare
// with backups' image_sha256; the engine's default without a store.
std::uint32_t StoreChunkSize(BackupStoreProvider& stores) {
  auto store = stores.Get();
  if (!store) return 4u << 20;
  return (*store)->repository->keys().default_chunk_size;
}

std::string LocalHostname() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "localhost";
  return name;
}

}  // namespace

Worker::Worker(db::Database& db, BackupStoreProvider& stores, WorkerOptions options)
    : db_(db),
      stores_(stores),
      options_(std::move(options)),
      instance_id_(NewUuidV4()),
      quarantine_(options_.state_dir),
      reconciler_(
          db, busy_, quarantine_,
          ImageReconcilerOptions{.server_id = options_.server_id,
                                 .state_dir = options_.state_dir,
                                 .mkfs_tool = options_.mkfs_tool,
                                 .quarantine_grace = options_.quarantine_grace,
                                 .quarantine_retention = options_.quarantine_retention,
                                 .digest_chunk_size = [&stores] { return StoreChunkSize(stores); },
                                 .now = options_.now,
                                 .before_image_action = options_.before_image_action}),
      validator_(options_.vmm == nullptr
                     ? nullptr
                     : std::make_unique<ImageValidator>(
                           db, *options_.vmm,
                           ImageValidatorOptions{.state_dir = options_.state_dir,
                                                 .images = options_.images})),
      runner_(db, stores, busy_, quarantine_,
              OperationRunnerOptions{.server_id = options_.server_id,
                                     .state_dir = options_.state_dir,
                                     .lease_duration = options_.lease_duration,
                                     .engine_threads = options_.engine_threads,
                                     .e2fsck_tool = options_.e2fsck_tool,
                                     .quarantine_grace = options_.quarantine_grace,
                                     .quarantine_retention = options_.quarantine_retention,
                                     .validator = validator_.get(),
                                     .pause_workload = [this](const std::string& volume_id,
                                                              const std::function<Status()>& take)
                                         -> Result<std::chrono::milliseconds> {
                                       if (!workloads_) {
                                         KINDLING_RETURN_IF_ERROR(take());
                                         return std::chrono::milliseconds(0);
                                       }
                                       KINDLING_ASSIGN_OR_RETURN(
                                           PauseOutcome outcome,
                                           workloads_->PauseAround(volume_id, take));
                                       return outcome.paused_for;
                                     },
                                     .now = options_.now}) {
  if (options_.hostname.empty()) options_.hostname = LocalHostname();
  if (options_.vmm != nullptr) {
    workloads_ = std::make_unique<WorkloadReconciler>(
        db, *options_.vmm,
        WorkloadReconcilerOptions{.server_id = options_.server_id,
                                  .state_dir = options_.state_dir,
                                  .images = options_.images,
                                  .busy = &busy_,
                                  .wake = [this] { Wake(); }});
    operation_workloads_ =
        std::make_unique<OperationWorkloads>(db, *workloads_, OperationWorkloadsOptions{});
  }
}

Worker::~Worker() { Stop(); }

std::filesystem::path Worker::ImageOf(const std::string& volume_id) const {
  return ImagePath(options_.state_dir, volume_id);
}

Status Worker::Start() {
  KINDLING_RETURN_IF_ERROR(Register());
  // Nothing runs yet: what a killed process left half-written goes (restores
  // staged under restoring/ are redone from their backup when retried).
  RemoveStaleTempFiles(VolumesDir(options_.state_dir));
  std::error_code ec;
  std::filesystem::remove_all(options_.state_dir / "restoring", ec);
  quarantine_.RemoveInterruptedTakes();
  KINDLING_RETURN_IF_ERROR(HeartbeatOnce());
  if (workloads_) {
    // What a killed predecessor ran is recorded lost (and queued again)
    // before the first pass.
    if (auto recovered = workloads_->RecoverAfterRestart(); !recovered)
      spdlog::warn("worker: recovering workloads: {}", recovered.error().message());
  }
  {
    std::lock_guard lock(mu_);
    stopping_ = false;
    abandoned_ = false;
  }
  // From this (controlling) thread: at its priority, not the operations'.
  keeper_.Start();
  threads_.emplace_back([this] { HeartbeatLoop(); });
  threads_.emplace_back([this] { ReconcileLoop(); });
  if (options_.listen) threads_.emplace_back([this] { ListenLoop(); });
  for (int i = 0; i < std::max(1, options_.max_concurrent_operations); ++i)
    threads_.emplace_back([this] { ExecutorLoop(); });
  if (workloads_) threads_.emplace_back([this] { WorkloadLoop(); });
  spdlog::info("worker {} started (instance {}, state {}, up to {} operation(s) at nice {})",
               options_.server_id, instance_id_, options_.state_dir.string(),
               std::max(1, options_.max_concurrent_operations), options_.operation_priority.nice);
  return OkStatus();
}

void Worker::Stop() {
  StopThreads();
  if (workloads_) workloads_->Shutdown();
}

void Worker::Abandon() {
  {
    std::lock_guard lock(mu_);
    abandoned_ = true;
  }
  StopThreads();
  if (workloads_) workloads_->Abandon();
}

void Worker::StopThreads() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    for (RunningOperation* run : running_) run->cancel = true;
  }
  wake_.notify_all();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
  keeper_.Stop();  // after the executors: they have taken their operations back
}

void Worker::Wake() {
  {
    std::lock_guard lock(mu_);
    ++wake_generation_;
  }
  wake_.notify_all();
}

Status Worker::Register() {
  if (options_.server_id.empty() || options_.state_dir.empty())
    return InvalidArgument("worker needs a server id and a state directory");
  std::error_code ec;
  std::filesystem::create_directories(VolumesDir(options_.state_dir), ec);
  if (ec) return IoError("create " + VolumesDir(options_.state_dir).string() + ": " + ec.message());
  // Whether backups here can read reflink snapshots (and so back up running
  // workloads): the heartbeat tells the control plane.
  if (auto probed = engine::ProbeSnapshotSupport(VolumesDir(options_.state_dir), DefaultExtentFs());
      probed) {
    snapshots_ = *probed;
  } else {
    spdlog::warn("worker: cannot tell whether {} takes reflink snapshots: {}",
                 VolumesDir(options_.state_dir).string(), probed.error().message());
  }
  spdlog::info(
      "worker: volumes on {} ({})", snapshots_.filesystem.empty() ? "?" : snapshots_.filesystem,
      snapshots_.reflink ? "reflink snapshots: changed-block and live backups"
                         : "no reflink: backups read whole images, workloads stop for them");
  return db_.Transact([&](db::Tx& tx) -> Status {
    auto server = db::RegisterServer(
        tx, db::ServerRegistration{.id = options_.server_id,
                                   .hostname = options_.hostname,
                                   .internal_ip = options_.internal_ip,
                                   .enabled_components = options_.enabled_components});
    if (!server) return std::unexpected(server.error());
    return OkStatus();
  });
}

Status Worker::HeartbeatOnce() {
  // A worker that cannot find its tools or write its volumes directory is
  // alive but should not be chosen for restores.
  std::string problem;
  if (auto mkfs = FindTool(options_.mkfs_tool); !mkfs) problem = mkfs.error().message();
  if (::access(VolumesDir(options_.state_dir).c_str(), W_OK) != 0)
    problem = VolumesDir(options_.state_dir).string() + " is not writable";
  json metadata = {
      {"runtime", options_.vmm != nullptr ? std::string(vmm::RuntimeName(options_.vmm->runtime()))
                                          : options_.runtime},
      {"instance_id", instance_id_}};
  if (options_.vmm != nullptr) metadata["images"] = ImageNames(options_.images);
  metadata["volume_filesystem"] = snapshots_.filesystem;
  metadata["volume_snapshots"] = snapshots_.reflink;
  // A running workload's volume can be backed up with the VM paused for the
  // clone only (control/volume_service.h).
  metadata["live_backups"] = snapshots_.reflink && options_.vmm != nullptr;
  if (!options_.dsn_sha256.empty()) metadata["dsn_sha256"] = options_.dsn_sha256;
  return db_.Transact([&](db::Tx& tx) -> Status {
    auto beat = db::Heartbeat(tx, options_.server_id);
    if (!beat && beat.error().is_not_found()) {
      // The row vanished (database restored from an older snapshot):
      // register again with the same id.
      auto registered = db::RegisterServer(
          tx, db::ServerRegistration{.id = options_.server_id,
                                     .hostname = options_.hostname,
                                     .internal_ip = options_.internal_ip,
                                     .enabled_components = options_.enabled_components});
      if (!registered) return std::unexpected(registered.error());
    } else if (!beat) {
      return std::unexpected(beat.error());
    }
    return db::UpsertComponentStatus(
        tx, db::ComponentStatusUpdate{
                .server_id = options_.server_id,
                .component = kWorkerComponent,
                .status = problem.empty() ? db::ComponentHealth::kHealthy
                                          : db::ComponentHealth::kDegraded,
                .error_message = problem.empty() ? std::nullopt : std::optional(problem),
                .metadata_json = metadata.dump()});
  });
}

Status Worker::ReconcileImagesOnce() { return reconciler_.RunOnce(); }

void Worker::HeartbeatLoop() {
  auto next_heartbeat = Clock::now() + options_.heartbeat_interval;
  std::unique_lock lock(mu_);
  while (!stopping_) {
    // Wake() notifies too: only the deadline counts here.
    wake_.wait_until(lock, next_heartbeat);
    if (stopping_) break;
    if (Clock::now() < next_heartbeat) continue;
    next_heartbeat = Clock::now() + options_.heartbeat_interval;
    lock.unlock();
    if (auto beat = HeartbeatOnce(); !beat)
      spdlog::warn("worker: heartbeat: {}", beat.error().message());
    lock.lock();
  }
}

// Apart from the heartbeat: digesting a large quarantined image or listing a
// slow store must never make the leader think this worker is dead.
void Worker::ReconcileLoop() {
  auto next_damage_sync = Clock::now();
  std::unique_lock lock(mu_);
  while (!stopping_) {
    lock.unlock();
    if (auto reconciled = ReconcileImagesOnce(); !reconciled)
      spdlog::warn("worker: image reconcile: {}", reconciled.error().message());
    if (Clock::now() >= next_damage_sync) {
      // Damage recorded by other hosts or the offline CLI shows up here.
      next_damage_sync = Clock::now() + options_.damage_sync_interval;
      if (auto store = stores_.Get(); store) runner_.SyncDamageQuietly(**store);
    }
    lock.lock();
    if (stopping_) break;
    wake_.wait_for(lock, options_.sweep_interval);
  }
}

void Worker::ListenLoop() {
  std::unique_ptr<db::Listener> listener;
  const std::string prefix = options_.server_id + ":";
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
    }
    if (!listener) {
      auto opened = db::Listener::Open(
          db_.options().dsn, {db::kOperationsChannel, db::kConfigChannel, db::kWorkloadsChannel});
      if (!opened) {
        spdlog::warn("worker: listen: {}", opened.error().message());
        std::unique_lock lock(mu_);
        wake_.wait_for(lock, std::chrono::seconds(1), [this] { return stopping_; });
        continue;
      }
      listener = std::move(*opened);
      // Notifications may have been missed while disconnected.
      stores_.Invalidate();
      Wake();
    }
    auto notes = listener->Wait(std::chrono::milliseconds(250));
    if (!notes) {
      spdlog::warn("worker: listen: {}", notes.error().message());
      listener.reset();
      continue;
    }
    bool wake = false;
    for (const db::Notification& note : *notes) {
      if (note.channel == db::kConfigChannel) {
        stores_.Invalidate();
      } else if (note.payload.starts_with(prefix)) {
        wake = true;
      }
    }
    if (wake) Wake();
  }
}

void Worker::ExecutorLoop() {
  if (auto lowered = SetThisThreadPriority(options_.operation_priority); !lowered) {
    spdlog::warn("worker: operations run at normal priority: {}", lowered.error().message());
  }
  std::uint64_t seen = 0;
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      seen = wake_generation_;
    }
    auto ran = RunNextOperation();
    if (!ran) spdlog::warn("worker: claim: {}", ran.error().message());
    if (ran && *ran) continue;  // there may be more
    std::unique_lock lock(mu_);
    wake_.wait_for(lock, options_.sweep_interval,
                   [&] { return stopping_ || wake_generation_ != seen; });
  }
}

void Worker::WorkloadLoop() {
  std::uint64_t seen = 0;
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      seen = wake_generation_;
    }
    if (auto pass = workloads_->ReconcileOnce(); !pass)
      spdlog::warn("worker: workloads: {}", pass.error().message());
    std::unique_lock lock(mu_);
    wake_.wait_for(lock, options_.sweep_interval,
                   [&] { return stopping_ || wake_generation_ != seen; });
  }
}

Result<bool> Worker::RunNextOperation() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return false;
  }
  // A fencing token for this claim alone: an execution of ours that outlived
  // its lease (a database stall) holds another one, so none of its writes
  // can land on this claim's row. Volumes an execution of ours still works
  // on are skipped: the operation the sweep re-queued from under such an
  // execution waits until it has wound down, so one process never runs two
  // operations (or two attempts of one) on a volume at once. The skip list
  // is read, used and extended under executing_'s gate, so it is never older
  // than another claim's mark. (Not every busy volume: a VM holding its
  // volume or a reconciler pass must not keep an operation, e.g. one that
  // stops that VM first, from being claimed.)
  const std::string lease_owner = NewUuidV4();
  KINDLING_ASSIGN_OR_RETURN(std::optional<db::Operation> claimed,
                            executing_.Claim(
                                [&](const std::vector<std::string>& executing) {
                                  return db_.Transact([&](db::Tx& tx) {
                                    return db::ClaimNextOperation(
                                        tx, options_.server_id, lease_owner,
                                        options_.lease_duration, executing);
                                  });
                                },
                                [](const db::Operation& op) { return op.project_volume_id; }));
  if (!claimed) return false;
  Execute(*claimed, lease_owner);
  return true;
}

void Worker::Execute(const db::Operation& op, const std::string& lease_owner) {
  busy_.Mark(op.project_volume_id);
  RunningOperation run(db_, keeper_, op.id, lease_owner,
                       KeeperTiming{.lease_duration = options_.lease_duration,
                                    .lease_renew_interval = options_.lease_renew_interval,
                                    .progress_interval = options_.progress_interval});
  {
    std::lock_guard lock(mu_);
    running_.insert(&run);
    if (stopping_) run.cancel = true;
  }
  run.StartKeeper();
  spdlog::info("worker: running {} {} on volume {} (attempt {})", db::Name(op.kind), op.id,
               op.project_volume_id, op.attempts);
  db::Operation attempt = op;
  Status outcome = OkStatus();
  if (operation_workloads_) outcome = operation_workloads_->BeforeOperation(attempt, lease_owner);
  if (outcome) outcome = runner_.Execute(run, attempt);
  run.StopKeeper();
  StopState stop;
  {
    std::lock_guard lock(mu_);
    stop = StopState{.stopping = stopping_, .abandoned = abandoned_};
  }
  runner_.RecordOutcome(run, attempt, outcome, stop);
  // Taken over (the sweep re-queued it, maybe to this very process): the
  // attempt holding the lease now does what follows the operation.
  const bool lease_lost =
      run.lease_lost ||
      (!outcome && outcome.error().kind() == ErrorKind::kCancelled && !stop.stopping);
  {
    std::lock_guard lock(mu_);
    running_.erase(&run);
  }
  busy_.Release(op.project_volume_id);
  executing_.Release(op.project_volume_id);
  // With the volume idle here, a workload stopped for the operation can
  // start again (on this server or the volume's new one).
  if (operation_workloads_ && !stop.abandoned && !lease_lost)
    operation_workloads_->AfterOperation(op.id);
}

}  // namespace kindling::reconcile
