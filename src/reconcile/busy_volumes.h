// BusyVolumes: the volumes a worker process is touching right now (an
// operation executing, or the image reconciler acting on an image), so that
// one volume's image is handled by one of them at a time.
//
// Thread-safety: thread-safe.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <type_traits>
#include <utility>
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

// ExecutingVolumes: the volumes of the operations one worker process is
// executing, and the gate its claims pass. Claim() reads the set, lets the
// caller claim an operation on a volume outside it and marks the claimed
// volume, all under one lock held by one claim at a time. Without the gate a
// claim could decide on a set read before another claim's mark: read, be
// delayed (a stall between worker and database, a starved thread), and take
// the operation the sweep re-queued from under that other execution, running
// two executions on one volume at once.
//
// Thread-safety: thread-safe. A claim holds the gate for its database round
// trip; other claims of the process wait for it (they would wait on the same
// database). Release() does not take the gate: a claim deciding on a set
// that still names a released volume only skips it until its next claim.
class ExecutingVolumes {
 public:
  // Calls `claim(executing)` under the gate, with the volumes executing now.
  // `claim` returns Result<std::optional<T>>; when it holds a T, the volume
  // `volume_of(t)` is marked executing before the gate opens, and the caller
  // releases it with Release() when the execution ends.
  template <typename ClaimFn, typename VolumeOf>
  auto Claim(ClaimFn&& claim, VolumeOf&& volume_of)
      -> std::invoke_result_t<ClaimFn, const std::vector<std::string>&> {
    std::lock_guard gate(gate_mu_);
    auto claimed = std::forward<ClaimFn>(claim)(volumes_.List());
    if (claimed && *claimed) volumes_.Mark(std::forward<VolumeOf>(volume_of)(**claimed));
    return claimed;
  }
  void Release(const std::string& volume_id) { volumes_.Release(volume_id); }
  std::vector<std::string> List() const { return volumes_.List(); }

 private:
  std::mutex gate_mu_;  // held by one claim at a time
  BusyVolumes volumes_;
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
