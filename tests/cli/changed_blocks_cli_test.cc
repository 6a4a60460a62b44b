// `kindling backup create --snapshot ... --changed-blocks ...` through the
// binary, on an XFS (reflink) loop filesystem (testutil/loop_fs.h): the JSON
// report of a full and a changed-blocks backup, a backup killed between its
// clone and its manifest, and the flags' validation.
#include <gmock/gmock.h>

#include <cstdio>

#include "cli_harness.h"
#include "testutil/loop_fs.h"
#include "testutil/require.h"

namespace kindling::clitest {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr std::uint64_t kChunk = 65536;

class ChangedBlocksCliTest : public CliTest {
 protected:
  static void SetUpTestSuite() {
    lfs_ = testutil::LoopFilesystem::Create(testutil::LoopFsKind::kXfs, &why_);
  }
  static void TearDownTestSuite() { lfs_.reset(); }

  void SetUp() override {
    KINDLING_REQUIRE(lfs_ != nullptr, why_);
    Init(std::to_string(kChunk));
    work_ = lfs_->NewDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    image_ = work_ / "disk.img";
    folder_ = work_ / ".disk.img.snapshots";
  }
  void TearDown() override {
    std::error_code ec;
    if (!work_.empty()) fs::remove_all(work_, ec);
  }

  // backup create --json with snapshot and changed blocks on, checking mode.
  nlohmann::json CreateChecked(const std::string& id) {
    return Create(
        "vol", image_,
        {"--backup-id", id, "--snapshot", "on", "--changed-blocks", "on", "--reread-skipped"});
  }

  void ExpectRestores(const std::string& id, const std::string& sha) {
    const fs::path out = Path(id + ".restored");
    const auto restored = Restore(id, out);
    EXPECT_EQ(FileSha256(out), sha) << id;
    fs::remove(out);
  }

  std::vector<std::string> Folder() const {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(folder_))
      names.push_back(entry.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

  static inline std::unique_ptr<testutil::LoopFilesystem> lfs_;
  static inline std::string why_;
  fs::path work_;
  fs::path image_;
  fs::path folder_;
};

TEST_F(ChangedBlocksCliTest, SecondBackupReadsOnlyTheChangedChunks) {
  // 40 chunks and 100 bytes: 16 of data, 8 of hole, 16 and the tail of data.
  const std::uint64_t size = 40 * kChunk + 100;
  const std::uint64_t data = 32 * kChunk + 100;
  MakeSparse(image_, size);
  WriteAt(image_, 0, RandomBytes(16 * kChunk, 1));
  WriteAt(image_, 24 * kChunk, RandomBytes(16 * kChunk + 100, 2));
  const std::string sha = FileSha256(image_);

  const auto first = CreateChecked("first");
  EXPECT_EQ(first["read_path"], "full");
  EXPECT_EQ(first["snapshot"], (folder_ / "first.snap").string());
  ASSERT_TRUE(first["fallback"].is_string()) << first.dump();
  EXPECT_THAT(first["fallback"].get<std::string>(), HasSubstr("no previous snapshot"));
  EXPECT_EQ(first["bytes_read"], data);
  EXPECT_EQ(first["bytes_skipped"], 0);
  EXPECT_EQ(first["chunks_skipped"], 0);
  EXPECT_EQ(first["bytes_reread"], 0);
  EXPECT_TRUE(first["snapshot_ms"].is_number());
  EXPECT_TRUE(first["diff_ms"].is_number());
  EXPECT_EQ(first["image_sha256"], Digest(image_));

  const auto second = CreateChecked("second");
  EXPECT_EQ(second["read_path"], "changed-blocks");
  EXPECT_TRUE(second["fallback"].is_null()) << second.dump();
  EXPECT_EQ(second["snapshot"], (folder_ / "second.snap").string());
  EXPECT_EQ(second["bytes_read"], 0);
  EXPECT_EQ(second["bytes_skipped"], data);
  EXPECT_EQ(second["chunks_skipped"], 33);
  EXPECT_EQ(second["bytes_reread"], size);
  EXPECT_EQ(second["chunks_uploaded"], 0);
  EXPECT_EQ(second["image_sha256"], first["image_sha256"]);
  EXPECT_EQ(Folder(), (std::vector<std::string>{"second.digests", "second.snap"}));

  // One 4 KiB write: its chunk is read, the rest skipped.
  WriteAt(image_, 5 * kChunk + 1000, RandomBytes(4096, 3));
  const std::string changed_sha = FileSha256(image_);
  const auto third = CreateChecked("third");
  EXPECT_EQ(third["read_path"], "changed-blocks");
  EXPECT_EQ(third["bytes_read"], kChunk);
  EXPECT_EQ(third["bytes_skipped"], data - kChunk);
  EXPECT_EQ(third["chunks_skipped"], 32);
  EXPECT_EQ(third["chunks_uploaded"], 1);
  EXPECT_EQ(third["image_sha256"], Digest(image_));
  EXPECT_EQ(Folder(), (std::vector<std::string>{"third.digests", "third.snap"}));

  ExpectRestores("first", sha);
  ExpectRestores("second", sha);
  ExpectRestores("third", changed_sha);

  // Human output says how it read.
  const auto human = Run({"backup", "create"}, {"--volume-id", "vol", "--image", image_.string(),
                                                "--backup-id", "fourth", "--quiet"});
  ASSERT_EQ(human.exit_code, 0) << human.Describe();
  EXPECT_THAT(human.out, HasSubstr("changed-blocks, from snapshot"));
}

TEST_F(ChangedBlocksCliTest, BackupKilledBetweenCloneAndManifestLeavesNothingBehind) {
  // Big enough that the killed backup, which reads every chunk again
  // (--reread-skipped), is still reading when it is stopped.
  const std::uint64_t size = 32ull << 20;
  MakeSparse(image_, size);
  WriteAt(image_, 0, RandomBytes(size, 11));
  CreateChecked("first");
  WriteAt(image_, 3 * kChunk + 1, RandomBytes(4096, 12));
  const std::string sha = FileSha256(image_);

  // Stopped (SIGSTOP) as soon as its clone exists, then killed: a crash
  // between the clone and the manifest. An attempt that finished first
  // (committed) becomes the previous snapshot.
  std::string previous = "first";
  bool crashed = false;
  for (int attempt = 1; attempt <= 3 && !crashed; ++attempt) {
    const std::string id = "killed-" + std::to_string(attempt);
    const fs::path pending = folder_ / (id + ".pending");
    auto child =
        Start({"backup", "create"},
              {"--volume-id", "vol", "--image", image_.string(), "--backup-id", id, "--snapshot",
               "on", "--changed-blocks", "on", "--reread-skipped", "--threads", "1", "--quiet"});
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!fs::exists(pending) && child->Running() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    child->Signal(SIGSTOP);
    const bool caught =
        fs::exists(pending) &&
        !fs::exists(store_dir_ / ("project-volumes/vol/backups/" + id + ".manifest"));
    child->Signal(SIGKILL);
    const RunResult result = child->Wait();
    crashed = caught && result.term_signal == SIGKILL;
    if (!crashed) {
      std::printf("[          ] attempt %d: the backup was not caught mid-way\n", attempt);
      if (result.exit_code == 0) previous = id;
    }
  }
  ASSERT_TRUE(crashed) << "no backup was killed between its clone and its manifest";
  const auto leftovers = Folder();
  EXPECT_EQ(leftovers.size(), 3u);
  EXPECT_TRUE(std::find(leftovers.begin(), leftovers.end(), previous + ".snap") != leftovers.end());
  EXPECT_TRUE(std::find(leftovers.begin(), leftovers.end(), previous + ".digests") !=
              leftovers.end());

  // The next backup removes the clone and diffs against the committed
  // snapshot: only the chunk written since "first" differs.
  const auto after = CreateChecked("after");
  EXPECT_EQ(after["read_path"], "changed-blocks") << after.dump();
  EXPECT_EQ(after["bytes_read"], previous == "first" ? kChunk : 0);
  EXPECT_EQ(after["image_sha256"], Digest(image_));
  EXPECT_EQ(Folder(), (std::vector<std::string>{"after.digests", "after.snap"}));
  ExpectRestores("after", sha);
}

// The flags alone: no loop filesystem needed.
class ChangedBlocksFlagsCliTest : public CliTest {
 protected:
  void SetUp() override { Init(std::to_string(kChunk)); }
};

TEST_F(ChangedBlocksFlagsCliTest, ChangedBlocksOnWithoutSnapshotIsRefused) {
  const fs::path image = Path("disk.img");
  MakeSparse(image, 2 * kChunk);
  WriteAt(image, 0, RandomBytes(kChunk, 1));
  const auto refused =
      Run({"backup", "create"}, {"--volume-id", "vol", "--image", image.string(), "--snapshot",
                                 "off", "--changed-blocks", "on", "--json"});
  EXPECT_NE(refused.exit_code, 0) << refused.Describe();
  EXPECT_THAT(refused.err, HasSubstr("--changed-blocks on needs a snapshot")) << refused.Describe();
  const auto bogus = Run({"backup", "create"}, {"--volume-id", "vol", "--image", image.string(),
                                                "--snapshot", "sometimes", "--json"});
  EXPECT_NE(bogus.exit_code, 0) << bogus.Describe();
  EXPECT_THAT(bogus.err, HasSubstr("--snapshot")) << bogus.Describe();
  EXPECT_EQ(List()["backups"].size(), 0u);
  EXPECT_FALSE(fs::exists(Path(".disk.img.snapshots")));

  // Off and off: the live image, read in full, no report of a snapshot.
  const auto plain = Create("vol", image, {"--snapshot", "off", "--changed-blocks", "off"});
  EXPECT_EQ(plain["read_path"], "full");
  EXPECT_TRUE(plain["snapshot"].is_null());
  EXPECT_TRUE(plain["fallback"].is_null());
  EXPECT_EQ(plain["bytes_read"], kChunk);
  EXPECT_FALSE(plain.contains("bytes_reread"));
}

}  // namespace
}  // namespace kindling::clitest
