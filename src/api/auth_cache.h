// AuthCache: the principals of recently presented API keys, so that a client
// making many requests does not cost the database an authentication
// transaction (key, user, memberships, last_used_at) for each.
//
// Entries are keyed by the SHA-256 of the presented secret (the secret itself
// is not kept) and expire `ttl` after the database lookup that made them;
// only successful lookups are cached. Bounded: when full, expired entries go
// first, then the oldest. Consistency: a key revoked through this process is
// dropped at once (Forget); a key revoked, a membership or admin flag changed
// by another process takes effect here within `ttl`.
//
// Thread-safety: thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "crypto/sha256.h"
#include "db/auth.h"

namespace kindling::api {

class AuthCache {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  // ttl 0 turns the cache off. `clock` defaults to steady_clock::now.
  AuthCache(std::chrono::milliseconds ttl, std::size_t max_entries, Clock clock = {});

  // The cached principal for `secret`, if looked up less than ttl ago.
  std::optional<db::Principal> Find(std::string_view secret);
  // Read before the database lookup and passed to Remember, so that a lookup
  // racing with a Forget is not cached.
  std::uint64_t generation() const;
  // Caches the principal the database returned for `secret`, unless Forget
  // ran since generation() returned `generation`.
  void Remember(std::string_view secret, const db::Principal& principal, std::uint64_t generation);
  // Drops every entry of API key `key_id` (revoked through this process).
  void Forget(const std::string& key_id);

  std::size_t size() const;

 private:
  struct Entry {
    db::Principal principal{};
    std::chrono::steady_clock::time_point expires{};
  };
  void MakeRoom(std::chrono::steady_clock::time_point now);  // REQUIRES: mu_ held

  const std::chrono::milliseconds ttl_;
  const std::size_t max_entries_;
  const Clock clock_;
  mutable std::mutex mu_;
  std::map<crypto::Digest, Entry> entries_;  // guarded by mu_
  std::uint64_t generation_ = 0;             // Forget calls; guarded by mu_
};

}  // namespace kindling::api
