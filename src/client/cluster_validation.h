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
//   canary              skipped, with the reason, until the cluster has
//                       workloads
// A skipped step is reported as skipped, never as passed.
//
// Thread-safety: free function; uses the client it is given.
#pragma once

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
};

ValidationReport ValidateCluster(ApiClient& client, const ValidationInputs& inputs);

}  // namespace kindling::client
