// OperationWorkloads: what a backup, restore or move asked with
// `stop_workload` does to the workload running on its volume. The API
// queues such an operation on the server whose VM holds the volume (see
// control/volume_service.h), so the attempt that starts it can stop it:
//
//   BeforeOperation  stops this worker's VM on the volume (power button,
//                    killed after the deployment's stop timeout) and records
//                    on the operation when the stop began
//                    (request_metadata.workload_stopped_at_ms) and how it
//                    went (workload_stop: outcome, elapsed_ms), so that the
//                    attempt that finishes the operation, here or on the
//                    server it is handed to (a restore elsewhere, a move),
//                    knows there is a workload to start again.
//   AfterOperation   once that operation has finished (succeeded or failed)
//                    and its volume is no longer busy here: starts the
//                    workload again on the volume's server (possibly a new
//                    one), waits until it is ready, and adds to the
//                    operation's result downtime_ms (from the stop to the
//                    new instance being ready) and workload_restarted, or
//                    workload_restart_error when it did not come back.
// A failed operation restarts the workload too: on the image the volume
// kept.
//
// Thread-safety: thread-safe; one call per operation attempt.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "db/database.h"
#include "db/operations.h"
#include "reconcile/workload_reconciler.h"

namespace kindling::reconcile {

// What an operation's request_metadata asks about workloads.
struct WorkloadRequest {
  bool stop_workload = false;
  // backup: the workload keeps running; the backup reads a reflink snapshot
  // taken with it paused (control/volume_service.h).
  bool live_snapshot = false;
  bool validate = false;  // restore, move: boot the verify mode on the new image
  // Set by the attempt that stopped the workload.
  std::optional<std::int64_t> stopped_at_ms{};

  static WorkloadRequest Parse(std::string_view request_metadata_json);
};

struct OperationWorkloadsOptions {
  // When the deployment does not say (stop_timeout_seconds 0).
  std::chrono::milliseconds default_stop_timeout{30'000};
  // Added to the deployment's boot timeout while waiting for the restart.
  std::chrono::milliseconds restart_margin{30'000};
  std::chrono::milliseconds poll_interval{100};
};

class OperationWorkloads {
 public:
  // REQUIRES: `db` and `reconciler` outlive this.
  OperationWorkloads(db::Database& db, WorkloadReconciler& reconciler,
                     OperationWorkloadsOptions options);

  // See above. No-op unless the operation asks stop_workload, is a backup,
  // restore or move, and a VM of this worker holds its volume. Errors: the
  // database (the operation then fails rather than run under a workload).
  // `lease_owner` is the claim's fencing token (RunningOperation).
  [[nodiscard]] Status BeforeOperation(db::Operation& op, const std::string& lease_owner);

  // See above. Never fails: problems are logged and written to the result.
  void AfterOperation(const std::string& operation_id);

 private:
  db::Database& db_;
  WorkloadReconciler& reconciler_;
  const OperationWorkloadsOptions options_;
};

}  // namespace kindling::reconcile
