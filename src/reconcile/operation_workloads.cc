#include "reconcile/operation_workloads.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "db/volumes.h"
#include "db/workloads.h"

namespace kindling::reconcile {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

std::int64_t NowMs() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool StopsWorkloads(db::OperationKind kind) {
  return kind == db::OperationKind::kBackup || kind == db::OperationKind::kRestore ||
         kind == db::OperationKind::kMove;
}

}  // namespace

WorkloadRequest WorkloadRequest::Parse(std::string_view request_metadata_json) {
  WorkloadRequest request;
  const json metadata = json::parse(request_metadata_json, nullptr, false);
  if (!metadata.is_object()) return request;
  auto flag = [&](const char* key) {
    return metadata.contains(key) && metadata[key].is_boolean() && metadata[key].get<bool>();
  };
  request.stop_workload = flag("stop_workload");
  request.live_snapshot = flag("live_snapshot");
  request.validate = flag("validate");
  if (metadata.contains("workload_stopped_at_ms") &&
      metadata["workload_stopped_at_ms"].is_number_integer())
    request.stopped_at_ms = metadata["workload_stopped_at_ms"].get<std::int64_t>();
  return request;
}

OperationWorkloads::OperationWorkloads(db::Database& db, WorkloadReconciler& reconciler,
                                       OperationWorkloadsOptions options)
    : db_(db), reconciler_(reconciler), options_(std::move(options)) {}

Status OperationWorkloads::BeforeOperation(db::Operation& op, const std::string& lease_owner) {
  if (!StopsWorkloads(op.kind)) return OkStatus();
  const WorkloadRequest request = WorkloadRequest::Parse(op.request_metadata_json);
  if (!request.stop_workload) return OkStatus();
  KINDLING_ASSIGN_OR_RETURN(const std::optional<db::Deployment> deployment,
                            db_.Transact([&](db::Tx& tx) -> Result<std::optional<db::Deployment>> {
                              KINDLING_ASSIGN_OR_RETURN(db::Volume volume,
                                                        db::GetVolume(tx, op.project_volume_id));
                              return db::FindCurrentDeployment(tx, volume.project_id);
                            }));
  const milliseconds timeout = deployment && deployment->stop_timeout_seconds > 0
                                   ? milliseconds(deployment->stop_timeout_seconds * 1000LL)
                                   : options_.default_stop_timeout;
  const std::int64_t began = NowMs();
  KINDLING_ASSIGN_OR_RETURN(
      const OperationStop stop,
      reconciler_.StopForOperation(op.project_volume_id, timeout,
                                   "the " + std::string(db::Name(op.kind)) + " " + op.id));
  if (!stop.stopped) return OkStatus();
  spdlog::info("worker: stopped the workload on volume {} for {} {} in {} ms ({})",
               op.project_volume_id, db::Name(op.kind), op.id, stop.elapsed.count(),
               stop.outcome ? vmm::StopOutcomeName(*stop.outcome) : "unknown");
  json metadata = json::parse(op.request_metadata_json, nullptr, false);
  if (!metadata.is_object()) metadata = json::object();
  const json record = {
      // An earlier attempt's stop is when the downtime began.
      {"workload_stopped_at_ms", request.stopped_at_ms.value_or(began)},
      {"workload_stop",
       {{"outcome", stop.outcome ? json(vmm::StopOutcomeName(*stop.outcome)) : json(nullptr)},
        {"elapsed_ms", stop.elapsed.count()},
        {"instance_id", stop.instance_id ? json(*stop.instance_id) : json(nullptr)}}}};
  KINDLING_RETURN_IF_ERROR(db_.Transact([&](db::Tx& tx) {
    return db::MergeOperationRequest(tx, op.id, lease_owner, record.dump());
  }));
  metadata.update(record);
  op.request_metadata_json = metadata.dump();
  return OkStatus();
}

void OperationWorkloads::AfterOperation(const std::string& operation_id) {
  auto op = db_.Transact([&](db::Tx& tx) { return db::GetOperation(tx, operation_id); });
  if (!op) {
    spdlog::warn("worker: after operation {}: {}", operation_id, op.error().message());
    return;
  }
  if (op->status != db::OperationStatus::kSucceeded && op->status != db::OperationStatus::kFailed)
    return;  // handed to another server, or back to the queue
  const WorkloadRequest request = WorkloadRequest::Parse(op->request_metadata_json);
  if (!request.stopped_at_ms) return;
  const json result = json::parse(op->result_metadata_json, nullptr, false);
  if (result.is_object() && result.contains("workload_restarted")) return;  // done already

  json added = {{"workload_restarted", false}};
  auto queued = reconciler_.RestartAfterOperation(op->project_volume_id);
  if (!queued) {
    added["workload_restart_error"] = queued.error().message();
  } else if (queued->empty()) {
    added["workload_restart_error"] =
        "no deployment of the project wants to run any more (stopped or replaced meanwhile)";
  } else {
    const db::Instance& first = queued->front();
    auto deployment =
        db_.Transact([&](db::Tx& tx) { return db::GetDeployment(tx, first.deployment_id); });
    const milliseconds boot =
        deployment ? milliseconds(deployment->boot_timeout_seconds * 1000LL) : milliseconds(0);
    const auto deadline = SteadyClock::now() + boot + options_.restart_margin;
    for (;;) {
      auto instance = db_.Transact([&](db::Tx& tx) { return db::GetInstance(tx, first.id); });
      if (instance && instance->status == db::WorkloadStatus::kRunning && instance->ready_at) {
        const std::int64_t ready_ms =
            std::chrono::duration_cast<milliseconds>(instance->ready_at->time_since_epoch())
                .count();
        added["workload_restarted"] = true;
        added["downtime_ms"] = std::max<std::int64_t>(0, ready_ms - *request.stopped_at_ms);
        added["workload_server_id"] = instance->server_id;
        added["workload_instance_id"] = instance->id;
        break;
      }
      if (instance && (instance->status == db::WorkloadStatus::kFailed ||
                       instance->status == db::WorkloadStatus::kStopped)) {
        added["workload_restart_error"] =
            "the workload's new instance " + instance->id + " ended " +
            std::string(db::Name(instance->status)) +
            (instance->error ? ": " + instance->error->substr(0, 500) : std::string());
        break;
      }
      if (SteadyClock::now() >= deadline) {
        added["workload_restart_error"] =
            "the workload's new instance " + first.id + " was not ready in time" +
            (instance ? " (" + std::string(db::Name(instance->status)) + ")" : std::string());
        break;
      }
      std::this_thread::sleep_for(options_.poll_interval);
    }
  }
  if (added.value("workload_restarted", false)) {
    spdlog::info("worker: the workload of volume {} is back after {} ms (operation {})",
                 op->project_volume_id, added["downtime_ms"].get<std::int64_t>(), operation_id);
  } else {
    spdlog::warn("worker: the workload of volume {} did not come back after operation {}: {}",
                 op->project_volume_id, operation_id,
                 added.value("workload_restart_error", std::string()));
  }
  if (auto written = db_.Transact([&](db::Tx& tx) {
        return db::MergeFinishedOperationResult(tx, operation_id, added.dump());
      });
      !written)
    spdlog::warn("worker: cannot record the restart on {}: {}", operation_id,
                 written.error().message());
}

}  // namespace kindling::reconcile
