// `kindling backup forget` and `kindling backup delete` end to end: a dry run
// deletes nothing and reports what the retention rules keep and drop, the real
// run leaves exactly the kept manifests (which still restore bit-identically
// after a `store gc`), a forget without a rule or with a negative count is
// refused before anything is deleted, a manifest the store refuses to delete
// is reported after the others were deleted, and `backup delete` deletes
// exactly the backup it names.
//
// The backups are made within seconds, so the day, month and year rules
// cannot be tested with backups of distinct periods: they are tested where all
// the periods coincide (--keep-daily 5 keeps one backup of the one day), with
// the expectation computed from the backups' timestamps in case the run
// crosses midnight UTC.
#include <sched.h>
#include <sys/mount.h>

#include <set>

#include "cli_harness.h"

namespace kindling::clitest {
namespace {

constexpr std::uint64_t kChunk = 65536;
constexpr int kBackups = 6;

bool SameBytes(const fs::path& a, const fs::path& b) {
  return fs::file_size(a) == fs::file_size(b) && ReadWholeFile(a) == ReadWholeFile(b);
}

// The backup ids of a `backup list --json` result, in its order.
std::vector<std::string> ListedIds(const nlohmann::json& listed) {
  std::vector<std::string> ids;
  for (const auto& backup : listed["backups"]) ids.push_back(backup["backup_id"]);
  return ids;
}

// The backup ids of a `backup forget --json` list ("kept", "dropped", ...).
std::vector<std::string> EntryIds(const nlohmann::json& entries) {
  std::vector<std::string> ids;
  for (const auto& entry : entries) ids.push_back(entry["backup_id"]);
  return ids;
}

// A backup made by the test: its id, creation time and image.
struct Made {
  std::string id{};
  std::int64_t created_unix_ms = 0;
  fs::path image{};
};

// The UTC day of a Unix time in milliseconds.
std::int64_t UtcDay(std::int64_t unix_ms) { return unix_ms / 86'400'000; }

// What --keep-daily n keeps of `newest_first`: the newest backup of each of
// the n newest days that have one.
std::vector<std::string> KeptDaily(const std::vector<Made>& newest_first, int n) {
  std::vector<std::string> kept;
  std::optional<std::int64_t> last_day;
  for (const Made& made : newest_first) {
    if (n == 0) break;
    if (last_day && *last_day == UtcDay(made.created_unix_ms)) continue;
    last_day = UtcDay(made.created_unix_ms);
    kept.push_back(made.id);
    --n;
  }
  return kept;
}

std::vector<std::string> IdsOf(const std::vector<Made>& made) {
  std::vector<std::string> ids;
  for (const Made& m : made) ids.push_back(m.id);
  return ids;
}

// Runs the binary with `pinned` bind-mounted onto itself in a mount namespace
// of its own: unlink(2) of that file fails (EBUSY), as a store refusing one
// delete would. Exit code 125: this machine allows no mount namespace or bind
// mount (no CAP_SYS_ADMIN).
RunResult RunWithPinnedFile(const std::vector<std::string>& args, const fs::path& pinned,
                            const fs::path& out_dir) {
  std::vector<std::string> argv_storage = {KINDLING_BINARY};
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  const std::string pinned_path = pinned.string();
  const std::string out_path = (out_dir / "pinned.stdout").string();
  const std::string err_path = (out_dir / "pinned.stderr").string();

  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork");
  if (pid == 0) {
    // Only system calls from here to exec.
    if (::unshare(CLONE_NEWNS) != 0) ::_exit(125);
    if (::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) ::_exit(125);
    if (::mount(pinned_path.c_str(), pinned_path.c_str(), nullptr, MS_BIND, nullptr) != 0)
      ::_exit(125);
    const int in = ::open("/dev/null", O_RDONLY);
    const int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (in < 0 || out < 0 || err < 0) ::_exit(126);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    ::execve(argv[0], argv.data(), environ);
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  RunResult result;
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.term_signal = WTERMSIG(status);
  result.out = ReadWholeFile(out_path);
  result.err = ReadWholeFile(err_path);
  return result;
}

class BackupForgetCliTest : public CliTest {
 protected:
  void SetUp() override { Init(std::to_string(kChunk)); }

  // kBackups backups of `volume`, oldest first: a 1 MiB image whose data
  // differs from one backup to the next in one chunk (the rest is shared).
  std::vector<Made> MakeBackups(const std::string& volume, int count, std::uint64_t seed) {
    std::vector<Made> made;
    const fs::path base = Path(volume + ".base.img");
    MakeSparse(base, 16 * kChunk);
    WriteAt(base, kChunk, RandomBytes(8 * kChunk, seed));
    for (int i = 0; i < count; ++i) {
      const fs::path image = Path(volume + "." + std::to_string(i) + ".img");
      fs::copy_file(base, image, fs::copy_options::overwrite_existing);
      WriteAt(image, static_cast<std::uint64_t>(i) * kChunk, RandomBytes(kChunk, seed + 1 + i));
      const nlohmann::json created = Create(volume, image);
      if (!created.is_object()) return {};
      made.push_back({.id = created["backup_id"],
                      .created_unix_ms = created["created_unix_ms"],
                      .image = image});
    }
    return made;
  }

  RunResult Forget(const std::string& volume, const std::vector<std::string>& extra) {
    std::vector<std::string> args = {"--volume-id", volume};
    args.insert(args.end(), extra.begin(), extra.end());
    return Run({"backup", "forget"}, args);
  }

  // Restores `made` and expects the bytes of its image.
  void ExpectRestoresBitIdentical(const Made& made) {
    SCOPED_TRACE("restore of " + made.id);
    const fs::path restored = Path(made.id + ".restored");
    fs::remove(restored);
    ASSERT_TRUE(Restore(made.id, restored).is_object());
    EXPECT_TRUE(SameBytes(restored, made.image))
        << "the restored image differs from " << made.image;
    fs::remove(restored);
  }
};

TEST_F(BackupForgetCliTest, DryRunDeletesNothingThenForgetLeavesExactlyTheKeptBackups) {
  std::vector<Made> made = MakeBackups("vol-a", kBackups, 100);
  ASSERT_EQ(made.size(), static_cast<std::size_t>(kBackups));
  // Another volume's backup, which forget must leave alone.
  const std::vector<Made> other = MakeBackups("vol-b", 1, 900);
  ASSERT_EQ(other.size(), 1u);
  std::reverse(made.begin(), made.end());  // newest first, as forget and list order them
  const std::vector<std::string> all = IdsOf(made);
  ASSERT_EQ(ListedIds(List("vol-a")), all) << "backup ids are not in creation order";

  // Dry run of a rule whose periods coincide: every backup was made today
  // (unless the test crossed midnight UTC), so --keep-daily 5 keeps one.
  {
    const RunResult dry = Forget("vol-a", {"--keep-daily", "5", "--dry-run", "--json"});
    ASSERT_EQ(dry.exit_code, 0) << dry.Describe();
    const nlohmann::json report = dry.Json();
    ASSERT_TRUE(report.is_object()) << dry.Describe();
    EXPECT_EQ(report["volume_id"], "vol-a");
    EXPECT_EQ(report["dry_run"], true);
    const std::vector<std::string> kept = KeptDaily(made, 5);
    EXPECT_EQ(EntryIds(report["kept"]), kept) << dry.Describe();
    std::vector<std::string> dropped;
    for (const std::string& id : all) {
      if (std::find(kept.begin(), kept.end(), id) == kept.end()) dropped.push_back(id);
    }
    EXPECT_EQ(EntryIds(report["dropped"]), dropped) << dry.Describe();
    for (const auto& entry : report["kept"])
      EXPECT_EQ(entry["reasons"], nlohmann::json::array({"daily"})) << entry.dump();
    for (const auto& entry : report["dropped"])
      EXPECT_EQ(entry["reasons"], nlohmann::json::array()) << entry.dump();
    // created_at is the ISO 8601 UTC time the other commands print.
    const std::string created_at = report["kept"][0]["created_at"];
    EXPECT_EQ(created_at.size(), std::string("2024-05-01T12:00:00.123Z").size()) << created_at;
    EXPECT_EQ(created_at.back(), 'Z') << created_at;
    EXPECT_EQ(ListedIds(List("vol-a")), all) << "a dry run deleted manifests";
  }

  // Dry run, human output: every backup newest first, what would go, and
  // the summary.
  {
    const RunResult dry = Forget("vol-a", {"--keep-last", "2", "--dry-run"});
    ASSERT_EQ(dry.exit_code, 0) << dry.Describe();
    std::size_t previous = 0;
    for (std::size_t i = 0; i < all.size(); ++i) {
      const std::size_t at = dry.out.find(all[i]);
      ASSERT_NE(at, std::string::npos) << all[i] << "\n" << dry.Describe();
      EXPECT_GT(at, previous) << "not newest first\n" << dry.Describe();
      previous = at;
      const std::string line = dry.out.substr(at, dry.out.find('\n', at) - at);
      if (i < 2) {
        EXPECT_NE(line.find("keep"), std::string::npos) << line;
        EXPECT_NE(line.find("last"), std::string::npos) << line;
      } else {
        EXPECT_NE(line.find("would drop"), std::string::npos) << line;
      }
    }
    EXPECT_NE(dry.out.find("dry run: would keep 2, drop 4; nothing deleted"), std::string::npos)
        << dry.Describe();
    EXPECT_EQ(ListedIds(List("vol-a")), all) << "a dry run deleted manifests";
  }

  // The real run: --keep-last 3 and --keep-daily 1 keep the 3 newest.
  {
    const RunResult real = Forget("vol-a", {"--keep-last", "3", "--keep-daily", "1", "--json"});
    ASSERT_EQ(real.exit_code, 0) << real.Describe();
    const nlohmann::json report = real.Json();
    ASSERT_TRUE(report.is_object()) << real.Describe();
    EXPECT_EQ(report["dry_run"], false);
    const std::vector<std::string> kept(all.begin(), all.begin() + 3);
    const std::vector<std::string> dropped(all.begin() + 3, all.end());
    EXPECT_EQ(EntryIds(report["kept"]), kept) << real.Describe();
    EXPECT_EQ(EntryIds(report["dropped"]), dropped) << real.Describe();
    EXPECT_EQ(report["failed"], nlohmann::json::array()) << real.Describe();
    ASSERT_EQ(report["kept"].size(), 3u);
    EXPECT_EQ(report["kept"][0]["reasons"], nlohmann::json::array({"last", "daily"}));
    EXPECT_EQ(report["kept"][1]["reasons"], nlohmann::json::array({"last"}));
    EXPECT_EQ(report["kept"][2]["reasons"], nlohmann::json::array({"last"}));
    EXPECT_EQ(ListedIds(List("vol-a")), kept);
    EXPECT_EQ(ListedIds(List("vol-b")), IdsOf(other)) << "forget touched another volume";
  }
  made.resize(3);

  // Human output of a real run, with --keep-daily 5 over the 3 left.
  {
    const std::vector<std::string> kept = KeptDaily(made, 5);
    const RunResult real = Forget("vol-a", {"--keep-daily", "5"});
    ASSERT_EQ(real.exit_code, 0) << real.Describe();
    const std::string summary = "kept " + std::to_string(kept.size()) + ", dropped " +
                                std::to_string(made.size() - kept.size()) +
                                "; run `kindling store gc` to free their chunks";
    EXPECT_NE(real.out.find(summary), std::string::npos) << summary << "\n" << real.Describe();
    EXPECT_EQ(real.out.find("would drop"), std::string::npos) << real.Describe();
    EXPECT_EQ(ListedIds(List("vol-a")), kept);
    std::erase_if(made, [&](const Made& m) {
      return std::find(kept.begin(), kept.end(), m.id) == kept.end();
    });
  }

  // The chunks of the dropped backups go; the kept ones restore.
  const RunResult gc = Run({"store", "gc"}, {"--json", "--quiet"});
  ASSERT_EQ(gc.exit_code, 0) << gc.Describe();
  EXPECT_GT(gc.Json()["chunks_deleted"].get<std::uint64_t>(), 0u) << gc.Describe();
  for (const Made& kept : made) ExpectRestoresBitIdentical(kept);
  ExpectRestoresBitIdentical(other.front());
}

TEST_F(BackupForgetCliTest, RefusesWithoutAKeepRuleOrWithANegativeCountAndDeletesNothing) {
  const std::vector<Made> made = MakeBackups("vol-a", 3, 200);
  ASSERT_EQ(made.size(), 3u);
  const std::vector<std::string> all = ListedIds(List("vol-a"));
  ASSERT_EQ(all.size(), 3u);

  struct Case {
    std::string name;
    std::vector<std::string> args;
    std::string message;  // expected in the error line
  };
  const std::vector<Case> cases = {
      {"no rule", {"--volume-id", "vol-a"}, "give at least one --keep-* rule"},
      {"no rule, dry run", {"--volume-id", "vol-a", "--dry-run"}, "give at least one --keep-*"},
      {"only zero counts",
       {"--volume-id", "vol-a", "--keep-last", "0", "--keep-daily", "0"},
       "give at least one --keep-* rule"},
      {"negative --keep-last", {"--volume-id", "vol-a", "--keep-last", "-1"}, "--keep-last"},
      {"negative --keep-yearly beside a valid rule",
       {"--volume-id", "vol-a", "--keep-last", "1", "--keep-yearly=-2"},
       "--keep-yearly must be 0 or more, got -2"},
      {"missing --volume-id", {"--keep-last", "1"}, "--volume-id"},
      {"invalid --volume-id", {"--volume-id", "../vol-a", "--keep-last", "1"}, "not a valid id"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    std::vector<std::string> args = c.args;
    args.push_back("--json");
    const RunResult result = Run({"backup", "forget"}, args);
    EXPECT_EQ(result.exit_code, 2) << result.Describe();
    EXPECT_NE(result.err.find("kindling: error: "), std::string::npos) << result.Describe();
    EXPECT_NE(result.err.find(c.message), std::string::npos) << result.Describe();
    EXPECT_TRUE(result.Json().is_discarded()) << "no result document on failure\n"
                                              << result.Describe();
    EXPECT_EQ(ListedIds(List("vol-a")), all) << "manifests deleted despite the refusal";
  }

  // A volume without backups: nothing to do.
  const RunResult empty = Forget("vol-none", {"--keep-last", "1", "--json"});
  ASSERT_EQ(empty.exit_code, 0) << empty.Describe();
  EXPECT_EQ(empty.Json()["kept"], nlohmann::json::array()) << empty.Describe();
  EXPECT_EQ(empty.Json()["dropped"], nlohmann::json::array()) << empty.Describe();
  EXPECT_EQ(ListedIds(List("vol-a")), all);
}

TEST_F(BackupForgetCliTest, AManifestThatCannotBeDeletedIsReportedAfterTheOthersAreDeleted) {
  const std::vector<Made> made = MakeBackups("vol-a", 5, 300);
  ASSERT_EQ(made.size(), 5u);
  const std::vector<std::string> all = ListedIds(List("vol-a"));  // newest first
  ASSERT_EQ(all.size(), 5u);
  // --keep-last 1 drops all[1..4]; all[2]'s manifest cannot be unlinked.
  const std::string stuck = all[2];
  std::vector<fs::path> manifests;
  for (const fs::path& path : StoreObjects(store_dir_, "project-volumes")) {
    if (path.filename().string().starts_with(stuck)) manifests.push_back(path);
  }
  ASSERT_EQ(manifests.size(), 1u) << "the manifest of " << stuck << " under " << store_dir_;

  std::vector<std::string> args = {"backup", "forget"};
  args.insert(args.end(), store_args_.begin(), store_args_.end());
  args.insert(args.end(), {"--volume-id", "vol-a", "--keep-last", "1", "--json"});
  const RunResult result = RunWithPinnedFile(args, manifests.front(), dir_.path());
  // The fault needs a private mount namespace (root, as CI runs): without
  // one this test fails rather than skip.
  ASSERT_NE(result.exit_code, 125) << "no mount namespace or bind mount allowed here";
  EXPECT_EQ(result.exit_code, 1) << result.Describe();
  const nlohmann::json report = result.Json();
  ASSERT_TRUE(report.is_object()) << result.Describe();
  EXPECT_EQ(EntryIds(report["kept"]), std::vector<std::string>{all[0]});
  EXPECT_EQ(EntryIds(report["dropped"]), (std::vector<std::string>{all[1], all[3], all[4]}))
      << result.Describe();
  ASSERT_EQ(report["failed"].size(), 1u) << result.Describe();
  EXPECT_EQ(report["failed"][0]["backup_id"], stuck);
  EXPECT_FALSE(report["failed"][0]["error"].get<std::string>().empty()) << result.Describe();
  // Each failure on its own line, then the summary as the last line.
  EXPECT_NE(result.err.find("kindling: error: delete the manifest of backup " + stuck),
            std::string::npos)
      << result.Describe();
  EXPECT_NE(result.err.find("could not delete 1 of the manifests"), std::string::npos)
      << result.Describe();
  // The others are gone; the stuck one is still listed.
  EXPECT_EQ(ListedIds(List("vol-a")), (std::vector<std::string>{all[0], stuck}));
}

TEST_F(BackupForgetCliTest, HelpNamesEveryFlag) {
  const RunResult help = RunKindling({"backup", "forget", "--help"});
  ASSERT_EQ(help.exit_code, 0) << help.Describe();
  for (const std::string flag :
       {"Usage", "--store", "--key-file", "--volume-id", "--keep-last", "--keep-hourly",
        "--keep-daily", "--keep-weekly", "--keep-monthly", "--keep-yearly", "--dry-run", "--json",
        "kindling store gc", "manifests", "Exit codes"}) {
    EXPECT_NE(help.out.find(flag), std::string::npos) << flag << "\n" << help.Describe();
  }
  const RunResult backup_help = RunKindling({"backup", "--help"});
  EXPECT_NE(backup_help.out.find("forget"), std::string::npos) << backup_help.Describe();
}

class BackupDeleteCliTest : public BackupForgetCliTest {};

TEST_F(BackupDeleteCliTest, DeletesExactlyTheNamedBackup) {
  const std::vector<Made> made = MakeBackups("vol-a", 3, 400);
  ASSERT_EQ(made.size(), 3u);
  const std::vector<Made> other = MakeBackups("vol-b", 1, 500);
  ASSERT_EQ(other.size(), 1u);

  // By id alone (any volume), JSON.
  const RunResult deleted = Run({"backup", "delete"}, {"--backup", made[1].id, "--json"});
  ASSERT_EQ(deleted.exit_code, 0) << deleted.Describe();
  const nlohmann::json report = deleted.Json();
  EXPECT_EQ(report["backup_id"], made[1].id) << deleted.Describe();
  EXPECT_EQ(report["volume_id"], "vol-a") << deleted.Describe();
  EXPECT_EQ(report["deleted"], true) << deleted.Describe();
  EXPECT_EQ(ListedIds(List("vol-a")), (std::vector<std::string>{made[2].id, made[0].id}));
  EXPECT_EQ(ListedIds(List("vol-b")), IdsOf(other));

  // Again: it is gone.
  const RunResult again = Run({"backup", "delete"}, {"--backup", made[1].id, "--json"});
  EXPECT_EQ(again.exit_code, 1) << again.Describe();
  EXPECT_NE(again.err.find("kindling: error: no backup " + made[1].id + " in file://" +
                           store_dir_.string()),
            std::string::npos)
      << again.Describe();
  EXPECT_TRUE(again.Json().is_discarded()) << again.Describe();

  // With --volume-id, human output.
  const RunResult human =
      Run({"backup", "delete"}, {"--backup", other[0].id, "--volume-id", "vol-b"});
  ASSERT_EQ(human.exit_code, 0) << human.Describe();
  EXPECT_NE(human.out.find("deleted backup " + other[0].id +
                           " of volume vol-b; run `kindling store gc` to free its chunks"),
            std::string::npos)
      << human.Describe();
  EXPECT_EQ(ListedIds(List("vol-b")), std::vector<std::string>{});
  const RunResult listed = Run({"backup", "list"});
  ASSERT_EQ(listed.exit_code, 0) << listed.Describe();
  EXPECT_EQ(listed.out.find(made[1].id), std::string::npos) << listed.Describe();
  EXPECT_EQ(listed.out.find(other[0].id), std::string::npos) << listed.Describe();
  EXPECT_NE(listed.out.find(made[0].id), std::string::npos) << listed.Describe();

  // The survivors still restore.
  ExpectRestoresBitIdentical(made[0]);
  ExpectRestoresBitIdentical(made[2]);
}

TEST_F(BackupDeleteCliTest, UnknownOrInvalidIdFailsAndDeletesNothing) {
  const std::vector<Made> made = MakeBackups("vol-a", 2, 600);
  ASSERT_EQ(made.size(), 2u);
  const std::vector<std::string> all = ListedIds(List("vol-a"));

  struct Case {
    std::string name;
    std::vector<std::string> args;
    int exit_code;
    std::string message;
  };
  const std::string store = "file://" + store_dir_.string();
  const std::vector<Case> cases = {
      {"unknown id", {"--backup", "no-such-backup"}, 1, "no backup no-such-backup in " + store},
      {"known id, other volume",
       {"--backup", made[0].id, "--volume-id", "vol-b"},
       1,
       "no backup " + made[0].id + " of volume vol-b in " + store},
      {"invalid id", {"--backup", "../x"}, 2, "not a valid id"},
      {"missing --backup", {}, 2, "--backup"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    std::vector<std::string> args = c.args;
    args.push_back("--json");
    const RunResult result = Run({"backup", "delete"}, args);
    EXPECT_EQ(result.exit_code, c.exit_code) << result.Describe();
    EXPECT_NE(result.err.find("kindling: error: "), std::string::npos) << result.Describe();
    EXPECT_NE(result.err.find(c.message), std::string::npos) << result.Describe();
    EXPECT_TRUE(result.Json().is_discarded()) << result.Describe();
    EXPECT_EQ(ListedIds(List("vol-a")), all) << "manifests deleted despite the error";
  }
}

TEST_F(BackupDeleteCliTest, HelpNamesEveryFlag) {
  const RunResult help = RunKindling({"backup", "delete", "--help"});
  ASSERT_EQ(help.exit_code, 0) << help.Describe();
  for (const std::string flag : {"Usage", "--store", "--key-file", "--backup", "--volume-id",
                                 "--json", "kindling store gc", "manifest", "Exit codes"}) {
    EXPECT_NE(help.out.find(flag), std::string::npos) << flag << "\n" << help.Describe();
  }
  const RunResult backup_help = RunKindling({"backup", "--help"});
  EXPECT_NE(backup_help.out.find("delete"), std::string::npos) << backup_help.Describe();
}

}  // namespace
}  // namespace kindling::clitest
