// Why each worker is, or is not, a place a volume can be restored or moved
// to: the rules of VolumeService::EligibleWorkers (volume_service.h) told
// back per server, for a picker that shows the eligible workers and why the
// others are not.
//
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "db/servers.h"

namespace kindling::control {

struct WorkerChoice {
  std::string server_id{};
  std::string hostname{};
  std::optional<std::string> runtime{};
  bool eligible = false;
  // Why not, when not eligible: the first rule it fails, in the order
  // status, heartbeat, worker component, runtime.
  std::string reason{};
  int load = 0;          // eligible ones: live volumes plus pending/running operations
  bool current = false;  // the server the volume is pinned to
};

// Every server that runs (or ran) a worker component: the `eligible` ones
// first, in the order they would be chosen, then the others by hostname.
// `eligible` is EligibleWorkers' answer, `servers` every server
// (db::ListServers), `max_heartbeat_age` and `runtimes` the rules it used.
std::vector<WorkerChoice> ExplainWorkerChoice(const std::vector<db::Server>& servers,
                                              const std::vector<db::EligibleWorker>& eligible,
                                              const std::optional<std::string>& current_server,
                                              std::chrono::seconds max_heartbeat_age,
                                              const std::vector<std::string>& runtimes);

}  // namespace kindling::control
