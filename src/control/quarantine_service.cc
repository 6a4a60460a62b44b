#include "control/quarantine_service.h"

#include <nlohmann/json.hpp>

#include "common/ids.h"
#include "db/operations.h"
#include "db/volumes.h"

namespace kindling::control {

using nlohmann::json;

ControlResult<std::vector<db::QuarantineEntry>> ListQuarantinedImages(
    db::Database& db, const db::QuarantineFilter& filter) {
  return TransactChecked<std::vector<db::QuarantineEntry>>(
      db, [&](db::Tx& tx, std::optional<ControlError>&) { return db::ListQuarantine(tx, filter); });
}

ControlResult<db::QuarantineEntry> RequestImagePurge(db::Database& db, const Actor& actor,
                                                     const std::string& entry_id,
                                                     const std::optional<std::string>& project_id) {
  if (!IsUuid(entry_id)) return Refuse(400, kCodeValidation, "quarantine id is not a UUID");
  return TransactChecked<db::QuarantineEntry>(
      db, [&](db::Tx& tx, std::optional<ControlError>& refusal) -> Result<db::QuarantineEntry> {
        const std::string unknown = "quarantined image " + entry_id + " not found";
        auto entry = db::GetQuarantineEntry(tx, entry_id, /*for_update=*/true);
        if (!entry && !entry.error().is_not_found()) return std::unexpected(entry.error());
        if (entry && project_id) {
          auto owner = db::GetVolume(tx, entry->project_volume_id);
          if (!owner && !owner.error().is_not_found()) return std::unexpected(owner.error());
          if (!owner || owner->project_id != *project_id) entry = NotFound(unknown);
        }
        if (!entry) {
          refusal = ControlError{404, kCodeNotFound, unknown};
          return Refused();
        }
        if (entry->status != db::QuarantineStatus::kHeld) {
          refusal = ControlError{
              409, kCodeFailedPrecondition,
              "quarantined image " + entry_id + " is " + std::string(db::Name(entry->status))};
          return Refused();
        }
        KINDLING_ASSIGN_OR_RETURN(auto adoption, db::FindActiveAdoption(tx, entry_id));
        if (adoption) {
          refusal = ControlError{409, kCodeFailedPrecondition,
                                 "quarantined image " + entry_id + " is being adopted (operation " +
                                     adoption->id + ")"};
          return Refused();
        }
        KINDLING_ASSIGN_OR_RETURN(db::QuarantineEntry requested,
                                  db::RequestQuarantinePurge(tx, entry_id));
        KINDLING_RETURN_IF_ERROR(
            Audit(tx, actor, "volume.image.purge_requested", "project_volume",
                  requested.project_volume_id,
                  json{{"entry_id", entry_id},
                       {"server_id", requested.server_id},
                       {"reason", std::string(db::Name(requested.reason))},
                       {"size_bytes", requested.size_bytes},
                       {"image_sha256",
                        requested.image_sha256 ? json(*requested.image_sha256) : json(nullptr)}}
                      .dump()));
        return requested;
      });
}

}  // namespace kindling::control
