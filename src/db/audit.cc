#include "db/audit.h"

#include <algorithm>

#include "db/internal.h"

namespace kindling::db {

using internal::OptText;
using internal::Text;

Result<std::string> InsertAuditEvent(Tx& tx, const AuditEventInput& e) {
  if (e.action.empty()) return InvalidArgument("audit event without action");
  return internal::Run(
      tx, "insert audit event", [&](pqxx::transaction_base& w) -> Result<std::string> {
        const pqxx::result rows = internal::Exec(
            w,
            "INSERT INTO cluster_audit_events (user_id, action, resource_type, resource_id, "
            "details, "
            "  request_ip, user_agent) "
            "SELECT $1::uuid, $2, $3, $4, d, $6, $7 FROM (SELECT $5::jsonb AS d) j "
            "WHERE jsonb_typeof(d) = 'object' "
            "RETURNING id",
            e.user_id, e.action, e.resource_type, e.resource_id, e.details_json, e.request_ip,
            e.user_agent);
        if (rows.empty()) return InvalidArgument("audit details must be a JSON object");
        return Text(rows[0][0]);
      });
}

Result<std::vector<AuditEvent>> ListAuditEvents(Tx& tx, const AuditFilter& f) {
  const int limit = std::clamp(f.limit, 1, kMaxAuditListLimit);
  return internal::Run(
      tx, "list audit events", [&](pqxx::transaction_base& w) -> Result<std::vector<AuditEvent>> {
        const pqxx::result rows = internal::Exec(
            w,
            "SELECT id, user_id, action, resource_type, resource_id, details::text, request_ip, "
            "  user_agent, created_at FROM cluster_audit_events "
            "WHERE ($1::text IS NULL OR action = $1) "
            "  AND ($2::text IS NULL OR resource_type = $2) "
            "  AND ($3::text IS NULL OR resource_id = $3) "
            "  AND ($4::uuid IS NULL OR user_id = $4::uuid) "
            "  AND ($5::timestamptz IS NULL OR created_at >= $5::timestamptz) "
            "  AND ($6::timestamptz IS NULL OR created_at < $6::timestamptz) "
            "ORDER BY created_at DESC, id DESC LIMIT $7",
            f.action, f.resource_type, f.resource_id, f.user_id, internal::OptTimeParam(f.since),
            internal::OptTimeParam(f.before), limit);
        std::vector<AuditEvent> events;
        for (const auto& r : rows) {
          events.push_back(AuditEvent{Text(r[0]), OptText(r[1]), Text(r[2]), Text(r[3]),
                                      OptText(r[4]), Text(r[5]), OptText(r[6]), OptText(r[7]),
                                      internal::Time(r[8])});
        }
        return events;
      });
}

}  // namespace kindling::db
