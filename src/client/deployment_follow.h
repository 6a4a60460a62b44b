// FollowDeployment: waits for a deployment to settle (run, fail, or stop for
// good) by polling GET /api/projects/{id}/deployments, reporting every
// answer on the way (for a status line). The API has no route for one
// deployment; the list is short (one row per deploy of the project).
//
// Thread-safety: one call per thread; the callbacks run on the caller's thread.
#pragma once

#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "client/api_client.h"
#include "common/result.h"

namespace kindling::client {

struct DeploymentFollowOptions {
  std::chrono::milliseconds interval{500};
  // As FollowOptions::transient_grace: a restarting API does not end the wait.
  std::chrono::milliseconds transient_grace{30'000};
  // The wait ends with kTransient once this long has passed (zero: no limit).
  std::chrono::milliseconds timeout{std::chrono::minutes(5)};
  // True ends the wait with kCancelled; the deployment carries on.
  std::function<bool()> cancelled;
  // Called with the followed deployment's document from every answer, in order.
  std::function<void(const nlohmann::json& deployment)> on_update;
};

// The status of the deployment's newest instance, else the deployment's own.
// A deployment mirrors its newest instance, but only once a worker acted:
// right after `start` of a failed deployment its status is still failed
// while its new instance is pending.
std::string WorkloadStatus(const nlohmann::json& deployment);
// True when the workload is running or failed, or stopped with no intent to
// run (stopped, or superseded, while it was followed): nothing more will
// happen to it without an operator.
bool IsSettled(const nlohmann::json& deployment);
// True when the workload is running.
bool IsRunning(const nlohmann::json& deployment);
// What went wrong with a deployment: its instance's error, else its own, else
// empty.
std::string DeploymentError(const nlohmann::json& deployment);

// Polls until the deployment settles and returns its last document, running
// or not (the caller decides what a failure means). Errors: the client's
// (kNotFound for an unknown project), kNotFound when the deployment is not
// among the project's, kCancelled, kTransient when the timeout passed ("...
// is still starting after 5 min") or the grace period of transient failures
// is over.
[[nodiscard]] Result<nlohmann::json> FollowDeployment(ApiClient& client,
                                                      const std::string& project_id,
                                                      const std::string& deployment_id,
                                                      const DeploymentFollowOptions& options);

}  // namespace kindling::client
