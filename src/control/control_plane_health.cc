#include "control/control_plane_health.h"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace kindling::control {

ControlResult<ControlPlaneHealth> GetControlPlaneHealth(db::Database& db) {
  auto status = db.Transact([](db::Tx& tx) { return db::GetControlPlaneBackupStatus(tx); },
                            db::TxOptions{.read_only = true});
  if (!status) return std::unexpected(FromError(status.error()));
  ControlPlaneHealth health;
  health.stale_after_seconds = static_cast<double>(kControlPlaneCheckStaleAfter.count());
  if (!*status) return health;
  health.status = std::move(**status);
  // A scheduler that checks less often than every 5 minutes says so.
  const nlohmann::json report = nlohmann::json::parse(health.status->report_json, nullptr, false);
  if (report.is_object() && report.contains("check_every_seconds") &&
      report["check_every_seconds"].is_number())
    health.stale_after_seconds =
        std::max(health.stale_after_seconds, 3 * report["check_every_seconds"].get<double>());
  health.stale = health.status->age_seconds > health.stale_after_seconds;
  return health;
}

}  // namespace kindling::control
