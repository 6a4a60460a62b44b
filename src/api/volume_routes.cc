// Project and volume routes.
#include "api/api_context.h"
#include "api/json_views.h"
#include "control/quarantine_service.h"
#include "db/volumes.h"

namespace kindling::api {
namespace {

// {"stop_workload": bool, "validate": bool} of a backup, restore or move.
ControlResult<control::WorkloadFlags> WorkloadFlagsOf(const Body& body) {
  API_ASSIGN_OR_RETURN(auto stop, body.Bool("stop_workload"));
  API_ASSIGN_OR_RETURN(auto validate, body.Bool("validate"));
  return control::WorkloadFlags{.stop_workload = stop.value_or(false),
                                .validate = validate.value_or(false)};
}

}  // namespace

void AddProjectRoutes(ApiContext& api) {
  api.Route("POST", "/api/projects", [&api](Call& call) -> ControlResult<Reply> {
    API_ASSIGN_OR_RETURN(auto body, Body::Parse(call.req, {"name", "organization_id"}));
    API_ASSIGN_OR_RETURN(auto name, body.Name("name"));
    if (!name) return Invalid("name is required");
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
    auto project = api.db.Transact([&](db::Tx& tx) -> Result<db::Project> {
      KINDLING_ASSIGN_OR_RETURN(auto p, db::CreateProject(tx, *org, *name));
      KINDLING_RETURN_IF_ERROR(
          control::Audit(tx, call.actor, "project.create", "project", p.id,
                         json{{"name", p.name}, {"organization_id", p.organization_id}}.dump()));
      return p;
    });
    if (!project) return std::unexpected(control::FromError(project.error()));
    return Reply{201, ProjectJson(*project)};
  });
  api.Route("GET", "/api/projects", [&api](Call& call) -> ControlResult<Reply> {
    db::ProjectFilter filter;
    if (!call.IsAdmin()) filter.member_user_id = call.principal.user.id;
    auto projects = api.db.Transact([&](db::Tx& tx) { return db::ListProjects(tx, filter); });
    if (!projects) return std::unexpected(control::FromError(projects.error()));
    json out = json::array();
    for (const auto& p : *projects) out.push_back(ProjectJson(p));
    return Reply{200, out};
  });
  api.Route("GET", R"(/api/projects/([^/]+))", [&api](Call& call) -> ControlResult<Reply> {
    API_ASSIGN_OR_RETURN(auto project, api.AccessProject(call, 1, false));
    return Reply{200, ProjectJson(project)};
  });
  api.Route("GET", R"(/api/projects/([^/]+)/backups)", [&api](Call& call) -> ControlResult<Reply> {
    API_ASSIGN_OR_RETURN(auto project, api.AccessProject(call, 1, false));
    API_ASSIGN_OR_RETURN(auto backups, api.volumes.ListProjectBackups(project.id));
    json out = json::array();
    for (const auto& b : backups) {
      json row = BackupJson(b.backup);
      row["volume_deleted"] = b.volume_deleted;
      out.push_back(std::move(row));
    }
    return Reply{200, out};
  });
}

void AddVolumeRoutes(ApiContext& api) {
  const std::string volume = R"(/api/projects/([^/]+)/volume)";
  api.Route("GET", volume, [&api](Call& call) -> ControlResult<Reply> {
    // From the read cache, else one database round trip: the project, its
    // volume, the volume's operation and last backup come in one statement.
    API_ASSIGN_OR_RETURN(std::string project_id, call.PathId(1, "project"));
    API_ASSIGN_OR_RETURN(auto found,
                         api.volume_views.Get(
                             project_id, [&] { return api.volumes.GetProjectVolume(project_id); },
                             api.WriteFloor(call)));
    API_RETURN_IF_ERROR(ApiContext::CheckProjectAccess(call, found.project, false));
    if (!found.volume) return Refuse(404, control::kCodeNotFound, "the project has no volume");
    return Reply{200, VolumeJson(*found.volume)};
  });
  api.Route("PUT", volume, [&api](Call& call) -> ControlResult<Reply> {
    API_ASSIGN_OR_RETURN(auto project, api.AccessProject(call, 1, true));
    API_ASSIGN_OR_RETURN(
        auto body,
        Body::Parse(call.req, {"mount_path", "size_gb", "backup_schedule", "backup_retention_count",
                               "pre_delete_backup_enabled", "backup_keep_hourly",
                               "backup_keep_daily", "backup_keep_weekly", "backup_keep_monthly",
                               "backup_keep_yearly", "backup_cron", "backup_window_start",
                               "backup_window_minutes", "backup_time_zone"}));
    db::VolumeSettingsUpdate update;
    API_ASSIGN_OR_RETURN(update.mount_path, body.GuestPath("mount_path"));
    API_ASSIGN_OR_RETURN(update.size_gb, body.Int("size_gb"));
    if (update.size_gb && *update.size_gb < 1) return Invalid("size_gb must be >= 1");
    API_ASSIGN_OR_RETURN(auto schedule, body.String("backup_schedule"));
    if (schedule) {
      update.backup_schedule = db::ParseEnum<db::BackupSchedule>(*schedule);
      if (!update.backup_schedule) {
        return Invalid("backup_schedule must be off, manual, daily, weekly or cron");
      }
    }
    // The schedule's details (control/backup_schedule.h; the service checks
    // them together): null clears the expression or the window.
    for (const auto& [name, field] :
         {std::pair{"backup_cron", &db::VolumeSettingsUpdate::backup_cron},
          std::pair{"backup_window_start", &db::VolumeSettingsUpdate::backup_window_start}}) {
      API_ASSIGN_OR_RETURN(auto value, body.String(name));
      if (value) (update.*field).emplace(std::move(*value));
      if (body.IsNull(name)) (update.*field).emplace(std::nullopt);
    }
    API_ASSIGN_OR_RETURN(auto window_minutes, body.Int("backup_window_minutes"));
    if (window_minutes) update.backup_window_minutes.emplace(*window_minutes);
    if (body.IsNull("backup_window_minutes")) update.backup_window_minutes.emplace(std::nullopt);
    API_ASSIGN_OR_RETURN(update.backup_time_zone, body.String("backup_time_zone"));
    API_ASSIGN_OR_RETURN(update.backup_retention_count, body.Int("backup_retention_count"));
    if (update.backup_retention_count && *update.backup_retention_count < 1) {
      return Invalid("backup_retention_count must be >= 1");
    }
    API_ASSIGN_OR_RETURN(update.pre_delete_backup_enabled, body.Bool("pre_delete_backup_enabled"));
    // The rest of the retention policy (control/retention.h); 0 turns a rule off.
    for (const auto& [name, field] :
         {std::pair{"backup_keep_hourly", &db::VolumeSettingsUpdate::backup_keep_hourly},
          std::pair{"backup_keep_daily", &db::VolumeSettingsUpdate::backup_keep_daily},
          std::pair{"backup_keep_weekly", &db::VolumeSettingsUpdate::backup_keep_weekly},
          std::pair{"backup_keep_monthly", &db::VolumeSettingsUpdate::backup_keep_monthly},
          std::pair{"backup_keep_yearly", &db::VolumeSettingsUpdate::backup_keep_yearly}}) {
      API_ASSIGN_OR_RETURN(update.*field, body.Int(name));
      if (update.*field && *(update.*field) > 100'000) {
        return Invalid(std::string(name) + " must be between 0 and 100000");
      }
    }
    API_ASSIGN_OR_RETURN(auto view, api.volumes.PutVolume(call.actor, project.id, update));
    return Reply{200, VolumeJson(view)};
  });
  api.Route("DELETE", volume, [&api](Call& call) -> ControlResult<Reply> {
    API_ASSIGN_OR_RETURN(auto project, api.AccessProject(call, 1, true));
    API_ASSIGN_OR_RETURN(auto outcome, api.volumes.DeleteVolume(call.actor, project.id));
    if (outcome.operation) return Reply{202, OperationJson(*outcome.operation)};
    return Reply{204, json()};
  });
  // The retention policy's dry run: what it keeps (and why) and drops now.
  api.Route("GET", volume + "/retention", [&api](Call& call) -> ControlResult<Reply> {
    API_ASSIGN_OR_RETURN(auto project, api.AccessProject(call, 1, false));
    API_ASSIGN_OR_RETURN(auto preview, api.volumes.PreviewRetention(project.id));
    return Reply{200, RetentionJson(preview)};
  });
  api.Route("GET", volume + "/backups", [&api](Call& call) -> ControlResult<Reply> {
    API_ASSIGN_OR_RETURN(auto project, api.AccessProject(call, 1, false));
    API_ASSIGN_OR_RETURN(auto backups, api.volumes.ListBackups(project.id));
    json out = json::array();
    for (const auto& b : backups) out.push_back(BackupJson(b));
    return Reply{200, out};
  });
  api.Route("POST", volume + "/backups", [&api](Call& call) -> ControlResult<Reply> {
    API_ASSIGN_OR_RETURN(auto project, api.AccessProject(call, 1, true));
    API_ASSIGN_OR_RETURN(auto body, Body::Parse(call.req, {"stop_workload", "validate"}));
    API_ASSIGN_OR_RETURN(auto flags, WorkloadFlagsOf(body));
    API_ASSIGN_OR_RETURN(auto op, api.volumes.QueueBackup(call.actor, project.id, flags));
    return Reply{202, OperationJson(op)};
  });
  // Where a restore (or move) of the volume can go: every worker, eligible
  // or with why not (org admins, like restore itself).
  api.Route("GET", volume + "/restore-targets", [&api](Call& call) -> ControlResult<Reply> {
    API_ASSIGN_OR_RETURN(auto project, api.AccessProject(call, 1, true));
    API_ASSIGN_OR_RETURN(auto targets, api.volumes.RestoreTargets(project.id));
    json out = json::array();
    for (const auto& t : targets) out.push_back(WorkerChoiceJson(t));
    return Reply{200, out};
  });
  api.Route("POST", volume + "/restore", [&api](Call& call) -> ControlResult<Reply> {
    API_ASSIGN_OR_RETURN(auto project, api.AccessProject(call, 1, true));
    API_ASSIGN_OR_RETURN(auto body, Body::Parse(call.req, {"backup_id", "target_server_id",
                                                           "stop_workload", "validate"}));
    API_ASSIGN_OR_RETURN(auto backup_id, body.Uuid("backup_id"));
    API_ASSIGN_OR_RETURN(auto target, body.Uuid("target_server_id"));
    API_ASSIGN_OR_RETURN(auto flags, WorkloadFlagsOf(body));
    API_ASSIGN_OR_RETURN(
        auto op, api.volumes.QueueRestore(call.actor, project.id, backup_id, target, flags));
    return Reply{202, OperationJson(op)};
  });
  api.Route("POST", volume + "/move", [&api](Call& call) -> ControlResult<Reply> {
    API_ASSIGN_OR_RETURN(auto project, api.AccessProject(call, 1, true));
    API_ASSIGN_OR_RETURN(auto body,
                         Body::Parse(call.req, {"target_server_id", "stop_workload", "validate"}));
    API_ASSIGN_OR_RETURN(auto target, body.Uuid("target_server_id"));
    API_ASSIGN_OR_RETURN(auto flags, WorkloadFlagsOf(body));
    API_ASSIGN_OR_RETURN(auto op, api.volumes.QueueMove(call.actor, project.id, target, flags));
    return Reply{202, OperationJson(op)};
  });
  api.Route("POST", volume + "/repair", [&api](Call& call) -> ControlResult<Reply> {
    API_ASSIGN_OR_RETURN(auto project, api.AccessProject(call, 1, true));
    API_RETURN_IF_ERROR(Body::Parse(call.req, {}));
    API_ASSIGN_OR_RETURN(auto op, api.volumes.QueueRepair(call.actor, project.id));
    return Reply{202, OperationJson(op)};
  });
  api.Route(
      "POST", volume + R"(/backups/([^/]+)/verify)", [&api](Call& call) -> ControlResult<Reply> {
        API_ASSIGN_OR_RETURN(auto project, api.AccessProject(call, 1, true));
        API_ASSIGN_OR_RETURN(std::string backup_id, call.PathId(2, "backup"));
        API_RETURN_IF_ERROR(Body::Parse(call.req, {}));
        API_ASSIGN_OR_RETURN(auto op, api.volumes.QueueVerify(call.actor, project.id, backup_id));
        return Reply{202, OperationJson(op)};
      });
  // Pinned backups are kept whatever the retention policy; DELETE unpins.
  for (const bool pin : {true, false}) {
    api.Route(pin ? "POST" : "DELETE", volume + R"(/backups/([^/]+)/pin)",
              [&api, pin](Call& call) -> ControlResult<Reply> {
                API_ASSIGN_OR_RETURN(auto project, api.AccessProject(call, 1, true));
                API_ASSIGN_OR_RETURN(std::string backup_id, call.PathId(2, "backup"));
                API_RETURN_IF_ERROR(Body::Parse(call.req, {}));
                API_ASSIGN_OR_RETURN(auto backup, api.volumes.SetBackupPinned(
                                                      call.actor, project.id, backup_id, pin));
                return Reply{200, BackupJson(backup)};
              });
  }
  api.Route("POST", volume + "/adopt-image", [&api](Call& call) -> ControlResult<Reply> {
    API_ASSIGN_OR_RETURN(auto project, api.AccessProject(call, 1, true));
    API_ASSIGN_OR_RETURN(auto body, Body::Parse(call.req, {"quarantine_id"}));
    API_ASSIGN_OR_RETURN(auto quarantine_id, body.Uuid("quarantine_id"));
    if (!quarantine_id) return Invalid("quarantine_id is required");
    API_ASSIGN_OR_RETURN(
        auto op, api.volumes.QueueAdopt(call.actor, project.id, *quarantine_id, call.IsAdmin()));
    return Reply{202, OperationJson(op)};
  });
  api.Route("GET", volume + "/quarantine", [&api](Call& call) -> ControlResult<Reply> {
    API_ASSIGN_OR_RETURN(auto project, api.AccessProject(call, 1, false));
    API_ASSIGN_OR_RETURN(auto entries, control::ListQuarantinedImages(
                                           api.db, db::QuarantineFilter{.project_id = project.id}));
    json out = json::array();
    for (const auto& e : entries) out.push_back(QuarantineJson(e));
    return Reply{200, out};
  });
  api.Route("DELETE", volume + R"(/quarantine/([^/]+))",
            [&api](Call& call) -> ControlResult<Reply> {
              API_ASSIGN_OR_RETURN(auto project, api.AccessProject(call, 1, true));
              API_ASSIGN_OR_RETURN(std::string id, call.PathId(2, "quarantine"));
              API_ASSIGN_OR_RETURN(auto entry,
                                   control::RequestImagePurge(api.db, call.actor, id, project.id));
              return Reply{200, QuarantineJson(entry)};
            });
}

}  // namespace kindling::api
