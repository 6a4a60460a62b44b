#include "reconcile/operation_runner.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "crypto/sha256.h"
#include "db/audit.h"
#include "db/backups.h"
#include "db/volumes.h"
#include "engine/backup.h"
#include "engine/restore.h"
#include "reconcile/volume_images.h"
#include "repo/layout.h"

namespace kindling::reconcile {
namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

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

OperationRunner::OperationRunner(db::Database& db, BackupStoreProvider& stores,
                                 OperationRunnerOptions options)
    : db_(db), stores_(stores), options_(std::move(options)) {}

std::filesystem::path OperationRunner::ImageOf(const std::string& volume_id) const {
  return ImagePath(options_.state_dir, volume_id);
}

Status OperationRunner::Execute(RunningOperation& run, const db::Operation& op) {
  const auto started = Clock::now();
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
      auto done = db::CompleteOperation(tx, op.id, options_.lease_owner, r.dump());
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
}

void OperationRunner::RecordOutcome(RunningOperation& run, const db::Operation& op,
                                    const Status& outcome, StopState stop) {
  if (stop.abandoned || run.lease_lost) {
    spdlog::warn("worker: dropped {} ({})", op.id, stop.abandoned ? "abandoned" : "lease lost");
  } else if (!outcome && outcome.error().kind() == ErrorKind::kCancelled && stop.stopping) {
    HandBack(op);
  } else if (!outcome) {
    spdlog::error("worker: {} {} failed: {}", db::Name(op.kind), op.id, outcome.error().message());
    if (auto failed = FailAndRelease(run, op, outcome.error()); !failed)
      spdlog::error("worker: record failure of {}: {}", op.id, failed.error().message());
  } else {
    spdlog::info("worker: {} {} done", db::Name(op.kind), op.id);
  }
}

Result<std::string> OperationRunner::ExecuteBackupPhase(RunningOperation& run,
                                                        const db::Operation& op,
                                                        const db::Volume& volume,
                                                        const StoreHandle& store) {
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
    KINDLING_RETURN_IF_ERROR(
        db::RenewLease(tx, op.id, options_.lease_owner, options_.lease_duration));
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

std::string OperationRunner::ApplyRetention(const db::Volume& volume, const StoreHandle& store) {
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

Status OperationRunner::HandMoveToTarget(RunningOperation& run, const db::Operation& op) {
  run.StopKeeper();
  return db_.Transact([&](db::Tx& tx) -> Status {
    KINDLING_RETURN_IF_ERROR(
        db::RenewLease(tx, op.id, options_.lease_owner, options_.lease_duration));
    auto requeued = db::RequeueOperation(tx, op.id, *op.target_server_id);
    if (!requeued) return std::unexpected(requeued.error());
    return OkStatus();
  });
}

Status OperationRunner::ExecuteRestorePhase(RunningOperation& run, const db::Operation& op,
                                            const db::Volume& volume, const StoreHandle& store) {
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
    auto done = db::CompleteOperation(tx, op.id, options_.lease_owner, result.dump());
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

Status OperationRunner::ExecuteRepair(RunningOperation& run, const db::Operation& op,
                                      const db::Volume& volume) {
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
    auto done = db::CompleteOperation(tx, op.id, options_.lease_owner, result.dump());
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

Status OperationRunner::FailAndRelease(RunningOperation& run, const db::Operation& op,
                                       const Error& error) {
  if (error.kind() == ErrorKind::kCancelled) return OkStatus();  // lease lost mid-commit
  return db_.Transact([&](db::Tx& tx) -> Status {
    auto failed = db::FailOperation(tx, op.id, options_.lease_owner, error.message());
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

void OperationRunner::HandBack(const db::Operation& op) {
  auto handed = db_.Transact([&](db::Tx& tx) -> Status {
    KINDLING_RETURN_IF_ERROR(
        db::RenewLease(tx, op.id, options_.lease_owner, options_.lease_duration));
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
