// Fixture for db/ tests: a fresh, migrated database on the shared throwaway
// PostgreSQL per test, plus helpers that create the rows most tests need.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <pqxx/pqxx>
#include <string>

#include "common/ids.h"
#include "db/auth.h"
#include "db/database.h"
#include "db/migrations.h"
#include "db/projects.h"
#include "db/servers.h"
#include "db/volumes.h"
#include "testutil/postgres_server.h"

namespace kindling::db {

#define ASSERT_OK_AND_ASSIGN(lhs, expr) \
  ASSERT_OK_AND_ASSIGN_IMPL(KINDLING_CONCAT(db_test_result_, __LINE__), lhs, expr)
#define ASSERT_OK_AND_ASSIGN_IMPL(tmp, lhs, expr)        \
  auto tmp = (expr);                                     \
  ASSERT_TRUE(tmp.has_value()) << tmp.error().message(); \
  lhs = std::move(*tmp)
#define ASSERT_OK(expr)                                                            \
  do {                                                                             \
    auto&& db_test_status_ = (expr);                                               \
    ASSERT_TRUE(db_test_status_.has_value()) << db_test_status_.error().message(); \
  } while (0)
#define EXPECT_ERROR_KIND(expr, expected_kind)                                                     \
  do {                                                                                             \
    auto&& db_test_status_ = (expr);                                                               \
    ASSERT_FALSE(db_test_status_.has_value());                                                     \
    EXPECT_EQ(db_test_status_.error().kind(), expected_kind) << db_test_status_.error().message(); \
  } while (0)

class DbTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = Database::Open(Options());
    ASSERT_TRUE(db) << db.error().message();
    db_ = std::move(*db);
    auto migrated = RunMigrations(*db_);
    ASSERT_TRUE(migrated) << migrated.error().message();
  }

  DatabaseOptions Options() const {
    DatabaseOptions options;
    options.dsn = test_db_.dsn();
    options.max_connections = 4;
    return options;
  }

  const std::string& dsn() const { return test_db_.dsn(); }
  Database& db() { return *db_; }

  // Runs `fn` in a transaction and returns its value, failing the test on
  // error (use db().Transact directly to look at errors).
  template <typename F>
  auto Must(F&& fn) {
    auto result = db_->Transact(std::forward<F>(fn));
    EXPECT_TRUE(result.has_value()) << result.error().message();
    return result;
  }
  // Must for a step whose value the test does not need.
  template <typename F>
  void MustRun(F&& fn) {
    IgnoreError(Must(std::forward<F>(fn)), "Must has failed the test already on error");
  }

  // Raw SQL through a separate connection, for setting up states the API
  // does not offer (backdated heartbeats) and for looking at raw columns.
  pqxx::result Sql(const std::string& sql) {
    pqxx::connection conn(dsn());
    pqxx::work work(conn);
    pqxx::result result = work.exec(sql);
    work.commit();
    return result;
  }

  std::string MakeOrganization(const std::string& name = "acme") {
    auto org = Must([&](Tx& tx) { return CreateOrganization(tx, name); });
    return org ? org->id : "";
  }

  std::string MakeProject(const std::string& organization_id, const std::string& name = "web") {
    auto project = Must([&](Tx& tx) { return CreateProject(tx, organization_id, name); });
    return project ? project->id : "";
  }

  std::string MakeServer(const std::string& hostname, const std::string& runtime = "sparse-file") {
    return MakeServerWithMetadata(hostname, R"({"runtime": ")" + runtime + R"("})");
  }
  // A worker with a VM runtime and the canary guest image: where deployments
  // can run.
  std::string MakeVmServer(const std::string& hostname) {
    return MakeServerWithMetadata(hostname,
                                  R"({"runtime": "qemu-microvm-tcg", "images": ["canary"]})");
  }
  std::string MakeServerWithMetadata(const std::string& hostname,
                                     const std::string& metadata_json) {
    const std::string id = NewUuidV4();
    auto ok = Must([&](Tx& tx) -> Status {
      KINDLING_RETURN_IF_ERROR(
          RegisterServer(tx, ServerRegistration{.id = id,
                                                .hostname = hostname,
                                                .internal_ip = "10.0.0.1",
                                                .enabled_components = {"worker"}}));
      return UpsertComponentStatus(tx, ComponentStatusUpdate{.server_id = id,
                                                             .component = "worker",
                                                             .status = ComponentHealth::kHealthy,
                                                             .metadata_json = metadata_json});
    });
    return id;
  }

  Volume MakeVolume(const std::string& project_id, const std::optional<std::string>& server_id) {
    auto volume = Must([&](Tx& tx) {
      return CreateVolume(tx, NewVolume{.project_id = project_id, .server_id = server_id});
    });
    return volume ? *volume : Volume{};
  }

  // Destroyed after db_ (members go in reverse order): the pool's
  // connections close before the database is dropped.
  testutil::TestDatabase test_db_;
  std::unique_ptr<Database> db_;
};

}  // namespace kindling::db
