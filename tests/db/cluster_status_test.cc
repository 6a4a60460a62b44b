#include "db/cluster_status.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "db_test_util.h"

namespace kindling::db {
namespace {

class ClusterStatusTest : public DbTest {};

TEST_F(ClusterStatusTest, SettingsRecoveryAndArchiver) {
  // The test kit runs PostgreSQL like production: wal_level=logical.
  ASSERT_OK_AND_ASSIGN(std::string wal_level,
                       db().Transact([](Tx& tx) { return ShowSetting(tx, "wal_level"); }));
  EXPECT_EQ(wal_level, "logical");
  EXPECT_ERROR_KIND(db().Transact([](Tx& tx) { return ShowSetting(tx, "no_such_setting_x"); }),
                    ErrorKind::kNotFound);
  ASSERT_OK_AND_ASSIGN(bool in_recovery, db().Transact([](Tx& tx) { return InRecovery(tx); }));
  EXPECT_FALSE(in_recovery);
  ASSERT_OK_AND_ASSIGN(ArchiverStatus archiver,
                       db().Transact([](Tx& tx) { return GetArchiverStatus(tx); }));
  EXPECT_GT(archiver.now.time_since_epoch().count(), 0);
  EXPECT_FALSE(archiver.failing());
  ASSERT_OK_AND_ASSIGN(std::string wal, db().Transact([](Tx& tx) { return SwitchWal(tx); }));
  EXPECT_EQ(wal.size(), 24u) << wal;
}

TEST_F(ClusterStatusTest, ArchiverFailingMeansTheLastAttemptFailed) {
  ArchiverStatus status;
  EXPECT_FALSE(status.failing());
  const Timestamp t0{std::chrono::microseconds(1'000'000)};
  status.last_failed_time = t0;
  EXPECT_TRUE(status.failing());
  status.last_archived_time = t0 + std::chrono::seconds(1);
  EXPECT_FALSE(status.failing());
  status.last_failed_time = t0 + std::chrono::seconds(2);
  EXPECT_TRUE(status.failing());
}

// The archiver's queue, as PostgreSQL keeps it: a `.ready` file per WAL
// file still to archive (here made by hand, on a timeline of its own, in the
// test kit's cluster, which does not archive: they stay until removed).
TEST_F(ClusterStatusTest, WalArchivedThroughReadsTheArchiverQueue) {
  ASSERT_OK_AND_ASSIGN(std::string data_dir,
                       db().Transact([](Tx& tx) { return ShowSetting(tx, "data_directory"); }));
  const std::filesystem::path status_dir =
      std::filesystem::path(data_dir) / "pg_wal" / "archive_status";
  auto archived = [&](const std::string& wal) {
    auto done = db().Transact([&](Tx& tx) { return WalArchivedThrough(tx, wal); });
    EXPECT_TRUE(done) << done.error().message();
    return done && *done;
  };
  const std::string before = "0000007E0000000000000002";
  const std::string segment = "0000007E0000000000000003";
  const std::string after = "0000007E0000000000000004";
  const std::string next_timeline = "0000007F0000000000000001";
  EXPECT_TRUE(archived(segment));
  std::vector<std::filesystem::path> made;
  auto make = [&](const std::string& name) {
    made.push_back(status_dir / name);
    std::ofstream(made.back()).flush();
  };
  // A segment waiting: it and what comes after are not archived through.
  make(segment + ".ready");
  EXPECT_TRUE(archived(before));
  EXPECT_FALSE(archived(segment));
  EXPECT_FALSE(archived(after));
  EXPECT_FALSE(archived(next_timeline));
  // Archived: `.done`.
  std::filesystem::rename(made.back(), status_dir / (segment + ".done"));
  made.back() = status_dir / (segment + ".done");
  EXPECT_TRUE(archived(after));
  // A backup label archived after its segment, and a history file.
  make(segment + ".00000028.backup.ready");
  EXPECT_TRUE(archived(before));
  EXPECT_FALSE(archived(segment));
  std::filesystem::remove(made.back());
  made.pop_back();
  make("0000007F.history.ready");
  EXPECT_TRUE(archived(after));
  EXPECT_FALSE(archived(next_timeline));
  for (const auto& path : made) std::filesystem::remove(path);
  EXPECT_TRUE(archived(next_timeline));
  EXPECT_ERROR_KIND(
      db().Transact([](Tx& tx) { return WalArchivedThrough(tx, "00000002.history"); }),
      ErrorKind::kInvalidArgument);
}

TEST_F(ClusterStatusTest, SessionsOfKindlingProcessesAreListedButNotOurOwn) {
  DatabaseOptions serve_options = Options();
  serve_options.application_name = "kindling serve";
  auto serve = Database::Open(serve_options);
  ASSERT_TRUE(serve) << serve.error().message();
  ASSERT_OK((*serve)->Ping());
  ASSERT_OK_AND_ASSIGN(std::vector<ClientSession> sessions, db().Transact([](Tx& tx) {
    return ListSessions(tx, {"kindling serve", "kindling dev"});
  }));
  ASSERT_EQ(sessions.size(), 1u);
  EXPECT_EQ(sessions[0].application_name, "kindling serve");
  EXPECT_GT(sessions[0].pid, 0);
  // Our own session (application_name "kindling") is never listed.
  ASSERT_OK_AND_ASSIGN(std::vector<ClientSession> own,
                       db().Transact([](Tx& tx) { return ListSessions(tx, {"kindling"}); }));
  EXPECT_TRUE(own.empty());
}

TEST_F(ClusterStatusTest, ListenerSlotsAreListedAndDropped) {
  const std::string slot = "kindling_listener_" + NewUuidV4().substr(0, 8);
  Sql("SELECT pg_create_logical_replication_slot('" + slot + "', 'pgoutput')");
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> slots,
                       db().Transact([&](Tx& tx) { return ListReplicationSlots(tx, slot); }));
  ASSERT_EQ(slots.size(), 1u);
  EXPECT_EQ(slots[0], slot);
  ASSERT_OK(db().Transact([&](Tx& tx) { return DropReplicationSlot(tx, slot); }));
  ASSERT_OK_AND_ASSIGN(slots,
                       db().Transact([&](Tx& tx) { return ListReplicationSlots(tx, slot); }));
  EXPECT_TRUE(slots.empty());
  EXPECT_ERROR_KIND(db().Transact([&](Tx& tx) { return DropReplicationSlot(tx, slot); }),
                    ErrorKind::kNotFound);
}

TEST_F(ClusterStatusTest, CountsRowsOfTheMainTables) {
  const std::string org = MakeOrganization();
  MakeProject(org, "one");
  MakeProject(org, "two");
  ASSERT_OK_AND_ASSIGN(auto counts, db().Transact([](Tx& tx) { return CountMainTableRows(tx); }));
  ASSERT_GE(counts.size(), 8u);
  EXPECT_EQ(counts[0].first, "users");
  bool found = false;
  for (const auto& [table, count] : counts) {
    if (table == "projects") {
      EXPECT_EQ(count, 2);
      found = true;
    }
  }
  EXPECT_TRUE(found);
}

TEST_F(ClusterStatusTest, AlterSystemPersistsAndReloads) {
  const std::pair<std::string, std::string> set[] = {{"log_min_duration_statement", "12345"}};
  ASSERT_OK(AlterSystem(db(), set));
  // The reload reaches sessions asynchronously: new sessions see it soon.
  std::string value;
  for (int i = 0; i < 50 && value != "12345ms"; ++i) {
    auto fresh = Database::Open(Options());
    ASSERT_TRUE(fresh);
    auto shown =
        (*fresh)->Transact([](Tx& tx) { return ShowSetting(tx, "log_min_duration_statement"); });
    ASSERT_TRUE(shown);
    value = *shown;
    if (value != "12345ms") std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(value, "12345ms");
  const std::pair<std::string, std::string> reset[] = {{"log_min_duration_statement", ""}};
  ASSERT_OK(AlterSystem(db(), reset));
  const std::pair<std::string, std::string> bad[] = {{"no_such_setting_x", "1"}};
  EXPECT_FALSE(AlterSystem(db(), bad));
}

}  // namespace
}  // namespace kindling::db
