// BackupVerifyLoop: scheduled verification of the cluster's backups in
// `kindling serve` (--backup-verify-every, --backup-verify-sample).
//
// Every `poll`, while `is_leader()` says this process leads, it calls
// control::QueueScheduledVerifications, which starts a round when one is due
// and queues the verify operations the round's limits allow (workers run
// them; control/backup_verification.h has the rules). What it queued and
// what was refused is logged; errors are logged and the next poll tries
// again. Stop wakes and joins the thread (a pass in progress finishes its
// queueing first: a few short transactions).
//
// Thread-safety: Start/Stop from one thread.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>

#include "control/backup_verification.h"
#include "control/volume_service.h"
#include "crypto/aead.h"
#include "db/database.h"
#include "service/leader_ticker.h"

namespace kindling::service {

class BackupVerifyLoop {
 public:
  // REQUIRES: `db` outlives the loop.
  BackupVerifyLoop(db::Database& db, const crypto::Key& master_key,
                   control::BackupVerifySchedule schedule, std::function<bool()> is_leader,
                   std::chrono::milliseconds poll = std::chrono::minutes(1));
  ~BackupVerifyLoop();
  BackupVerifyLoop(const BackupVerifyLoop&) = delete;
  BackupVerifyLoop& operator=(const BackupVerifyLoop&) = delete;

  void Start();
  void Stop();
  // Verify operations queued so far, and rounds this loop started (for tests
  // and logs).
  int queued() const { return queued_.load(); }
  int rounds_started() const { return rounds_started_.load(); }

 private:
  void PassOnce();

  db::Database& db_;
  control::VolumeService volumes_;
  const control::BackupVerifySchedule schedule_;
  std::atomic<int> queued_{0};
  std::atomic<int> rounds_started_{0};
  LeaderTicker ticker_;  // last: stopped first
};

}  // namespace kindling::service
