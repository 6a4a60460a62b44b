#include "control/store_gc.h"

#include <nlohmann/json.hpp>
#include <string>

#include "control/backup_store.h"
#include "db/audit.h"

namespace kindling::control {
namespace {

using nlohmann::json;

constexpr char kSucceeded[] = "backup_store.gc.succeeded";
constexpr char kFailed[] = "backup_store.gc.failed";
constexpr char kResourceType[] = "backup_store";

Status Audit(db::Database& db, const char* action, const std::string& url, json details) {
  details["storage_url"] = url;
  return db.Transact([&](db::Tx& tx) -> Status {
    KINDLING_ASSIGN_OR_RETURN(std::string id,
                              db::InsertAuditEvent(tx, db::AuditEventInput{
                                                           .action = action,
                                                           .resource_type = kResourceType,
                                                           .resource_id = url,
                                                           .details_json = details.dump(),
                                                       }));
    (void)id;
    return OkStatus();
  });
}

}  // namespace

Result<std::optional<engine::GcReport>> CollectStoreGarbageIfDue(db::Database& db,
                                                                 const crypto::Key& master_key,
                                                                 const StoreGcSchedule& schedule) {
  if (schedule.every.count() <= 0) return std::nullopt;
  auto opened = OpenCurrentBackupStore(db, master_key);
  if (!opened) {
    // No usable settings: nothing to collect (backups fail with the reason).
    if (opened.error().kind() == ErrorKind::kInvalidArgument) return std::nullopt;
    return std::unexpected(opened.error());
  }
  const std::string url = opened->url;
  KINDLING_ASSIGN_OR_RETURN(std::vector<db::AuditEvent> last, db.Transact([&](db::Tx& tx) {
    return db::ListAuditEvents(
        tx, db::AuditFilter{.action = kSucceeded, .resource_id = url, .limit = 1});
  }));
  if (!last.empty() && schedule.now() - last.front().created_at < schedule.every) {
    return std::nullopt;
  }
  engine::GcOptions options;
  options.grace = schedule.grace;
  options.timing = schedule.timing;
  options.cancel = schedule.cancel;
  options.log = schedule.log;
  auto report = engine::CollectGarbage(*opened->repository, options);
  if (!report) {
    if (report.error().kind() != ErrorKind::kAlreadyExists &&
        report.error().kind() != ErrorKind::kCancelled) {
      // The collection's error is what the caller reports; a failure to
      // audit it too adds nothing.
      (void)Audit(db, kFailed, url, json{{"error", report.error().message()}});
    }
    return std::unexpected(report.error());
  }
  KINDLING_RETURN_IF_ERROR(Audit(db, kSucceeded, url, engine::GcReportJson(*report)));
  return std::optional<engine::GcReport>(*report);
}

}  // namespace kindling::control
