// OperationRunner: executes the operations a worker claimed, on this
// server's images, and records their outcome.
//
//   - backup: engine::CreateBackup with backup_id = the backup row's id, so a
//     retry reuses uploaded chunks and never makes two manifests; a manifest
//     already committed under that id (by an attempt that died before
//     recording it, or after the snapshot a restored database came from) is
//     recorded as it is, without the image. Where the volumes directory's
//     filesystem clones files, the backup reads a reflink snapshot and only
//     the chunks that changed since the last one (engine/backup.h); a live
//     backup (request live_snapshot: the volume's workload keeps running)
//     must have that snapshot, taken with the workload paused
//     (pause_workload). The result says read_path, bytes_read,
//     bytes_skipped and, for a live backup, pause_ms. Then retention (the volume's
//     policy, control/retention.h), each deletion under the backup row's
//     lock, sparing a backup pinned since the plan.
//   - restore: staged in <state_dir>/restoring from the backup's own store,
//     validated when the request asks `validate` (ImageValidator: the
//     report goes to result.validation; a failed validation fails the
//     operation, with the report, and the staged image is dropped), then
//     renamed into place; the image it replaces on this server (if any)
//     goes to the quarantine (replaced when the volume was pinned here, else
//     a held conflict), and the volume is re-pinned here in the transaction
//     that completes the operation. A failed restore leaves the previous
//     image in place.
//   - move: backup phase on the source, then the operation is handed to the
//     target server, whose restore phase is recognised by the backup row
//     having succeeded. A restore queued on another server than its target
//     (the one whose workload had to stop first, operation_workloads.h) is
//     handed to its target the same way.
//   - adopt: gives a quarantined image back as the volume's image (the one
//     it replaces goes to the quarantine) and re-pins the volume here. An
//     adoption that cannot happen leaves the volume's image in place.
//   - verify: engine::VerifyBackup from the backup's own store; problems go
//     to result_metadata and the backup rows (backup_damage.h), and the
//     backup's verified_at/verify_state (ok, or damaged when it found a
//     problem) are set in the transaction that completes the operation. A
//     verify that fails (the store unreachable, the manifest unreadable)
//     records neither.
//   - repair: e2fsck -f -y; exit 0/1 healthy, else corrupt.
//
// Success paths complete the operation in the transaction that also settles
// the volume (images still held in conflict stay named in last_error, see
// RefreshImageConflict) and writes the audit event; failures are recorded by
// RecordOutcome. Every write first checks that this attempt still holds the
// lease (the claim's token, RunningOperation::lease_owner), so a taken-over
// attempt never writes a row, not even when its own process claimed the
// operation again.
//
// Thread-safety: thread-safe; one call per claimed operation.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "common/result.h"
#include "db/database.h"
#include "db/operations.h"
#include "reconcile/busy_volumes.h"
#include "reconcile/image_quarantine.h"
#include "reconcile/image_validator.h"
#include "reconcile/running_operation.h"
#include "reconcile/store_provider.h"

namespace kindling::reconcile {

struct OperationRunnerOptions {
  std::string server_id;            // REQUIRED
  std::filesystem::path state_dir;  // REQUIRED: volumes/ lives here
  std::chrono::milliseconds lease_duration{15'000};
  int engine_threads = 0;  // 0: the engine's default
  std::string e2fsck_tool = "e2fsck";
  // Purge times of images this runner puts in quarantine: replaced by a
  // restore (grace), replaced by an adoption (retention: an operator chose).
  std::chrono::seconds quarantine_grace{3600};
  std::chrono::seconds quarantine_retention{7 * 24 * 3600};
  // Boots the verify mode on a restored image when the operation asks
  // `validate`; null (no VMM on this worker): such a restore fails.
  ImageValidator* validator = nullptr;
  // Runs `take` (a backup's clone of the image) with the workload that holds
  // `volume_id` paused (WorkloadReconciler::PauseAround); returns how long it
  // was paused, 0 when nothing ran there. Null (no VMM on this worker): take
  // runs alone.
  std::function<Result<std::chrono::milliseconds>(const std::string& volume_id,
                                                  const std::function<Status()>& take)>
      pause_workload;
  std::function<std::chrono::system_clock::time_point()> now = [] {
    return std::chrono::system_clock::now();
  };
};

// How the worker stopped, for RecordOutcome.
struct StopState {
  bool stopping = false;   // graceful stop: hand the operation back
  bool abandoned = false;  // crash seam: touch nothing
};

class OperationRunner {
 public:
  // REQUIRES: `db`, `stores`, `busy` and `quarantine` outlive the runner.
  OperationRunner(db::Database& db, BackupStoreProvider& stores, BusyVolumes& busy,
                  ImageQuarantine& quarantine, OperationRunnerOptions options);

  // Executes `op`; on success the operation is already completed.
  [[nodiscard]] Status Execute(RunningOperation& run, const db::Operation& op);

  // Records a failure (operation failed, volume settled, audited), hands the
  // operation back when the worker is stopping, or leaves the row alone when
  // the lease was lost or the worker abandoned it.
  void RecordOutcome(RunningOperation& run, const db::Operation& op, const Status& outcome,
                     StopState stop);

  // SyncBackupDamage for `store`, logging instead of failing.
  void SyncDamageQuietly(const StoreHandle& store);

 private:
  [[nodiscard]] Result<std::string> ExecuteBackupPhase(RunningOperation& run,
                                                       const db::Operation& op,
                                                       const db::Volume& volume,
                                                       const StoreHandle& store);
  [[nodiscard]] Status CompleteBackup(RunningOperation& run, const db::Operation& op,
                                      const std::string& result_json);
  [[nodiscard]] Status ExecuteRestorePhase(RunningOperation& run, const db::Operation& op,
                                           const db::Volume& volume);
  [[nodiscard]] Status ExecuteAdopt(RunningOperation& run, const db::Operation& op,
                                    const db::Volume& volume);
  [[nodiscard]] Status ExecuteVerify(RunningOperation& run, const db::Operation& op);
  // The backup named by `op`, the store it was written to and its manifest.
  struct Source;
  [[nodiscard]] Result<Source> OpenSource(const db::Operation& op);
  // Moves this server's image of `volume` (if it exists) to the quarantine:
  // as replaced, purged after `keep_for`, when the volume was pinned here
  // (`volume` as the operation found it); when it was not, as replaced with
  // the grace if the database explains the copy (ExplainLeftover), else as a
  // conflict, held (it may be the newest copy). nullopt when there was none.
  [[nodiscard]] Result<std::optional<QuarantinedImage>> QuarantineReplaced(
      const db::Volume& volume, std::string detail, std::chrono::seconds keep_for);
  // In the transaction that ends a restore or adoption: completes `op` with
  // `result` and pins the volume here, detached and healthy, its last_error
  // cleared.
  [[nodiscard]] Status CompletePinnedHere(db::Tx& tx, const RunningOperation& run,
                                          const db::Operation& op, const std::string& volume_id,
                                          const nlohmann::json& result);
  // After a failed restore or adoption: gives `replaced` (what
  // QuarantineReplaced took) back as the volume's image, so the volume keeps
  // the image it had; logs when it cannot (the image then stays held).
  void PutBack(const std::optional<QuarantinedImage>& replaced, const std::string& volume_id,
               const std::string& operation_id);
  // Grows the image and its filesystem (GrowImage) to request_metadata
  // size_gb, then records the size on the volume.
  [[nodiscard]] Status ExecuteGrow(RunningOperation& run, const db::Operation& op,
                                   const db::Volume& volume);
  [[nodiscard]] Status ExecuteRepair(RunningOperation& run, const db::Operation& op,
                                     const db::Volume& volume);
  [[nodiscard]] Status HandMoveToTarget(RunningOperation& run, const db::Operation& op);
  [[nodiscard]] Status FailAndRelease(RunningOperation& run, const db::Operation& op,
                                      const Error& error);
  void HandBack(const RunningOperation& run, const db::Operation& op);
  // Deletes the succeeded backups the volume's retention policy drops
  // (control/retention.h): objects first, then rows. Never fails: problems
  // come back as JSON for the result ({kept, deleted, errors}).
  std::string ApplyRetention(const db::Volume& volume, const StoreHandle& store);

  std::filesystem::path ImageOf(const std::string& volume_id) const;

  db::Database& db_;
  BackupStoreProvider& stores_;
  BusyVolumes& busy_;
  ImageQuarantine& quarantine_;
  const OperationRunnerOptions options_;
};

}  // namespace kindling::reconcile
