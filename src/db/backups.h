// project_volume_backups: one row per backup of a volume. The object store
// holds the data and a backup is committed by its manifest there; the row
// records that (status succeeded, storage_url/key, size) and the history.
//
// Life cycle: pending (queued with its operation) -> running (claimed) ->
// succeeded | failed. A succeeded backup becomes `damaged` while a chunk it
// references is known to be missing or corrupt in its store (`damage` says
// which, at which image offsets) and `succeeded` again once a later backup
// stored that chunk again. Retention deletes rows after their objects are
// gone, never a pinned one's. Rows outlive their volume (deleted volumes keep
// their row). verified_at/verify_state record the last verify operation that
// finished on the backup (reconcile/operation_runner.h), whoever queued it.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "db/database.h"
#include "db/types.h"

namespace kindling::db {

struct Backup {
  std::string id{};
  std::string project_volume_id{};
  BackupKind kind = BackupKind::kManual;
  BackupStatus status = BackupStatus::kPending;
  std::optional<std::string> storage_url{};
  std::optional<std::string> storage_key{};
  std::optional<std::int64_t> size_bytes{};
  std::optional<std::string> error{};
  std::string metadata_json = "{}";
  // While damaged: {"chunks": [{"chunk_id", "problem", "offsets"}], ...}.
  std::optional<std::string> damage_json{};
  std::optional<Timestamp> started_at{};
  std::optional<Timestamp> completed_at{};
  std::optional<Timestamp> failed_at{};
  Timestamp created_at{};
  Timestamp updated_at{};
  // An operator pinned it: retention keeps it whatever the policy.
  bool pinned = false;
  // When a verify last finished on it (the database's clock) and what it
  // found; both unset until one did.
  std::optional<Timestamp> verified_at{};
  std::optional<VerifyState> verify_state{};
};

struct NewBackup {
  std::string volume_id{};
  BackupKind kind = BackupKind::kManual;
  // Defaults to a new UUIDv7, so backup ids sort by creation time like the
  // engine's store keys.
  std::optional<std::string> id{};
  std::string metadata_json = "{}";
};

// A pending backup row. kInvalidArgument for an unknown volume.
[[nodiscard]] Result<Backup> CreateBackup(Tx& tx, const NewBackup& backup);
// kNotFound. `for_update` locks the row until the transaction ends (what
// keeps a pin and a retention deletion of the same backup apart).
[[nodiscard]] Result<Backup> GetBackup(Tx& tx, const std::string& backup_id,
                                       bool for_update = false);

// Sets `pinned` (whatever the status). kNotFound when missing.
[[nodiscard]] Result<Backup> SetBackupPinned(Tx& tx, const std::string& backup_id, bool pinned);

// verified_at = now(), verify_state = `state`: a verify operation finished
// on it. kNotFound when missing.
[[nodiscard]] Result<Backup> RecordBackupVerification(Tx& tx, const std::string& backup_id,
                                                      VerifyState state);

// The volume's backups, newest first.
[[nodiscard]] Result<std::vector<Backup>> ListBackups(Tx& tx, const std::string& volume_id,
                                                      int limit = 100);

// Backups of every volume the project has had (deleted ones included),
// newest first, with their volume.
struct ProjectBackup {
  Backup backup{};
  bool volume_deleted = false;
};
[[nodiscard]] Result<std::vector<ProjectBackup>> ListProjectBackups(Tx& tx,
                                                                    const std::string& project_id,
                                                                    int limit = 500);

// Per live volume, the age of its newest succeeded backup (damaged ones do not
// count: they may not restore), for /metrics; one aggregate query.
struct VolumeBackupAge {
  std::string volume_id{};
  std::string project_id{};
  bool has_backup = false;
  // Seconds since that backup completed; without one, since the volume was
  // created, so that an alert on the age also fires for a volume never
  // backed up.
  double age_seconds = 0;
};
[[nodiscard]] Result<std::vector<VolumeBackupAge>> ListVolumeBackupAges(Tx& tx);

// Succeeded or damaged backups recorded in the store at `storage_url`.
[[nodiscard]] Result<std::vector<Backup>> ListStoreBackups(Tx& tx, const std::string& storage_url);

// succeeded|damaged -> damaged with `damage_json`. kInvalidArgument from any
// other status.
[[nodiscard]] Result<Backup> MarkBackupDamaged(Tx& tx, const std::string& backup_id,
                                               const std::string& damage_json);
// damaged -> succeeded, clearing damage. kInvalidArgument from any other
// status.
[[nodiscard]] Result<Backup> MarkBackupHealed(Tx& tx, const std::string& backup_id);

// pending -> running (started_at set once; a retried backup keeps it).
// kNotFound when missing; kInvalidArgument when already finished.
[[nodiscard]] Result<Backup> MarkBackupRunning(Tx& tx, const std::string& backup_id);

struct BackupSuccess {
  std::string storage_url{};  // e.g. "s3://bucket/prefix" or "file:///srv/backups"
  std::string storage_key{};  // where the manifest (the commit point) lives
  std::int64_t size_bytes = 0;
  // Merged into metadata (stored bytes, chunks, image digest...).
  std::string metadata_json = "{}";
};

// -> succeeded, clearing error. kInvalidArgument when already failed.
[[nodiscard]] Result<Backup> MarkBackupSucceeded(Tx& tx, const std::string& backup_id,
                                                 const BackupSuccess& success);
// -> failed with `error`. kInvalidArgument when already succeeded.
[[nodiscard]] Result<Backup> MarkBackupFailed(Tx& tx, const std::string& backup_id,
                                              const std::string& error);

// The volume's succeeded backups, newest first (by completion), each with
// whether a pending or running operation refers to it (a restore in flight
// keeps its source): what a retention policy chooses from (pinned ones
// included: the policy keeps them). Damaged and failed backups are not
// listed; retention never deletes them.
struct RetentionInput {
  Backup backup{};
  bool in_use = false;
};
[[nodiscard]] Result<std::vector<RetentionInput>> ListRetentionInputs(Tx& tx,
                                                                      const std::string& volume_id);

// Deletes the row (after its objects were removed). True when it existed.
[[nodiscard]] Result<bool> DeleteBackup(Tx& tx, const std::string& backup_id);

// A backup found committed in a store (its manifest) that the database has
// no row for, e.g. made after the snapshot a restored database came from.
struct ImportedBackup {
  std::string id{};
  std::string volume_id{};
  BackupKind kind = BackupKind::kManual;
  std::string storage_url{};
  std::string storage_key{};
  std::int64_t size_bytes = 0;
  std::string metadata_json = "{}";
  // The manifest's creation time: the row's created_at and completed_at.
  Timestamp created_at{};
  // The engine's duration: started_at is created_at minus this.
  std::chrono::milliseconds duration{0};
};

// Inserts the row `succeeded`. False (and nothing changes) when a row with
// that id exists, so importing twice is harmless. kNotFound when the volume
// does not exist (deleted volumes exist).
[[nodiscard]] Result<bool> ImportBackup(Tx& tx, const ImportedBackup& backup);

// failed -> succeeded, for a failed backup whose manifest was found in its
// store after all (the worker committed it and lost its lease before
// recording it): as MarkBackupSucceeded, with completed_at `completed_at`
// and the old error kept as metadata.previous_error. kInvalidArgument from
// any other status.
[[nodiscard]] Result<Backup> RecoverFailedBackup(Tx& tx, const std::string& backup_id,
                                                 const BackupSuccess& success,
                                                 Timestamp completed_at);

// The status of each of `backup_ids` that has a row (ids that are not UUIDs
// have none).
[[nodiscard]] Result<std::map<std::string, BackupStatus>> FindBackupStatuses(
    Tx& tx, const std::vector<std::string>& backup_ids);

// Every storage_url backup rows name, sorted.
[[nodiscard]] Result<std::vector<std::string>> ListBackupStorageUrls(Tx& tx);

// completed_at of the volume's newest succeeded backup.
[[nodiscard]] Result<std::optional<Timestamp>> LastSuccessfulBackupAt(Tx& tx,
                                                                      const std::string& volume_id);

}  // namespace kindling::db
