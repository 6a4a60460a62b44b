#include "control/worker_choice.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace kindling::control {
namespace {

std::string WhyNot(const db::Server& s, std::chrono::seconds max_heartbeat_age,
                   const std::vector<std::string>& runtimes) {
  if (s.status != db::ServerStatus::kActive)
    return fmt::format("the server is {}", db::Name(s.status));
  if (!s.heartbeat_age_seconds) return "no heartbeat yet";
  if (*s.heartbeat_age_seconds >= static_cast<double>(max_heartbeat_age.count())) {
    return fmt::format("no heartbeat for {:.0f} s (more than {} s)",
                       std::floor(*s.heartbeat_age_seconds), max_heartbeat_age.count());
  }
  const auto worker =
      std::ranges::find(s.components, std::string("worker"), &db::ComponentStatus::component);
  if (worker == s.components.end()) return "its worker has not reported yet";
  if (worker->status != db::ComponentHealth::kHealthy) {
    return fmt::format("its worker is {}{}", db::Name(worker->status),
                       worker->last_error_message ? ": " + *worker->last_error_message : "");
  }
  if (!worker->runtime || worker->runtime->empty()) return "its worker reports no VM runtime";
  if (!runtimes.empty() && std::ranges::find(runtimes, *worker->runtime) == runtimes.end())
    return fmt::format("its runtime {} is not accepted here", *worker->runtime);
  return "not eligible";
}

}  // namespace

std::vector<WorkerChoice> ExplainWorkerChoice(const std::vector<db::Server>& servers,
                                              const std::vector<db::EligibleWorker>& eligible,
                                              const std::optional<std::string>& current_server,
                                              std::chrono::seconds max_heartbeat_age,
                                              const std::vector<std::string>& runtimes) {
  std::vector<WorkerChoice> out;
  for (const db::EligibleWorker& w : eligible) {
    out.push_back(WorkerChoice{.server_id = w.server_id,
                               .hostname = w.hostname,
                               .runtime = w.runtime,
                               .eligible = true,
                               .load = w.load,
                               .current = current_server == w.server_id});
  }
  std::vector<WorkerChoice> others;
  for (const db::Server& s : servers) {
    if (std::ranges::any_of(eligible, [&](const auto& w) { return w.server_id == s.id; })) continue;
    const bool runs_worker =
        std::ranges::find(s.enabled_components, std::string("worker")) !=
            s.enabled_components.end() ||
        std::ranges::any_of(s.components, [](const auto& c) { return c.component == "worker"; });
    if (!runs_worker) continue;
    std::optional<std::string> runtime;
    for (const auto& c : s.components)
      if (c.component == "worker") runtime = c.runtime;
    others.push_back(WorkerChoice{.server_id = s.id,
                                  .hostname = s.hostname,
                                  .runtime = runtime,
                                  .eligible = false,
                                  .reason = WhyNot(s, max_heartbeat_age, runtimes),
                                  .current = current_server == s.id});
  }
  std::ranges::stable_sort(others, {}, &WorkerChoice::hostname);
  out.insert(out.end(), others.begin(), others.end());
  return out;
}

}  // namespace kindling::control
