// BusyVolumes: the volumes a worker process is touching right now (an
// operation executing, or the image reconciler acting on an image), so that
// one volume's image is handled by one of them at a time.
//
// Thread-safety: thread-safe.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace kindling::reconcile {

class BusyVolumes {
 public:
  // True when the volume was idle and is now marked busy.
  bool TryMark(const std::string& volume_id) {
    std::lock_guard lock(mu_);
    auto [it, inserted] = holders_.try_emplace(volume_id, 1);
    return inserted;
  }
  // Marks it busy whether or not it was (an operation claimed from the
  // database always runs; the reconciler checks first). Marks are counted:
  // the volume is idle again once every mark was released.
  void Mark(const std::string& volume_id) {
    std::lock_guard lock(mu_);
    ++holders_[volume_id];
  }
  // The volumes busy right now.
  std::vector<std::string> List() const {
    std::lock_guard lock(mu_);
    std::vector<std::string> out;
    out.reserve(holders_.size());
    for (const auto& [volume_id, count] : holders_) out.push_back(volume_id);
    return out;
  }
  void Release(const std::string& volume_id) {
    std::lock_guard lock(mu_);
    auto it = holders_.find(volume_id);
    if (it != holders_.end() && --it->second == 0) holders_.erase(it);
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, int> holders_;  // guarded by mu_; count > 0
};

// Marks a volume busy for a scope when it was idle; `acquired()` says whether
// it was.
class BusyScope {
 public:
  BusyScope(BusyVolumes& busy, std::string volume_id)
      : busy_(busy), volume_id_(std::move(volume_id)), acquired_(busy_.TryMark(volume_id_)) {}
  ~BusyScope() {
    if (acquired_) busy_.Release(volume_id_);
  }
  BusyScope(const BusyScope&) = delete;
  BusyScope& operator=(const BusyScope&) = delete;
  bool acquired() const { return acquired_; }

 private:
  BusyVolumes& busy_;
  std::string volume_id_;
  bool acquired_;
};

}  // namespace kindling::reconcile
