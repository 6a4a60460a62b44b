#include "api/json_views.h"

#include <algorithm>
#include <chrono>
#include <cstdint>

#include "common/ids.h"

namespace kindling::api {

using nlohmann::json;

namespace {

json StringOrNull(const std::optional<std::string>& value) {
  return value ? json(*value) : json(nullptr);
}

// A JSON object stored as text by db/; malformed text (never expected)
// shows as an empty object rather than failing the whole answer.
json ParseObject(const std::string& text) {
  json value = json::parse(text, nullptr, /*allow_exceptions=*/false);
  return value.is_object() ? value : json::object();
}

}  // namespace

std::string FormatTime(db::Timestamp t) {
  // "2024-05-01 12:34:56.123456+00" -> "2024-05-01T12:34:56.123456Z".
  std::string text = db::FormatTimestamp(t);
  if (text.size() > 10 && text[10] == ' ') text[10] = 'T';
  if (text.ends_with("+00")) text.replace(text.size() - 3, 3, "Z");
  return text;
}

json TimeOrNull(const std::optional<db::Timestamp>& t) {
  return t ? json(FormatTime(*t)) : json(nullptr);
}

std::optional<db::Timestamp> ParseTime(std::string text) {
  if (text.size() > 10 && text[10] == 'T') text[10] = ' ';
  if (!text.empty() && (text.back() == 'Z' || text.back() == 'z')) {
    text.pop_back();
    text += "+00";
  }
  return db::ParseTimestamp(text);
}

json OperationJson(const db::Operation& op) {
  json progress = ParseObject(op.progress_json);
  return json{{"id", op.id},
              {"project_volume_id", op.project_volume_id},
              {"kind", db::Name(op.kind)},
              {"status", db::Name(op.status)},
              {"server_id", StringOrNull(op.server_id)},
              {"target_server_id", StringOrNull(op.target_server_id)},
              {"backup_id", StringOrNull(op.backup_id)},
              {"error", StringOrNull(op.error)},
              {"attempts", op.attempts},
              {"progress", json{{"phase", progress.value("phase", json(nullptr))},
                                {"bytes_done", progress.value("bytes_done", json(nullptr))},
                                {"bytes_total", progress.value("bytes_total", json(nullptr))}}},
              {"result", ParseObject(op.result_metadata_json)},
              {"started_at", TimeOrNull(op.started_at)},
              {"completed_at", TimeOrNull(op.completed_at)},
              {"failed_at", TimeOrNull(op.failed_at)},
              {"created_at", FormatTime(op.created_at)},
              {"updated_at", FormatTime(op.updated_at)}};
}

json VolumeJson(const control::VolumeView& view) {
  const db::Volume& v = view.volume;
  // Whole seconds since the newest succeeded backup completed (an alert on
  // a schedule that silently stopped reads this, or /metrics).
  json last_backup_age = nullptr;
  if (view.last_successful_backup_at) {
    last_backup_age = std::max<std::int64_t>(
        0, std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now() -
                                                            *view.last_successful_backup_at)
               .count());
  }
  return json{{"id", v.id},
              {"project_id", v.project_id},
              {"server_id", StringOrNull(v.server_id)},
              {"attached_vm_id", StringOrNull(v.attached_vm_id)},
              {"mount_path", v.mount_path},
              {"size_gb", v.size_gb},
              {"filesystem", v.filesystem},
              {"status", db::Name(v.status)},
              {"health", db::Name(v.health)},
              {"backup_policy",
               json{{"schedule", db::Name(v.backup_schedule)},
                    {"retention_count", v.backup_retention_count},
                    {"pre_delete_backup_enabled", v.pre_delete_backup_enabled},
                    {"keep_hourly", v.backup_keep.hourly},
                    {"keep_daily", v.backup_keep.daily},
                    {"keep_weekly", v.backup_keep.weekly},
                    {"keep_monthly", v.backup_keep.monthly},
                    {"keep_yearly", v.backup_keep.yearly},
                    {"cron", StringOrNull(v.backup_window.cron)},
                    {"window_start", StringOrNull(v.backup_window.start)},
                    {"window_minutes",
                     v.backup_window.minutes ? json(*v.backup_window.minutes) : json(nullptr)},
                    {"time_zone", v.backup_window.time_zone}}},
              {"next_backup_at", TimeOrNull(v.backup_next_at)},
              {"current_operation",
               view.current_operation ? OperationJson(*view.current_operation) : json(nullptr)},
              {"last_successful_backup_at", TimeOrNull(view.last_successful_backup_at)},
              {"last_backup_age_seconds", last_backup_age},
              {"last_backup_verify_state", view.last_backup_verify_state
                                               ? json(db::Name(*view.last_backup_verify_state))
                                               : json(nullptr)},
              {"last_backup_verified_at", TimeOrNull(view.last_backup_verified_at)},
              {"last_error", StringOrNull(v.last_error)},
              {"created_at", FormatTime(v.created_at)},
              {"updated_at", FormatTime(v.updated_at)}};
}

json RetentionJson(const control::RetentionPreview& preview) {
  const engine::RetentionPolicy policy = control::RetentionPolicyOf(preview.volume);
  json backups = json::array();
  int kept = 0;
  for (const control::RetentionPlanEntry& e : preview.entries) {
    kept += e.decision.keep ? 1 : 0;
    backups.push_back(json{{"id", e.backup.id},
                           {"kind", db::Name(e.backup.kind)},
                           {"completed_at", TimeOrNull(e.backup.completed_at)},
                           {"keep", e.decision.keep},
                           {"reasons", e.decision.reasons}});
  }
  return json{{"volume_id", preview.volume.id},
              {"policy", json{{"keep_last", policy.keep_last},
                              {"keep_hourly", policy.keep_hourly},
                              {"keep_daily", policy.keep_daily},
                              {"keep_weekly", policy.keep_weekly},
                              {"keep_monthly", policy.keep_monthly},
                              {"keep_yearly", policy.keep_yearly}}},
              {"kept", kept},
              {"dropped", static_cast<int>(preview.entries.size()) - kept},
              {"backups", backups}};
}

json BackupJson(const db::Backup& b) {
  return json{{"id", b.id},
              {"project_volume_id", b.project_volume_id},
              {"kind", db::Name(b.kind)},
              {"status", db::Name(b.status)},
              {"storage_url", StringOrNull(b.storage_url)},
              {"size_bytes", b.size_bytes ? json(*b.size_bytes) : json(nullptr)},
              {"metadata", ParseObject(b.metadata_json)},
              {"error", StringOrNull(b.error)},
              {"damage", b.damage_json ? ParseObject(*b.damage_json) : json(nullptr)},
              {"started_at", TimeOrNull(b.started_at)},
              {"completed_at", TimeOrNull(b.completed_at)},
              {"failed_at", TimeOrNull(b.failed_at)},
              {"created_at", FormatTime(b.created_at)},
              {"updated_at", FormatTime(b.updated_at)},
              {"pinned", b.pinned},
              {"verified_at", TimeOrNull(b.verified_at)},
              {"verify_state", b.verify_state ? json(db::Name(*b.verify_state)) : json(nullptr)}};
}

json OrphanJson(const db::OrphanBackup& o) {
  return json{{"backup_id", o.backup_id},
              {"volume_id", o.volume_id},
              {"storage_url", o.storage_url},
              {"storage_key", o.storage_key},
              {"size_bytes", o.size_bytes},
              {"image_sha256", o.image_sha256},
              {"chunk_size", o.chunk_size},
              {"backup_created_at", FormatTime(o.backup_created_at)},
              {"found_at", FormatTime(o.found_at)},
              {"last_seen_at", FormatTime(o.last_seen_at)},
              {"assigned_project_id", StringOrNull(o.assigned_project_id)},
              {"assigned_at", TimeOrNull(o.assigned_at)},
              {"assignable", IsUuid(o.backup_id) && IsUuid(o.volume_id)}};
}

json RescanJson(const control::RescanReport& r) {
  json imported = json::array();
  for (const auto& b : r.imported) {
    imported.push_back(json{{"backup_id", b.backup_id},
                            {"volume_id", b.volume_id},
                            {"project_id", b.project_id},
                            {"volume_deleted", b.volume_deleted},
                            {"storage_url", b.storage_url},
                            {"storage_key", b.storage_key},
                            {"size_bytes", b.size_bytes},
                            {"image_sha256", b.image_sha256},
                            {"created_at", FormatTime(b.created_at)},
                            {"recovered", b.recovered}});
  }
  json orphaned = json::array();
  for (const auto& o : r.orphaned) {
    json row = OrphanJson(o.orphan);
    row["first_found"] = o.first_found;
    orphaned.push_back(std::move(row));
  }
  json unreadable = json::array();
  for (const auto& p : r.unreadable) {
    unreadable.push_back(json{{"storage_url", p.storage_url},
                              {"key", p.key.empty() ? json(nullptr) : json(p.key)},
                              {"error", p.error}});
  }
  return json{{"stores", r.stores},       {"manifests", r.manifests}, {"known", r.known},
              {"in_flight", r.in_flight}, {"imported", imported},     {"orphaned", orphaned},
              {"unreadable", unreadable}};
}

json QuarantineJson(const db::QuarantineEntry& e) {
  return json{
      {"id", e.id},
      {"server_id", e.server_id},
      {"project_volume_id", e.project_volume_id},
      {"reason", db::Name(e.reason)},
      {"detail", e.detail},
      {"path", e.path},
      {"size_bytes", e.size_bytes},
      {"allocated_bytes", e.allocated_bytes},
      {"image_mtime", TimeOrNull(e.image_mtime)},
      {"image_sha256", StringOrNull(e.image_sha256)},
      {"digest_chunk_size", e.digest_chunk_size ? json(*e.digest_chunk_size) : json(nullptr)},
      {"status", db::Name(e.status)},
      {"quarantined_at", FormatTime(e.quarantined_at)},
      {"purge_after", TimeOrNull(e.purge_after)},
      {"resolved_at", TimeOrNull(e.resolved_at)},
      {"updated_at", FormatTime(e.updated_at)}};
}

json ServerJson(const db::Server& s) {
  const std::string_view heartbeat_health = db::HeartbeatHealth(s);
  json components = json::array();
  std::optional<std::string> runtime;
  bool degraded = false;
  for (const auto& c : s.components) {
    if (c.component == "worker" && c.runtime) runtime = c.runtime;
    if (c.status == db::ComponentHealth::kDegraded) degraded = true;
    components.push_back(json{{"component", c.component},
                              {"status", db::Name(c.status)},
                              {"observed_at", FormatTime(c.observed_at)},
                              {"last_success_at", TimeOrNull(c.last_success_at)},
                              {"last_error_at", TimeOrNull(c.last_error_at)},
                              {"last_error_message", StringOrNull(c.last_error_message)},
                              {"metadata", ParseObject(c.metadata_json)}});
  }
  // One word for dashboards: the heartbeat first (a silent host is not
  // healthy whatever its last component report said), then components.
  std::string health = "healthy";
  if (s.status == db::ServerStatus::kDead || heartbeat_health == "stale") {
    health = "unhealthy";
  } else if (heartbeat_health == "unknown") {
    health = "unknown";
  } else if (degraded) {
    health = "degraded";
  }
  return json{{"id", s.id},
              {"hostname", s.hostname},
              {"internal_ip", s.internal_ip},
              {"status", db::Name(s.status)},
              {"last_heartbeat_at", TimeOrNull(s.last_heartbeat_at)},
              {"created_at", FormatTime(s.created_at)},
              {"updated_at", FormatTime(s.updated_at)},
              {"health", health},
              {"heartbeat_health", heartbeat_health},
              {"heartbeat_age_seconds",
               s.heartbeat_age_seconds ? json(*s.heartbeat_age_seconds) : json(nullptr)},
              {"runtime", StringOrNull(runtime)},
              {"enabled_components", s.enabled_components},
              {"components", components}};
}

json WorkerChoiceJson(const control::WorkerChoice& c) {
  return json{{"server_id", c.server_id},
              {"hostname", c.hostname},
              {"runtime", StringOrNull(c.runtime)},
              {"eligible", c.eligible},
              {"reason", c.eligible ? json(nullptr) : json(c.reason)},
              {"load", c.eligible ? json(c.load) : json(nullptr)},
              {"current", c.current}};
}

json ProjectJson(const db::Project& p) {
  return json{{"id", p.id},
              {"organization_id", p.organization_id},
              {"name", p.name},
              {"created_at", FormatTime(p.created_at)},
              {"updated_at", FormatTime(p.updated_at)}};
}

json ApiKeyJson(const db::ApiKey& k) {
  return json{{"id", k.id},
              {"user_id", k.user_id},
              {"name", k.name},
              {"key_prefix", k.key_prefix},
              {"created_at", FormatTime(k.created_at)},
              {"last_used_at", TimeOrNull(k.last_used_at)},
              {"revoked_at", TimeOrNull(k.revoked_at)}};
}

json UserJson(const db::User& u) {
  return json{{"id", u.id},
              {"email", u.email},
              {"name", u.name},
              {"is_platform_admin", u.is_platform_admin},
              {"created_at", FormatTime(u.created_at)},
              {"updated_at", FormatTime(u.updated_at)}};
}

json OrganizationJson(const db::Organization& o) {
  return json{{"id", o.id},
              {"name", o.name},
              {"created_at", FormatTime(o.created_at)},
              {"updated_at", FormatTime(o.updated_at)}};
}

json MemberJson(const db::Member& m) {
  return json{{"organization_id", m.membership.organization_id},
              {"user_id", m.membership.user_id},
              {"email", m.email},
              {"name", m.name},
              {"role", db::Name(m.membership.role)},
              {"created_at", FormatTime(m.membership.created_at)}};
}

nlohmann::json DeploymentJson(const control::DeploymentView& view) {
  const db::Deployment& d = view.deployment;
  auto optional = [](const std::optional<std::string>& value) {
    return value ? nlohmann::json(*value) : nlohmann::json(nullptr);
  };
  nlohmann::json instance = nullptr;
  if (view.instance) {
    const db::Instance& i = *view.instance;
    instance = {{"id", i.id},
                {"server_id", i.server_id},
                {"vm_id", optional(i.vm_id)},
                {"status", std::string(db::Name(i.status))},
                {"address", optional(i.address)},
                {"error", optional(i.error)},
                {"started_at", TimeOrNull(i.started_at)},
                {"ready_at", TimeOrNull(i.ready_at)},
                {"stopped_at", TimeOrNull(i.stopped_at)},
                {"created_at", FormatTime(i.created_at)}};
  }
  return {{"id", d.id},
          {"project_id", d.project_id},
          {"service", d.service},
          {"image", d.image},
          {"status", std::string(db::Name(d.status))},
          {"desired_state", std::string(db::Name(d.desired_state))},
          {"hostname", view.hostname},
          {"memory_mib", d.memory_mib},
          {"vcpus", d.vcpus},
          {"boot_timeout_seconds", d.boot_timeout_seconds},
          {"stop_timeout_seconds", d.stop_timeout_seconds},
          {"error", optional(d.error)},
          {"superseded_at", TimeOrNull(d.superseded_at)},
          {"instance", instance},
          {"created_at", FormatTime(d.created_at)},
          {"updated_at", FormatTime(d.updated_at)}};
}

}  // namespace kindling::api
