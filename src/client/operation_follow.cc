#include "client/operation_follow.h"

#include <algorithm>
#include <thread>

namespace kindling::client {
namespace {

constexpr auto kCancelCheck = std::chrono::milliseconds(50);

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
  auto is_cancelled = [&] { return options.cancelled && options.cancelled(); };
  auto last_good = std::chrono::steady_clock::now();
  for (;;) {
    if (is_cancelled()) return Cancelled("stopped following operation " + operation_id);
    auto operation = client.GetOperation(operation_id);
    if (operation) {
      last_good = std::chrono::steady_clock::now();
      if (!operation->is_object()) {
        return InternalError("GET /api/operations/" + operation_id + " did not answer an object");
      }
      if (options.on_update) options.on_update(*operation);
      if (IsFinished(*operation)) return std::move(*operation);
    } else if (!operation.error().retryable() ||
               std::chrono::steady_clock::now() - last_good > options.transient_grace) {
      return std::unexpected(operation.error());
    }
    const auto wake = std::chrono::steady_clock::now() + options.interval;
    for (auto now = std::chrono::steady_clock::now(); now < wake;
         now = std::chrono::steady_clock::now()) {
      if (is_cancelled()) return Cancelled("stopped following operation " + operation_id);
      std::this_thread::sleep_for(
          std::min<std::chrono::steady_clock::duration>(kCancelCheck, wake - now));
    }
  }
}

}  // namespace kindling::client
