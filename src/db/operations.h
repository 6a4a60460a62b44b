// project_volume_operations: the work queue between the API and workers.
//
// An operation is a row. QueueOperation inserts it `pending` for one server,
// sets the volume's transitional status and creates the backup row, all in
// the caller's transaction, and announces it with
// pg_notify('kindling_operations', "<server_id>:<operation_id>"). A worker
// claims its oldest pending operation with SELECT ... FOR UPDATE SKIP LOCKED
// (two workers never get the same row) and holds a lease (lease_owner, a
// fencing token the worker draws at random for that one claim, and
// lease_expires_at) that it renews while working. The leader's sweep finds
// expired leases and stuck pending operations and requeues them (on another
// eligible server) or fails them.
//
// A partial unique index keeps at most one pending/running operation per
// volume, so a volume never has two operations in flight.
//
// Lease-checked calls (RenewLease, UpdateProgress, MergeOperationRequest,
// CompleteOperation and FailOperation with an owner) return kCancelled when
// the lease is lost: the operation is no longer running under that claim's
// token (the sweep took it over, maybe re-queued it and it was claimed again,
// even by the same process). The execution holding the stale token must then
// stop and leave the row alone. Tokens are per claim, not per process, so an
// execution that outlived its lease (a database stall longer than the lease)
// can never write over the claim that replaced it.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "db/backups.h"
#include "db/database.h"
#include "db/projects.h"
#include "db/types.h"
#include "db/volumes.h"

namespace kindling::db {

inline constexpr char kOperationsChannel[] = "kindling_operations";

struct Operation {
  std::string id{};
  std::string project_volume_id{};
  OperationKind kind = OperationKind::kBackup;
  OperationStatus status = OperationStatus::kPending;
  std::optional<std::string> server_id{};  // the executing server
  std::string request_metadata_json = "{}";
  std::string result_metadata_json = "{}";
  std::optional<std::string> error{};
  std::optional<Timestamp> started_at{};
  std::optional<Timestamp> completed_at{};
  std::optional<Timestamp> failed_at{};
  Timestamp created_at{};
  Timestamp updated_at{};
  std::optional<std::string> lease_owner{};
  std::optional<Timestamp> lease_expires_at{};
  int attempts = 0;  // claims so far
  std::string progress_json = "{}";
  // From request_metadata: the backup created (backup, move) or restored
  // (restore), and the restore/move destination.
  std::optional<std::string> backup_id{};
  std::optional<std::string> target_server_id{};
  // request_metadata.target_requested: the caller chose target_server_id (a
  // retry must not put the volume elsewhere).
  bool target_requested = false;
};

struct QueueOperationRequest {
  std::string volume_id{};
  OperationKind kind = OperationKind::kBackup;
  std::string server_id{};  // who executes it
  // restore (succeeded) and verify (succeeded or damaged): the backup, of
  // this volume or an earlier volume of the same project.
  std::optional<std::string> backup_id{};
  // restore/move: where the volume ends up (recorded in request_metadata).
  std::optional<std::string> target_server_id{};
  // backup (required) and move (optional): create a pending backup row of
  // this kind; its id goes to request_metadata.backup_id.
  std::optional<BackupKind> create_backup{};
  // The volume's status while the operation is in flight; defaults by kind
  // (backing_up, restoring for restore, move and adopt, repairing for
  // repair and grow; verify leaves it as it is). `deleting` for a pre-delete
  // backup.
  std::optional<VolumeStatus> volume_status{};
  // A JSON object merged into request_metadata.
  std::string extra_request_metadata_json = "{}";
};

struct QueuedOperation {
  Operation operation{};
  std::optional<Backup> backup{};  // when create_backup was set
  Volume volume{};                 // after the status change
};

// kNotFound: the volume (live) or the restore/verify backup does not exist.
// kInvalidArgument: the volume is busy (transitional status, or an
// operation in flight), the restore/verify backup belongs to another
// project's volume or is not readable (restore: succeeded; verify: succeeded
// or damaged), or the request is inconsistent (backup without create_backup,
// restore or verify without backup_id).
[[nodiscard]] Result<QueuedOperation> QueueOperation(Tx& tx, const QueueOperationRequest& request);

[[nodiscard]] Result<Operation> GetOperation(Tx& tx, const std::string& operation_id);

// The volume's pending or running operation, if any (volume JSON's
// current_operation).
[[nodiscard]] Result<std::optional<Operation>> FindActiveOperation(Tx& tx,
                                                                   const std::string& volume_id);

// A project with its live volume, that volume's pending or running operation
// and the completion time and verification of its newest successful backup,
// read by one statement (the API's GET /api/projects/{id}/volume).
struct ProjectVolume {
  Project project{};
  std::optional<Volume> volume{};               // nullopt: the project has no live volume
  std::optional<Operation> active_operation{};  // only with a volume
  std::optional<Timestamp> last_successful_backup_at{};
  // That backup's last verification (nullopt: never verified).
  std::optional<VerifyState> last_backup_verify_state{};
  std::optional<Timestamp> last_backup_verified_at{};
};
// kNotFound when the project does not exist.
[[nodiscard]] Result<ProjectVolume> GetProjectVolume(Tx& tx, const std::string& project_id);

// The pending or running adoption of quarantined image `quarantine_id`
// (request_metadata.quarantine_id), if any.
[[nodiscard]] Result<std::optional<Operation>> FindActiveAdoption(Tx& tx,
                                                                  const std::string& quarantine_id);

// The volume's operations, newest first.
[[nodiscard]] Result<std::vector<Operation>> ListVolumeOperations(Tx& tx,
                                                                  const std::string& volume_id,
                                                                  int limit = 50);

// Claims `server_id`'s oldest pending operation whose volume is not in
// `skip_volume_ids` (the volumes the claiming process is still busy with):
// running, lease_owner = `lease_owner` (a UUID new for this claim: the
// fencing token every later lease-checked call passes), lease for
// `lease_duration`, attempts + 1, started_at set once; a backup it creates
// goes running too. nullopt when there is none (or all are being claimed by
// others right now).
[[nodiscard]] Result<std::optional<Operation>> ClaimNextOperation(
    Tx& tx, const std::string& server_id, const std::string& lease_owner,
    std::chrono::milliseconds lease_duration, const std::vector<std::string>& skip_volume_ids = {});

// Extends the lease to now + `lease_duration`. kCancelled when lost.
[[nodiscard]] Status RenewLease(Tx& tx, const std::string& operation_id,
                                const std::string& lease_owner,
                                std::chrono::milliseconds lease_duration);

// Replaces progress (a JSON object: phase, bytes_done, bytes_total...).
// kCancelled when the lease is lost.
[[nodiscard]] Status UpdateProgress(Tx& tx, const std::string& operation_id,
                                    const std::string& lease_owner,
                                    const std::string& progress_json);

// Merges `json_object` into request_metadata of a running operation that
// `lease_owner` holds (what an attempt learnt that a later one, maybe on
// another server, must know). kCancelled when the lease is lost.
[[nodiscard]] Status MergeOperationRequest(Tx& tx, const std::string& operation_id,
                                           const std::string& lease_owner,
                                           const std::string& json_object);

// Merges `json_object` into result_metadata of a finished (succeeded or
// failed) operation: what is learnt after its end (a workload started
// again). kInvalidArgument while it is unfinished, kNotFound when missing.
[[nodiscard]] Status MergeFinishedOperationResult(Tx& tx, const std::string& operation_id,
                                                  const std::string& json_object);

// running -> succeeded; merges `result_metadata_json` into result_metadata
// and drops the lease. The caller updates the volume and backup rows in the
// same transaction. kCancelled when the lease is lost.
[[nodiscard]] Result<Operation> CompleteOperation(Tx& tx, const std::string& operation_id,
                                                  const std::string& lease_owner,
                                                  const std::string& result_metadata_json = "{}");

// pending/running -> failed with `error`; drops the lease and fails the
// backup row the operation created (if not finished). With `lease_owner`
// set, kCancelled when the lease is lost; without (the sweep), any
// unfinished operation. kInvalidArgument when already finished. The caller
// resets the volume's status in the same transaction.
[[nodiscard]] Result<Operation> FailOperation(Tx& tx, const std::string& operation_id,
                                              const std::optional<std::string>& lease_owner,
                                              const std::string& error);

// Back to pending (lease dropped), optionally on another server, and
// announced again; the backup it creates goes back to pending. For the
// sweep. `new_target_server_id` also rewrites request_metadata's
// target_server_id (a restore re-aimed at another worker). kInvalidArgument
// when already finished.
[[nodiscard]] Result<Operation> RequeueOperation(
    Tx& tx, const std::string& operation_id,
    const std::optional<std::string>& new_server_id = std::nullopt,
    const std::optional<std::string>& new_target_server_id = std::nullopt);

// Running operations whose lease expired, oldest expiry first, locked FOR
// UPDATE SKIP LOCKED until the transaction ends (so two sweeps never handle
// the same one, and a worker's renewal waits for the decision).
[[nodiscard]] Result<std::vector<Operation>> ListExpiredLeases(Tx& tx, int limit = 100);

// Pending operations nobody is picking up: assigned to a server that is not
// `active`, or pending for longer than `older_than`. Locked like
// ListExpiredLeases.
[[nodiscard]] Result<std::vector<Operation>> ListStuckPendingOperations(
    Tx& tx, std::chrono::seconds older_than, int limit = 100);

struct OperationCount {
  OperationKind kind{};
  OperationStatus status{};
  long long count = 0;
  // Of those with started_at and completed_at (succeeded ones): how many,
  // and their summed completed_at - started_at.
  long long timed_count = 0;
  double duration_seconds = 0;
  // Summed progress.bytes_done (where it is a number).
  double bytes_done = 0;
};

// Counts and sums by kind and status over every operation of every volume
// (deleted ones too), in one query whatever the number of volumes: GET
// /metrics runs it on every scrape. Ordered by kind, then status.
[[nodiscard]] Result<std::vector<OperationCount>> CountOperations(Tx& tx);

}  // namespace kindling::db
