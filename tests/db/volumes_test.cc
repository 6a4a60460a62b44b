#include "db/volumes.h"

#include <gtest/gtest.h>

#include "db/projects.h"
#include "db_test_util.h"

namespace kindling::db {
namespace {

class VolumesTest : public DbTest {
 protected:
  void SetUp() override {
    DbTest::SetUp();
    org_ = MakeOrganization();
    project_ = MakeProject(org_);
    server_ = MakeServer("w1");
  }
  std::string org_;
  std::string project_;
  std::string server_;
};

TEST_F(VolumesTest, ProjectsAreUniquePerOrganizationAndListable) {
  MakeProject(org_, "api");
  EXPECT_ERROR_KIND(db().Transact([&](Tx& tx) { return CreateProject(tx, org_, "api"); }),
                    ErrorKind::kInvalidArgument);
  const std::string other = MakeOrganization("other");
  MakeProject(other, "api");

  ASSERT_OK_AND_ASSIGN(std::vector<Project> mine, db().Transact([&](Tx& tx) {
    return ListProjects(tx, ProjectFilter{.organization_id = org_});
  }));
  ASSERT_EQ(mine.size(), 2u);
  EXPECT_EQ(mine[0].name, "api");
  EXPECT_EQ(mine[1].name, "web");

  ASSERT_OK_AND_ASSIGN(User user, db().Transact([](Tx& tx) {
    return CreateUser(tx, NewUser{.email = "m@example.com"});
  }));
  ASSERT_OK(
      db().Transact([&](Tx& tx) { return SetMembership(tx, other, user.id, OrgRole::kMember); }));
  ASSERT_OK_AND_ASSIGN(std::vector<Project> visible, db().Transact([&](Tx& tx) {
    return ListProjects(tx, ProjectFilter{.member_user_id = user.id});
  }));
  ASSERT_EQ(visible.size(), 1u);
  EXPECT_EQ(visible[0].organization_id, other);
  ASSERT_OK_AND_ASSIGN(std::vector<Project> all,
                       db().Transact([](Tx& tx) { return ListProjects(tx); }));
  EXPECT_EQ(all.size(), 3u);
  EXPECT_ERROR_KIND(db().Transact([](Tx& tx) { return GetProject(tx, NewUuidV4()); }),
                    ErrorKind::kNotFound);
}

TEST_F(VolumesTest, DefaultsMatchTheReference) {
  ASSERT_OK_AND_ASSIGN(Volume v, db().Transact([&](Tx& tx) {
    return CreateVolume(tx, NewVolume{.project_id = project_});
  }));
  EXPECT_EQ(v.mount_path, "/data");
  EXPECT_EQ(v.size_gb, 5);
  EXPECT_EQ(v.filesystem, "ext4");
  EXPECT_EQ(v.status, VolumeStatus::kDetached);
  EXPECT_EQ(v.health, VolumeHealth::kUnknown);
  EXPECT_EQ(v.backup_schedule, BackupSchedule::kManual);
  EXPECT_EQ(v.backup_retention_count, 7);
  EXPECT_FALSE(v.pre_delete_backup_enabled);
  EXPECT_FALSE(v.server_id);
  EXPECT_FALSE(v.deleted_at);

  // The column defaults agree for rows inserted by hand (operators' SQL).
  Sql("INSERT INTO projects (organization_id, name) VALUES ('" + org_ + "', 'raw')");
  Sql("INSERT INTO project_volumes (project_id) SELECT id FROM projects WHERE name = 'raw'");
  const pqxx::row raw =
      Sql("SELECT mount_path, size_gb, filesystem, status, health, backup_schedule, "
          "backup_retention_count, pre_delete_backup_enabled FROM project_volumes v "
          "JOIN projects p ON p.id = v.project_id WHERE p.name = 'raw'")[0];
  EXPECT_EQ(raw[0].as<std::string>(), "/data");
  EXPECT_EQ(raw[1].as<int>(), 5);
  EXPECT_EQ(raw[2].as<std::string>(), "ext4");
  EXPECT_EQ(raw[3].as<std::string>(), "detached");
  EXPECT_EQ(raw[4].as<std::string>(), "unknown");
  EXPECT_EQ(raw[5].as<std::string>(), "manual");
  EXPECT_EQ(raw[6].as<int>(), 7);
  EXPECT_FALSE(raw[7].as<bool>());
}

TEST_F(VolumesTest, OneLiveVolumePerProject) {
  const Volume first = MakeVolume(project_, server_);
  auto second =
      db().Transact([&](Tx& tx) { return CreateVolume(tx, NewVolume{.project_id = project_}); });
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_EQ(second.error().message(), "the project already has a volume");

  ASSERT_OK_AND_ASSIGN(Volume deleted,
                       db().Transact([&](Tx& tx) { return MarkVolumeDeleted(tx, first.id); }));
  EXPECT_TRUE(deleted.deleted_at.has_value());
  EXPECT_ERROR_KIND(db().Transact([&](Tx& tx) { return MarkVolumeDeleted(tx, first.id); }),
                    ErrorKind::kNotFound);
  ASSERT_OK_AND_ASSIGN(std::optional<Volume> none,
                       db().Transact([&](Tx& tx) { return FindProjectVolume(tx, project_); }));
  EXPECT_FALSE(none);

  const Volume replacement = MakeVolume(project_, server_);
  ASSERT_OK_AND_ASSIGN(std::optional<Volume> live, db().Transact([&](Tx& tx) {
    return FindProjectVolume(tx, project_, /*for_update=*/true);
  }));
  ASSERT_TRUE(live);
  EXPECT_EQ(live->id, replacement.id);
  // The deleted one is still readable by id (history).
  ASSERT_OK(db().Transact([&](Tx& tx) { return GetVolume(tx, first.id); }));
  ASSERT_OK_AND_ASSIGN(std::vector<Volume> with_deleted, db().Transact([&](Tx& tx) {
    return ListVolumes(tx, VolumeFilter{.project_id = project_, .include_deleted = true});
  }));
  EXPECT_EQ(with_deleted.size(), 2u);
  ASSERT_OK_AND_ASSIGN(std::vector<Volume> on_server, db().Transact([&](Tx& tx) {
    return ListVolumes(tx, VolumeFilter{.server_id = server_});
  }));
  EXPECT_EQ(on_server.size(), 1u);
}

TEST_F(VolumesTest, SettingsGrowOnlyAndValidate) {
  const Volume v = MakeVolume(project_, server_);
  ASSERT_OK_AND_ASSIGN(Volume grown, db().Transact([&](Tx& tx) {
    return UpdateVolumeSettings(
        tx, v.id,
        VolumeSettingsUpdate{
            .size_gb = 10, .backup_schedule = BackupSchedule::kDaily, .backup_retention_count = 3});
  }));
  EXPECT_EQ(grown.size_gb, 10);
  EXPECT_EQ(grown.backup_schedule, BackupSchedule::kDaily);
  EXPECT_EQ(grown.backup_retention_count, 3);
  EXPECT_EQ(grown.mount_path, "/data");  // untouched

  auto shrink = db().Transact(
      [&](Tx& tx) { return UpdateVolumeSettings(tx, v.id, VolumeSettingsUpdate{.size_gb = 9}); });
  ASSERT_FALSE(shrink);
  EXPECT_EQ(shrink.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_NE(shrink.error().message().find("only grow"), std::string::npos);
  EXPECT_ERROR_KIND(db().Transact([&](Tx& tx) {
    return UpdateVolumeSettings(tx, v.id, VolumeSettingsUpdate{.backup_retention_count = 0});
  }),
                    ErrorKind::kInvalidArgument);
  EXPECT_ERROR_KIND(db().Transact([&](Tx& tx) {
    return UpdateVolumeSettings(tx, v.id, VolumeSettingsUpdate{.mount_path = "data"});
  }),
                    ErrorKind::kInvalidArgument);
}

TEST_F(VolumesTest, StateUpdatesSetAndClearNullableColumns) {
  const Volume v = MakeVolume(project_, server_);
  const std::string vm = NewUuidV4();
  ASSERT_OK_AND_ASSIGN(Volume attached, db().Transact([&](Tx& tx) {
    return UpdateVolumeState(tx, v.id,
                             VolumeStateUpdate{.status = VolumeStatus::kAttached,
                                               .health = VolumeHealth::kHealthy,
                                               .attached_vm_id = SetTo(vm),
                                               .last_error = SetTo("boom")});
  }));
  EXPECT_EQ(attached.status, VolumeStatus::kAttached);
  EXPECT_EQ(attached.health, VolumeHealth::kHealthy);
  EXPECT_EQ(attached.attached_vm_id, vm);
  EXPECT_EQ(attached.last_error, "boom");
  EXPECT_EQ(attached.server_id, server_);  // untouched

  ASSERT_OK_AND_ASSIGN(Volume cleared, db().Transact([&](Tx& tx) {
    return UpdateVolumeState(tx, v.id,
                             VolumeStateUpdate{.status = VolumeStatus::kDetached,
                                               .server_id = SetNull(),
                                               .attached_vm_id = SetNull(),
                                               .last_error = SetNull()});
  }));
  EXPECT_FALSE(cleared.attached_vm_id);
  EXPECT_FALSE(cleared.last_error);
  EXPECT_FALSE(cleared.server_id);
  EXPECT_EQ(cleared.health, VolumeHealth::kHealthy);
}

TEST_F(VolumesTest, StateUpdateCanRequireACurrentStatus) {
  const Volume v = MakeVolume(project_, server_);
  auto refused = db().Transact([&](Tx& tx) {
    return UpdateVolumeState(tx, v.id,
                             VolumeStateUpdate{.status = VolumeStatus::kDetached,
                                               .only_from = {VolumeStatus::kBackingUp}});
  });
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_NE(refused.error().message().find("detached"), std::string::npos);
  ASSERT_OK(db().Transact([&](Tx& tx) {
    return UpdateVolumeState(tx, v.id,
                             VolumeStateUpdate{.status = VolumeStatus::kAvailable,
                                               .only_from = {VolumeStatus::kDetached}});
  }));
  EXPECT_ERROR_KIND(db().Transact([&](Tx& tx) {
    return UpdateVolumeState(tx, NewUuidV4(), VolumeStateUpdate{});
  }),
                    ErrorKind::kNotFound);
}

TEST_F(VolumesTest, ProjectWithAVolumeCannotBeDeleted) {
  MakeVolume(project_, server_);
  EXPECT_ERROR_KIND(db().Transact([&](Tx& tx) { return DeleteProject(tx, project_); }),
                    ErrorKind::kInvalidArgument);
  const std::string empty = MakeProject(org_, "empty");
  ASSERT_OK(db().Transact([&](Tx& tx) { return DeleteProject(tx, empty); }));
  EXPECT_ERROR_KIND(db().Transact([&](Tx& tx) { return DeleteProject(tx, empty); }),
                    ErrorKind::kNotFound);
}

}  // namespace
}  // namespace kindling::db
