#include "api/auth_cache.h"

#include <algorithm>
#include <utility>

namespace kindling::api {

AuthCache::AuthCache(std::chrono::milliseconds ttl, std::size_t max_entries, Clock clock)
    : ttl_(ttl),
      max_entries_(max_entries),
      clock_(clock ? std::move(clock) : Clock([] { return std::chrono::steady_clock::now(); })) {}

std::optional<db::Principal> AuthCache::Find(std::string_view secret) {
  if (ttl_.count() <= 0 || max_entries_ == 0) return std::nullopt;
  const crypto::Digest digest = crypto::Sha256Of(secret);
  std::lock_guard lock(mu_);
  const auto it = entries_.find(digest);
  if (it == entries_.end()) return std::nullopt;
  if (clock_() >= it->second.expires) {
    entries_.erase(it);
    return std::nullopt;
  }
  return it->second.principal;
}

std::uint64_t AuthCache::generation() const {
  std::lock_guard lock(mu_);
  return generation_;
}

void AuthCache::Remember(std::string_view secret, const db::Principal& principal,
                         std::uint64_t generation) {
  if (ttl_.count() <= 0 || max_entries_ == 0) return;
  const crypto::Digest digest = crypto::Sha256Of(secret);
  std::lock_guard lock(mu_);
  if (generation != generation_) return;
  const auto now = clock_();
  if (!entries_.contains(digest)) MakeRoom(now);
  entries_[digest] = Entry{.principal = principal, .expires = now + ttl_};
}

void AuthCache::Forget(const std::string& key_id) {
  std::lock_guard lock(mu_);
  ++generation_;
  std::erase_if(entries_,
                [&](const auto& item) { return item.second.principal.api_key.id == key_id; });
}

std::size_t AuthCache::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

void AuthCache::MakeRoom(std::chrono::steady_clock::time_point now) {
  if (entries_.size() < max_entries_) return;
  std::erase_if(entries_, [&](const auto& item) { return now >= item.second.expires; });
  while (entries_.size() >= max_entries_) {
    entries_.erase(std::min_element(
        entries_.begin(), entries_.end(),
        [](const auto& a, const auto& b) { return a.second.expires < b.second.expires; }));
  }
}

}  // namespace kindling::api
