// BusyVolumes: the volumes a worker process is touching right now (an
// operation executing, or the image reconciler acting on an image), so that
// one volume's image is handled by one of them at a time.
//
// Thread-safety: thread-safe.
#pragma once

#include <mutex>
#include <set>
#include <string>

namespace kindling::reconcile {

class BusyVolumes {
 public:
  // True when the volume was idle and is now marked busy.
  bool TryMark(const std::string& volume_id) {
    std::lock_guard lock(mu_);
    return busy_.insert(volume_id).second;
  }
  // Marks it busy whether or not it was (an operation claimed from the
  // database always runs; the reconciler checks first).
  void Mark(const std::string& volume_id) {
    std::lock_guard lock(mu_);
    busy_.insert(volume_id);
  }
  void Release(const std::string& volume_id) {
    std::lock_guard lock(mu_);
    busy_.erase(volume_id);
  }

 private:
  std::mutex mu_;
  std::set<std::string> busy_;  // guarded by mu_
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
