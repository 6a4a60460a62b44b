// Database: a connection pool over libpqxx and the transaction helper every
// table-family function runs in.
//
// Nothing above db/ sees libpqxx: its exceptions stop here and become Errors:
//   kTransient        connection lost, serialization failure, deadlock, server
//                     shutting down, pool exhausted (safe to retry)
//   kInvalidArgument  unique/check/foreign-key/not-null violation or malformed
//                     input (a uuid that is not one), with a clean message that
//                     never includes the row's values
//   kInternal         anything else
//
// Usage: every table-family function takes a Tx& so that several of them (an
// operation and its audit event, say) commit or roll back together:
//
//   auto op = db.Transact([&](db::Tx& tx) -> Result<db::Operation> {
//     KINDLING_ASSIGN_OR_RETURN(auto queued, db::QueueOperation(tx, request));
//     KINDLING_RETURN_IF_ERROR(db::InsertAuditEvent(tx, event));
//     return queued.operation;
//   });
//
// Thread-safety: Database is thread-safe. A Tx belongs to one thread and lives
// only during its Transact callback.
#pragma once

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "common/result.h"

namespace kindling::db {

namespace internal {
struct ConnectionState;  // a libpqxx connection (database.cc)
struct TxState;          // a libpqxx transaction and its first failure
// Counts a transaction that changed `tables` (",name,name,": the
// trigger's list) for the tables named (database.cc).
void CountChangedTables(std::string_view tables);
}  // namespace internal

// Reads a DSN file (/etc/kindling/postgres.dsn): its content with surrounding
// whitespace trimmed. kNotFound when missing, kInvalidArgument when empty,
// kIo when unreadable. Errors name the path, never the DSN.
[[nodiscard]] Result<std::string> ReadDsnFile(const std::filesystem::path& path);

// The DSN with its password replaced by "***" (URI "user:pw@" and keyword
// "password=pw" forms), for logs and error messages.
std::string RedactDsn(std::string_view dsn);

// Creates database `name` through `maintenance_dsn` (a DSN for an existing
// database of the same cluster, e.g. "postgres") unless it exists; true when
// created. For clusters kindling runs itself (kindling dev).
[[nodiscard]] Result<bool> CreateDatabaseIfMissing(const std::string& maintenance_dsn,
                                                   const std::string& name);

// The tables whose changes are notified on kChangesChannel
// (db/notifications.h), in the order of TableCounts.
inline constexpr std::array<std::string_view, 6> kNotifyingTables = {
    "projects", "project_volumes",          "project_volume_operations", "project_volume_backups",
    "servers",  "server_component_statuses"};
using TableCounts = std::array<std::uint64_t, kNotifyingTables.size()>;

// Per table of kNotifyingTables, this process's read-write transactions run
// under a ReportChangedTables that changed it, counted after their COMMIT
// (or a COMMIT that failed: it may have happened). A cache of those rows
// (api/read_cache.h) that sees a count move cannot trust what it read of
// that table before: this process may have changed it.
TableCounts ChangedTableWrites();

// While one lives on a thread, each read-write transaction the thread runs
// asks, before its COMMIT, which of kNotifyingTables it changed (one more
// round trip; the notification trigger keeps the list, migration 10), and
// counts them in ChangedTableWrites. The API runs each request in one, to
// learn what the request's own writes were. Scopes nest (the inner one
// reports to itself only).
class ReportChangedTables {
 public:
  ReportChangedTables();
  ~ReportChangedTables();
  ReportChangedTables(const ReportChangedTables&) = delete;
  ReportChangedTables& operator=(const ReportChangedTables&) = delete;

  // Per table, the ChangedTableWrites count that this thread's last
  // transaction in the scope that changed the table brought (0: none).
  const TableCounts& changed() const { return changed_; }

 private:
  friend void internal::CountChangedTables(std::string_view tables);
  TableCounts changed_{};
  ReportChangedTables* outer_;
};

struct DatabaseOptions {
  std::string dsn{};
  // Connections opened at most; Acquire waits for a free one beyond that.
  std::size_t max_connections = 8;
  std::chrono::milliseconds acquire_timeout{10'000};
  // Attempts of one Transact when it fails with a retryable error.
  int max_transaction_attempts = 5;
  // Shown in pg_stat_activity; empty leaves the server's default.
  std::string application_name = "kindling";
};

enum class Isolation : std::uint8_t { kReadCommitted, kRepeatableRead, kSerializable };

struct TxOptions {
  Isolation isolation = Isolation::kReadCommitted;
  bool read_only = false;
  // Each statement on its own, without BEGIN/COMMIT (two round trips fewer):
  // for reads that need no snapshot shared between their statements, as
  // under read committed each statement takes its own anyway. REQUIRES:
  // read_only and kReadCommitted (a write would commit at once; the others
  // need one snapshot).
  bool autocommit = false;
  // 0: DatabaseOptions::max_transaction_attempts.
  int max_attempts = 0;
};

// For single reads on a hot path (the API's authenticated GETs).
inline constexpr TxOptions kAutocommitRead{.read_only = true, .autocommit = true};

class Database;

// One pooled connection; returned to the pool on destruction (closed instead
// when it broke or Discard() was called). REQUIRES: does not outlive its
// Database.
class PooledConnection {
 public:
  PooledConnection(PooledConnection&& other) noexcept;
  PooledConnection& operator=(PooledConnection&&) = delete;
  PooledConnection(const PooledConnection&) = delete;
  ~PooledConnection();

  void Discard() { discard_ = true; }
  // For db/ implementation files.
  internal::ConnectionState& state() { return *state_; }

 private:
  friend class Database;
  PooledConnection(Database* owner, std::unique_ptr<internal::ConnectionState> state);

  Database* owner_;
  std::unique_ptr<internal::ConnectionState> state_;
  bool discard_ = false;
};

// One open transaction, handed to Transact callbacks and passed on to the
// table-family functions. Once a statement fails the transaction is dead:
// later statements return the same error and Transact rolls back.
class Tx {
 public:
  explicit Tx(internal::TxState& state) : state_(state) {}
  Tx(const Tx&) = delete;
  Tx& operator=(const Tx&) = delete;

  bool failed() const;
  // For db/ implementation files.
  internal::TxState& state() { return state_; }

 private:
  internal::TxState& state_;
};

class Database {
 public:
  // Connects once to check the DSN and the server (kTransient when the server
  // cannot be reached, so a starting process may wait for it).
  [[nodiscard]] static Result<std::unique_ptr<Database>> Open(DatabaseOptions options);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // A connection from the pool, opening one when none is idle and fewer than
  // max_connections are open; waits up to acquire_timeout otherwise
  // (kTransient). Waiting callers are served in arrival order.
  [[nodiscard]] Result<PooledConnection> Acquire();

  // Runs `fn(Tx&)` in a transaction and commits when it returns a value;
  // rolls back when it returns an error, throws, or a statement failed. A
  // retryable failure (serialization failure, deadlock, connection lost
  // before COMMIT) runs `fn` again on a fresh transaction, up to
  // max_attempts times with a short backoff, so `fn` must not have effects
  // outside the database. A connection lost during COMMIT is kTransient
  // without retry: the commit may or may not have happened. With
  // TxOptions::autocommit (reads only) there is no BEGIN/COMMIT: each
  // statement runs on its own, and a failed one fails the rest as above.
  // `fn` returns Status or Result<T>; Transact returns the same type. The
  // whole call is a BlockingRegion (common/blocking_region.h), and a
  // read-write one counts in ChangedTableWrites (ReportChangedTables).
  template <typename F>
  auto Transact(F&& fn, const TxOptions& options = {}) -> std::invoke_result_t<F&, Tx&>;

  // SELECT 1 on a pooled connection (health checks).
  [[nodiscard]] Status Ping();

  const DatabaseOptions& options() const { return options_; }
  // Callers of Acquire() waiting for a connection now.
  std::size_t waiting() const;

 private:
  friend class PooledConnection;
  explicit Database(DatabaseOptions options);

  [[nodiscard]] Result<std::unique_ptr<internal::ConnectionState>> Connect();
  void Release(std::unique_ptr<internal::ConnectionState> state, bool discard);
  // A connection slot is free (one closed or failed to open): it goes to the
  // oldest waiter, which opens a connection, or back to the pool. REQUIRES:
  // mu_ held.
  void FreeSlot();
  [[nodiscard]] Status RunTransaction(const TxOptions& options,
                                      const std::function<Status(Tx&)>& fn);

  const DatabaseOptions options_;
  // A caller of Acquire() waiting for its turn; Release/FreeSlot serve the
  // oldest one by setting one of its fields (under mu_) and removing it.
  struct Waiter {
    std::condition_variable ready;
    std::unique_ptr<internal::ConnectionState> given{};  // a connection handed over
    bool may_open = false;                               // a slot handed over
  };

  mutable std::mutex mu_;
  std::vector<std::unique_ptr<internal::ConnectionState>> idle_;  // guarded by mu_
  std::size_t open_ = 0;         // connections open or being opened; guarded by mu_
  std::deque<Waiter*> waiters_;  // oldest first; guarded by mu_
};

template <typename F>
auto Database::Transact(F&& fn, const TxOptions& options) -> std::invoke_result_t<F&, Tx&> {
  using R = std::invoke_result_t<F&, Tx&>;
  if constexpr (std::is_same_v<R, Status>) {
    return RunTransaction(options, [&fn](Tx& tx) -> Status { return fn(tx); });
  } else {
    std::optional<typename R::value_type> value;
    Status status = RunTransaction(options, [&fn, &value](Tx& tx) -> Status {
      R result = fn(tx);
      if (!result) return std::unexpected(std::move(result).error());
      value.emplace(std::move(*result));
      return {};
    });
    if (!status) return std::unexpected(std::move(status).error());
    return std::move(*value);
  }
}

}  // namespace kindling::db
