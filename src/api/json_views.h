// JSON shapes of the reference system (kindling.md): Volume, Operation,
// Backup, server rows. Pure mapping; no secrets ever pass through here.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "control/backup_rescan.h"
#include "control/deployment_service.h"
#include "control/volume_service.h"
#include "db/auth.h"
#include "db/backups.h"
#include "db/operations.h"
#include "db/projects.h"
#include "db/quarantine.h"
#include "db/servers.h"

namespace kindling::api {

// RFC 3339 in UTC with microseconds ("2024-05-01T12:34:56.123456Z").
std::string FormatTime(db::Timestamp t);
nlohmann::json TimeOrNull(const std::optional<db::Timestamp>& t);
// Accepts RFC 3339 ("...T...Z" or with an offset) and PostgreSQL's form.
std::optional<db::Timestamp> ParseTime(std::string text);

nlohmann::json OperationJson(const db::Operation& op);
// backup_policy holds the reference's schedule, retention_count and
// pre_delete_backup_enabled, plus keep_hourly..keep_yearly (control/retention.h).
nlohmann::json VolumeJson(const control::VolumeView& view);
// GET .../volume/retention: {"policy": {keep_last..keep_yearly}, "kept": n,
// "dropped": n, "backups": [{"id", "kind", "completed_at", "keep", "reasons"}]}
// newest first.
nlohmann::json RetentionJson(const control::RetentionPreview& preview);
// The reference's Backup JSON plus project_volume_id, `damage` (null
// unless status is damaged: the damaged chunks and their image offsets),
// `pinned` (kept whatever the retention policy), and what the last verify
// found: `verified_at` and `verify_state` ("ok" | "damaged"), null until one
// finished.
nlohmann::json BackupJson(const db::Backup& backup);
// A quarantined volume image (volume_image_quarantine row).
nlohmann::json QuarantineJson(const db::QuarantineEntry& entry);
nlohmann::json ServerJson(const db::Server& server);
// A worker as a restore or move target: eligible, or why not.
nlohmann::json WorkerChoiceJson(const control::WorkerChoice& choice);
// A backup found in a store whose volume the database does not know, with
// `assignable` (its ids are UUIDs, so it can be given to a project).
nlohmann::json OrphanJson(const db::OrphanBackup& orphan);
// POST /api/platform/backups/rescan's answer: stores, manifests, known,
// in_flight, imported, orphaned (each with first_found), unreadable.
nlohmann::json RescanJson(const control::RescanReport& report);
nlohmann::json ProjectJson(const db::Project& project);
// A deployment with its status, hostname and newest instance.
nlohmann::json DeploymentJson(const control::DeploymentView& view);
nlohmann::json ApiKeyJson(const db::ApiKey& key);
nlohmann::json UserJson(const db::User& user);
nlohmann::json OrganizationJson(const db::Organization& organization);
nlohmann::json MemberJson(const db::Member& member);

}  // namespace kindling::api
