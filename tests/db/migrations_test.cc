#include "db/migrations.h"

#include <gtest/gtest.h>

#include <set>
#include <thread>
#include <vector>

#include "db_test_util.h"

namespace kindling::db {
namespace {

std::set<std::string> Columns(pqxx::connection& conn, const std::string& table) {
  pqxx::work work(conn);
  std::set<std::string> columns;
  for (const auto& row : work.exec_params(
           "SELECT column_name FROM information_schema.columns WHERE table_name = $1", table))
    columns.insert(row[0].as<std::string>());
  return columns;
}

TEST(MigrationsTest, AppliesEverythingOnceThenNothing) {
  testutil::TestDatabase test_db;
  auto db = Database::Open({.dsn = test_db.dsn()});
  ASSERT_TRUE(db) << db.error().message();
  ASSERT_OK_AND_ASSIGN(int before, SchemaVersion(**db));
  EXPECT_EQ(before, 0);

  ASSERT_OK_AND_ASSIGN(MigrationReport first, RunMigrations(**db));
  EXPECT_EQ(first.applied, static_cast<int>(AllMigrations().size()));
  EXPECT_EQ(first.schema_version, AllMigrations().back().version);

  ASSERT_OK_AND_ASSIGN(MigrationReport second, RunMigrations(**db));
  EXPECT_EQ(second.applied, 0);
  EXPECT_EQ(second.schema_version, first.schema_version);
}

TEST(MigrationsTest, VersionsAreIncreasing) {
  int last = 0;
  for (const Migration& m : AllMigrations()) {
    EXPECT_GT(m.version, last);
    last = m.version;
  }
}

TEST(MigrationsTest, ConcurrentStartsApplyEachMigrationOnce) {
  testutil::TestDatabase test_db;
  constexpr int kProcesses = 4;
  std::vector<std::thread> threads;
  std::vector<Result<MigrationReport>> reports(kProcesses, InternalError("not run"));
  for (int i = 0; i < kProcesses; ++i) {
    threads.emplace_back([&, i] {
      // Each "process" has its own pool, as separate hosts would.
      auto db = Database::Open({.dsn = test_db.dsn()});
      if (!db) {
        reports[i] = std::unexpected(db.error());
        return;
      }
      reports[i] = RunMigrations(**db);
    });
  }
  for (auto& t : threads) t.join();
  int applied = 0;
  for (const auto& report : reports) {
    ASSERT_TRUE(report) << report.error().message();
    applied += report->applied;
    EXPECT_EQ(report->schema_version, AllMigrations().back().version);
  }
  EXPECT_EQ(applied, static_cast<int>(AllMigrations().size()));
  pqxx::connection conn(test_db.dsn());
  pqxx::work work(conn);
  EXPECT_EQ(work.exec1("SELECT count(*) FROM schema_migrations")[0].as<int>(),
            static_cast<int>(AllMigrations().size()));
}

class SchemaTest : public DbTest {};

// The reference system's columns, so its operators' SQL keeps working.
TEST_F(SchemaTest, HasTheReferenceColumns) {
  pqxx::connection conn(dsn());
  const std::set<std::string> volumes = {"id",
                                         "project_id",
                                         "server_id",
                                         "attached_vm_id",
                                         "mount_path",
                                         "size_gb",
                                         "filesystem",
                                         "status",
                                         "health",
                                         "backup_schedule",
                                         "backup_retention_count",
                                         "pre_delete_backup_enabled",
                                         "last_error",
                                         "deleted_at",
                                         "created_at",
                                         "updated_at"};
  // The reference's columns, plus this system's retention rules (migration 6)
  // and schedule details (migration 7).
  std::set<std::string> with_extensions = volumes;
  for (const char* column :
       {"backup_keep_hourly", "backup_keep_daily", "backup_keep_weekly", "backup_keep_monthly",
        "backup_keep_yearly", "backup_cron", "backup_window_start", "backup_window_minutes",
        "backup_time_zone", "backup_next_at"})
    with_extensions.insert(column);
  EXPECT_EQ(Columns(conn, "project_volumes"), with_extensions);

  const std::set<std::string> operations = Columns(conn, "project_volume_operations");
  for (const char* column :
       {"id", "project_volume_id", "kind", "status", "server_id", "request_metadata",
        "result_metadata", "error", "started_at", "completed_at", "failed_at", "created_at",
        "updated_at", "lease_owner", "lease_expires_at", "attempts", "progress"})
    EXPECT_TRUE(operations.contains(column)) << column;

  // The reference's backup columns, plus damage (migration 2) and the pin
  // and last verification (migration 8).
  EXPECT_EQ(Columns(conn, "project_volume_backups"),
            (std::set<std::string>{"id", "project_volume_id", "kind", "status", "storage_url",
                                   "storage_key", "size_bytes", "error", "metadata", "started_at",
                                   "completed_at", "failed_at", "created_at", "updated_at",
                                   "damage", "pinned", "verified_at", "verify_state"}));

  EXPECT_EQ(Columns(conn, "cluster_settings"),
            (std::set<std::string>{"key", "value", "updated_at"}));
  EXPECT_EQ(Columns(conn, "cluster_secrets"),
            (std::set<std::string>{"key", "ciphertext", "updated_at"}));
  EXPECT_EQ(Columns(conn, "cluster_audit_events"),
            (std::set<std::string>{"id", "user_id", "action", "resource_type", "resource_id",
                                   "details", "request_ip", "user_agent", "created_at"}));
  const std::set<std::string> statuses = Columns(conn, "server_component_statuses");
  for (const char* column : {"server_id", "component", "status", "observed_at", "last_success_at",
                             "last_error_at", "last_error_message", "metadata"})
    EXPECT_TRUE(statuses.contains(column)) << column;
  const std::set<std::string> servers = Columns(conn, "servers");
  for (const char* column : {"id", "hostname", "internal_ip", "status", "last_heartbeat_at",
                             "enabled_components", "created_at", "updated_at"})
    EXPECT_TRUE(servers.contains(column)) << column;
}

// Every enumeration value the C++ side writes passes the CHECK constraints,
// and something else does not.
TEST_F(SchemaTest, CheckConstraintsMatchTheEnums) {
  const std::string project = MakeProject(MakeOrganization());
  const std::string server = MakeServer("w1");
  const Volume volume = MakeVolume(project, server);
  for (std::string_view name : EnumNames<VolumeStatus>::kNames) {
    EXPECT_NO_THROW(Sql("UPDATE project_volumes SET status = '" + std::string(name) + "'"));
  }
  for (std::string_view name : EnumNames<VolumeHealth>::kNames) {
    EXPECT_NO_THROW(Sql("UPDATE project_volumes SET health = '" + std::string(name) + "'"));
  }
  // (cron comes with its expression, and only it does.)
  for (std::string_view name : EnumNames<BackupSchedule>::kNames) {
    const bool cron = name == "cron";
    EXPECT_NO_THROW(Sql("UPDATE project_volumes SET backup_schedule = '" + std::string(name) +
                        "', backup_cron = " + (cron ? "'0 * * * *'" : "NULL")));
  }
  EXPECT_THROW(Sql("UPDATE project_volumes SET backup_schedule = 'cron', backup_cron = NULL"),
               pqxx::check_violation);
  EXPECT_THROW(
      Sql("UPDATE project_volumes SET backup_schedule = 'daily', backup_cron = '* * * * *'"),
      pqxx::check_violation);
  EXPECT_THROW(Sql("UPDATE project_volumes SET backup_window_start = '24:00'"),
               pqxx::check_violation);
  for (std::string_view name : EnumNames<ServerStatus>::kNames) {
    EXPECT_NO_THROW(Sql("UPDATE servers SET status = '" + std::string(name) + "'"));
  }
  EXPECT_THROW(Sql("UPDATE project_volumes SET status = 'exploded'"), pqxx::check_violation);
  EXPECT_THROW(Sql("UPDATE project_volumes SET health = 'fine'"), pqxx::check_violation);
  EXPECT_THROW(Sql("UPDATE servers SET status = 'gone'"), pqxx::check_violation);
  for (std::string_view kind : EnumNames<OperationKind>::kNames) {
    for (std::string_view status : EnumNames<OperationStatus>::kNames) {
      EXPECT_NO_THROW(
          Sql("INSERT INTO project_volume_operations (project_volume_id, kind, status, "
              "lease_owner, lease_expires_at) VALUES ('" +
              volume.id + "', '" + std::string(kind) + "', '" + std::string(status) +
              "', gen_random_uuid(), now()); DELETE FROM project_volume_operations"));
    }
  }
  for (std::string_view kind : EnumNames<BackupKind>::kNames) {
    for (std::string_view status : EnumNames<BackupStatus>::kNames) {
      EXPECT_NO_THROW(
          Sql("INSERT INTO project_volume_backups (project_volume_id, kind, status) "
              "VALUES ('" +
              volume.id + "', '" + std::string(kind) + "', '" + std::string(status) + "')"));
    }
  }
  EXPECT_THROW(Sql("INSERT INTO project_volume_backups (project_volume_id, kind) VALUES ('" +
                   volume.id + "', 'hourly')"),
               pqxx::check_violation);
  for (std::string_view state : EnumNames<VerifyState>::kNames) {
    EXPECT_NO_THROW(Sql("UPDATE project_volume_backups SET verified_at = now(), verify_state = '" +
                        std::string(state) + "'"));
  }
  EXPECT_THROW(Sql("UPDATE project_volume_backups SET verify_state = 'fine'"),
               pqxx::check_violation);
  // A state without its time (or the reverse) says nothing.
  EXPECT_THROW(Sql("UPDATE project_volume_backups SET verified_at = NULL"), pqxx::check_violation);
}

}  // namespace
}  // namespace kindling::db
