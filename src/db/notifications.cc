#include "db/notifications.h"

#include "db/internal.h"

namespace kindling::db {
namespace {

// Collects notifications of one channel into the listener's queue.
class Receiver final : public pqxx::notification_receiver {
 public:
  Receiver(pqxx::connection& conn, const std::string& channel, std::vector<Notification>& queue)
      : pqxx::notification_receiver(conn, channel), queue_(queue) {}
  void operator()(const std::string& payload, int /*backend_pid*/) override {
    queue_.push_back(Notification{channel(), payload});
  }

 private:
  std::vector<Notification>& queue_;
};

Error MapException(std::string_view what) {
  bool retryable = false;
  bool broken = false;
  return internal::MapCurrentException(what, &retryable, &broken);
}

}  // namespace

struct Listener::Impl {
  std::unique_ptr<pqxx::connection> conn;
  std::unique_ptr<pqxx::errorhandler> quiet;
  std::vector<Notification> queue;
  std::vector<std::unique_ptr<Receiver>> receivers;

  ~Impl() {
    // Receivers unregister from the connection, so they go first.
    receivers.clear();
    quiet.reset();
  }
};

Listener::Listener(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Listener::~Listener() = default;

Result<std::unique_ptr<Listener>> Listener::Open(const std::string& dsn,
                                                 const std::vector<std::string>& channels) {
  auto impl = std::make_unique<Impl>();
  try {
    impl->conn = std::make_unique<pqxx::connection>(dsn);
    impl->quiet = std::make_unique<pqxx::quiet_errorhandler>(*impl->conn);
    for (const std::string& channel : channels)
      impl->receivers.push_back(std::make_unique<Receiver>(*impl->conn, channel, impl->queue));
    // Receivers LISTEN lazily; a round trip makes sure the server knows
    // before Open returns, so nothing sent afterwards is missed.
    impl->conn->get_notifs();
    pqxx::nontransaction(*impl->conn).exec("SELECT 1");
  } catch (...) {
    return std::unexpected(MapException("listen"));
  }
  return std::unique_ptr<Listener>(new Listener(std::move(impl)));
}

Result<std::vector<Notification>> Listener::Wait(std::chrono::milliseconds timeout) {
  try {
    if (impl_->queue.empty() && impl_->conn->get_notifs() == 0 && timeout.count() > 0) {
      const long ms = static_cast<long>(timeout.count());
      impl_->conn->await_notification(ms / 1000, (ms % 1000) * 1000);
    }
    if (!impl_->conn->is_open()) return TransientError("listen: connection lost");
  } catch (...) {
    return std::unexpected(MapException("listen"));
  }
  std::vector<Notification> out;
  out.swap(impl_->queue);
  return out;
}

Status Listener::Check() {
  try {
    pqxx::nontransaction(*impl_->conn).exec("SELECT 1");
    if (!impl_->conn->is_open()) return TransientError("listen: connection lost");
  } catch (...) {
    return std::unexpected(MapException("listen"));
  }
  return {};
}

Status SendNotification(Database& db, std::string_view channel, std::string_view payload) {
  return db.Transact([&](Tx& tx) -> Status {
    return internal::Run(tx, "notify", [&](pqxx::transaction_base& w) -> Status {
      internal::Notify(w, channel, payload);
      return {};
    });
  });
}

int Listener::socket() const { return impl_->conn->sock(); }

struct SessionLock::Impl {
  std::unique_ptr<pqxx::connection> conn;
  std::unique_ptr<pqxx::errorhandler> quiet;
  std::int64_t key = 0;
};

SessionLock::SessionLock(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

SessionLock::~SessionLock() {
  try {
    if (impl_->conn->is_open())
      pqxx::nontransaction(*impl_->conn).exec_params("SELECT pg_advisory_unlock($1)", impl_->key);
  } catch (...) {
    // Closing the connection releases the lock anyway.
  }
  impl_->quiet.reset();
}

Result<std::unique_ptr<SessionLock>> SessionLock::TryAcquire(const std::string& dsn,
                                                             std::int64_t key) {
  auto impl = std::make_unique<Impl>();
  impl->key = key;
  try {
    impl->conn = std::make_unique<pqxx::connection>(dsn);
    impl->quiet = std::make_unique<pqxx::quiet_errorhandler>(*impl->conn);
    const pqxx::row row =
        pqxx::nontransaction(*impl->conn).exec_params1("SELECT pg_try_advisory_lock($1)", key);
    if (!row[0].as<bool>()) return std::unique_ptr<SessionLock>();
  } catch (...) {
    return std::unexpected(MapException("advisory lock"));
  }
  return std::unique_ptr<SessionLock>(new SessionLock(std::move(impl)));
}

Status SessionLock::Check() {
  // Asks pg_locks rather than trusting the connection: libpqxx may have
  // silently reconnected, and a new session does not hold the lock.
  try {
    const pqxx::row row =
        pqxx::nontransaction(*impl_->conn)
            .exec_params1(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND pid = pg_backend_pid() AND objid = ($1::bigint & 4294967295)::oid "
                "AND classid = ($1::bigint >> 32)::oid",
                impl_->key);
    if (row[0].as<long long>() == 0) return TransientError("leader lock lost");
  } catch (...) {
    return std::unexpected(MapException("advisory lock check"));
  }
  return {};
}

}  // namespace kindling::db
