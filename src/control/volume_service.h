// VolumeService: the reference system's volume rules without HTTP. Every
// action checks, changes and audits in ONE transaction, so a refused request
// changes nothing (no operation, no status change, no audit row), and an
// accepted one is never recorded without its audit event.
//
// Checks before an operation is queued (reference order and codes):
//   404 not_found               no live volume for the project
//   409 volume_attached         a workload holds it (backups are cold)
//   409 volume_busy             transitional status or an operation in flight
//   409 volume_unavailable      not pinned, pinned server gone, or no eligible
//                               worker (restore into an unpinned volume is
//                               allowed: that is the disaster-recovery case)
//   409 backup_store_unavailable backup settings incomplete (backup, restore,
//                               move, pre-delete backup)
//   400 validation_error        restore without backup_id, backup of another
//                               volume or not succeeded, target not eligible
//   404 not_found               restore of an unknown backup
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
#include <optional>
#include <string>
#include <vector>

#include "control/control_error.h"
#include "crypto/aead.h"
#include "db/backups.h"
#include "db/database.h"
#include "db/operations.h"
#include "db/servers.h"
#include "db/volumes.h"

namespace kindling::control {

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
};

struct DeleteVolumeOutcome {
  // Set when a pre-delete backup was queued (202); unset when deleted (204).
  std::optional<db::Operation> operation{};
};

struct VolumeServiceOptions {
  std::chrono::seconds max_heartbeat_age{20};
  // metadata.runtime values accepted; empty accepts any non-empty runtime.
  std::vector<std::string> runtimes{};
};

class VolumeService {
 public:
  VolumeService(db::Database& db, const crypto::Key& master_key, VolumeServiceOptions options = {});

  // Eligible workers in the order they would be chosen.
  [[nodiscard]] Result<std::vector<db::EligibleWorker>> EligibleWorkers(db::Tx& tx) const;

  [[nodiscard]] ControlResult<VolumeView> GetVolume(const std::string& project_id);
  // Creates the volume (pinned to the least loaded eligible worker, status
  // detached, health unknown; audited volume.create) or updates its settings
  // (audited volume.update with details.changed). `created` reports which.
  [[nodiscard]] ControlResult<VolumeView> PutVolume(const Actor& actor,
                                                    const std::string& project_id,
                                                    const db::VolumeSettingsUpdate& settings,
                                                    bool* created = nullptr);
  // Deletes (audited volume.delete), or queues the pre-delete backup first
  // when the volume asks for one (volume status `deleting`; the worker
  // deletes after the backup).
  [[nodiscard]] ControlResult<DeleteVolumeOutcome> DeleteVolume(const Actor& actor,
                                                                const std::string& project_id);
  // Newest first.
  [[nodiscard]] ControlResult<std::vector<db::Backup>> ListBackups(const std::string& project_id);

  [[nodiscard]] ControlResult<db::Operation> QueueBackup(const Actor& actor,
                                                         const std::string& project_id);
  [[nodiscard]] ControlResult<db::Operation> QueueRestore(
      const Actor& actor, const std::string& project_id,
      const std::optional<std::string>& backup_id,
      const std::optional<std::string>& target_server_id);
  [[nodiscard]] ControlResult<db::Operation> QueueMove(
      const Actor& actor, const std::string& project_id,
      const std::optional<std::string>& target_server_id);
  [[nodiscard]] ControlResult<db::Operation> QueueRepair(const Actor& actor,
                                                         const std::string& project_id);

 private:
  [[nodiscard]] ControlResult<db::Operation> Queue(const Actor& actor,
                                                   const std::string& project_id,
                                                   db::OperationKind kind,
                                                   const std::optional<std::string>& backup_id,
                                                   const std::optional<std::string>& target);

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
