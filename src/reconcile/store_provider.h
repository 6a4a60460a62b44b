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

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
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
//
// Opening a store may take long (the database, then S3 with retries), so it
// happens outside the lock: other stores, cached handles and Invalidate()
// (the NOTIFY listener) never wait for it. Concurrent requests for the same
// store share one open (and its error; errors are not cached). An open that
// began before an Invalidate() still answers the requests that were waiting
// for it, but is not cached: the next request opens the store again with the
// settings as they are now.
class CachingStoreProvider final : public BackupStoreProvider {
 public:
  using OpenFn = std::function<Result<std::shared_ptr<const StoreHandle>>()>;
  using OpenUrlFn = std::function<Result<std::shared_ptr<const StoreHandle>>(const std::string&)>;
  CachingStoreProvider(OpenFn open, OpenUrlFn open_url)
      : open_(std::move(open)), open_url_(std::move(open_url)) {}

  Result<std::shared_ptr<const StoreHandle>> Get() override {
    return Fetch(kCurrentKey, [this] { return open_(); });
  }
  Result<std::shared_ptr<const StoreHandle>> GetForUrl(const std::string& storage_url) override {
    {
      std::lock_guard lock(mu_);
      if (auto it = cached_.find(kCurrentKey);
          it != cached_.end() && it->second->url == storage_url)
        return it->second;
    }
    return Fetch(kUrlKeyPrefix + storage_url, [&] { return open_url_(storage_url); });
  }
  void Invalidate() override {
    std::lock_guard lock(mu_);
    ++generation_;
    cached_.clear();
  }

 private:
  using Opened = Result<std::shared_ptr<const StoreHandle>>;
  // One open in progress; the requests that arrived meanwhile wait for it.
  struct Flight {
    std::uint64_t generation = 0;  // generation_ when it began
    std::optional<Opened> result;  // set when done; guarded by mu_
  };
  static constexpr char kCurrentKey[] = "current";
  static constexpr char kUrlKeyPrefix[] = "url:";

  template <typename Open>
  Opened Fetch(const std::string& key, Open&& open) {
    std::unique_lock lock(mu_);
    if (auto it = cached_.find(key); it != cached_.end()) return it->second;
    if (auto it = flights_.find(key);
        it != flights_.end() && it->second->generation == generation_) {
      const std::shared_ptr<Flight> flight = it->second;
      done_.wait(lock, [&] { return flight->result.has_value(); });
      return *flight->result;
    }
    auto flight = std::make_shared<Flight>();
    flight->generation = generation_;
    flights_[key] = flight;
    lock.unlock();
    Opened opened = open();
    lock.lock();
    flight->result = opened;
    if (auto it = flights_.find(key); it != flights_.end() && it->second == flight)
      flights_.erase(it);
    if (opened && flight->generation == generation_) cached_[key] = *opened;
    done_.notify_all();
    return opened;
  }

  OpenFn open_;
  OpenUrlFn open_url_;
  std::mutex mu_;
  std::condition_variable done_;
  std::uint64_t generation_ = 0;  // guarded by mu_; bumped by Invalidate
  // By key: kCurrentKey, or kUrlKeyPrefix + url.
  std::map<std::string, std::shared_ptr<const StoreHandle>> cached_;  // guarded by mu_
  std::map<std::string, std::shared_ptr<Flight>> flights_;            // guarded by mu_
};

}  // namespace kindling::reconcile
