// The runbook's validation checklist (section 3, and the checks section 1
// ends with), over the HTTP API: what `kindling admin validate` runs.
//
// Steps, in order, each with an outcome and its evidence:
//   api_meta            GET /api/meta answers (needs a platform admin's key)
//   server_heartbeats   GET /api/platform/servers: every active server's
//                       heartbeat is healthy (none stale, at least one)
//   dsn_files_agree     every server that reports one (worker component
//                       metadata.dsn_sha256) uses the same DSN as the others
//                       and as this host, when this host's DSN is given
//   dsn_reaches_primary this host's DSN (when given) reaches a server that is
//                       not in recovery: fails for a standby, or a restored
//                       cluster not promoted yet, or when it cannot connect
//   control_plane_backup
//                       GET /api/platform/health: the last check of the
//                       control-plane backups is ok and fresh (evidence: the
//                       last backup's label and age, the last archived WAL's
//                       age); fails with its problems when not ok or stale;
//                       skipped only when no process ever reported one
//   canary              the canary project's workload (the canary guest
//                       image) runs and answers through the edge within the
//                       canary timeout: deploys it (image canary) when its
//                       current deployment is not running (one pending or
//                       starting is waited for), or always with
//                       `redeploy`, and polls until it runs; then GET
//                       /healthz through the edge (Host: the deployment's
//                       hostname) must answer 200, asked again while the
//                       edge answers 404/502/503/504 or cannot be reached
//                       (a fresh route takes a moment). Evidence: hostname,
//                       status, whether it was (re)deployed, seconds until
//                       the answer. Fails when no edge URL is given, the
//                       project's current deployment runs another image (it
//                       is never replaced), no deployment could be made, it
//                       did not run within the timeout, or the edge did not
//                       answer 200 within it (its last status, or why it
//                       could not be reached). Skipped without a canary
//                       project
//   volume_records      the in-guest record check of the volume project's
//                       canary: its current deployment must run the canary
//                       image; GET /records/verify through the edge (retried
//                       as above, within the canary timeout) passes when no
//                       record is damaged (evidence: records, intact), fails
//                       with the damaged ids, or when it cannot be asked (no
//                       edge URL, no deployment, not running, another image,
//                       no 200 answer). Skipped without a volume project
// A skipped step is reported as skipped, never as passed. The edge steps
// report their evidence also as `details` (ValidationReport::ToJson).
//
// Only the canary step changes anything (its deploy); the rest reads.
//
// Thread-safety: free function; uses the client it is given (and an edge
// client of its own).
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "client/api_client.h"

namespace kindling::client {

struct ValidationStep {
  enum class Outcome { kPass, kFail, kSkip };
  std::string name;
  Outcome outcome = Outcome::kSkip;
  std::string evidence;  // what was seen, for the operator
  // The same as fields, for scripts (null: none; the edge steps have some).
  nlohmann::json details{};
};

std::string_view OutcomeName(ValidationStep::Outcome outcome);  // pass, fail, skip

struct ValidationReport {
  std::vector<ValidationStep> steps;
  // No step failed.
  bool passed() const;
  nlohmann::json ToJson() const;
};

struct ValidationInputs {
  // Digest of the DSN this host uses (service::DsnDigest of its DSN file),
  // when readable: compared with what the servers report.
  std::optional<std::string> local_dsn_sha256{};
  // What connecting with that DSN found (the caller connects: this file
  // knows no SQL): nullopt when no DSN was given.
  struct DsnProbe {
    std::string error{};  // empty: connected
    bool in_recovery = false;
  };
  std::optional<DsnProbe> local_dsn_probe{};

  // The edge steps. The project whose workload is the canary (empty: step
  // canary skipped) and the project whose volume's records are checked
  // (empty: step volume_records skipped): project UUIDs.
  std::string canary_project_id{};
  std::string volume_project_id{};
  // The edge to go through, http(s)://host[:port]; needed by both steps.
  std::string edge_url{};
  // PEM CA certificates to verify an https:// edge with; empty: the system store.
  std::string edge_ca_file{};
  // Deploy the canary even when it runs.
  bool redeploy = false;
  // Each edge step's time limit: deploy, run and answer within it.
  std::chrono::milliseconds canary_timeout{std::chrono::seconds(120)};
  // Between two polls of the deployment, and two questions to the edge.
  std::chrono::milliseconds poll_interval{std::chrono::seconds(1)};
  // True ends a wait at once: the step fails ("interrupted").
  std::function<bool()> cancelled{};
};

ValidationReport ValidateCluster(ApiClient& client, const ValidationInputs& inputs);

}  // namespace kindling::client
