// Where workers get backup stores from: the cluster's current store (new
// backups go there) and, for reading a backup, the store it was written to
// (its storage_url), which may be an earlier one. The seam lets the service
// open them from cluster settings and the store history
// (control/backup_store.h) and tests hand in local or fault-injecting stores.
//
// Thread-safety: implementations are thread-safe. A handle stays usable after
// Invalidate() (an operation in flight finishes on the store it started
// with); the next Get() opens the store again with the current settings.
#pragma once

#include <functional>
#include <map>
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
  // The store whose StoreHandle::url is `storage_url` (a backup row's), the
  // current one or an earlier one. kNotFound when the cluster has no record
  // of it.
  [[nodiscard]] virtual Result<std::shared_ptr<const StoreHandle>> GetForUrl(
      const std::string& storage_url) = 0;
  // Settings changed (NOTIFY kindling_config): reopen on the next Get().
  virtual void Invalidate() = 0;
};

// Opens stores lazily with `open` (the current one) and `open_url` (one by
// its url) and caches them until Invalidate().
class CachingStoreProvider final : public BackupStoreProvider {
 public:
  using OpenFn = std::function<Result<std::shared_ptr<const StoreHandle>>()>;
  using OpenUrlFn = std::function<Result<std::shared_ptr<const StoreHandle>>(const std::string&)>;
  CachingStoreProvider(OpenFn open, OpenUrlFn open_url)
      : open_(std::move(open)), open_url_(std::move(open_url)) {}

  Result<std::shared_ptr<const StoreHandle>> Get() override {
    std::lock_guard lock(mu_);
    if (!current_) {
      auto opened = open_();
      if (!opened) return std::unexpected(opened.error());
      current_ = std::move(*opened);
    }
    return current_;
  }
  Result<std::shared_ptr<const StoreHandle>> GetForUrl(const std::string& storage_url) override {
    std::lock_guard lock(mu_);
    if (current_ && current_->url == storage_url) return current_;
    if (auto it = by_url_.find(storage_url); it != by_url_.end()) return it->second;
    auto opened = open_url_(storage_url);
    if (!opened) return std::unexpected(opened.error());
    by_url_[storage_url] = *opened;
    return std::move(*opened);
  }
  void Invalidate() override {
    std::lock_guard lock(mu_);
    current_.reset();
    by_url_.clear();
  }

 private:
  OpenFn open_;
  OpenUrlFn open_url_;
  std::mutex mu_;
  std::shared_ptr<const StoreHandle> current_;                        // guarded by mu_
  std::map<std::string, std::shared_ptr<const StoreHandle>> by_url_;  // guarded by mu_
};

}  // namespace kindling::reconcile
