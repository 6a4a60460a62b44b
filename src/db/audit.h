// cluster_audit_events: the admin-action trail.
//
// Events are written in the caller's transaction, so an action and its event
// commit or roll back together (the reference writes them best-effort,
// outside). The reference's operator query works unchanged:
//   SELECT action, resource_type, resource_id, details, created_at
//   FROM cluster_audit_events ORDER BY created_at DESC LIMIT 50;
// Contract: callers never put secret values into details.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "db/database.h"
#include "db/types.h"

namespace kindling::db {

struct AuditEventInput {
  std::optional<std::string> user_id{};  // nullopt for system actions (sweeps)
  std::string action{};                  // "server.drain", "volume.backup.queued", ...
  std::string resource_type{};           // "server", "project_volume", "cluster_settings"...
  std::optional<std::string> resource_id{};
  std::string details_json = "{}";  // a JSON object
  std::optional<std::string> request_ip{};
  std::optional<std::string> user_agent{};
};

struct AuditEvent {
  std::string id{};
  std::optional<std::string> user_id{};
  std::string action{};
  std::string resource_type{};
  std::optional<std::string> resource_id{};
  std::string details_json{};
  std::optional<std::string> request_ip{};
  std::optional<std::string> user_agent{};
  Timestamp created_at{};
};

// Returns the new event's id. kInvalidArgument for an empty action or
// details that are not a JSON object.
[[nodiscard]] Result<std::string> InsertAuditEvent(Tx& tx, const AuditEventInput& event);

inline constexpr int kMaxAuditListLimit = 1000;

struct AuditFilter {
  std::optional<std::string> action{};
  std::optional<std::string> resource_type{};
  std::optional<std::string> resource_id{};
  std::optional<std::string> user_id{};
  std::optional<Timestamp> since{};   // created_at >= since
  std::optional<Timestamp> before{};  // created_at < before (paging backwards)
  int limit = 50;                     // clamped to [1, kMaxAuditListLimit]
};

// Newest first.
[[nodiscard]] Result<std::vector<AuditEvent>> ListAuditEvents(Tx& tx, const AuditFilter& filter);

}  // namespace kindling::db
