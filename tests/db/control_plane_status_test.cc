// The stored control-plane backup check: one row per stanza, replaced by
// each check, the newest read back with its age by the database's clock.
#include "db/control_plane_status.h"

#include <gtest/gtest.h>

#include "db_test_util.h"

namespace kindling::db {
namespace {

class ControlPlaneStatusTest : public DbTest {};

TEST_F(ControlPlaneStatusTest, NothingUntilReportedThenTheNewestCheck) {
  auto none = Must([](Tx& tx) { return GetControlPlaneBackupStatus(tx); });
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->has_value());

  ASSERT_TRUE(Must([](Tx& tx) {
    return PutControlPlaneBackupStatus(
        tx, ControlPlaneBackupStatusInput{.stanza = "kindling",
                                          .ok = false,
                                          .report_json = R"({"problems":["no backup yet"]})",
                                          .server_id = "3f1c4a9e-0000-4000-8000-000000000001",
                                          .hostname = "db-1"});
  }));
  ASSERT_TRUE(Must([](Tx& tx) {
    return PutControlPlaneBackupStatus(
        tx, ControlPlaneBackupStatusInput{
                .stanza = "kindling", .ok = true, .report_json = "{}", .hostname = "db-2"});
  }));
  auto status = Must([](Tx& tx) { return GetControlPlaneBackupStatus(tx); });
  ASSERT_TRUE(status && status->has_value());
  const ControlPlaneBackupStatus& s = **status;
  EXPECT_EQ(s.stanza, "kindling");
  EXPECT_TRUE(s.ok);
  EXPECT_EQ(s.report_json, "{}");
  EXPECT_EQ(s.hostname, "db-2");
  EXPECT_FALSE(s.server_id.has_value());
  EXPECT_GE(s.age_seconds, 0);
  EXPECT_LT(s.age_seconds, 60);
  EXPECT_EQ(Sql("SELECT count(*) FROM control_plane_backup_status")[0][0].as<int>(), 1);

  Sql("UPDATE control_plane_backup_status SET checked_at = now() - interval '20 minutes'");
  status = Must([](Tx& tx) { return GetControlPlaneBackupStatus(tx); });
  ASSERT_TRUE(status && status->has_value());
  EXPECT_GT((*status)->age_seconds, 19 * 60);
}

TEST_F(ControlPlaneStatusTest, AReportThatIsNotAJsonObjectIsRefused) {
  auto refused = db().Transact([](Tx& tx) {
    return PutControlPlaneBackupStatus(
        tx, ControlPlaneBackupStatusInput{.stanza = "kindling", .report_json = "[1,2]"});
  });
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().kind(), ErrorKind::kInvalidArgument);
}

}  // namespace
}  // namespace kindling::db
