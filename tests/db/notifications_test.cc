#include "db/notifications.h"

#include <gtest/gtest.h>

#include <set>

#include "db/backups.h"
#include "db/operations.h"
#include "db/types.h"
#include "db_test_util.h"

namespace kindling::db {
namespace {

class NotificationsTest : public DbTest {};

TEST_F(NotificationsTest, ListenerReceivesCommittedNotifications) {
  ASSERT_OK_AND_ASSIGN(auto listener, Listener::Open(dsn(), {"a", "b"}));
  ASSERT_OK_AND_ASSIGN(auto nothing, listener->Wait(std::chrono::milliseconds(50)));
  EXPECT_TRUE(nothing.empty());

  Sql("SELECT pg_notify('a', 'one'); SELECT pg_notify('c', 'ignored'); SELECT pg_notify('b', "
      "'two')");
  std::vector<Notification> got;
  for (int i = 0; i < 20 && got.size() < 2; ++i) {
    ASSERT_OK_AND_ASSIGN(auto batch, listener->Wait(std::chrono::milliseconds(250)));
    got.insert(got.end(), batch.begin(), batch.end());
  }
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].channel, "a");
  EXPECT_EQ(got[0].payload, "one");
  EXPECT_EQ(got[1].channel, "b");
  EXPECT_EQ(got[1].payload, "two");
}

TEST_F(NotificationsTest, ListenerReportsALostConnection) {
  ASSERT_OK_AND_ASSIGN(auto listener, Listener::Open(dsn(), {"a"}));
  Sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
      "WHERE datname = current_database() AND pid <> pg_backend_pid()");
  Status lost = OkStatus();
  for (int i = 0; i < 20 && lost; ++i) {
    auto r = listener->Wait(std::chrono::milliseconds(100));
    if (!r) lost = std::unexpected(r.error());
  }
  ASSERT_FALSE(lost);
  EXPECT_EQ(lost.error().kind(), ErrorKind::kTransient);
}

TEST_F(NotificationsTest, OnlyOneSessionHoldsTheLeaderLock) {
  ASSERT_OK_AND_ASSIGN(auto leader, SessionLock::TryAcquire(dsn(), kLeaderLockKey));
  ASSERT_NE(leader, nullptr);
  ASSERT_OK(leader->Check());
  ASSERT_OK_AND_ASSIGN(auto follower, SessionLock::TryAcquire(dsn(), kLeaderLockKey));
  EXPECT_EQ(follower, nullptr);
  // Another key is independent.
  ASSERT_OK_AND_ASSIGN(auto other, SessionLock::TryAcquire(dsn(), kLeaderLockKey + 1));
  EXPECT_NE(other, nullptr);

  leader.reset();
  ASSERT_OK_AND_ASSIGN(auto next, SessionLock::TryAcquire(dsn(), kLeaderLockKey));
  EXPECT_NE(next, nullptr);
}

TEST_F(NotificationsTest, ALeaderNoticesItLostTheLock) {
  ASSERT_OK_AND_ASSIGN(auto leader, SessionLock::TryAcquire(dsn(), kLeaderLockKey));
  ASSERT_NE(leader, nullptr);
  Sql("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'");
  EXPECT_ERROR_KIND(leader->Check(), ErrorKind::kTransient);
  // Someone else can lead now.
  ASSERT_OK_AND_ASSIGN(auto successor, SessionLock::TryAcquire(dsn(), kLeaderLockKey));
  EXPECT_NE(successor, nullptr);
  // The old leader stays demoted even if libpqxx reconnects behind it.
  EXPECT_ERROR_KIND(leader->Check(), ErrorKind::kTransient);
}

TEST(TimestampTest, FormatAndParseRoundTrip) {
  const Timestamp t = Timestamp(std::chrono::microseconds(1'700'000'000'123'456LL));
  EXPECT_EQ(FormatTimestamp(t), "2023-11-14 22:13:20.123456+00");
  EXPECT_EQ(ParseTimestamp(FormatTimestamp(t)), t);
  EXPECT_EQ(ParseTimestamp("2023-11-14 23:13:20.123456+01"), t);
  EXPECT_EQ(ParseTimestamp("2023-11-14 17:43:20.123456-04:30"), t);
  EXPECT_EQ(ParseTimestamp("2023-11-14T22:13:20.123456Z"), t);
  EXPECT_EQ(ParseTimestamp("2023-11-14 22:13:20+00"),
            Timestamp(std::chrono::microseconds(1'700'000'000'000'000LL)));
  EXPECT_FALSE(ParseTimestamp("infinity"));
  EXPECT_FALSE(ParseTimestamp("2023-13-14 22:13:20+00"));
  EXPECT_FALSE(ParseTimestamp("2023-11-14 22:13:20"));
}

TEST(EnumTest, NamesRoundTrip) {
  EXPECT_EQ(Name(VolumeStatus::kBackingUp), "backing_up");
  EXPECT_EQ(ParseEnum<VolumeStatus>("backing_up"), VolumeStatus::kBackingUp);
  EXPECT_EQ(ParseEnum<BackupKind>("pre_delete"), BackupKind::kPreDelete);
  EXPECT_FALSE(ParseEnum<ServerStatus>("zombie"));
  EXPECT_TRUE(IsTransitional(VolumeStatus::kRestoring));
  EXPECT_FALSE(IsTransitional(VolumeStatus::kAttached));
}

TEST_F(NotificationsTest, EveryChangeToTheTablesTheApiCachesIsNotifiedWithItsTable) {
  ASSERT_OK_AND_ASSIGN(auto listener, Listener::Open(dsn(), {kChangesChannel}));
  const std::set<std::string> want = {
      "projects", "project_volumes",          "project_volume_operations", "project_volume_backups",
      "servers",  "server_component_statuses"};
  auto received = [&] {
    std::set<std::string> got;
    for (int i = 0; i < 40 && got.size() < want.size(); ++i) {
      auto batch = listener->Wait(std::chrono::milliseconds(100));
      EXPECT_TRUE(batch) << batch.error().message();
      if (!batch) break;
      for (const auto& n : *batch) got.insert(n.payload);
    }
    return got;
  };
  // Inserts, through kindling's own functions.
  const std::string server = MakeServer("w1");
  const Volume volume = MakeVolume(MakeProject(MakeOrganization()), server);
  ASSERT_OK(db().Transact([&](Tx& tx) -> Status {
    KINDLING_RETURN_IF_ERROR(CreateBackup(tx, NewBackup{.volume_id = volume.id}));
    KINDLING_RETURN_IF_ERROR(
        QueueOperation(tx, QueueOperationRequest{.volume_id = volume.id,
                                                 .kind = OperationKind::kBackup,
                                                 .server_id = server,
                                                 .create_backup = BackupKind::kManual}));
    return OkStatus();
  }));
  EXPECT_EQ(received(), want);
  // Updates and deletes, as an operator's SQL would make them.
  Sql("UPDATE projects SET name = 'renamed'; UPDATE project_volumes SET size_gb = 2; "
      "UPDATE project_volume_operations SET progress = '{}'; "
      "UPDATE project_volume_backups SET metadata = '{}'; "
      "UPDATE servers SET internal_ip = '10.0.0.2'; "
      "DELETE FROM server_component_statuses");
  EXPECT_EQ(received(), want);
  // A change to another table says nothing.
  Sql("INSERT INTO cluster_settings (key, value) VALUES ('k', 'v')");
  ASSERT_OK_AND_ASSIGN(auto quiet, listener->Wait(std::chrono::milliseconds(200)));
  EXPECT_TRUE(quiet.empty());
}

}  // namespace
}  // namespace kindling::db
