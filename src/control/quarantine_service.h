// Quarantined volume images as operators see them: listing, and purge
// requests. The images themselves live on the workers that took them
// (reconcile/image_reconciler.h), which delete an entry on their next pass
// once its purge time has come; a purge request sets that time to now.
// Adoption is a volume operation (VolumeService::QueueAdopt).
//
// Thread-safety: free functions; state lives in the database.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "control/control_error.h"
#include "control/volume_service.h"
#include "db/database.h"
#include "db/quarantine.h"

namespace kindling::control {

// Entries matching `filter`, newest first.
[[nodiscard]] ControlResult<std::vector<db::QuarantineEntry>> ListQuarantinedImages(
    db::Database& db, const db::QuarantineFilter& filter);

// Asks the worker holding held entry `entry_id` to delete it now; audited
// volume.image.purge_requested. With `project_id` set (an organisation
// admin's request) the entry must be an image of a volume of that project
// (404 otherwise); unset (a platform admin) any entry. 409
// failed_precondition when the entry is not held or an adoption of it is in
// flight.
[[nodiscard]] ControlResult<db::QuarantineEntry> RequestImagePurge(
    db::Database& db, const Actor& actor, const std::string& entry_id,
    const std::optional<std::string>& project_id);

}  // namespace kindling::control
