// `kindling volume pin-backup` / `unpin-backup` and the backups table's
// PINNED and VERIFIED columns, end to end: the kindling binary against an
// in-process ApiServer and Worker; a real backup is verified and the table
// shows what the verify found. Refusals map to the documented exit codes and
// change nothing.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "api_cli_fixture.h"

namespace kindling::clitest {
namespace {

class BackupPinCliTest : public ApiCliTest {};

TEST_F(BackupPinCliTest, PinUnpinAndTheVerifyStateShowInTheBackupsTable) {
  ConfigureLocalStore();
  const auto [project, volume] = MakeProjectWithVolume("web");
  WriteAt(worker_->ImageOf(volume), 5u << 20, RandomBytes(1u << 20, 3));
  const json backup_op = Ok({"volume", "backup", "--project", project, "--follow", "--quiet"});
  ASSERT_EQ(backup_op["status"], "succeeded") << backup_op.dump();
  const std::string backup_id = backup_op.value("backup_id", "");

  json listed = Ok({"volume", "backups", "--project", project});
  ASSERT_EQ(listed.size(), 1u) << listed.dump();
  EXPECT_EQ(listed[0]["pinned"], false);
  EXPECT_TRUE(listed[0]["verify_state"].is_null());
  RunResult table = Kindling({"volume", "backups", "--project", project});
  ASSERT_EQ(table.exit_code, 0) << table.Describe();
  EXPECT_NE(table.out.find("PINNED"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("VERIFIED"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find(backup_id + "  succeeded  manual  no "), std::string::npos) << table.out;

  const json pinned = Ok({"volume", "pin-backup", "--project", project, "--backup", backup_id});
  EXPECT_EQ(pinned["id"], backup_id);
  EXPECT_EQ(pinned["pinned"], true);
  RunResult pinned_text =
      Kindling({"volume", "pin-backup", "--project", project, "--backup", backup_id});
  ASSERT_EQ(pinned_text.exit_code, 0) << pinned_text.Describe();
  EXPECT_NE(pinned_text.out.find(backup_id + "  succeeded  manual  yes "), std::string::npos)
      << pinned_text.out;
  EXPECT_EQ(Ok({"volume", "backups", "--project", project})[0]["pinned"], true);

  // A verify records what it found; the table shows it.
  const json verify = Ok({"volume", "verify-backup", "--project", project, "--backup", backup_id,
                          "--follow", "--quiet"});
  ASSERT_EQ(verify["status"], "succeeded") << verify.dump();
  listed = Ok({"volume", "backups", "--project", project});
  EXPECT_EQ(listed[0]["verify_state"], "ok") << listed.dump();
  ASSERT_TRUE(listed[0]["verified_at"].is_string()) << listed.dump();
  table = Kindling({"volume", "backups", "--project", project});
  EXPECT_NE(table.out.find("ok " + listed[0]["verified_at"].get<std::string>()), std::string::npos)
      << table.out;

  const json unpinned = Ok({"volume", "unpin-backup", "--project", project, "--backup", backup_id});
  EXPECT_EQ(unpinned["pinned"], false);
  EXPECT_EQ(Ok({"volume", "backups", "--project", project})[0]["pinned"], false);
}

TEST_F(BackupPinCliTest, RefusalsExitNonZeroAndChangeNothing) {
  const auto [project, volume] = MakeProjectWithVolume("web");
  auto audit_rows = [&] {
    return Sql("SELECT count(*) FROM cluster_audit_events")[0][0].as<int>();
  };
  const int before = audit_rows();
  Fails({"volume", "pin-backup", "--project", project, "--backup", NewUuidV4()}, 1, "not found");
  Fails({"volume", "unpin-backup", "--project", project, "--backup", "not-a-uuid"}, 2, "backup");
  RunResult missing = Kindling({"volume", "pin-backup", "--project", project});
  EXPECT_EQ(missing.exit_code, 2) << missing.Describe();
  EXPECT_NE(missing.err.find("--backup"), std::string::npos) << missing.Describe();
  EXPECT_EQ(audit_rows(), before);
}

}  // namespace
}  // namespace kindling::clitest
