#include "control/volume_service.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <utility>

#include "common/ids.h"
#include "control/admin_service.h"
#include "control/backup_schedule.h"
#include "control/backup_store.h"
#include "db/audit.h"
#include "db/projects.h"
#include "db/quarantine.h"

namespace kindling::control {

bool TakesLiveBackups(const db::Server& server) {
  if (server.status != db::ServerStatus::kActive) return false;
  for (const db::ComponentStatus& c : server.components) {
    if (c.component != "worker") continue;
    const auto metadata = nlohmann::json::parse(c.metadata_json, nullptr, false);
    return metadata.is_object() && metadata.value("live_backups", false) == true;
  }
  return false;
}

namespace {

using nlohmann::json;

constexpr char kResourceVolume[] = "project_volume";

json OptionalString(const std::optional<std::string>& value) {
  return value ? json(*value) : json(nullptr);
}

std::string_view KindAction(db::OperationKind kind) {
  switch (kind) {
    case db::OperationKind::kBackup:
      return "volume.backup.queue";
    case db::OperationKind::kRestore:
      return "volume.restore.queue";
    case db::OperationKind::kMove:
      return "volume.move.queue";
    case db::OperationKind::kRepair:
      return "volume.repair.queue";
    case db::OperationKind::kAdopt:
      return "volume.adopt.queue";
    case db::OperationKind::kVerify:
      return "volume.verify.queue";
    case db::OperationKind::kGrow:
      return "volume.grow.queue";
  }
  return "volume.operation.queue";
}

// The project's live volume, locked so that concurrent requests on it
// serialize and the checks below stay true until commit.
Result<std::optional<db::Volume>> LockedVolume(db::Tx& tx, const std::string& project_id) {
  return db::FindProjectVolume(tx, project_id, /*for_update=*/true);
}

// volume_attached / volume_busy, shared by every queueing action and delete.
// `cold`: the action touches the image, so a workload must not hold it.
std::optional<ControlError> CheckIdle(db::Tx& tx, const db::Volume& volume, Status* failure,
                                      bool cold = true) {
  if (cold && (volume.attached_vm_id || volume.status == db::VolumeStatus::kAttached)) {
    return ControlError{409, kCodeVolumeAttached,
                        "the volume is attached to a running workload; stop it first "
                        "(volume operations need a cold volume)"};
  }
  if (db::IsTransitional(volume.status)) {
    return ControlError{409, kCodeVolumeBusy,
                        "the volume is busy (" + std::string(db::Name(volume.status)) + ")"};
  }
  auto active = db::FindActiveOperation(tx, volume.id);
  if (!active) {
    *failure = std::unexpected(active.error());
    return std::nullopt;
  }
  if (*active) {
    return ControlError{409, kCodeVolumeBusy,
                        "the volume has a " + std::string(db::Name((*active)->status)) + " " +
                            std::string(db::Name((*active)->kind)) + " operation " + (*active)->id};
  }
  return std::nullopt;
}

Result<bool> LiveBackupsOn(db::Tx& tx, const std::string& server_id) {
  auto server = db::GetServer(tx, server_id);
  if (!server && server.error().is_not_found()) return false;
  if (!server) return std::unexpected(server.error());
  return TakesLiveBackups(*server);
}

// "backup B is damaged: chunk C (missing) at image offsets 0, 4194304; ...".
std::string DamagedMessage(const db::Backup& backup) {
  std::string text = "backup " + backup.id + " is damaged:";
  const json damage =
      backup.damage_json ? json::parse(*backup.damage_json, nullptr, false) : json();
  std::size_t listed = 0;
  if (damage.is_object() && damage.contains("chunks") && damage["chunks"].is_array()) {
    for (const json& chunk : damage["chunks"]) {
      if (++listed > 3) {
        text += " (and " + std::to_string(damage["chunks"].size() - 3) + " more chunks)";
        break;
      }
      text += " chunk " + chunk.value("chunk_id", std::string("?")) + " (" +
              chunk.value("problem", std::string("damaged")) + ") at image offsets";
      std::size_t shown = 0;
      for (const json& offset : chunk.value("offsets", json::array())) {
        if (++shown > 4) {
          text += " ...";
          break;
        }
        text += " " + offset.dump();
      }
      text += ";";
    }
  }
  return text +
         " run a backup of the volume to store those chunks again (it heals every backup that "
         "uses them), or restore another backup";
}

// The backup, checked to belong to a volume of `volume`'s project (backups
// outlive their volume row). Refuses with 404/400 otherwise.
Result<db::Backup> ProjectBackup(db::Tx& tx, const db::Volume& volume, const std::string& backup_id,
                                 std::optional<ControlError>& refusal) {
  auto backup = db::GetBackup(tx, backup_id);
  if (!backup) {
    if (!backup.error().is_not_found()) return std::unexpected(backup.error());
    refusal = ControlError{404, kCodeNotFound, "backup " + backup_id + " does not exist"};
    return Refused();
  }
  if (backup->project_volume_id != volume.id) {
    KINDLING_ASSIGN_OR_RETURN(db::Volume owner, db::GetVolume(tx, backup->project_volume_id));
    if (owner.project_id != volume.project_id) {
      refusal = ControlError{400, kCodeValidation,
                             "backup " + backup_id + " belongs to another project's volume"};
      return Refused();
    }
  }
  return backup;
}

}  // namespace

std::string UnavailableVolumeMessage(const db::Volume& volume) {
  std::string message = "the volume is unavailable (health " + std::string(db::Name(volume.health));
  if (volume.last_error) message += ": " + *volume.last_error;
  return message + "); repair or restore it first, or wait for its worker to come back";
}

Status Audit(db::Tx& tx, const Actor& actor, const std::string& action,
             const std::string& resource_type, const std::optional<std::string>& resource_id,
             const std::string& details_json) {
  auto id = db::InsertAuditEvent(tx, db::AuditEventInput{.user_id = actor.user_id,
                                                         .action = action,
                                                         .resource_type = resource_type,
                                                         .resource_id = resource_id,
                                                         .details_json = details_json,
                                                         .request_ip = actor.request_ip,
                                                         .user_agent = actor.user_agent});
  if (!id) return std::unexpected(id.error());
  return OkStatus();
}

VolumeService::VolumeService(db::Database& db, const crypto::Key& master_key,
                             VolumeServiceOptions options)
    : db_(db), master_key_(master_key), options_(std::move(options)) {}

Result<std::vector<db::EligibleWorker>> VolumeService::EligibleWorkers(db::Tx& tx) const {
  KINDLING_ASSIGN_OR_RETURN(
      auto workers, db::ListEligibleWorkers(
                        tx, db::WorkerEligibility{.max_heartbeat_age = options_.max_heartbeat_age,
                                                  .component = "worker",
                                                  .runtimes = options_.runtimes}));
  // A worker that reports no runtime cannot run volumes (reference: "with a
  // VM runtime").
  std::erase_if(workers, [](const db::EligibleWorker& w) {
    return !w.runtime.has_value() || w.runtime->empty();
  });
  std::stable_sort(workers.begin(), workers.end(),
                   [](const db::EligibleWorker& a, const db::EligibleWorker& b) {
                     if (a.load != b.load) return a.load < b.load;
                     return a.hostname < b.hostname;
                   });
  return workers;
}

ControlResult<ProjectVolumeView> VolumeService::GetProjectVolume(const std::string& project_id) {
  auto found = db_.Transact([&](db::Tx& tx) { return db::GetProjectVolume(tx, project_id); },
                            db::kAutocommitRead);
  if (!found) {
    if (found.error().is_not_found()) {
      return std::unexpected(
          ControlError{404, kCodeNotFound, "project " + project_id + " does not exist"});
    }
    return std::unexpected(FromError(found.error()));
  }
  ProjectVolumeView view{.project = std::move(found->project)};
  if (found->volume) {
    view.volume = VolumeView{.volume = std::move(*found->volume),
                             .current_operation = std::move(found->active_operation),
                             .last_successful_backup_at = found->last_successful_backup_at,
                             .last_backup_verify_state = found->last_backup_verify_state,
                             .last_backup_verified_at = found->last_backup_verified_at};
  }
  return view;
}

ControlResult<VolumeView> VolumeService::PutVolume(const Actor& actor,
                                                   const std::string& project_id,
                                                   const db::VolumeSettingsUpdate& settings,
                                                   bool* created) {
  bool was_created = false;
  auto result = TransactChecked<VolumeView>(
      db_, [&](db::Tx& tx, std::optional<ControlError>& refusal) -> Result<VolumeView> {
        was_created = false;
        KINDLING_ASSIGN_OR_RETURN(auto existing, LockedVolume(tx, project_id));
        // The schedule as it will be, checked before anything is written.
        db::VolumeSettingsUpdate update = settings;
        BackupScheduleSpec spec = existing ? ScheduleSpecOf(*existing) : BackupScheduleSpec{};
        if (update.backup_cron && *update.backup_cron && !update.backup_schedule) {
          update.backup_schedule = db::BackupSchedule::kCron;
        }
        if (update.backup_schedule && *update.backup_schedule != db::BackupSchedule::kCron &&
            !update.backup_cron) {
          update.backup_cron.emplace(std::nullopt);
        }
        if (update.backup_schedule) spec.kind = *update.backup_schedule;
        if (update.backup_cron) spec.cron = *update.backup_cron;
        if (update.backup_window_start) spec.window_start = *update.backup_window_start;
        if (update.backup_window_minutes) spec.window_minutes = *update.backup_window_minutes;
        if (update.backup_time_zone) spec.time_zone = *update.backup_time_zone;
        auto plan = BackupSchedulePlan::Compile(spec);
        if (!plan) {
          refusal = ControlError{400, kCodeValidation, plan.error().message()};
          return Refused();
        }
        if (update.size_gb || !existing) {
          const int size_gb = update.size_gb.value_or(db::NewVolume{}.size_gb);
          KINDLING_ASSIGN_OR_RETURN(const int max_gb, MaxVolumeSizeGb(tx));
          if (size_gb > max_gb) {
            refusal =
                ControlError{400, kCodeValidation,
                             "size_gb " + std::to_string(size_gb) +
                                 " is above the cluster's maximum volume size, " +
                                 std::to_string(max_gb) + " GiB (max_volume_size_gb of /api/meta)"};
            return Refused();
          }
        }
        const bool schedule_given = update.backup_schedule || update.backup_cron ||
                                    update.backup_window_start || update.backup_window_minutes ||
                                    update.backup_time_zone;
        db::Volume volume;
        if (!existing) {
          KINDLING_ASSIGN_OR_RETURN(auto workers, EligibleWorkers(tx));
          if (workers.empty()) {
            refusal = ControlError{409, kCodeVolumeUnavailable,
                                   "no eligible worker to host the volume (active, recent "
                                   "heartbeat, healthy worker component with a runtime)"};
            return Refused();
          }
          db::NewVolume request{.project_id = project_id, .server_id = workers.front().server_id};
          if (settings.mount_path) request.mount_path = *settings.mount_path;
          if (settings.size_gb) request.size_gb = *settings.size_gb;
          if (settings.backup_schedule) request.backup_schedule = *settings.backup_schedule;
          if (settings.backup_retention_count) {
            request.backup_retention_count = *settings.backup_retention_count;
          }
          if (settings.pre_delete_backup_enabled) {
            request.pre_delete_backup_enabled = *settings.pre_delete_backup_enabled;
          }
          request.backup_keep = db::BackupKeep{.hourly = settings.backup_keep_hourly.value_or(0),
                                               .daily = settings.backup_keep_daily.value_or(0),
                                               .weekly = settings.backup_keep_weekly.value_or(0),
                                               .monthly = settings.backup_keep_monthly.value_or(0),
                                               .yearly = settings.backup_keep_yearly.value_or(0)};
          // The pinned worker creates the image when it sees a volume without
          // one; until then the volume is detached with unknown health.
          request.status = db::VolumeStatus::kDetached;
          request.backup_schedule = spec.kind;
          request.backup_window = db::BackupWindow{.cron = spec.cron,
                                                   .start = spec.window_start,
                                                   .minutes = spec.window_minutes,
                                                   .time_zone = spec.time_zone};
          KINDLING_ASSIGN_OR_RETURN(volume, db::CreateVolume(tx, request));
          // The slot's spread comes from the id, known only now.
          volume.backup_next_at = NextBackupAt(*plan, volume.id, options_.now());
          if (volume.backup_next_at) {
            KINDLING_RETURN_IF_ERROR(
                db::MoveBackupNextAt(tx, volume.id, std::nullopt, volume.backup_next_at));
          }
          KINDLING_RETURN_IF_ERROR(Audit(tx, actor, "volume.create", kResourceVolume, volume.id,
                                         json{{"project_id", project_id},
                                              {"server_id", OptionalString(volume.server_id)},
                                              {"size_gb", volume.size_gb},
                                              {"mount_path", volume.mount_path}}
                                             .dump()));
          was_created = true;
        } else {
          const db::Volume& before = *existing;
          if (schedule_given)
            update.backup_next_at = NextBackupAt(*plan, before.id, options_.now());
          // A larger size of a volume whose image exists is a grow operation
          // on its worker; the row says the new size once the image has it.
          std::optional<int> grow_to;
          if (update.size_gb && *update.size_gb > before.size_gb &&
              before.health != db::VolumeHealth::kUnknown) {
            Status failure;
            if (auto idle = CheckIdle(tx, before, &failure)) {
              refusal = std::move(*idle);
              return Refused();
            }
            KINDLING_RETURN_IF_ERROR(failure);
            if (!before.server_id || before.status == db::VolumeStatus::kUnavailable) {
              refusal = ControlError{409, kCodeVolumeUnavailable,
                                     "the volume's image is not available to grow"};
              return Refused();
            }
            grow_to = *update.size_gb;
            update.size_gb.reset();
          }
          KINDLING_ASSIGN_OR_RETURN(volume, db::UpdateVolumeSettings(tx, before.id, update));
          if (grow_to) {
            KINDLING_ASSIGN_OR_RETURN(
                auto queued, db::QueueOperation(tx, db::QueueOperationRequest{
                                                        .volume_id = before.id,
                                                        .kind = db::OperationKind::kGrow,
                                                        .server_id = *before.server_id,
                                                        .extra_request_metadata_json =
                                                            json{{"size_gb", *grow_to}}.dump()}));
            KINDLING_RETURN_IF_ERROR(Audit(tx, actor,
                                           std::string(KindAction(db::OperationKind::kGrow)),
                                           kResourceVolume, before.id,
                                           json{{"project_id", project_id},
                                                {"operation_id", queued.operation.id},
                                                {"server_id", *before.server_id},
                                                {"size_gb", *grow_to},
                                                {"previous_size_gb", before.size_gb}}
                                               .dump()));
            KINDLING_ASSIGN_OR_RETURN(volume, db::GetVolume(tx, before.id));
          }
          json changed = json::array();
          if (before.mount_path != volume.mount_path) changed.push_back("mount_path");
          if (before.size_gb != volume.size_gb) changed.push_back("size_gb");
          if (before.backup_schedule != volume.backup_schedule) {
            changed.push_back("backup_schedule");
          }
          if (before.backup_retention_count != volume.backup_retention_count) {
            changed.push_back("backup_retention_count");
          }
          if (before.pre_delete_backup_enabled != volume.pre_delete_backup_enabled) {
            changed.push_back("pre_delete_backup_enabled");
          }
          if (before.backup_keep != volume.backup_keep) changed.push_back("backup_keep");
          if (before.backup_window != volume.backup_window) changed.push_back("backup_window");
          KINDLING_RETURN_IF_ERROR(
              Audit(tx, actor, "volume.update", kResourceVolume, volume.id,
                    json{{"project_id", project_id}, {"changed", changed}}.dump()));
        }
        // As GET shows it.
        KINDLING_ASSIGN_OR_RETURN(db::ProjectVolume found, db::GetProjectVolume(tx, project_id));
        return VolumeView{.volume = std::move(volume),
                          .current_operation = std::move(found.active_operation),
                          .last_successful_backup_at = found.last_successful_backup_at,
                          .last_backup_verify_state = found.last_backup_verify_state,
                          .last_backup_verified_at = found.last_backup_verified_at};
      });
  if (result && created) *created = was_created;
  return result;
}

ControlResult<DeleteVolumeOutcome> VolumeService::DeleteVolume(const Actor& actor,
                                                               const std::string& project_id) {
  return TransactChecked<DeleteVolumeOutcome>(
      db_, [&](db::Tx& tx, std::optional<ControlError>& refusal) -> Result<DeleteVolumeOutcome> {
        KINDLING_ASSIGN_OR_RETURN(auto volume, LockedVolume(tx, project_id));
        if (!volume) {
          refusal = ControlError{404, kCodeNotFound, "the project has no volume"};
          return Refused();
        }
        Status failure;
        if (auto idle = CheckIdle(tx, *volume, &failure)) {
          refusal = std::move(*idle);
          return Refused();
        }
        KINDLING_RETURN_IF_ERROR(failure);
        DeleteVolumeOutcome outcome;
        if (volume->pre_delete_backup_enabled && volume->server_id) {
          KINDLING_ASSIGN_OR_RETURN(auto store, LoadBackupStoreSettings(tx, master_key_));
          if (std::string reason = store.MissingReason(); !reason.empty()) {
            refusal = ControlError{409, kCodeBackupStoreUnavailable,
                                   "the pre-delete backup cannot run: " + reason};
            return Refused();
          }
          KINDLING_ASSIGN_OR_RETURN(
              auto queued, db::QueueOperation(tx, db::QueueOperationRequest{
                                                      .volume_id = volume->id,
                                                      .kind = db::OperationKind::kBackup,
                                                      .server_id = *volume->server_id,
                                                      .create_backup = db::BackupKind::kPreDelete,
                                                      .volume_status = db::VolumeStatus::kDeleting,
                                                      .extra_request_metadata_json =
                                                          R"({"delete_volume_after": true})"}));
          outcome.operation = queued.operation;
        } else {
          KINDLING_RETURN_IF_ERROR(db::MarkVolumeDeleted(tx, volume->id));
        }
        KINDLING_RETURN_IF_ERROR(Audit(
            tx, actor, "volume.delete", kResourceVolume, volume->id,
            json{{"project_id", project_id},
                 {"server_id", OptionalString(volume->server_id)},
                 {"pre_delete_backup", outcome.operation.has_value()},
                 {"operation_id", outcome.operation ? json(outcome.operation->id) : json(nullptr)}}
                .dump()));
        return outcome;
      });
}

ControlResult<std::vector<db::Backup>> VolumeService::ListBackups(const std::string& project_id) {
  return TransactChecked<std::vector<db::Backup>>(
      db_,
      [&](db::Tx& tx, std::optional<ControlError>& refusal) -> Result<std::vector<db::Backup>> {
        KINDLING_ASSIGN_OR_RETURN(auto volume, db::FindProjectVolume(tx, project_id));
        if (!volume) {
          refusal = ControlError{404, kCodeNotFound, "the project has no volume"};
          return Refused();
        }
        return db::ListBackups(tx, volume->id);
      });
}

ControlResult<std::vector<WorkerChoice>> VolumeService::RestoreTargets(
    const std::string& project_id) {
  return TransactChecked<std::vector<WorkerChoice>>(
      db_,
      [&](db::Tx& tx, std::optional<ControlError>& refusal) -> Result<std::vector<WorkerChoice>> {
        KINDLING_ASSIGN_OR_RETURN(auto volume, db::FindProjectVolume(tx, project_id));
        if (!volume) {
          refusal = ControlError{404, kCodeNotFound, "the project has no volume"};
          return Refused();
        }
        KINDLING_ASSIGN_OR_RETURN(auto eligible, EligibleWorkers(tx));
        KINDLING_ASSIGN_OR_RETURN(auto servers, db::ListServers(tx));
        return ExplainWorkerChoice(servers, eligible, volume->server_id, options_.max_heartbeat_age,
                                   options_.runtimes);
      });
}

ControlResult<RetentionPreview> VolumeService::PreviewRetention(const std::string& project_id) {
  return TransactChecked<RetentionPreview>(
      db_, [&](db::Tx& tx, std::optional<ControlError>& refusal) -> Result<RetentionPreview> {
        KINDLING_ASSIGN_OR_RETURN(auto volume, db::FindProjectVolume(tx, project_id));
        if (!volume) {
          refusal = ControlError{404, kCodeNotFound, "the project has no volume"};
          return Refused();
        }
        KINDLING_ASSIGN_OR_RETURN(auto inputs, db::ListRetentionInputs(tx, volume->id));
        RetentionPreview preview{.volume = *volume, .entries = {}};
        preview.entries = PlanRetention(preview.volume, std::move(inputs));
        return preview;
      });
}

ControlResult<std::vector<db::ProjectBackup>> VolumeService::ListProjectBackups(
    const std::string& project_id) {
  return TransactChecked<std::vector<db::ProjectBackup>>(
      db_, [&](db::Tx& tx, std::optional<ControlError>&) {
        return db::ListProjectBackups(tx, project_id);
      });
}

ControlResult<db::Operation> VolumeService::QueueBackup(const Actor& actor,
                                                        const std::string& project_id,
                                                        WorkloadFlags flags) {
  if (flags.validate) {
    return Refuse(400, kCodeValidation,
                  "validate applies to restore and move (a backup leaves the image as it is)");
  }
  return Queue(actor, project_id, db::OperationKind::kBackup, std::nullopt, std::nullopt, flags);
}

ControlResult<db::Operation> VolumeService::QueueRestore(
    const Actor& actor, const std::string& project_id, const std::optional<std::string>& backup_id,
    const std::optional<std::string>& target_server_id, WorkloadFlags flags) {
  if (!backup_id || backup_id->empty()) {
    return Refuse(400, kCodeValidation, "backup_id is required");
  }
  if (!IsUuid(*backup_id)) return Refuse(400, kCodeValidation, "backup_id is not a UUID");
  return Queue(actor, project_id, db::OperationKind::kRestore, backup_id, target_server_id, flags);
}

ControlResult<db::Operation> VolumeService::QueueMove(
    const Actor& actor, const std::string& project_id,
    const std::optional<std::string>& target_server_id, WorkloadFlags flags) {
  return Queue(actor, project_id, db::OperationKind::kMove, std::nullopt, target_server_id, flags);
}

ControlResult<db::Operation> VolumeService::QueueRepair(const Actor& actor,
                                                        const std::string& project_id) {
  return Queue(actor, project_id, db::OperationKind::kRepair, std::nullopt, std::nullopt);
}

ControlResult<db::Operation> VolumeService::Queue(const Actor& actor, const std::string& project_id,
                                                  db::OperationKind kind,
                                                  const std::optional<std::string>& backup_id,
                                                  const std::optional<std::string>& target,
                                                  WorkloadFlags flags) {
  if (target && !IsUuid(*target)) {
    return Refuse(400, kCodeValidation, "target_server_id is not a UUID");
  }
  return TransactChecked<db::Operation>(
      db_, [&](db::Tx& tx, std::optional<ControlError>& refusal) -> Result<db::Operation> {
        auto refuse = [&](int status, const char* code, std::string message) {
          refusal = ControlError{status, code, std::move(message)};
          return Refused();
        };
        KINDLING_ASSIGN_OR_RETURN(auto found, LockedVolume(tx, project_id));
        if (!found) return refuse(404, kCodeNotFound, "the project has no volume");
        const db::Volume& volume = *found;
        // The server whose VM holds the volume stops it first, or backs it
        // up live where it can.
        const bool running = volume.attached_vm_id || volume.status == db::VolumeStatus::kAttached;
        bool live = false;
        if (kind == db::OperationKind::kBackup && running && !flags.stop_workload &&
            volume.server_id) {
          KINDLING_ASSIGN_OR_RETURN(live, LiveBackupsOn(tx, *volume.server_id));
        }
        Status failure;
        if (auto idle = CheckIdle(tx, volume, &failure, /*cold=*/!flags.stop_workload && !live)) {
          refusal = std::move(*idle);
          return Refused();
        }
        KINDLING_RETURN_IF_ERROR(failure);
        if (flags.stop_workload && running) {
          if (!volume.server_id)
            return refuse(409, kCodeVolumeAttached,
                          "the volume is attached but pinned to no server");
          auto holder = db::GetServer(tx, *volume.server_id);
          if (!holder && !holder.error().is_not_found()) return std::unexpected(holder.error());
          if (!holder || holder->status == db::ServerStatus::kDead)
            return refuse(409, kCodeVolumeUnavailable,
                          "the server " + *volume.server_id +
                              " running the workload is not available, so it cannot stop it; "
                              "wait until the volume is detached (a dead worker's workloads are "
                              "released within a minute)");
        }

        const bool needs_source = kind != db::OperationKind::kRestore;
        if (needs_source) {
          if (!volume.server_id) {
            return refuse(409, kCodeVolumeUnavailable, "the volume is not pinned to a server");
          }
          if (kind != db::OperationKind::kRepair &&
              volume.status == db::VolumeStatus::kUnavailable) {
            return refuse(409, kCodeVolumeUnavailable, UnavailableVolumeMessage(volume));
          }
          auto server = db::GetServer(tx, *volume.server_id);
          if (!server && !server.error().is_not_found()) {
            return std::unexpected(server.error());
          }
          if (!server || server->status == db::ServerStatus::kDead) {
            return refuse(409, kCodeVolumeUnavailable,
                          "the volume's server " + *volume.server_id + " is not available");
          }
        }

        if (kind == db::OperationKind::kBackup || kind == db::OperationKind::kMove) {
          KINDLING_ASSIGN_OR_RETURN(auto store, LoadBackupStoreSettings(tx, master_key_));
          if (std::string reason = store.MissingReason(); !reason.empty()) {
            return refuse(409, kCodeBackupStoreUnavailable,
                          "backup store not configured: " + reason);
          }
        }

        std::optional<std::string> source_volume_id;
        if (backup_id) {
          KINDLING_ASSIGN_OR_RETURN(db::Backup backup,
                                    ProjectBackup(tx, volume, *backup_id, refusal));
          if (backup.status == db::BackupStatus::kDamaged) {
            return refuse(409, kCodeBackupDamaged, DamagedMessage(backup));
          }
          if (backup.status != db::BackupStatus::kSucceeded) {
            return refuse(400, kCodeValidation,
                          "backup " + *backup_id + " has not succeeded (" +
                              std::string(db::Name(backup.status)) + ")");
          }
          // Read from the store it was written to, which must still open.
          const std::string url = backup.storage_url.value_or("");
          if (!url.starts_with("file:///")) {
            KINDLING_ASSIGN_OR_RETURN(auto recorded, LoadRecordedBackupStore(tx, master_key_, url));
            if (!recorded) {
              return refuse(409, kCodeBackupStoreUnavailable,
                            "the store " + url + " that backup " + *backup_id +
                                " was written to is not recorded in this cluster; set it as the "
                                "backup store once, with its credentials");
            }
          }
          if (backup.project_volume_id != volume.id) source_volume_id = backup.project_volume_id;
        }

        std::string executor = volume.server_id.value_or("");
        std::optional<std::string> destination;
        if (kind == db::OperationKind::kRestore || kind == db::OperationKind::kMove) {
          KINDLING_ASSIGN_OR_RETURN(auto workers, EligibleWorkers(tx));
          auto eligible = [&](const std::string& id) {
            return std::ranges::any_of(
                workers, [&](const db::EligibleWorker& w) { return w.server_id == id; });
          };
          if (target) {
            if (!eligible(*target)) {
              return refuse(400, kCodeValidation,
                            "target_server_id " + *target +
                                " is not an eligible worker (active, recent heartbeat, healthy "
                                "worker component with a runtime)");
            }
            if (kind == db::OperationKind::kMove && volume.server_id == *target) {
              return refuse(400, kCodeValidation,
                            "target_server_id is the server the volume is already on");
            }
            destination = *target;
          } else if (kind == db::OperationKind::kRestore && volume.server_id &&
                     eligible(*volume.server_id)) {
            destination = *volume.server_id;
          } else {
            for (const auto& worker : workers) {
              if (kind == db::OperationKind::kMove && volume.server_id == worker.server_id) {
                continue;
              }
              destination = worker.server_id;
              break;
            }
          }
          if (!destination) {
            return refuse(409, kCodeVolumeUnavailable,
                          "no eligible worker for the " + std::string(db::Name(kind)));
          }
          if (kind == db::OperationKind::kRestore) executor = *destination;
        }
        if ((flags.stop_workload || live) && running) executor = *volume.server_id;

        db::QueueOperationRequest request{.volume_id = volume.id,
                                          .kind = kind,
                                          .server_id = executor,
                                          .backup_id = backup_id,
                                          .target_server_id = destination};
        json extra = json::object();
        // A destination the caller chose is kept by retries (the leader fails
        // the operation rather than restore elsewhere).
        if (target) extra["target_requested"] = true;
        if (flags.stop_workload) extra["stop_workload"] = true;
        if (flags.validate) extra["validate"] = true;
        if (live) {
          extra["live_snapshot"] = true;
          request.volume_status = db::VolumeStatus::kAttached;  // the workload keeps it
        }
        request.extra_request_metadata_json = extra.dump();
        if (kind == db::OperationKind::kBackup || kind == db::OperationKind::kMove) {
          request.create_backup = db::BackupKind::kManual;
        }
        KINDLING_ASSIGN_OR_RETURN(auto queued, db::QueueOperation(tx, request));
        KINDLING_RETURN_IF_ERROR(
            Audit(tx, actor, std::string(KindAction(kind)), kResourceVolume, volume.id,
                  json{{"project_id", project_id},
                       {"operation_id", queued.operation.id},
                       {"server_id", executor},
                       {"previous_server_id", OptionalString(volume.server_id)},
                       {"target_server_id", OptionalString(destination)},
                       {"backup_id", OptionalString(queued.operation.backup_id)},
                       {"source_volume_id", OptionalString(source_volume_id)},
                       {"stop_workload", flags.stop_workload},
                       {"live_snapshot", live},
                       {"validate", flags.validate}}
                      .dump()));
        return queued.operation;
      });
}

}  // namespace kindling::control

namespace kindling::control {

ControlResult<db::Operation> VolumeService::QueueVerify(
    const Actor& actor, const std::string& project_id, const std::string& backup_id,
    const std::optional<std::string>& verify_round) {
  if (!IsUuid(backup_id)) return Refuse(400, kCodeValidation, "backup id is not a UUID");
  return TransactChecked<db::Operation>(
      db_, [&](db::Tx& tx, std::optional<ControlError>& refusal) -> Result<db::Operation> {
        KINDLING_ASSIGN_OR_RETURN(auto found, LockedVolume(tx, project_id));
        if (!found) {
          refusal = ControlError{404, kCodeNotFound, "the project has no volume"};
          return Refused();
        }
        const db::Volume& volume = *found;
        // A verify reads only the store: a workload may hold the volume.
        Status failure;
        if (auto idle = CheckIdle(tx, volume, &failure, /*cold=*/false)) {
          refusal = std::move(*idle);
          return Refused();
        }
        KINDLING_RETURN_IF_ERROR(failure);
        KINDLING_ASSIGN_OR_RETURN(db::Backup backup, ProjectBackup(tx, volume, backup_id, refusal));
        if (backup.status != db::BackupStatus::kSucceeded &&
            backup.status != db::BackupStatus::kDamaged) {
          refusal = ControlError{400, kCodeValidation,
                                 "backup " + backup_id + " has no data to verify (" +
                                     std::string(db::Name(backup.status)) + ")"};
          return Refused();
        }
        KINDLING_ASSIGN_OR_RETURN(auto workers, EligibleWorkers(tx));
        if (workers.empty()) {
          refusal = ControlError{409, kCodeVolumeUnavailable, "no eligible worker to verify on"};
          return Refused();
        }
        std::string executor = workers.front().server_id;
        for (const auto& w : workers) {
          if (w.server_id == volume.server_id) executor = w.server_id;
        }
        json extra = json::object();
        if (verify_round) extra["verify_round"] = *verify_round;
        KINDLING_ASSIGN_OR_RETURN(
            auto queued, db::QueueOperation(tx, db::QueueOperationRequest{
                                                    .volume_id = volume.id,
                                                    .kind = db::OperationKind::kVerify,
                                                    .server_id = executor,
                                                    .backup_id = backup_id,
                                                    .extra_request_metadata_json = extra.dump()}));
        KINDLING_RETURN_IF_ERROR(Audit(tx, actor, "volume.verify.queue", kResourceVolume, volume.id,
                                       json{{"project_id", project_id},
                                            {"operation_id", queued.operation.id},
                                            {"server_id", executor},
                                            {"backup_id", backup_id},
                                            {"backup_volume_id", backup.project_volume_id},
                                            {"verify_round", OptionalString(verify_round)}}
                                           .dump()));
        return queued.operation;
      });
}

ControlResult<db::Backup> VolumeService::SetBackupPinned(const Actor& actor,
                                                         const std::string& project_id,
                                                         const std::string& backup_id,
                                                         bool pinned) {
  if (!IsUuid(backup_id)) return Refuse(400, kCodeValidation, "backup id is not a UUID");
  return TransactChecked<db::Backup>(
      db_, [&](db::Tx& tx, std::optional<ControlError>& refusal) -> Result<db::Backup> {
        const std::string unknown = "backup " + backup_id + " not found";
        // Locked: a retention deletion of the same backup waits, or this does.
        auto backup = db::GetBackup(tx, backup_id, /*for_update=*/true);
        if (!backup && !backup.error().is_not_found()) return std::unexpected(backup.error());
        std::optional<db::Volume> owner;
        if (backup) {
          auto volume = db::GetVolume(tx, backup->project_volume_id);
          if (!volume && !volume.error().is_not_found()) return std::unexpected(volume.error());
          if (volume) owner = std::move(*volume);
        }
        // Another project's backup is as unknown as a missing one.
        if (!backup || !owner || owner->project_id != project_id) {
          refusal = ControlError{404, kCodeNotFound, unknown};
          return Refused();
        }
        const bool changed = backup->pinned != pinned;
        db::Backup updated = *backup;
        if (changed) {
          KINDLING_ASSIGN_OR_RETURN(updated, db::SetBackupPinned(tx, backup_id, pinned));
        }
        const char* action = pinned ? "volume.backup.pinned" : "volume.backup.unpinned";
        KINDLING_RETURN_IF_ERROR(Audit(tx, actor, action, kResourceVolume, owner->id,
                                       json{{"project_id", project_id},
                                            {"backup_id", backup_id},
                                            {"backup_status", db::Name(backup->status)},
                                            {"changed", changed}}
                                           .dump()));
        return updated;
      });
}

ControlResult<db::Operation> VolumeService::QueueAdopt(const Actor& actor,
                                                       const std::string& project_id,
                                                       const std::string& quarantine_id,
                                                       bool platform_admin) {
  if (!IsUuid(quarantine_id)) return Refuse(400, kCodeValidation, "quarantine_id is not a UUID");
  return TransactChecked<db::Operation>(
      db_, [&](db::Tx& tx, std::optional<ControlError>& refusal) -> Result<db::Operation> {
        auto refuse = [&](int status, const char* code, std::string message) {
          refusal = ControlError{status, code, std::move(message)};
          return Refused();
        };
        KINDLING_ASSIGN_OR_RETURN(auto found, LockedVolume(tx, project_id));
        if (!found) {
          return refuse(404, kCodeNotFound,
                        "the project has no volume: create one, then adopt the image into it");
        }
        const db::Volume& volume = *found;
        Status failure;
        if (auto idle = CheckIdle(tx, volume, &failure)) {
          refusal = std::move(*idle);
          return Refused();
        }
        KINDLING_RETURN_IF_ERROR(failure);
        auto entry = db::GetQuarantineEntry(tx, quarantine_id, /*for_update=*/true);
        if (!entry && !entry.error().is_not_found()) return std::unexpected(entry.error());
        const std::string unknown = "quarantined image " + quarantine_id + " not found";
        if (!entry) return refuse(404, kCodeNotFound, unknown);
        // Whose image it is: a volume of this project, or (platform admins
        // only) a volume the database does not know.
        auto owner = db::GetVolume(tx, entry->project_volume_id);
        if (!owner && !owner.error().is_not_found()) return std::unexpected(owner.error());
        if (owner ? owner->project_id != project_id : !platform_admin) {
          return refuse(404, kCodeNotFound, unknown);
        }
        if (entry->status != db::QuarantineStatus::kHeld) {
          return refuse(
              409, kCodeFailedPrecondition,
              "quarantined image " + quarantine_id + " is " + std::string(db::Name(entry->status)));
        }
        KINDLING_ASSIGN_OR_RETURN(auto workers, EligibleWorkers(tx));
        if (!std::ranges::any_of(workers, [&](const db::EligibleWorker& w) {
              return w.server_id == entry->server_id;
            })) {
          return refuse(409, kCodeVolumeUnavailable,
                        "server " + entry->server_id +
                            " holding the image is not an eligible worker now (active, recent "
                            "heartbeat, healthy worker component)");
        }
        KINDLING_ASSIGN_OR_RETURN(
            auto queued, db::QueueOperation(tx, db::QueueOperationRequest{
                                                    .volume_id = volume.id,
                                                    .kind = db::OperationKind::kAdopt,
                                                    .server_id = entry->server_id,
                                                    .target_server_id = entry->server_id,
                                                    .extra_request_metadata_json = json{
                                                        {"quarantine_id", quarantine_id},
                                                        {"source_volume_id",
                                                         entry->project_volume_id}}.dump()}));
        KINDLING_RETURN_IF_ERROR(
            Audit(tx, actor, "volume.adopt.queue", kResourceVolume, volume.id,
                  json{{"project_id", project_id},
                       {"operation_id", queued.operation.id},
                       {"quarantine_id", quarantine_id},
                       {"server_id", entry->server_id},
                       {"source_volume_id", entry->project_volume_id},
                       {"previous_server_id", OptionalString(volume.server_id)},
                       {"image_sha256", OptionalString(entry->image_sha256)}}
                      .dump()));
        return queued.operation;
      });
}

}  // namespace kindling::control
