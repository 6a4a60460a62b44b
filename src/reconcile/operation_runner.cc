#include "reconcile/operation_runner.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "common/files.h"
#include "control/retention.h"
#include "crypto/sha256.h"
#include "db/audit.h"
#include "db/backups.h"
#include "db/quarantine.h"
#include "db/volumes.h"
#include "engine/backup.h"
#include "engine/restore.h"
#include "engine/verify.h"
#include "reconcile/backup_damage.h"
#include "reconcile/image_reconciler.h"
#include "reconcile/operation_workloads.h"
#include "reconcile/volume_images.h"
#include "repo/layout.h"

namespace kindling::reconcile {
namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

// A volume's status after an operation ends: unusable health makes it
// unavailable (reference); a workload still holding it (a live backup's)
// keeps it attached; anything else returns it to detached.
db::VolumeStatus SettledStatus(db::VolumeHealth health, bool held = false) {
  if (health == db::VolumeHealth::kMissing || health == db::VolumeHealth::kCorrupt)
    return db::VolumeStatus::kUnavailable;
  return held ? db::VolumeStatus::kAttached : db::VolumeStatus::kDetached;
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

// Records an image this runner took into the quarantine: its row and the
// audit event the reconciler writes for the images it takes.
Status RecordTaken(db::Tx& tx, const QuarantinedImage& taken, const std::string& server_id,
                   const db::Operation& op) {
  KINDLING_ASSIGN_OR_RETURN(db::QuarantineEntry row,
                            db::UpsertQuarantineEntry(tx, ToRow(taken, server_id)));
  return AuditImage(tx, "volume.image.quarantined", row,
                    {{"path", row.path}, {"operation_id", op.id}});
}

}  // namespace

OperationRunner::OperationRunner(db::Database& db, BackupStoreProvider& stores, BusyVolumes& busy,
                                 ImageQuarantine& quarantine, OperationRunnerOptions options)
    : db_(db),
      stores_(stores),
      busy_(busy),
      quarantine_(quarantine),
      options_(std::move(options)) {}

void OperationRunner::SyncDamageQuietly(const StoreHandle& store) {
  auto synced = SyncBackupDamage(db_, store);
  if (!synced) {
    spdlog::warn("worker: record damaged backups of {}: {}", store.url, synced.error().message());
  } else if (!synced->marked_damaged.empty() || !synced->healed.empty()) {
    spdlog::warn("worker: store {}: {} backup(s) now damaged, {} healed", store.url,
                 synced->marked_damaged.size(), synced->healed.size());
  }
}

struct OperationRunner::Source {
  db::Backup backup;
  std::shared_ptr<const StoreHandle> store;
  repo::Manifest manifest;
};

Result<OperationRunner::Source> OperationRunner::OpenSource(const db::Operation& op) {
  if (!op.backup_id)
    return InvalidArgument(std::string(db::Name(op.kind)) + " operation has no backup_id");
  Source source;
  KINDLING_ASSIGN_OR_RETURN(
      source.backup, db_.Transact([&](db::Tx& tx) { return db::GetBackup(tx, *op.backup_id); }));
  // Read from the store the backup was written to, which may not be the
  // current one any more.
  if (source.backup.storage_url) {
    KINDLING_ASSIGN_OR_RETURN(source.store, stores_.GetForUrl(*source.backup.storage_url));
  } else {
    KINDLING_ASSIGN_OR_RETURN(source.store, stores_.Get());
  }
  KINDLING_ASSIGN_OR_RETURN(
      source.manifest,
      source.store->repository->LoadManifest(source.backup.project_volume_id, source.backup.id));
  return source;
}

Result<std::optional<QuarantinedImage>> OperationRunner::QuarantineReplaced(
    const db::Volume& volume, std::string detail, std::chrono::seconds keep_for) {
  const std::filesystem::path image = ImageOf(volume.id);
  std::error_code ec;
  if (!std::filesystem::exists(image, ec)) return std::optional<QuarantinedImage>();
  if (volume.server_id == options_.server_id) {
    KINDLING_ASSIGN_OR_RETURN(QuarantinedImage entry,
                              quarantine_.Take(image, volume.id, db::QuarantineReason::kReplaced,
                                               std::move(detail), options_.now() + keep_for));
    spdlog::info("worker: previous image of volume {} kept in quarantine {} until {}s from now",
                 volume.id, entry.id, keep_for.count());
    return std::optional<QuarantinedImage>(std::move(entry));
  }
  // The volume is not pinned here, so this image is not the image the
  // operation replaces: a copy the reconciler has not taken yet. Kept for the
  // grace when the database explains it (a restore, move or adoption took the
  // volume away from here after it last changed), held otherwise: it may be
  // the newest copy.
  KINDLING_ASSIGN_OR_RETURN(db::Timestamp changed, ImageChangedAt(image));
  KINDLING_ASSIGN_OR_RETURN(std::optional<db::Operation> relocation, db_.Transact([&](db::Tx& tx) {
    return ExplainLeftover(tx, volume, options_.server_id, changed);
  }));
  const std::string pinned =
      volume.server_id ? "server " + *volume.server_id : std::string("no server");
  if (relocation) {
    KINDLING_ASSIGN_OR_RETURN(
        QuarantinedImage entry,
        quarantine_.Take(image, volume.id, db::QuarantineReason::kReplaced,
                         std::string(db::Name(relocation->kind)) + " " + relocation->id +
                             " moved the volume to " + pinned + "; " + detail,
                         options_.now() + options_.quarantine_grace));
    return std::optional<QuarantinedImage>(std::move(entry));
  }
  KINDLING_ASSIGN_OR_RETURN(
      QuarantinedImage entry,
      quarantine_.Take(image, volume.id, db::QuarantineReason::kConflict,
                       "found in place of the volume's image on server " + options_.server_id +
                           ", which the database did not pin the volume to (it pinned it to " +
                           pinned + "); " + detail,
                       std::nullopt));
  spdlog::warn(
      "worker: image of volume {} found where an operation puts the volume's image; held in "
      "quarantine {} until an operator adopts or purges it",
      volume.id, entry.id);
  return std::optional<QuarantinedImage>(std::move(entry));
}

Status OperationRunner::CompletePinnedHere(db::Tx& tx, const RunningOperation& run,
                                           const db::Operation& op, const std::string& volume_id,
                                           const json& result) {
  auto done = db::CompleteOperation(tx, op.id, run.lease_owner(), result.dump());
  if (!done) return std::unexpected(done.error());
  auto settled =
      db::UpdateVolumeState(tx, volume_id,
                            db::VolumeStateUpdate{.status = db::VolumeStatus::kDetached,
                                                  .health = db::VolumeHealth::kHealthy,
                                                  .server_id = db::SetTo(options_.server_id),
                                                  .last_error = db::SetNull()});
  if (!settled) return std::unexpected(settled.error());
  return OkStatus();
}

void OperationRunner::PutBack(const std::optional<QuarantinedImage>& replaced,
                              const std::string& volume_id, const std::string& operation_id) {
  if (!replaced) return;
  if (Status back = quarantine_.GiveBack(replaced->id, volume_id, ImageOf(volume_id)); back) {
    if (auto purged = quarantine_.Purge(replaced->id); !purged)
      spdlog::warn(
          "worker: remove quarantine entry {} given back to volume {} (the quarantine "
          "sync retries): {}",
          replaced->id, volume_id, purged.error().message());
  } else {
    spdlog::error(
        "worker: operation {} failed and the previous image of volume {} stays in "
        "quarantine {}: {}",
        operation_id, volume_id, replaced->id, back.error().message());
  }
}

std::filesystem::path OperationRunner::ImageOf(const std::string& volume_id) const {
  return ImagePath(options_.state_dir, volume_id);
}

Status OperationRunner::Execute(RunningOperation& run, const db::Operation& op) {
  const auto started = Clock::now();
  KINDLING_ASSIGN_OR_RETURN(db::Volume volume, db_.Transact([&](db::Tx& tx) {
    return db::GetVolume(tx, op.project_volume_id);
  }));
  switch (op.kind) {
    case db::OperationKind::kRepair:
      return ExecuteRepair(run, op, volume);
    case db::OperationKind::kGrow:
      return ExecuteGrow(run, op, volume);
    case db::OperationKind::kAdopt:
      return ExecuteAdopt(run, op, volume);
    case db::OperationKind::kVerify:
      return ExecuteVerify(run, op);
    case db::OperationKind::kRestore:
      // Queued here to stop this server's workload first: restored there.
      if (op.target_server_id && *op.target_server_id != options_.server_id)
        return HandMoveToTarget(run, op);
      return ExecuteRestorePhase(run, op, volume);
    case db::OperationKind::kBackup: {
      KINDLING_ASSIGN_OR_RETURN(std::shared_ptr<const StoreHandle> store, stores_.Get());
      KINDLING_ASSIGN_OR_RETURN(std::string result, ExecuteBackupPhase(run, op, volume, *store));
      json r = json::parse(result);
      r["duration_ms"] =
          std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
      return CompleteBackup(run, op, r.dump());
    }
    case db::OperationKind::kMove:
      break;
  }
  // Move: the backup phase until its backup succeeded, then the restore
  // phase on the target.
  if (!op.backup_id) return InvalidArgument("move operation has no backup_id");
  KINDLING_ASSIGN_OR_RETURN(db::Backup backup, db_.Transact([&](db::Tx& tx) {
    return db::GetBackup(tx, *op.backup_id);
  }));
  if (backup.status != db::BackupStatus::kSucceeded) {
    KINDLING_ASSIGN_OR_RETURN(std::shared_ptr<const StoreHandle> store, stores_.Get());
    KINDLING_ASSIGN_OR_RETURN(std::string ignored, ExecuteBackupPhase(run, op, volume, *store));
    (void)ignored;
    if (op.target_server_id && *op.target_server_id != options_.server_id)
      return HandMoveToTarget(run, op);
  }
  return ExecuteRestorePhase(run, op, volume);
}

Status OperationRunner::CompleteBackup(RunningOperation& run, const db::Operation& op,
                                       const std::string& result_json) {
  const json request = json::parse(op.request_metadata_json, nullptr, false);
  const bool delete_volume =
      request.is_object() && request.value("delete_volume_after", false) == true;
  json result = json::parse(result_json);
  if (delete_volume) result["volume_deleted"] = true;
  run.StopKeeper();
  return db_.Transact([&](db::Tx& tx) -> Status {
    auto done = db::CompleteOperation(tx, op.id, run.lease_owner(), result.dump());
    if (!done) return std::unexpected(done.error());
    // A live backup's workload may still hold the volume.
    KINDLING_ASSIGN_OR_RETURN(const db::Volume held, db::GetVolume(tx, op.project_volume_id, true));
    auto settled = db::UpdateVolumeState(
        tx, op.project_volume_id,
        db::VolumeStateUpdate{.status = held.attached_vm_id ? db::VolumeStatus::kAttached
                                                            : db::VolumeStatus::kDetached,
                              .last_error = db::SetNull()});
    if (!settled) return std::unexpected(settled.error());
    KINDLING_RETURN_IF_ERROR(
        Audit(tx, op, "succeeded", {{"size_bytes", result.value("size_bytes", 0)}}));
    // A backup settles nothing about images held elsewhere: they stay visible.
    if (!delete_volume) return RefreshImageConflict(tx, op.project_volume_id);
    // The pre-delete backup is safe in the store: the deletion the operator
    // asked for happens now (the image goes to the quarantine, as deleted).
    auto deleted = db::MarkVolumeDeleted(tx, op.project_volume_id);
    if (!deleted) return std::unexpected(deleted.error());
    auto id = db::InsertAuditEvent(
        tx, db::AuditEventInput{
                .action = "volume.deleted",
                .resource_type = "project_volume",
                .resource_id = op.project_volume_id,
                .details_json = json{{"operation_id", op.id},
                                     {"pre_delete_backup_id", op.backup_id.value_or("")},
                                     {"project_id", deleted->project_id}}
                                    .dump()});
    if (!id) return std::unexpected(id.error());
    return OkStatus();
  });
}

void OperationRunner::RecordOutcome(RunningOperation& run, const db::Operation& op,
                                    const Status& outcome, StopState stop) {
  if (stop.abandoned || run.lease_lost) {
    spdlog::warn("worker: dropped {} ({})", op.id, stop.abandoned ? "abandoned" : "lease lost");
  } else if (!outcome && outcome.error().kind() == ErrorKind::kCancelled && stop.stopping) {
    HandBack(run, op);
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
  // An earlier attempt may have committed the manifest and died before
  // recording it, or the database was restored from a snapshot older than
  // the commit: the backup is done, whatever became of the image since.
  Result<repo::Manifest> created = store.repository->LoadManifest(volume.id, *op.backup_id);
  if (!created && !created.error().is_not_found()) return std::unexpected(created.error());
  bool resumed = created.has_value();
  std::vector<repo::ChunkId> healed;
  const bool live = WorkloadRequest::Parse(op.request_metadata_json).live_snapshot;
  engine::BackupReport report;
  std::chrono::milliseconds paused{0};
  if (!resumed) {
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
    backup_options.healed = &healed;
    // A live backup reads a snapshot taken with the workload paused, never
    // the image a running VM writes: no snapshot, no backup.
    backup_options.snapshot = live ? engine::Use::kOn : engine::Use::kAuto;
    backup_options.changed_blocks = engine::Use::kAuto;
    backup_options.report = &report;
    if (live && options_.pause_workload) {
      backup_options.around_snapshot = [&](const std::function<Status()>& take) -> Status {
        KINDLING_ASSIGN_OR_RETURN(paused, options_.pause_workload(volume.id, take));
        return OkStatus();
      };
    }
    created = engine::CreateBackup(*store.repository, backup_options);
    if (!created && created.error().kind() == ErrorKind::kAlreadyExists) {
      // Committed since the check above (an attempt this one took over).
      created = store.repository->LoadManifest(volume.id, *op.backup_id);
      resumed = true;
    }
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
    KINDLING_RETURN_IF_ERROR(db::RenewLease(tx, op.id, run.lease_owner(), options_.lease_duration));
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
  if (!resumed) {
    result["read_path"] = report.read_path;
    result["bytes_read"] = report.bytes_read;
    result["bytes_skipped"] = report.bytes_skipped;
    result["snapshot"] = !report.snapshot.empty();
    if (!report.fallback.empty()) result["fallback"] = report.fallback;
  }
  if (live) {
    result["live"] = true;
    if (!resumed) result["pause_ms"] = paused.count();
  }
  result["chunks_healed"] = healed.size();
  if (!healed.empty()) {
    // Older backups that referenced those chunks restore again.
    auto synced = SyncBackupDamage(db_, store);
    if (synced) {
      result["backups_healed"] = synced->healed;
    } else {
      spdlog::warn("worker: record healed backups: {}", synced.error().message());
    }
  }
  result["retention"] = json::parse(ApplyRetention(volume, store));
  return result.dump();
}

std::string OperationRunner::ApplyRetention(const db::Volume& volume, const StoreHandle& store) {
  json deleted = json::array();
  json errors = json::array();
  std::size_t kept = 0;
  auto inputs = db_.Transact([&](db::Tx& tx) { return db::ListRetentionInputs(tx, volume.id); });
  if (!inputs) {
    errors.push_back(inputs.error().message());
  } else {
    for (const control::RetentionPlanEntry& entry :
         control::PlanRetention(volume, std::move(*inputs))) {
      if (entry.decision.keep) {
        ++kept;
        continue;
      }
      const db::Backup& old = entry.backup;
      // From the store the backup was written to: a manifest left behind in
      // an older store would come back with the next rescan.
      std::shared_ptr<const StoreHandle> own;
      if (old.storage_url && *old.storage_url != store.url) {
        auto opened = stores_.GetForUrl(*old.storage_url);
        if (!opened) {
          errors.push_back("delete backup " + old.id + ": " + opened.error().message());
          continue;
        }
        own = std::move(*opened);
      }
      const StoreHandle& from = own ? *own : store;
      // Object first: a row without its manifest would advertise a backup
      // that cannot be restored; a manifest without a row is retried next
      // time. Both under the row's lock, re-checking the pin: an operator
      // who pins it meanwhile either waits for the deletion (and finds no
      // backup) or wins (and the backup stays). One attempt: the lambda
      // deletes an object, so it must not be run again.
      bool object_failed = false;
      auto row = db_.Transact(
          [&](db::Tx& tx) -> Result<bool> {
            KINDLING_ASSIGN_OR_RETURN(db::Backup current,
                                      db::GetBackup(tx, old.id, /*for_update=*/true));
            if (current.pinned) return false;
            if (auto gone = from.repository->DeleteBackup(volume.id, old.id); !gone) {
              object_failed = true;
              return std::unexpected(gone.error());
            }
            return db::DeleteBackup(tx, old.id);
          },
          db::TxOptions{.max_attempts = 1});
      if (!row) {
        if (object_failed) {
          spdlog::warn("worker: retention: delete backup {}: {}", old.id, row.error().message());
          errors.push_back("delete backup " + old.id + ": " + row.error().message());
        } else {
          errors.push_back("delete backup row " + old.id + ": " + row.error().message());
        }
        continue;
      }
      if (!*row) {
        ++kept;  // pinned since the plan
        continue;
      }
      deleted.push_back(old.id);
    }
  }
  return json{{"kept", kept}, {"deleted", deleted}, {"errors", errors}}.dump();
}

Status OperationRunner::HandMoveToTarget(RunningOperation& run, const db::Operation& op) {
  run.StopKeeper();
  return db_.Transact([&](db::Tx& tx) -> Status {
    KINDLING_RETURN_IF_ERROR(db::RenewLease(tx, op.id, run.lease_owner(), options_.lease_duration));
    auto requeued = db::RequeueOperation(tx, op.id, *op.target_server_id);
    if (!requeued) return std::unexpected(requeued.error());
    return OkStatus();
  });
}

Status OperationRunner::ExecuteRestorePhase(RunningOperation& run, const db::Operation& op,
                                            const db::Volume& volume) {
  run.SetPhase("manifest");
  KINDLING_ASSIGN_OR_RETURN(Source source, OpenSource(op));
  // Restored beside the volumes, on the same filesystem: the image it
  // replaces stays in place until the new one is complete and checked.
  const std::filesystem::path staging_dir = options_.state_dir / "restoring";
  std::error_code ec;
  if (!std::filesystem::exists(staging_dir, ec)) {
    std::filesystem::create_directories(staging_dir, ec);
    if (ec) return IoError("create " + staging_dir.string() + ": " + ec.message());
    KINDLING_RETURN_IF_ERROR(FsyncDirectory(options_.state_dir));
  }
  const std::filesystem::path staged = staging_dir / (volume.id + ".img");
  engine::RestoreOptions restore_options;
  restore_options.destination = staged;
  restore_options.overwrite = true;  // a staged copy left by an earlier attempt
  restore_options.threads = options_.engine_threads;
  restore_options.progress = [&run](const engine::Progress& p) { run.SetProgress(p); };
  restore_options.cancel = &run.cancel;
  auto restored =
      engine::RestoreBackup(*source.store->repository, source.manifest, restore_options);
  if (!restored) {
    // A missing or corrupt chunk was recorded in the store: every backup
    // that needs it shows as damaged until a backup stores it again.
    if (restored.error().kind() == ErrorKind::kCorruption) SyncDamageQuietly(*source.store);
    return std::unexpected(restored.error());
  }
  if (run.cancel.load()) return Cancelled();
  std::optional<ImageValidation> validation;
  if (WorkloadRequest::Parse(op.request_metadata_json).validate) {
    run.SetPhase("validate");
    auto checked = options_.validator == nullptr
                       ? Result<ImageValidation>(FailedPrecondition(
                             "this worker runs no workloads (no VMM), so it cannot boot the "
                             "verify mode"))
                       : options_.validator->Validate(staged, volume);
    if (!checked || !checked->passed()) {
      std::filesystem::remove(staged, ec);
      if (!checked)
        return std::unexpected(checked.error().WithContext(
            "validation of the restored image (the previous image stays in place)"));
      run.failure_result_json = json{{"validation", checked->ToJson()}}.dump();
      std::string ids;
      for (std::uint64_t id : checked->damaged)
        ids += (ids.empty() ? "" : ", ") + std::to_string(id);
      return FailedPrecondition(
          "validation of the restored image failed: " + std::to_string(checked->intact) + " of " +
          std::to_string(checked->records) + " records intact, damaged: [" + ids +
          "]; the previous image stays in place");
    }
    validation = *checked;
  }
  KINDLING_ASSIGN_OR_RETURN(std::optional<QuarantinedImage> replaced,
                            QuarantineReplaced(volume,
                                               "replaced by the restore of backup " +
                                                   source.backup.id + " (operation " + op.id + ")",
                                               options_.quarantine_grace));
  if (Status placed = RenameNoReplaceDurably(staged, ImageOf(volume.id)); !placed) {
    PutBack(replaced, volume.id, op.id);
    return placed;
  }
  json result = {{"backup_id", source.backup.id},
                 {"size_bytes", restored->image_size},
                 {"downloaded_bytes", restored->bytes_downloaded},
                 {"chunks_fetched", restored->chunks_fetched},
                 {"image_sha256", restored->image_digest_hex},
                 {"storage_url", source.store->url},
                 {"previous_server_id", volume.server_id.value_or("")},
                 {"server_id", options_.server_id}};
  if (source.backup.project_volume_id != volume.id)
    result["source_volume_id"] = source.backup.project_volume_id;
  if (replaced) result["replaced_image_quarantine_id"] = replaced->id;
  if (validation) result["validation"] = validation->ToJson();
  run.StopKeeper();
  // Re-pinning in the completing transaction: the volume is either still on
  // its old server (and this image is a leftover the reconciler quarantines)
  // or here, never both.
  return db_.Transact([&](db::Tx& tx) -> Status {
    KINDLING_RETURN_IF_ERROR(CompletePinnedHere(tx, run, op, volume.id, result));
    if (replaced) KINDLING_RETURN_IF_ERROR(RecordTaken(tx, *replaced, options_.server_id, op));
    // Images of the volume still held (here or elsewhere) stay visible.
    KINDLING_RETURN_IF_ERROR(RefreshImageConflict(tx, volume.id));
    json details = {{"server_id", options_.server_id}};
    if (result.contains("source_volume_id"))
      details["source_volume_id"] = result["source_volume_id"];
    if (replaced) details["replaced_image_quarantine_id"] = replaced->id;
    return Audit(tx, op, "succeeded", details);
  });
}

Status OperationRunner::ExecuteAdopt(RunningOperation& run, const db::Operation& op,
                                     const db::Volume& volume) {
  run.SetPhase("adopt");
  const json request = json::parse(op.request_metadata_json, nullptr, false);
  const std::string entry_id =
      request.is_object() ? request.value("quarantine_id", std::string()) : std::string();
  if (entry_id.empty()) return InvalidArgument("adopt operation has no quarantine_id");
  // The reconciler may be mirroring or purging the entry right now: wait for
  // it (a pass is short) rather than fail.
  std::optional<BusyScope> hold;
  for (int i = 0; i < 100 && !(hold && hold->acquired()); ++i) {
    if (i > 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    hold.emplace(busy_, QuarantineBusyKey(entry_id));
  }
  if (!hold->acquired()) return TransientError("quarantined image " + entry_id + " is busy");
  KINDLING_ASSIGN_OR_RETURN(QuarantinedImage entry, quarantine_.Get(entry_id));
  std::error_code ec;
  const bool has_image = std::filesystem::exists(entry.image, ec);
  const bool already_given = entry.adopted_into == volume.id && !has_image;
  // Checked before the volume's current image is moved aside, so that an
  // adoption that cannot happen leaves the volume as it was.
  if (!has_image && !already_given) {
    return NotFound("quarantined image " + entry_id + " holds no image any more" +
                    (entry.adopted_into ? " (given to volume " + *entry.adopted_into + ")" : ""));
  }
  if (has_image && entry.adopted_into && *entry.adopted_into != volume.id) {
    return InvalidArgument("quarantined image " + entry_id + " is being adopted by volume " +
                           *entry.adopted_into);
  }
  std::optional<QuarantinedImage> replaced;
  if (!already_given) {
    KINDLING_ASSIGN_OR_RETURN(
        replaced, QuarantineReplaced(volume,
                                     "replaced by the adoption of quarantined image " + entry_id +
                                         " (operation " + op.id + ")",
                                     options_.quarantine_retention));
  }
  if (Status given = quarantine_.GiveBack(entry_id, volume.id, ImageOf(volume.id)); !given) {
    PutBack(replaced, volume.id, op.id);
    return given;
  }
  const json result = {
      {"quarantine_id", entry_id},
      {"source_volume_id", entry.volume_id},
      {"size_bytes", entry.size_bytes},
      {"image_sha256", entry.image_sha256},
      {"previous_server_id", volume.server_id.value_or("")},
      {"server_id", options_.server_id},
      {"replaced_image_quarantine_id", replaced ? json(replaced->id) : json(nullptr)}};
  run.StopKeeper();
  Status done = db_.Transact([&](db::Tx& tx) -> Status {
    KINDLING_RETURN_IF_ERROR(CompletePinnedHere(tx, run, op, volume.id, result));
    // The row may be missing (a database restored from before the entry):
    // record it, then mark it adopted.
    KINDLING_RETURN_IF_ERROR(db::UpsertQuarantineEntry(tx, ToRow(entry, options_.server_id)));
    auto row = db::GetQuarantineEntry(tx, entry_id, /*for_update=*/true);
    if (!row) return std::unexpected(row.error());
    if (row->status == db::QuarantineStatus::kHeld) {
      auto adopted = db::ResolveQuarantineEntry(tx, entry_id, db::QuarantineStatus::kAdopted);
      if (!adopted) return std::unexpected(adopted.error());
    }
    if (replaced) KINDLING_RETURN_IF_ERROR(RecordTaken(tx, *replaced, options_.server_id, op));
    KINDLING_RETURN_IF_ERROR(RefreshImageConflict(tx, volume.id));
    return Audit(tx, op, "succeeded",
                 {{"quarantine_id", entry_id},
                  {"source_volume_id", entry.volume_id},
                  {"server_id", options_.server_id},
                  {"image_sha256", entry.image_sha256},
                  {"replaced_image_quarantine_id", replaced ? json(replaced->id) : json(nullptr)}});
  });
  // Only the entry's description is left once the database says adopted.
  if (done) {
    if (auto purged = quarantine_.Purge(entry_id); !purged)
      spdlog::warn("worker: remove adopted quarantine entry {} (the quarantine sync retries): {}",
                   entry_id, purged.error().message());
  }
  return done;
}

Status OperationRunner::ExecuteVerify(RunningOperation& run, const db::Operation& op) {
  run.SetPhase("manifest");
  KINDLING_ASSIGN_OR_RETURN(Source source, OpenSource(op));
  engine::VerifyOptions verify_options;
  verify_options.threads = options_.engine_threads;
  verify_options.progress = [&run](const engine::Progress& p) { run.SetProgress(p); };
  verify_options.cancel = &run.cancel;
  KINDLING_ASSIGN_OR_RETURN(
      engine::VerifyReport report,
      engine::VerifyBackup(*source.store->repository, source.manifest, verify_options));
  json problems = json::array();
  for (const engine::ChunkProblem& p : report.problems) {
    problems.push_back({{"kind", std::string(engine::ProblemKindName(p.kind))},
                        {"chunk_id", p.chunk_id_hex},
                        {"key", p.key},
                        {"offset", p.offset},
                        {"message", p.message}});
  }
  // Problems found were recorded in the store; the rows follow.
  SyncDamageQuietly(*source.store);
  const json result = {{"backup_id", source.backup.id},
                       {"storage_url", source.store->url},
                       {"ok", report.ok()},
                       {"chunks_referenced", report.chunks_referenced},
                       {"chunks_checked", report.chunks_checked},
                       {"bytes_checked", report.bytes_checked},
                       {"image_digest_checked", report.image_digest_checked},
                       {"image_digest_matches", report.image_digest_matches},
                       {"problems", problems},
                       {"server_id", options_.server_id}};
  run.StopKeeper();
  return db_.Transact([&](db::Tx& tx) -> Status {
    auto done = db::CompleteOperation(tx, op.id, run.lease_owner(), result.dump());
    if (!done) return std::unexpected(done.error());
    auto recorded = db::RecordBackupVerification(
        tx, source.backup.id, report.ok() ? db::VerifyState::kOk : db::VerifyState::kDamaged);
    // A backup whose row is gone (deleted by hand) has nothing to record.
    if (!recorded && !recorded.error().is_not_found()) return std::unexpected(recorded.error());
    return Audit(
        tx, op, "succeeded",
        {{"ok", report.ok()}, {"problems", problems.size()}, {"storage_url", source.store->url}});
  });
}

Status OperationRunner::ExecuteRepair(RunningOperation& run, const db::Operation& op,
                                      const db::Volume& volume) {
  run.SetPhase("fsck");
  KINDLING_ASSIGN_OR_RETURN(std::filesystem::path tool, FindTool(options_.e2fsck_tool));
  // No cancel: a started e2fsck -y runs to its end (or its timeout), as
  // killing it mid-write could leave the filesystem worse than it found it;
  // a lost lease cannot start a second one meanwhile (the claim skips the
  // volumes this process is executing).
  auto checked =
      CheckAndRepairImage(ImageOf(volume.id), tool, ToolLimits{.timeout = kE2fsckTimeout});
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
    auto done = db::CompleteOperation(tx, op.id, run.lease_owner(), result.dump());
    if (!done) return std::unexpected(done.error());
    auto settled = db::UpdateVolumeState(
        tx, volume.id,
        db::VolumeStateUpdate{
            .status = db::VolumeStatus::kDetached,
            .health = db::VolumeHealth::kHealthy,
            .last_error = std::optional<std::optional<std::string>>(std::optional<std::string>())});
    if (!settled) return std::unexpected(settled.error());
    KINDLING_RETURN_IF_ERROR(RefreshImageConflict(tx, volume.id));
    return Audit(tx, op, "succeeded", result);
  });
}

Status OperationRunner::ExecuteGrow(RunningOperation& run, const db::Operation& op,
                                    const db::Volume& volume) {
  run.SetPhase("grow");
  const json request = json::parse(op.request_metadata_json, nullptr, false);
  if (!request.is_object() || !request.contains("size_gb") ||
      !request["size_gb"].is_number_integer())
    return InvalidArgument("grow operation has no size_gb");
  const int size_gb = request["size_gb"].get<int>();
  if (size_gb < volume.size_gb) {
    return InvalidArgument("grow to " + std::to_string(size_gb) + " GiB: the volume has " +
                           std::to_string(volume.size_gb) + " GiB (volumes only grow)");
  }
  // No cancel: GrowImage works on a copy, so a stop could only throw the
  // copy away; it runs to its end (or its timeout).
  Status grown = GrowImage(ImageOf(volume.id), size_gb, GrowTools{.e2fsck = options_.e2fsck_tool});
  if (!grown && grown.error().is_not_found()) run.health = db::VolumeHealth::kMissing;
  if (!grown) return grown;
  const json result = {{"size_gb", size_gb}, {"previous_size_gb", volume.size_gb}};
  run.StopKeeper();
  return db_.Transact([&](db::Tx& tx) -> Status {
    auto done = db::CompleteOperation(tx, op.id, run.lease_owner(), result.dump());
    if (!done) return std::unexpected(done.error());
    auto sized =
        db::UpdateVolumeSettings(tx, volume.id, db::VolumeSettingsUpdate{.size_gb = size_gb});
    if (!sized) return std::unexpected(sized.error());
    auto settled = db::UpdateVolumeState(
        tx, volume.id,
        db::VolumeStateUpdate{
            .status = db::VolumeStatus::kDetached,
            .last_error = std::optional<std::optional<std::string>>(std::optional<std::string>())});
    if (!settled) return std::unexpected(settled.error());
    return Audit(tx, op, "succeeded", result);
  });
}

Status OperationRunner::FailAndRelease(RunningOperation& run, const db::Operation& op,
                                       const Error& error) {
  if (error.kind() == ErrorKind::kCancelled) return OkStatus();  // lease lost mid-commit
  return db_.Transact([&](db::Tx& tx) -> Status {
    auto failed = db::FailOperation(tx, op.id, run.lease_owner(), error.message());
    if (!failed) {
      // kCancelled: the sweep took it over; not ours to record.
      if (failed.error().kind() == ErrorKind::kCancelled) return OkStatus();
      return std::unexpected(failed.error());
    }
    if (run.failure_result_json)
      KINDLING_RETURN_IF_ERROR(
          db::MergeFinishedOperationResult(tx, op.id, *run.failure_result_json));
    KINDLING_ASSIGN_OR_RETURN(db::Volume volume, db::GetVolume(tx, op.project_volume_id));
    const db::VolumeHealth health = run.health.value_or(volume.health);
    auto settled = db::UpdateVolumeState(
        tx, op.project_volume_id,
        db::VolumeStateUpdate{.status = SettledStatus(health, volume.attached_vm_id.has_value()),
                              .health = health,
                              .last_error = std::optional<std::optional<std::string>>(
                                  std::optional<std::string>(error.message()))});
    if (!settled) return std::unexpected(settled.error());
    return Audit(tx, op, "failed", {{"error", error.message()}});
  });
}

void OperationRunner::HandBack(const RunningOperation& run, const db::Operation& op) {
  auto handed = db_.Transact([&](db::Tx& tx) -> Status {
    KINDLING_RETURN_IF_ERROR(db::RenewLease(tx, op.id, run.lease_owner(), options_.lease_duration));
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
