// StoreGcLoop: the scheduled garbage collection of the cluster's backup
// store in `kindling serve` (--store-gc-every, --store-gc-grace).
//
// Every `poll`, while `is_leader()` says this process leads, it calls
// control::CollectStoreGarbageIfDue, which decides from the audit trail
// whether a collection is due and runs it (engine/gc.h: safe while workers
// back up). Outcomes are logged; a collection held by another process is
// logged at info level and tried again at the next poll. Stop cancels a
// running collection (it stops between steps; what it deleted was
// unreferenced) and joins.
//
// Thread-safety: Start/Stop from one thread.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>

#include "control/store_gc.h"
#include "crypto/aead.h"
#include "db/database.h"
#include "service/leader_ticker.h"

namespace kindling::service {

class StoreGcLoop {
 public:
  // REQUIRES: `db` outlives the loop.
  StoreGcLoop(db::Database& db, const crypto::Key& master_key, control::StoreGcSchedule schedule,
              std::function<bool()> is_leader,
              std::chrono::milliseconds poll = std::chrono::minutes(5));
  ~StoreGcLoop();
  StoreGcLoop(const StoreGcLoop&) = delete;
  StoreGcLoop& operator=(const StoreGcLoop&) = delete;

  void Start();
  void Stop();
  // Collections run to completion so far (for tests and logs).
  int completed() const { return completed_.load(); }

 private:
  void PassOnce();

  db::Database& db_;
  const crypto::Key master_key_;
  control::StoreGcSchedule schedule_;
  engine::CancelFlag cancel_{false};
  std::atomic<int> completed_{0};
  LeaderTicker ticker_;  // last: stopped first
};

}  // namespace kindling::service
