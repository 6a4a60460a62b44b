// Scheduled garbage collection of the cluster's volume backup store.
//
// CollectStoreGarbageIfDue opens the current store (the backup settings) and,
// when the last successful collection of that store is older than `every`
// (or there was none), runs engine::CollectGarbage on it (engine/gc.h: safe
// while workers back up; a collection already running elsewhere is reported
// as kAlreadyExists and left alone). What is due comes from the audit trail
// (the newest backup_store.gc.succeeded event of the store's url, stamped by
// PostgreSQL's clock), never from memory, so a restarted or new leader
// neither collects twice nor forgets. Each run is audited (user_id NULL):
// backup_store.gc.succeeded with the report's counts, or
// backup_store.gc.failed with the error. `kindling serve` calls it from the
// leader (service/serve.h: --store-gc-every, --store-gc-grace).
//
// Thread-safety: a free function; concurrent calls in several processes are
// safe (the store's collector lock), in one process wasteful.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include "common/result.h"
#include "crypto/aead.h"
#include "db/database.h"
#include "engine/gc.h"

namespace kindling::control {

struct StoreGcSchedule {
  std::chrono::seconds every{24 * 3600};  // 0: never due
  // engine::GcOptions::grace: spares the chunks of a backup that failed a
  // moment ago the upload on its retry.
  std::chrono::seconds grace{3600};
  engine::GcTiming timing;
  const engine::CancelFlag* cancel = nullptr;
  // The collection's news (engine::GcOptions::log), for the caller's log.
  std::function<void(const std::string&)> log;
  // Wall clock compared with the audit trail's timestamps (tests inject one).
  std::function<std::chrono::system_clock::time_point()> now = [] {
    return std::chrono::system_clock::now();
  };
};

// The report of the collection it ran; nullopt when none was due (or the
// backup settings name no usable store, or `every` is 0). kAlreadyExists when
// another collection holds the store's lock; the store's and the database's
// errors otherwise (audited as failed).
[[nodiscard]] Result<std::optional<engine::GcReport>> CollectStoreGarbageIfDue(
    db::Database& db, const crypto::Key& master_key, const StoreGcSchedule& schedule);

}  // namespace kindling::control
