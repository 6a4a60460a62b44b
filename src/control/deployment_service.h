// DeploymentService: deploying, stopping and starting a project's workload,
// without HTTP. Like VolumeService, every action checks, changes and audits
// in ONE transaction: a refused request changes nothing.
//
// A workload runs where its project's volume is (the volume is attached to
// the workload's VM as a block device), so deploy and start need:
//   409 volume_unavailable  no live volume, or it is not pinned, or its
//                           server is dead, or the volume is unavailable
//   409 volume_busy         an operation works on the volume (a backup with
//                           stop_workload restarts the workload itself)
//   400 validation_error    unknown image (the volume's worker lists the
//                           guest images it has in its component metadata,
//                           `images`), bad service name or resources
//   404 not_found           stop/start without a current deployment
// Deploy supersedes the current deployment of the service (its worker stops
// it before the new one starts: one writer per volume) and queues a pending
// instance on the volume's server. Stop and start change the desired state;
// start queues a new instance when none is live (on the volume's current
// server, which a restore or move may have changed). Audited
// deployment.create, deployment.stop, deployment.start.
//
// Thread-safety: thread-safe (state lives in the database).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "control/control_error.h"
#include "control/volume_service.h"
#include "db/database.h"
#include "db/workloads.h"

namespace kindling::control {

// A deployment as the API shows it.
struct DeploymentView {
  db::Deployment deployment{};
  std::string project_name{};
  // The newest instance, if any.
  std::optional<db::Instance> instance{};
  // "<service>-<project slug>.<service_base_domain>".
  std::string hostname{};
};

struct DeployRequest {
  std::string image{};
  std::string service = "web";
  std::optional<int> memory_mib{};
  std::optional<int> vcpus{};
  std::optional<int> boot_timeout_seconds{};
  std::optional<int> stop_timeout_seconds{};
};

class DeploymentService {
 public:
  explicit DeploymentService(db::Database& db) : db_(db) {}

  [[nodiscard]] ControlResult<DeploymentView> Deploy(const Actor& actor,
                                                     const std::string& project_id,
                                                     const DeployRequest& request);
  // Newest first.
  [[nodiscard]] ControlResult<std::vector<DeploymentView>> List(const std::string& project_id);
  [[nodiscard]] ControlResult<DeploymentView> Stop(const Actor& actor,
                                                   const std::string& project_id,
                                                   const std::string& service = "web");
  [[nodiscard]] ControlResult<DeploymentView> Start(const Actor& actor,
                                                    const std::string& project_id,
                                                    const std::string& service = "web");

 private:
  db::Database& db_;
};

}  // namespace kindling::control
