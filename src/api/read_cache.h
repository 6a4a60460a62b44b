// ChangeWatch and ReadCache: the API's hot reads (GET .../volume, GET
// /api/servers) answered from memory while the rows behind them have not
// changed, so that most cost no PostgreSQL round trip.
//
// How changes are known: every change to the tables behind these reads
// sends a notification on db::kChangesChannel naming its table, whoever
// makes it (a trigger, db/migrations.cc); ChangeWatch counts them per
// table. This process also counts the write transactions it ends itself,
// per table they changed (db::ChangedTableWrites). A cache names the tables
// its values are read from; its Stamp is their notification count (plus the
// listener's reconnections) and this process's write counts of them. A value
// is kept with the stamp its read started under.
//
// What a Get answers, and so what a client sees. A value kept under an
// older stamp is re-read by the first Get that finds it so, and waited for;
// the Gets arriving while that one read runs are answered the older value
// rather than all waiting for PostgreSQL (under load a round trip there
// takes tens of milliseconds, and workers write progress twice a second per
// operation). So:
//  - a client sees its own writes through this API at once: the route
//    passes the caller's last write of each table (ApiContext::WriteFloor),
//    and a value read before a write of one of the cache's tables is never
//    answered to them;
//  - any other change (another client's, a worker's) shows once its
//    notification has arrived and one re-read has finished (milliseconds;
//    at most kMaxStaleRead while PostgreSQL stalls, then Gets wait);
//  - a notification is on its way from the moment PostgreSQL sends it: a
//    Get checks the listening connection's socket for input not yet
//    counted; while there is some, or while the connection is being checked
//    (every `check_interval`, a round trip on it), the stamp is unsettled
//    and no value kept counts as current: each key is re-read (one read at
//    a time, the others answered the value from before it, as above);
//  - while the listening connection is down, nothing is served from or
//    kept in the cache: every Get reads the database.
//
// Thread-safety: thread-safe. ChangeWatch runs one thread between Start and
// Stop.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/shared_result.h"
#include "control/control_error.h"
#include "db/database.h"
#include "db/notifications.h"

namespace kindling::api {

class ChangeWatch {
 public:
  // The tables db::kChangesChannel reports, as a bit set: bit i is
  // db::kNotifyingTables[i].
  enum Table : std::uint32_t {
    kProjects = 1u << 0,
    kProjectVolumes = 1u << 1,
    kOperations = 1u << 2,
    kBackups = 1u << 3,
    kServers = 1u << 4,
    kServerComponents = 1u << 5,
  };
  static constexpr int kTableCount = 6;
  static_assert(kTableCount == db::kNotifyingTables.size(), "one bit per notifying table");

  struct Stamp {
    std::uint64_t notified = 0;  // notifications of the tables, reconnections
    db::TableCounts written{};   // db::ChangedTableWrites() of the tables
    // False while a change may be arriving uncounted (input on the
    // listening socket, or the connection being checked): the counts are
    // then lower bounds, and no value kept is current.
    bool settled = true;
    bool operator==(const Stamp&) const = default;
  };

  // `writes`: this process's write counts; empty is db::ChangedTableWrites
  // (tests pass their own).
  explicit ChangeWatch(std::string dsn,
                       std::chrono::milliseconds check_interval = std::chrono::seconds(5),
                       std::function<db::TableCounts()> writes = {});
  ~ChangeWatch();  // Stop()s
  ChangeWatch(const ChangeWatch&) = delete;
  ChangeWatch& operator=(const ChangeWatch&) = delete;

  // Starts the listening thread; it connects (and reconnects, every second
  // while it cannot) on its own.
  void Start();
  void Stop();

  // The current stamp of the tables in `tables`; unsettled while the
  // listener has input not yet counted or is being checked (a change may be
  // arriving); nullopt while it is not connected.
  std::optional<Stamp> Current(std::uint32_t tables) const;
  bool listening() const { return socket_.load() >= 0; }

  // Returns once every change committed before the call is counted: it
  // sends a token through `send` (pg_notify on db::kChangesChannel with
  // the payload it is given) and waits for it to come back, notifications
  // arriving in commit order; at once when not listening (then nothing is
  // answered from memory). kTransient when the token is not back within
  // `timeout`. For tests that change rows over a connection of their own
  // and then read through the API.
  [[nodiscard]] Status Sync(const std::function<Status(const std::string& payload)>& send,
                            std::chrono::milliseconds timeout);

 private:
  void Run();
  // Takes the notifications `listener` has received and counts them (a
  // payload naming no known table counts for all of them).
  Status Take(db::Listener& listener);
  void Count(const std::vector<db::Notification>& notifications);
  // Hands the sync tokens taken to Sync's waiters.
  void Publish();

  const std::string dsn_;
  const std::chrono::milliseconds check_interval_;
  const std::function<db::TableCounts()> writes_;
  // Odd while input taken from the socket is not yet counted (a seqlock:
  // Current reads the counters between two equal, even values of it).
  std::atomic<std::uint64_t> phase_{0};
  std::array<std::atomic<std::uint64_t>, kTableCount> notified_{};
  std::atomic<std::uint64_t> reconnected_{0};
  // The listening connection's socket while it is connected; -1 otherwise.
  std::atomic<int> socket_{-1};
  // True while the connection is being checked (a round trip on it: its
  // socket is then read by the thread).
  std::atomic<bool> checking_{false};
  std::mutex mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;  // guarded by mu_
  std::condition_variable synced_cv_;
  std::vector<std::string> synced_;   // sync tokens back; guarded by mu_
  std::vector<std::string> arrived_;  // taken, not yet published; the thread's own
  std::thread thread_;
};

// Values of type V by string key, each valid under the stamp it was read
// under. Bounded: when full, it starts over empty.
template <typename V>
class ReadCache {
 public:
  // A value older than the current stamp is answered while a re-read of it
  // has been running for less than this; then the Gets wait for the read.
  static constexpr std::chrono::milliseconds kMaxStaleRead{1000};

  // `tables`: the ChangeWatch::Table bits the values are read from. `watch`
  // null, or max_entries 0: no caching (every Get fetches).
  ReadCache(const ChangeWatch* watch, std::uint32_t tables, std::size_t max_entries)
      : watch_(watch), tables_(tables), max_entries_(max_entries) {}

  // The value for `key` (see the file comment for which one):
  //  - the cached one when read under the current stamp, if settled;
  //  - else the cached one while another Get of the key re-reads it (for
  //    less than kMaxStaleRead), provided it was read after `written_floor`
  //    (the caller's last writes: ApiContext::WriteFloor)
  //    for each of the cache's tables;
  //  - else the value of a read of the key started under the current stamp
  //    (waited for), or of this Get's own.
  // A read is fetch() (a control::ControlResult<V>); its value is kept,
  // unless a newer one was meanwhile, as of the stamp it started under.
  // Errors are not kept. Concurrent Gets of one key under one stamp share
  // one read.
  template <typename Fetch>
  control::ControlResult<V> Get(const std::string& key, Fetch&& fetch,
                                const db::TableCounts& written_floor = {}) {
    const std::optional<ChangeWatch::Stamp> before = Stamp();
    if (!before) {
      {
        std::lock_guard lock(mu_);
        ++reads_;
      }
      return fetch();
    }
    std::shared_ptr<Flight> flight;
    bool joined = false;
    {
      std::lock_guard lock(mu_);
      const auto entry = entries_.find(key);
      const auto running = flights_.find(key);
      if (entry != entries_.end()) {
        if (before->settled && entry->second.stamp == *before) {
          ++hits_;
          return entry->second.value;
        }
        if (running != flights_.end() && ReadAfter(entry->second.stamp, written_floor) &&
            std::chrono::steady_clock::now() - running->second->started < kMaxStaleRead) {
          ++stale_hits_;
          return entry->second.value;
        }
      }
      if (running != flights_.end() && running->second->stamp == *before) {
        flight = running->second;
        joined = true;
        ++joined_;
      } else {
        ++reads_;
        flight = std::make_shared<Flight>();
        flight->stamp = *before;
        flight->started = std::chrono::steady_clock::now();
        flights_.insert_or_assign(key, flight);
      }
    }
    if (joined) return flight->result.Await(mu_);
    std::optional<control::ControlResult<V>> result;
    try {
      result = fetch();
    } catch (...) {
      // The joiners get an error; the exception goes on to the route's.
      Land(key, flight,
           std::unexpected(control::ControlError{500, control::kCodeInternal, "internal error",
                                                 "the read failed"}),
           std::nullopt);
      throw;
    }
    Land(key, flight, *result, *result ? std::optional(*before) : std::nullopt);
    return std::move(*result);
  }

  // Gets answered from the cache (current, and older while a re-read
  // ran), by waiting for another's read, and by a read of their own.
  std::uint64_t hits() const {
    std::lock_guard lock(mu_);
    return hits_;
  }
  std::uint64_t stale_hits() const {
    std::lock_guard lock(mu_);
    return stale_hits_;
  }
  std::uint64_t joined() const {
    std::lock_guard lock(mu_);
    return joined_;
  }
  std::uint64_t reads() const {
    std::lock_guard lock(mu_);
    return reads_;
  }

 private:
  struct Entry {
    ChangeWatch::Stamp stamp;
    V value;
  };
  // A read in progress, for the misses of its key under its stamp.
  struct Flight {
    ChangeWatch::Stamp stamp{};
    std::chrono::steady_clock::time_point started{};
    SharedResult<control::ControlResult<V>> result{};  // guarded by mu_
  };

  // Hands `result` to the flight's joiners and ends the flight; keeps it as
  // of `stamp` (when set) unless a value as new is kept already.
  void Land(const std::string& key, const std::shared_ptr<Flight>& flight,
            const control::ControlResult<V>& result, std::optional<ChangeWatch::Stamp> stamp) {
    std::lock_guard lock(mu_);
    if (stamp) {
      const auto kept = entries_.find(key);
      if (kept == entries_.end()) {
        if (entries_.size() >= max_entries_) entries_.clear();
        entries_.emplace(key, Entry{.stamp = *stamp, .value = *result});
      } else if (Newer(*stamp, kept->second.stamp)) {
        kept->second = Entry{.stamp = *stamp, .value = *result};
      }
    }
    flight->result.Set(result);
    if (const auto it = flights_.find(key); it != flights_.end() && it->second == flight) {
      flights_.erase(it);
    }
  }

  // Whether a read started under `read` replaces one kept as of `kept`:
  // it counts more of some change, or as many and settled where the kept
  // one was not (else a settled Get would never find it current).
  static bool Newer(const ChangeWatch::Stamp& read, const ChangeWatch::Stamp& kept) {
    if (read.notified > kept.notified || Sum(read.written) > Sum(kept.written)) return true;
    return read.notified == kept.notified && read.written == kept.written && read.settled &&
           !kept.settled;
  }
  // Counts only grow, so their sum orders the stamps of one cache.
  static std::uint64_t Sum(const db::TableCounts& counts) {
    std::uint64_t sum = 0;
    for (const std::uint64_t count : counts) sum += count;
    return sum;
  }
  // Whether a read under `stamp` started after the writes `floor` counts,
  // of the cache's tables.
  bool ReadAfter(const ChangeWatch::Stamp& stamp, const db::TableCounts& floor) const {
    for (std::size_t i = 0; i < floor.size(); ++i) {
      if ((tables_ & (1u << i)) != 0 && stamp.written[i] < floor[i]) return false;
    }
    return true;
  }

  std::optional<ChangeWatch::Stamp> Stamp() const {
    if (watch_ == nullptr || max_entries_ == 0) return std::nullopt;
    return watch_->Current(tables_);
  }

  const ChangeWatch* watch_;
  const std::uint32_t tables_;
  const std::size_t max_entries_;
  mutable std::mutex mu_;
  std::map<std::string, Entry> entries_;                    // guarded by mu_
  std::map<std::string, std::shared_ptr<Flight>> flights_;  // guarded by mu_
  std::uint64_t hits_ = 0;                                  // guarded by mu_
  std::uint64_t stale_hits_ = 0;                            // guarded by mu_
  std::uint64_t joined_ = 0;                                // guarded by mu_
  std::uint64_t reads_ = 0;                                 // guarded by mu_
};

}  // namespace kindling::api
