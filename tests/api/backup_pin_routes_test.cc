// POST/DELETE /api/projects/{id}/volume/backups/{backup_id}/pin: an
// organisation admin pins a backup of any of the project's volumes, audited;
// the backup JSON shows the pin and what the last verify found; the
// retention preview keeps a pinned backup whatever the policy. Refusals
// (members, malformed or unknown ids, other projects' backups) change nothing.
#include <gtest/gtest.h>

#include <string>

#include "api_test_fixture.h"
#include "common/ids.h"
#include "db/backups.h"

namespace kindling::api {
namespace {

class BackupPinRoutesTest : public ApiServerTest {
 protected:
  void SetUp() override {
    ApiServerTest::SetUp();
    if (HasFatalFailure()) return;
    MakeServer("w1");
    ConfigureLocalStore();
    project_ = CreateProject();
    volume_ = "/api/projects/" + project_ + "/volume";
    Response created = Send("PUT", volume_, admin_key_, "{}");
    ASSERT_EQ(created.status, 200) << created.raw;
    volume_id_ = created.body["id"];
  }

  // A succeeded backup of `volume_id`, completed after every earlier one.
  std::string SucceededBackup(const std::string& volume_id) {
    auto backup = Must([&](db::Tx& tx) -> Result<db::Backup> {
      KINDLING_ASSIGN_OR_RETURN(auto b,
                                db::CreateBackup(tx, db::NewBackup{.volume_id = volume_id}));
      return db::MarkBackupSucceeded(
          tx, b.id,
          db::BackupSuccess{.storage_url = "file://" + store_dir_.path().string(),
                            .storage_key = "k",
                            .size_bytes = 1 << 20});
    });
    return backup ? backup->id : "";
  }

  json Listed(const std::string& backup_id) {
    Response listed = Send("GET", volume_ + "/backups", member_key_);
    EXPECT_EQ(listed.status, 200) << listed.raw;
    for (const json& b : listed.body) {
      if (b.value("id", "") == backup_id) return b;
    }
    ADD_FAILURE() << backup_id << " not listed: " << listed.raw;
    return json::object();
  }

  // The audit events `action` about `backup_id`: user id and details.changed.
  std::vector<std::pair<std::string, bool>> Audited(const std::string& action,
                                                    const std::string& backup_id) {
    std::vector<std::pair<std::string, bool>> out;
    for (const auto& row :
         Sql("SELECT coalesce(user_id::text, ''), (details->>'changed')::boolean "
             "FROM cluster_audit_events WHERE action = '" +
             action + "' AND details->>'backup_id' = '" + backup_id + "' ORDER BY created_at")) {
      out.emplace_back(row[0].as<std::string>(), row[1].as<bool>());
    }
    return out;
  }

  std::string project_, volume_, volume_id_;
};

TEST_F(BackupPinRoutesTest, PinAndUnpinAreShownAuditedAndProtectFromRetention) {
  const std::string old_id = SucceededBackup(volume_id_);
  const std::string new_id = SucceededBackup(volume_id_);
  Response policy = Send("PUT", volume_, admin_key_, json{{"backup_retention_count", 1}}.dump());
  ASSERT_EQ(policy.status, 200) << policy.raw;
  json before = Listed(old_id);
  EXPECT_EQ(before["pinned"], false);
  EXPECT_TRUE(before["verified_at"].is_null());
  EXPECT_TRUE(before["verify_state"].is_null());
  Response preview = Send("GET", volume_ + "/retention", member_key_);
  ASSERT_EQ(preview.status, 200) << preview.raw;
  EXPECT_EQ(preview.body["dropped"], 1) << preview.raw;

  Response pinned = Send("POST", volume_ + "/backups/" + old_id + "/pin", org_admin_key_);
  ASSERT_EQ(pinned.status, 200) << pinned.raw;
  EXPECT_EQ(pinned.body["id"], old_id);
  EXPECT_EQ(pinned.body["pinned"], true);
  EXPECT_EQ(Listed(old_id)["pinned"], true);
  EXPECT_EQ(Listed(new_id)["pinned"], false);
  // Kept outside the rules: the newest backup is still keep_last.
  preview = Send("GET", volume_ + "/retention", member_key_);
  ASSERT_EQ(preview.status, 200) << preview.raw;
  EXPECT_EQ(preview.body["dropped"], 0) << preview.raw;
  ASSERT_EQ(preview.body["backups"].size(), 2u) << preview.raw;
  EXPECT_EQ(preview.body["backups"][0]["id"], new_id);
  EXPECT_EQ(preview.body["backups"][0]["reasons"], json::array({"last"}));
  EXPECT_EQ(preview.body["backups"][1]["reasons"], json::array({"pinned"}));

  // Pinning again changes nothing but is still an audited request.
  ASSERT_EQ(Send("POST", volume_ + "/backups/" + old_id + "/pin", admin_key_).status, 200);
  const auto pins = Audited("volume.backup.pinned", old_id);
  ASSERT_EQ(pins.size(), 2u);
  EXPECT_FALSE(pins[0].first.empty()) << "the actor is recorded";
  EXPECT_TRUE(pins[0].second);
  EXPECT_FALSE(pins[1].second);

  Response unpinned = Send("DELETE", volume_ + "/backups/" + old_id + "/pin", org_admin_key_);
  ASSERT_EQ(unpinned.status, 200) << unpinned.raw;
  EXPECT_EQ(unpinned.body["pinned"], false);
  EXPECT_EQ(Listed(old_id)["pinned"], false);
  const auto unpins = Audited("volume.backup.unpinned", old_id);
  ASSERT_EQ(unpins.size(), 1u);
  EXPECT_TRUE(unpins[0].second);
  preview = Send("GET", volume_ + "/retention", member_key_);
  EXPECT_EQ(preview.body["dropped"], 1) << preview.raw;
}

TEST_F(BackupPinRoutesTest, RefusalsChangeNothing) {
  const std::string backup_id = SucceededBackup(volume_id_);
  for (const std::string method : {"POST", "DELETE"}) {
    SCOPED_TRACE(method);
    ExpectRefused(method, volume_ + "/backups/" + backup_id + "/pin", member_key_, "", 403,
                  "forbidden");
    ExpectRefused(method, volume_ + "/backups/not-a-uuid/pin", admin_key_, "", 400,
                  "validation_error");
    ExpectRefused(method, volume_ + "/backups/" + NewUuidV4() + "/pin", admin_key_, "", 404,
                  "not_found");
    ExpectRefused(method, "/api/projects/" + NewUuidV4() + "/volume/backups/" + backup_id + "/pin",
                  admin_key_, "", 404, "not_found");
  }
  ExpectRefused("POST", volume_ + "/backups/" + backup_id + "/pin", admin_key_,
                R"({"pinned": true})", 400, "validation_error");
  // Another project's backup is as unknown as a missing one, even to a
  // platform admin naming the wrong project.
  const std::string other = CreateProject("other");
  Response other_volume = Send("PUT", "/api/projects/" + other + "/volume", admin_key_, "{}");
  ASSERT_EQ(other_volume.status, 200) << other_volume.raw;
  const std::string foreign = SucceededBackup(other_volume.body["id"]);
  ExpectRefused("POST", volume_ + "/backups/" + foreign + "/pin", admin_key_, "", 404, "not_found");
  EXPECT_EQ(Listed(backup_id)["pinned"], false);
}

TEST_F(BackupPinRoutesTest, BackupsOfADeletedVolumeCanBePinnedThroughTheProject) {
  const std::string backup_id = SucceededBackup(volume_id_);
  ASSERT_EQ(Send("DELETE", volume_, admin_key_).status, 204);
  Response pinned = Send("POST", volume_ + "/backups/" + backup_id + "/pin", admin_key_);
  ASSERT_EQ(pinned.status, 200) << pinned.raw;
  Response listed = Send("GET", "/api/projects/" + project_ + "/backups", member_key_);
  ASSERT_EQ(listed.status, 200) << listed.raw;
  ASSERT_EQ(listed.body.size(), 1u) << listed.raw;
  EXPECT_EQ(listed.body[0]["pinned"], true);
  EXPECT_EQ(listed.body[0]["volume_deleted"], true);
}

TEST_F(BackupPinRoutesTest, TheBackupShowsWhatItsLastVerifyFound) {
  const std::string backup_id = SucceededBackup(volume_id_);
  ASSERT_TRUE(Must([&](db::Tx& tx) {
    return db::RecordBackupVerification(tx, backup_id, db::VerifyState::kDamaged);
  }));
  json shown = Listed(backup_id);
  EXPECT_EQ(shown["verify_state"], "damaged");
  ASSERT_TRUE(shown["verified_at"].is_string()) << shown.dump();
  EXPECT_FALSE(shown["verified_at"].get<std::string>().empty());
  ASSERT_TRUE(Must([&](db::Tx& tx) {
    return db::RecordBackupVerification(tx, backup_id, db::VerifyState::kOk);
  }));
  EXPECT_EQ(Listed(backup_id)["verify_state"], "ok");
}

}  // namespace
}  // namespace kindling::api
