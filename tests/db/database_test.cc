#include "db/database.h"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "db/internal.h"
#include "db_test_util.h"
#include "testutil/temp_dir.h"

namespace kindling::db {
namespace {

// Runs `sql` inside `tx` through the same path the table families use.
Status Exec(Tx& tx, const std::string& sql) {
  return internal::Run(tx, "test statement", [&](pqxx::transaction_base& w) -> Status {
    w.exec(sql);
    return {};
  });
}

Result<long long> Count(Tx& tx, const std::string& sql) {
  return internal::Run(tx, "test count", [&](pqxx::transaction_base& w) -> Result<long long> {
    return w.exec1(sql)[0].as<long long>();
  });
}

TEST(DsnFileTest, TrimsWhitespace) {
  testutil::TempDir dir;
  testutil::WriteFile(dir / "postgres.dsn", "  postgresql://u@h:5432/db \n\n");
  auto dsn = ReadDsnFile(dir / "postgres.dsn");
  ASSERT_TRUE(dsn) << dsn.error().message();
  EXPECT_EQ(*dsn, "postgresql://u@h:5432/db");
}

TEST(DsnFileTest, MissingNamesThePath) {
  testutil::TempDir dir;
  auto dsn = ReadDsnFile(dir / "nope.dsn");
  ASSERT_FALSE(dsn);
  EXPECT_EQ(dsn.error().kind(), ErrorKind::kNotFound);
  EXPECT_NE(dsn.error().message().find((dir / "nope.dsn").string()), std::string::npos);
}

TEST(DsnFileTest, EmptyIsInvalid) {
  testutil::TempDir dir;
  testutil::WriteFile(dir / "postgres.dsn", " \n\t");
  auto dsn = ReadDsnFile(dir / "postgres.dsn");
  ASSERT_FALSE(dsn);
  EXPECT_EQ(dsn.error().kind(), ErrorKind::kInvalidArgument);
}

TEST(DsnFileTest, UnreadableDoesNotEchoContent) {
  testutil::TempDir dir;
  // A directory where the file should be: reading fails after open.
  std::filesystem::create_directory(dir / "postgres.dsn");
  auto dsn = ReadDsnFile(dir / "postgres.dsn");
  ASSERT_FALSE(dsn);
  EXPECT_NE(dsn.error().message().find("postgres.dsn"), std::string::npos);
}

TEST(RedactDsnTest, HidesPasswords) {
  EXPECT_EQ(RedactDsn("postgresql://kindling:s3cret@db:5432/k"),
            "postgresql://kindling:***@db:5432/k");
  EXPECT_EQ(RedactDsn("postgresql://kindling@db/k?password=s3cret&sslmode=require"),
            "postgresql://kindling@db/k?password=***&sslmode=require");
  EXPECT_EQ(RedactDsn("host=db user=k password='s3 cret' dbname=k"),
            "host=db user=k password=*** dbname=k");
  EXPECT_EQ(RedactDsn("host=db password = s3cret"), "host=db password = ***");
  EXPECT_EQ(RedactDsn("postgresql://db/k"), "postgresql://db/k");
}

TEST(DatabaseOpenTest, MalformedDsnIsInvalidArgument) {
  auto db = Database::Open({.dsn = "host=x password=hunter2 nonsense"});
  ASSERT_FALSE(db);
  EXPECT_EQ(db.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_EQ(db.error().message().find("hunter2"), std::string::npos);
}

TEST(DatabaseOpenTest, UnreachableServerIsTransientAndHidesPassword) {
  auto db = Database::Open({.dsn = "postgresql://kindling:hunter2@127.0.0.1:1/kindling"});
  ASSERT_FALSE(db);
  EXPECT_EQ(db.error().kind(), ErrorKind::kTransient) << db.error().message();
  EXPECT_EQ(db.error().message().find("hunter2"), std::string::npos) << db.error().message();
}

TEST(DatabaseOpenTest, MissingDatabaseIsNotFound) {
  auto db = Database::Open({.dsn = testutil::PostgresServer::Shared().DsnFor("no_such_db")});
  ASSERT_FALSE(db);
  EXPECT_EQ(db.error().kind(), ErrorKind::kNotFound) << db.error().message();
}

class DatabaseTest : public DbTest {};

TEST_F(DatabaseTest, AReportingThreadCountsTheNotifyingTablesItsTransactionsChanged) {
  constexpr std::size_t kProjects = 0;
  constexpr std::size_t kServers = 4;
  static_assert(kNotifyingTables[kProjects] == "projects" &&
                kNotifyingTables[kServers] == "servers");
  const auto insert_server = [](const std::string& name) {
    return [name](Tx& tx) {
      return Exec(tx,
                  "INSERT INTO servers (id, hostname, internal_ip) VALUES (gen_random_uuid(), '" +
                      name + "', '10.0.0.1')");
    };
  };
  const TableCounts start = ChangedTableWrites();
  // Outside a scope: nothing asked, nothing counted.
  ASSERT_OK(db().Transact(insert_server("w1")));
  EXPECT_EQ(ChangedTableWrites(), start);

  const ReportChangedTables report;
  // A read, a write of no notifying table, a write rolled back: none.
  ASSERT_OK(db().Transact([](Tx& tx) { return Exec(tx, "SELECT 1"); }, kAutocommitRead));
  ASSERT_OK(db().Transact([](Tx& tx) { return Exec(tx, "CREATE TABLE t (v int)"); }));
  EXPECT_FALSE(db().Transact([&](Tx& tx) -> Status {
    KINDLING_RETURN_IF_ERROR(insert_server("w2")(tx));
    return InvalidArgument("no");
  }));
  EXPECT_EQ(report.changed(), TableCounts{});

  // Two rows of servers in one transaction: one write of that table.
  ASSERT_OK(db().Transact([&](Tx& tx) -> Status {
    KINDLING_RETURN_IF_ERROR(insert_server("w3")(tx));
    return insert_server("w4")(tx);
  }));
  TableCounts expected{};
  expected[kServers] = ChangedTableWrites()[kServers];
  EXPECT_EQ(expected[kServers], start[kServers] + 1);
  EXPECT_EQ(report.changed(), expected);
  EXPECT_EQ(ChangedTableWrites()[kProjects], start[kProjects]);

  // A nested scope reports its own writes only; the outer one goes on.
  {
    const ReportChangedTables inner;
    ASSERT_OK(db().Transact(insert_server("w5")));
    EXPECT_EQ(inner.changed()[kServers], start[kServers] + 2);
  }
  EXPECT_EQ(report.changed(), expected);
  ASSERT_OK(db().Transact(insert_server("w6")));
  EXPECT_EQ(report.changed()[kServers], start[kServers] + 3);
}

TEST_F(DatabaseTest, TransactCommitsAndReturnsValue) {
  ASSERT_OK(db().Transact([](Tx& tx) { return Exec(tx, "CREATE TABLE t (v int)"); }));
  auto value = db().Transact([](Tx& tx) -> Result<int> {
    KINDLING_RETURN_IF_ERROR(Exec(tx, "INSERT INTO t VALUES (42)"));
    return 7;
  });
  ASSERT_TRUE(value);
  EXPECT_EQ(*value, 7);
  EXPECT_EQ(Sql("SELECT count(*) FROM t")[0][0].as<int>(), 1);
}

TEST_F(DatabaseTest, ErrorFromCallbackRollsBack) {
  ASSERT_OK(db().Transact([](Tx& tx) { return Exec(tx, "CREATE TABLE t (v int)"); }));
  auto status = db().Transact([](Tx& tx) -> Status {
    KINDLING_RETURN_IF_ERROR(Exec(tx, "INSERT INTO t VALUES (1)"));
    return InvalidArgument("changed my mind");
  });
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().message(), "changed my mind");
  EXPECT_EQ(Sql("SELECT count(*) FROM t")[0][0].as<int>(), 0);
}

TEST_F(DatabaseTest, FailedStatementPoisonsTheTransaction) {
  ASSERT_OK(db().Transact([](Tx& tx) { return Exec(tx, "CREATE TABLE t (v int UNIQUE)"); }));
  int calls = 0;
  auto status = db().Transact([&](Tx& tx) -> Status {
    ++calls;
    EXPECT_TRUE(Exec(tx, "INSERT INTO t VALUES (1)"));
    auto dup = Exec(tx, "INSERT INTO t VALUES (1)");
    EXPECT_FALSE(dup);
    EXPECT_TRUE(tx.failed());
    // A caller that ignores the error cannot commit half a transaction.
    auto later = Exec(tx, "INSERT INTO t VALUES (2)");
    EXPECT_FALSE(later);
    return {};
  });
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(Sql("SELECT count(*) FROM t")[0][0].as<int>(), 0);
}

TEST_F(DatabaseTest, SerializationFailureIsRetried) {
  int attempts = 0;
  auto value = db().Transact([&](Tx& tx) -> Result<int> {
    ++attempts;
    if (attempts < 3) {
      KINDLING_RETURN_IF_ERROR(
          Exec(tx, "DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$"));
    }
    return attempts;
  });
  ASSERT_TRUE(value) << value.error().message();
  EXPECT_EQ(*value, 3);
}

TEST_F(DatabaseTest, DeadlockGivesUpAfterMaxAttempts) {
  int attempts = 0;
  auto status = db().Transact(
      [&](Tx& tx) -> Status {
        ++attempts;
        return Exec(tx, "DO $$ BEGIN RAISE EXCEPTION 'deadlock' USING ERRCODE = '40P01'; END $$");
      },
      TxOptions{.max_attempts = 2});
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().kind(), ErrorKind::kTransient);
  EXPECT_TRUE(status.error().retryable());
  EXPECT_EQ(attempts, 2);
}

TEST_F(DatabaseTest, RealSerializationConflictIsRetried) {
  ASSERT_OK(db().Transact([](Tx& tx) -> Status {
    KINDLING_RETURN_IF_ERROR(Exec(tx, "CREATE TABLE counter (v int)"));
    return Exec(tx, "INSERT INTO counter VALUES (0)");
  }));
  // Serializable read-modify-write increments from several threads: some
  // collide, get retried, and no increment is lost.
  constexpr int kThreads = 4;
  constexpr int kIncrements = 10;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kIncrements; ++i) {
        auto status = db().Transact(
            [](Tx& tx) -> Status {
              KINDLING_ASSIGN_OR_RETURN(long long v, Count(tx, "SELECT v FROM counter"));
              return Exec(tx, "UPDATE counter SET v = " + std::to_string(v + 1));
            },
            TxOptions{.isolation = Isolation::kSerializable, .max_attempts = 50});
        if (!status) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(Sql("SELECT v FROM counter")[0][0].as<int>(), kThreads * kIncrements);
}

TEST_F(DatabaseTest, ReadOnlyTransactionRejectsWrites) {
  auto status = db().Transact([](Tx& tx) { return Exec(tx, "CREATE TABLE t (v int)"); },
                              TxOptions{.read_only = true});
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().kind(), ErrorKind::kInternal);
}

// Two statements' transaction_timestamp(): equal in one transaction,
// different when each statement commits on its own.
Result<bool> StatementsShareATransaction(Database& db, const TxOptions& options) {
  return db.Transact(
      [](Tx& tx) -> Result<bool> {
        KINDLING_ASSIGN_OR_RETURN(
            long long first,
            Count(tx, "SELECT (extract(epoch FROM now()) * 1000000)::bigint FROM pg_sleep(0.01)"));
        KINDLING_ASSIGN_OR_RETURN(
            long long second, Count(tx, "SELECT (extract(epoch FROM now()) * 1000000)::bigint"));
        return first == second;
      },
      options);
}

TEST_F(DatabaseTest, AutocommitReadsRunEachStatementOnItsOwn) {
  auto autocommit = StatementsShareATransaction(db(), kAutocommitRead);
  ASSERT_TRUE(autocommit) << autocommit.error().message();
  EXPECT_FALSE(*autocommit);
  auto in_one = StatementsShareATransaction(db(), TxOptions{.read_only = true});
  ASSERT_TRUE(in_one) << in_one.error().message();
  EXPECT_TRUE(*in_one);
  // Outside its contract (a write, or another isolation) it is a transaction.
  auto writable = StatementsShareATransaction(db(), TxOptions{.autocommit = true});
  ASSERT_TRUE(writable);
  EXPECT_TRUE(*writable);
  auto repeatable = StatementsShareATransaction(
      db(),
      TxOptions{.isolation = Isolation::kRepeatableRead, .read_only = true, .autocommit = true});
  ASSERT_TRUE(repeatable);
  EXPECT_TRUE(*repeatable);
}

TEST_F(DatabaseTest, AutocommitReadReportsAFailedStatement) {
  auto status = db().Transact([](Tx& tx) { return Exec(tx, "SELECT * FROM no_such_table"); },
                              kAutocommitRead);
  ASSERT_FALSE(status);
  EXPECT_EQ(
      db().Transact([](Tx& tx) { return Count(tx, "SELECT 41 + 1"); }, kAutocommitRead).value_or(0),
      42);
}

// Statements are prepared per pooled connection; a schema change by another
// process (a migration during a rolling upgrade) must not break them.
TEST_F(DatabaseTest, PreparedStatementsSurviveASchemaChange) {
  ASSERT_OK(db().Transact([](Tx& tx) { return Exec(tx, "CREATE TABLE t (v int)"); }));
  ASSERT_OK(db().Transact([](Tx& tx) { return Exec(tx, "INSERT INTO t VALUES (7)"); }));
  auto read = [&] {
    return db().Transact([](Tx& tx) -> Result<std::string> {
      return internal::Run(tx, "read t", [](pqxx::transaction_base& w) -> Result<std::string> {
        // The result's type changes with the column's: PostgreSQL refuses
        // the old prepared statement rather than re-planning it.
        const pqxx::row r =
            internal::Exec1(w, "SELECT v, pg_typeof(v)::text FROM t WHERE v = $1", 7);
        return r[0].as<std::string>() + ":" + r[1].as<std::string>();
      });
    });
  };
  auto before = read();
  ASSERT_TRUE(before) << before.error().message();
  EXPECT_EQ(*before, "7:integer");
  Sql("ALTER TABLE t ALTER COLUMN v TYPE bigint");
  auto after = read();
  ASSERT_TRUE(after) << after.error().message();
  EXPECT_EQ(*after, "7:bigint");
}

TEST_F(DatabaseTest, UniqueViolationHasACleanMessage) {
  ASSERT_OK(db().Transact(
      [](Tx& tx) { return CreateUser(tx, NewUser{.email = "Ops@Example.com", .name = "Ops"}); }));
  auto dup = db().Transact(
      [](Tx& tx) { return CreateUser(tx, NewUser{.email = "ops@example.com", .name = "Other"}); });
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_EQ(dup.error().message(), "a user with this email already exists");
}

TEST_F(DatabaseTest, CheckViolationIsInvalidArgument) {
  const std::string project = MakeProject(MakeOrganization());
  auto volume = db().Transact(
      [&](Tx& tx) { return CreateVolume(tx, NewVolume{.project_id = project, .size_gb = 0}); });
  ASSERT_FALSE(volume);
  EXPECT_EQ(volume.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_NE(volume.error().message().find("project_volumes_size_gb_check"), std::string::npos)
      << volume.error().message();
}

TEST_F(DatabaseTest, ForeignKeyViolationIsInvalidArgument) {
  auto project = db().Transact([](Tx& tx) { return CreateProject(tx, NewUuidV4(), "x"); });
  EXPECT_ERROR_KIND(project, ErrorKind::kInvalidArgument);
}

TEST_F(DatabaseTest, MalformedUuidIsInvalidArgument) {
  auto server = db().Transact([](Tx& tx) { return GetServer(tx, "not-a-uuid"); });
  EXPECT_ERROR_KIND(server, ErrorKind::kInvalidArgument);
}

TEST_F(DatabaseTest, LostConnectionIsTransientAndThePoolRecovers) {
  auto status = db().Transact(
      [](Tx& tx) { return Exec(tx, "SELECT pg_terminate_backend(pg_backend_pid())"); },
      TxOptions{.max_attempts = 1});
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().kind(), ErrorKind::kTransient) << status.error().message();
  ASSERT_OK(db().Ping());
}

TEST_F(DatabaseTest, LostConnectionBeforeCommitIsRetried) {
  int attempts = 0;
  auto value = db().Transact([&](Tx& tx) -> Result<int> {
    if (++attempts == 1) {
      KINDLING_RETURN_IF_ERROR(Exec(tx, "SELECT pg_terminate_backend(pg_backend_pid())"));
    }
    return attempts;
  });
  ASSERT_TRUE(value) << value.error().message();
  EXPECT_EQ(*value, 2);
}

// A returned connection goes to the oldest waiter, never to a caller that
// arrives later (here: the thread that returned it and asks again at once).
TEST_F(DatabaseTest, AReturnedConnectionGoesToTheOldestWaiter) {
  DatabaseOptions options = Options();
  options.max_connections = 1;
  auto pool = Database::Open(options);
  ASSERT_TRUE(pool);
  std::mutex mu;
  std::vector<std::string> order;
  auto take = [&](const std::string& name) {
    auto conn = (*pool)->Acquire();
    std::lock_guard lock(mu);
    order.push_back(conn ? name : name + " failed");
  };
  auto wait_for_waiters = [&](std::size_t n) {
    for (int i = 0; i < 10'000 && (*pool)->waiting() < n; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ASSERT_EQ((*pool)->waiting(), n);
  };
  std::vector<std::thread> threads;
  {
    auto held = (*pool)->Acquire();
    ASSERT_TRUE(held);
    threads.emplace_back(take, "first");
    wait_for_waiters(1);
    threads.emplace_back(take, "second");
    wait_for_waiters(2);
  }
  take("latecomer");
  for (auto& t : threads) t.join();
  EXPECT_EQ(order, (std::vector<std::string>{"first", "second", "latecomer"}));
  EXPECT_EQ((*pool)->waiting(), 0u);
}

TEST_F(DatabaseTest, PoolNeverExceedsMaxConnections) {
  DatabaseOptions options = Options();
  options.max_connections = 2;
  options.acquire_timeout = std::chrono::milliseconds(100);
  auto small = Database::Open(options);
  ASSERT_TRUE(small);
  {
    auto a = (*small)->Acquire();
    auto b = (*small)->Acquire();
    ASSERT_TRUE(a && b);
    auto c = (*small)->Acquire();
    EXPECT_ERROR_KIND(c, ErrorKind::kTransient);
  }
  // Both went back to the pool: acquiring works again.
  ASSERT_TRUE((*small)->Acquire());

  ASSERT_OK((*small)->Transact([](Tx& tx) { return Exec(tx, "CREATE TABLE t (v int)"); }));
  options.acquire_timeout = std::chrono::seconds(30);
  auto pool = Database::Open(options);
  ASSERT_TRUE(pool);
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i) {
        if (!(*pool)->Transact([](Tx& tx) { return Exec(tx, "INSERT INTO t VALUES (1)"); }))
          ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(Sql("SELECT count(*) FROM t")[0][0].as<int>(), 120);
  const std::string app_connections =
      "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
      "AND application_name = 'kindling'";
  // The fixture's pool (4) plus this one's (2) at most.
  EXPECT_LE(Sql(app_connections)[0][0].as<int>(), 6);
}

TEST(DatabaseRestartTest, ReconnectsAfterServerRestart) {
  testutil::PostgresServer server;
  auto db = Database::Open({.dsn = server.dsn()});
  ASSERT_TRUE(db) << db.error().message();
  ASSERT_OK((*db)->Ping());
  server.Stop();
  auto down = (*db)->Ping();
  EXPECT_ERROR_KIND(down, ErrorKind::kTransient);
  server.Start();
  // The pool's connections died with the server; new ones are opened.
  ASSERT_OK((*db)->Ping());
  ASSERT_OK(RunMigrations(**db));
}

}  // namespace
}  // namespace kindling::db
