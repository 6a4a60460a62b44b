#include "reconcile/leader.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "control/backup_schedule.h"
#include "control/volume_service.h"
#include "db/audit.h"
#include "db/backups.h"
#include "db/notifications.h"
#include "db/operations.h"
#include "db/volumes.h"
#include "db/workloads.h"
#include "reconcile/workload_reconciler.h"

namespace kindling::reconcile {
namespace {

using json = nlohmann::json;

// What a sweep did with a volume's due slot, and why it was missed.
enum class SlotAction { kQueued, kMissed, kPlanned, kLeft };
struct SlotOutcome {
  SlotAction action = SlotAction::kLeft;
  std::string reason{};
};

db::Timestamp ToTimestamp(std::chrono::system_clock::time_point t) {
  return std::chrono::time_point_cast<std::chrono::microseconds>(t);
}

Status AuditSystem(db::Tx& tx, const std::string& action, const std::string& volume_id,
                   const json& details, const std::string& resource_type = "project_volume") {
  auto id = db::InsertAuditEvent(tx, db::AuditEventInput{.action = action,
                                                         .resource_type = resource_type,
                                                         .resource_id = volume_id,
                                                         .details_json = details.dump()});
  if (!id) return std::unexpected(id.error());
  return OkStatus();
}

// Fails `op` (no lease owner: the sweep's authority) and settles its volume
// as a worker's failure would.
Status FailWithVolume(db::Tx& tx, const db::Operation& op, const std::string& error) {
  auto failed = db::FailOperation(tx, op.id, std::nullopt, error);
  if (!failed) return std::unexpected(failed.error());
  KINDLING_ASSIGN_OR_RETURN(db::Volume volume, db::GetVolume(tx, op.project_volume_id));
  const bool unusable =
      volume.health == db::VolumeHealth::kMissing || volume.health == db::VolumeHealth::kCorrupt;
  auto settled = db::UpdateVolumeState(
      tx, volume.id,
      db::VolumeStateUpdate{.status = unusable ? db::VolumeStatus::kUnavailable
                                      : volume.attached_vm_id
                                          ? db::VolumeStatus::kAttached  // a live backup's
                                          : db::VolumeStatus::kDetached,
                            .last_error = std::optional<std::optional<std::string>>(error)});
  if (!settled) return std::unexpected(settled.error());
  return AuditSystem(tx, "volume." + std::string(db::Name(op.kind)) + ".failed", volume.id,
                     {{"operation_id", op.id}, {"error", error}, {"by", "leader"}});
}

// True when a move's backup phase is over (its backup succeeded), so what is
// left is the restore on the target.
Result<bool> InRestorePhase(db::Tx& tx, const db::Operation& op) {
  if (op.kind == db::OperationKind::kRestore) return true;
  if (op.kind != db::OperationKind::kMove || !op.backup_id) return false;
  KINDLING_ASSIGN_OR_RETURN(db::Backup backup, db::GetBackup(tx, *op.backup_id));
  return backup.status == db::BackupStatus::kSucceeded;
}

}  // namespace

Result<std::vector<db::EligibleWorker>> ListRestoreTargets(db::Tx& tx,
                                                           const db::WorkerEligibility& rules) {
  KINDLING_ASSIGN_OR_RETURN(std::vector<db::EligibleWorker> workers,
                            db::ListEligibleWorkers(tx, rules));
  std::erase_if(workers,
                [](const db::EligibleWorker& w) { return w.runtime.value_or("").empty(); });
  return workers;
}

Leader::Leader(db::Database& db, LeaderOptions options) : db_(db), options_(std::move(options)) {}

Leader::~Leader() { Stop(); }

void Leader::Start() {
  {
    std::lock_guard lock(mu_);
    stopping_ = false;
  }
  thread_ = std::thread([this] { Loop(); });
}

void Leader::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (on_leading_thread_.joinable()) on_leading_thread_.join();
}

void Leader::BeginLeading() {
  {
    std::lock_guard lock(mu_);
    leading_since_ = options_.now();
  }
  spdlog::info("leader: start grace of {}s before any server is marked dead",
               std::max(options_.start_grace, options_.silent_after).count());
  if (!options_.on_leading || on_leading_running_.load()) return;
  if (on_leading_thread_.joinable()) on_leading_thread_.join();
  on_leading_running_ = true;
  on_leading_thread_ = std::thread([this] {
    options_.on_leading();
    on_leading_running_ = false;
  });
}

bool Leader::InStartGrace() const {
  std::optional<std::chrono::system_clock::time_point> since;
  {
    std::lock_guard lock(mu_);
    since = leading_since_;
  }
  return since && options_.now() < *since + std::max(options_.start_grace, options_.silent_after);
}

void Leader::Loop() {
  std::unique_ptr<db::SessionLock> lock_session;
  auto next_schedule = std::chrono::steady_clock::now();
  for (;;) {
    {
      std::unique_lock lock(mu_);
      if (stopping_) break;
    }
    if (!lock_session) {
      auto acquired = db::SessionLock::TryAcquire(db_.options().dsn, db::kLeaderLockKey);
      if (!acquired) {
        spdlog::warn("leader: {}", acquired.error().message());
      } else if (*acquired) {
        lock_session = std::move(*acquired);
        is_leader_ = true;
        spdlog::info("leader: this process is the leader");
        BeginLeading();
      }
    } else if (auto alive = lock_session->Check(); !alive) {
      // The lock died with its session: another process may lead now.
      spdlog::warn("leader: lost the leader lock: {}", alive.error().message());
      lock_session.reset();
      is_leader_ = false;
    }
    if (lock_session) {
      const bool schedules = std::chrono::steady_clock::now() >= next_schedule;
      if (schedules) next_schedule = std::chrono::steady_clock::now() + options_.schedule_interval;
      auto report = SweepOnce(schedules);
      if (!report) spdlog::warn("leader: sweep: {}", report.error().message());
    }
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, options_.sweep_interval, [this] { return stopping_; });
  }
  is_leader_ = false;
}

Result<SweepReport> Leader::SweepOnce(bool with_schedules) {
  SweepReport report;
  // Heartbeats are not trustworthy yet: see the start grace in leader.h.
  const bool grace = InStartGrace();
  report.in_start_grace = grace;
  if (!grace) {
    KINDLING_ASSIGN_OR_RETURN(report.servers_marked_dead, db_.Transact([&](db::Tx& tx) {
      return db::MarkSilentServersDead(tx, options_.silent_after);
    }));
  }
  for (const std::string& id : report.servers_marked_dead)
    spdlog::warn("leader: server {} silent for {}s: marked dead", id,
                 options_.silent_after.count());
  KINDLING_ASSIGN_OR_RETURN(
      report.servers_drained, db_.Transact([&](db::Tx& tx) -> Result<std::vector<std::string>> {
        KINDLING_ASSIGN_OR_RETURN(std::vector<std::string> drained, db::MarkDrainedServers(tx));
        for (const std::string& id : drained) {
          KINDLING_RETURN_IF_ERROR(
              AuditSystem(tx, "server.drained", id,
                          json{{"previous_status", "draining"}, {"status", "drained"}}, "server"));
        }
        return drained;
      }));
  for (const std::string& id : report.servers_drained)
    spdlog::info("leader: server {} drained: no operation left on it", id);
  if (!grace) KINDLING_RETURN_IF_ERROR(EndLostWorkloads(report));

  // Decides one operation's fate inside the transaction holding its lock.
  auto handle = [&](db::Tx& tx, const db::Operation& op, bool lease_expired,
                    std::vector<std::string>& requeued, std::vector<std::string>& failed,
                    std::vector<std::string>& deferred) -> Status {
    const std::string executing = op.server_id.value_or("");
    // Fails the operation; within the start grace, gives it back to the
    // server that held it instead, or leaves it for after the grace.
    auto fail = [&](const std::string& error) -> Status {
      if (!grace) {
        KINDLING_RETURN_IF_ERROR(FailWithVolume(tx, op, error));
        failed.push_back(op.id);
        return OkStatus();
      }
      if (lease_expired && !executing.empty()) {
        auto back = db::RequeueOperation(tx, op.id, executing);
        if (!back) return std::unexpected(back.error());
        spdlog::warn(
            "leader: re-queued {} {} on server {}, which held it (start grace; otherwise: {})",
            db::Name(op.kind), op.id, executing, error);
        requeued.push_back(op.id);
        return OkStatus();
      }
      spdlog::info("leader: {} {} waits for the end of the start grace ({})", db::Name(op.kind),
                   op.id, error);
      deferred.push_back(op.id);
      return OkStatus();
    };
    if (lease_expired && op.attempts >= options_.max_attempts && !grace) {
      return fail("operation abandoned after " + std::to_string(op.attempts) +
                  " attempts: the worker on server " + executing +
                  " stopped renewing its lease (killed or hung)");
    }
    KINDLING_ASSIGN_OR_RETURN(bool restore_phase, InRestorePhase(tx, op));
    KINDLING_ASSIGN_OR_RETURN(db::Volume volume, db::GetVolume(tx, op.project_volume_id));
    const bool old_pending =
        !lease_expired && op.updated_at <= ToTimestamp(std::chrono::system_clock::now() -
                                                       options_.stuck_pending_after);
    std::string target;
    if (op.kind == db::OperationKind::kAdopt) {
      // The quarantined image lives on the server the operation was queued
      // for: nobody else can adopt it.
      auto server = db::GetServer(tx, executing);
      if (!server && !server.error().is_not_found()) return std::unexpected(server.error());
      if (!server || server->status == db::ServerStatus::kDead) {
        return fail("server " + executing +
                    " holding the quarantined image is dead; the adoption can run again once it "
                    "is back");
      }
      target = executing;
    } else if (!restore_phase && op.kind != db::OperationKind::kVerify) {
      // The image lives on the pinned server: nobody else can do this.
      if (!volume.server_id) return fail("volume is not pinned to a server; nothing to back up");
      auto server = db::GetServer(tx, *volume.server_id);
      if (!server && !server.error().is_not_found()) return std::unexpected(server.error());
      if (!server || server->status == db::ServerStatus::kDead) {
        return fail("server " + *volume.server_id + " holding the volume is dead; the " +
                    std::string(db::Name(op.kind)) + " can run again once it is back");
      }
      target = *volume.server_id;
    } else {
      KINDLING_ASSIGN_OR_RETURN(std::vector<db::EligibleWorker> workers,
                                ListRestoreTargets(tx, options_.eligibility));
      if (workers.empty()) {
        return fail(
            "no eligible worker to restore the volume on (none active, healthy and "
            "heartbeating)");
      }
      const auto eligible = [&](const std::string& id) {
        return std::ranges::any_of(workers,
                                   [&](const db::EligibleWorker& w) { return w.server_id == id; });
      };
      if (op.target_requested && op.target_server_id) {
        // The operator chose where the volume goes: retry there or not at all.
        if (!eligible(*op.target_server_id)) {
          return fail("the selected target server " + *op.target_server_id +
                      " stopped working on the " + std::string(db::Name(op.kind)) +
                      " and is not eligible now (not active, healthy and heartbeating); queue it "
                      "again, to that server once it is back or to another one");
        }
        target = *op.target_server_id;
      } else {
        // After a lost lease, prefer another worker than the one that lost it;
        // a pending operation stays where it is when that server is eligible.
        target = workers.front().server_id;
        for (const db::EligibleWorker& w : workers) {
          if ((w.server_id == executing) != lease_expired) {
            target = w.server_id;
            break;
          }
        }
      }
    }
    // A pending operation on a server still expected to pick it up (draining
    // servers finish their work) is left alone until it is really stuck.
    if (!lease_expired && target == executing && !old_pending) return OkStatus();
    // A restore runs on its destination: re-aiming it moves the destination
    // too. (A move's restore phase runs on the target; its backup phase, on
    // the pinned server, never gets here with restore_phase set.)
    std::optional<std::string> new_destination;
    if (restore_phase && op.target_server_id && op.target_server_id != target)
      new_destination = target;
    auto moved = db::RequeueOperation(tx, op.id, target, new_destination);
    if (!moved) return std::unexpected(moved.error());
    spdlog::warn("leader: re-queued {} {} on server {} ({})", db::Name(op.kind), op.id, target,
                 lease_expired ? "lease expired" : "stuck pending");
    requeued.push_back(op.id);
    return OkStatus();
  };

  auto sweep_ops = [&](bool expired) -> Status {
    std::vector<std::string> requeued;
    std::vector<std::string> failed;
    std::vector<std::string> deferred;
    Status swept = db_.Transact([&](db::Tx& tx) -> Status {
      requeued.clear();
      failed.clear();
      deferred.clear();
      auto ops = expired ? db::ListExpiredLeases(tx)
                         : db::ListStuckPendingOperations(tx, options_.stuck_pending_after);
      if (!ops) return std::unexpected(ops.error());
      for (const db::Operation& op : *ops)
        KINDLING_RETURN_IF_ERROR(handle(tx, op, expired, requeued, failed, deferred));
      return OkStatus();
    });
    if (!swept) return swept;
    report.requeued.insert(report.requeued.end(), requeued.begin(), requeued.end());
    report.failed.insert(report.failed.end(), failed.begin(), failed.end());
    report.deferred.insert(report.deferred.end(), deferred.begin(), deferred.end());
    return OkStatus();
  };
  KINDLING_RETURN_IF_ERROR(sweep_ops(true));
  KINDLING_RETURN_IF_ERROR(sweep_ops(false));
  if (with_schedules) KINDLING_RETURN_IF_ERROR(ScheduleBackups(report));
  return report;
}

Status Leader::EndLostWorkloads(SweepReport& report) {
  KINDLING_ASSIGN_OR_RETURN(std::vector<db::Vm> vms, db_.Transact([](db::Tx& tx) {
    return db::ListVms(tx, db::VmFilter{.live_only = true, .on_dead_servers = true});
  }));
  for (const db::Vm& vm : vms) {
    std::string error;
    auto ended = db_.Transact([&](db::Tx& tx) -> Result<bool> {
      // The volume's row first, as every writer of a VM's rows locks them.
      std::optional<db::Volume> volume;
      if (vm.project_volume_id) {
        KINDLING_ASSIGN_OR_RETURN(volume, db::GetVolume(tx, *vm.project_volume_id, true));
      }
      KINDLING_ASSIGN_OR_RETURN(db::Server server, db::GetServer(tx, vm.server_id));
      if (server.status != db::ServerStatus::kDead) return false;  // it heartbeated meanwhile
      const std::string worker = server.hostname + " (" + server.id + ")";
      error = "the worker " + worker + " died while it ran";
      // The image lives on the dead server: nobody else can run the
      // workload until it is back (or the volume is restored elsewhere).
      const bool image_there = volume && volume->server_id == vm.server_id;
      KINDLING_ASSIGN_OR_RETURN(
          db::EndedVm lost,
          db::EndLostVm(
              tx, db::LostVm{.vm_id = vm.id,
                             .error = error,
                             .volume_status = image_there ? db::VolumeStatus::kUnavailable
                                                          : db::VolumeStatus::kDetached,
                             .volume_error = image_there ? DeadWorkerVolumeError(worker) : error}));
      if (!lost.ended) return false;
      json details = {{"vm_id", vm.id},
                      {"server_id", server.id},
                      {"hostname", server.hostname},
                      {"error", error},
                      {"by", "leader"}};
      std::string resource_type = "vm";
      std::string resource_id = vm.id;
      if (lost.instance) {
        // The deployment is left stopped (desired state kept), as a stop for
        // an operation leaves it: the worker queues it again when it is back
        // with the image (workload_reconciler.h), an operator's start after
        // a restore elsewhere.
        KINDLING_ASSIGN_OR_RETURN(db::Deployment deployment,
                                  db::GetDeployment(tx, lost.instance->deployment_id, true));
        KINDLING_ASSIGN_OR_RETURN(
            auto live, db::ListInstances(tx, db::InstanceFilter{.deployment_id = deployment.id,
                                                                .live_only = true}));
        if (live.empty()) {
          const bool wanted =
              !deployment.superseded_at && deployment.desired_state == db::DesiredState::kRunning;
          KINDLING_RETURN_IF_ERROR(db::UpdateDeployment(
              tx, deployment.id,
              db::DeploymentUpdate{
                  .status = db::WorkloadStatus::kStopped,
                  .error = db::SetTo(wanted && image_there
                                         ? error + "; it starts again when that worker is back"
                                         : error)}));
        }
        details["instance_id"] = lost.instance->id;
        details["deployment_id"] = deployment.id;
        details["project_id"] = deployment.project_id;
        resource_type = "deployment";
        resource_id = deployment.id;
      }
      if (lost.volume) {
        details["volume_id"] = lost.volume->id;
        details["volume_status"] = std::string(db::Name(lost.volume->status));
      }
      KINDLING_RETURN_IF_ERROR(
          AuditSystem(tx, "workload.lost", resource_id, details, resource_type));
      return true;
    });
    if (!ended) {
      // The next sweep tries again; the other steps run meanwhile.
      spdlog::warn("leader: recording lost VM {}: {}", vm.id, ended.error().message());
      continue;
    }
    if (!*ended) continue;
    spdlog::warn("leader: VM {} lost: {}", vm.id, error);
    report.workloads_lost.push_back(vm.id);
  }
  return OkStatus();
}

Status Leader::ScheduleBackups(SweepReport& report) {
  KINDLING_ASSIGN_OR_RETURN(std::vector<db::Volume> volumes,
                            db_.Transact([&](db::Tx& tx) { return db::ListVolumes(tx); }));
  const auto now = std::chrono::floor<std::chrono::seconds>(options_.now());
  for (const db::Volume& listed : volumes) {
    auto plan = control::BackupSchedulePlan::Compile(control::ScheduleSpecOf(listed));
    if (!plan) {
      // The API validates schedules; a row changed by hand may not.
      spdlog::warn("leader: volume {} has a schedule that does not compile: {}", listed.id,
                   plan.error().message());
      continue;
    }
    if (!plan->scheduled() || listed.deleted_at) continue;
    if (listed.backup_next_at && *listed.backup_next_at > db::Timestamp(now)) continue;
    auto outcome = db_.Transact([&](db::Tx& tx) -> Result<SlotOutcome> {
      KINDLING_ASSIGN_OR_RETURN(db::Volume v, db::GetVolume(tx, listed.id, /*for_update=*/true));
      // Another process moved the slot, or the schedule changed: its turn.
      if (v.backup_next_at != listed.backup_next_at ||
          control::ScheduleSpecOf(v).kind != control::ScheduleSpecOf(listed).kind ||
          v.backup_window != listed.backup_window || v.deleted_at)
        return SlotOutcome{};
      const auto next = control::NextBackupAt(*plan, v.id, now);
      if (!v.backup_next_at) {
        // No slot yet (a schedule set in SQL): the first comes.
        KINDLING_RETURN_IF_ERROR(db::MoveBackupNextAt(tx, v.id, std::nullopt, next));
        return SlotOutcome{.action = SlotAction::kPlanned};
      }
      const auto slot_start = std::chrono::floor<std::chrono::seconds>(*v.backup_next_at);
      const auto slot = plan->SlotStartingAt(v.id, slot_start);
      // The slot's window; a slot the schedule no longer has counts as open.
      const bool window_open = !slot || now < slot->ends;
      std::string busy;
      bool live = false;
      if (!v.server_id) {
        busy = "the volume has no server";
      } else if (v.status != db::VolumeStatus::kDetached &&
                 v.status != db::VolumeStatus::kAvailable &&
                 v.status != db::VolumeStatus::kAttached) {
        busy = "the volume is " + std::string(db::Name(v.status));
      } else {
        KINDLING_ASSIGN_OR_RETURN(auto active, db::FindActiveOperation(tx, v.id));
        KINDLING_ASSIGN_OR_RETURN(db::Server server, db::GetServer(tx, *v.server_id));
        // A running workload's volume: backed up live where its server can
        // (control/volume_service.h), else it waits (backups are cold).
        const bool running = v.attached_vm_id || v.status == db::VolumeStatus::kAttached;
        live = running && control::TakesLiveBackups(server);
        if (running && !live) {
          busy =
              "the volume is attached to a running workload and its server cannot back it up "
              "live";
        } else if (active) {
          busy = "a " + std::string(db::Name(active->kind)) + " operation is in flight";
        } else if (server.status != db::ServerStatus::kActive) {
          busy = "its server is " + std::string(db::Name(server.status));
        }
      }
      if (!busy.empty()) {
        if (window_open) return SlotOutcome{};  // again next sweep
        KINDLING_RETURN_IF_ERROR(db::MoveBackupNextAt(tx, v.id, v.backup_next_at, next));
        KINDLING_RETURN_IF_ERROR(
            AuditSystem(tx, "volume.backup.schedule_missed", v.id,
                        {{"slot", db::FormatTimestamp(*v.backup_next_at)},
                         {"reason", busy},
                         {"next_backup_at", next ? db::FormatTimestamp(*next) : std::string()}}));
        return SlotOutcome{.action = SlotAction::kMissed, .reason = busy};
      }
      KINDLING_ASSIGN_OR_RETURN(
          db::QueuedOperation op,
          db::QueueOperation(
              tx,
              db::QueueOperationRequest{
                  .volume_id = v.id,
                  .kind = db::OperationKind::kBackup,
                  .server_id = *v.server_id,
                  .create_backup = db::BackupKind::kScheduled,
                  .volume_status = live ? std::optional(db::VolumeStatus::kAttached) : std::nullopt,
                  .extra_request_metadata_json = live ? R"({"live_snapshot":true})" : "{}"}));
      // The slot is taken in the same transaction: exactly once. Slots missed
      // while nobody scheduled collapse into this one run (the catch-up).
      KINDLING_RETURN_IF_ERROR(db::MoveBackupNextAt(tx, v.id, v.backup_next_at, next));
      KINDLING_RETURN_IF_ERROR(AuditSystem(tx, "volume.backup.queued", v.id,
                                           {{"operation_id", op.operation.id},
                                            {"backup_id", op.operation.backup_id.value_or("")},
                                            {"kind", "scheduled"},
                                            {"schedule", std::string(db::Name(v.backup_schedule))},
                                            {"slot", db::FormatTimestamp(*v.backup_next_at)},
                                            {"catch_up", !window_open},
                                            {"live_snapshot", live}}));
      return SlotOutcome{.action = SlotAction::kQueued};
    });
    if (!outcome) {
      // An API request won the race for the volume, or a transient error:
      // the slot stays, next sweep.
      spdlog::info("leader: scheduled backup of {} not queued: {}", listed.id,
                   outcome.error().message());
    } else if (outcome->action == SlotAction::kQueued) {
      spdlog::info("leader: queued scheduled backup of volume {}", listed.id);
      report.scheduled.push_back(listed.id);
    } else if (outcome->action == SlotAction::kMissed) {
      spdlog::warn("leader: volume {} missed its backup slot: {} until its window closed",
                   listed.id, outcome->reason);
      report.missed.push_back(listed.id);
    }
  }
  return OkStatus();
}

}  // namespace kindling::reconcile
