// The command lines PgBackRest builds and how it reads their outcome, with a
// runner that records instead of running (the real pgBackRest runs in the
// drills of tests/service).
#include "pgbackup/pgbackrest.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <deque>

namespace kindling::pgbackup {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class RecordingRunner final : public CommandRunner {
 public:
  Result<CommandResult> Run(const CommandOptions& options) override {
    calls.push_back(options);
    if (answers.empty()) return CommandResult{};
    CommandResult next = answers.front();
    answers.pop_front();
    return next;
  }
  std::vector<CommandOptions> calls;
  std::deque<CommandResult> answers;
};

class PgBackRestTest : public ::testing::Test {
 protected:
  PgBackRest Make() {
    return PgBackRest(runner_, Invocation{.binary = "/usr/bin/pgbackrest",
                                          .config_file = "/etc/kindling/pgbackrest.conf",
                                          .stanza = "kindling",
                                          .run_as = RunAsUser{101, 102}});
  }
  RecordingRunner runner_;
};

TEST_F(PgBackRestTest, RunsAsThePostgresUserWithTheConfigurationFile) {
  PgBackRest pgbackrest = Make();
  ASSERT_TRUE(pgbackrest.Check());
  ASSERT_EQ(runner_.calls.size(), 1u);
  const CommandOptions& call = runner_.calls[0];
  EXPECT_THAT(call.args,
              ElementsAre("/usr/bin/pgbackrest", "--config=/etc/kindling/pgbackrest.conf",
                          "--stanza=kindling", "check"));
  ASSERT_TRUE(call.run_as);
  EXPECT_EQ(call.run_as->uid, 101u);
  EXPECT_GT(call.timeout.count(), 0);
  // The caller's libpq variables never redirect it.
  EXPECT_THAT(call.drop_env_prefixes, testing::Contains("PG"));
}

TEST_F(PgBackRestTest, BackupTypesAndRestoreOptions) {
  PgBackRest pgbackrest = Make();
  ASSERT_TRUE(pgbackrest.Backup("diff"));
  EXPECT_THAT(runner_.calls.back().args, testing::Contains("--type=diff"));
  EXPECT_FALSE(pgbackrest.Backup("weekly"));

  RestoreRequest to_time;
  to_time.target_time = "2025-01-31 12:00:00.000+00";
  to_time.set = "20250131-110000F";
  ASSERT_TRUE(pgbackrest.Restore(to_time));
  EXPECT_THAT(runner_.calls.back().args,
              ElementsAre("/usr/bin/pgbackrest", "--config=/etc/kindling/pgbackrest.conf",
                          "--stanza=kindling", "--delta", "--type=time",
                          "--target=2025-01-31 12:00:00.000+00", "--target-action=promote",
                          "--set=20250131-110000F", "restore"));

  RestoreRequest copy;
  copy.pg_path = "/srv/drill";
  copy.restore_command = pgbackrest.SyncRestoreCommand("/srv/drill");
  ASSERT_TRUE(pgbackrest.Restore(copy));
  EXPECT_THAT(runner_.calls.back().args,
              ElementsAre("/usr/bin/pgbackrest", "--config=/etc/kindling/pgbackrest.conf",
                          "--stanza=kindling", "--delta", "--type=default", "--pg1-path=/srv/drill",
                          "--recovery-option=restore_command=/usr/bin/pgbackrest "
                          "--config=/etc/kindling/pgbackrest.conf --stanza=kindling "
                          "--pg1-path=/srv/drill --no-archive-async archive-get %f \"%p\"",
                          "restore"));
}

TEST_F(PgBackRestTest, FailuresCarryPgBackRestsMessage) {
  PgBackRest pgbackrest = Make();
  runner_.answers.push_back(CommandResult{
      .exit_status = 82,
      .output = "",
      .errors = "ERROR: [082]: WAL segment 000000010000000000000004 was not archived before the "
                "30000ms timeout\n",
  });
  auto checked = pgbackrest.Check();
  ASSERT_FALSE(checked);
  EXPECT_EQ(checked.error().kind(), ErrorKind::kIo);
  EXPECT_THAT(checked.error().message(), HasSubstr("pgbackrest check failed (exit 82)"));
  EXPECT_THAT(checked.error().message(), HasSubstr("was not archived before"));

  runner_.answers.push_back(CommandResult{.exit_status = 143, .timed_out = true});
  auto slow = pgbackrest.StanzaCreate();
  ASSERT_FALSE(slow);
  EXPECT_EQ(slow.error().kind(), ErrorKind::kTransient);
  EXPECT_THAT(slow.error().message(), HasSubstr("timed out"));

  runner_.answers.push_back(CommandResult{.exit_status = 127});
  auto missing = pgbackrest.Check();
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().kind(), ErrorKind::kNotFound);
  EXPECT_THAT(missing.error().message(), HasSubstr("apt-get install pgbackrest"));
}

TEST_F(PgBackRestTest, InfoReadsTheStatusCode) {
  PgBackRest pgbackrest = Make();
  runner_.answers.push_back(
      CommandResult{.exit_status = 0,
                    .output = R"([{"archive":[],"backup":[],"name":"kindling","repo":[],)"
                              R"("status":{"code":1,"message":"missing stanza path"}}])"});
  auto info = pgbackrest.Info();
  ASSERT_TRUE(info) << info.error().message();
  EXPECT_EQ(info->status_code, kStanzaMissing);
  EXPECT_THAT(runner_.calls.back().args, testing::Contains("--output=json"));
}

}  // namespace
}  // namespace kindling::pgbackup
