// `kindling store gc` end to end: a dry run deletes nothing, a collection
// deletes exactly the chunks no remaining backup references (the kept ones
// restore bit-identically), bad input fails before anything is deleted, and a
// SIGKILLed collection leaves its lock behind for the next one to take over
// and finish.
//
// The CLI has no `backup delete`: the tests delete a backup's manifest through
// the engine (Repository::DeleteBackup), as the control plane does.
//
// Tests named *Slow are left out of the sanitizer run (scripts/test.sh).
#include <map>

#include "cli/output.h"
#include "cli_harness.h"
#include "crypto/key_file.h"
#include "engine/repository.h"
#include "storage/store_url.h"

namespace kindling::clitest {
namespace {

using Clock = std::chrono::steady_clock;

// Relative path under the store directory -> file size.
using FileSizes = std::map<std::string, std::uint64_t>;

std::uint64_t TotalBytes(const FileSizes& files) {
  std::uint64_t total = 0;
  for (const auto& [path, size] : files) total += size;
  return total;
}

// The entries of `all` that are not in `kept`.
FileSizes Minus(const FileSizes& all, const FileSizes& kept) {
  FileSizes rest;
  for (const auto& [path, size] : all) {
    if (!kept.contains(path)) rest.emplace(path, size);
  }
  return rest;
}

// For assertion messages: how `actual` differs from `expected`.
std::string Difference(const FileSizes& actual, const FileSizes& expected) {
  const FileSizes extra = Minus(actual, expected);
  const FileSizes missing = Minus(expected, actual);
  std::string text = std::to_string(actual.size()) + " chunk files, expected " +
                     std::to_string(expected.size()) + ": " + std::to_string(extra.size()) +
                     " unexpected, " + std::to_string(missing.size()) + " missing";
  if (!extra.empty()) text += " (e.g. unexpected " + extra.begin()->first + ")";
  if (!missing.empty()) text += " (e.g. missing " + missing.begin()->first + ")";
  return text;
}

bool SameBytes(const fs::path& a, const fs::path& b) {
  return fs::file_size(a) == fs::file_size(b) && ReadWholeFile(a) == ReadWholeFile(b);
}

class StoreGcCliTest : public CliTest {
 protected:
  // The chunk objects of the store: <store>/chunks/xx/<64 hex>.
  FileSizes ChunkFiles() const {
    FileSizes files;
    for (const fs::path& path : StoreObjects(store_dir_, "chunks")) {
      files.emplace(fs::relative(path, store_dir_).generic_string(), fs::file_size(path));
    }
    return files;
  }

  // The chunk files are exactly `expected` (paths and sizes).
  void ExpectChunkFiles(const FileSizes& expected, const std::string& what) const {
    const FileSizes now = ChunkFiles();
    EXPECT_TRUE(now == expected) << what << ": " << Difference(now, expected);
  }

  fs::path LockFile() const { return store_dir_ / "kindling-store/gc/lock"; }
  fs::path SweepFile() const { return store_dir_ / "kindling-store/gc/sweep"; }

  // Deletes a backup's manifest (its chunks stay: that is gc's job).
  void DeleteBackup(const std::string& volume_id, const std::string& backup_id) {
    auto store = storage::OpenStore("file://" + store_dir_.string(), storage::StoreOptions{});
    ASSERT_TRUE(store) << store.error().message();
    auto key = crypto::LoadKeyFile(key_file_);
    ASSERT_TRUE(key) << key.error().message();
    auto repository = engine::Repository::Open(**store, *key);
    ASSERT_TRUE(repository) << repository.error().message();
    auto deleted = repository->DeleteBackup(volume_id, backup_id);
    ASSERT_TRUE(deleted) << deleted.error().message();
  }

  // `kindling store gc <extra...>` with the fixture's store flags.
  RunResult Gc(const std::vector<std::string>& extra = {}) { return Run({"store", "gc"}, extra); }

  // Restores `backup_id` and expects the bytes of `image`, then a clean verify.
  void ExpectRestoresBitIdentical(const std::string& backup_id, const fs::path& image) {
    SCOPED_TRACE("restore of " + backup_id);
    const fs::path restored = Path(backup_id + ".restored");
    fs::remove(restored);
    const auto result = Restore(backup_id, restored);
    ASSERT_TRUE(result.is_object());
    EXPECT_TRUE(SameBytes(restored, image)) << "the restored image differs from " << image;
    fs::remove(restored);
    const auto verified = Verify(backup_id);
    EXPECT_EQ(verified["ok"], true) << verified.dump();
  }

  // A sparse image with random data at [data_offset, data_offset + data_size).
  fs::path MakeImage(const std::string& name, std::uint64_t size, std::uint64_t data_offset,
                     std::uint64_t data_size, std::uint64_t seed) {
    const fs::path image = Path(name);
    MakeSparse(image, size);
    constexpr std::uint64_t kPiece = 8ull << 20;
    for (std::uint64_t done = 0; done < data_size; done += kPiece) {
      WriteAt(
          image, data_offset + done,
          RandomBytes(static_cast<std::size_t>(std::min(kPiece, data_size - done)), seed + done));
    }
    return image;
  }
};

TEST_F(StoreGcCliTest, DryRunDeletesNothingThenGcDeletesOnlyUnreferencedChunks) {
  Init("65536");
  // The kept backup: 3 MiB of data with holes around it.
  const fs::path kept_image = MakeImage("kept.img", 8ull << 20, 1ull << 20, 3ull << 20, 11);
  const auto kept = Create("vol-keep", kept_image, {"--backup-id", "kept"});
  ASSERT_TRUE(kept.is_object());
  const FileSizes kept_chunks = ChunkFiles();
  ASSERT_FALSE(kept_chunks.empty());
  EXPECT_EQ(kept["chunks_uploaded"], kept_chunks.size());

  // The doomed backup shares the kept image's first 2 MiB of data (those
  // chunks must stay) and adds 4 MiB of its own.
  const fs::path doomed_image = Path("doomed.img");
  fs::copy_file(kept_image, doomed_image);
  WriteAt(doomed_image, 3ull << 20, RandomBytes(4ull << 20, 22));
  ASSERT_TRUE(Create("vol-gone", doomed_image, {"--backup-id", "doomed"}).is_object());
  const FileSizes all_chunks = ChunkFiles();
  const FileSizes unreferenced = Minus(all_chunks, kept_chunks);
  ASSERT_GE(unreferenced.size(), 64u);  // the 4 MiB of new data, in 64 KiB chunks
  for (const auto& [path, size] : kept_chunks) ASSERT_TRUE(all_chunks.contains(path)) << path;
  ASSERT_NO_FATAL_FAILURE(DeleteBackup("vol-gone", "doomed"));

  // Dry run: the counts, and every chunk file still there.
  const RunResult dry = Gc({"--dry-run", "--json"});
  ASSERT_EQ(dry.exit_code, 0) << dry.Describe();
  const nlohmann::json report = dry.Json();
  ASSERT_TRUE(report.is_object()) << dry.Describe();
  EXPECT_EQ(report["dry_run"], true);
  EXPECT_EQ(report["manifests"], 1);
  EXPECT_EQ(report["live_chunks"], kept_chunks.size());
  EXPECT_EQ(report["chunks_examined"], all_chunks.size());
  EXPECT_EQ(report["chunks_deleted"], unreferenced.size());
  EXPECT_EQ(report["bytes_deleted"], TotalBytes(unreferenced));
  EXPECT_EQ(report["bytes_kept"], TotalBytes(kept_chunks));
  EXPECT_EQ(report["chunks_in_grace"], 0);
  EXPECT_EQ(report["bytes_in_grace"], 0);
  EXPECT_EQ(report["damage_records_deleted"], 0);
  EXPECT_EQ(report["stale_writers_removed"], 0);
  EXPECT_EQ(report["took_over_stale_lock"], false);
  EXPECT_TRUE(report["duration_ms"].is_number_unsigned()) << report.dump();
  EXPECT_NE(dry.err.find("kindling: mark: reading every manifest"), std::string::npos)
      << "the collection's log lines go to stderr\n"
      << dry.Describe();
  ExpectChunkFiles(all_chunks, "a dry run deleted chunks");
  EXPECT_FALSE(fs::exists(LockFile()));

  // The human summary of a dry run says what would go.
  const RunResult dry_human = Gc({"--dry-run"});
  ASSERT_EQ(dry_human.exit_code, 0) << dry_human.Describe();
  EXPECT_NE(dry_human.out.find("would delete " + std::to_string(unreferenced.size()) +
                               " unreferenced chunk(s)"),
            std::string::npos)
      << dry_human.Describe();
  EXPECT_NE(dry_human.out.find(cli::FormatBytes(TotalBytes(unreferenced))), std::string::npos)
      << dry_human.Describe();
  ExpectChunkFiles(all_chunks, "a dry run deleted chunks");

  // The collection: exactly the unreferenced chunks go.
  const RunResult real = Gc({"--json"});
  ASSERT_EQ(real.exit_code, 0) << real.Describe();
  const nlohmann::json done = real.Json();
  ASSERT_TRUE(done.is_object()) << real.Describe();
  EXPECT_EQ(done["dry_run"], false);
  EXPECT_EQ(done["manifests"], 1);
  EXPECT_EQ(done["live_chunks"], kept_chunks.size());
  EXPECT_EQ(done["chunks_examined"], all_chunks.size());
  EXPECT_EQ(done["chunks_deleted"], unreferenced.size());
  EXPECT_EQ(done["bytes_deleted"], TotalBytes(unreferenced));
  EXPECT_EQ(done["took_over_stale_lock"], false);
  const FileSizes left = ChunkFiles();
  EXPECT_TRUE(left == kept_chunks) << Difference(left, kept_chunks);
  EXPECT_EQ(TotalBytes(left), TotalBytes(kept_chunks));
  EXPECT_FALSE(fs::exists(LockFile()));
  EXPECT_FALSE(fs::exists(SweepFile()));

  ExpectRestoresBitIdentical("kept", kept_image);

  // Once more: nothing left to delete.
  const RunResult again = Gc();
  ASSERT_EQ(again.exit_code, 0) << again.Describe();
  EXPECT_NE(again.out.find("deleted 0 unreferenced chunk(s)"), std::string::npos)
      << again.Describe();
  ExpectChunkFiles(kept_chunks, "chunk files");
}

TEST_F(StoreGcCliTest, BadInputFailsWithAMessageAndDeletesNothing) {
  Init("65536");
  const fs::path kept_image = MakeImage("kept.img", 4ull << 20, 0, 2ull << 20, 5);
  ASSERT_TRUE(Create("vol-keep", kept_image, {"--backup-id", "kept"}).is_object());
  const FileSizes kept_chunks = ChunkFiles();
  const fs::path doomed_image = MakeImage("doomed.img", 4ull << 20, 0, 2ull << 20, 6);
  ASSERT_TRUE(Create("vol-gone", doomed_image, {"--backup-id", "doomed"}).is_object());
  ASSERT_NO_FATAL_FAILURE(DeleteBackup("vol-gone", "doomed"));
  const FileSizes all_chunks = ChunkFiles();
  ASSERT_GT(all_chunks.size(), kept_chunks.size());

  // Another store's key file.
  const fs::path other_key = Path("other.key");
  ASSERT_EQ(RunKindling({"store", "init", "--store", "file://" + Path("other").string(),
                         "--key-file", other_key.string(), "--json"})
                .exit_code,
            0);

  const std::string store_url = "file://" + store_dir_.string();
  struct Case {
    std::string name;
    std::vector<std::string> args;
    int exit_code;
    std::string message;  // expected in the error line
  };
  const std::vector<Case> cases = {
      {"missing --store", {"--key-file", key_file_.string()}, 2, "--store"},
      {"missing --key-file", {"--store", store_url}, 2, "--key-file"},
      {"key file not found",
       {"--store", store_url, "--key-file", Path("absent.key").string()},
       2,
       "key file not found"},
      {"wrong key file",
       {"--store", store_url, "--key-file", other_key.string()},
       4,
       "wrong key file"},
      {"malformed --grace",
       {"--store", store_url, "--key-file", key_file_.string(), "--grace", "5x"},
       2,
       "--grace"},
      {"malformed --max-wait",
       {"--store", store_url, "--key-file", key_file_.string(), "--max-wait", "soon"},
       2,
       "--max-wait"},
      {"zero --marker-stale-after",
       {"--store", store_url, "--key-file", key_file_.string(), "--marker-stale-after", "0"},
       2,
       "--marker-stale-after"},
      {"store not initialised",
       {"--store", "file://" + Path("empty").string(), "--key-file", key_file_.string()},
       1,
       "not initialised"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    std::vector<std::string> args = {"store", "gc"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    args.push_back("--json");
    const RunResult result = RunKindling(args, env_);
    EXPECT_EQ(result.exit_code, c.exit_code) << result.Describe();
    EXPECT_NE(result.err.find("kindling: error: "), std::string::npos) << result.Describe();
    EXPECT_NE(result.err.find(c.message), std::string::npos) << result.Describe();
    EXPECT_TRUE(result.Json().is_discarded()) << "no result document on failure\n"
                                              << result.Describe();
    ExpectChunkFiles(all_chunks, "chunks deleted despite the bad input");
    EXPECT_FALSE(fs::exists(LockFile()));
  }
  // The same store and flags, well formed: the collection runs.
  const RunResult ok = Gc({"--grace", "0s", "--max-wait", "1m", "--marker-stale-after", "30s"});
  EXPECT_EQ(ok.exit_code, 0) << ok.Describe();
  ExpectChunkFiles(kept_chunks, "chunk files");
}

TEST_F(StoreGcCliTest, HelpNamesEveryFlag) {
  const RunResult help = RunKindling({"store", "gc", "--help"});
  ASSERT_EQ(help.exit_code, 0) << help.Describe();
  for (const std::string flag : {"Usage", "--store", "--key-file", "--grace", "--dry-run", "--json",
                                 "--max-wait", "--marker-stale-after", "Exit codes"}) {
    EXPECT_NE(help.out.find(flag), std::string::npos) << flag << "\n" << help.Describe();
  }
  const RunResult store_help = RunKindling({"store", "--help"});
  EXPECT_NE(store_help.out.find("gc"), std::string::npos) << store_help.Describe();
}

TEST_F(StoreGcCliTest, SigkilledGcLeavesItsLockAndTheNextOneTakesOverAndFinishesSlow) {
  Init("65536");
  const fs::path kept_image = MakeImage("kept.img", 6ull << 20, 1ull << 20, 4ull << 20, 31);
  ASSERT_TRUE(Create("vol-keep", kept_image, {"--backup-id", "kept"}).is_object());
  const FileSizes kept_chunks = ChunkFiles();

  // Many unreferenced chunks: 256 MiB of random data in 64 KiB chunks.
  constexpr std::uint64_t kBigSize = 256ull << 20;
  const fs::path big_image = MakeImage("big.img", kBigSize, 0, kBigSize, 1000);
  ASSERT_TRUE(Create("vol-big", big_image, {"--backup-id", "big"}).is_object());
  fs::remove(big_image);
  ASSERT_NO_FATAL_FAILURE(DeleteBackup("vol-big", "big"));
  const FileSizes all_chunks = ChunkFiles();
  const FileSizes unreferenced = Minus(all_chunks, kept_chunks);
  ASSERT_GE(unreferenced.size(), kBigSize / 65536);

  // The sweep goes through chunks/00/ to chunks/ff/ in order: watch the first
  // shard directory holding an unreferenced chunk, and kill the collection as
  // soon as its count drops.
  const std::string first_shard = fs::path(unreferenced.begin()->first).parent_path().string();
  const fs::path watched = store_dir_ / first_shard;
  const auto count_in = [](const fs::path& dir) {
    std::size_t n = 0;
    std::error_code ec;
    for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator();
         it.increment(ec)) {
      if (it->path().filename().string().front() != '.') ++n;
    }
    return n;
  };
  const std::size_t watched_before = count_in(watched);
  auto gc = Start({"store", "gc"}, {"--json"});
  const auto start = Clock::now();
  bool dropped = false;
  while (Clock::now() - start < std::chrono::seconds(120)) {
    if (count_in(watched) < watched_before) {
      dropped = true;
      break;
    }
    if (!gc->Running()) break;
  }
  gc->Signal(SIGKILL);
  const RunResult killed = gc->Wait();
  ASSERT_TRUE(dropped) << "the chunk count never dropped\n" << killed.Describe();
  ASSERT_EQ(killed.term_signal, SIGKILL) << "the collection finished before the kill\n"
                                         << killed.Describe();

  // A dead collection: its lock is left behind, some unreferenced chunks are
  // gone and some are not, and every chunk of the kept backup is there.
  EXPECT_TRUE(fs::exists(LockFile())) << "kindling-store/gc/lock";
  const FileSizes after_kill = ChunkFiles();
  std::printf("[          ] unreferenced chunks: %zu, left after the kill: %zu\n",
              unreferenced.size(), after_kill.size() - kept_chunks.size());
  EXPECT_LT(after_kill.size(), all_chunks.size());
  ASSERT_GT(after_kill.size(), kept_chunks.size())
      << "the killed collection had deleted every unreferenced chunk already";
  for (const auto& [path, size] : kept_chunks) {
    EXPECT_TRUE(after_kill.contains(path)) << "a kept chunk was deleted: " << path;
  }
  ExpectRestoresBitIdentical("kept", kept_image);

  // The next collection sees the lock unchanged for a second, takes it over
  // and deletes the rest.
  const RunResult next = Gc({"--marker-stale-after", "1s", "--json"});
  ASSERT_EQ(next.exit_code, 0) << next.Describe();
  const nlohmann::json report = next.Json();
  ASSERT_TRUE(report.is_object()) << next.Describe();
  EXPECT_EQ(report["took_over_stale_lock"], true) << next.Describe();
  EXPECT_EQ(report["dry_run"], false);
  EXPECT_EQ(report["manifests"], 1);
  EXPECT_EQ(report["live_chunks"], kept_chunks.size());
  EXPECT_EQ(report["chunks_examined"], after_kill.size());
  EXPECT_EQ(report["chunks_deleted"], after_kill.size() - kept_chunks.size());
  EXPECT_EQ(report["bytes_deleted"], TotalBytes(after_kill) - TotalBytes(kept_chunks));
  EXPECT_NE(next.err.find("kindling: taking over the lock"), std::string::npos) << next.Describe();
  ExpectChunkFiles(kept_chunks, "unreferenced chunks left, or kept ones deleted");
  EXPECT_FALSE(fs::exists(LockFile()));
  EXPECT_FALSE(fs::exists(SweepFile()));

  ExpectRestoresBitIdentical("kept", kept_image);
}

}  // namespace
}  // namespace kindling::clitest
