// Crash and cancellation: SIGKILL at random points of backups and restores
// must never leave a manifest that does not restore bit-identically, nor a
// partial destination; SIGINT exits 130 with nothing committed.
//
// Tests named *Slow are left out of the sanitizer run (scripts/test.sh).
#include <map>

#include "cli_harness.h"

namespace kindling::clitest {
namespace {

constexpr std::uint64_t kChunk = 65536;
constexpr std::uint64_t kImageSize = 64ull << 20;

using Clock = std::chrono::steady_clock;

std::chrono::milliseconds Elapsed(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
}

class CliCrashTest : public CliTest {
 protected:
  void SetUp() override {
    Init(std::to_string(kChunk));
    image_ = Path("volume.img");
    // Mostly incompressible data with a few holes: every chunk costs real work.
    MakeSparse(image_, kImageSize);
    for (std::uint64_t offset = 0; offset < kImageSize; offset += 8ull << 20) {
      WriteAt(image_, offset, RandomBytes(7ull << 20, offset + 1));
    }
  }

  // Overwrites `runs` random 64 KiB runs of the image.
  void Mutate(std::mt19937_64& rng, int runs) {
    for (int i = 0; i < runs; ++i) {
      WriteAt(image_, rng() % (kImageSize - kChunk), RandomBytes(kChunk, rng()));
    }
  }

  // Restores every backup the store lists and checks it against the image
  // content recorded for its id when the backup started.
  void ExpectEveryBackupRestores(const std::map<std::string, std::string>& sha_by_id,
                                 std::size_t* restored_count) {
    const auto listed = List();
    ASSERT_TRUE(listed.contains("backups"));
    *restored_count = 0;
    for (const auto& backup : listed["backups"]) {
      const std::string id = backup["backup_id"];
      SCOPED_TRACE("backup " + id);
      ASSERT_TRUE(sha_by_id.count(id)) << "unknown backup in the store";
      const fs::path out = Path("restored-" + id + ".img");
      const auto restored = Restore(id, out);
      EXPECT_EQ(FileSha256(out), sha_by_id.at(id));
      // The copy is the recorded content, so its digest is the backup's.
      EXPECT_EQ(restored["image_sha256"], Digest(out));
      EXPECT_EQ(backup["image_sha256"], restored["image_sha256"]);
      fs::remove(out);
      ++*restored_count;
    }
  }

  fs::path image_;
};

TEST_F(CliCrashTest, SigkillDuringBackupNeverCorruptsSlow) {
  std::mt19937_64 rng(TestSeed(20240501));
  std::map<std::string, std::string> sha_by_id;

  // Calibrate: a full backup and an incremental one.
  auto start = Clock::now();
  sha_by_id["full"] = FileSha256(image_);
  Create("vol", image_, {"--backup-id", "full"});
  const auto full_time = Elapsed(start);
  Mutate(rng, 8);
  sha_by_id["incremental"] = FileSha256(image_);
  start = Clock::now();
  Create("vol", image_, {"--backup-id", "incremental"});
  const auto incremental_time = Elapsed(start);

  int killed = 0;
  int completed = 0;
  std::vector<std::string> committed;
  for (int i = 0; i < 20; ++i) {
    // Every fourth round rewrites a quarter of the image so the kill lands in
    // heavy uploading; the others change a little, like a live volume.
    const bool heavy = i % 4 == 0;
    if (heavy) {
      const std::uint64_t offset = (rng() % 4) * (kImageSize / 4);
      WriteAt(image_, offset, RandomBytes(kImageSize / 4, rng()));
    } else {
      Mutate(rng, 16);
    }
    const std::string id = "kill-" + std::to_string(i);
    sha_by_id[id] = FileSha256(image_);
    const auto budget = heavy ? full_time : incremental_time;
    const auto delay = std::chrono::milliseconds(
        rng() % static_cast<std::uint64_t>(std::max<std::int64_t>(1, budget.count() * 6 / 5)));
    auto child = Start({"backup", "create"}, {"--volume-id", "vol", "--image", image_.string(),
                                              "--backup-id", id, "--quiet"});
    std::this_thread::sleep_for(delay);
    child->Signal(SIGKILL);
    const auto result = child->Wait();
    if (result.term_signal == SIGKILL) {
      ++killed;
    } else {
      ASSERT_EQ(result.exit_code, 0) << result.Describe();
      ++completed;
      committed.push_back(id);
    }
  }
  std::printf("[          ] backups killed: %d, finished before the kill: %d\n", killed, completed);
  EXPECT_GE(killed, 5) << "too few kills landed mid-backup; the image is too small";

  std::size_t restored = 0;
  ExpectEveryBackupRestores(sha_by_id, &restored);
  EXPECT_GE(restored, 2 + committed.size());
  const auto listed = List();
  for (const auto& id : committed) {
    EXPECT_NE(listed.dump().find("\"" + id + "\""), std::string::npos) << id << " was committed";
  }

  // The store still takes backups, and they restore.
  Mutate(rng, 4);
  const std::string final_sha = FileSha256(image_);
  const auto last = Create("vol", image_, {"--backup-id", "after-crashes"});
  EXPECT_EQ(last["image_sha256"], Digest(image_));
  Restore("after-crashes", Path("final.img"));
  EXPECT_EQ(FileSha256(Path("final.img")), final_sha);
  EXPECT_EQ(Verify("after-crashes")["ok"], true);
}

TEST_F(CliCrashTest, SigkillDuringRestoreLeavesDestinationUntouchedSlow) {
  std::mt19937_64 rng(TestSeed(7));
  const std::string sha = FileSha256(image_);
  Create("vol", image_, {"--backup-id", "b"});
  const fs::path dest = Path("dest.img");
  auto start = Clock::now();
  Restore("b", dest);
  const auto restore_time = Elapsed(start);
  fs::remove(dest);

  int killed = 0;
  for (int i = 0; i < 10; ++i) {
    auto child = Start({"backup", "restore"}, {"--backup", "b", "--to", dest.string(), "--quiet"});
    std::this_thread::sleep_for(std::chrono::milliseconds(
        rng() % static_cast<std::uint64_t>(std::max<std::int64_t>(1, restore_time.count()))));
    child->Signal(SIGKILL);
    const auto result = child->Wait();
    if (result.term_signal == SIGKILL) {
      ++killed;
      // Killed before the final rename: nothing; after it: the whole image.
      if (fs::exists(dest)) {
        EXPECT_EQ(FileSha256(dest), sha) << "a killed restore left a partial destination";
        fs::remove(dest);
      }
    } else {
      ASSERT_EQ(result.exit_code, 0) << result.Describe();
      EXPECT_EQ(FileSha256(dest), sha);
      fs::remove(dest);
    }
  }
  // With --force over an existing file: the old content survives a kill.
  const fs::path existing = Path("existing.img");
  WriteWhole(existing, "old content");
  const std::string old_sha = FileSha256(existing);
  for (int i = 0; i < 5; ++i) {
    WriteWhole(existing, "old content");
    auto child = Start({"backup", "restore"},
                       {"--backup", "b", "--to", existing.string(), "--force", "--quiet"});
    std::this_thread::sleep_for(std::chrono::milliseconds(
        rng() % static_cast<std::uint64_t>(std::max<std::int64_t>(1, restore_time.count()))));
    child->Signal(SIGKILL);
    const auto result = child->Wait();
    if (result.term_signal == SIGKILL) {
      ++killed;
      // The old content, or (killed after the final rename) the whole image.
      const std::string now = FileSha256(existing);
      EXPECT_TRUE(now == old_sha || now == sha) << "a killed restore left a mix";
    } else {
      EXPECT_EQ(FileSha256(existing), sha);
    }
  }
  std::printf("[          ] restores killed: %d of 15\n", killed);
  EXPECT_GE(killed, 3);

  // A later restore succeeds and clears what the killed ones left.
  Restore("b", dest);
  EXPECT_EQ(FileSha256(dest), sha);
  Restore("b", existing, {"--force"});
  EXPECT_EQ(FileSha256(existing), sha);
  EXPECT_TRUE(TempFilesUnder(dir_.path()).empty());
}

// Signals `child`, once `under_way()` says it is working, with `signal`
// while it is stopped (SIGSTOP, then the signal, then SIGCONT), so that it
// sees the signal with work left. Returns how it ended.
template <typename UnderWay>
RunResult InterruptUnderWay(Child& child, UnderWay under_way, int signal) {
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (!under_way() && child.Running() && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  child.Signal(SIGSTOP);
  child.Signal(signal);
  child.Signal(SIGCONT);
  return child.Wait();
}

// A cancellation test must see a cancellation: when the command finished
// before the signal arrived (it had no work left), it runs again, and three
// runs that all finish fail the test instead of passing it unchecked.
constexpr int kInterruptAttempts = 3;

TEST_F(CliCrashTest, SigintCancelsBackupWithExit130) {
  RunResult result;
  for (int attempt = 1; attempt <= kInterruptAttempts; ++attempt) {
    const std::string id = "interrupted-" + std::to_string(attempt);
    auto child = Start({"backup", "create"}, {"--volume-id", "vol", "--image", image_.string(),
                                              "--backup-id", id, "--quiet", "--threads", "1"});
    // Under way: the store has a first chunk.
    result = InterruptUnderWay(
        *child, [&] { return !StoreObjects(store_dir_, "chunks").empty(); }, SIGINT);
    if (result.exit_code != 0) break;
    std::printf("[          ] attempt %d: the backup finished before SIGINT\n", attempt);
  }
  ASSERT_NE(result.exit_code, 0) << "no backup of " << kInterruptAttempts
                                 << " was interrupted: SIGINT does not cancel a backup";
  EXPECT_EQ(result.exit_code, 130) << result.Describe();
  EXPECT_NE(result.err.find("cancel"), std::string::npos) << result.Describe();
  // Nothing committed by the interrupted run (earlier runs that finished
  // committed their own ids).
  const auto listed = List()["backups"];
  for (const auto& backup : listed) {
    EXPECT_EQ(backup["image_sha256"], Digest(image_));
  }
  const std::size_t finished = listed.size();
  const std::string interrupted_id = "interrupted-" + std::to_string(finished + 1);
  EXPECT_FALSE(
      fs::exists(store_dir_ / ("project-volumes/vol/backups/" + interrupted_id + ".manifest")));

  // The same backup id can be used again.
  const auto again = Create("vol", image_, {"--backup-id", interrupted_id});
  EXPECT_EQ(again["image_sha256"], Digest(image_));
}

TEST_F(CliCrashTest, SigtermCancelsRestoreWithExit130) {
  Create("vol", image_, {"--backup-id", "b"});
  const fs::path dest = Path("dest.img");
  RunResult result;
  for (int attempt = 1; attempt <= kInterruptAttempts; ++attempt) {
    fs::remove(dest);
    auto child = Start({"backup", "restore"}, {"--backup", "b", "--to", dest.string(), "--progress",
                                               "json", "--threads", "1"});
    // Under way: the first progress line.
    result = InterruptUnderWay(
        *child, [&] { return child->StderrSoFar().find("\"progress\"") != std::string::npos; },
        SIGTERM);
    if (result.exit_code != 0) break;
    std::printf("[          ] attempt %d: the restore finished before SIGTERM\n", attempt);
  }
  ASSERT_NE(result.exit_code, 0) << "no restore of " << kInterruptAttempts
                                 << " was interrupted: SIGTERM does not cancel a restore";
  EXPECT_EQ(result.exit_code, 130) << result.Describe();
  EXPECT_FALSE(fs::exists(dest));
  EXPECT_TRUE(TempFilesUnder(dir_.path()).empty());
}

}  // namespace
}  // namespace kindling::clitest
