#include "control/deployment_service.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "control/volume_service.h"
#include "db/operations.h"
#include "db/projects.h"
#include "db/servers.h"
#include "db/settings.h"
#include "db/volumes.h"

namespace kindling::control {
namespace {

using nlohmann::json;

constexpr char kResourceDeployment[] = "deployment";

// ^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$, as the schema's CHECK says.
bool ValidService(const std::string& service) {
  if (service.empty() || service.size() > 32 || service.front() == '-' || service.back() == '-')
    return false;
  return std::all_of(service.begin(), service.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

// The images the worker reports in its component metadata ("images").
std::vector<std::string> WorkerImages(const db::Server& server) {
  std::vector<std::string> images;
  for (const auto& component : server.components) {
    if (component.component != "worker") continue;
    const json metadata = json::parse(component.metadata_json, nullptr, false);
    if (!metadata.is_object() || !metadata.contains("images") || !metadata["images"].is_array())
      continue;
    for (const json& image : metadata["images"])
      if (image.is_string()) images.push_back(image.get<std::string>());
  }
  return images;
}

std::string JoinNames(const std::vector<std::string>& names) {
  std::string text;
  for (const auto& name : names) text += (text.empty() ? "" : ", ") + name;
  return text.empty() ? "none" : text;
}

// The project's volume, locked, with the server it is pinned to; a refusal
// when a workload cannot run there now.
struct Placement {
  db::Volume volume{};
  db::Server server{};
};
Result<Placement> PlaceOnVolume(db::Tx& tx, const std::string& project_id,
                                std::optional<ControlError>& refusal) {
  auto refuse = [&](int status, const char* code, std::string message) -> Result<Placement> {
    refusal = ControlError{status, code, std::move(message)};
    return FailedPrecondition("refused");
  };
  KINDLING_ASSIGN_OR_RETURN(auto volume, db::FindProjectVolume(tx, project_id, true));
  if (!volume)
    return refuse(409, kCodeVolumeUnavailable,
                  "the project has no volume: a workload runs where its volume is (PUT "
                  "/api/projects/{id}/volume first)");
  if (!volume->server_id)
    return refuse(409, kCodeVolumeUnavailable, "the volume is not pinned to a server");
  if (volume->status == db::VolumeStatus::kUnavailable)
    return refuse(409, kCodeVolumeUnavailable, UnavailableVolumeMessage(*volume));
  if (db::IsTransitional(volume->status))
    return refuse(409, kCodeVolumeBusy,
                  "the volume is busy (" + std::string(db::Name(volume->status)) + ")");
  KINDLING_ASSIGN_OR_RETURN(auto active, db::FindActiveOperation(tx, volume->id));
  if (active)
    return refuse(409, kCodeVolumeBusy,
                  "the volume has a " + std::string(db::Name(active->status)) + " " +
                      std::string(db::Name(active->kind)) + " operation " + active->id);
  auto server = db::GetServer(tx, *volume->server_id);
  if (!server && !server.error().is_not_found()) return std::unexpected(server.error());
  if (!server || server->status == db::ServerStatus::kDead)
    return refuse(409, kCodeVolumeUnavailable,
                  "the volume's server " + *volume->server_id + " is not available");
  return Placement{.volume = std::move(*volume), .server = std::move(*server)};
}

Result<DeploymentView> View(db::Tx& tx, db::Deployment deployment) {
  DeploymentView view;
  KINDLING_ASSIGN_OR_RETURN(db::Project project, db::GetProject(tx, deployment.project_id));
  KINDLING_ASSIGN_OR_RETURN(auto domain, db::GetSetting(tx, "service_base_domain"));
  view.project_name = project.name;
  view.hostname = db::ServiceHostname(deployment.service, project.name, domain.value_or(""));
  KINDLING_ASSIGN_OR_RETURN(
      auto instances, db::ListInstances(tx, db::InstanceFilter{.deployment_id = deployment.id}));
  if (!instances.empty()) view.instance = instances.back();
  view.deployment = std::move(deployment);
  return view;
}

Result<db::Deployment> CurrentOrRefuse(db::Tx& tx, const std::string& project_id,
                                       const std::string& service,
                                       std::optional<ControlError>& refusal) {
  KINDLING_ASSIGN_OR_RETURN(auto current, db::FindCurrentDeployment(tx, project_id, service, true));
  if (!current) {
    refusal = ControlError{404, kCodeNotFound,
                           "the project has no deployment of service '" + service + "'"};
    return FailedPrecondition("refused");
  }
  return std::move(*current);
}

}  // namespace

ControlResult<DeploymentView> DeploymentService::Deploy(const Actor& actor,
                                                        const std::string& project_id,
                                                        const DeployRequest& request) {
  if (request.image.empty()) return Refuse(400, kCodeValidation, "image is required");
  if (!ValidService(request.service))
    return Refuse(400, kCodeValidation,
                  "service must be 1 to 32 characters of a-z, 0-9 and '-', not starting or "
                  "ending with '-'");
  auto out_of = [](const std::optional<int>& v, int low, int high) {
    return v && (*v < low || *v > high);
  };
  if (out_of(request.memory_mib, 128, 65536))
    return Refuse(400, kCodeValidation, "memory_mib must be from 128 to 65536");
  if (out_of(request.vcpus, 1, 32)) return Refuse(400, kCodeValidation, "vcpus must be 1 to 32");
  if (out_of(request.boot_timeout_seconds, 5, 3600))
    return Refuse(400, kCodeValidation, "boot_timeout_seconds must be from 5 to 3600");
  if (out_of(request.stop_timeout_seconds, 1, 600))
    return Refuse(400, kCodeValidation, "stop_timeout_seconds must be from 1 to 600");
  return TransactChecked<DeploymentView>(
      db_, [&](db::Tx& tx, std::optional<ControlError>& refusal) -> Result<DeploymentView> {
        KINDLING_ASSIGN_OR_RETURN(Placement placement, PlaceOnVolume(tx, project_id, refusal));
        const std::vector<std::string> images = WorkerImages(placement.server);
        if (std::find(images.begin(), images.end(), request.image) == images.end()) {
          refusal =
              ControlError{400, kCodeValidation,
                           "image '" + request.image + "' is not available on worker " +
                               placement.server.hostname + " (it has: " + JoinNames(images) + ")"};
          return FailedPrecondition("refused");
        }
        db::NewDeployment fresh{.project_id = project_id,
                                .service = request.service,
                                .image = request.image,
                                .created_by = actor.user_id};
        if (request.memory_mib) fresh.memory_mib = *request.memory_mib;
        if (request.vcpus) fresh.vcpus = *request.vcpus;
        if (request.boot_timeout_seconds)
          fresh.boot_timeout_seconds = *request.boot_timeout_seconds;
        if (request.stop_timeout_seconds)
          fresh.stop_timeout_seconds = *request.stop_timeout_seconds;
        KINDLING_ASSIGN_OR_RETURN(db::DeploymentCreated created, db::CreateDeployment(tx, fresh));
        KINDLING_RETURN_IF_ERROR(
            db::CreateInstance(tx, created.deployment.id, placement.server.id));
        json details = {{"project_id", project_id},       {"service", request.service},
                        {"image", request.image},         {"server_id", placement.server.id},
                        {"memory_mib", fresh.memory_mib}, {"vcpus", fresh.vcpus}};
        if (created.superseded) details["superseded"] = created.superseded->id;
        KINDLING_RETURN_IF_ERROR(Audit(tx, actor, "deployment.create", kResourceDeployment,
                                       created.deployment.id, details.dump()));
        return View(tx, std::move(created.deployment));
      });
}

ControlResult<std::vector<DeploymentView>> DeploymentService::List(const std::string& project_id) {
  auto listed = db_.Transact([&](db::Tx& tx) -> Result<std::vector<DeploymentView>> {
    KINDLING_ASSIGN_OR_RETURN(auto deployments, db::ListDeployments(tx, project_id));
    std::vector<DeploymentView> views;
    for (auto& deployment : deployments) {
      KINDLING_ASSIGN_OR_RETURN(DeploymentView view, View(tx, std::move(deployment)));
      views.push_back(std::move(view));
    }
    return views;
  });
  if (!listed) return std::unexpected(FromError(listed.error()));
  return std::move(*listed);
}

ControlResult<DeploymentView> DeploymentService::Stop(const Actor& actor,
                                                      const std::string& project_id,
                                                      const std::string& service) {
  return TransactChecked<DeploymentView>(
      db_, [&](db::Tx& tx, std::optional<ControlError>& refusal) -> Result<DeploymentView> {
        KINDLING_ASSIGN_OR_RETURN(db::Deployment current,
                                  CurrentOrRefuse(tx, project_id, service, refusal));
        KINDLING_ASSIGN_OR_RETURN(
            db::Deployment stopped,
            db::UpdateDeployment(
                tx, current.id, db::DeploymentUpdate{.desired_state = db::DesiredState::kStopped}));
        KINDLING_RETURN_IF_ERROR(Audit(tx, actor, "deployment.stop", kResourceDeployment,
                                       current.id,
                                       json{{"project_id", project_id},
                                            {"service", service},
                                            {"was", std::string(db::Name(current.desired_state))}}
                                           .dump()));
        return View(tx, std::move(stopped));
      });
}

ControlResult<DeploymentView> DeploymentService::Start(const Actor& actor,
                                                       const std::string& project_id,
                                                       const std::string& service) {
  return TransactChecked<DeploymentView>(
      db_, [&](db::Tx& tx, std::optional<ControlError>& refusal) -> Result<DeploymentView> {
        KINDLING_ASSIGN_OR_RETURN(db::Deployment current,
                                  CurrentOrRefuse(tx, project_id, service, refusal));
        KINDLING_ASSIGN_OR_RETURN(Placement placement, PlaceOnVolume(tx, project_id, refusal));
        KINDLING_ASSIGN_OR_RETURN(
            db::Deployment started,
            db::UpdateDeployment(tx, current.id,
                                 db::DeploymentUpdate{.desired_state = db::DesiredState::kRunning,
                                                      .error = db::SetNull()}));
        KINDLING_ASSIGN_OR_RETURN(
            auto live, db::ListInstances(
                           tx, db::InstanceFilter{.deployment_id = current.id, .live_only = true}));
        std::optional<std::string> queued;
        if (live.empty()) {
          KINDLING_ASSIGN_OR_RETURN(db::Instance instance,
                                    db::CreateInstance(tx, current.id, placement.server.id));
          queued = instance.id;
        }
        json details = {
            {"project_id", project_id}, {"service", service}, {"server_id", placement.server.id}};
        if (queued) details["instance_id"] = *queued;
        KINDLING_RETURN_IF_ERROR(
            Audit(tx, actor, "deployment.start", kResourceDeployment, current.id, details.dump()));
        return View(tx, std::move(started));
      });
}

}  // namespace kindling::control
