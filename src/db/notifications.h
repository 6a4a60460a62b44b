// LISTEN/NOTIFY and session advisory locks: the two things that need a
// dedicated connection (a session) instead of a pooled transaction.
//
// Both classes own one connection each; they are not thread-safe (one
// thread waits or checks), but separate instances are independent.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "db/database.h"

namespace kindling::db {

// pg_try_advisory_lock key of the leader that runs cluster-wide sweeps
// ("kindlinl").
inline constexpr std::int64_t kLeaderLockKey = 0x6b696e646c696e6c;

// Channel of the change notifications (migrations 9 and 10): every insert,
// update, delete or truncate of the tables of kNotifyingTables (db/
// database.h), payload the table's name, sent when its transaction commits.
inline constexpr char kChangesChannel[] = "kindling_changes";

struct Notification {
  std::string channel{};
  std::string payload{};
};

// pg_notify(channel, payload) in a transaction of its own on `db`.
[[nodiscard]] Status SendNotification(Database& db, std::string_view channel,
                                      std::string_view payload);

class Listener {
 public:
  // Connects and LISTENs on every channel (kTransient when unreachable).
  [[nodiscard]] static Result<std::unique_ptr<Listener>> Open(
      const std::string& dsn, const std::vector<std::string>& channels);
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // Waits up to `timeout` for notifications and returns what arrived (empty
  // on timeout). kTransient when the connection broke: notifications may
  // have been missed, so the caller reopens and then does a full sweep.
  [[nodiscard]] Result<std::vector<Notification>> Wait(std::chrono::milliseconds timeout);

  // A round trip on the connection: kTransient when it is gone (a peer that
  // vanished without closing never makes Wait fail).
  [[nodiscard]] Status Check();

  // The connection's socket, for another thread to poll(2) for input that
  // Wait has not taken yet (never to read or write it); valid as long as
  // this Listener.
  int socket() const;

 private:
  struct Impl;
  explicit Listener(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// A session-level advisory lock held by a dedicated connection: the leader
// election. The lock lives as long as the connection, so a crashed or
// partitioned holder loses it and another process can take over.
class SessionLock {
 public:
  // pg_try_advisory_lock(key): nullptr when another session holds it.
  [[nodiscard]] static Result<std::unique_ptr<SessionLock>> TryAcquire(const std::string& dsn,
                                                                       std::int64_t key);
  // Unlocks and closes.
  ~SessionLock();
  SessionLock(const SessionLock&) = delete;
  SessionLock& operator=(const SessionLock&) = delete;

  // Confirms the session (and so the lock) is still alive. kTransient when
  // it is not: the holder must stop acting as leader at once.
  [[nodiscard]] Status Check();

 private:
  struct Impl;
  explicit SessionLock(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kindling::db
