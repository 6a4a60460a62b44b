#include "db/operations.h"

#include "common/ids.h"
#include "db/internal.h"
#include "db/rows.h"

namespace kindling::db {
namespace {

using internal::kOperationColumns;
using internal::OperationFromRow;
using internal::OptText;
using internal::OptTime;
using internal::Text;
using internal::Time;

// The same columns qualified with the table alias `o`, for joins and
// UPDATE ... FROM.
constexpr char kOperationColumnsO[] =
    "o.id, o.project_volume_id, o.kind, o.status, o.server_id, o.request_metadata::text, "
    "o.result_metadata::text, o.error, o.started_at, o.completed_at, o.failed_at, o.created_at, "
    "o.updated_at, o.lease_owner, o.lease_expires_at, o.attempts, o.progress::text, "
    "o.request_metadata->>'backup_id', o.request_metadata->>'target_server_id', "
    "COALESCE((o.request_metadata->>'target_requested')::boolean, false)";

std::vector<Operation> OperationsFromResult(const pqxx::result& rows) {
  std::vector<Operation> out;
  for (const auto& r : rows) out.push_back(OperationFromRow(r));
  return out;
}

// Which kinds create (rather than read) the backup named in backup_id.
constexpr char kCreatesBackupSql[] = "o.kind IN ('backup', 'move')";

// nullopt: the operation does not touch the image (verify reads the store
// only), so the volume keeps its status.
std::optional<VolumeStatus> DefaultVolumeStatus(OperationKind kind) {
  switch (kind) {
    case OperationKind::kBackup:
      return VolumeStatus::kBackingUp;
    case OperationKind::kRestore:
    case OperationKind::kMove:
    case OperationKind::kAdopt:
      return VolumeStatus::kRestoring;
    case OperationKind::kRepair:
    case OperationKind::kGrow:  // offline maintenance of the image, as a repair
      return VolumeStatus::kRepairing;
    case OperationKind::kVerify:
      return std::nullopt;
  }
  return VolumeStatus::kBackingUp;
}

std::string NotifyPayload(const Operation& op) { return op.server_id.value_or("") + ":" + op.id; }

Status LeaseLost(const std::string& operation_id) {
  return Cancelled("lease on operation " + operation_id + " lost");
}

}  // namespace

Result<QueuedOperation> QueueOperation(Tx& tx, const QueueOperationRequest& req) {
  if (req.kind == OperationKind::kBackup && !req.create_backup)
    return InvalidArgument("a backup operation needs create_backup");
  if ((req.kind == OperationKind::kRestore || req.kind == OperationKind::kVerify) && !req.backup_id)
    return InvalidArgument("a " + std::string(Name(req.kind)) + " operation needs backup_id");
  if (req.create_backup && req.kind != OperationKind::kBackup && req.kind != OperationKind::kMove)
    return InvalidArgument("only backup and move operations create a backup");
  if (req.server_id.empty()) return InvalidArgument("an operation needs a server");

  KINDLING_ASSIGN_OR_RETURN(Volume volume, GetVolume(tx, req.volume_id, /*for_update=*/true));
  if (volume.deleted_at) return NotFound("volume " + req.volume_id + " not found");
  if (IsTransitional(volume.status)) {
    return InvalidArgument("volume " + req.volume_id + " is busy (" +
                           std::string(Name(volume.status)) + ")");
  }
  if (req.kind == OperationKind::kRestore || req.kind == OperationKind::kVerify) {
    KINDLING_ASSIGN_OR_RETURN(Backup source, GetBackup(tx, *req.backup_id));
    // Backups outlive their volume row: any volume of the same project.
    if (source.project_volume_id != volume.id) {
      KINDLING_ASSIGN_OR_RETURN(Volume owner, GetVolume(tx, source.project_volume_id));
      if (owner.project_id != volume.project_id)
        return InvalidArgument("backup " + source.id + " belongs to another project's volume");
    }
    const bool readable =
        source.status == BackupStatus::kSucceeded ||
        (req.kind == OperationKind::kVerify && source.status == BackupStatus::kDamaged);
    if (!readable)
      return InvalidArgument("backup " + source.id + " is " + std::string(Name(source.status)) +
                             ", not succeeded");
  }

  QueuedOperation queued;
  std::optional<std::string> backup_id = req.backup_id;
  if (req.create_backup) {
    KINDLING_ASSIGN_OR_RETURN(
        Backup created,
        CreateBackup(tx, NewBackup{.volume_id = volume.id, .kind = *req.create_backup}));
    backup_id = created.id;
    queued.backup = std::move(created);
  }
  const std::optional<VolumeStatus> status =
      req.volume_status ? req.volume_status : DefaultVolumeStatus(req.kind);
  if (status) {
    KINDLING_ASSIGN_OR_RETURN(
        queued.volume, UpdateVolumeState(tx, volume.id, VolumeStateUpdate{.status = status}));
  } else {
    queued.volume = volume;  // a copy: the insert below still needs volume.id
  }
  KINDLING_ASSIGN_OR_RETURN(
      queued.operation,
      internal::Run(tx, "queue operation", [&](pqxx::transaction_base& w) -> Result<Operation> {
        const pqxx::row row = internal::Exec1(
            w,
            std::string("INSERT INTO project_volume_operations (id, project_volume_id, kind, "
                        "  server_id, request_metadata) "
                        "VALUES ($1::uuid, $2::uuid, $3, $4::uuid, "
                        "  jsonb_strip_nulls(jsonb_build_object('backup_id', $5::text, "
                        "    'target_server_id', $6::text)) || $7::jsonb) "
                        "RETURNING ") +
                kOperationColumns,
            NewUuidV7(), queued.volume.id, std::string(Name(req.kind)), req.server_id, backup_id,
            req.target_server_id, req.extra_request_metadata_json);
        Operation op = OperationFromRow(row);
        internal::Notify(w, kOperationsChannel, NotifyPayload(op));
        return op;
      }));
  return queued;
}

Result<Operation> GetOperation(Tx& tx, const std::string& operation_id) {
  return internal::Run(tx, "get operation", [&](pqxx::transaction_base& w) -> Result<Operation> {
    const pqxx::result rows =
        internal::Exec(w,
                       std::string("SELECT ") + kOperationColumns +
                           " FROM project_volume_operations WHERE id = $1::uuid",
                       operation_id);
    if (rows.empty()) return NotFound("operation " + operation_id + " not found");
    return OperationFromRow(rows[0]);
  });
}

Result<std::optional<Operation>> FindActiveOperation(Tx& tx, const std::string& volume_id) {
  return internal::Run(
      tx, "find active operation",
      [&](pqxx::transaction_base& w) -> Result<std::optional<Operation>> {
        const pqxx::result rows = internal::Exec(
            w,
            std::string("SELECT ") + kOperationColumns +
                " FROM project_volume_operations "
                "WHERE project_volume_id = $1::uuid AND status IN ('pending', 'running')",
            volume_id);
        if (rows.empty()) return std::optional<Operation>();
        return std::optional<Operation>(OperationFromRow(rows[0]));
      });
}

Result<ProjectVolume> GetProjectVolume(Tx& tx, const std::string& project_id) {
  using internal::kProjectColumnCount, internal::kVolumeColumnCount;
  using internal::kProjectColumns, internal::kVolumeColumns, internal::ProjectFromRow;
  using internal::VolumeFromRow;
  return internal::Run(
      tx, "get project volume", [&](pqxx::transaction_base& w) -> Result<ProjectVolume> {
        // Each part is a subquery with its own column list, so that the
        // decoders read their usual columns from a slice of the row.
        const pqxx::result rows = internal::Exec(
            w,
            std::string(
                "SELECT p.*, v.*, o.*, b.last, b.verify_state, b.verified_at FROM (SELECT ") +
                kProjectColumns +
                " FROM projects WHERE id = $1::uuid) p "
                "LEFT JOIN LATERAL (SELECT " +
                kVolumeColumns +
                " FROM project_volumes WHERE project_id = p.id AND deleted_at IS NULL LIMIT 1) v "
                "ON true "
                "LEFT JOIN LATERAL (SELECT " +
                kOperationColumns +
                " FROM project_volume_operations WHERE project_volume_id = v.id "
                "AND status IN ('pending', 'running') LIMIT 1) o ON true "
                "LEFT JOIN LATERAL (SELECT completed_at AS last, verify_state, verified_at "
                "FROM project_volume_backups WHERE project_volume_id = v.id "
                "AND status = 'succeeded' ORDER BY completed_at DESC NULLS LAST LIMIT 1) b ON true",
            project_id);
        if (rows.empty()) return NotFound("project " + project_id + " not found");
        const pqxx::row& r = rows[0];
        constexpr int kVolumeAt = kProjectColumnCount;
        constexpr int kOperationAt = kVolumeAt + kVolumeColumnCount;
        constexpr int kLastAt = kOperationAt + internal::kOperationColumnCount;
        ProjectVolume out{.project = ProjectFromRow(r.slice(0, kVolumeAt))};
        if (r[kVolumeAt].is_null()) return out;
        out.volume = VolumeFromRow(r.slice(kVolumeAt, kOperationAt));
        if (!r[kOperationAt].is_null()) {
          out.active_operation = OperationFromRow(r.slice(kOperationAt, kLastAt));
        }
        out.last_successful_backup_at = OptTime(r[kLastAt]);
        if (!r[kLastAt + 1].is_null()) {
          out.last_backup_verify_state = internal::Enum<VerifyState>(r[kLastAt + 1]);
        }
        out.last_backup_verified_at = OptTime(r[kLastAt + 2]);
        return out;
      });
}

Result<std::optional<Operation>> FindActiveAdoption(Tx& tx, const std::string& quarantine_id) {
  return internal::Run(tx, "find active adoption",
                       [&](pqxx::transaction_base& w) -> Result<std::optional<Operation>> {
                         const pqxx::result rows = internal::Exec(
                             w,
                             std::string("SELECT ") + kOperationColumns +
                                 " FROM project_volume_operations "
                                 "WHERE kind = 'adopt' AND status IN ('pending', 'running') "
                                 "  AND request_metadata->>'quarantine_id' = $1",
                             quarantine_id);
                         if (rows.empty()) return std::optional<Operation>();
                         return std::optional<Operation>(OperationFromRow(rows[0]));
                       });
}

Result<std::vector<Operation>> ListVolumeOperations(Tx& tx, const std::string& volume_id,
                                                    int limit) {
  return internal::Run(
      tx, "list operations", [&](pqxx::transaction_base& w) -> Result<std::vector<Operation>> {
        return OperationsFromResult(
            internal::Exec(w,
                           std::string("SELECT ") + kOperationColumns +
                               " FROM project_volume_operations WHERE project_volume_id = $1::uuid "
                               "ORDER BY created_at DESC, id DESC LIMIT $2",
                           volume_id, std::max(limit, 1)));
      });
}

Result<std::optional<Operation>> ClaimNextOperation(
    Tx& tx, const std::string& server_id, const std::string& lease_owner,
    std::chrono::milliseconds lease_duration, const std::vector<std::string>& skip_volume_ids) {
  return internal::Run(
      tx, "claim operation", [&](pqxx::transaction_base& w) -> Result<std::optional<Operation>> {
        const pqxx::result rows = internal::Exec(
            w,
            std::string("WITH next AS ("
                        "  SELECT id FROM project_volume_operations "
                        "  WHERE status = 'pending' AND server_id = $1::uuid "
                        "    AND NOT (project_volume_id = ANY($4::uuid[])) "
                        "  ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) "
                        "UPDATE project_volume_operations o SET status = 'running', "
                        "  lease_owner = $2::uuid, "
                        "  lease_expires_at = now() + $3::bigint * interval '1 millisecond', "
                        "  attempts = o.attempts + 1, started_at = COALESCE(o.started_at, now()), "
                        "  updated_at = now() "
                        "FROM next WHERE o.id = next.id RETURNING ") +
                kOperationColumnsO,
            server_id, lease_owner, static_cast<long long>(lease_duration.count()),
            internal::PgTextArray(skip_volume_ids));
        if (rows.empty()) return std::optional<Operation>();
        Operation op = OperationFromRow(rows[0]);
        internal::Exec(
            w,
            std::string("UPDATE project_volume_backups b SET status = 'running', "
                        "  started_at = COALESCE(b.started_at, now()), updated_at = now() "
                        "FROM project_volume_operations o "
                        "WHERE o.id = $1::uuid AND ") +
                kCreatesBackupSql +
                " AND b.id::text = o.request_metadata->>'backup_id' "
                "  AND b.status = 'pending'",
            op.id);
        return std::optional<Operation>(std::move(op));
      });
}

Status RenewLease(Tx& tx, const std::string& operation_id, const std::string& lease_owner,
                  std::chrono::milliseconds lease_duration) {
  return internal::Run(tx, "renew lease", [&](pqxx::transaction_base& w) -> Status {
    const pqxx::result rows = internal::Exec(
        w,
        "UPDATE project_volume_operations "
        "SET lease_expires_at = now() + $3::bigint * interval '1 millisecond', updated_at = now() "
        "WHERE id = $1::uuid AND status = 'running' AND lease_owner = $2::uuid RETURNING id",
        operation_id, lease_owner, static_cast<long long>(lease_duration.count()));
    if (rows.empty()) return LeaseLost(operation_id);
    return {};
  });
}

Status UpdateProgress(Tx& tx, const std::string& operation_id, const std::string& lease_owner,
                      const std::string& progress_json) {
  return internal::Run(tx, "update progress", [&](pqxx::transaction_base& w) -> Status {
    const pqxx::result rows = internal::Exec(
        w,
        "UPDATE project_volume_operations SET progress = $3::jsonb, updated_at = now() "
        "WHERE id = $1::uuid AND status = 'running' AND lease_owner = $2::uuid RETURNING id",
        operation_id, lease_owner, progress_json);
    if (rows.empty()) return LeaseLost(operation_id);
    return {};
  });
}

Status MergeOperationRequest(Tx& tx, const std::string& operation_id,
                             const std::string& lease_owner, const std::string& json_object) {
  return internal::Run(tx, "record on the operation", [&](pqxx::transaction_base& w) -> Status {
    const pqxx::result rows = internal::Exec(
        w,
        "UPDATE project_volume_operations SET request_metadata = request_metadata || $3::jsonb, "
        "  updated_at = now() "
        "WHERE id = $1::uuid AND status = 'running' AND lease_owner = $2::uuid RETURNING id",
        operation_id, lease_owner, json_object);
    if (rows.empty()) return LeaseLost(operation_id);
    return {};
  });
}

Status MergeFinishedOperationResult(Tx& tx, const std::string& operation_id,
                                    const std::string& json_object) {
  return internal::Run(
      tx, "add to the operation's result", [&](pqxx::transaction_base& w) -> Status {
        const pqxx::result rows = internal::Exec(
            w,
            "UPDATE project_volume_operations SET result_metadata = result_metadata || $2::jsonb, "
            "  updated_at = now() "
            "WHERE id = $1::uuid AND status IN ('succeeded', 'failed') RETURNING id",
            operation_id, json_object);
        if (!rows.empty()) return {};
        const pqxx::result current = internal::Exec(
            w, "SELECT status FROM project_volume_operations WHERE id = $1::uuid", operation_id);
        if (current.empty()) return NotFound("operation " + operation_id + " not found");
        return InvalidArgument("operation " + operation_id + " is still " + Text(current[0][0]));
      });
}

Result<Operation> CompleteOperation(Tx& tx, const std::string& operation_id,
                                    const std::string& lease_owner,
                                    const std::string& result_metadata_json) {
  return internal::Run(
      tx, "complete operation", [&](pqxx::transaction_base& w) -> Result<Operation> {
        const pqxx::result rows = internal::Exec(
            w,
            std::string("UPDATE project_volume_operations SET status = 'succeeded', "
                        "  result_metadata = result_metadata || $3::jsonb, error = NULL, "
                        "  completed_at = now(), lease_owner = NULL, lease_expires_at = NULL, "
                        "  updated_at = now() "
                        "WHERE id = $1::uuid AND status = 'running' AND lease_owner = $2::uuid "
                        "RETURNING ") +
                kOperationColumns,
            operation_id, lease_owner, result_metadata_json);
        if (rows.empty()) return std::unexpected(LeaseLost(operation_id).error());
        return OperationFromRow(rows[0]);
      });
}

Result<Operation> FailOperation(Tx& tx, const std::string& operation_id,
                                const std::optional<std::string>& lease_owner,
                                const std::string& error) {
  return internal::Run(tx, "fail operation", [&](pqxx::transaction_base& w) -> Result<Operation> {
    const pqxx::result rows = internal::Exec(
        w,
        std::string("UPDATE project_volume_operations SET status = 'failed', error = $3, "
                    "  failed_at = now(), lease_owner = NULL, lease_expires_at = NULL, "
                    "  updated_at = now() "
                    "WHERE id = $1::uuid AND status IN ('pending', 'running') "
                    "  AND ($2::uuid IS NULL OR (status = 'running' AND lease_owner = $2::uuid)) "
                    "RETURNING ") +
            kOperationColumns,
        operation_id, lease_owner, error);
    if (rows.empty()) {
      if (lease_owner) return std::unexpected(LeaseLost(operation_id).error());
      const pqxx::result current = internal::Exec(
          w, "SELECT status FROM project_volume_operations WHERE id = $1::uuid", operation_id);
      if (current.empty()) return NotFound("operation " + operation_id + " not found");
      return InvalidArgument("operation " + operation_id + " is already " + Text(current[0][0]));
    }
    Operation op = OperationFromRow(rows[0]);
    internal::Exec(w,
                   std::string("UPDATE project_volume_backups b SET status = 'failed', "
                               "  error = $2, failed_at = now(), updated_at = now() "
                               "FROM project_volume_operations o "
                               "WHERE o.id = $1::uuid AND ") +
                       kCreatesBackupSql +
                       " AND b.id::text = o.request_metadata->>'backup_id' "
                       "  AND b.status IN ('pending', 'running')",
                   op.id, error);
    return op;
  });
}

Result<Operation> RequeueOperation(Tx& tx, const std::string& operation_id,
                                   const std::optional<std::string>& new_server_id,
                                   const std::optional<std::string>& new_target_server_id) {
  return internal::Run(
      tx, "requeue operation", [&](pqxx::transaction_base& w) -> Result<Operation> {
        const pqxx::result rows = internal::Exec(
            w,
            std::string("UPDATE project_volume_operations SET status = 'pending', "
                        "  server_id = COALESCE($2::uuid, server_id), lease_owner = NULL, "
                        "  lease_expires_at = NULL, updated_at = now(), "
                        "  request_metadata = CASE WHEN $3::text IS NULL THEN request_metadata "
                        "    ELSE request_metadata || jsonb_build_object('target_server_id', "
                        "$3::text) END "
                        "WHERE id = $1::uuid AND status IN ('pending', 'running') RETURNING ") +
                kOperationColumns,
            operation_id, new_server_id, new_target_server_id);
        if (rows.empty()) {
          const pqxx::result current = internal::Exec(
              w, "SELECT status FROM project_volume_operations WHERE id = $1::uuid", operation_id);
          if (current.empty()) return NotFound("operation " + operation_id + " not found");
          return InvalidArgument("operation " + operation_id + " is already " +
                                 Text(current[0][0]));
        }
        Operation op = OperationFromRow(rows[0]);
        internal::Exec(w,
                       std::string("UPDATE project_volume_backups b SET status = 'pending', "
                                   "  updated_at = now() "
                                   "FROM project_volume_operations o "
                                   "WHERE o.id = $1::uuid AND ") +
                           kCreatesBackupSql +
                           " AND b.id::text = o.request_metadata->>'backup_id' "
                           "  AND b.status = 'running'",
                       op.id);
        internal::Notify(w, kOperationsChannel, NotifyPayload(op));
        return op;
      });
}

Result<std::vector<Operation>> ListExpiredLeases(Tx& tx, int limit) {
  return internal::Run(
      tx, "list expired leases", [&](pqxx::transaction_base& w) -> Result<std::vector<Operation>> {
        return OperationsFromResult(
            internal::Exec(w,
                           std::string("SELECT ") + kOperationColumns +
                               " FROM project_volume_operations "
                               "WHERE status = 'running' AND lease_expires_at < now() "
                               "ORDER BY lease_expires_at, id LIMIT $1 FOR UPDATE SKIP LOCKED",
                           std::max(limit, 1)));
      });
}

Result<std::vector<Operation>> ListStuckPendingOperations(Tx& tx, std::chrono::seconds older_than,
                                                          int limit) {
  return internal::Run(
      tx, "list stuck operations",
      [&](pqxx::transaction_base& w) -> Result<std::vector<Operation>> {
        return OperationsFromResult(internal::Exec(
            w,
            std::string("SELECT ") + kOperationColumnsO +
                " FROM project_volume_operations o "
                "LEFT JOIN servers s ON s.id = o.server_id "
                "WHERE o.status = 'pending' AND (s.id IS NULL OR s.status <> 'active' "
                "  OR o.updated_at < now() - $1::bigint * interval '1 second') "
                "ORDER BY o.created_at, o.id LIMIT $2 FOR UPDATE OF o SKIP LOCKED",
            static_cast<long long>(older_than.count()), std::max(limit, 1)));
      });
}

Result<std::vector<OperationCount>> CountOperations(Tx& tx) {
  return internal::Run(
      tx, "count operations",
      [&](pqxx::transaction_base& w) -> Result<std::vector<OperationCount>> {
        std::vector<OperationCount> out;
        for (const auto& r :
             w.exec("SELECT kind, status, count(*), "
                    "count(*) FILTER (WHERE started_at IS NOT NULL AND completed_at IS NOT NULL), "
                    "coalesce(sum(extract(epoch FROM completed_at - started_at)::float8), 0), "
                    "coalesce(sum(CASE WHEN jsonb_typeof(progress->'bytes_done') = 'number' "
                    "THEN (progress->>'bytes_done')::float8 END), 0) "
                    "FROM project_volume_operations GROUP BY kind, status ORDER BY kind, status")) {
          out.push_back(OperationCount{.kind = internal::Enum<OperationKind>(r[0]),
                                       .status = internal::Enum<OperationStatus>(r[1]),
                                       .count = r[2].as<long long>(),
                                       .timed_count = r[3].as<long long>(),
                                       .duration_seconds = r[4].as<double>(),
                                       .bytes_done = r[5].as<double>()});
        }
        return out;
      });
}

namespace internal {

Operation OperationFromRow(const pqxx::row& r) {
  Operation o;
  o.id = Text(r[0]);
  o.project_volume_id = Text(r[1]);
  o.kind = internal::Enum<OperationKind>(r[2]);
  o.status = internal::Enum<OperationStatus>(r[3]);
  o.server_id = OptText(r[4]);
  o.request_metadata_json = Text(r[5]);
  o.result_metadata_json = Text(r[6]);
  o.error = OptText(r[7]);
  o.started_at = OptTime(r[8]);
  o.completed_at = OptTime(r[9]);
  o.failed_at = OptTime(r[10]);
  o.created_at = Time(r[11]);
  o.updated_at = Time(r[12]);
  o.lease_owner = OptText(r[13]);
  o.lease_expires_at = OptTime(r[14]);
  o.attempts = r[15].as<int>();
  o.progress_json = Text(r[16]);
  o.backup_id = OptText(r[17]);
  o.target_server_id = OptText(r[18]);
  o.target_requested = r[19].as<bool>();
  return o;
}

}  // namespace internal
}  // namespace kindling::db
