// Where workers get the cluster's backup store from. The seam lets the
// service open it from cluster settings (control::OpenBackupStore) and tests
// hand in a local or fault-injecting store.
//
// Thread-safety: implementations are thread-safe. A handle stays usable after
// Invalidate() (an operation in flight finishes on the store it started
// with); the next Get() opens the store again with the current settings.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "common/result.h"
#include "engine/repository.h"
#include "storage/object_store.h"

namespace kindling::reconcile {

struct StoreHandle {
  std::string url;                                    // storage_url of backup rows: no secrets
  std::unique_ptr<storage::ObjectStore> owned_store;  // may be null (borrowed store)
  std::unique_ptr<engine::Repository> repository;     // refers to a live store
};

class BackupStoreProvider {
 public:
  virtual ~BackupStoreProvider() = default;
  // The current store. An error (settings incomplete, store unreachable,
  // wrong master key) fails the operation that asked, with that message.
  [[nodiscard]] virtual Result<std::shared_ptr<const StoreHandle>> Get() = 0;
  // Settings changed (NOTIFY kindling_config): reopen on the next Get().
  virtual void Invalidate() = 0;
};

// Opens the store lazily with `open` and caches it until Invalidate().
class CachingStoreProvider final : public BackupStoreProvider {
 public:
  using OpenFn = std::function<Result<std::shared_ptr<const StoreHandle>>()>;
  explicit CachingStoreProvider(OpenFn open) : open_(std::move(open)) {}

  Result<std::shared_ptr<const StoreHandle>> Get() override {
    std::lock_guard lock(mu_);
    if (!cached_) {
      auto opened = open_();
      if (!opened) return std::unexpected(opened.error());
      cached_ = std::move(*opened);
    }
    return cached_;
  }
  void Invalidate() override {
    std::lock_guard lock(mu_);
    cached_.reset();
  }

 private:
  OpenFn open_;
  std::mutex mu_;
  std::shared_ptr<const StoreHandle> cached_;  // guarded by mu_
};

}  // namespace kindling::reconcile
