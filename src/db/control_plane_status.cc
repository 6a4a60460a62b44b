#include "db/control_plane_status.h"

#include "db/internal.h"

namespace kindling::db {

using internal::OptText;
using internal::Text;
using internal::Time;

Status PutControlPlaneBackupStatus(Tx& tx, const ControlPlaneBackupStatusInput& in) {
  return internal::Run(
      tx, "put control-plane backup status", [&](pqxx::transaction_base& w) -> Status {
        const pqxx::row object =
            internal::Exec1(w, "SELECT jsonb_typeof($1::jsonb) = 'object'", in.report_json);
        if (!object[0].as<bool>()) return InvalidArgument("the report is not a JSON object");
        internal::Exec(w,
                       "INSERT INTO control_plane_backup_status "
                       "  (stanza, ok, report, checked_at, server_id, hostname) "
                       "VALUES ($1, $2, $3::jsonb, now(), $4, $5) "
                       "ON CONFLICT (stanza) DO UPDATE SET ok = EXCLUDED.ok, "
                       "  report = EXCLUDED.report, checked_at = EXCLUDED.checked_at, "
                       "  server_id = EXCLUDED.server_id, hostname = EXCLUDED.hostname",
                       in.stanza, in.ok, in.report_json, in.server_id, in.hostname);
        return OkStatus();
      });
}

Result<std::optional<ControlPlaneBackupStatus>> GetControlPlaneBackupStatus(Tx& tx) {
  return internal::Run(
      tx, "get control-plane backup status",
      [&](pqxx::transaction_base& w) -> Result<std::optional<ControlPlaneBackupStatus>> {
        const pqxx::result rows = w.exec(
            "SELECT stanza, ok, report::text, checked_at, "
            "  extract(epoch FROM now() - checked_at)::float8, server_id, hostname "
            "FROM control_plane_backup_status ORDER BY checked_at DESC, stanza LIMIT 1");
        if (rows.empty()) return std::optional<ControlPlaneBackupStatus>();
        const pqxx::row& r = rows[0];
        ControlPlaneBackupStatus s;
        s.stanza = Text(r[0]);
        s.ok = r[1].as<bool>();
        s.report_json = Text(r[2]);
        s.checked_at = Time(r[3]);
        s.age_seconds = r[4].as<double>();
        s.server_id = OptText(r[5]);
        s.hostname = Text(r[6]);
        return std::optional(std::move(s));
      });
}

}  // namespace kindling::db
