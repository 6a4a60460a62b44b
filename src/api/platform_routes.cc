// Platform routes: cluster settings (/api/meta), servers, the platform's
// health (control-plane backups, heartbeats), volume backup settings, the
// audit trail, the backup rescan and its orphans, and the
// Prometheus metrics text.
#include <fmt/format.h>

#include <charconv>
#include <map>

#include "api/api_context.h"
#include "api/json_views.h"
#include "control/admin_service.h"
#include "control/backup_rescan.h"
#include "control/backup_store.h"
#include "control/control_plane_health.h"
#include "control/quarantine_service.h"
#include "db/audit.h"
#include "db/backup_stores.h"
#include "db/operations.h"
#include "db/servers.h"
#include "db/volumes.h"

namespace kindling::api {
namespace {

std::string_view SetOrNot(const std::string& secret) { return secret.empty() ? "not set" : "set"; }
std::string_view SetOrNot(const Secret& secret) { return secret.empty() ? "not set" : "set"; }

json BackupSettingsJson(const control::BackupStoreSettings& s) {
  const std::string missing = s.MissingReason();
  return json{{"s3_bucket", s.s3_bucket},
              {"s3_region", s.s3_region},
              {"s3_endpoint", s.s3_endpoint},
              {"s3_prefix", s.s3_prefix},
              {"local_directory", s.local_directory},
              {"s3_access_key_id", SetOrNot(s.s3_access_key_id)},
              {"s3_secret_access_key", SetOrNot(s.s3_secret_access_key)},
              {"configured", missing.empty()},
              {"missing_reason", missing.empty() ? json(nullptr) : json(missing)},
              {"storage_url", missing.empty() ? json(s.Url()) : json(nullptr)}};
}

ControlResult<control::BackupSettingsUpdate> ParseBackupSettings(Body& body) {
  control::BackupSettingsUpdate update;
  const std::pair<const char*, std::optional<std::string> control::BackupSettingsUpdate::*>
      fields[] = {{"s3_bucket", &control::BackupSettingsUpdate::s3_bucket},
                  {"s3_region", &control::BackupSettingsUpdate::s3_region},
                  {"s3_endpoint", &control::BackupSettingsUpdate::s3_endpoint},
                  {"s3_prefix", &control::BackupSettingsUpdate::s3_prefix},
                  {"local_directory", &control::BackupSettingsUpdate::local_directory},
                  {"s3_access_key_id", &control::BackupSettingsUpdate::s3_access_key_id}};
  for (const auto& [name, member] : fields) {
    // null clears a setting; a string sets it.
    if (body.IsNull(name)) {
      update.*member = std::string();
      continue;
    }
    API_ASSIGN_OR_RETURN(update.*member, body.String(name));
  }
  // The same for the secret, which moves out of the body into a Secret.
  if (body.IsNull("s3_secret_access_key")) {
    update.s3_secret_access_key = Secret();
  } else {
    API_ASSIGN_OR_RETURN(update.s3_secret_access_key, body.TakeSecret("s3_secret_access_key"));
  }
  return update;
}

const std::vector<std::string_view> kBackupSettingsFields = {
    "s3_bucket",       "s3_region",        "s3_endpoint",         "s3_prefix",
    "local_directory", "s3_access_key_id", "s3_secret_access_key"};

// "write probe object: ..." -> "write".
std::string ProbeStep(const std::string& message) {
  for (std::string_view step : {"open", "write", "read", "delete"}) {
    if (message.starts_with(step)) return std::string(step);
  }
  if (message.starts_with("backup store not configured")) return "configuration";
  return "unknown";
}

std::string PrometheusLabel(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

// GET /api/platform/health's control_plane_backup: the stored report's
// fields plus configured/stale/checked_at/check_age_seconds.
json ControlPlaneBackupJson(const control::ControlPlaneHealth& health) {
  if (!health.configured()) {
    return json{{"configured", false},
                {"ok", nullptr},
                {"stale", false},
                {"checked_at", nullptr},
                {"problems", json::array()},
                {"hint",
                 "no process has checked the control-plane backups yet: run `kindling serve` "
                 "with --pgbackrest-config on the database host (after `kindling admin "
                 "control-plane configure`), or `kindling dev` with pgBackRest installed"}};
  }
  const db::ControlPlaneBackupStatus& s = *health.status;
  json out = json::parse(s.report_json, nullptr, false);
  if (!out.is_object()) out = json::object();
  out["configured"] = true;
  out["ok"] = s.ok;
  out["stale"] = health.stale;
  out["stale_after_seconds"] = health.stale_after_seconds;
  out["checked_at"] = FormatTime(s.checked_at);
  out["check_age_seconds"] = s.age_seconds;
  if (!out.contains("problems") || !out["problems"].is_array()) out["problems"] = json::array();
  if (health.stale)
    out["problems"].push_back(fmt::format(
        "the last check is {:.0f} s old (more than {:.0f} s): the process that schedules "
        "control-plane backups on the database host ({}) is not running or cannot reach the "
        "database",
        s.age_seconds, health.stale_after_seconds, s.hostname));
  return out;
}

}  // namespace

ControlResult<std::string> Metrics(db::Database& db) {
  // A constant number of queries per scrape, whatever the number of volumes:
  // one aggregate over the operations, one over the live volumes' newest
  // backups, the servers, the control-plane check.
  // Everything computed from rows that may go away is a gauge.
  struct Totals {
    double duration_seconds = 0;
    double bytes = 0;
  };
  auto collected = db.Transact(
      [&](db::Tx& tx) -> Result<std::string> {
        std::string out;
        KINDLING_ASSIGN_OR_RETURN(const auto counts, db::CountOperations(tx));
        out +=
            "# HELP kindling_operations Volume operations the database holds, by kind and "
            "status.\n";
        out += "# TYPE kindling_operations gauge\n";
        std::map<std::string_view, Totals> totals;
        for (const auto& c : counts) {
          out += fmt::format("kindling_operations{{kind=\"{}\",status=\"{}\"}} {}\n",
                             db::Name(c.kind), db::Name(c.status), c.count);
          Totals& t = totals[db::Name(c.kind)];
          t.bytes += c.bytes_done;
          if (c.status == db::OperationStatus::kSucceeded) t.duration_seconds += c.duration_seconds;
        }
        out +=
            "# HELP kindling_operation_bytes Bytes moved (progress.bytes_done) by the volume "
            "operations the database holds, by kind.\n";
        out += "# TYPE kindling_operation_bytes gauge\n";
        for (const auto& [kind, t] : totals) {
          out += fmt::format("kindling_operation_bytes{{kind=\"{}\"}} {}\n", kind, t.bytes);
        }
        out +=
            "# HELP kindling_operation_succeeded_duration_seconds Summed durations of the "
            "succeeded volume operations the database holds, by kind.\n";
        out += "# TYPE kindling_operation_succeeded_duration_seconds gauge\n";
        for (const auto& [kind, t] : totals) {
          out += fmt::format("kindling_operation_succeeded_duration_seconds{{kind=\"{}\"}} {}\n",
                             kind, t.duration_seconds);
        }
        KINDLING_ASSIGN_OR_RETURN(const auto ages, db::ListVolumeBackupAges(tx));
        out +=
            "# HELP kindling_volume_last_backup_age_seconds Seconds since each live volume's "
            "newest succeeded backup completed (since the volume was created when it has "
            "none).\n";
        out += "# TYPE kindling_volume_last_backup_age_seconds gauge\n";
        for (const auto& a : ages) {
          out += fmt::format(
              "kindling_volume_last_backup_age_seconds{{volume_id=\"{}\",project_id=\"{}\"}} "
              "{}\n",
              a.volume_id, a.project_id, a.age_seconds);
        }
        out += "# HELP kindling_volume_backed_up 1 when the live volume has a succeeded backup.\n";
        out += "# TYPE kindling_volume_backed_up gauge\n";
        for (const auto& a : ages) {
          out += fmt::format("kindling_volume_backed_up{{volume_id=\"{}\",project_id=\"{}\"}} {}\n",
                             a.volume_id, a.project_id, a.has_backup ? 1 : 0);
        }
        out +=
            "# HELP kindling_server_heartbeat_age_seconds Seconds since each server's heartbeat.\n";
        out += "# TYPE kindling_server_heartbeat_age_seconds gauge\n";
        KINDLING_ASSIGN_OR_RETURN(auto servers, db::ListServers(tx));
        for (const auto& s : servers) {
          if (!s.heartbeat_age_seconds) continue;
          out += fmt::format(
              "kindling_server_heartbeat_age_seconds{{server_id=\"{}\",hostname=\"{}\"}} {}\n",
              s.id, PrometheusLabel(s.hostname), *s.heartbeat_age_seconds);
        }
        return out;
      },
      db::TxOptions{.read_only = true});
  if (!collected) return std::unexpected(control::FromError(collected.error()));
  API_ASSIGN_OR_RETURN(const control::ControlPlaneHealth health,
                       control::GetControlPlaneHealth(db));
  std::string& out = *collected;
  const auto gauge = [&out](const char* name, const char* help, const std::string& value) {
    out += fmt::format("# HELP {} {}\n# TYPE {} gauge\n{} {}\n", name, help, name, name, value);
  };
  gauge("kindling_control_plane_backup_configured",
        "1 when a process on the database host checks the control-plane backups.",
        health.configured() ? "1" : "0");
  if (health.configured()) {
    const json report = json::parse(health.status->report_json, nullptr, false);
    const auto number = [&report](const char* key, const char* inner = nullptr) -> std::string {
      if (!report.is_object() || !report.contains(key)) return "";
      const json* value = &report[key];
      if (inner != nullptr) {
        if (!value->is_object() || !value->contains(inner)) return "";
        value = &(*value)[inner];
      }
      return value->is_number() ? fmt::format("{}", value->get<double>()) : "";
    };
    gauge("kindling_control_plane_backup_ok",
          "1 when the last control-plane backup check found no problem and is recent.",
          health.healthy() ? "1" : "0");
    gauge("kindling_control_plane_backup_check_age_seconds",
          "Seconds since the last control-plane backup check.",
          fmt::format("{}", health.status->age_seconds));
    if (auto v = number("last_backup_age_seconds"); !v.empty())
      gauge("kindling_control_plane_backup_last_age_seconds",
            "Seconds since the newest control-plane backup stopped (at the last check).", v);
    if (auto v = number("last_archived_age_seconds"); !v.empty())
      gauge("kindling_control_plane_wal_archive_age_seconds",
            "Seconds since PostgreSQL last archived a WAL file (at the last check).", v);
    if (auto v = number("archiver", "failed_count"); !v.empty()) {
      out +=
          "# HELP kindling_control_plane_wal_archive_failed_total WAL archiving failures since "
          "PostgreSQL's statistics were reset.\n"
          "# TYPE kindling_control_plane_wal_archive_failed_total counter\n";
      out += "kindling_control_plane_wal_archive_failed_total " + v + "\n";
    }
  }
  return std::move(*collected);
}

void AddHealthRoutes(ApiContext& api) {
  api.Route("GET", "/api/platform/health", [&api](Call& call) -> ControlResult<Reply> {
    API_RETURN_IF_ERROR(RequireAdmin(call));
    if (!call.req.params.empty())
      return Invalid("unknown query parameter \"" + call.req.params.begin()->first + "\"");
    API_ASSIGN_OR_RETURN(const control::ControlPlaneHealth health,
                         control::GetControlPlaneHealth(api.db));
    auto servers = api.db.Transact([](db::Tx& tx) { return db::ListServers(tx); },
                                   db::TxOptions{.read_only = true});
    if (!servers) return std::unexpected(control::FromError(servers.error()));
    json stale = json::array();
    int active = 0;
    int healthy = 0;
    for (const db::Server& s : *servers) {
      if (s.status != db::ServerStatus::kActive) continue;
      ++active;
      if (db::HeartbeatHealth(s) == "healthy")
        ++healthy;
      else
        stale.push_back(
            json{{"id", s.id},
                 {"hostname", s.hostname},
                 {"heartbeat_health", db::HeartbeatHealth(s)},
                 {"heartbeat_age_seconds",
                  s.heartbeat_age_seconds ? json(*s.heartbeat_age_seconds) : json(nullptr)}});
    }
    const json servers_json = {{"total", servers->size()},
                               {"active", active},
                               {"healthy", healthy},
                               {"unhealthy", stale},
                               {"ok", active > 0 && healthy == active}};
    const json backup = ControlPlaneBackupJson(health);
    const json ready = api.Readiness(true);
    return Reply{200, json{{"ok", health.healthy() && servers_json["ok"].get<bool>() &&
                                      ready["ready"].get<bool>()},
                           {"control_plane_backup", backup},
                           {"servers", servers_json},
                           {"backup_store", ready["backup_store"]},
                           {"workers", ready["workers"]}}};
  });
}

void AddMetaRoutes(ApiContext& api) {
  auto meta_json = [](const std::map<std::string, std::string>& values) {
    auto get = [&](const char* key) {
      auto it = values.find(key);
      return it == values.end() ? json(nullptr) : json(it->second);
    };
    // Written as a positive integer (below); shown as stored otherwise.
    json max_size = control::kDefaultMaxVolumeSizeGb;
    if (const auto it = values.find("max_volume_size_gb"); it != values.end()) {
      int parsed = 0;
      const std::string& text = it->second;
      const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), parsed);
      max_size = ec == std::errc() && end == text.data() + text.size() ? json(parsed) : json(text);
    }
    return json{{"public_base_url", get("public_base_url")},
                {"public_base_url_configured", values.contains("public_base_url")},
                {"service_base_domain", get("service_base_domain")},
                {"max_volume_size_gb", max_size}};
  };
  api.Route("GET", "/api/meta", [&api, meta_json](Call& call) -> ControlResult<Reply> {
    API_RETURN_IF_ERROR(RequireAdmin(call));
    API_ASSIGN_OR_RETURN(auto values, control::GetMetaSettings(api.db));
    return Reply{200, meta_json(values)};
  });
  api.Route("PUT", "/api/meta", [&api, meta_json](Call& call) -> ControlResult<Reply> {
    API_RETURN_IF_ERROR(RequireAdmin(call));
    API_ASSIGN_OR_RETURN(auto body, Body::Parse(call.req, {"public_base_url", "service_base_domain",
                                                           "max_volume_size_gb"}));
    std::map<std::string, std::string> values;
    for (const char* key : control::kMetaSettings) {
      if (body.IsNull(key)) {
        values[key] = "";  // back to the default
        continue;
      }
      if (std::string_view(key) == "max_volume_size_gb") {
        API_ASSIGN_OR_RETURN(auto max_gb, body.Int(key));
        if (max_gb && *max_gb < 1) return Invalid("max_volume_size_gb must be >= 1");
        if (max_gb) values[key] = std::to_string(*max_gb);
        continue;
      }
      API_ASSIGN_OR_RETURN(auto value, body.String(key));
      if (value) values[key] = *value;
    }
    API_ASSIGN_OR_RETURN(auto after, control::UpdateMetaSettings(api.db, call.actor, values));
    return Reply{200, meta_json(after)};
  });
}

void AddServerRoutes(ApiContext& api) {
  api.Route("GET", "/api/servers", [&api](Call& call) -> ControlResult<Reply> {
    // The servers holding volumes of the caller's organisations, each
    // organisation's list from the read cache or one autocommit read.
    std::map<std::string, json> rows;  // by hostname+id, deduplicated
    for (const auto& membership : call.principal.memberships) {
      const std::string& org = membership.organization_id;
      API_ASSIGN_OR_RETURN(
          auto read,
          api.org_servers.Get(
              org,
              [&]() -> ControlResult<ApiContext::ServersRead> {
                const auto read_at = std::chrono::steady_clock::now();
                auto servers = api.db.Transact(
                    [&](db::Tx& tx) {
                      return db::ListServers(tx, db::ServerFilter{.organization_id = org});
                    },
                    db::kAutocommitRead);
                if (!servers) return std::unexpected(control::FromError(servers.error()));
                return ApiContext::ServersRead{.servers = std::move(*servers), .read_at = read_at};
              },
              api.WriteFloor(call)));
      // Heartbeat ages as of now, not as of the read.
      const double since_read =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - read.read_at).count();
      for (auto& s : read.servers) {
        if (s.heartbeat_age_seconds) *s.heartbeat_age_seconds += since_read;
        rows[s.hostname + "\n" + s.id] = ServerJson(s);
      }
    }
    json out = json::array();
    for (auto& [key, row] : rows) out.push_back(std::move(row));
    return Reply{200, std::move(out)};
  });
  api.Route("GET", "/api/platform/servers", [&api](Call& call) -> ControlResult<Reply> {
    API_RETURN_IF_ERROR(RequireAdmin(call));
    auto servers = api.db.Transact([&](db::Tx& tx) { return db::ListServers(tx); });
    if (!servers) return std::unexpected(control::FromError(servers.error()));
    json out = json::array();
    for (const auto& s : *servers) out.push_back(ServerJson(s));
    return Reply{200, out};
  });
  for (auto [suffix, status] : {std::pair{"drain", db::ServerStatus::kDraining},
                                std::pair{"activate", db::ServerStatus::kActive}}) {
    api.Route("POST", std::string(R"(/api/servers/([^/]+)/)") + suffix,
              [&api, status](Call& call) -> ControlResult<Reply> {
                API_RETURN_IF_ERROR(RequireAdmin(call));
                API_ASSIGN_OR_RETURN(std::string id, call.PathId(1, "server"));
                API_RETURN_IF_ERROR(Body::Parse(call.req, {}));
                API_ASSIGN_OR_RETURN(auto s,
                                     control::SetServerStatus(api.db, call.actor, id, status));
                return Reply{200, ServerJson(s)};
              });
  }
}

void AddSettingsRoutes(ApiContext& api) {
  const std::string path = "/api/platform/volume-backup-settings";
  api.Route("GET", path, [&api](Call& call) -> ControlResult<Reply> {
    API_RETURN_IF_ERROR(RequireAdmin(call));
    API_ASSIGN_OR_RETURN(auto settings, control::GetBackupSettings(api.db, api.master_key));
    return Reply{200, BackupSettingsJson(settings)};
  });
  api.Route("PUT", path, [&api](Call& call) -> ControlResult<Reply> {
    API_RETURN_IF_ERROR(RequireAdmin(call));
    API_ASSIGN_OR_RETURN(auto body, Body::Parse(call.req, kBackupSettingsFields));
    API_ASSIGN_OR_RETURN(auto update, ParseBackupSettings(body));
    API_ASSIGN_OR_RETURN(auto settings, control::UpdateBackupSettings(
                                            api.db, api.master_key, call.actor, std::move(update)));
    json out = BackupSettingsJson(settings);
    // Create the store's keys now, under the cluster-wide lock, so
    // workers only ever open an initialised store.
    json store = json{{"ready", false}, {"error", nullptr}};
    if (settings.MissingReason().empty()) {
      auto opened = control::OpenBackupStore(settings, api.master_key, &api.db, /*quick=*/true);
      if (opened) {
        store["ready"] = true;
      } else {
        store["error"] = opened.error().message();
      }
    }
    out["store"] = store;
    return Reply{200, out};
  });
  api.Route("POST", path + "/test", [&api](Call& call) -> ControlResult<Reply> {
    API_RETURN_IF_ERROR(RequireAdmin(call));
    API_ASSIGN_OR_RETURN(auto body, Body::Parse(call.req, kBackupSettingsFields));
    API_ASSIGN_OR_RETURN(auto update, ParseBackupSettings(body));
    API_ASSIGN_OR_RETURN(auto saved, control::GetBackupSettings(api.db, api.master_key));
    API_ASSIGN_OR_RETURN(auto settings,
                         control::MergeBackupSettings(std::move(saved), std::move(update)));
    json out = {{"ok", true}, {"step", nullptr}, {"error", nullptr}};
    out["storage_url"] = settings.Url();
    if (auto probe = control::ProbeBackupStore(settings); !probe) {
      out["ok"] = false;
      out["step"] = ProbeStep(probe.error().message());
      out["error"] = probe.error().message();
    }
    return Reply{200, out};
  });
  api.Route("GET", "/api/platform/audit-events", [&api](Call& call) -> ControlResult<Reply> {
    API_RETURN_IF_ERROR(RequireAdmin(call));
    db::AuditFilter filter;
    for (const auto& [name, value] : call.req.params) {
      if (name == "action") {
        filter.action = value;
      } else if (name == "resource_type") {
        filter.resource_type = value;
      } else if (name == "resource_id") {
        filter.resource_id = value;
      } else if (name == "since") {
        filter.since = ParseTime(value);
        if (!filter.since) return Invalid("since must be an RFC 3339 timestamp");
      } else if (name == "limit") {
        int limit = 0;
        auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), limit);
        if (ec != std::errc() || end != value.data() + value.size() || limit < 1 ||
            limit > db::kMaxAuditListLimit) {
          return Invalid("limit must be an integer from 1 to " +
                         std::to_string(db::kMaxAuditListLimit));
        }
        filter.limit = limit;
      } else {
        return Invalid("unknown query parameter \"" + name + "\"");
      }
    }
    auto events = api.db.Transact([&](db::Tx& tx) { return db::ListAuditEvents(tx, filter); });
    if (!events) return std::unexpected(control::FromError(events.error()));
    json out = json::array();
    for (const auto& e : *events) {
      json details = json::parse(e.details_json, nullptr, false);
      out.push_back(json{{"id", e.id},
                         {"user_id", e.user_id ? json(*e.user_id) : json(nullptr)},
                         {"action", e.action},
                         {"resource_type", e.resource_type},
                         {"resource_id", e.resource_id ? json(*e.resource_id) : json(nullptr)},
                         {"details", details.is_discarded() ? json::object() : details},
                         {"request_ip", e.request_ip ? json(*e.request_ip) : json(nullptr)},
                         {"user_agent", e.user_agent ? json(*e.user_agent) : json(nullptr)},
                         {"created_at", FormatTime(e.created_at)}});
    }
    return Reply{200, out};
  });
}

void AddQuarantineRoutes(ApiContext& api) {
  api.Route("GET", "/api/platform/quarantine", [&api](Call& call) -> ControlResult<Reply> {
    API_RETURN_IF_ERROR(RequireAdmin(call));
    db::QuarantineFilter filter;
    for (const auto& [name, value] : call.req.params) {
      if (name == "server_id" || name == "volume_id") {
        if (!IsUuid(value)) return Invalid(name + " must be a UUID");
        (name == "server_id" ? filter.server_id : filter.project_volume_id) = value;
      } else if (name == "status") {
        filter.status = db::ParseEnum<db::QuarantineStatus>(value);
        if (!filter.status) return Invalid("status must be held, adopted or purged");
      } else {
        return Invalid("unknown query parameter \"" + name + "\"");
      }
    }
    API_ASSIGN_OR_RETURN(auto entries, control::ListQuarantinedImages(api.db, filter));
    json out = json::array();
    for (const auto& e : entries) out.push_back(QuarantineJson(e));
    return Reply{200, out};
  });
  api.Route("DELETE", R"(/api/platform/quarantine/([^/]+))",
            [&api](Call& call) -> ControlResult<Reply> {
              API_RETURN_IF_ERROR(RequireAdmin(call));
              API_ASSIGN_OR_RETURN(std::string id, call.PathId(1, "quarantine"));
              API_ASSIGN_OR_RETURN(
                  auto entry, control::RequestImagePurge(api.db, call.actor, id, std::nullopt));
              return Reply{200, QuarantineJson(entry)};
            });
  api.Route("GET", "/api/platform/volume-backup-stores",
            [&api](Call& call) -> ControlResult<Reply> {
              API_RETURN_IF_ERROR(RequireAdmin(call));
              auto stores = api.db.Transact([&](db::Tx& tx) { return db::ListBackupStores(tx); });
              if (!stores) return std::unexpected(control::FromError(stores.error()));
              json out = json::array();
              for (const auto& s : *stores) {
                out.push_back({{"storage_url", s.storage_url},
                               {"created_at", FormatTime(s.created_at)},
                               {"updated_at", FormatTime(s.updated_at)}});
              }
              return Reply{200, out};
            });
}

void AddBackupRescanRoutes(ApiContext& api) {
  api.Route("POST", "/api/platform/backups/rescan", [&api](Call& call) -> ControlResult<Reply> {
    API_RETURN_IF_ERROR(RequireAdmin(call));
    API_RETURN_IF_ERROR(Body::Parse(call.req, {}));
    API_ASSIGN_OR_RETURN(auto report,
                         control::RescanBackupStores(api.db, api.master_key, call.actor));
    return Reply{200, RescanJson(report)};
  });
  api.Route("GET", "/api/platform/backups/orphans", [&api](Call& call) -> ControlResult<Reply> {
    API_RETURN_IF_ERROR(RequireAdmin(call));
    bool include_assigned = false;
    for (const auto& [name, value] : call.req.params) {
      if (name != "include_assigned") return Invalid("unknown query parameter \"" + name + "\"");
      if (value != "true" && value != "false")
        return Invalid("include_assigned must be true or false");
      include_assigned = value == "true";
    }
    API_ASSIGN_OR_RETURN(auto orphans, control::ListOrphanBackups(api.db, include_assigned));
    json out = json::array();
    for (const auto& o : orphans) out.push_back(OrphanJson(o));
    return Reply{200, out};
  });
  // The id is any backup id a store may hold (the engine's CLI accepts more
  // than UUIDs), so that the answer can explain what to do with the others.
  api.Route("POST", R"(/api/platform/backups/([A-Za-z0-9._-]{1,128})/assign)",
            [&api](Call& call) -> ControlResult<Reply> {
              API_RETURN_IF_ERROR(RequireAdmin(call));
              const std::string backup_id = call.req.matches[1];
              API_ASSIGN_OR_RETURN(auto body, Body::Parse(call.req, {"project_id"}));
              API_ASSIGN_OR_RETURN(auto project_id, body.Uuid("project_id"));
              if (!project_id) return Invalid("project_id is required");
              API_ASSIGN_OR_RETURN(auto assigned,
                                   control::AssignOrphanBackup(api.db, api.master_key, call.actor,
                                                               backup_id, *project_id));
              json backup = BackupJson(assigned.backup);
              backup["project_id"] = *project_id;
              backup["volume_deleted"] = assigned.volume.deleted_at.has_value();
              return Reply{200, json{{"backup", backup},
                                     {"orphan", OrphanJson(assigned.orphan)},
                                     {"volume_id", assigned.volume.id},
                                     {"project_id", *project_id},
                                     {"volume_created", assigned.volume_created}}};
            });
}

}  // namespace kindling::api
