#include "client/deployment_follow.h"

#include "client/poll.h"

namespace kindling::client {
namespace {

using nlohmann::json;

std::string StringField(const json& object, const char* key) {
  if (!object.is_object()) return "";
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : "";
}

}  // namespace

std::string WorkloadStatus(const json& deployment) {
  if (deployment.is_object() && deployment.contains("instance")) {
    std::string status = StringField(deployment["instance"], "status");
    if (!status.empty()) return status;
  }
  return StringField(deployment, "status");
}

bool IsSettled(const json& deployment) {
  const std::string status = WorkloadStatus(deployment);
  if (status == "running" || status == "failed") return true;
  const bool superseded = deployment.is_object() && deployment.contains("superseded_at") &&
                          !deployment["superseded_at"].is_null();
  return status == "stopped" &&
         (StringField(deployment, "desired_state") == "stopped" || superseded);
}

bool IsRunning(const json& deployment) { return WorkloadStatus(deployment) == "running"; }

std::string DeploymentError(const json& deployment) {
  if (deployment.is_object() && deployment.contains("instance")) {
    std::string error = StringField(deployment["instance"], "error");
    if (!error.empty()) return error;
  }
  return StringField(deployment, "error");
}

Result<json> FollowDeployment(ApiClient& client, const std::string& project_id,
                              const std::string& deployment_id,
                              const DeploymentFollowOptions& options) {
  auto fetch = [&]() -> Result<json> {
    KINDLING_ASSIGN_OR_RETURN(json deployments, client.ListDeployments(project_id));
    if (!deployments.is_array()) {
      return InternalError("GET /api/projects/" + project_id +
                           "/deployments did not answer an array");
    }
    for (json& deployment : deployments) {
      if (StringField(deployment, "id") == deployment_id) return std::move(deployment);
    }
    return NotFound("deployment " + deployment_id + " is not among project " + project_id +
                    "'s deployments");
  };
  return PollUntil(fetch, IsSettled, WorkloadStatus,
                   PollOptions{.interval = options.interval,
                               .transient_grace = options.transient_grace,
                               .timeout = options.timeout,
                               .cancelled = options.cancelled,
                               .on_update = options.on_update},
                   "deployment " + deployment_id);
}

}  // namespace kindling::client
