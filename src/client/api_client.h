// ApiClient: the kindling HTTP API (api/api_server.h) as typed calls, for
// operator tools. Every call is one blocking exchange; the answer is the
// route's JSON document, unchanged (null for 204).
//
// Errors:
//   - the API refused (non-2xx): the message is the server's `error` text and
//     its `code`, e.g. "volume is busy (volume_busy)"; the kind follows the
//     status: 400/413/422 kInvalidArgument, 401/403 kPermissionDenied, 404
//     kNotFound, 409 kFailedPrecondition, 408/429/502/503/504 kTransient,
//     anything else kInternal.
//   - no answer (refused connection, DNS, timeout): "cannot reach the API at
//     <url> (...)", kTransient for what may pass, kInternal otherwise; an
//     https:// API whose certificate is not trusted (by the system CA store,
//     or `ca_file` when given): kPermissionDenied, "... TLS certificate
//     verification failed: ...", with a hint to pass --ca-file.
//   - bad input caught before sending (ids that are not UUIDs): kInvalidArgument.
// The API key is sent only in the Authorization header: it never appears in
// an error message (server text is scrubbed of it, common/scrub.h)
// or a log line. The client holds it as a Secret (wiped with the client) and
// wipes each request's header copy, and its serialised body (which may carry
// a secret, as the backup settings do), once the request is done.
//
// Thread-safe: calls may run concurrently (they share a small handle pool).
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"
#include "common/secret.h"

namespace kindling::http {
class HttpClient;
}

namespace kindling::client {

struct ApiClientOptions {
  // scheme://host[:port][/path prefix]; http or https; a trailing '/' is ignored.
  std::string base_url = "http://127.0.0.1:8080";
  Secret api_key{};  // REQUIRED; wiped with the client
  long connect_timeout_ms = 5'000;
  long request_timeout_ms = 60'000;
  std::string user_agent = "kindling-cli";
  // PEM CA certificates to verify an https:// API with; empty: the system store.
  std::string ca_file{};
};

// PUT /api/projects/{id}/volume fields; unset ones are not sent.
struct VolumeSettings {
  std::optional<int> size_gb{};
  std::optional<std::string> mount_path{};
  std::optional<std::string> backup_schedule{};  // off | manual | daily | weekly | cron
  // The schedule's details; "" (0 for the minutes) is sent as null: cleared.
  std::optional<std::string> backup_cron{};
  std::optional<std::string> backup_window_start{};
  std::optional<int> backup_window_minutes{};
  std::optional<std::string> backup_time_zone{};
  std::optional<int> backup_retention_count{};
  std::optional<bool> pre_delete_backup_enabled{};
  // The rest of the retention policy (backup_keep_hourly..backup_keep_yearly).
  std::optional<int> backup_keep_hourly{};
  std::optional<int> backup_keep_daily{};
  std::optional<int> backup_keep_weekly{};
  std::optional<int> backup_keep_monthly{};
  std::optional<int> backup_keep_yearly{};
};

// Query parameters of GET /api/platform/quarantine; unset ones are not sent.
struct QuarantineQuery {
  std::optional<std::string> server_id{};  // a UUID
  std::optional<std::string> volume_id{};  // a UUID
  std::optional<std::string> status{};     // held | adopted | purged
};

// Query parameters of GET /api/platform/audit-events; unset ones are not sent.
struct AuditQuery {
  std::optional<std::string> action{};
  std::optional<std::string> resource_type{};
  std::optional<std::string> resource_id{};
  std::optional<std::string> since{};  // RFC 3339
  std::optional<int> limit{};
};

// POST /api/projects/{id}/deploy fields; unset ones are not sent and take the
// API's defaults (service web, 128 MiB, 1 vCPU, boot timeout 60 s, stop
// timeout 20 s).
struct DeployRequest {
  std::string image{};  // REQUIRED: a guest image the volume's worker has
  std::optional<std::string> service{};
  std::optional<int> memory_mib{};
  std::optional<int> vcpus{};
  std::optional<int> boot_timeout_seconds{};
  std::optional<int> stop_timeout_seconds{};
};

using Query = std::vector<std::pair<std::string, std::string>>;

// What a backup, restore or move asks of the volume's running workload
// (sent only when set): stop it for the operation and start it again after;
// restore and move: check the new image in a guest first.
struct WorkloadOptions {
  bool stop_workload = false;
  bool validate = false;
};

class ApiClient {
 public:
  // kInvalidArgument for a base URL that is not http(s)://host..., or an API
  // key that is empty or holds characters a header cannot carry.
  [[nodiscard]] static Result<std::unique_ptr<ApiClient>> Create(ApiClientOptions options);
  ~ApiClient();
  ApiClient(const ApiClient&) = delete;
  ApiClient& operator=(const ApiClient&) = delete;

  // The base URL the calls go to (no trailing '/'), for messages.
  const std::string& base_url() const { return base_url_; }

  // Raw calls. `path` starts with '/' and is already encoded; query values
  // are encoded here. POST/PUT send `body` as JSON (null sends `{}`).
  [[nodiscard]] Result<nlohmann::json> Get(std::string_view path, const Query& query = {});
  [[nodiscard]] Result<nlohmann::json> Post(std::string_view path,
                                            const nlohmann::json& body = nullptr);
  [[nodiscard]] Result<nlohmann::json> Put(std::string_view path, const nlohmann::json& body);
  [[nodiscard]] Result<nlohmann::json> Delete(std::string_view path);

  // Projects.
  [[nodiscard]] Result<nlohmann::json> ListProjects();
  // `organization_id` empty: the caller's only organisation they administer.
  [[nodiscard]] Result<nlohmann::json> CreateProject(const std::string& name,
                                                     const std::string& organization_id = "");

  // A project's volume and its operations (the queue calls answer with the
  // new operation: {id, kind, status, backup_id, ...}).
  [[nodiscard]] Result<nlohmann::json> GetVolume(const std::string& project_id);
  [[nodiscard]] Result<nlohmann::json> PutVolume(const std::string& project_id,
                                                 const VolumeSettings& settings);
  // The answer is the queued pre-delete backup operation (the volume is
  // deleted once it succeeded) or null (deleted at once).
  [[nodiscard]] Result<nlohmann::json> DeleteVolume(const std::string& project_id);
  // The live volume's backups, newest first.
  [[nodiscard]] Result<nlohmann::json> ListBackups(const std::string& project_id);
  // What the volume's retention policy keeps (and why) and drops now.
  [[nodiscard]] Result<nlohmann::json> PreviewRetention(const std::string& project_id);
  // Backups of every volume the project has had (deleted ones included, each
  // with volume_deleted), newest first.
  [[nodiscard]] Result<nlohmann::json> ListProjectBackups(const std::string& project_id);
  [[nodiscard]] Result<nlohmann::json> QueueBackup(const std::string& project_id,
                                                   WorkloadOptions workload = {});
  // `target_server_id` empty: the API chooses.
  [[nodiscard]] Result<nlohmann::json> QueueRestore(const std::string& project_id,
                                                    const std::string& backup_id,
                                                    const std::string& target_server_id = "",
                                                    WorkloadOptions workload = {});
  [[nodiscard]] Result<nlohmann::json> QueueMove(const std::string& project_id,
                                                 const std::string& target_server_id = "",
                                                 WorkloadOptions workload = {});
  [[nodiscard]] Result<nlohmann::json> QueueRepair(const std::string& project_id);
  // Queues a verify of one of the project's backups (of any of its volumes);
  // the finished operation's `result` has ok, chunks_checked, problems
  // [{kind, chunk_id, key, offset, message}], image_digest_checked and
  // image_digest_matches.
  [[nodiscard]] Result<nlohmann::json> VerifyBackup(const std::string& project_id,
                                                    const std::string& backup_id);
  // Pins (`pinned`) or unpins one of the project's backups (of any of its
  // volumes): retention keeps a pinned backup whatever the policy. The
  // answer is the backup (pinned, verified_at, verify_state, ...).
  [[nodiscard]] Result<nlohmann::json> PinBackup(const std::string& project_id,
                                                 const std::string& backup_id, bool pinned);
  // Queues the adoption of quarantined image `quarantine_id` as the project's
  // volume's image.
  [[nodiscard]] Result<nlohmann::json> AdoptImage(const std::string& project_id,
                                                  const std::string& quarantine_id);
  [[nodiscard]] Result<nlohmann::json> GetOperation(const std::string& operation_id);

  // A project's workload. The answers are deployments: {id, project_id,
  // service, image, status, desired_state, hostname, memory_mib, vcpus,
  // boot_timeout_seconds, stop_timeout_seconds, error, superseded_at,
  // instance: {id, server_id, vm_id, status, address, error, ...} | null}.
  // The workload runs on the worker holding the project's volume; refusals:
  // volume_unavailable and volume_busy (kFailedPrecondition), an image the
  // worker lacks or bad resources (validation_error, kInvalidArgument), no
  // deployment to stop or start (kNotFound).
  //
  // Deploy supersedes the service's current deployment and queues an
  // instance; the answer is the new deployment, pending.
  [[nodiscard]] Result<nlohmann::json> Deploy(const std::string& project_id,
                                              const DeployRequest& request);
  // Every deployment of the project (superseded ones included), newest first.
  [[nodiscard]] Result<nlohmann::json> ListDeployments(const std::string& project_id);
  // Set the desired state of the service's current deployment (`service`
  // empty: the API's default, web). Start queues a new instance when none is
  // live.
  [[nodiscard]] Result<nlohmann::json> StopWorkload(const std::string& project_id,
                                                    const std::string& service = "");
  [[nodiscard]] Result<nlohmann::json> StartWorkload(const std::string& project_id,
                                                     const std::string& service = "");

  // Quarantined volume images. The project's (images of any of its volumes),
  // newest first.
  [[nodiscard]] Result<nlohmann::json> ListVolumeQuarantine(const std::string& project_id);
  // Every entry matching `query` (platform admin), newest first.
  [[nodiscard]] Result<nlohmann::json> ListPlatformQuarantine(const QuarantineQuery& query = {});
  // Requests the purge of a held entry; the answer is the entry. With
  // `project_id` empty it goes through the platform route (platform admin),
  // otherwise through the project's (the entry must be an image of one of its
  // volumes).
  [[nodiscard]] Result<nlohmann::json> PurgeQuarantined(const std::string& quarantine_id,
                                                        const std::string& project_id = "");

  // Cluster backup store settings (platform admin). `changes` maps setting
  // names (s3_bucket, ..., s3_secret_access_key) to a string (set) or null
  // (clear); the answer shows secrets only as "set"/"not set". local_directory
  // and s3_bucket select the store: setting one clears the other, both
  // non-empty in one call is kInvalidArgument (validation_error).
  [[nodiscard]] Result<nlohmann::json> GetBackupSettings();
  [[nodiscard]] Result<nlohmann::json> PutBackupSettings(const nlohmann::json& changes);
  // Probes the saved settings with `overrides` applied as PUT would save them
  // (so a local_directory or s3_bucket there probes that store), without
  // saving anything: {ok, step, error, storage_url}. A failed probe is a
  // successful call.
  [[nodiscard]] Result<nlohmann::json> TestBackupSettings(
      const nlohmann::json& overrides = nlohmann::json::object());
  // Every store the cluster has written backups to: [{storage_url,
  // created_at, updated_at}] (platform admin).
  [[nodiscard]] Result<nlohmann::json> ListBackupStores();

  // Backups in the stores that the database lacks (platform admin). Rescan:
  // {stores, manifests, known, in_flight, imported, orphaned, unreadable}.
  [[nodiscard]] Result<nlohmann::json> RescanBackups();
  // Backups whose volume the database does not know, newest first.
  [[nodiscard]] Result<nlohmann::json> ListOrphanBackups(bool include_assigned = false);
  // Gives an orphan to a project (a deleted placeholder volume with the
  // backup's volume id, and the backup row): {backup, orphan, volume_id,
  // project_id, volume_created}. `backup_id` is any store id of 1-128
  // characters of [A-Za-z0-9._-] (the API explains why one that is not a
  // UUID cannot be assigned).
  [[nodiscard]] Result<nlohmann::json> AssignOrphanBackup(const std::string& backup_id,
                                                          const std::string& project_id);

  // GET /api/platform/health (platform admin): {ok, control_plane_backup:
  // {configured, ok, stale, checked_at, check_age_seconds, problems,
  // last_backup, last_backup_age_seconds, last_archived_age_seconds,
  // archiver, wal_level, checked_by, ...}, servers: {total, active, healthy,
  // unhealthy, ok}}.
  [[nodiscard]] Result<nlohmann::json> GetPlatformHealth();

  // all = false: servers of the caller's organisations; true: every server
  // (platform admin).
  [[nodiscard]] Result<nlohmann::json> ListServers(bool all);
  // POST /api/servers/{id}/drain or /activate (platform admin): the server
  // as it is afterwards. A draining server takes no new volumes, restores
  // or moves, and becomes drained once no operation runs on it.
  [[nodiscard]] Result<nlohmann::json> DrainServer(const std::string& server_id);
  [[nodiscard]] Result<nlohmann::json> ActivateServer(const std::string& server_id);
  [[nodiscard]] Result<nlohmann::json> ListAuditEvents(const AuditQuery& query);

  // `user_id` empty: the caller's own keys; else that user's (platform
  // admin).
  [[nodiscard]] Result<nlohmann::json> ListApiKeys(const std::string& user_id = "");
  // The answer carries the new key's `secret`, shown once. `user_id` as for
  // ListApiKeys (a new user's first key).
  [[nodiscard]] Result<nlohmann::json> CreateApiKey(const std::string& name,
                                                    const std::string& user_id = "");
  // The caller's own key, or anyone's (platform admin); effective at once.
  [[nodiscard]] Status RevokeApiKey(const std::string& key_id);

  // Users (platform admin) and organisations (control/account_service.h
  // says who may do what).
  [[nodiscard]] Result<nlohmann::json> CreateUser(const std::string& email, const std::string& name,
                                                  bool platform_admin);
  [[nodiscard]] Result<nlohmann::json> ListUsers();
  // `owner_user_id` empty: the caller.
  [[nodiscard]] Result<nlohmann::json> CreateOrganization(const std::string& name,
                                                          const std::string& owner_user_id);
  [[nodiscard]] Result<nlohmann::json> ListOrganizations();
  [[nodiscard]] Result<nlohmann::json> ListMembers(const std::string& organization_id);
  // Adds or changes a member, named by `user_id` or else `email`.
  [[nodiscard]] Result<nlohmann::json> SetMember(const std::string& organization_id,
                                                 const std::string& user_id,
                                                 const std::string& email, const std::string& role);
  [[nodiscard]] Status RemoveMember(const std::string& organization_id, const std::string& user_id);

 private:
  ApiClient(std::string base_url, ApiClientOptions options);

  [[nodiscard]] Result<nlohmann::json> Call(std::string_view method, std::string_view path,
                                            const Query& query, const nlohmann::json* body);
  // The text with every occurrence of the API key replaced (common/scrub.h).
  std::string Scrub(std::string_view text) const;

  std::string base_url_;
  ApiClientOptions options_;
  std::unique_ptr<http::HttpClient> http_;
};

// The error for a non-2xx answer (exposed for tests): see the header comment.
Error ErrorFromAnswer(long status, std::string_view body, std::string_view what);

}  // namespace kindling::client
