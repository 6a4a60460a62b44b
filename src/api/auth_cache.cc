#include "api/auth_cache.h"

#include <algorithm>
#include <utility>

namespace kindling::api {

AuthCache::AuthCache(std::chrono::milliseconds ttl, std::size_t max_entries, Clock clock)
    : ttl_(ttl),
      max_entries_(max_entries),
      clock_(clock ? std::move(clock) : Clock([] { return std::chrono::steady_clock::now(); })) {}

AuthCache::Lookup AuthCache::Get(std::string_view secret, const std::function<Lookup()>& lookup) {
  if (ttl_.count() <= 0 || max_entries_ == 0) return lookup();
  const crypto::Digest digest = crypto::Sha256Of(secret);
  std::shared_ptr<Flight> flight;
  bool joined = false;
  std::uint64_t generation = 0;
  const auto began = clock_();
  {
    std::lock_guard lock(mu_);
    const auto entry = entries_.find(digest);
    const auto running = flights_.find(digest);
    if (entry != entries_.end()) {
      if (began < entry->second.expires) {
        if (began < entry->second.refresh || running != flights_.end()) {
          return entry->second.principal;
        }
      } else {
        entries_.erase(entry);
      }
    }
    if (running != flights_.end()) {
      flight = running->second;
      joined = true;
    } else {
      flight = std::make_shared<Flight>();
      flights_.emplace(digest, flight);
      generation = generation_;
    }
  }
  if (joined) return flight->Await(mu_);
  Lookup found = std::unexpected(MakeError(ErrorKind::kInternal, "authentication lookup threw"));
  auto land = [&] {
    std::lock_guard lock(mu_);
    const auto entry = entries_.find(digest);
    if (found && *found) {
      if (generation == generation_) {
        if (entry == entries_.end()) MakeRoom(began);
        entries_[digest] =
            Entry{.principal = **found, .refresh = began + ttl_ / 2, .expires = began + ttl_};
      }
    } else if (found) {
      if (entry != entries_.end()) entries_.erase(entry);
    } else if (entry != entries_.end() && clock_() < entry->second.expires) {
      found = entry->second.principal;  // a failed refresh: the entry still holds
    }
    flight->Set(found);
    if (const auto it = flights_.find(digest); it != flights_.end() && it->second == flight) {
      flights_.erase(it);
    }
  };
  try {
    found = lookup();
  } catch (...) {
    land();  // the waiters get an error; the exception goes on
    throw;
  }
  land();
  return found;
}

void AuthCache::Forget(const std::string& key_id) {
  std::lock_guard lock(mu_);
  ++generation_;
  std::erase_if(entries_,
                [&](const auto& item) { return item.second.principal.api_key.id == key_id; });
}

void AuthCache::ForgetUser(const std::string& user_id) {
  std::lock_guard lock(mu_);
  ++generation_;
  std::erase_if(entries_,
                [&](const auto& item) { return item.second.principal.user.id == user_id; });
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
