#include "cli/dev_canary.h"

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "client/api_client.h"
#include "client/cluster_validation.h"

namespace kindling::cli {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr char kCanaryProject[] = "canary";

// The canary project's id, made with its volume when missing.
Result<std::string> CanaryProject(client::ApiClient& api) {
  KINDLING_ASSIGN_OR_RETURN(const json projects, api.ListProjects());
  std::string id;
  for (const json& project : projects)
    if (project.value("name", "") == kCanaryProject) id = project.value("id", "");
  if (id.empty()) {
    KINDLING_ASSIGN_OR_RETURN(const json made, api.CreateProject(kCanaryProject));
    id = made.value("id", "");
  }
  auto volume = api.GetVolume(id);
  if (!volume && volume.error().is_not_found()) {
    KINDLING_ASSIGN_OR_RETURN(volume, api.PutVolume(id, client::VolumeSettings{.size_gb = 1}));
  }
  if (!volume) return std::unexpected(volume.error());
  // The worker makes the image: a deployment waits for it anyway, but a
  // healthy volume first keeps the step's time limit for the guest.
  for (int i = 0; i < 300 && volume && volume->value("health", "") != "healthy"; ++i) {
    std::this_thread::sleep_for(milliseconds(200));
    volume = api.GetVolume(id);
  }
  return id;
}

}  // namespace

void ShowDevCanary(const service::DevEndpoints& endpoints) {
  auto api = client::ApiClient::Create(client::ApiClientOptions{
      .base_url = endpoints.url, .api_key = Secret::FromView(endpoints.api_key)});
  if (!api) {
    std::fprintf(stderr, "canary: not shown: %s\n", api.error().message().c_str());
    return;
  }
  auto project = CanaryProject(**api);
  if (!project) {
    std::fprintf(stderr, "canary: not shown: %s\n", project.error().message().c_str());
    return;
  }
  const client::ValidationReport report =
      client::ValidateCluster(**api, client::ValidationInputs{.canary_project_id = *project,
                                                              .edge_url = endpoints.edge_url,
                                                              .canary_timeout = seconds(120),
                                                              .poll_interval = milliseconds(250)});
  for (const client::ValidationStep& step : report.steps) {
    if (step.name != "canary") continue;
    if (step.outcome != client::ValidationStep::Outcome::kPass) {
      std::fprintf(stderr, "canary: not answering through the edge: %s\n", step.evidence.c_str());
      return;
    }
    const std::string host = step.details.value("hostname", "");
    std::fprintf(stderr,
                 "canary: %s\n"
                 "  curl -H 'Host: %s' %s/healthz\n"
                 "  curl -H 'Host: %s' --data hello %s/records\n"
                 "  curl -H 'Host: %s' %s/records/verify\n",
                 step.evidence.c_str(), host.c_str(), endpoints.edge_url.c_str(), host.c_str(),
                 endpoints.edge_url.c_str(), host.c_str(), endpoints.edge_url.c_str());
  }
}

}  // namespace kindling::cli
