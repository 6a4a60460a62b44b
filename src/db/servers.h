// servers and server_component_statuses: host registration, heartbeats,
// component health, the dead-server sweep, drain/activate, and the worker
// eligibility query for restore/move.
//
// Status rules (reference): a heartbeat (or re-registration) revives `dead`
// to `active`; the leader marks `active` servers silent for too long `dead`;
// `draining`/`drained` change only by operator action.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "db/database.h"
#include "db/types.h"

namespace kindling::db {

struct ComponentStatus {
  std::string server_id{};
  std::string component{};  // "worker", "api", ...
  ComponentHealth status = ComponentHealth::kHealthy;
  Timestamp observed_at{};
  std::optional<Timestamp> last_success_at{};
  std::optional<Timestamp> last_error_at{};
  std::optional<std::string> last_error_message{};
  std::string metadata_json = "{}";      // e.g. {"runtime": "..."}
  std::optional<std::string> runtime{};  // metadata->>'runtime'
};

struct Server {
  std::string id{};
  std::string hostname{};
  std::string internal_ip{};
  ServerStatus status = ServerStatus::kActive;
  std::optional<Timestamp> last_heartbeat_at{};
  std::vector<std::string> enabled_components{};
  Timestamp created_at{};
  Timestamp updated_at{};
  // Seconds since the last heartbeat by the database clock; nullopt without one.
  std::optional<double> heartbeat_age_seconds{};
  std::vector<ComponentStatus> components{};  // by component name
};

// Reference `heartbeat_health`: "unknown" without a heartbeat, "stale" when
// dead or older than `stale_after`, else "healthy".
std::string_view HeartbeatHealth(const Server& server,
                                 std::chrono::seconds stale_after = std::chrono::seconds(20));

struct ServerRegistration {
  std::string id{};  // the host's stable server-id
  std::string hostname{};
  std::string internal_ip{};
  std::vector<std::string> enabled_components{};
};

// Inserts the server or updates the row with the same id (hostname, ip,
// components). Counts as a heartbeat: a dead server comes back active;
// draining/drained are kept.
[[nodiscard]] Result<Server> RegisterServer(Tx& tx, const ServerRegistration& registration);

// Records a heartbeat now; revives a dead server. kNotFound when the id was
// never registered. Returns the row after the update.
[[nodiscard]] Result<Server> Heartbeat(Tx& tx, const std::string& server_id);

struct ComponentStatusUpdate {
  std::string server_id{};
  std::string component{};
  ComponentHealth status = ComponentHealth::kHealthy;
  // Set when degraded: becomes last_error_message/last_error_at.
  std::optional<std::string> error_message{};
  std::string metadata_json = "{}";
};

// Upserts (server_id, component): healthy sets last_success_at, degraded sets
// last_error_at/message; the other pair is kept as history.
[[nodiscard]] Status UpsertComponentStatus(Tx& tx, const ComponentStatusUpdate& update);

// Marks `active` servers whose last heartbeat is older than `silent_for` (or
// missing) as `dead`; returns their ids. The leader runs this.
[[nodiscard]] Result<std::vector<std::string>> MarkSilentServersDead(
    Tx& tx, std::chrono::seconds silent_for);

// Marks `draining` servers that have no pending or running operation as
// `drained`; returns their ids. The leader runs this.
[[nodiscard]] Result<std::vector<std::string>> MarkDrainedServers(Tx& tx);

struct ServerStatusChange {
  ServerStatus previous{};
  Server server{};
};

// Operator drain/activate (and the drained transition): sets the status.
// kNotFound for an unknown id.
[[nodiscard]] Result<ServerStatusChange> SetServerStatus(Tx& tx, const std::string& server_id,
                                                         ServerStatus status);

// kNotFound when missing. Includes components.
[[nodiscard]] Result<Server> GetServer(Tx& tx, const std::string& server_id);

struct ServerFilter {
  // Only servers pinning live volumes of this organization's projects
  // (reference GET /api/servers).
  std::optional<std::string> organization_id{};
};

// Ordered by hostname, then id. Includes components.
[[nodiscard]] Result<std::vector<Server>> ListServers(Tx& tx, const ServerFilter& filter = {});

struct EligibleWorker {
  std::string server_id{};
  std::string hostname{};
  std::optional<std::string> runtime{};
  // Live volumes pinned to it plus its pending/running operations.
  int load = 0;
};

struct WorkerEligibility {
  std::chrono::seconds max_heartbeat_age{30};
  std::string component = "worker";
  // Accepted metadata.runtime values; empty accepts any runtime.
  std::vector<std::string> runtimes{};
};

// Workers a restore or move may go to (reference rules): `active`, a
// heartbeat newer than max_heartbeat_age, the component healthy (with an
// accepted runtime). Least loaded first, then hostname.
[[nodiscard]] Result<std::vector<EligibleWorker>> ListEligibleWorkers(
    Tx& tx, const WorkerEligibility& rules = {});

}  // namespace kindling::db
