// Workload routes: deploy, list deployments, stop and start.
#include "api/api_context.h"
#include "api/json_views.h"

namespace kindling::api {

void AddDeploymentRoutes(ApiContext& api) {
  const std::string project = R"(/api/projects/([^/]+))";
  api.Route("POST", project + "/deploy", [&api](Call& call) -> ControlResult<Reply> {
    API_ASSIGN_OR_RETURN(auto p, api.AccessProject(call, 1, true));
    API_ASSIGN_OR_RETURN(auto body,
                         Body::Parse(call.req, {"image", "service", "memory_mib", "vcpus",
                                                "boot_timeout_seconds", "stop_timeout_seconds"}));
    control::DeployRequest request;
    API_ASSIGN_OR_RETURN(auto image, body.String("image"));
    if (!image || image->empty()) return Invalid("image is required");
    request.image = *image;
    API_ASSIGN_OR_RETURN(auto service, body.String("service"));
    if (service) request.service = *service;
    API_ASSIGN_OR_RETURN(request.memory_mib, body.Int("memory_mib"));
    API_ASSIGN_OR_RETURN(request.vcpus, body.Int("vcpus"));
    API_ASSIGN_OR_RETURN(request.boot_timeout_seconds, body.Int("boot_timeout_seconds"));
    API_ASSIGN_OR_RETURN(request.stop_timeout_seconds, body.Int("stop_timeout_seconds"));
    API_ASSIGN_OR_RETURN(auto view, api.deployments.Deploy(call.actor, p.id, request));
    return Reply{202, DeploymentJson(view)};
  });
  api.Route("GET", project + "/deployments", [&api](Call& call) -> ControlResult<Reply> {
    API_ASSIGN_OR_RETURN(auto p, api.AccessProject(call, 1, false));
    API_ASSIGN_OR_RETURN(auto views, api.deployments.List(p.id));
    nlohmann::json out = nlohmann::json::array();
    for (const auto& view : views) out.push_back(DeploymentJson(view));
    return Reply{200, out};
  });
  for (const bool start : {false, true}) {
    api.Route("POST", project + (start ? "/start" : "/stop"),
              [&api, start](Call& call) -> ControlResult<Reply> {
                API_ASSIGN_OR_RETURN(auto p, api.AccessProject(call, 1, true));
                API_ASSIGN_OR_RETURN(auto body, Body::Parse(call.req, {"service"}));
                API_ASSIGN_OR_RETURN(auto service, body.String("service"));
                const std::string name = service.value_or("web");
                API_ASSIGN_OR_RETURN(auto view, start
                                                    ? api.deployments.Start(call.actor, p.id, name)
                                                    : api.deployments.Stop(call.actor, p.id, name));
                return Reply{202, DeploymentJson(view)};
              });
  }
}

}  // namespace kindling::api
