#include "api/api_server.h"

#include <fmt/format.h>
#include <httplib.h>

#include <atomic>
#include <charconv>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "api/json_views.h"
#include "common/ids.h"
#include "control/admin_service.h"
#include "control/backup_store.h"
#include "control/volume_service.h"
#include "db/audit.h"
#include "db/auth.h"
#include "db/operations.h"
#include "db/projects.h"
#include "db/servers.h"
#include "db/volumes.h"

namespace kindling::api {
namespace {

using control::ControlError;
using control::ControlResult;
using control::Refuse;
using nlohmann::json;

struct Reply {
  int status = 200;
  json body = json::object();
};

std::unexpected<ControlError> Invalid(std::string message) {
  return Refuse(400, control::kCodeValidation, std::move(message));
}

// A request body: a JSON object with known fields of the right types.
class Body {
 public:
  // An empty body counts as {}.
  static ControlResult<Body> Parse(const httplib::Request& req,
                                   const std::vector<std::string_view>& allowed) {
    Body body;
    if (req.body.empty()) return body;
    body.json_ = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    if (body.json_.is_discarded()) return Invalid("request body is not valid JSON");
    if (!body.json_.is_object()) return Invalid("request body must be a JSON object");
    for (const auto& [key, value] : body.json_.items()) {
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
        return Invalid("unknown field \"" + key + "\"");
      }
    }
    return body;
  }

  bool Has(const std::string& name) const { return json_.contains(name); }
  bool IsNull(const std::string& name) const { return Has(name) && json_[name].is_null(); }

  // Absent and null are both "not given".
  ControlResult<std::optional<std::string>> String(const std::string& name) const {
    if (!Has(name) || json_[name].is_null()) return std::nullopt;
    if (!json_[name].is_string()) return Invalid("field \"" + name + "\" must be a string");
    return json_[name].get<std::string>();
  }
  ControlResult<std::optional<int>> Int(const std::string& name) const {
    if (!Has(name) || json_[name].is_null()) return std::nullopt;
    const json& v = json_[name];
    if (!v.is_number_integer()) return Invalid("field \"" + name + "\" must be an integer");
    const auto value = v.get<long long>();
    if (value < 0 || value > 1'000'000) return Invalid("field \"" + name + "\" is out of range");
    return static_cast<int>(value);
  }
  ControlResult<std::optional<bool>> Bool(const std::string& name) const {
    if (!Has(name) || json_[name].is_null()) return std::nullopt;
    if (!json_[name].is_boolean()) return Invalid("field \"" + name + "\" must be a boolean");
    return json_[name].get<bool>();
  }
  ControlResult<std::optional<std::string>> Uuid(const std::string& name) const {
    auto value = String(name);
    if (!value) return value;
    if (*value && !IsUuid(**value)) return Invalid("field \"" + name + "\" must be a UUID");
    return value;
  }

 private:
  json json_ = json::object();
};

#define API_RETURN_IF_ERROR(expr)                                  \
  do {                                                             \
    auto&& api_status_ = (expr);                                   \
    if (!api_status_) return std::unexpected(api_status_.error()); \
  } while (0)
#define API_ASSIGN_OR_RETURN(lhs, expr) \
  API_ASSIGN_OR_RETURN_IMPL(KINDLING_CONCAT(api_result_, __LINE__), lhs, expr)
#define API_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr)           \
  auto tmp = (expr);                                        \
  if (!tmp) return std::unexpected(std::move(tmp).error()); \
  lhs = std::move(*tmp)

// One authenticated request.
struct Call {
  const httplib::Request& req;
  db::Principal principal;
  control::Actor actor;

  bool IsAdmin() const { return principal.user.is_platform_admin; }
  ControlResult<std::string> PathId(std::size_t index, std::string_view what) const {
    std::string id = req.matches[index];
    if (!IsUuid(id)) return Invalid(std::string(what) + " id is not a UUID: " + id);
    return id;
  }
};

ControlResult<void> RequireAdmin(const Call& call) {
  if (!call.IsAdmin()) {
    return Refuse(403, control::kCodeForbidden, "this route needs a platform admin");
  }
  return {};
}

std::string_view SetOrNot(const std::string& secret) { return secret.empty() ? "not set" : "set"; }

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

ControlResult<control::BackupSettingsUpdate> ParseBackupSettings(const Body& body) {
  control::BackupSettingsUpdate update;
  const std::pair<const char*, std::optional<std::string> control::BackupSettingsUpdate::*>
      fields[] = {{"s3_bucket", &control::BackupSettingsUpdate::s3_bucket},
                  {"s3_region", &control::BackupSettingsUpdate::s3_region},
                  {"s3_endpoint", &control::BackupSettingsUpdate::s3_endpoint},
                  {"s3_prefix", &control::BackupSettingsUpdate::s3_prefix},
                  {"local_directory", &control::BackupSettingsUpdate::local_directory},
                  {"s3_access_key_id", &control::BackupSettingsUpdate::s3_access_key_id},
                  {"s3_secret_access_key", &control::BackupSettingsUpdate::s3_secret_access_key}};
  for (const auto& [name, member] : fields) {
    // null clears a setting; a string sets it.
    if (body.IsNull(name)) {
      update.*member = std::string();
      continue;
    }
    API_ASSIGN_OR_RETURN(update.*member, body.String(name));
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

}  // namespace

struct ApiServer::Impl {
  Impl(db::Database& database, const crypto::Key& key, ApiServerOptions opts)
      : db(database), master_key(key), options(std::move(opts)), volumes(database, key) {}

  using Handler = std::function<ControlResult<Reply>(Call&)>;

  db::Database& db;
  const crypto::Key master_key;
  const ApiServerOptions options;
  control::VolumeService volumes;
  httplib::Server server;
  std::thread thread;
  std::mutex mu;
  int bound_port = -1;
  bool started = false;

  static void WriteError(httplib::Response& res, int status, std::string_view code,
                         std::string_view message) {
    res.status = status;
    res.set_content(json{{"error", message}, {"code", code}}.dump(), "application/json");
  }

  ControlResult<db::Principal> Authenticate(const httplib::Request& req) {
    const std::string header = req.get_header_value("Authorization");
    constexpr std::string_view kBearer = "Bearer ";
    if (header.empty()) {
      return Refuse(401, control::kCodeUnauthorized, "missing Authorization: Bearer <api key>");
    }
    if (!header.starts_with(kBearer) || header.size() == kBearer.size()) {
      return Refuse(401, control::kCodeUnauthorized,
                    "the Authorization header must be \"Bearer <api key>\"");
    }
    const std::string secret = header.substr(kBearer.size());
    auto principal = db.Transact([&](db::Tx& tx) { return db::AuthenticateApiKey(tx, secret); });
    if (!principal) return std::unexpected(control::FromError(principal.error()));
    if (!*principal) {
      return Refuse(401, control::kCodeUnauthorized, "invalid or revoked API key");
    }
    return std::move(**principal);
  }

  // Wraps a route: authentication, exceptions, error and reply encoding.
  httplib::Server::Handler Wrap(Handler handler, bool authenticate = true) {
    return [this, handler = std::move(handler), authenticate](const httplib::Request& req,
                                                              httplib::Response& res) {
      try {
        Call call{.req = req, .principal = {}, .actor = {}};
        if (authenticate) {
          auto principal = Authenticate(req);
          if (!principal) {
            WriteError(res, principal.error().http_status, principal.error().code,
                       principal.error().message);
            return;
          }
          call.principal = std::move(*principal);
          call.actor.user_id = call.principal.user.id;
        }
        call.actor.request_ip = req.remote_addr;
        if (req.has_header("User-Agent"))
          call.actor.user_agent = req.get_header_value("User-Agent");
        auto reply = handler(call);
        if (!reply) {
          WriteError(res, reply.error().http_status, reply.error().code, reply.error().message);
          return;
        }
        res.status = reply->status;
        if (reply->status != 204) res.set_content(reply->body.dump(), "application/json");
      } catch (const std::exception&) {
        // Never echo the exception: it may quote the request.
        WriteError(res, 500, control::kCodeInternal, "internal error");
      }
    };
  }

  // The project, if the caller may see it; 403 when they may see but not
  // change it and `need_admin`.
  ControlResult<db::Project> AccessProject(const Call& call, std::size_t index, bool need_admin) {
    API_ASSIGN_OR_RETURN(std::string project_id, call.PathId(index, "project"));
    auto project = db.Transact([&](db::Tx& tx) { return db::GetProject(tx, project_id); });
    if (!project) {
      if (project.error().is_not_found()) {
        return Refuse(404, control::kCodeNotFound, "project " + project_id + " does not exist");
      }
      return std::unexpected(control::FromError(project.error()));
    }
    if (call.IsAdmin()) return std::move(*project);
    auto role = call.principal.RoleIn(project->organization_id);
    if (!role) {
      return Refuse(404, control::kCodeNotFound, "project " + project_id + " does not exist");
    }
    if (need_admin && *role == db::OrgRole::kMember) {
      return Refuse(403, control::kCodeForbidden,
                    "this action needs the owner or admin role in the project's organisation");
    }
    return std::move(*project);
  }

  void Routes() {
    server.Get("/healthz", Wrap(
                               [this](Call&) -> ControlResult<Reply> {
                                 if (auto ping = db.Ping(); !ping) {
                                   return Refuse(503, control::kCodeUnavailable,
                                                 "database unreachable");
                                 }
                                 return Reply{200, json{{"status", "ok"}}};
                               },
                               /*authenticate=*/false));
    server.Get("/metrics", [this](const httplib::Request& req, httplib::Response& res) {
      if (!options.metrics_public) {
        auto principal = Authenticate(req);
        if (!principal) {
          WriteError(res, principal.error().http_status, principal.error().code,
                     principal.error().message);
          return;
        }
        if (!principal->user.is_platform_admin) {
          WriteError(res, 403, control::kCodeForbidden, "metrics need a platform admin");
          return;
        }
      }
      auto text = Metrics();
      if (!text) {
        WriteError(res, text.error().http_status, text.error().code, text.error().message);
        return;
      }
      res.set_content(*text, "text/plain; version=0.0.4");
    });
    MetaRoutes();
    ServerRoutes();
    ProjectRoutes();
    VolumeRoutes();
    SettingsRoutes();
    AccountRoutes();
  }

  ControlResult<std::string> Metrics() {
    struct Totals {
      double duration_sum = 0;
      long long duration_count = 0;
      double bytes = 0;
    };
    auto collected = db.Transact([&](db::Tx& tx) -> Result<std::string> {
      std::string out;
      out += "# HELP kindling_operations Volume operations by kind and status.\n";
      out += "# TYPE kindling_operations gauge\n";
      KINDLING_ASSIGN_OR_RETURN(auto counts, db::CountOperations(tx));
      for (const auto& c : counts) {
        out += fmt::format("kindling_operations{{kind=\"{}\",status=\"{}\"}} {}\n",
                           db::Name(c.kind), db::Name(c.status), c.count);
      }
      // Durations and bytes of the most recent operations of each volume.
      std::map<std::string_view, Totals> totals;
      KINDLING_ASSIGN_OR_RETURN(auto all_volumes,
                                db::ListVolumes(tx, db::VolumeFilter{.include_deleted = true}));
      for (const auto& volume : all_volumes) {
        KINDLING_ASSIGN_OR_RETURN(auto ops, db::ListVolumeOperations(tx, volume.id, 1000));
        for (const auto& op : ops) {
          Totals& t = totals[db::Name(op.kind)];
          if (op.status == db::OperationStatus::kSucceeded && op.started_at && op.completed_at) {
            t.duration_sum +=
                std::chrono::duration<double>(*op.completed_at - *op.started_at).count();
            ++t.duration_count;
          }
          json progress = json::parse(op.progress_json, nullptr, false);
          if (progress.is_object() && progress.contains("bytes_done") &&
              progress["bytes_done"].is_number()) {
            t.bytes += progress["bytes_done"].get<double>();
          }
        }
      }
      out += "# HELP kindling_operation_bytes_total Bytes moved by volume operations.\n";
      out += "# TYPE kindling_operation_bytes_total counter\n";
      for (const auto& [kind, t] : totals) {
        out += fmt::format("kindling_operation_bytes_total{{kind=\"{}\"}} {}\n", kind, t.bytes);
      }
      out += "# HELP kindling_operation_duration_seconds Durations of succeeded operations.\n";
      out += "# TYPE kindling_operation_duration_seconds summary\n";
      for (const auto& [kind, t] : totals) {
        out += fmt::format("kindling_operation_duration_seconds_sum{{kind=\"{}\"}} {}\n", kind,
                           t.duration_sum);
        out += fmt::format("kindling_operation_duration_seconds_count{{kind=\"{}\"}} {}\n", kind,
                           t.duration_count);
      }
      out +=
          "# HELP kindling_server_heartbeat_age_seconds Seconds since each server's heartbeat.\n";
      out += "# TYPE kindling_server_heartbeat_age_seconds gauge\n";
      KINDLING_ASSIGN_OR_RETURN(auto servers, db::ListServers(tx));
      for (const auto& s : servers) {
        if (!s.heartbeat_age_seconds) continue;
        out += fmt::format(
            "kindling_server_heartbeat_age_seconds{{server_id=\"{}\",hostname=\"{}\"}} {}\n", s.id,
            PrometheusLabel(s.hostname), *s.heartbeat_age_seconds);
      }
      return out;
    });
    if (!collected) return std::unexpected(control::FromError(collected.error()));
    return std::move(*collected);
  }

  void MetaRoutes() {
    auto meta_json = [](const std::map<std::string, std::string>& values) {
      auto get = [&](const char* key) {
        auto it = values.find(key);
        return it == values.end() ? json(nullptr) : json(it->second);
      };
      return json{{"public_base_url", get("public_base_url")},
                  {"public_base_url_configured", values.contains("public_base_url")},
                  {"service_base_domain", get("service_base_domain")}};
    };
    server.Get("/api/meta", Wrap([this, meta_json](Call& call) -> ControlResult<Reply> {
                 API_RETURN_IF_ERROR(RequireAdmin(call));
                 API_ASSIGN_OR_RETURN(auto values, control::GetMetaSettings(db));
                 return Reply{200, meta_json(values)};
               }));
    server.Put("/api/meta", Wrap([this, meta_json](Call& call) -> ControlResult<Reply> {
                 API_RETURN_IF_ERROR(RequireAdmin(call));
                 API_ASSIGN_OR_RETURN(
                     auto body, Body::Parse(call.req, {"public_base_url", "service_base_domain"}));
                 std::map<std::string, std::string> values;
                 for (const char* key : control::kMetaSettings) {
                   if (body.IsNull(key)) {
                     values[key] = "";
                     continue;
                   }
                   API_ASSIGN_OR_RETURN(auto value, body.String(key));
                   if (value) values[key] = *value;
                 }
                 API_ASSIGN_OR_RETURN(auto after,
                                      control::UpdateMetaSettings(db, call.actor, values));
                 return Reply{200, meta_json(after)};
               }));
  }

  void ServerRoutes() {
    server.Get("/api/servers", Wrap([this](Call& call) -> ControlResult<Reply> {
                 auto listed = db.Transact([&](db::Tx& tx) -> Result<json> {
                   std::map<std::string, json> rows;  // by hostname+id, deduplicated
                   for (const auto& membership : call.principal.memberships) {
                     KINDLING_ASSIGN_OR_RETURN(
                         auto servers,
                         db::ListServers(
                             tx, db::ServerFilter{.organization_id = membership.organization_id}));
                     for (const auto& s : servers) rows[s.hostname + "\n" + s.id] = ServerJson(s);
                   }
                   json out = json::array();
                   for (auto& [key, row] : rows) out.push_back(std::move(row));
                   return out;
                 });
                 if (!listed) return std::unexpected(control::FromError(listed.error()));
                 return Reply{200, std::move(*listed)};
               }));
    server.Get("/api/platform/servers", Wrap([this](Call& call) -> ControlResult<Reply> {
                 API_RETURN_IF_ERROR(RequireAdmin(call));
                 auto servers = db.Transact([&](db::Tx& tx) { return db::ListServers(tx); });
                 if (!servers) return std::unexpected(control::FromError(servers.error()));
                 json out = json::array();
                 for (const auto& s : *servers) out.push_back(ServerJson(s));
                 return Reply{200, out};
               }));
    for (auto [suffix, status] : {std::pair{"drain", db::ServerStatus::kDraining},
                                  std::pair{"activate", db::ServerStatus::kActive}}) {
      server.Post(std::string(R"(/api/servers/([^/]+)/)") + suffix,
                  Wrap([this, status](Call& call) -> ControlResult<Reply> {
                    API_RETURN_IF_ERROR(RequireAdmin(call));
                    API_ASSIGN_OR_RETURN(std::string id, call.PathId(1, "server"));
                    API_RETURN_IF_ERROR(Body::Parse(call.req, {}));
                    API_ASSIGN_OR_RETURN(auto s,
                                         control::SetServerStatus(db, call.actor, id, status));
                    return Reply{200, ServerJson(s)};
                  }));
    }
  }

  void ProjectRoutes() {
    server.Post(
        "/api/projects", Wrap([this](Call& call) -> ControlResult<Reply> {
          API_ASSIGN_OR_RETURN(auto body, Body::Parse(call.req, {"name", "organization_id"}));
          API_ASSIGN_OR_RETURN(auto name, body.String("name"));
          if (!name || name->empty()) return Invalid("name is required");
          API_ASSIGN_OR_RETURN(auto org, body.Uuid("organization_id"));
          if (!org) {
            // The caller's only organisation they may create in.
            for (const auto& m : call.principal.memberships) {
              if (m.role == db::OrgRole::kMember) continue;
              if (org) {
                return Invalid(
                    "organization_id is required: you administer several "
                    "organisations");
              }
              org = m.organization_id;
            }
            if (!org) {
              return Refuse(403, control::kCodeForbidden,
                            "you are not an owner or admin of any organisation");
            }
          } else if (!call.IsAdmin()) {
            auto role = call.principal.RoleIn(*org);
            if (!role) return Refuse(404, control::kCodeNotFound, "organisation not found");
            if (*role == db::OrgRole::kMember) {
              return Refuse(403, control::kCodeForbidden,
                            "creating projects needs the owner or admin role");
            }
          }
          auto project = db.Transact([&](db::Tx& tx) -> Result<db::Project> {
            KINDLING_ASSIGN_OR_RETURN(auto p, db::CreateProject(tx, *org, *name));
            KINDLING_RETURN_IF_ERROR(control::Audit(
                tx, call.actor, "project.create", "project", p.id,
                json{{"name", p.name}, {"organization_id", p.organization_id}}.dump()));
            return p;
          });
          if (!project) return std::unexpected(control::FromError(project.error()));
          return Reply{201, ProjectJson(*project)};
        }));
    server.Get("/api/projects", Wrap([this](Call& call) -> ControlResult<Reply> {
                 db::ProjectFilter filter;
                 if (!call.IsAdmin()) filter.member_user_id = call.principal.user.id;
                 auto projects =
                     db.Transact([&](db::Tx& tx) { return db::ListProjects(tx, filter); });
                 if (!projects) return std::unexpected(control::FromError(projects.error()));
                 json out = json::array();
                 for (const auto& p : *projects) out.push_back(ProjectJson(p));
                 return Reply{200, out};
               }));
    server.Get(R"(/api/projects/([^/]+))", Wrap([this](Call& call) -> ControlResult<Reply> {
                 API_ASSIGN_OR_RETURN(auto project, AccessProject(call, 1, false));
                 return Reply{200, ProjectJson(project)};
               }));
    server.Get(R"(/api/operations/([^/]+))", Wrap([this](Call& call) -> ControlResult<Reply> {
                 API_ASSIGN_OR_RETURN(std::string id, call.PathId(1, "operation"));
                 struct Found {
                   db::Operation op;
                   db::Project project;
                 };
                 auto found = db.Transact([&](db::Tx& tx) -> Result<Found> {
                   KINDLING_ASSIGN_OR_RETURN(auto op, db::GetOperation(tx, id));
                   KINDLING_ASSIGN_OR_RETURN(auto volume, db::GetVolume(tx, op.project_volume_id));
                   KINDLING_ASSIGN_OR_RETURN(auto project, db::GetProject(tx, volume.project_id));
                   return Found{std::move(op), std::move(project)};
                 });
                 if (!found) {
                   if (found.error().is_not_found()) {
                     return Refuse(404, control::kCodeNotFound, "operation " + id + " not found");
                   }
                   return std::unexpected(control::FromError(found.error()));
                 }
                 if (!call.IsAdmin() && !call.principal.RoleIn(found->project.organization_id)) {
                   return Refuse(404, control::kCodeNotFound, "operation " + id + " not found");
                 }
                 json out = OperationJson(found->op);
                 out["project_id"] = found->project.id;
                 return Reply{200, out};
               }));
  }

  void VolumeRoutes() {
    const std::string volume = R"(/api/projects/([^/]+)/volume)";
    server.Get(volume, Wrap([this](Call& call) -> ControlResult<Reply> {
                 API_ASSIGN_OR_RETURN(auto project, AccessProject(call, 1, false));
                 API_ASSIGN_OR_RETURN(auto view, volumes.GetVolume(project.id));
                 return Reply{200, VolumeJson(view)};
               }));
    server.Put(
        volume, Wrap([this](Call& call) -> ControlResult<Reply> {
          API_ASSIGN_OR_RETURN(auto project, AccessProject(call, 1, true));
          API_ASSIGN_OR_RETURN(
              auto body,
              Body::Parse(call.req, {"mount_path", "size_gb", "backup_schedule",
                                     "backup_retention_count", "pre_delete_backup_enabled"}));
          db::VolumeSettingsUpdate update;
          API_ASSIGN_OR_RETURN(update.mount_path, body.String("mount_path"));
          if (update.mount_path &&
              (update.mount_path->empty() || update.mount_path->front() != '/')) {
            return Invalid("mount_path must be an absolute path");
          }
          API_ASSIGN_OR_RETURN(update.size_gb, body.Int("size_gb"));
          if (update.size_gb && *update.size_gb < 1) return Invalid("size_gb must be >= 1");
          API_ASSIGN_OR_RETURN(auto schedule, body.String("backup_schedule"));
          if (schedule) {
            update.backup_schedule = db::ParseEnum<db::BackupSchedule>(*schedule);
            if (!update.backup_schedule) {
              return Invalid("backup_schedule must be off, manual, daily or weekly");
            }
          }
          API_ASSIGN_OR_RETURN(update.backup_retention_count, body.Int("backup_retention_count"));
          if (update.backup_retention_count && *update.backup_retention_count < 1) {
            return Invalid("backup_retention_count must be >= 1");
          }
          API_ASSIGN_OR_RETURN(update.pre_delete_backup_enabled,
                               body.Bool("pre_delete_backup_enabled"));
          API_ASSIGN_OR_RETURN(auto view, volumes.PutVolume(call.actor, project.id, update));
          return Reply{200, VolumeJson(view)};
        }));
    server.Delete(volume, Wrap([this](Call& call) -> ControlResult<Reply> {
                    API_ASSIGN_OR_RETURN(auto project, AccessProject(call, 1, true));
                    API_ASSIGN_OR_RETURN(auto outcome,
                                         volumes.DeleteVolume(call.actor, project.id));
                    if (outcome.operation) return Reply{202, OperationJson(*outcome.operation)};
                    return Reply{204, json()};
                  }));
    server.Get(volume + "/backups", Wrap([this](Call& call) -> ControlResult<Reply> {
                 API_ASSIGN_OR_RETURN(auto project, AccessProject(call, 1, false));
                 API_ASSIGN_OR_RETURN(auto backups, volumes.ListBackups(project.id));
                 json out = json::array();
                 for (const auto& b : backups) out.push_back(BackupJson(b));
                 return Reply{200, out};
               }));
    server.Post(volume + "/backups", Wrap([this](Call& call) -> ControlResult<Reply> {
                  API_ASSIGN_OR_RETURN(auto project, AccessProject(call, 1, true));
                  API_RETURN_IF_ERROR(Body::Parse(call.req, {}));
                  API_ASSIGN_OR_RETURN(auto op, volumes.QueueBackup(call.actor, project.id));
                  return Reply{202, OperationJson(op)};
                }));
    server.Post(
        volume + "/restore", Wrap([this](Call& call) -> ControlResult<Reply> {
          API_ASSIGN_OR_RETURN(auto project, AccessProject(call, 1, true));
          API_ASSIGN_OR_RETURN(auto body, Body::Parse(call.req, {"backup_id", "target_server_id"}));
          API_ASSIGN_OR_RETURN(auto backup_id, body.Uuid("backup_id"));
          API_ASSIGN_OR_RETURN(auto target, body.Uuid("target_server_id"));
          API_ASSIGN_OR_RETURN(auto op,
                               volumes.QueueRestore(call.actor, project.id, backup_id, target));
          return Reply{202, OperationJson(op)};
        }));
    server.Post(volume + "/move", Wrap([this](Call& call) -> ControlResult<Reply> {
                  API_ASSIGN_OR_RETURN(auto project, AccessProject(call, 1, true));
                  API_ASSIGN_OR_RETURN(auto body, Body::Parse(call.req, {"target_server_id"}));
                  API_ASSIGN_OR_RETURN(auto target, body.Uuid("target_server_id"));
                  API_ASSIGN_OR_RETURN(auto op, volumes.QueueMove(call.actor, project.id, target));
                  return Reply{202, OperationJson(op)};
                }));
    server.Post(volume + "/repair", Wrap([this](Call& call) -> ControlResult<Reply> {
                  API_ASSIGN_OR_RETURN(auto project, AccessProject(call, 1, true));
                  API_RETURN_IF_ERROR(Body::Parse(call.req, {}));
                  API_ASSIGN_OR_RETURN(auto op, volumes.QueueRepair(call.actor, project.id));
                  return Reply{202, OperationJson(op)};
                }));
  }

  void SettingsRoutes() {
    const std::string path = "/api/platform/volume-backup-settings";
    server.Get(path, Wrap([this](Call& call) -> ControlResult<Reply> {
                 API_RETURN_IF_ERROR(RequireAdmin(call));
                 API_ASSIGN_OR_RETURN(auto settings, control::GetBackupSettings(db, master_key));
                 return Reply{200, BackupSettingsJson(settings)};
               }));
    server.Put(path, Wrap([this](Call& call) -> ControlResult<Reply> {
                 API_RETURN_IF_ERROR(RequireAdmin(call));
                 API_ASSIGN_OR_RETURN(auto body, Body::Parse(call.req, kBackupSettingsFields));
                 API_ASSIGN_OR_RETURN(auto update, ParseBackupSettings(body));
                 API_ASSIGN_OR_RETURN(auto settings, control::UpdateBackupSettings(
                                                         db, master_key, call.actor, update));
                 json out = BackupSettingsJson(settings);
                 // Create the store's keys now, under the cluster-wide lock, so
                 // workers only ever open an initialised store.
                 json store = json{{"ready", false}, {"error", nullptr}};
                 if (settings.MissingReason().empty()) {
                   auto opened = control::OpenBackupStore(settings, master_key, &db);
                   if (opened) {
                     store["ready"] = true;
                   } else {
                     store["error"] = opened.error().message();
                   }
                 }
                 out["store"] = store;
                 return Reply{200, out};
               }));
    server.Post(path + "/test", Wrap([this](Call& call) -> ControlResult<Reply> {
                  API_RETURN_IF_ERROR(RequireAdmin(call));
                  API_ASSIGN_OR_RETURN(auto body, Body::Parse(call.req, kBackupSettingsFields));
                  API_ASSIGN_OR_RETURN(auto update, ParseBackupSettings(body));
                  API_ASSIGN_OR_RETURN(auto saved, control::GetBackupSettings(db, master_key));
                  auto settings = control::MergeBackupSettings(std::move(saved), update);
                  json out = {{"ok", true}, {"step", nullptr}, {"error", nullptr}};
                  out["storage_url"] = settings.Url();
                  if (auto probe = control::ProbeBackupStore(settings); !probe) {
                    out["ok"] = false;
                    out["step"] = ProbeStep(probe.error().message());
                    out["error"] = probe.error().message();
                  }
                  return Reply{200, out};
                }));
    server.Get(
        "/api/platform/audit-events", Wrap([this](Call& call) -> ControlResult<Reply> {
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
          auto events = db.Transact([&](db::Tx& tx) { return db::ListAuditEvents(tx, filter); });
          if (!events) return std::unexpected(control::FromError(events.error()));
          json out = json::array();
          for (const auto& e : *events) {
            json details = json::parse(e.details_json, nullptr, false);
            out.push_back(
                json{{"id", e.id},
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
        }));
  }

  void AccountRoutes() {
    server.Post("/api/api-keys", Wrap([this](Call& call) -> ControlResult<Reply> {
                  API_ASSIGN_OR_RETURN(auto body, Body::Parse(call.req, {"name"}));
                  API_ASSIGN_OR_RETURN(auto name, body.String("name"));
                  if (!name || name->empty()) return Invalid("name is required");
                  API_ASSIGN_OR_RETURN(
                      auto created,
                      control::CreateApiKey(db, call.actor, call.principal.user.id, *name));
                  json out = ApiKeyJson(created.key);
                  out["secret"] = created.secret;  // shown once
                  return Reply{201, out};
                }));
    server.Get("/api/api-keys", Wrap([this](Call& call) -> ControlResult<Reply> {
                 auto keys = db.Transact(
                     [&](db::Tx& tx) { return db::ListApiKeys(tx, call.principal.user.id); });
                 if (!keys) return std::unexpected(control::FromError(keys.error()));
                 json out = json::array();
                 for (const auto& k : *keys) out.push_back(ApiKeyJson(k));
                 return Reply{200, out};
               }));
    server.Delete(
        R"(/api/api-keys/([^/]+))", Wrap([this](Call& call) -> ControlResult<Reply> {
          API_ASSIGN_OR_RETURN(std::string id, call.PathId(1, "API key"));
          API_RETURN_IF_ERROR(control::RevokeApiKey(db, call.actor, call.principal.user.id, id));
          return Reply{204, json()};
        }));
  }
};

ApiServer::ApiServer(db::Database& db, const crypto::Key& master_key, ApiServerOptions options)
    : impl_(std::make_unique<Impl>(db, master_key, std::move(options))) {
  impl_->server.set_payload_max_length(impl_->options.max_body_bytes);
  impl_->server.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 413) {
      Impl::WriteError(res, 413, "payload_too_large", "request body is larger than allowed");
    } else if (res.status == 404) {
      Impl::WriteError(res, 404, control::kCodeNotFound, "no such route");
    } else if (res.status == 400) {
      Impl::WriteError(res, 400, control::kCodeValidation, "malformed request");
    } else {
      Impl::WriteError(res, res.status, "error", "request failed");
    }
  });
  impl_->server.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
        Impl::WriteError(res, 500, control::kCodeInternal, "internal error");
      });
  impl_->Routes();
}

ApiServer::~ApiServer() { Stop(); }

Status ApiServer::Start() {
  std::lock_guard lock(impl_->mu);
  if (impl_->started) return InvalidArgument("API server already started");
  try {
    int port = impl_->options.port;
    if (port == 0) {
      port = impl_->server.bind_to_any_port(impl_->options.listen_address);
    } else if (!impl_->server.bind_to_port(impl_->options.listen_address, port)) {
      port = -1;
    }
    if (port < 0) {
      return IoError("cannot listen on " + impl_->options.listen_address + ":" +
                     std::to_string(impl_->options.port));
    }
    impl_->bound_port = port;
    impl_->started = true;
    impl_->thread = std::thread([impl = impl_.get()] { impl->server.listen_after_bind(); });
  } catch (const std::exception& e) {
    return IoError(std::string("cannot start the API server: ") + e.what());
  }
  return OkStatus();
}

void ApiServer::Stop() {
  std::lock_guard lock(impl_->mu);
  if (!impl_->started) return;
  impl_->server.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
  impl_->started = false;
}

int ApiServer::port() const { return impl_->bound_port; }

}  // namespace kindling::api
