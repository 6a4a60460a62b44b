#include "service/backup_verify_loop.h"

#include <spdlog/spdlog.h>

#include <utility>

namespace kindling::service {

BackupVerifyLoop::BackupVerifyLoop(db::Database& db, const crypto::Key& master_key,
                                   control::BackupVerifySchedule schedule,
                                   std::function<bool()> is_leader, std::chrono::milliseconds poll)
    : db_(db),
      volumes_(db, master_key),
      schedule_(std::move(schedule)),
      ticker_(std::move(is_leader), poll, [this] { PassOnce(); }) {}

BackupVerifyLoop::~BackupVerifyLoop() { Stop(); }

void BackupVerifyLoop::Start() {
  if (schedule_.every.count() <= 0) {
    spdlog::info("backup verification: scheduled rounds are off (--backup-verify-every 0)");
    return;
  }
  ticker_.Start();
}

void BackupVerifyLoop::Stop() { ticker_.Stop(); }

void BackupVerifyLoop::PassOnce() {
  auto pass = control::QueueScheduledVerifications(db_, volumes_, schedule_);
  if (!pass) {
    spdlog::warn("backup verification failed: {}", pass.error().message());
    return;
  }
  if (!*pass) return;
  const control::VerifyPass& p = **pass;
  if (p.round_started) {
    rounds_started_.fetch_add(1);
    spdlog::info("backup verification: round {} started: {} backup(s) to verify ({})", p.round_id,
                 p.planned, control::VerifySampleName(schedule_.sample_percent));
  }
  for (const db::Operation& op : p.queued) {
    spdlog::info("backup verification: round {}: queued verify {} of backup {} on server {}",
                 p.round_id, op.id, op.backup_id.value_or(""), op.server_id.value_or(""));
  }
  queued_.fetch_add(static_cast<int>(p.queued.size()));
  for (const std::string& refused : p.refused) {
    spdlog::info("backup verification: round {}: not queued now: {}", p.round_id, refused);
  }
}

}  // namespace kindling::service
