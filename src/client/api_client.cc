#include "client/api_client.h"

#include <algorithm>
#include <cctype>
#include <exception>

#include "client/http_text.h"
#include "common/hex.h"
#include "common/ids.h"
#include "common/scrub.h"
#include "http/http_client.h"

namespace kindling::client {
namespace {

using nlohmann::json;

ErrorKind KindForStatus(long status) {
  switch (status) {
    case 400:
    case 413:
    case 422:
      return ErrorKind::kInvalidArgument;
    case 401:
    case 403:
      return ErrorKind::kPermissionDenied;
    case 404:
      return ErrorKind::kNotFound;
    case 409:
      return ErrorKind::kFailedPrecondition;
    case 408:
    case 429:
    case 502:
    case 503:
    case 504:
      return ErrorKind::kTransient;
    default:
      return ErrorKind::kInternal;
  }
}

Status RequireUuid(std::string_view what, const std::string& id) {
  if (IsUuid(id)) return OkStatus();
  return InvalidArgument(std::string(what) + " id must be a UUID, got \"" + PrintableExcerpt(id) +
                         "\"");
}

}  // namespace

Error ErrorFromAnswer(long status, std::string_view body, std::string_view what) {
  const ErrorKind kind = KindForStatus(status);
  const json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_object() && parsed.contains("error") && parsed["error"].is_string()) {
    std::string message = parsed["error"].get<std::string>();
    if (parsed.contains("code") && parsed["code"].is_string() &&
        !parsed["code"].get_ref<const std::string&>().empty()) {
      message += " (" + parsed["code"].get<std::string>() + ")";
    }
    if (status == 401) message += "; check --api-key or KINDLING_API_KEY";
    return Error(kind, std::move(message));
  }
  std::string message = std::string(what) + ": HTTP " + std::to_string(status);
  if (!body.empty()) message += ": " + PrintableExcerpt(body);
  return Error(kind, std::move(message));
}

ApiClient::ApiClient(std::string base_url, ApiClientOptions options)
    : base_url_(std::move(base_url)),
      options_(std::move(options)),
      http_(std::make_unique<http::HttpClient>(
          http::HttpClientOptions{.max_connections = 2,
                                  .connect_timeout_ms = options_.connect_timeout_ms,
                                  .request_timeout_ms = options_.request_timeout_ms,
                                  .ca_file = options_.ca_file})) {}

ApiClient::~ApiClient() = default;

Result<std::unique_ptr<ApiClient>> ApiClient::Create(ApiClientOptions options) {
  KINDLING_ASSIGN_OR_RETURN(std::string url, NormalizeBaseUrl(options.base_url, "API"));
  if (options.api_key.empty()) {
    return InvalidArgument("no API key: pass --api-key or set KINDLING_API_KEY");
  }
  if (!IsHeaderSafe(options.api_key.Reveal())) {
    return InvalidArgument("the API key holds spaces or control characters");
  }
  try {
    return std::unique_ptr<ApiClient>(new ApiClient(std::move(url), std::move(options)));
  } catch (const std::exception& e) {
    return InternalError(std::string("API client: ") + e.what());
  }
}

std::string ApiClient::Scrub(std::string_view text) const {
  return ScrubSecrets(text, {options_.api_key.Reveal()}, "[api key]");
}

Result<json> ApiClient::Call(std::string_view method, std::string_view path, const Query& query,
                             const json* body) {
  std::string target(path);
  for (std::size_t i = 0; i < query.size(); ++i) {
    target += i == 0 ? '?' : '&';
    target += PercentEncode(query[i].first) + "=" + PercentEncode(query[i].second);
  }
  const std::string what = std::string(method) + " " + std::string(path);
  std::string payload;
  http::HttpRequest request;
  request.method = std::string(method);
  request.url = base_url_ + target;
  request.headers = {"Authorization: Bearer " + std::string(options_.api_key.Reveal()),
                     "Accept: application/json", "User-Agent: " + options_.user_agent};
  if (body != nullptr) {
    payload = body->is_null() ? std::string("{}")
                              : body->dump(-1, ' ', false, json::error_handler_t::replace);
    request.headers.push_back("Content-Type: application/json");
    request.body = payload;
  }
  auto response = http_->Send(request, what);
  WipeString(request.headers.front());  // the key's copy in the header
  WipeString(payload);                  // it may carry a secret (backup settings)
  if (!response) {
    std::string message =
        "cannot reach the API at " + base_url_ + " (" + response.error().message() + ")";
    if (response.error().kind() == ErrorKind::kPermissionDenied) {
      message += options_.ca_file.empty()
                     ? "; if the API's certificate is signed by a private CA, pass its "
                       "certificate with --ca-file or KINDLING_CA_FILE"
                     : "; the certificate is not signed by a CA in " + options_.ca_file +
                           " or does not name this host";
    }
    return MakeError(response.error().kind(), Scrub(std::move(message)));
  }
  if (response->status < 200 || response->status > 299) {
    const Error error = ErrorFromAnswer(response->status, response->body, what);
    return MakeError(error.kind(), Scrub(error.message()));
  }
  if (response->status == 204 || response->body.empty()) return json(nullptr);
  json parsed = json::parse(response->body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    return InternalError(what + ": the API answered HTTP " + std::to_string(response->status) +
                         " with a body that is not JSON");
  }
  return parsed;
}

Result<json> ApiClient::Get(std::string_view path, const Query& query) {
  return Call("GET", path, query, nullptr);
}

Result<json> ApiClient::Post(std::string_view path, const json& body) {
  return Call("POST", path, {}, &body);
}

Result<json> ApiClient::Put(std::string_view path, const json& body) {
  return Call("PUT", path, {}, &body);
}

Result<json> ApiClient::Delete(std::string_view path) { return Call("DELETE", path, {}, nullptr); }

Result<json> ApiClient::ListProjects() { return Get("/api/projects"); }

Result<json> ApiClient::CreateProject(const std::string& name, const std::string& organization_id) {
  if (name.empty()) return InvalidArgument("a project needs a name");
  json body = {{"name", name}};
  if (!organization_id.empty()) {
    KINDLING_RETURN_IF_ERROR(RequireUuid("organisation", organization_id));
    body["organization_id"] = organization_id;
  }
  return Post("/api/projects", body);
}

Result<json> ApiClient::GetVolume(const std::string& project_id) {
  KINDLING_RETURN_IF_ERROR(RequireUuid("project", project_id));
  return Get("/api/projects/" + project_id + "/volume");
}

Result<json> ApiClient::PutVolume(const std::string& project_id, const VolumeSettings& settings) {
  KINDLING_RETURN_IF_ERROR(RequireUuid("project", project_id));
  json body = json::object();
  if (settings.size_gb) body["size_gb"] = *settings.size_gb;
  if (settings.mount_path) body["mount_path"] = *settings.mount_path;
  if (settings.backup_schedule) body["backup_schedule"] = *settings.backup_schedule;
  for (const auto& [name, value] :
       {std::pair{"backup_cron", settings.backup_cron},
        std::pair{"backup_window_start", settings.backup_window_start}}) {
    if (value) body[name] = value->empty() ? json(nullptr) : json(*value);
  }
  if (settings.backup_window_minutes) {
    body["backup_window_minutes"] = *settings.backup_window_minutes == 0
                                        ? json(nullptr)
                                        : json(*settings.backup_window_minutes);
  }
  if (settings.backup_time_zone) body["backup_time_zone"] = *settings.backup_time_zone;
  if (settings.backup_retention_count) {
    body["backup_retention_count"] = *settings.backup_retention_count;
  }
  if (settings.pre_delete_backup_enabled) {
    body["pre_delete_backup_enabled"] = *settings.pre_delete_backup_enabled;
  }
  for (const auto& [name, value] : {std::pair{"backup_keep_hourly", settings.backup_keep_hourly},
                                    std::pair{"backup_keep_daily", settings.backup_keep_daily},
                                    std::pair{"backup_keep_weekly", settings.backup_keep_weekly},
                                    std::pair{"backup_keep_monthly", settings.backup_keep_monthly},
                                    std::pair{"backup_keep_yearly", settings.backup_keep_yearly}}) {
    if (value) body[name] = *value;
  }
  return Put("/api/projects/" + project_id + "/volume", body);
}

Result<json> ApiClient::DeleteVolume(const std::string& project_id) {
  KINDLING_RETURN_IF_ERROR(RequireUuid("project", project_id));
  return Delete("/api/projects/" + project_id + "/volume");
}

Result<json> ApiClient::ListProjectBackups(const std::string& project_id) {
  KINDLING_RETURN_IF_ERROR(RequireUuid("project", project_id));
  return Get("/api/projects/" + project_id + "/backups");
}

Result<json> ApiClient::ListBackups(const std::string& project_id) {
  KINDLING_RETURN_IF_ERROR(RequireUuid("project", project_id));
  return Get("/api/projects/" + project_id + "/volume/backups");
}

Result<json> ApiClient::PreviewRetention(const std::string& project_id) {
  KINDLING_RETURN_IF_ERROR(RequireUuid("project", project_id));
  return Get("/api/projects/" + project_id + "/volume/retention");
}

namespace {

void AddWorkloadOptions(json& body, const WorkloadOptions& workload) {
  if (workload.stop_workload) body["stop_workload"] = true;
  if (workload.validate) body["validate"] = true;
}

}  // namespace

Result<json> ApiClient::QueueBackup(const std::string& project_id, WorkloadOptions workload) {
  KINDLING_RETURN_IF_ERROR(RequireUuid("project", project_id));
  json body = json::object();
  AddWorkloadOptions(body, workload);
  return Post("/api/projects/" + project_id + "/volume/backups", body);
}

Result<json> ApiClient::QueueRestore(const std::string& project_id, const std::string& backup_id,
                                     const std::string& target_server_id,
                                     WorkloadOptions workload) {
  KINDLING_RETURN_IF_ERROR(RequireUuid("project", project_id));
  KINDLING_RETURN_IF_ERROR(RequireUuid("backup", backup_id));
  json body = {{"backup_id", backup_id}};
  if (!target_server_id.empty()) {
    KINDLING_RETURN_IF_ERROR(RequireUuid("target server", target_server_id));
    body["target_server_id"] = target_server_id;
  }
  AddWorkloadOptions(body, workload);
  return Post("/api/projects/" + project_id + "/volume/restore", body);
}

Result<json> ApiClient::QueueMove(const std::string& project_id,
                                  const std::string& target_server_id, WorkloadOptions workload) {
  KINDLING_RETURN_IF_ERROR(RequireUuid("project", project_id));
  json body = json::object();
  if (!target_server_id.empty()) {
    KINDLING_RETURN_IF_ERROR(RequireUuid("target server", target_server_id));
    body["target_server_id"] = target_server_id;
  }
  AddWorkloadOptions(body, workload);
  return Post("/api/projects/" + project_id + "/volume/move", body);
}

Result<json> ApiClient::QueueRepair(const std::string& project_id) {
  KINDLING_RETURN_IF_ERROR(RequireUuid("project", project_id));
  return Post("/api/projects/" + project_id + "/volume/repair", json::object());
}

Result<json> ApiClient::VerifyBackup(const std::string& project_id, const std::string& backup_id) {
  KINDLING_RETURN_IF_ERROR(RequireUuid("project", project_id));
  KINDLING_RETURN_IF_ERROR(RequireUuid("backup", backup_id));
  return Post("/api/projects/" + project_id + "/volume/backups/" + backup_id + "/verify",
              json::object());
}

Result<json> ApiClient::PinBackup(const std::string& project_id, const std::string& backup_id,
                                  bool pinned) {
  KINDLING_RETURN_IF_ERROR(RequireUuid("project", project_id));
  KINDLING_RETURN_IF_ERROR(RequireUuid("backup", backup_id));
  const std::string path = "/api/projects/" + project_id + "/volume/backups/" + backup_id + "/pin";
  return pinned ? Post(path, json::object()) : Delete(path);
}

Result<json> ApiClient::AdoptImage(const std::string& project_id,
                                   const std::string& quarantine_id) {
  KINDLING_RETURN_IF_ERROR(RequireUuid("project", project_id));
  KINDLING_RETURN_IF_ERROR(RequireUuid("quarantined image", quarantine_id));
  return Post("/api/projects/" + project_id + "/volume/adopt-image",
              json{{"quarantine_id", quarantine_id}});
}

Result<json> ApiClient::Deploy(const std::string& project_id, const DeployRequest& request) {
  KINDLING_RETURN_IF_ERROR(RequireUuid("project", project_id));
  if (request.image.empty()) return InvalidArgument("a deployment needs an image");
  json body = {{"image", request.image}};
  if (request.service) body["service"] = *request.service;
  if (request.memory_mib) body["memory_mib"] = *request.memory_mib;
  if (request.vcpus) body["vcpus"] = *request.vcpus;
  if (request.boot_timeout_seconds) body["boot_timeout_seconds"] = *request.boot_timeout_seconds;
  if (request.stop_timeout_seconds) body["stop_timeout_seconds"] = *request.stop_timeout_seconds;
  return Post("/api/projects/" + project_id + "/deploy", body);
}

Result<json> ApiClient::ListDeployments(const std::string& project_id) {
  KINDLING_RETURN_IF_ERROR(RequireUuid("project", project_id));
  return Get("/api/projects/" + project_id + "/deployments");
}

Result<json> ApiClient::StopWorkload(const std::string& project_id, const std::string& service) {
  KINDLING_RETURN_IF_ERROR(RequireUuid("project", project_id));
  json body = json::object();
  if (!service.empty()) body["service"] = service;
  return Post("/api/projects/" + project_id + "/stop", body);
}

Result<json> ApiClient::StartWorkload(const std::string& project_id, const std::string& service) {
  KINDLING_RETURN_IF_ERROR(RequireUuid("project", project_id));
  json body = json::object();
  if (!service.empty()) body["service"] = service;
  return Post("/api/projects/" + project_id + "/start", body);
}

Result<json> ApiClient::ListVolumeQuarantine(const std::string& project_id) {
  KINDLING_RETURN_IF_ERROR(RequireUuid("project", project_id));
  return Get("/api/projects/" + project_id + "/volume/quarantine");
}

Result<json> ApiClient::ListPlatformQuarantine(const QuarantineQuery& query) {
  Query params;
  if (query.server_id) {
    KINDLING_RETURN_IF_ERROR(RequireUuid("server", *query.server_id));
    params.emplace_back("server_id", *query.server_id);
  }
  if (query.volume_id) {
    KINDLING_RETURN_IF_ERROR(RequireUuid("volume", *query.volume_id));
    params.emplace_back("volume_id", *query.volume_id);
  }
  if (query.status) params.emplace_back("status", *query.status);
  return Get("/api/platform/quarantine", params);
}

Result<json> ApiClient::PurgeQuarantined(const std::string& quarantine_id,
                                         const std::string& project_id) {
  KINDLING_RETURN_IF_ERROR(RequireUuid("quarantined image", quarantine_id));
  if (project_id.empty()) return Delete("/api/platform/quarantine/" + quarantine_id);
  KINDLING_RETURN_IF_ERROR(RequireUuid("project", project_id));
  return Delete("/api/projects/" + project_id + "/volume/quarantine/" + quarantine_id);
}

Result<json> ApiClient::GetOperation(const std::string& operation_id) {
  KINDLING_RETURN_IF_ERROR(RequireUuid("operation", operation_id));
  return Get("/api/operations/" + operation_id);
}

Result<json> ApiClient::GetBackupSettings() { return Get("/api/platform/volume-backup-settings"); }

Result<json> ApiClient::PutBackupSettings(const json& changes) {
  if (!changes.is_object()) return InvalidArgument("backup settings changes must be an object");
  return Put("/api/platform/volume-backup-settings", changes);
}

Result<json> ApiClient::TestBackupSettings(const json& overrides) {
  if (!overrides.is_object()) return InvalidArgument("backup settings overrides must be an object");
  return Post("/api/platform/volume-backup-settings/test", overrides);
}

Result<json> ApiClient::ListBackupStores() { return Get("/api/platform/volume-backup-stores"); }

Result<json> ApiClient::RescanBackups() {
  return Post("/api/platform/backups/rescan", json::object());
}

Result<json> ApiClient::ListOrphanBackups(bool include_assigned) {
  Query query;
  if (include_assigned) query.emplace_back("include_assigned", "true");
  return Get("/api/platform/backups/orphans", query);
}

Result<json> ApiClient::AssignOrphanBackup(const std::string& backup_id,
                                           const std::string& project_id) {
  const bool safe =
      !backup_id.empty() && backup_id.size() <= 128 && std::ranges::all_of(backup_id, [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
      });
  if (!safe) {
    return InvalidArgument("backup id must be 1-128 characters of [A-Za-z0-9._-], got \"" +
                           PrintableExcerpt(backup_id) + "\"");
  }
  KINDLING_RETURN_IF_ERROR(RequireUuid("project", project_id));
  return Post("/api/platform/backups/" + backup_id + "/assign", json{{"project_id", project_id}});
}

Result<json> ApiClient::GetPlatformHealth() { return Get("/api/platform/health"); }

Result<json> ApiClient::ListServers(bool all) {
  return Get(all ? "/api/platform/servers" : "/api/servers");
}

Result<json> ApiClient::DrainServer(const std::string& server_id) {
  KINDLING_RETURN_IF_ERROR(RequireUuid("server", server_id));
  return Post("/api/servers/" + server_id + "/drain", json::object());
}

Result<json> ApiClient::ActivateServer(const std::string& server_id) {
  KINDLING_RETURN_IF_ERROR(RequireUuid("server", server_id));
  return Post("/api/servers/" + server_id + "/activate", json::object());
}

Result<json> ApiClient::ListAuditEvents(const AuditQuery& query) {
  Query params;
  if (query.action) params.emplace_back("action", *query.action);
  if (query.resource_type) params.emplace_back("resource_type", *query.resource_type);
  if (query.resource_id) params.emplace_back("resource_id", *query.resource_id);
  if (query.since) params.emplace_back("since", *query.since);
  if (query.limit) params.emplace_back("limit", std::to_string(*query.limit));
  return Get("/api/platform/audit-events", params);
}

Result<json> ApiClient::ListApiKeys(const std::string& user_id) {
  if (user_id.empty()) return Get("/api/api-keys");
  KINDLING_RETURN_IF_ERROR(RequireUuid("user", user_id));
  return Get("/api/api-keys", Query{{"user_id", user_id}});
}

Result<json> ApiClient::CreateApiKey(const std::string& name, const std::string& user_id) {
  if (name.empty()) return InvalidArgument("an API key needs a name");
  json body{{"name", name}};
  if (!user_id.empty()) {
    KINDLING_RETURN_IF_ERROR(RequireUuid("user", user_id));
    body["user_id"] = user_id;
  }
  return Post("/api/api-keys", body);
}

Status ApiClient::RevokeApiKey(const std::string& key_id) {
  KINDLING_RETURN_IF_ERROR(RequireUuid("API key", key_id));
  KINDLING_RETURN_IF_ERROR(Delete("/api/api-keys/" + key_id));
  return OkStatus();
}

Result<json> ApiClient::CreateUser(const std::string& email, const std::string& name,
                                   bool platform_admin) {
  json body{{"email", email}, {"is_platform_admin", platform_admin}};
  if (!name.empty()) body["name"] = name;
  return Post("/api/users", body);
}

Result<json> ApiClient::ListUsers() { return Get("/api/users"); }

Result<json> ApiClient::CreateOrganization(const std::string& name,
                                           const std::string& owner_user_id) {
  json body{{"name", name}};
  if (!owner_user_id.empty()) {
    KINDLING_RETURN_IF_ERROR(RequireUuid("user", owner_user_id));
    body["owner_user_id"] = owner_user_id;
  }
  return Post("/api/organizations", body);
}

Result<json> ApiClient::ListOrganizations() { return Get("/api/organizations"); }

Result<json> ApiClient::ListMembers(const std::string& organization_id) {
  KINDLING_RETURN_IF_ERROR(RequireUuid("organisation", organization_id));
  return Get("/api/organizations/" + organization_id + "/members");
}

Result<json> ApiClient::SetMember(const std::string& organization_id, const std::string& user_id,
                                  const std::string& email, const std::string& role) {
  KINDLING_RETURN_IF_ERROR(RequireUuid("organisation", organization_id));
  json body{{"role", role}};
  if (!user_id.empty()) {
    KINDLING_RETURN_IF_ERROR(RequireUuid("user", user_id));
    body["user_id"] = user_id;
  } else {
    body["email"] = email;
  }
  return Post("/api/organizations/" + organization_id + "/members", body);
}

Status ApiClient::RemoveMember(const std::string& organization_id, const std::string& user_id) {
  KINDLING_RETURN_IF_ERROR(RequireUuid("organisation", organization_id));
  KINDLING_RETURN_IF_ERROR(RequireUuid("user", user_id));
  KINDLING_RETURN_IF_ERROR(Delete("/api/organizations/" + organization_id + "/members/" + user_id));
  return OkStatus();
}

}  // namespace kindling::client
