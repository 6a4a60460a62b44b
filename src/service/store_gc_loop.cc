#include "service/store_gc_loop.h"

#include <spdlog/spdlog.h>

#include <utility>

namespace kindling::service {

StoreGcLoop::StoreGcLoop(db::Database& db, const crypto::Key& master_key,
                         control::StoreGcSchedule schedule, std::function<bool()> is_leader,
                         std::chrono::milliseconds poll)
    : db_(db),
      master_key_(master_key),
      schedule_(std::move(schedule)),
      ticker_(std::move(is_leader), poll, [this] { PassOnce(); }) {
  schedule_.cancel = &cancel_;
  if (!schedule_.log) {
    schedule_.log = [](const std::string& line) { spdlog::info("store gc: {}", line); };
  }
}

StoreGcLoop::~StoreGcLoop() { Stop(); }

void StoreGcLoop::Start() {
  if (schedule_.every.count() <= 0) {
    spdlog::info("store gc: scheduled collections are off (--store-gc-every 0)");
    return;
  }
  ticker_.Start();
}

void StoreGcLoop::Stop() {
  cancel_ = true;
  ticker_.Stop();
}

void StoreGcLoop::PassOnce() {
  auto ran = control::CollectStoreGarbageIfDue(db_, master_key_, schedule_);
  if (!ran) {
    if (ran.error().kind() == ErrorKind::kAlreadyExists) {
      spdlog::info("store gc: {}", ran.error().message());
    } else if (ran.error().kind() != ErrorKind::kCancelled) {
      spdlog::warn("store gc failed: {}", ran.error().message());
    }
    return;
  }
  if (!*ran) return;
  const engine::GcReport& r = **ran;
  completed_.fetch_add(1);
  spdlog::info(
      "store gc: {} backup(s), {} live chunk(s); deleted {} chunk(s) ({} bytes), {} kept for the "
      "grace, in {} ms",
      r.manifests, r.live_chunks, r.chunks_deleted, r.bytes_deleted, r.chunks_in_grace,
      r.duration_ms);
}

}  // namespace kindling::service
