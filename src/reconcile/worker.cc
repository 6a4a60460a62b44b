#include "reconcile/worker.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "common/ids.h"
#include "crypto/sha256.h"
#include "db/audit.h"
#include "db/backups.h"
#include "db/notifications.h"
#include "db/servers.h"
#include "db/settings.h"
#include "db/volumes.h"
#include "engine/backup.h"
#include "engine/restore.h"
#include "reconcile/volume_images.h"
#include "repo/layout.h"

namespace kindling::reconcile {
namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

std::string LocalHostname() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "localhost";
  return name;
}

// A volume's status after an operation ends: unusable health makes it
// unavailable (reference), anything else returns it to detached.
db::VolumeStatus SettledStatus(db::VolumeHealth health) {
  return health == db::VolumeHealth::kMissing || health == db::VolumeHealth::kCorrupt
             ? db::VolumeStatus::kUnavailable
             : db::VolumeStatus::kDetached;
}

Status Audit(db::Tx& tx, const db::Operation& op, std::string_view outcome, const json& details) {
  json d = details;
  d["operation_id"] = op.id;
  if (op.backup_id) d["backup_id"] = *op.backup_id;
  auto id = db::InsertAuditEvent(
      tx, db::AuditEventInput{
              .action = "volume." + std::string(db::Name(op.kind)) + "." + std::string(outcome),
              .resource_type = "project_volume",
              .resource_id = op.project_volume_id,
              .details_json = d.dump()});
  if (!id) return std::unexpected(id.error());
  return OkStatus();
}

}  // namespace

// One claimed operation: its cancellation flag, the latest progress, and the
// thread that renews the lease and writes progress (so the engine's progress
// callback never waits on the database).
struct Worker::Running {
  std::string operation_id;
  engine::CancelFlag cancel{false};
  std::atomic<bool> lease_lost{false};
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;          // guarded by mu
  std::string progress_json;  // guarded by mu; empty: nothing new
  std::thread keeper;

  // Health found while executing (missing image, fsck verdict).
  std::optional<db::VolumeHealth> health;

  void SetProgress(const engine::Progress& p) {
    json j = {{"phase", std::string(p.phase)},
              {"bytes_done", p.bytes_done},
              {"bytes_total", p.bytes_total},
              {"bytes_transferred", p.bytes_transferred}};
    std::lock_guard lock(mu);
    progress_json = j.dump();
  }
  // Called right before the transaction that finishes the operation: a
  // renewal racing with it would see the finished row and report the lease
  // as lost. The lease is still valid for lease_duration, plenty for one
  // commit.
  void StopKeeper() {
    {
      std::lock_guard lock(mu);
      done = true;
    }
    cv.notify_all();
    if (keeper.joinable()) keeper.join();
  }
  void SetPhase(std::string_view phase) {
    std::lock_guard lock(mu);
    progress_json = json{{"phase", std::string(phase)}}.dump();
  }
};

Worker::Worker(db::Database& db, BackupStoreProvider& stores, WorkerOptions options)
    : db_(db), stores_(stores), options_(std::move(options)), instance_id_(NewUuidV4()) {
  if (options_.hostname.empty()) options_.hostname = LocalHostname();
}

Worker::~Worker() { Stop(); }

std::filesystem::path Worker::ImageOf(const std::string& volume_id) const {
  return ImagePath(options_.state_dir, volume_id);
}

Status Worker::Start() {
  KINDLING_RETURN_IF_ERROR(Register());
  RemoveStaleTempFiles(VolumesDir(options_.state_dir));
  if (auto reconciled = ReconcileImagesOnce(); !reconciled)
    spdlog::warn("worker: image reconcile: {}", reconciled.error().message());
  KINDLING_RETURN_IF_ERROR(HeartbeatOnce());
  {
    std::lock_guard lock(mu_);
    stopping_ = false;
    abandoned_ = false;
  }
  threads_.emplace_back([this] { HeartbeatLoop(); });
  if (options_.listen) threads_.emplace_back([this] { ListenLoop(); });
  for (int i = 0; i < std::max(1, options_.max_concurrent_operations); ++i)
    threads_.emplace_back([this] { ExecutorLoop(); });
  spdlog::info("worker {} started (instance {}, state {})", options_.server_id, instance_id_,
               options_.state_dir.string());
  return OkStatus();
}

void Worker::Stop() { StopThreads(); }

void Worker::Abandon() {
  {
    std::lock_guard lock(mu_);
    abandoned_ = true;
  }
  StopThreads();
}

void Worker::StopThreads() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    for (Running* run : running_) run->cancel = true;
  }
  wake_.notify_all();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
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
  {
    std::lock_guard lock(mu_);
    if (problem.empty()) problem = degraded_reason_;
  }
  const json metadata = {{"runtime", options_.runtime}, {"instance_id", instance_id_}};
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

bool Worker::MarkBusy(const std::string& volume_id) {
  std::lock_guard lock(mu_);
  return busy_volumes_.insert(volume_id).second;
}

void Worker::MarkIdle(const std::string& volume_id) {
  std::lock_guard lock(mu_);
  busy_volumes_.erase(volume_id);
}

Status Worker::ReconcileImagesOnce() {
  KINDLING_ASSIGN_OR_RETURN(std::vector<db::Volume> pinned, db_.Transact([&](db::Tx& tx) {
    return db::ListVolumes(tx, db::VolumeFilter{.server_id = options_.server_id});
  }));
  for (const db::Volume& volume : pinned) {
    if (volume.deleted_at || db::IsTransitional(volume.status)) continue;
    const std::filesystem::path image = ImageOf(volume.id);
    std::error_code ec;
    if (std::filesystem::exists(image, ec)) continue;
    if (!MarkBusy(volume.id)) continue;
    if (volume.health == db::VolumeHealth::kUnknown) {
      auto tool = FindTool(options_.mkfs_tool);
      Status created =
          tool ? CreateImage(image, volume.size_gb, *tool) : Status(std::unexpected(tool.error()));
      if (created) {
        spdlog::info("worker: created image for volume {} ({} GiB)", volume.id, volume.size_gb);
        auto updated = db_.Transact([&](db::Tx& tx) {
          return db::UpdateVolumeState(tx, volume.id,
                                       db::VolumeStateUpdate{.health = db::VolumeHealth::kHealthy});
        });
        if (!updated) spdlog::warn("worker: volume {}: {}", volume.id, updated.error().message());
      } else {
        spdlog::warn("worker: create image for volume {}: {}", volume.id,
                     created.error().message());
        std::lock_guard lock(mu_);
        degraded_reason_ = "cannot create volume images: " + created.error().message();
      }
    } else if (volume.health != db::VolumeHealth::kMissing) {
      // It had data once: a blank image would hide the loss.
      const std::string error = "volume image missing on server " + options_.server_id;
      spdlog::error("worker: volume {}: {}", volume.id, error);
      auto updated = db_.Transact([&](db::Tx& tx) {
        return db::UpdateVolumeState(
            tx, volume.id,
            db::VolumeStateUpdate{
                .status = db::VolumeStatus::kUnavailable,
                .health = db::VolumeHealth::kMissing,
                .last_error = std::optional<std::string>(error),
                .only_from = {db::VolumeStatus::kDetached, db::VolumeStatus::kAvailable}});
      });
      if (!updated) spdlog::warn("worker: volume {}: {}", volume.id, updated.error().message());
    }
    MarkIdle(volume.id);
  }

  KINDLING_ASSIGN_OR_RETURN(std::vector<std::string> on_disk,
                            ListImageVolumeIds(VolumesDir(options_.state_dir)));
  for (const std::string& volume_id : on_disk) {
    if (!IsUuid(volume_id)) continue;
    auto volume = db_.Transact([&](db::Tx& tx) { return db::GetVolume(tx, volume_id); });
    if (!volume) {
      // Unknown to this database (restored from an older snapshot?): keep
      // the data, an operator decides.
      if (!volume.error().is_not_found()) return std::unexpected(volume.error());
      continue;
    }
    const bool pinned_here = volume->server_id == options_.server_id && !volume->deleted_at;
    if (pinned_here || (!volume->deleted_at && db::IsTransitional(volume->status))) continue;
    if (!MarkBusy(volume_id)) continue;
    std::error_code ec;
    std::filesystem::remove(ImageOf(volume_id), ec);
    MarkIdle(volume_id);
    if (ec) {
      spdlog::warn("worker: remove old image of volume {}: {}", volume_id, ec.message());
    } else {
      spdlog::info("worker: removed image of volume {} (now {})", volume_id,
                   volume->deleted_at ? "deleted" : "on server " + volume->server_id.value_or("-"));
    }
  }
  return OkStatus();
}

void Worker::HeartbeatLoop() {
  auto next_heartbeat = Clock::now() + options_.heartbeat_interval;
  std::unique_lock lock(mu_);
  while (!stopping_) {
    wake_.wait_for(lock, std::min(options_.sweep_interval, options_.heartbeat_interval));
    if (stopping_) break;
    lock.unlock();
    if (Clock::now() >= next_heartbeat) {
      next_heartbeat = Clock::now() + options_.heartbeat_interval;
      if (auto beat = HeartbeatOnce(); !beat)
        spdlog::warn("worker: heartbeat: {}", beat.error().message());
    }
    if (auto reconciled = ReconcileImagesOnce(); !reconciled)
      spdlog::warn("worker: image reconcile: {}", reconciled.error().message());
    lock.lock();
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
      auto opened =
          db::Listener::Open(db_.options().dsn, {db::kOperationsChannel, db::kConfigChannel});
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

Result<bool> Worker::RunNextOperation() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return false;
  }
  KINDLING_ASSIGN_OR_RETURN(std::optional<db::Operation> claimed, db_.Transact([&](db::Tx& tx) {
    return db::ClaimNextOperation(tx, options_.server_id, instance_id_, options_.lease_duration);
  }));
  if (!claimed) return false;
  Execute(*claimed);
  return true;
}

void Worker::Execute(const db::Operation& op) {
  Running run;
  run.operation_id = op.id;
  {
    std::lock_guard lock(mu_);
    running_.insert(&run);
    busy_volumes_.insert(op.project_volume_id);
    if (stopping_) run.cancel = true;
  }
  run.keeper = std::thread([this, &run] {
    auto next_renew = Clock::now() + options_.lease_renew_interval;
    std::unique_lock lock(run.mu);
    while (!run.done) {
      run.cv.wait_for(lock, std::min(options_.progress_interval, options_.lease_renew_interval));
      if (run.done) break;
      std::string progress = std::exchange(run.progress_json, std::string());
      lock.unlock();
      Status status = OkStatus();
      if (!progress.empty()) {
        status = db_.Transact([&](db::Tx& tx) {
          return db::UpdateProgress(tx, run.operation_id, instance_id_, progress);
        });
      }
      if (status && Clock::now() >= next_renew) {
        status = db_.Transact([&](db::Tx& tx) {
          return db::RenewLease(tx, run.operation_id, instance_id_, options_.lease_duration);
        });
        if (status) next_renew = Clock::now() + options_.lease_renew_interval;
      }
      if (!status && status.error().kind() == ErrorKind::kCancelled) {
        // The sweep took the operation over: stop at once, touch nothing.
        spdlog::warn("worker: {}", status.error().message());
        run.lease_lost = true;
        run.cancel = true;
      } else if (!status) {
        spdlog::warn("worker: lease/progress of {}: {}", run.operation_id,
                     status.error().message());
      }
      lock.lock();
    }
    // The last report (the final figures of a step, or all there is of a
    // step shorter than progress_interval) is written before the operation
    // completes; a lost lease makes this a no-op.
    std::string last = std::exchange(run.progress_json, std::string());
    lock.unlock();
    if (!last.empty() && !run.lease_lost) {
      (void)db_.Transact([&](db::Tx& tx) {
        return db::UpdateProgress(tx, run.operation_id, instance_id_, last);
      });
    }
  });

  spdlog::info("worker: running {} {} on volume {} (attempt {})", db::Name(op.kind), op.id,
               op.project_volume_id, op.attempts);
  const auto started = Clock::now();
  // Success paths complete the operation themselves (in the transaction that
  // also settles the volume); an error is recorded below.
  Status outcome = [&]() -> Status {
    KINDLING_ASSIGN_OR_RETURN(db::Volume volume, db_.Transact([&](db::Tx& tx) {
      return db::GetVolume(tx, op.project_volume_id);
    }));
    if (op.kind == db::OperationKind::kRepair) return ExecuteRepair(run, op, volume);
    KINDLING_ASSIGN_OR_RETURN(std::shared_ptr<const StoreHandle> store, stores_.Get());
    if (op.kind == db::OperationKind::kBackup) {
      KINDLING_ASSIGN_OR_RETURN(std::string result, ExecuteBackupPhase(run, op, volume, *store));
      json r = json::parse(result);
      r["duration_ms"] =
          std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
      run.StopKeeper();
      return db_.Transact([&](db::Tx& tx) -> Status {
        auto done = db::CompleteOperation(tx, op.id, instance_id_, r.dump());
        if (!done) return std::unexpected(done.error());
        auto settled = db::UpdateVolumeState(
            tx, op.project_volume_id,
            db::VolumeStateUpdate{.status = db::VolumeStatus::kDetached,
                                  .last_error = std::optional<std::optional<std::string>>(
                                      std::optional<std::string>())});
        if (!settled) return std::unexpected(settled.error());
        return Audit(tx, op, "succeeded", {{"size_bytes", r.value("size_bytes", 0)}});
      });
    }
    if (op.kind == db::OperationKind::kRestore) return ExecuteRestorePhase(run, op, volume, *store);
    // Move: the backup phase until its backup succeeded, then the restore
    // phase on the target.
    if (!op.backup_id) return InvalidArgument("move operation has no backup_id");
    KINDLING_ASSIGN_OR_RETURN(db::Backup backup, db_.Transact([&](db::Tx& tx) {
      return db::GetBackup(tx, *op.backup_id);
    }));
    if (backup.status != db::BackupStatus::kSucceeded) {
      KINDLING_ASSIGN_OR_RETURN(std::string ignored, ExecuteBackupPhase(run, op, volume, *store));
      (void)ignored;
      if (op.target_server_id && *op.target_server_id != options_.server_id)
        return HandMoveToTarget(run, op);
    }
    return ExecuteRestorePhase(run, op, volume, *store);
  }();

  run.StopKeeper();

  bool abandoned = false;
  bool stopping = false;
  {
    std::lock_guard lock(mu_);
    abandoned = abandoned_;
    stopping = stopping_;
  }
  if (abandoned || run.lease_lost) {
    spdlog::warn("worker: dropped {} ({})", op.id, abandoned ? "abandoned" : "lease lost");
  } else if (!outcome && outcome.error().kind() == ErrorKind::kCancelled && stopping) {
    HandBack(op);
  } else if (!outcome) {
    spdlog::error("worker: {} {} failed: {}", db::Name(op.kind), op.id, outcome.error().message());
    if (auto failed = FailAndRelease(run, op, outcome.error()); !failed)
      spdlog::error("worker: record failure of {}: {}", op.id, failed.error().message());
  } else {
    spdlog::info("worker: {} {} done", db::Name(op.kind), op.id);
  }
  std::lock_guard lock(mu_);
  running_.erase(&run);
  busy_volumes_.erase(op.project_volume_id);
}

Result<std::string> Worker::ExecuteBackupPhase(Running& run, const db::Operation& op,
                                               const db::Volume& volume, const StoreHandle& store) {
  if (!op.backup_id) return InvalidArgument("backup operation has no backup_id");
  const std::filesystem::path image = ImageOf(volume.id);
  std::error_code ec;
  if (!std::filesystem::exists(image, ec)) {
    run.health = db::VolumeHealth::kMissing;
    return NotFound("volume image " + image.string() + " is missing on server " +
                    options_.server_id);
  }
  engine::BackupOptions backup_options;
  backup_options.volume_id = volume.id;
  backup_options.backup_id = *op.backup_id;
  backup_options.image = image;
  backup_options.threads = options_.engine_threads;
  backup_options.progress = [&run](const engine::Progress& p) { run.SetProgress(p); };
  backup_options.cancel = &run.cancel;
  auto created = engine::CreateBackup(*store.repository, backup_options);
  bool resumed = false;
  if (!created && created.error().kind() == ErrorKind::kAlreadyExists) {
    // A previous attempt committed the manifest and died before recording
    // it: the backup is done, load it instead of making a second one.
    created = store.repository->LoadManifest(volume.id, *op.backup_id);
    resumed = true;
  }
  if (!created) return std::unexpected(created.error());
  const repo::Manifest& m = *created;
  const std::string digest = crypto::DigestHex(m.image_digest);
  json metadata = {{"image_sha256", digest},
                   {"stored_bytes", m.stats.bytes_uploaded},
                   {"referenced_bytes", m.stats.bytes_referenced},
                   {"chunks_uploaded", m.stats.chunks_uploaded},
                   {"chunks_data", m.stats.chunks_data},
                   {"chunk_size", m.chunk_size},
                   {"server_id", options_.server_id}};
  Status recorded = db_.Transact([&](db::Tx& tx) -> Status {
    // Holding the lease is checked first so a taken-over attempt never
    // writes the row.
    KINDLING_RETURN_IF_ERROR(db::RenewLease(tx, op.id, instance_id_, options_.lease_duration));
    auto marked = db::MarkBackupSucceeded(
        tx, *op.backup_id,
        db::BackupSuccess{.storage_url = store.url,
                          .storage_key = repo::ManifestKey(volume.id, *op.backup_id),
                          .size_bytes = static_cast<std::int64_t>(m.image_size),
                          .metadata_json = metadata.dump()});
    if (!marked) return std::unexpected(marked.error());
    return OkStatus();
  });
  if (!recorded) return std::unexpected(recorded.error());
  run.SetPhase("retention");
  json result = {{"backup_id", *op.backup_id},
                 {"size_bytes", m.image_size},
                 {"stored_bytes", m.stats.bytes_uploaded},
                 {"chunks_uploaded", m.stats.chunks_uploaded},
                 {"image_sha256", digest},
                 {"engine_duration_ms", m.stats.duration_ms},
                 {"resumed", resumed}};
  result["retention"] = json::parse(ApplyRetention(volume, store));
  return result.dump();
}

std::string Worker::ApplyRetention(const db::Volume& volume, const StoreHandle& store) {
  json deleted = json::array();
  json errors = json::array();
  auto candidates = db_.Transact([&](db::Tx& tx) {
    return db::ListRetentionCandidates(tx, volume.id, std::max(volume.backup_retention_count, 0));
  });
  if (!candidates) {
    errors.push_back(candidates.error().message());
  } else {
    for (const db::Backup& old : *candidates) {
      // Object first: a row without its manifest would advertise a backup
      // that cannot be restored; a manifest without a row is retried next time.
      if (auto gone = store.repository->DeleteBackup(volume.id, old.id); !gone) {
        spdlog::warn("worker: retention: delete backup {}: {}", old.id, gone.error().message());
        errors.push_back("delete backup " + old.id + ": " + gone.error().message());
        continue;
      }
      auto row = db_.Transact([&](db::Tx& tx) { return db::DeleteBackup(tx, old.id); });
      if (!row) {
        errors.push_back("delete backup row " + old.id + ": " + row.error().message());
        continue;
      }
      deleted.push_back(old.id);
    }
  }
  return json{{"kept", volume.backup_retention_count}, {"deleted", deleted}, {"errors", errors}}
      .dump();
}

Status Worker::HandMoveToTarget(Running& run, const db::Operation& op) {
  run.StopKeeper();
  return db_.Transact([&](db::Tx& tx) -> Status {
    KINDLING_RETURN_IF_ERROR(db::RenewLease(tx, op.id, instance_id_, options_.lease_duration));
    auto requeued = db::RequeueOperation(tx, op.id, *op.target_server_id);
    if (!requeued) return std::unexpected(requeued.error());
    return OkStatus();
  });
}

Status Worker::ExecuteRestorePhase(Running& run, const db::Operation& op, const db::Volume& volume,
                                   const StoreHandle& store) {
  if (!op.backup_id) return InvalidArgument("restore operation has no backup_id");
  run.SetPhase("manifest");
  KINDLING_ASSIGN_OR_RETURN(repo::Manifest manifest,
                            store.repository->LoadManifest(volume.id, *op.backup_id));
  engine::RestoreOptions restore_options;
  restore_options.destination = ImageOf(volume.id);
  restore_options.overwrite = true;
  restore_options.threads = options_.engine_threads;
  restore_options.progress = [&run](const engine::Progress& p) { run.SetProgress(p); };
  restore_options.cancel = &run.cancel;
  KINDLING_ASSIGN_OR_RETURN(engine::RestoreResult restored,
                            engine::RestoreBackup(*store.repository, manifest, restore_options));
  const json result = {{"backup_id", *op.backup_id},
                       {"size_bytes", restored.image_size},
                       {"downloaded_bytes", restored.bytes_downloaded},
                       {"chunks_fetched", restored.chunks_fetched},
                       {"image_sha256", restored.image_digest_hex},
                       {"previous_server_id", volume.server_id.value_or("")},
                       {"server_id", options_.server_id}};
  run.StopKeeper();
  // Re-pinning in the completing transaction: the volume is either still on
  // its old server (and this image is an orphan the reconcile pass removes)
  // or here, never both.
  return db_.Transact([&](db::Tx& tx) -> Status {
    auto done = db::CompleteOperation(tx, op.id, instance_id_, result.dump());
    if (!done) return std::unexpected(done.error());
    auto settled = db::UpdateVolumeState(
        tx, volume.id,
        db::VolumeStateUpdate{
            .status = db::VolumeStatus::kDetached,
            .health = db::VolumeHealth::kHealthy,
            .server_id = std::optional<std::optional<std::string>>(options_.server_id),
            .last_error = std::optional<std::optional<std::string>>(std::optional<std::string>())});
    if (!settled) return std::unexpected(settled.error());
    return Audit(tx, op, "succeeded", {{"server_id", options_.server_id}});
  });
}

Status Worker::ExecuteRepair(Running& run, const db::Operation& op, const db::Volume& volume) {
  run.SetPhase("fsck");
  KINDLING_ASSIGN_OR_RETURN(std::filesystem::path tool, FindTool(options_.e2fsck_tool));
  auto checked = CheckAndRepairImage(ImageOf(volume.id), tool);
  if (!checked && checked.error().is_not_found()) run.health = db::VolumeHealth::kMissing;
  if (!checked) return std::unexpected(checked.error());
  if (checked->exit_code != 0 && checked->exit_code != 1) {
    run.health = db::VolumeHealth::kCorrupt;
    return Corruption("e2fsck could not repair the filesystem (exit " +
                      std::to_string(checked->exit_code) + ")");
  }
  const json result = {{"fsck_exit_code", checked->exit_code},
                       {"repaired", checked->exit_code == 1}};
  run.StopKeeper();
  return db_.Transact([&](db::Tx& tx) -> Status {
    auto done = db::CompleteOperation(tx, op.id, instance_id_, result.dump());
    if (!done) return std::unexpected(done.error());
    auto settled = db::UpdateVolumeState(
        tx, volume.id,
        db::VolumeStateUpdate{
            .status = db::VolumeStatus::kDetached,
            .health = db::VolumeHealth::kHealthy,
            .last_error = std::optional<std::optional<std::string>>(std::optional<std::string>())});
    if (!settled) return std::unexpected(settled.error());
    return Audit(tx, op, "succeeded", result);
  });
}

Status Worker::FailAndRelease(Running& run, const db::Operation& op, const Error& error) {
  if (error.kind() == ErrorKind::kCancelled) return OkStatus();  // lease lost mid-commit
  return db_.Transact([&](db::Tx& tx) -> Status {
    auto failed = db::FailOperation(tx, op.id, instance_id_, error.message());
    if (!failed) {
      // kCancelled: the sweep took it over; not ours to record.
      if (failed.error().kind() == ErrorKind::kCancelled) return OkStatus();
      return std::unexpected(failed.error());
    }
    KINDLING_ASSIGN_OR_RETURN(db::Volume volume, db::GetVolume(tx, op.project_volume_id));
    const db::VolumeHealth health = run.health.value_or(volume.health);
    auto settled = db::UpdateVolumeState(
        tx, op.project_volume_id,
        db::VolumeStateUpdate{.status = SettledStatus(health),
                              .health = health,
                              .last_error = std::optional<std::optional<std::string>>(
                                  std::optional<std::string>(error.message()))});
    if (!settled) return std::unexpected(settled.error());
    return Audit(tx, op, "failed", {{"error", error.message()}});
  });
}

void Worker::HandBack(const db::Operation& op) {
  auto handed = db_.Transact([&](db::Tx& tx) -> Status {
    KINDLING_RETURN_IF_ERROR(db::RenewLease(tx, op.id, instance_id_, options_.lease_duration));
    auto requeued = db::RequeueOperation(tx, op.id);
    if (!requeued) return std::unexpected(requeued.error());
    return OkStatus();
  });
  if (!handed) {
    spdlog::warn("worker: hand back {}: {}", op.id, handed.error().message());
  } else {
    spdlog::info("worker: handed {} back (stopping)", op.id);
  }
}

}  // namespace kindling::reconcile
