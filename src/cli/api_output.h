// Human-readable views of the API's JSON documents for the API commands
// (api_commands.cc): aligned tables and "label  value" blocks. Pure functions
// of the JSON; a missing or null field shows as "-", so an older or newer
// server never makes them fail.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace kindling::cli {

// Columns separated by two spaces, padded to the widest cell; one line per
// row, each ending in '\n'. Rows shorter than the header are padded.
std::string FormatTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows);

// "label  value" lines with the values aligned.
std::string FormatFields(const std::vector<std::pair<std::string, std::string>>& fields);

// A JSON value as one cell: strings on one line (newlines and tabs as
// spaces, other control characters shown as \x1b), null/missing/empty as
// "-", booleans as yes/no, numbers and the rest as compact JSON.
std::string Cell(const nlohmann::json& object, const std::string& key);

// What the API reported of a running operation's progress.
struct OperationProgress {
  std::string phase;
  std::uint64_t bytes_done = 0;
  std::uint64_t bytes_total = 0;
};
// The operation's progress when it reported a phase.
std::optional<OperationProgress> ProgressOf(const nlohmann::json& operation);

std::string ProjectsText(const nlohmann::json& projects);
std::string VolumeText(const nlohmann::json& volume);
// A volume's backups, with whether each is pinned and what its last verify
// found (VERIFIED: "ok <time>", "damaged <time>", "-" never); a damaged one
// gets a line per damaged chunk under its row (problem, chunk id, the first
// image offsets).
std::string BackupsText(const nlohmann::json& backups);
// One backup (an API answer such as pin-backup's), as its row of BackupsText.
std::string BackupText(const nlohmann::json& backup);
// GET .../volume/retention: the policy, then each backup newest first with
// keep/drop and the reasons.
std::string RetentionText(const nlohmann::json& preview);
// Backups of every volume of a project, with the volume and whether it is
// deleted; pinned, verified and damaged as in BackupsText.
std::string ProjectBackupsText(const nlohmann::json& backups);
// "corrupt chunk <id> at offsets 0, 4194304" for each chunk of a Backup's
// `damage`, one per element; empty when it has none.
std::vector<std::string> DamageLines(const nlohmann::json& backup);
// The operation's fields; a verify's `result.problems` shows as a count
// (VerifyProblemsText lists them).
std::string OperationText(const nlohmann::json& operation);
// One line per problem of a finished verify operation ("  corrupt chunk <id>
// at offset N (<key>): <message>"); empty when it found none.
std::string VerifyProblemsText(const nlohmann::json& operation);
// One line for a queued operation, e.g. "queued backup: operation <id>, backup <id>".
std::string QueuedText(const nlohmann::json& operation);
// A deployment (deploy, stop, start): its fields, its newest instance, and
// the error of either when there is one.
std::string DeploymentText(const nlohmann::json& deployment);
// A project's deployments, newest first: one row each with the newest
// instance's server and address; superseded ones say so in DESIRED, errors
// go under their row.
std::string DeploymentsText(const nlohmann::json& deployments);
// One short line (no '\n') for a followed deployment on a terminal: "web
// (canary): starting; instance starting on server 0190a2b4 at host:port".
std::string DeploymentStatusLine(const nlohmann::json& deployment);
std::string ServersText(const nlohmann::json& servers);
std::string AuditText(const nlohmann::json& events);
std::string BackupSettingsText(const nlohmann::json& settings);
std::string ProbeText(const nlohmann::json& probe);
std::string ApiKeysText(const nlohmann::json& keys);
// Quarantined images; held entries get their reason's detail under the row.
std::string QuarantineText(const nlohmann::json& entries);
// The entry a purge request answered with.
std::string PurgeRequestedText(const nlohmann::json& entry);
// A backup rescan's answer: what was imported, the orphans, what could not
// be read (each with its error), and a summary line.
std::string RescanText(const nlohmann::json& report);
// Orphan backups (their volume is unknown to the database).
std::string OrphansText(const nlohmann::json& orphans);
// The answer to an orphan's assignment.
std::string AssignedText(const nlohmann::json& assigned);
// The store history; `current_url` (may be empty) is marked as current.
std::string BackupStoresText(const nlohmann::json& stores, const std::string& current_url);

// Users, organisations and members (the API's answers) as tables; one of
// each as a one-row table; a revoked key and a removed member as a line.
std::string UsersText(const nlohmann::json& users);
std::string UserText(const nlohmann::json& user);
std::string OrganizationsText(const nlohmann::json& orgs);
std::string OrganizationText(const nlohmann::json& org);
std::string MembersText(const nlohmann::json& members);
std::string MemberText(const nlohmann::json& member);
std::string RevokedKeyText(const nlohmann::json& key);
std::string RemovedMemberText(const nlohmann::json& member);

}  // namespace kindling::cli
