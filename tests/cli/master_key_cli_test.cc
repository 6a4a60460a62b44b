// `kindling admin master-key export|import` run as a subprocess against a
// real PostgreSQL: the file it writes, the warning, what it records, and the
// keys it refuses.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli_harness.h"
#include "crypto/key_file.h"
#include "db/db_test_util.h"
#include "db/settings.h"
#include "service/master_key.h"
#include "service/serve.h"
#include "testutil/temp_dir.h"

namespace kindling::clitest {
namespace {

using nlohmann::json;

class MasterKeyCliTest : public db::DbTest {
 protected:
  void SetUp() override {
    DbTest::SetUp();
    if (HasFatalFailure()) return;
    dsn_file_ = dir_.path() / "postgres.dsn";
    testutil::WriteFile(dsn_file_, dsn() + "\n");
    state_dir_ = dir_.path() / "host-a";
    auto key = service::LoadOrCreateMasterKey(state_dir_ / "master.key");
    ASSERT_TRUE(key) << key.error().message();
    key_ = *key;
    // The cluster records its key's check value at the first start.
    ASSERT_TRUE(service::CheckMasterKeyMatchesCluster(db(), key_, state_dir_ / "master.key"));
  }

  RunResult Run(std::vector<std::string> args) {
    args.insert(args.begin(), {"admin", "master-key"});
    // Nothing from the environment of the test run.
    return RunKindling(
        args,
        {{"KINDLING_DSN_FILE", ""}, {"KINDLING_STATE_DIR", ""}, {"KINDLING_MASTER_KEY_FILE", ""}});
  }

  static unsigned Mode(const fs::path& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return 0;
    return st.st_mode & 0777;
  }

  std::optional<crypto::Key> KeyIn(const fs::path& path) {
    auto key = crypto::LoadKeyFile(path);
    if (!key) return std::nullopt;
    return *key;
  }

  std::optional<std::string> Setting(const std::string& name) {
    auto value = Must([&](db::Tx& tx) { return db::GetSetting(tx, name); });
    return value ? *value : std::nullopt;
  }

  int Events(const std::string& action) {
    return Sql("SELECT count(*) FROM cluster_audit_events WHERE action = '" + action + "'")[0][0]
        .as<int>();
  }

  static void ExpectWarning(const RunResult& run) {
    EXPECT_NE(run.err.find("can read every backup and every cluster secret"), std::string::npos)
        << run.Describe();
    EXPECT_NE(run.err.find("cluster_secrets and the backup stores' keys are unreadable"),
              std::string::npos)
        << run.Describe();
  }

  testutil::TempDir dir_;
  fs::path dsn_file_;
  fs::path state_dir_;
  crypto::Key key_{};
};

TEST_F(MasterKeyCliTest, ExportWritesTheKeyPrivatelyAndRecordsIt) {
  const fs::path out = dir_.path() / "exported.key";
  EXPECT_FALSE(Setting(service::kMasterKeyExportedAtSetting).has_value());
  RunResult run = Run({"export", "--out", out.string(), "--state-dir", state_dir_.string(),
                       "--dsn-file", dsn_file_.string(), "--json"});
  ASSERT_EQ(run.exit_code, 0) << run.Describe();
  ExpectWarning(run);
  const json answer = run.Json();
  EXPECT_EQ(answer["checked_against_cluster"], true) << run.Describe();
  EXPECT_EQ(answer["database"], true);
  EXPECT_EQ(answer["unchanged"], false);
  EXPECT_EQ(KeyIn(out), key_);
  EXPECT_EQ(Mode(out), 0600u);
  // The file never appears on stdout or stderr.
  EXPECT_EQ(run.out.find(ReadWholeFile(out).substr(0, 64)), std::string::npos);
  EXPECT_EQ(run.err.find(ReadWholeFile(out).substr(0, 64)), std::string::npos);
  const auto exported_at = Setting(service::kMasterKeyExportedAtSetting);
  ASSERT_TRUE(exported_at.has_value());
  EXPECT_EQ(exported_at->size(), 20u) << *exported_at;  // 2024-05-01T12:00:00Z
  // Which key: its check value, never key material.
  EXPECT_EQ(Setting(service::kMasterKeyExportedCheckSetting), service::MasterKeyCheckValue(key_));
  EXPECT_EQ(Events("cluster.master_key.export"), 1);

  // Again to the same file: nothing to write. To a file holding something
  // else: only with --force.
  run = Run({"export", "--out", out.string(), "--state-dir", state_dir_.string(), "--dsn-file",
             dsn_file_.string(), "--json"});
  ASSERT_EQ(run.exit_code, 0) << run.Describe();
  EXPECT_EQ(run.Json()["unchanged"], true);
  const fs::path other = dir_.path() / "notes.txt";
  testutil::WriteFile(other, "shopping list\n");
  run =
      Run({"export", "--out", other.string(), "--state-dir", state_dir_.string(), "--no-database"});
  EXPECT_EQ(run.exit_code, 2) << run.Describe();
  EXPECT_NE(run.err.find("--force"), std::string::npos) << run.Describe();
  EXPECT_EQ(ReadWholeFile(other), "shopping list\n");
  run = Run({"export", "--out", other.string(), "--master-key-file",
             (state_dir_ / "master.key").string(), "--no-database", "--force"});
  ASSERT_EQ(run.exit_code, 0) << run.Describe();
  EXPECT_NE(run.out.find("not checked: no database"), std::string::npos) << run.Describe();
  EXPECT_EQ(KeyIn(other), key_);
  EXPECT_EQ(Mode(other), 0600u);
}

// What `kindling admin control-plane check` warns about.
TEST_F(MasterKeyCliTest, ExportWarningUntilTheClustersKeyIsExported) {
  auto warning = service::MasterKeyExportWarning(db());
  ASSERT_TRUE(warning) << warning.error().message();
  ASSERT_TRUE(warning->has_value());
  EXPECT_NE((*warning)->find("no export of the master key recorded"), std::string::npos)
      << **warning;
  EXPECT_NE((*warning)->find("kindling admin master-key export --out FILE"), std::string::npos)
      << **warning;

  const fs::path out = dir_.path() / "exported.key";
  ASSERT_EQ(Run({"export", "--out", out.string(), "--state-dir", state_dir_.string(), "--dsn-file",
                 dsn_file_.string()})
                .exit_code,
            0);
  warning = service::MasterKeyExportWarning(db());
  ASSERT_TRUE(warning) << warning.error().message();
  EXPECT_FALSE(warning->has_value()) << **warning;
  auto recorded = service::RecordedMasterKeyExport(db());
  ASSERT_TRUE(recorded && recorded->has_value());
  EXPECT_EQ((*recorded)->check, service::MasterKeyCheckValue(key_));

  // An export recorded of another key than the cluster's: export again.
  (void)Must([&](db::Tx& tx) {
    return db::PutSetting(tx, service::kMasterKeyExportedCheckSetting, "0123456789abcdef");
  });
  warning = service::MasterKeyExportWarning(db());
  ASSERT_TRUE(warning && warning->has_value());
  EXPECT_NE((*warning)->find("is of another key than the cluster's"), std::string::npos)
      << **warning;
}

TEST_F(MasterKeyCliTest, ExportRefusesAKeyThatIsNotTheClustersOrMissing) {
  const fs::path stray = dir_.path() / "host-b" / "master.key";
  ASSERT_TRUE(service::LoadOrCreateMasterKey(stray));
  const fs::path out = dir_.path() / "exported.key";
  RunResult run = Run({"export", "--out", out.string(), "--master-key-file", stray.string(),
                       "--dsn-file", dsn_file_.string()});
  EXPECT_EQ(run.exit_code, 4) << run.Describe();
  EXPECT_NE(run.err.find("is not this cluster's"), std::string::npos) << run.Describe();
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(Setting(service::kMasterKeyExportedAtSetting).has_value());

  run = Run({"export", "--out", out.string(), "--state-dir", (dir_.path() / "nowhere").string(),
             "--no-database"});
  EXPECT_EQ(run.exit_code, 1) << run.Describe();
  EXPECT_NE(run.err.find("no master key at"), std::string::npos) << run.Describe();
  // A DSN file that is named must be there.
  run = Run({"export", "--out", out.string(), "--state-dir", state_dir_.string(), "--dsn-file",
             (dir_.path() / "missing.dsn").string()});
  EXPECT_EQ(run.exit_code, 2) << run.Describe();
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(MasterKeyCliTest, ImportInstallsTheClustersKeyAndRefusesOthers) {
  const fs::path exported = dir_.path() / "exported.key";
  ASSERT_EQ(Run({"export", "--out", exported.string(), "--state-dir", state_dir_.string(),
                 "--no-database"})
                .exit_code,
            0);
  // A new host (or a rebuilt one) gets the key before its first start.
  const fs::path new_host = dir_.path() / "host-c";
  RunResult run = Run({"import", "--from", exported.string(), "--state-dir", new_host.string(),
                       "--dsn-file", dsn_file_.string(), "--json"});
  ASSERT_EQ(run.exit_code, 0) << run.Describe();
  ExpectWarning(run);
  EXPECT_EQ(run.Json()["checked_against_cluster"], true);
  EXPECT_EQ(KeyIn(new_host / "master.key"), key_);
  EXPECT_EQ(Mode(new_host / "master.key"), 0600u);
  EXPECT_EQ(Events("cluster.master_key.import"), 1);
  EXPECT_TRUE(service::CheckMasterKeyMatchesCluster(db(), *KeyIn(new_host / "master.key"),
                                                    new_host / "master.key"));
  run = Run({"import", "--from", exported.string(), "--state-dir", new_host.string(), "--dsn-file",
             dsn_file_.string(), "--json"});
  ASSERT_EQ(run.exit_code, 0) << run.Describe();
  EXPECT_EQ(run.Json()["unchanged"], true);

  // Another key: not the cluster's, refused even with --force.
  const fs::path stray = dir_.path() / "stray.key";
  ASSERT_TRUE(crypto::CreateKeyFile(stray));
  run = Run({"import", "--from", stray.string(), "--state-dir", new_host.string(), "--dsn-file",
             dsn_file_.string(), "--force"});
  EXPECT_EQ(run.exit_code, 4) << run.Describe();
  EXPECT_NE(run.err.find("is not this cluster's"), std::string::npos) << run.Describe();
  EXPECT_EQ(KeyIn(new_host / "master.key"), key_);
  // Without a database to ask, a different key already there is kept unless
  // --force, and then it is set aside, never deleted.
  run =
      Run({"import", "--from", stray.string(), "--state-dir", new_host.string(), "--no-database"});
  EXPECT_EQ(run.exit_code, 2) << run.Describe();
  EXPECT_NE(run.err.find("holds another master key"), std::string::npos) << run.Describe();
  EXPECT_EQ(KeyIn(new_host / "master.key"), key_);
  run = Run({"import", "--from", stray.string(), "--state-dir", new_host.string(), "--no-database",
             "--force", "--json"});
  ASSERT_EQ(run.exit_code, 0) << run.Describe();
  EXPECT_EQ(KeyIn(new_host / "master.key"), KeyIn(stray));
  const json answer = run.Json();
  ASSERT_TRUE(answer["replaced_key_kept_at"].is_string()) << run.Describe();
  EXPECT_EQ(KeyIn(answer["replaced_key_kept_at"].get<std::string>()), key_);

  // Not a key file at all.
  const fs::path junk = dir_.path() / "junk";
  testutil::WriteFile(junk, "hello\n");
  run = Run({"import", "--from", junk.string(), "--state-dir", new_host.string(), "--no-database"});
  EXPECT_EQ(run.exit_code, 2) << run.Describe();
}

}  // namespace
}  // namespace kindling::clitest
