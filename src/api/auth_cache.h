// AuthCache: the principals of recently presented API keys, so that a client
// making many requests does not cost the database an authentication
// transaction (key, user, memberships, last_used_at) for each.
//
// Entries are keyed by the SHA-256 of the presented secret (the secret itself
// is not kept) and expire `ttl` after the database lookup that made them
// began; only successful lookups are cached. Bounded: when full, expired
// entries go first, then the oldest.
//
// Under load, a key's entry never expires for all its requests at once:
// the first request past half of the ttl looks the key up again while the
// others go on with the entry, and requests that find no entry share one
// lookup. (With every request of a busy client missing together, each ran
// its own transaction, and all updated the key's last_used_at row one after
// another: the API stalled every ttl.)
//
// Consistency: a key revoked, or a user's memberships changed, through this
// process is dropped at once (Forget, ForgetUser), and a lookup begun before
// that is not kept; a key revoked, a
// membership or admin flag changed by another process takes effect here
// within `ttl` (sooner when a refresh sees it).
//
// Thread-safety: thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "common/shared_result.h"
#include "crypto/sha256.h"
#include "db/auth.h"

namespace kindling::api {

class AuthCache {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;
  // What a database lookup of a key found: its principal, nothing (unknown
  // or revoked), or an error.
  using Lookup = Result<std::optional<db::Principal>>;

  // ttl 0 turns the cache off. `clock` defaults to steady_clock::now.
  AuthCache(std::chrono::milliseconds ttl, std::size_t max_entries, Clock clock = {});

  // The principal of `secret`:
  //  - the cached one, looked up less than ttl ago; past half of it, the
  //    first caller (while no other does) runs `lookup` and gets its answer,
  //    or the cached principal if the lookup fails;
  //  - else lookup()'s answer, one lookup for the concurrent callers of a
  //    secret (the others wait for it inside a BlockingRegion,
  //    common/blocking_region.h).
  // A principal found is kept; a key found no more is dropped.
  Lookup Get(std::string_view secret, const std::function<Lookup()>& lookup);

  // Drops every entry of API key `key_id` (revoked through this process).
  void Forget(const std::string& key_id);
  // Drops every entry of the user's keys (memberships or admin flag changed
  // through this process).
  void ForgetUser(const std::string& user_id);

  std::size_t size() const;

 private:
  struct Entry {
    db::Principal principal{};
    std::chrono::steady_clock::time_point refresh{};  // looked up again from here
    std::chrono::steady_clock::time_point expires{};
  };
  // A lookup in progress, for the callers of its secret.
  using Flight = SharedResult<Lookup>;                       // guarded by mu_
  void MakeRoom(std::chrono::steady_clock::time_point now);  // REQUIRES: mu_ held

  const std::chrono::milliseconds ttl_;
  const std::size_t max_entries_;
  const Clock clock_;
  mutable std::mutex mu_;
  std::map<crypto::Digest, Entry> entries_;                    // guarded by mu_
  std::map<crypto::Digest, std::shared_ptr<Flight>> flights_;  // guarded by mu_
  std::uint64_t generation_ = 0;                               // Forget calls; guarded by mu_
};

}  // namespace kindling::api
