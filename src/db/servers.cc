#include "db/servers.h"

#include <map>

#include "db/internal.h"

namespace kindling::db {
namespace {

using internal::OptText;
using internal::OptTime;
using internal::Text;
using internal::Time;

// Heartbeats written by transactions that started after ours can be "newer"
// than our now(); ages clamp at zero (GREATEST alone would turn NULL into 0).
constexpr char kServerColumns[] =
    "id, hostname, internal_ip, status, last_heartbeat_at, enabled_components, created_at, "
    "updated_at, CASE WHEN last_heartbeat_at IS NOT NULL THEN "
    "  GREATEST(0, EXTRACT(EPOCH FROM (now() - last_heartbeat_at)))::float8 END";

Server ServerFromRow(const pqxx::row& r) {
  Server s;
  s.id = Text(r[0]);
  s.hostname = Text(r[1]);
  s.internal_ip = Text(r[2]);
  s.status = internal::Enum<ServerStatus>(r[3]);
  s.last_heartbeat_at = OptTime(r[4]);
  s.enabled_components = internal::TextArray(r[5]);
  s.created_at = Time(r[6]);
  s.updated_at = Time(r[7]);
  if (!r[8].is_null()) s.heartbeat_age_seconds = r[8].as<double>();
  return s;
}

constexpr char kComponentColumns[] =
    "server_id, component, status, observed_at, last_success_at, last_error_at, "
    "last_error_message, metadata::text, metadata->>'runtime'";

ComponentStatus ComponentFromRow(const pqxx::row& r) {
  ComponentStatus c;
  c.server_id = Text(r[0]);
  c.component = Text(r[1]);
  c.status = internal::Enum<ComponentHealth>(r[2]);
  c.observed_at = Time(r[3]);
  c.last_success_at = OptTime(r[4]);
  c.last_error_at = OptTime(r[5]);
  c.last_error_message = OptText(r[6]);
  c.metadata_json = Text(r[7]);
  c.runtime = OptText(r[8]);
  return c;
}

// Fills `components` of every server with one query.
void AttachComponents(pqxx::transaction_base& w, std::vector<Server>& servers) {
  if (servers.empty()) return;
  std::vector<std::string> ids;
  std::map<std::string, Server*> by_id;
  for (Server& s : servers) {
    ids.push_back(s.id);
    by_id[s.id] = &s;
  }
  const pqxx::result rows =
      internal::Exec(w,
                     std::string("SELECT ") + kComponentColumns +
                         " FROM server_component_statuses WHERE server_id = ANY($1::uuid[]) "
                         "ORDER BY server_id, component",
                     internal::PgTextArray(ids));
  for (const auto& row : rows) {
    ComponentStatus c = ComponentFromRow(row);
    by_id.at(c.server_id)->components.push_back(std::move(c));
  }
}

Result<Server> ReadServer(pqxx::transaction_base& w, const std::string& server_id) {
  const pqxx::result rows = internal::Exec(
      w, std::string("SELECT ") + kServerColumns + " FROM servers WHERE id = $1::uuid", server_id);
  if (rows.empty()) return NotFound("server " + server_id + " not found");
  std::vector<Server> one{ServerFromRow(rows[0])};
  AttachComponents(w, one);
  return std::move(one[0]);
}

}  // namespace

std::string_view HeartbeatHealth(const Server& server, std::chrono::seconds stale_after) {
  if (!server.last_heartbeat_at || !server.heartbeat_age_seconds) return "unknown";
  if (server.status == ServerStatus::kDead ||
      *server.heartbeat_age_seconds > static_cast<double>(stale_after.count()))
    return "stale";
  return "healthy";
}

Result<Server> RegisterServer(Tx& tx, const ServerRegistration& reg) {
  return internal::Run(tx, "register server", [&](pqxx::transaction_base& w) -> Result<Server> {
    internal::Exec(
        w,
        "INSERT INTO servers (id, hostname, internal_ip, enabled_components, last_heartbeat_at) "
        "VALUES ($1::uuid, $2, $3, $4::text[], now()) "
        "ON CONFLICT (id) DO UPDATE SET hostname = EXCLUDED.hostname, "
        "  internal_ip = EXCLUDED.internal_ip, enabled_components = EXCLUDED.enabled_components, "
        "  last_heartbeat_at = now(), updated_at = now(), "
        "  status = CASE WHEN servers.status = 'dead' THEN 'active' ELSE servers.status END",
        reg.id, reg.hostname, reg.internal_ip, internal::PgTextArray(reg.enabled_components));
    return ReadServer(w, reg.id);
  });
}

Result<Server> Heartbeat(Tx& tx, const std::string& server_id) {
  return internal::Run(tx, "heartbeat", [&](pqxx::transaction_base& w) -> Result<Server> {
    const pqxx::result rows =
        internal::Exec(w,
                       "UPDATE servers SET last_heartbeat_at = now(), updated_at = now(), "
                       "  status = CASE WHEN status = 'dead' THEN 'active' ELSE status END "
                       "WHERE id = $1::uuid RETURNING id",
                       server_id);
    if (rows.empty()) return NotFound("server " + server_id + " is not registered");
    return ReadServer(w, server_id);
  });
}

Status UpsertComponentStatus(Tx& tx, const ComponentStatusUpdate& u) {
  return internal::Run(tx, "update component status", [&](pqxx::transaction_base& w) -> Status {
    const bool healthy = u.status == ComponentHealth::kHealthy;
    internal::Exec(
        w,
        "INSERT INTO server_component_statuses AS c (server_id, component, status, observed_at, "
        "  last_success_at, last_error_at, last_error_message, metadata) "
        "VALUES ($1::uuid, $2, $3, now(), CASE WHEN $4 THEN now() END, "
        "  CASE WHEN NOT $4 THEN now() END, CASE WHEN NOT $4 THEN $5 END, $6::jsonb) "
        "ON CONFLICT (server_id, component) DO UPDATE SET status = EXCLUDED.status, "
        "  observed_at = now(), metadata = EXCLUDED.metadata, "
        "  last_success_at = COALESCE(EXCLUDED.last_success_at, c.last_success_at), "
        "  last_error_at = COALESCE(EXCLUDED.last_error_at, c.last_error_at), "
        "  last_error_message = COALESCE(EXCLUDED.last_error_message, c.last_error_message)",
        u.server_id, u.component, std::string(Name(u.status)), healthy,
        u.error_message.value_or(""), u.metadata_json);
    return {};
  });
}

Result<std::vector<std::string>> MarkSilentServersDead(Tx& tx, std::chrono::seconds silent_for) {
  return internal::Run(tx, "mark silent servers dead",
                       [&](pqxx::transaction_base& w) -> Result<std::vector<std::string>> {
                         const pqxx::result rows = internal::Exec(
                             w,
                             "UPDATE servers SET status = 'dead', updated_at = now() "
                             "WHERE status = 'active' AND (last_heartbeat_at IS NULL OR "
                             "  last_heartbeat_at < now() - $1::bigint * interval '1 second') "
                             "RETURNING id",
                             static_cast<long long>(silent_for.count()));
                         std::vector<std::string> ids;
                         for (const auto& row : rows) ids.push_back(Text(row[0]));
                         return ids;
                       });
}

Result<std::vector<std::string>> MarkDrainedServers(Tx& tx) {
  return internal::Run(tx, "mark drained servers",
                       [&](pqxx::transaction_base& w) -> Result<std::vector<std::string>> {
                         const pqxx::result rows = internal::Exec(
                             w,
                             "UPDATE servers s SET status = 'drained', updated_at = now() "
                             "WHERE s.status = 'draining' AND NOT EXISTS ("
                             "  SELECT 1 FROM project_volume_operations o "
                             "  WHERE o.server_id = s.id AND o.status IN ('pending', 'running')) "
                             "RETURNING s.id");
                         std::vector<std::string> ids;
                         for (const auto& row : rows) ids.push_back(Text(row[0]));
                         return ids;
                       });
}

Result<ServerStatusChange> SetServerStatus(Tx& tx, const std::string& server_id,
                                           ServerStatus status) {
  return internal::Run(
      tx, "set server status", [&](pqxx::transaction_base& w) -> Result<ServerStatusChange> {
        const pqxx::result before = internal::Exec(
            w, "SELECT status FROM servers WHERE id = $1::uuid FOR UPDATE", server_id);
        if (before.empty()) return NotFound("server " + server_id + " not found");
        const ServerStatus previous = internal::Enum<ServerStatus>(before[0][0]);
        internal::Exec(w, "UPDATE servers SET status = $2, updated_at = now() WHERE id = $1::uuid",
                       server_id, std::string(Name(status)));
        KINDLING_ASSIGN_OR_RETURN(Server server, ReadServer(w, server_id));
        return ServerStatusChange{previous, std::move(server)};
      });
}

Result<Server> GetServer(Tx& tx, const std::string& server_id) {
  return internal::Run(tx, "get server", [&](pqxx::transaction_base& w) -> Result<Server> {
    return ReadServer(w, server_id);
  });
}

Result<std::vector<Server>> ListServers(Tx& tx, const ServerFilter& filter) {
  return internal::Run(
      tx, "list servers", [&](pqxx::transaction_base& w) -> Result<std::vector<Server>> {
        const pqxx::result rows =
            internal::Exec(w,
                           std::string("SELECT ") + kServerColumns +
                               " FROM servers WHERE $1::uuid IS NULL OR id IN ("
                               "  SELECT v.server_id FROM project_volumes v "
                               "  JOIN projects p ON p.id = v.project_id "
                               "  WHERE p.organization_id = $1::uuid AND v.deleted_at IS NULL "
                               "    AND v.server_id IS NOT NULL) "
                               "ORDER BY hostname, id",
                           filter.organization_id);
        std::vector<Server> servers;
        for (const auto& row : rows) servers.push_back(ServerFromRow(row));
        AttachComponents(w, servers);
        return servers;
      });
}

Result<std::vector<EligibleWorker>> ListEligibleWorkers(Tx& tx, const WorkerEligibility& rules) {
  return internal::Run(
      tx, "list eligible workers",
      [&](pqxx::transaction_base& w) -> Result<std::vector<EligibleWorker>> {
        const pqxx::result rows = internal::Exec(
            w,
            "SELECT s.id, s.hostname, c.metadata->>'runtime', "
            "  ((SELECT count(*) FROM project_volumes v "
            "     WHERE v.server_id = s.id AND v.deleted_at IS NULL) + "
            "   (SELECT count(*) FROM project_volume_operations o "
            "     WHERE o.server_id = s.id AND o.status IN ('pending', 'running')))::int AS load "
            "FROM servers s "
            "JOIN server_component_statuses c ON c.server_id = s.id AND c.component = $1 "
            "WHERE s.status = 'active' AND c.status = 'healthy' "
            "  AND s.last_heartbeat_at > now() - $2::bigint * interval '1 second' "
            "  AND (cardinality($3::text[]) = 0 OR c.metadata->>'runtime' = ANY($3::text[])) "
            "ORDER BY load, s.hostname, s.id",
            rules.component, static_cast<long long>(rules.max_heartbeat_age.count()),
            internal::PgTextArray(rules.runtimes));
        std::vector<EligibleWorker> workers;
        for (const auto& row : rows) {
          workers.push_back(
              EligibleWorker{Text(row[0]), Text(row[1]), OptText(row[2]), row[3].as<int>()});
        }
        return workers;
      });
}

}  // namespace kindling::db
