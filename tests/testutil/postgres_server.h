// PostgresServer: a throwaway PostgreSQL cluster for tests. The constructor
// runs `initdb` in a fresh temp dir and `pg_ctl start` on a free TCP port of
// 127.0.0.1 (plus a unix socket in the same dir), with fsync off and
// wal_level=logical like production; the destructor stops it
// (`pg_ctl stop -m fast`) and removes the dir. Superuser "postgres", trust auth.
//
// initdb refuses to run as root, so when the test runs as root (CI, dev
// machines) initdb and pg_ctl run as the `postgres` system user and the dir is
// chown'ed to it; otherwise they run as the current user.
//
// Starting a cluster costs seconds; most tests should use Shared() (one cluster
// per test binary, started on first use) with a fresh TestDatabase each.
// initdb runs once per machine and PostgreSQL version: its result is kept in
// $TMPDIR/kindling-pgcache-* and copied for each cluster. A cluster left
// behind by a killed test binary is stopped and removed by the next
// PostgresServer started with the same TMPDIR.
//
// Failures throw std::runtime_error (with the server log's tail): a test
// without its database cannot do anything useful. Thread-safe except
// Stop()/Start(), which must not race with other calls.
#pragma once

#include <filesystem>
#include <mutex>
#include <string>
#include <string_view>

namespace kindling::testutil {

class PostgresServer {
 public:
  PostgresServer();
  ~PostgresServer();
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  // The process-wide cluster, started on first call, stopped at exit.
  // Never Stop() it: other tests share it.
  static PostgresServer& Shared();

  int port() const { return port_; }
  const std::filesystem::path& socket_dir() const { return socket_dir_; }
  const std::filesystem::path& data_dir() const { return data_dir_; }

  // "postgresql://postgres@127.0.0.1:<port>/kindling"; the database is
  // created on the first call.
  std::string dsn();
  // TCP DSN for any database of this cluster.
  std::string DsnFor(std::string_view database) const;
  // The same through the unix socket (libpq keyword form).
  std::string SocketDsnFor(std::string_view database) const;

  // Creates an empty database named "<prefix>_<random>" and returns its name.
  std::string CreateDatabase(std::string_view prefix = "test");
  // Drops it, terminating its open connections first. Missing is not an error.
  void DropDatabase(std::string_view name);

  // Stops (fast shutdown: connections are cut) and starts again on the same
  // port and data; for tests of connection loss and reconnect.
  void Stop();
  void Start();

 private:
  void StartOnce();
  void RunSql(const std::string& sql);

  std::filesystem::path dir_;
  std::filesystem::path data_dir_;
  std::filesystem::path socket_dir_;
  std::filesystem::path log_path_;
  std::filesystem::path bin_dir_;
  int port_ = 0;
  bool running_ = false;
  std::once_flag default_database_;
};

// A fresh database on PostgresServer::Shared() (or a given server), dropped
// again by the destructor.
class TestDatabase {
 public:
  TestDatabase() : TestDatabase(PostgresServer::Shared()) {}
  explicit TestDatabase(PostgresServer& server);
  ~TestDatabase();
  TestDatabase(const TestDatabase&) = delete;
  TestDatabase& operator=(const TestDatabase&) = delete;

  const std::string& name() const { return name_; }
  const std::string& dsn() const { return dsn_; }
  PostgresServer& server() const { return server_; }

 private:
  PostgresServer& server_;
  std::string name_;
  std::string dsn_;
};

}  // namespace kindling::testutil
