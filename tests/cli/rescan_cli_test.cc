// After the control-plane database is restored from an older snapshot, the
// backups made since are in the store but not in the database. End to end
// through the CLI: `kindling admin backups rescan` imports the backup of a
// known volume (its row deleted, as the snapshot lacks it) and lists the
// backup of a volume the database does not know (made with the engine's CLI
// and the master key) as an orphan; both restore bit-identically through the
// normal worker path, the orphan after `kindling admin backups assign`.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "api_cli_fixture.h"
#include "common/hex.h"
#include "control/backup_store.h"
#include "testutil/sparse_image.h"

namespace kindling::clitest {
namespace {

constexpr std::uint64_t kMiB = 1u << 20;

class RescanCliTest : public ApiCliTest {
 protected:
  json Find(const json& items, const std::string& key, const std::string& value) {
    if (items.is_array()) {
      for (const json& item : items) {
        if (item.value(key, "") == value) return item;
      }
    }
    return json();
  }

  void ExpectRestores(const std::string& project, const std::string& volume,
                      const std::string& backup, const std::string& sha) {
    SCOPED_TRACE("restore of backup " + backup);
    RunResult run = Kindling({"volume", "restore", "--project", project, "--backup", backup,
                              "--follow", "--json", "--quiet"});
    ASSERT_EQ(run.exit_code, 0) << run.Describe();
    EXPECT_EQ(run.Json()["status"], "succeeded") << run.Describe();
    EXPECT_EQ(FileSha256(worker_->ImageOf(volume)), sha);
  }
};

TEST_F(RescanCliTest, ImportsMissingBackupsListsOrphansAndBothRestore) {
  ConfigureLocalStore();
  const std::string store_url = "file://" + (dir_.path() / "bucket").string();
  const auto [project, volume] = MakeProjectWithVolume("web");
  const fs::path image = worker_->ImageOf(volume);
  testutil::PatchFile(image, 8 * kMiB, testutil::RandomData(6 * kMiB, 11));
  const std::string backed_up_sha = FileSha256(image);
  const std::string backed_up_digest = testutil::ImageDigestOfFile(image);
  RunResult run =
      Kindling({"volume", "backup", "--project", project, "--follow", "--json", "--quiet"});
  ASSERT_EQ(run.exit_code, 0) << run.Describe();
  const std::string backup = run.Json().value("backup_id", "");
  ASSERT_TRUE(IsUuid(backup)) << run.Describe();
  // The restored snapshot predates the backup: no row.
  Sql("DELETE FROM project_volume_backups WHERE id = '" + backup + "'");
  EXPECT_EQ(Ok({"volume", "backups", "--project", project}), json::array());
  testutil::PatchFile(image, 8 * kMiB, testutil::RandomData(6 * kMiB, 12));
  ASSERT_NE(FileSha256(image), backed_up_sha);

  // A volume the database does not know, backed up with the engine's CLI:
  // the cluster's store opens with the master key as its key file.
  const fs::path key_file = dir_.path() / "master.key";
  testutil::WriteFile(key_file, HexEncode(crypto::KeyBytes(master_key_)) + "\n");
  const std::string unknown_volume = NewUuidV4();
  const std::string orphan = NewUuidV7();
  const fs::path orphan_image = dir_.path() / "orphan.img";
  testutil::MakeSparseFile(orphan_image, 1ull << 30,
                           {{.offset = 4 * kMiB, .length = 5 * kMiB},
                            {.offset = 300 * kMiB, .length = kMiB, .fill = testutil::Fill::kText}},
                           21);
  const std::string orphan_sha = FileSha256(orphan_image);
  RunResult created = Kindling({"backup", "create", "--store", store_url, "--key-file",
                                key_file.string(), "--volume-id", unknown_volume, "--backup-id",
                                orphan, "--image", orphan_image.string(), "--json", "--quiet"});
  ASSERT_EQ(created.exit_code, 0) << created.Describe();

  // A store in the history that does not open (its directory was never
  // initialised): reported, not fatal.
  const std::string broken = (dir_.path() / "broken-store").string();
  fs::create_directories(broken);
  ASSERT_TRUE(Must([&](db::Tx& tx) {
    return control::RecordBackupStore(tx, master_key_,
                                      control::BackupStoreSettings{.local_directory = broken});
  }));

  RunResult scanned = Kindling({"admin", "backups", "rescan", "--json"});
  ASSERT_EQ(scanned.exit_code, 0) << scanned.Describe();
  EXPECT_NE(scanned.err.find("could not be read"), std::string::npos) << scanned.Describe();
  const json report = scanned.Json();
  ASSERT_EQ(report["imported"].size(), 1u) << report.dump();
  const json imported = report["imported"][0];
  EXPECT_EQ(imported["backup_id"], backup);
  EXPECT_EQ(imported["volume_id"], volume);
  EXPECT_EQ(imported["project_id"], project);
  EXPECT_EQ(imported["image_sha256"], backed_up_digest);
  ASSERT_EQ(report["orphaned"].size(), 1u) << report.dump();
  EXPECT_EQ(report["orphaned"][0]["backup_id"], orphan);
  EXPECT_EQ(report["orphaned"][0]["volume_id"], unknown_volume);
  EXPECT_EQ(report["orphaned"][0]["first_found"], true);
  ASSERT_EQ(report["unreadable"].size(), 1u) << report.dump();
  EXPECT_EQ(report["unreadable"][0]["storage_url"], "file://" + broken);
  EXPECT_EQ(report["unreadable"][0]["key"], nullptr);

  // The imported backup is listed with the manifest's digest and restores
  // the image as it was, through the worker.
  const json listed = Find(Ok({"volume", "backups", "--project", project}), "id", backup);
  ASSERT_TRUE(listed.is_object());
  EXPECT_EQ(listed["status"], "succeeded");
  EXPECT_EQ(listed["storage_url"], store_url);
  EXPECT_EQ(listed["metadata"]["image_sha256"], backed_up_digest);
  EXPECT_EQ(listed["metadata"]["imported"], true);
  ExpectRestores(project, volume, backup, backed_up_sha);

  // Again: nothing new.
  const json again = Ok({"admin", "backups", "rescan"});
  EXPECT_EQ(again["imported"], json::array());
  ASSERT_EQ(again["orphaned"].size(), 1u);
  EXPECT_EQ(again["orphaned"][0]["first_found"], false);
  RunResult text = Kindling({"admin", "backups", "rescan"});
  EXPECT_EQ(text.exit_code, 0) << text.Describe();
  EXPECT_NE(text.out.find("0 imported, 1 orphan(s) (0 new), 1 unreadable"), std::string::npos)
      << text.Describe();
  EXPECT_NE(text.out.find(orphan), std::string::npos) << text.Describe();

  // The orphan goes to another project and restores into its volume.
  const auto [other_project, other_volume] = MakeProjectWithVolume("db");
  const json assigned = Ok({"admin", "backups", "assign", orphan, "--project", other_project});
  EXPECT_EQ(assigned["volume_created"], true);
  EXPECT_EQ(assigned["volume_id"], unknown_volume);
  EXPECT_EQ(Ok({"admin", "backups", "orphans"}), json::array());
  EXPECT_EQ(Ok({"admin", "backups", "orphans", "--all"}).size(), 1u);
  const json of_project =
      Find(Ok({"project", "backups", "--project", other_project}), "id", orphan);
  ASSERT_TRUE(of_project.is_object());
  EXPECT_EQ(of_project["volume_deleted"], true);
  ExpectRestores(other_project, other_volume, orphan, orphan_sha);
  Fails({"admin", "backups", "assign", orphan, "--project", other_project}, 1,
        "(failed_precondition)");
  Fails({"admin", "backups", "assign", "bad id", "--project", other_project}, 2, "backup id");
}

TEST_F(RescanCliTest, OnlyPlatformAdminsRescan) {
  auto member = Must([&](db::Tx& tx) -> Result<db::CreatedApiKey> {
    KINDLING_ASSIGN_OR_RETURN(
        auto user, db::CreateUser(tx, db::NewUser{.email = "dev@example.com", .name = "Dev"}));
    KINDLING_RETURN_IF_ERROR(db::SetMembership(tx, org_, user.id, db::OrgRole::kAdmin));
    return db::CreateApiKey(tx, user.id, "dev");
  });
  ASSERT_TRUE(member);
  const Env as_org_admin = {{"KINDLING_API_KEY", std::string(member->secret.Reveal())}};
  Fails({"admin", "backups", "rescan"}, 1, "(forbidden)", as_org_admin);
  Fails({"admin", "backups", "orphans"}, 1, "(forbidden)", as_org_admin);
  Fails({"admin", "backups", "assign", NewUuidV7(), "--project", NewUuidV4()}, 1, "(forbidden)",
        as_org_admin);
}

}  // namespace
}  // namespace kindling::clitest
