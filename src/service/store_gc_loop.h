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
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include "control/store_gc.h"
#include "crypto/aead.h"
#include "db/database.h"

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
  void Loop();

  db::Database& db_;
  const crypto::Key master_key_;
  control::StoreGcSchedule schedule_;
  std::function<bool()> is_leader_;
  const std::chrono::milliseconds poll_;
  engine::CancelFlag cancel_{false};
  std::atomic<int> completed_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace kindling::service
