#include "pgbackup/info.h"

#include <gtest/gtest.h>

namespace kindling::pgbackup {
namespace {

// Printed by pgBackRest 2.45 for a stanza with one full and one incremental
// backup.
constexpr char kTwoBackups[] = R"([{"archive":[{"database":{"id":1,"repo-key":1},"id":"15-1",
"max":"000000010000000000000007","min":"000000010000000000000001"}],
"backup":[{"archive":{"start":"000000010000000000000002","stop":"000000010000000000000003"},
"backrest":{"format":5,"version":"2.45"},"database":{"id":1,"repo-key":1},"error":false,
"info":{"delta":22992523,"repository":{"delta":2833664,"size":2833664},"size":22992523},
"label":"20261202-002919F","lsn":{"start":"0/2000028","stop":"0/3000050"},"prior":null,
"reference":null,"timestamp":{"start":1796171359,"stop":1796171361},"type":"full"},
{"archive":{"start":"000000010000000000000006","stop":"000000010000000000000007"},
"backrest":{"format":5,"version":"2.45"},"database":{"id":1,"repo-key":1},"error":false,
"info":{"delta":65536,"repository":{"delta":8192,"size":2841856},"size":22992523},
"label":"20261202-002919F_20261202-003500I","lsn":{"start":"0/6000028","stop":"0/7000050"},
"prior":"20261202-002919F","reference":["20261202-002919F"],
"timestamp":{"start":1796171700,"stop":1796171702},"type":"incr"}],
"cipher":"aes-256-cbc","db":[{"id":1,"repo-key":1,"system-id":7714497188162832672,
"version":"15"}],"name":"kindling","repo":[{"cipher":"aes-256-cbc","key":1,
"status":{"code":0,"message":"ok"}}],"status":{"code":0,"lock":{"backup":{"held":false}},
"message":"ok"}}])";

TEST(PgBackupInfoTest, ParsesBackupsOldestFirst) {
  auto info = ParseInfo(kTwoBackups, "kindling");
  ASSERT_TRUE(info) << info.error().message();
  EXPECT_TRUE(info->ok());
  EXPECT_FALSE(info->backup_running);
  ASSERT_EQ(info->backups.size(), 2u);
  const BackupSet& full = info->backups[0];
  EXPECT_EQ(full.label, "20261202-002919F");
  EXPECT_EQ(full.type, "full");
  EXPECT_EQ(full.start_time, 1796171359);
  EXPECT_EQ(full.stop_time, 1796171361);
  EXPECT_EQ(full.size, 22992523u);
  EXPECT_EQ(full.delta, 22992523u);
  EXPECT_EQ(full.repo_size, 2833664u);
  EXPECT_EQ(full.repo_delta, 2833664u);
  EXPECT_EQ(full.wal_start, "000000010000000000000002");
  EXPECT_EQ(full.wal_stop, "000000010000000000000003");
  ASSERT_NE(info->Latest(), nullptr);
  EXPECT_EQ(info->Latest()->type, "incr");
  EXPECT_EQ(info->wal_min.value_or(""), "000000010000000000000001");
  EXPECT_EQ(info->wal_max.value_or(""), "000000010000000000000007");
  // The newest backup that stopped by a time.
  EXPECT_EQ(info->NewestStoppedBy(1796171360), nullptr);
  ASSERT_NE(info->NewestStoppedBy(1796171361), nullptr);
  EXPECT_EQ(info->NewestStoppedBy(1796171700)->label, "20261202-002919F");
  EXPECT_EQ(info->NewestStoppedBy(1796171702)->type, "incr");
}

TEST(PgBackupInfoTest, StatusCodesCarryTheStateNotTheExitCode) {
  // A stanza that was never created: pgBackRest still exits 0.
  constexpr char kMissing[] = R"([{"archive":[],"backup":[],"cipher":"aes-256-cbc","db":[],
"name":"kindling","repo":[{"cipher":"aes-256-cbc","key":1,"status":{"code":1,
"message":"missing stanza path"}}],"status":{"code":1,"lock":{"backup":{"held":false}},
"message":"missing stanza path"}}])";
  auto missing = ParseInfo(kMissing, "kindling");
  ASSERT_TRUE(missing);
  EXPECT_FALSE(missing->ok());
  EXPECT_EQ(missing->status_code, kStanzaMissing);
  EXPECT_EQ(missing->Problem(), "missing stanza path");
  EXPECT_EQ(missing->Latest(), nullptr);

  // An unreadable repository: code 99 "other", the reason in the repo entry.
  constexpr char kUnreadable[] = R"([{"archive":[],"backup":[],"cipher":"aes-256-cbc","db":[],
"name":"kindling","repo":[{"cipher":"aes-256-cbc","key":1,"status":{"code":99,
"message":"[PathOpenError] unable to list file info for path '/r/backup': [13] Permission denied"}}],
"status":{"code":99,"lock":{"backup":{"held":true}},"message":"other"}}])";
  auto unreadable = ParseInfo(kUnreadable, "kindling");
  ASSERT_TRUE(unreadable);
  EXPECT_EQ(unreadable->status_code, kOtherError);
  EXPECT_TRUE(unreadable->backup_running);
  EXPECT_EQ(unreadable->Problem(),
            "other: [PathOpenError] unable to list file info for path '/r/backup': [13] "
            "Permission denied");

  constexpr char kNoBackups[] = R"([{"archive":[{"database":{"id":1,"repo-key":1},"id":"15-1",
"max":"000000010000000000000001","min":"000000010000000000000001"}],"backup":[],
"cipher":"aes-256-cbc","db":[{"id":1,"repo-key":1,"system-id":1,"version":"15"}],
"name":"kindling","repo":[{"cipher":"aes-256-cbc","key":1,"status":{"code":2,
"message":"no valid backups"}}],"status":{"code":2,"lock":{"backup":{"held":false}},
"message":"no valid backups"}}])";
  auto none = ParseInfo(kNoBackups, "kindling");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status_code, kNoValidBackups);
  EXPECT_EQ(none->Problem(), "no valid backups");
}

TEST(PgBackupInfoTest, OtherStanzasAndGarbage) {
  auto other = ParseInfo(kTwoBackups, "elsewhere");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status_code, kStanzaMissing);
  EXPECT_TRUE(other->backups.empty());
  EXPECT_FALSE(ParseInfo("", "kindling"));
  EXPECT_FALSE(ParseInfo("ERROR: [041]: unable to open", "kindling"));
  EXPECT_FALSE(ParseInfo(R"({"name":"kindling"})", "kindling"));
  EXPECT_FALSE(ParseInfo(R"([{"name":"kindling"}])", "kindling"));  // no status
  EXPECT_FALSE(ParseInfo(R"([{"name":"kindling","status":{"code":0},"backup":[{}]}])",
                         "kindling"));  // a backup without a label
}

}  // namespace
}  // namespace kindling::pgbackup
