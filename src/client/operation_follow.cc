#include "client/operation_follow.h"

#include "client/poll.h"

namespace kindling::client {
namespace {

std::string StatusOf(const nlohmann::json& operation) {
  if (!operation.is_object()) return "";
  auto it = operation.find("status");
  return it != operation.end() && it->is_string() ? it->get<std::string>() : "";
}

}  // namespace

bool IsFinished(const nlohmann::json& operation) {
  const std::string status = StatusOf(operation);
  return status == "succeeded" || status == "failed";
}

bool Succeeded(const nlohmann::json& operation) { return StatusOf(operation) == "succeeded"; }

Result<nlohmann::json> FollowOperation(ApiClient& client, const std::string& operation_id,
                                       const FollowOptions& options) {
  auto fetch = [&]() -> Result<nlohmann::json> {
    auto operation = client.GetOperation(operation_id);
    if (operation && !operation->is_object()) {
      return InternalError("GET /api/operations/" + operation_id + " did not answer an object");
    }
    return operation;
  };
  return PollUntil(fetch, IsFinished, StatusOf,
                   PollOptions{.interval = options.interval,
                               .transient_grace = options.transient_grace,
                               .cancelled = options.cancelled,
                               .on_update = options.on_update},
                   "operation " + operation_id);
}

}  // namespace kindling::client
