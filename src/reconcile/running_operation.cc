#include "reconcile/running_operation.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "db/operations.h"

namespace kindling::reconcile {

using json = nlohmann::json;

RunningOperation::RunningOperation(db::Database& db, LeaseKeeper& keeper, std::string operation_id,
                                   std::string lease_owner, KeeperTiming timing)
    : db_(db),
      keeper_(keeper),
      operation_id_(std::move(operation_id)),
      lease_owner_(std::move(lease_owner)),
      timing_(timing) {}

RunningOperation::~RunningOperation() { StopKeeper(); }

void RunningOperation::StartKeeper() {
  if (kept_) return;
  const Clock::time_point now = Clock::now();
  next_progress_ = now + timing_.progress_interval;
  next_renew_ = now + timing_.lease_renew_interval;
  kept_ = true;
  keeper_.Add(*this);
}

void RunningOperation::StopKeeper() {
  if (!kept_) return;
  kept_ = false;
  keeper_.Remove(*this);
  // The last report (the final figures of a step, or all there is of a step
  // shorter than progress_interval) is written before the operation
  // completes; a lost lease makes this a no-op.
  std::string last;
  {
    std::lock_guard lock(mu_);
    last = std::exchange(progress_json_, std::string());
  }
  if (last.empty() || lease_lost) return;
  auto reported = db_.Transact(
      [&](db::Tx& tx) { return db::UpdateProgress(tx, operation_id_, lease_owner_, last); });
  if (!reported)
    spdlog::warn("worker: last progress of {}: {}", operation_id_, reported.error().message());
}

void RunningOperation::SetProgress(const engine::Progress& p) {
  json j = {{"phase", std::string(p.phase)},
            {"bytes_done", p.bytes_done},
            {"bytes_total", p.bytes_total},
            {"bytes_transferred", p.bytes_transferred}};
  std::lock_guard lock(mu_);
  last_bytes_ =
      Bytes{.done = p.bytes_done, .total = p.bytes_total, .transferred = p.bytes_transferred};
  progress_json_ = j.dump();
}

void RunningOperation::SetPhase(std::string_view phase) {
  std::lock_guard lock(mu_);
  json j = {{"phase", std::string(phase)}};
  if (last_bytes_) {
    j["bytes_done"] = last_bytes_->done;
    j["bytes_total"] = last_bytes_->total;
    j["bytes_transferred"] = last_bytes_->transferred;
  }
  progress_json_ = j.dump();
}

RunningOperation::Clock::time_point RunningOperation::KeepOnce(Clock::time_point now) {
  const auto tick = std::min(timing_.progress_interval, timing_.lease_renew_interval);
  if (lease_lost) return now + timing_.lease_renew_interval;  // nothing of ours to write
  std::string progress;
  if (now >= next_progress_) {
    std::lock_guard lock(mu_);
    progress = std::exchange(progress_json_, std::string());
    next_progress_ = now + timing_.progress_interval;
  }
  Status status = OkStatus();
  if (!progress.empty()) {
    status = db_.Transact(
        [&](db::Tx& tx) { return db::UpdateProgress(tx, operation_id_, lease_owner_, progress); });
  }
  if (status && now >= next_renew_) {
    status = db_.Transact([&](db::Tx& tx) {
      return db::RenewLease(tx, operation_id_, lease_owner_, timing_.lease_duration);
    });
    if (status) next_renew_ = Clock::now() + timing_.lease_renew_interval;
  }
  Note(status);
  // A renewal that failed is tried again a tick later.
  return std::max(std::min(next_progress_, next_renew_), Clock::now() + tick);
}

void RunningOperation::Note(const Status& status) {
  if (status) return;
  if (status.error().kind() == ErrorKind::kCancelled) {
    // The sweep took the operation over: stop at once, touch nothing.
    spdlog::warn("worker: {}", status.error().message());
    lease_lost = true;
    cancel = true;
  } else {
    spdlog::warn("worker: lease/progress of {}: {}", operation_id_, status.error().message());
  }
}

LeaseKeeper::~LeaseKeeper() { Stop(); }

void LeaseKeeper::Start() {
  std::lock_guard lock(mu_);
  StartLocked();
}

void LeaseKeeper::StartLocked() {
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] { Loop(); });
}

void LeaseKeeper::Stop() {
  std::thread thread;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    thread = std::move(thread_);
  }
  cv_.notify_all();
  if (thread.joinable()) thread.join();
}

void LeaseKeeper::Add(RunningOperation& run) {
  std::lock_guard lock(mu_);
  runs_[&run] = std::min(run.next_progress_, run.next_renew_);
  StartLocked();
  cv_.notify_all();
}

void LeaseKeeper::Remove(RunningOperation& run) {
  std::unique_lock lock(mu_);
  runs_.erase(&run);
  cv_.wait(lock, [&] { return in_flight_ != &run; });
}

void LeaseKeeper::Loop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    const RunningOperation::Clock::time_point now = RunningOperation::Clock::now();
    RunningOperation* due = nullptr;  // the most overdue
    auto earliest = RunningOperation::Clock::time_point::max();
    for (const auto& [run, at] : runs_) {
      if (at < earliest) {
        earliest = at;
        if (at <= now) due = run;
      }
    }
    if (due == nullptr) {
      if (runs_.empty()) {
        cv_.wait(lock);
      } else {
        cv_.wait_until(lock, earliest);
      }
      continue;
    }
    // A stalled write delays the others, which would wait on the same
    // database anyway.
    in_flight_ = due;
    lock.unlock();
    const auto next = due->KeepOnce(now);
    lock.lock();
    in_flight_ = nullptr;
    if (auto it = runs_.find(due); it != runs_.end()) it->second = next;
    cv_.notify_all();
  }
}

}  // namespace kindling::reconcile
