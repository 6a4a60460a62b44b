// VolumeService: the reference system's volume rules without HTTP. Every
// action checks, changes and audits in ONE transaction, so a refused request
// changes nothing (no operation, no status change, no audit row), and an
// accepted one is never recorded without its audit event.
//
// Checks before an operation is queued (reference order and codes):
//   404 not_found               no live volume for the project
//   409 volume_attached         a workload holds it, the request did not ask
//                               stop_workload, and (for a backup) its server
//                               cannot back it up live
//   400 validation_error        `validate` on a backup (restore, move only)
//   409 volume_busy             transitional status or an operation in flight
//   409 volume_unavailable      not pinned, pinned server gone, or no eligible
//                               worker (restore into an unpinned volume is
//                               allowed: that is the disaster-recovery case)
//   409 backup_store_unavailable backup settings incomplete (backup, restore,
//                               move, pre-delete backup)
//   400 validation_error        restore without backup_id, backup of another
//                               project's volume or not succeeded, target not
//                               eligible
//   409 backup_damaged          restore of a backup that references a chunk
//                               known to be damaged (names the image offsets)
//   404 not_found               restore of an unknown backup
//
// Backups outlive their volume: a restore into the project's current volume
// accepts a backup of any earlier volume of the same project (audited with
// details.source_volume_id), and restore and verify read the backup from the
// store it was written to, so only backups and moves need the current backup
// settings (a restore needs its store to be recorded, or a local directory).
//
// Running workloads. Backup, restore and move accept stop_workload: the
// volume may then be attached, and the operation is queued on the server
// whose VM holds it (which must not be dead), which stops the workload
// before anything else and starts it again after (on the volume's new
// server for a restore elsewhere or a move; reconcile/operation_workloads.h);
// a restore whose target is another server is handed there once the
// workload stopped. Restore and move accept validate: the target boots the
// verify mode on the new image first (reconcile/image_validator.h). Both
// flags go to request_metadata.
//
// Live backups. A backup of a running workload's volume without
// stop_workload is queued on the server whose VM holds it when that server's
// worker reports live_backups (its volumes directory takes reflink clones
// and it runs the VMs: reconcile/worker.h): the workload keeps running, the
// volume keeps status attached, and the worker pauses the VM only for the
// clone (request_metadata.live_snapshot; result pause_ms). Other servers get
// 409 volume_attached as before.
//
// Worker eligibility (restore, move, volume creation): active, heartbeat
// younger than 20 s, healthy "worker" component reporting a runtime; least
// loaded first, then hostname. Restore prefers the volume's current server.
// Backup and repair run on the pinned server; move runs on the pinned server
// with request_metadata.target_server_id naming where the volume ends up.
//
// Thread-safety: thread-safe (state lives in the database).
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "control/control_error.h"
#include "control/retention.h"
#include "control/worker_choice.h"
#include "crypto/aead.h"
#include "db/backups.h"
#include "db/database.h"
#include "db/operations.h"
#include "db/servers.h"
#include "db/volumes.h"

namespace kindling::control {

// Why an unavailable volume takes no operation or workload: its health and
// last_error, and what an operator can do.
std::string UnavailableVolumeMessage(const db::Volume& volume);

// What a backup, restore or move asks of the volume's workload.
struct WorkloadFlags {
  bool stop_workload = false;  // stop it for the operation, start it again after
  bool validate = false;       // restore, move: check the new image in a guest first
};

// Who acts, for audit events.
struct Actor {
  std::optional<std::string> user_id{};
  std::optional<std::string> request_ip{};
  std::optional<std::string> user_agent{};
};

// A volume as the API shows it.
struct VolumeView {
  db::Volume volume{};
  std::optional<db::Operation> current_operation{};
  std::optional<db::Timestamp> last_successful_backup_at{};
  // That backup's last verification (nullopt: never verified).
  std::optional<db::VerifyState> last_backup_verify_state{};
  std::optional<db::Timestamp> last_backup_verified_at{};
};

struct ProjectVolumeView {
  db::Project project{};
  std::optional<VolumeView> volume{};
};

struct DeleteVolumeOutcome {
  // Set when a pre-delete backup was queued (202); unset when deleted (204).
  std::optional<db::Operation> operation{};
};

struct VolumeServiceOptions {
  std::chrono::seconds max_heartbeat_age{20};
  // metadata.runtime values accepted; empty accepts any non-empty runtime.
  std::vector<std::string> runtimes{};
  // Wall clock for a changed schedule's next slot (tests inject one).
  std::function<std::chrono::system_clock::time_point()> now = [] {
    return std::chrono::system_clock::now();
  };
};

// Whether `server` backs up its running workloads' volumes live: active,
// and its worker's heartbeat reports live_backups (see above).
bool TakesLiveBackups(const db::Server& server);

class VolumeService {
 public:
  VolumeService(db::Database& db, const crypto::Key& master_key, VolumeServiceOptions options = {});

  // Eligible workers in the order they would be chosen.
  [[nodiscard]] Result<std::vector<db::EligibleWorker>> EligibleWorkers(db::Tx& tx) const;

  // The project and its live volume (unset when it has none), read in one
  // database round trip; 404 when the project does not exist. The caller
  // checks access to the project before it tells whether a volume exists.
  [[nodiscard]] ControlResult<ProjectVolumeView> GetProjectVolume(const std::string& project_id);
  // Creates the volume (pinned to the least loaded eligible worker, status
  // detached, health unknown; audited volume.create) or updates its settings
  // (audited volume.update with details.changed). `created` reports which.
  // The schedule (control/backup_schedule.h) is the current one with the
  // given changes: a backup_cron alone makes it cron, another kind alone
  // drops the expression; 400 validation_error when the result does not
  // compile. Whenever a schedule field is given (and on creation),
  // backup_next_at becomes the first slot after now. size_gb above the
  // cluster's maximum (admin_service.h) is a 400; below the current size a
  // 400 (volumes only grow); above it, on a volume whose image exists, it
  // queues a grow operation on the volume's worker (audited
  // volume.grow.queue; 409 volume_attached / volume_busy as for any
  // operation) and the row keeps its size until the grow succeeded.
  [[nodiscard]] ControlResult<VolumeView> PutVolume(const Actor& actor,
                                                    const std::string& project_id,
                                                    const db::VolumeSettingsUpdate& settings,
                                                    bool* created = nullptr);
  // Deletes (audited volume.delete), or queues the pre-delete backup first
  // when the volume asks for one (volume status `deleting`; the worker
  // deletes after the backup).
  [[nodiscard]] ControlResult<DeleteVolumeOutcome> DeleteVolume(const Actor& actor,
                                                                const std::string& project_id);
  // What the live volume's retention policy keeps and drops now, newest
  // first (control/retention.h: what the worker deletes after the next
  // backup). 404 when the project has no volume.
  [[nodiscard]] ControlResult<RetentionPreview> PreviewRetention(const std::string& project_id);
  // Every worker as a restore or move target of the project's live volume:
  // the eligible ones in the order they would be chosen, then the others
  // with why not (control/worker_choice.h). 404 when it has no volume.
  [[nodiscard]] ControlResult<std::vector<WorkerChoice>> RestoreTargets(
      const std::string& project_id);
  // The live volume's backups, newest first.
  [[nodiscard]] ControlResult<std::vector<db::Backup>> ListBackups(const std::string& project_id);
  // Backups of every volume the project has had (deleted ones and their
  // pre-delete backups included), newest first.
  [[nodiscard]] ControlResult<std::vector<db::ProjectBackup>> ListProjectBackups(
      const std::string& project_id);

  [[nodiscard]] ControlResult<db::Operation> QueueBackup(const Actor& actor,
                                                         const std::string& project_id,
                                                         WorkloadFlags flags = {});
  [[nodiscard]] ControlResult<db::Operation> QueueRestore(
      const Actor& actor, const std::string& project_id,
      const std::optional<std::string>& backup_id,
      const std::optional<std::string>& target_server_id, WorkloadFlags flags = {});
  [[nodiscard]] ControlResult<db::Operation> QueueMove(
      const Actor& actor, const std::string& project_id,
      const std::optional<std::string>& target_server_id, WorkloadFlags flags = {});
  [[nodiscard]] ControlResult<db::Operation> QueueRepair(const Actor& actor,
                                                         const std::string& project_id);
  // Verifies a backup of any volume of the project (succeeded or damaged),
  // on the volume's server when eligible, else on the least loaded eligible
  // worker. Needs the live volume (operations hang on it); the volume's
  // status is not changed, but it takes no other operation meanwhile. It
  // reads only the store, so a workload may keep the volume attached (409
  // volume_busy only, never volume_attached). `verify_round`: queued by that
  // scheduled verification round (control/backup_verification.h), recorded
  // as request_metadata.verify_round and in the audit event.
  [[nodiscard]] ControlResult<db::Operation> QueueVerify(
      const Actor& actor, const std::string& project_id, const std::string& backup_id,
      const std::optional<std::string>& verify_round = std::nullopt);
  // Pins (`pinned`) or unpins a backup of any volume the project has had
  // (deleted ones included), whatever its status: retention keeps a pinned
  // backup whatever the policy (control/retention.h). Audited
  // volume.backup.pinned / volume.backup.unpinned with details.changed
  // (false when it already was). 400 for an id that is not a UUID, 404 for
  // an unknown backup or one of another project's volume.
  [[nodiscard]] ControlResult<db::Backup> SetBackupPinned(const Actor& actor,
                                                          const std::string& project_id,
                                                          const std::string& backup_id,
                                                          bool pinned);
  // Makes a quarantined image the project's volume's image, on the server
  // holding it (which must be an eligible worker). The image must have
  // belonged to a volume of this project; an image of a volume the database
  // does not know only a platform admin may adopt. 404 for unknown entries
  // (or of other projects), 409 failed_precondition when not held.
  [[nodiscard]] ControlResult<db::Operation> QueueAdopt(const Actor& actor,
                                                        const std::string& project_id,
                                                        const std::string& quarantine_id,
                                                        bool platform_admin);

 private:
  [[nodiscard]] ControlResult<db::Operation> Queue(const Actor& actor,
                                                   const std::string& project_id,
                                                   db::OperationKind kind,
                                                   const std::optional<std::string>& backup_id,
                                                   const std::optional<std::string>& target,
                                                   WorkloadFlags flags = {});

  db::Database& db_;
  const crypto::Key master_key_;
  const VolumeServiceOptions options_;
};

// Writes an audit event in `tx`; `details_json` must be a JSON object without
// secret values.
[[nodiscard]] Status Audit(db::Tx& tx, const Actor& actor, const std::string& action,
                           const std::string& resource_type,
                           const std::optional<std::string>& resource_id,
                           const std::string& details_json);

}  // namespace kindling::control
