// control_plane_backup_status: the last check of the control-plane backups
// (pgBackRest), one row per stanza. The process that schedules the backups
// (service/control_plane_schedule.h, on the database host) writes it after
// every check; any API process reads it for GET /api/platform/health and
// /metrics. The report is a JSON object the writer composes (its problems,
// the last backup, the WAL archive's state); db/ stores it as it is.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/result.h"
#include "db/database.h"
#include "db/types.h"

namespace kindling::db {

// pg_try_advisory_lock key of the one process that schedules control-plane
// backups ("kindlcpb"): a lock of its own, not the leader's (see
// service/control_plane_schedule.h for why).
inline constexpr std::int64_t kControlPlaneBackupLockKey = 0x6b696e646c637062;

struct ControlPlaneBackupStatusInput {
  std::string stanza{};
  bool ok = false;
  std::string report_json = "{}";  // a JSON object; never secrets
  std::optional<std::string> server_id{};
  std::string hostname{};
};

struct ControlPlaneBackupStatus {
  std::string stanza{};
  bool ok = false;
  std::string report_json{};
  Timestamp checked_at{};  // the database's clock when it was written
  double age_seconds = 0;  // now() - checked_at, by the database's clock
  std::optional<std::string> server_id{};
  std::string hostname{};
};

// Replaces the stanza's row; checked_at is the database's now().
// kInvalidArgument when report_json is not a JSON object.
[[nodiscard]] Status PutControlPlaneBackupStatus(Tx& tx, const ControlPlaneBackupStatusInput& in);
// The most recently checked row; nullopt when nothing ever reported.
[[nodiscard]] Result<std::optional<ControlPlaneBackupStatus>> GetControlPlaneBackupStatus(Tx& tx);

}  // namespace kindling::db
