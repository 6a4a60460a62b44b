// The control-plane backup health every API process can report: the last
// check the scheduling process (service/control_plane_schedule.h) stored in
// control_plane_backup_status, and whether it is recent enough to trust.
//
// Stale: the last check is older than max(kControlPlaneCheckStaleAfter, 3 x
// the check interval the scheduler reported), i.e. no process on the
// database host has checked lately (none runs, or it lost its lock and no
// other took over). Not configured: nothing ever reported.
//
// Thread-safety: free functions over a thread-safe Database.
#pragma once

#include <chrono>
#include <optional>

#include "control/control_error.h"
#include "db/control_plane_status.h"
#include "db/database.h"

namespace kindling::control {

inline constexpr std::chrono::seconds kControlPlaneCheckStaleAfter{15 * 60};

struct ControlPlaneHealth {
  // nullopt: no process ever reported (control-plane backups not scheduled).
  std::optional<db::ControlPlaneBackupStatus> status;
  bool stale = false;
  double stale_after_seconds = 0;

  bool configured() const { return status.has_value(); }
  // Reported, fresh and without problems.
  bool healthy() const { return status && status->ok && !stale; }
};

[[nodiscard]] ControlResult<ControlPlaneHealth> GetControlPlaneHealth(db::Database& db);

}  // namespace kindling::control
