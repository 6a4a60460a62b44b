#include "db/database.h"

#include <libpq-fe.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <random>
#include <thread>

#include "common/blocking_region.h"
#include "common/files.h"
#include "db/internal.h"

namespace kindling::db {
namespace {

// libpq messages span lines ("...failed: X\n\tIs the server running...");
// one line reads better in logs and JSON.
std::string OneLine(std::string_view text) {
  std::string out;
  bool space = false;
  for (char c : text) {
    if (c == '\n' || c == '\t' || c == '\r' || c == ' ') {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

// The primary line of a server error ("ERROR:  duplicate key ..."), without
// the DETAIL line that would quote the row's values.
std::string PrimaryMessage(std::string_view what) {
  std::string_view line = what.substr(0, what.find('\n'));
  for (std::string_view prefix : {"ERROR:", "FATAL:", "PANIC:"}) {
    if (line.starts_with(prefix)) line.remove_prefix(prefix.size());
  }
  while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
  return std::string(line);
}

// The quoted constraint name in a violation's primary message.
std::string ConstraintName(std::string_view message) {
  const auto key = message.find("constraint \"");
  if (key == std::string_view::npos) return "";
  const auto start = key + 12;
  const auto end = message.find('"', start);
  if (end == std::string_view::npos) return "";
  return std::string(message.substr(start, end - start));
}

// Messages for the violations callers are expected to hit; the others keep
// PostgreSQL's primary line, which names the table and constraint only.
std::string ViolationMessage(const std::string& primary) {
  static const std::pair<std::string_view, std::string_view> kKnown[] = {
      {"users_email_key", "a user with this email already exists"},
      {"api_keys_key_hash_key", "an API key with this secret already exists"},
      {"projects_organization_id_name_key",
       "a project with this name already exists in the organization"},
      {"project_volumes_one_live_per_project", "the project already has a volume"},
      {"project_volume_operations_one_active_per_volume",
       "the volume already has a pending or running operation"},
      {"organization_memberships_pkey", "the user is already a member of the organization"},
  };
  const std::string name = ConstraintName(primary);
  for (const auto& [constraint, message] : kKnown) {
    if (name == constraint) return std::string(message);
  }
  return primary;
}

Error ConnectError(std::string_view what) {
  const std::string message = "cannot connect to PostgreSQL: " + OneLine(what);
  // Retrying cannot fix credentials or a missing database; everything else
  // (refused, timeout, starting up) may pass.
  if (what.find("authentication failed") != std::string_view::npos ||
      what.find("no pg_hba.conf entry") != std::string_view::npos)
    return Error(ErrorKind::kPermissionDenied, message);
  if (what.find("does not exist") != std::string_view::npos)
    return Error(ErrorKind::kNotFound, message);
  return Error(ErrorKind::kTransient, message);
}

std::chrono::milliseconds Backoff(int attempt) {
  thread_local std::minstd_rand rng{std::random_device{}()};
  const int base = std::min(10 << std::min(attempt, 5), 300);
  std::uniform_int_distribution<int> jitter(0, base);
  return std::chrono::milliseconds(base + jitter(rng));
}

struct Outcome {
  Status status;
  bool retryable = false;
  bool broken = false;
  // The notifying tables the transaction changed, as the trigger listed
  // them (",name,name,"), when asked for before its COMMIT.
  std::string changed_tables;
};

// The list migration 10's trigger keeps in a transaction-local setting.
constexpr char kChangedTablesQuery[] =
    "SELECT coalesce(current_setting('kindling.changed_tables', true), '')";

// `Work`: a pqxx::transaction (BEGIN ... COMMIT) or pqxx::nontransaction
// (each statement commits on its own; commit() sends nothing).
// `report_changed`: asks for Outcome::changed_tables before the COMMIT.
template <typename Work>
Outcome RunOnce(pqxx::connection& conn, const std::function<Status(Tx&)>& fn,
                bool report_changed = false) {
  Outcome outcome;
  std::optional<Work> work;
  try {
    work.emplace(conn);
  } catch (...) {
    Error error =
        internal::MapCurrentException("begin transaction", &outcome.retryable, &outcome.broken);
    outcome.status = std::unexpected(std::move(error));
    return outcome;
  }
  internal::TxState state(*work);
  Tx tx(state);
  Status result;
  try {
    result = fn(tx);
  } catch (...) {
    // Callers above db/ do not throw; this catches libpqxx calls made
    // directly in a db/ callback.
    bool retryable = false;
    bool broken = false;
    Error error = internal::MapCurrentException("transaction", &retryable, &broken);
    if (!state.failure) {
      state.failure = error;
      state.retryable = retryable;
      state.broken = broken;
    }
  }
  if (state.failure) {
    // PostgreSQL would answer COMMIT of a failed transaction with a silent
    // ROLLBACK; never try it.
    outcome.status = std::unexpected(*state.failure);
    outcome.retryable = state.retryable;
    outcome.broken = state.broken;
    work.reset();
    return outcome;
  }
  if (!result) {
    outcome.status = std::move(result);
    work.reset();
    return outcome;
  }
  if (report_changed) {
    try {
      const pqxx::row row = work->exec1(kChangedTablesQuery);
      outcome.changed_tables = row[0].as<std::string>();
    } catch (...) {
      Error error =
          internal::MapCurrentException("changed tables", &outcome.retryable, &outcome.broken);
      outcome.status = std::unexpected(std::move(error));
      work.reset();
      return outcome;
    }
  }
  try {
    work->commit();
  } catch (const pqxx::in_doubt_error& e) {
    outcome.broken = true;
    outcome.status = TransientError(
        "connection lost during COMMIT; the transaction may or may not have committed: " +
        OneLine(e.what()));
    return outcome;
  } catch (...) {
    bool retryable = false;
    Error error = internal::MapCurrentException("commit", &retryable, &outcome.broken);
    // A serialization failure at COMMIT (serializable isolation) rolled back
    // for sure; a broken connection there leaves the outcome unknown.
    outcome.retryable = retryable && !outcome.broken;
    outcome.status = std::unexpected(std::move(error));
  }
  return outcome;
}

}  // namespace

namespace internal {

Error MapCurrentException(std::string_view what, bool* retryable, bool* broken) {
  *retryable = false;
  *broken = false;
  const std::string context(what);
  try {
    throw;
  } catch (const pqxx::in_doubt_error& e) {
    *broken = true;
    return Error(ErrorKind::kTransient, context + ": outcome unknown: " + OneLine(e.what()));
  } catch (const pqxx::broken_connection& e) {
    // Includes too_many_connections. The transaction never committed, so a
    // fresh one on a new connection is safe.
    *retryable = true;
    *broken = true;
    return Error(ErrorKind::kTransient, context + ": connection lost: " + OneLine(e.what()));
  } catch (const pqxx::statement_completion_unknown& e) {
    *broken = true;
    return Error(ErrorKind::kTransient, context + ": " + PrimaryMessage(e.what()));
  } catch (const pqxx::transaction_rollback& e) {
    // serialization_failure, deadlock_detected: retry the whole transaction.
    *retryable = true;
    return Error(ErrorKind::kTransient, context + ": " + PrimaryMessage(e.what()));
  } catch (const pqxx::integrity_constraint_violation& e) {
    return Error(ErrorKind::kInvalidArgument, ViolationMessage(PrimaryMessage(e.what())));
  } catch (const pqxx::data_exception& e) {
    // Malformed input: a uuid that is not one, an out-of-range number...
    return Error(ErrorKind::kInvalidArgument, context + ": " + PrimaryMessage(e.what()));
  } catch (const pqxx::sql_error& e) {
    const std::string state = e.sqlstate();
    const std::string primary = PrimaryMessage(e.what());
    // 08: connection exception; 53: insufficient resources; 57P0x: server
    // shutting down; 57014: statement timeout/cancel; 55P03: lock timeout.
    // A prepared statement (internal::Exec) the schema changed under
    // ("cached plan must not change result type", after another process's
    // migration) or that vanished: its connection's statements go with the
    // connection, and the transaction runs again on a fresh one.
    if ((state == "0A000" && primary.find("cached plan") != std::string::npos) ||
        state == "26000") {
      *retryable = true;
      *broken = true;
      return Error(ErrorKind::kTransient, context + ": " + primary);
    }
    if (state.starts_with("08") || state.starts_with("57P0")) {
      *retryable = true;
      *broken = true;
      return Error(ErrorKind::kTransient, context + ": " + primary);
    }
    if (state.starts_with("53") || state == "57014" || state == "55P03") {
      return Error(ErrorKind::kTransient, context + ": " + primary);
    }
    if (state.starts_with("23"))
      return Error(ErrorKind::kInvalidArgument, ViolationMessage(primary));
    if (state.starts_with("22"))
      return Error(ErrorKind::kInvalidArgument, context + ": " + primary);
    return Error(ErrorKind::kInternal, context + ": " + primary);
  } catch (const std::exception& e) {
    return Error(ErrorKind::kInternal, context + ": " + OneLine(e.what()));
  } catch (...) {
    return Error(ErrorKind::kInternal, context + ": unknown exception");
  }
}

}  // namespace internal

Result<std::string> ReadDsnFile(const std::filesystem::path& path) {
  auto content = ReadFile(path);
  if (!content) {
    if (content.error().is_not_found())
      return NotFound("DSN file " + path.string() + " does not exist");
    // ReadFile's messages carry the path and errno, never the content.
    return std::unexpected(Error(content.error().kind(), "cannot read DSN file " + path.string() +
                                                             ": " + content.error().message()));
  }
  std::string_view dsn = *content;
  while (!dsn.empty() && std::isspace(static_cast<unsigned char>(dsn.front())))
    dsn.remove_prefix(1);
  while (!dsn.empty() && std::isspace(static_cast<unsigned char>(dsn.back()))) dsn.remove_suffix(1);
  if (dsn.empty()) return InvalidArgument("DSN file " + path.string() + " is empty");
  return std::string(dsn);
}

Result<bool> CreateDatabaseIfMissing(const std::string& maintenance_dsn, const std::string& name) {
  try {
    pqxx::connection conn(maintenance_dsn);
    pqxx::quiet_errorhandler quiet(conn);
    pqxx::nontransaction work(conn);
    if (!internal::Exec(work, "SELECT 1 FROM pg_database WHERE datname = $1", name).empty())
      return false;
    // CREATE DATABASE takes no parameters: quote the name as an identifier.
    work.exec("CREATE DATABASE " + work.quote_name(name) + " TEMPLATE template0 ENCODING 'UTF8'");
    return true;
  } catch (const pqxx::broken_connection& e) {
    return std::unexpected(ConnectError(e.what()));
  } catch (...) {
    bool retryable = false;
    bool broken = false;
    return std::unexpected(internal::MapCurrentException("create database", &retryable, &broken));
  }
}

std::string RedactDsn(std::string_view dsn) {
  std::string out(dsn);
  // URI form: scheme://user:password@host...
  if (const auto scheme = out.find("://"); scheme != std::string::npos) {
    const auto authority = scheme + 3;
    const auto at = out.find('@', authority);
    const auto slash = out.find('/', authority);
    if (at != std::string::npos && (slash == std::string::npos || at < slash)) {
      const auto colon = out.find(':', authority);
      if (colon != std::string::npos && colon < at) out.replace(colon + 1, at - colon - 1, "***");
    }
  }
  // Keyword form and URI query: password=value (value possibly quoted).
  for (std::size_t pos = 0; (pos = out.find("password", pos)) != std::string::npos;) {
    std::size_t i = pos + 8;
    while (i < out.size() && out[i] == ' ') ++i;
    if (i >= out.size() || out[i] != '=') {
      pos = i;
      continue;
    }
    ++i;
    while (i < out.size() && out[i] == ' ') ++i;
    std::size_t end = i;
    if (end < out.size() && out[end] == '\'') {
      for (++end; end < out.size() && out[end] != '\''; ++end) {
        if (out[end] == '\\') ++end;
      }
      end = std::min(end + 1, out.size());
    } else {
      while (end < out.size() && out[end] != ' ' && out[end] != '&') ++end;
    }
    out.replace(i, end - i, "***");
    pos = i + 3;
  }
  return out;
}

bool Tx::failed() const { return state_.failure.has_value(); }

PooledConnection::PooledConnection(Database* owner,
                                   std::unique_ptr<internal::ConnectionState> state)
    : owner_(owner), state_(std::move(state)) {}

PooledConnection::PooledConnection(PooledConnection&& other) noexcept
    : owner_(std::exchange(other.owner_, nullptr)),
      state_(std::move(other.state_)),
      discard_(other.discard_) {}

PooledConnection::~PooledConnection() {
  if (owner_ != nullptr && state_ != nullptr) owner_->Release(std::move(state_), discard_);
}

Database::Database(DatabaseOptions options) : options_(std::move(options)) {}

Database::~Database() = default;

Result<std::unique_ptr<Database>> Database::Open(DatabaseOptions options) {
  if (options.dsn.empty()) return InvalidArgument("empty PostgreSQL DSN");
  if (options.max_connections == 0) return InvalidArgument("max_connections must be positive");
  if (options.max_transaction_attempts < 1) options.max_transaction_attempts = 1;
  // Catches typos before any connection attempt; libpq's message is left out
  // because it may quote parts of the DSN.
  char* parse_error = nullptr;
  PQconninfoOption* parsed = PQconninfoParse(options.dsn.c_str(), &parse_error);
  if (parsed == nullptr) {
    PQfreemem(parse_error);
    return InvalidArgument("the PostgreSQL DSN is not a valid connection string or URI");
  }
  PQconninfoFree(parsed);

  std::unique_ptr<Database> db(new Database(std::move(options)));
  KINDLING_ASSIGN_OR_RETURN(auto conn, db->Acquire());
  (void)conn;
  return db;
}

Result<std::unique_ptr<internal::ConnectionState>> Database::Connect() {
  auto state = std::make_unique<internal::ConnectionState>();
  try {
    state->conn = std::make_unique<pqxx::connection>(options_.dsn);
    state->quiet = std::make_unique<pqxx::quiet_errorhandler>(*state->conn);
    if (!options_.application_name.empty()) {
      pqxx::nontransaction work(*state->conn);
      work.exec("SET application_name = " + work.quote(options_.application_name));
    }
  } catch (const pqxx::broken_connection& e) {
    return std::unexpected(ConnectError(e.what()));
  } catch (...) {
    bool retryable = false;
    bool broken = false;
    return std::unexpected(internal::MapCurrentException("connect", &retryable, &broken));
  }
  return state;
}

Result<PooledConnection> Database::Acquire() {
  std::unique_lock lock(mu_);
  // Callers queue in arrival order once the pool is exhausted: a returned
  // connection goes to the oldest waiter, not to whichever thread locks the
  // mutex first, so that no caller waits for many others' turns.
  if (waiters_.empty() && !idle_.empty()) {
    auto state = std::move(idle_.back());
    idle_.pop_back();
    return PooledConnection(this, std::move(state));
  }
  if (waiters_.empty() && open_ < options_.max_connections) {
    ++open_;  // reserve the slot; connect outside the lock
  } else {
    Waiter me;
    waiters_.push_back(&me);
    const bool served = me.ready.wait_for(lock, options_.acquire_timeout,
                                          [&me] { return me.given || me.may_open; });
    if (!served) {
      std::erase(waiters_, &me);
      return TransientError("no free PostgreSQL connection within " +
                            std::to_string(options_.acquire_timeout.count()) + " ms (pool of " +
                            std::to_string(options_.max_connections) + ")");
    }
    if (me.given) return PooledConnection(this, std::move(me.given));
    // A connection was closed and its slot handed to us (open_ still counts it).
  }
  lock.unlock();
  auto state = Connect();
  if (!state) {
    lock.lock();
    FreeSlot();
    return std::unexpected(std::move(state).error());
  }
  return PooledConnection(this, std::move(*state));
}

std::size_t Database::waiting() const {
  std::lock_guard lock(mu_);
  return waiters_.size();
}

void Database::FreeSlot() {
  if (waiters_.empty()) {
    --open_;
    return;
  }
  Waiter* next = waiters_.front();
  waiters_.pop_front();
  next->may_open = true;
  next->ready.notify_one();  // under mu_: the waiter cannot return (and go) before this
}

void Database::Release(std::unique_ptr<internal::ConnectionState> state, bool discard) {
  const bool reusable = !discard && state->conn != nullptr && state->conn->is_open();
  if (!reusable) state.reset();  // closes outside the lock
  std::lock_guard lock(mu_);
  if (!reusable) {
    FreeSlot();
    return;
  }
  if (waiters_.empty()) {
    idle_.push_back(std::move(state));
    return;
  }
  Waiter* next = waiters_.front();
  waiters_.pop_front();
  next->given = std::move(state);
  next->ready.notify_one();  // under mu_, as in FreeSlot
}

namespace {
std::array<std::atomic<std::uint64_t>, kNotifyingTables.size()> changed_table_writes{};
thread_local ReportChangedTables* reporting = nullptr;  // the innermost scope
}  // namespace

void internal::CountChangedTables(std::string_view tables) {
  for (std::size_t i = 0; i < kNotifyingTables.size(); ++i) {
    const std::string name = "," + std::string(kNotifyingTables[i]) + ",";
    if (tables.find(name) == std::string_view::npos) continue;
    const std::uint64_t count = ++changed_table_writes[i];
    if (reporting != nullptr) reporting->changed_[i] = count;
  }
}

TableCounts ChangedTableWrites() {
  TableCounts counts{};
  for (std::size_t i = 0; i < counts.size(); ++i) counts[i] = changed_table_writes[i].load();
  return counts;
}

ReportChangedTables::ReportChangedTables() : outer_(reporting) { reporting = this; }

ReportChangedTables::~ReportChangedTables() { reporting = outer_; }

Status Database::RunTransaction(const TxOptions& options, const std::function<Status(Tx&)>& fn) {
  // Waiting for a connection and for the server: on the API's connection
  // loop, another thread serves requests meanwhile (common/blocking_region.h).
  const BlockingRegion blocking;
  const int attempts =
      options.max_attempts > 0 ? options.max_attempts : options_.max_transaction_attempts;
  for (int attempt = 1;; ++attempt) {
    KINDLING_ASSIGN_OR_RETURN(PooledConnection conn, Acquire());
    pqxx::connection& c = *conn.state().conn;
    Outcome outcome;
    const bool ro = options.read_only;
    const bool report = !ro && reporting != nullptr;
    using pqxx::read_committed, pqxx::repeatable_read, pqxx::serializable;
    using pqxx::read_only, pqxx::read_write;
    if (options.autocommit && ro && options.isolation == Isolation::kReadCommitted) {
      outcome = RunOnce<pqxx::nontransaction>(c, fn);
    } else {
      switch (options.isolation) {
        case Isolation::kReadCommitted:
          outcome = ro ? RunOnce<pqxx::transaction<read_committed, read_only>>(c, fn)
                       : RunOnce<pqxx::transaction<read_committed, read_write>>(c, fn, report);
          break;
        case Isolation::kRepeatableRead:
          outcome = ro ? RunOnce<pqxx::transaction<repeatable_read, read_only>>(c, fn)
                       : RunOnce<pqxx::transaction<repeatable_read, read_write>>(c, fn, report);
          break;
        case Isolation::kSerializable:
          outcome = ro ? RunOnce<pqxx::transaction<serializable, read_only>>(c, fn)
                       : RunOnce<pqxx::transaction<serializable, read_write>>(c, fn, report);
          break;
      }
    }
    // After the COMMIT: a read started once the count moved sees the change.
    if (!outcome.changed_tables.empty()) internal::CountChangedTables(outcome.changed_tables);
    if (outcome.broken) conn.Discard();
    if (outcome.status || !outcome.retryable || attempt >= attempts) return outcome.status;
    std::this_thread::sleep_for(Backoff(attempt));
  }
}

Status Database::Ping() {
  return Transact(
      [](Tx& tx) -> Status {
        return internal::Run(tx, "ping", [](pqxx::transaction_base& w) -> Status {
          w.exec("SELECT 1");
          return {};
        });
      },
      TxOptions{.read_only = true, .autocommit = true, .max_attempts = 1});
}

}  // namespace kindling::db
