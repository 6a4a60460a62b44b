#include "reconcile/running_operation.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "db/operations.h"

namespace kindling::reconcile {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

RunningOperation::RunningOperation(db::Database& db, std::string operation_id,
                                   std::string lease_owner, KeeperTiming timing)
    : db_(db),
      operation_id_(std::move(operation_id)),
      lease_owner_(std::move(lease_owner)),
      timing_(timing) {}

RunningOperation::~RunningOperation() { StopKeeper(); }

void RunningOperation::StartKeeper() {
  keeper_ = std::thread([this] { KeeperLoop(); });
}

void RunningOperation::StopKeeper() {
  {
    std::lock_guard lock(mu_);
    done_ = true;
  }
  cv_.notify_all();
  if (keeper_.joinable()) keeper_.join();
}

void RunningOperation::SetProgress(const engine::Progress& p) {
  json j = {{"phase", std::string(p.phase)},
            {"bytes_done", p.bytes_done},
            {"bytes_total", p.bytes_total},
            {"bytes_transferred", p.bytes_transferred}};
  std::lock_guard lock(mu_);
  progress_json_ = j.dump();
}

void RunningOperation::SetPhase(std::string_view phase) {
  std::lock_guard lock(mu_);
  progress_json_ = json{{"phase", std::string(phase)}}.dump();
}

void RunningOperation::KeeperLoop() {
  auto next_renew = Clock::now() + timing_.lease_renew_interval;
  std::unique_lock lock(mu_);
  while (!done_) {
    cv_.wait_for(lock, std::min(timing_.progress_interval, timing_.lease_renew_interval));
    if (done_) break;
    std::string progress = std::exchange(progress_json_, std::string());
    lock.unlock();
    Status status = OkStatus();
    if (!progress.empty()) {
      status = db_.Transact([&](db::Tx& tx) {
        return db::UpdateProgress(tx, operation_id_, lease_owner_, progress);
      });
    }
    if (status && Clock::now() >= next_renew) {
      status = db_.Transact([&](db::Tx& tx) {
        return db::RenewLease(tx, operation_id_, lease_owner_, timing_.lease_duration);
      });
      if (status) next_renew = Clock::now() + timing_.lease_renew_interval;
    }
    if (!status && status.error().kind() == ErrorKind::kCancelled) {
      // The sweep took the operation over: stop at once, touch nothing.
      spdlog::warn("worker: {}", status.error().message());
      lease_lost = true;
      cancel = true;
    } else if (!status) {
      spdlog::warn("worker: lease/progress of {}: {}", operation_id_, status.error().message());
    }
    lock.lock();
  }
  // The last report (the final figures of a step, or all there is of a step
  // shorter than progress_interval) is written before the operation
  // completes; a lost lease makes this a no-op.
  std::string last = std::exchange(progress_json_, std::string());
  lock.unlock();
  if (!last.empty() && !lease_lost) {
    auto reported = db_.Transact(
        [&](db::Tx& tx) { return db::UpdateProgress(tx, operation_id_, lease_owner_, last); });
    if (!reported)
      spdlog::warn("worker: last progress of {}: {}", operation_id_, reported.error().message());
  }
}

}  // namespace kindling::reconcile
