#include "db/backup_verification.h"

#include <algorithm>

#include "db/internal.h"

namespace kindling::db {
namespace {

using internal::OptTime;
using internal::Text;

// FROM and WHERE of the verifiable backups: `b` the backup, `live` the live
// volume of its project.
constexpr char kVerifiable[] =
    "FROM project_volume_backups b "
    "JOIN project_volumes v ON v.id = b.project_volume_id "
    "JOIN project_volumes live ON live.project_id = v.project_id AND live.deleted_at IS NULL "
    "WHERE b.status IN ('succeeded', 'damaged') AND b.storage_url IS NOT NULL ";

}  // namespace

Status LockVerifyRounds(Tx& tx) {
  return internal::Run(tx, "lock verification rounds", [](pqxx::transaction_base& w) -> Status {
    internal::Exec(w, "SELECT pg_advisory_xact_lock($1)", kVerifyRoundLockKey);
    return OkStatus();
  });
}

Result<std::int64_t> CountVerifiableBackups(Tx& tx) {
  return internal::Run(tx, "count verifiable backups",
                       [](pqxx::transaction_base& w) -> Result<std::int64_t> {
                         return internal::Exec1(w, std::string("SELECT count(*) ") + kVerifiable)[0]
                             .as<std::int64_t>();
                       });
}

Result<VerifyOperationCounts> CountVerifyOperations(Tx& tx, const std::string& round_id) {
  return internal::Run(
      tx, "count verify operations",
      [&](pqxx::transaction_base& w) -> Result<VerifyOperationCounts> {
        const pqxx::row r = internal::Exec1(
            w,
            "SELECT (SELECT count(*) FROM project_volume_operations "
            "        WHERE kind = 'verify' AND status IN ('pending', 'running')), "
            "       (SELECT count(*) FROM project_volume_operations "
            "        WHERE kind = 'verify' AND request_metadata->>'verify_round' = $1)",
            round_id);
        return VerifyOperationCounts{.active = r[0].as<std::int64_t>(),
                                     .in_round = r[1].as<std::int64_t>()};
      });
}

Result<std::vector<VerifyCandidate>> ListVerifyCandidates(Tx& tx, Timestamp since,
                                                          const std::string& round_id, int limit) {
  return internal::Run(
      tx, "list verify candidates",
      [&](pqxx::transaction_base& w) -> Result<std::vector<VerifyCandidate>> {
        std::vector<VerifyCandidate> out;
        for (const auto& r : internal::Exec(
                 w,
                 std::string("SELECT id, project_id, volume_id, verified_at FROM ("
                             "  SELECT DISTINCT ON (live.id) b.id::text AS id, "
                             "    v.project_id::text AS project_id, live.id::text AS volume_id, "
                             "    b.verified_at, b.created_at ") +
                     kVerifiable +
                     "    AND (b.verified_at IS NULL OR b.verified_at < $1::timestamptz) "
                     "    AND live.status NOT IN ('backing_up', 'restoring', 'repairing', "
                     "                            'deleting') "
                     "    AND NOT EXISTS (SELECT 1 FROM project_volume_operations o "
                     "      WHERE o.kind = 'verify' AND o.request_metadata->>'verify_round' = $2 "
                     "        AND o.request_metadata->>'backup_id' = b.id::text) "
                     "    AND NOT EXISTS (SELECT 1 FROM project_volume_operations o "
                     "      WHERE o.project_volume_id = live.id "
                     "        AND o.status IN ('pending', 'running')) "
                     "  ORDER BY live.id, b.verified_at ASC NULLS FIRST, b.created_at, b.id"
                     ") c ORDER BY verified_at ASC NULLS FIRST, created_at, id LIMIT $3",
                 FormatTimestamp(since), round_id, std::max(limit, 0))) {
          out.push_back(VerifyCandidate{.backup_id = Text(r[0]),
                                        .project_id = Text(r[1]),
                                        .volume_id = Text(r[2]),
                                        .verified_at = OptTime(r[3])});
        }
        return out;
      });
}

}  // namespace kindling::db
