#include "engine/restore.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <mutex>
#include <thread>

#include "common/files.h"
#include "engine/engine_test_base.h"

namespace kindling::engine {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testutil::Extent;
using testutil::Fill;
using testutil::StoreOp;

class RestoreTest : public EngineTestBase {
 protected:
  // Backs up `image`, restores it into out/, and checks the copy is
  // bit-identical. Returns the restored path.
  std::filesystem::path ExpectRoundTrip(const std::filesystem::path& image) {
    last_ = BackupOrDie(image);
    const repo::Manifest& m = last_;
    const std::string sha = FileSha(image);
    const std::string digest = FileDigest(image, m.chunk_size);
    EXPECT_EQ(crypto::DigestHex(m.image_digest), digest);
    const auto restored = out_dir() / (image.filename().string() + ".restored");
    auto result = Restore(m, restored);
    EXPECT_TRUE(result) << result.error().message();
    if (!result) return restored;
    EXPECT_EQ(std::filesystem::file_size(restored), std::filesystem::file_size(image));
    EXPECT_EQ(FileSha(restored), sha);
    EXPECT_EQ(result->image_size, m.image_size);
    EXPECT_EQ(result->image_digest_hex, digest);
    EXPECT_EQ(result->chunks_fetched, DistinctDataChunks(m));
    EXPECT_EQ(result->bytes_downloaded, m.stats.bytes_referenced);
    EXPECT_THAT(testutil::ListDir(out_dir()), ElementsAre(restored.filename().string()))
        << "no temp file may be left beside the destination";
    return restored;
  }

  std::filesystem::path RandomImage(const std::string& name, std::uint64_t size) {
    return MakeImage(name, size, {{0, size, Fill::kRandom}});
  }

  // Restores `m` and expects failure of `kind` that leaves the destination
  // untouched: an absent destination stays absent, an existing one keeps its
  // content even with overwrite, and no temp file is left behind.
  void ExpectFailsCleanly(const repo::Manifest& m, ErrorKind kind,
                          const std::string& mention = "") {
    const auto absent = out_dir() / "absent.img";
    auto r = Restore(m, absent);
    ASSERT_FALSE(r) << "restore unexpectedly succeeded";
    EXPECT_EQ(r.error().kind(), kind) << r.error().message();
    if (!mention.empty()) {
      EXPECT_THAT(r.error().message(), HasSubstr(mention));
    }
    EXPECT_FALSE(std::filesystem::exists(absent));
    EXPECT_THAT(testutil::ListDir(out_dir()), IsEmpty());

    const auto existing = out_dir() / "existing.img";
    testutil::WriteFile(existing, "previous content");
    auto over = Restore(m, existing, /*overwrite=*/true);
    ASSERT_FALSE(over) << "restore over an existing file unexpectedly succeeded";
    EXPECT_EQ(over.error().kind(), kind) << over.error().message();
    EXPECT_EQ(testutil::ReadFileOrDie(existing), "previous content");
    EXPECT_THAT(testutil::ListDir(out_dir()), ElementsAre("existing.img"));
    std::filesystem::remove(existing);
  }

  void SlowGets(std::chrono::milliseconds delay) {
    faults_->SetRule([delay](StoreOp op, std::string_view) -> std::optional<Error> {
      if (op == StoreOp::kGet) std::this_thread::sleep_for(delay);
      return std::nullopt;
    });
  }

  repo::Manifest last_;  // the manifest of the last ExpectRoundTrip
};

TEST_F(RestoreTest, EmptyImage) {
  const auto restored = ExpectRoundTrip(MakeImage("empty.img", 0, {}));
  EXPECT_EQ(std::filesystem::file_size(restored), 0u);
}

TEST_F(RestoreTest, OneByteImage) { ExpectRoundTrip(RandomImage("one.img", 1)); }

TEST_F(RestoreTest, ChunkMinusOneByte) { ExpectRoundTrip(RandomImage("c-1.img", kChunk - 1)); }

TEST_F(RestoreTest, ExactlyOneChunk) { ExpectRoundTrip(RandomImage("c.img", kChunk)); }

TEST_F(RestoreTest, ChunkPlusOneByte) { ExpectRoundTrip(RandomImage("c+1.img", kChunk + 1)); }

TEST_F(RestoreTest, RandomImage) { ExpectRoundTrip(RandomImage("random.img", 37 * kChunk + 4321)); }

TEST_F(RestoreTest, TextImage) {
  ExpectRoundTrip(MakeImage("text.img", 20 * kChunk + 5, {{0, 20 * kChunk + 5, Fill::kText}}));
}

TEST_F(RestoreTest, AllHolesStaySparse) {
  const auto image = MakeImage("holes.img", 128 * kChunk + 3, {});
  ASSERT_EQ(testutil::AllocatedBytes(image), 0u);
  const auto restored = ExpectRoundTrip(image);
  EXPECT_EQ(testutil::AllocatedBytes(restored), 0u);
}

TEST_F(RestoreTest, WrittenZerosComeBackAsHoles) {
  const auto image = MakeImage("zeros.img", 32 * kChunk, {{0, 32 * kChunk, Fill::kZeros}});
  ASSERT_GE(testutil::AllocatedBytes(image), 32u * kChunk);
  const auto restored = ExpectRoundTrip(image);
  EXPECT_EQ(testutil::AllocatedBytes(restored), 0u);
}

TEST_F(RestoreTest, MixedImageIsBitIdenticalAndSparse) {
  const auto image = MakeMixedImage("mixed.img");
  const auto restored = ExpectRoundTrip(image);
  // Only data chunks are allocated (allow a little filesystem metadata).
  EXPECT_LE(testutil::AllocatedBytes(restored), last_.stats.bytes_data + 16 * 1024);
}

TEST_F(RestoreTest, ZeroBlocksInsideDataChunksStayHoles) {
  // Written zeros inside data chunks: whole 4 KiB blocks of zeros (allocated
  // in the source) come back as holes, other blocks as data, and the image is
  // bit-identical.
  constexpr std::uint64_t kBlock = 4096;
  const auto image = MakeImage("zero-blocks.img", 3 * kChunk, {{0, 3 * kChunk, Fill::kText}});
  const std::vector<std::uint64_t> zero_blocks = {3 * kBlock, kChunk, kChunk + kBlock,
                                                  3 * kChunk - kBlock};
  for (std::uint64_t offset : zero_blocks)
    testutil::PatchFile(image, offset, std::string(kBlock, '\0'));
  // A block that is zero but for its last byte is data.
  testutil::PatchFile(image, 5 * kBlock, std::string(kBlock - 1, '\0'));
  ASSERT_GE(testutil::AllocatedBytes(image), 3u * kChunk);

  const auto restored = ExpectRoundTrip(image);
  EXPECT_LE(testutil::AllocatedBytes(restored), 3 * kChunk - zero_blocks.size() * kBlock);
  UniqueFd fd(::open(restored.c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(fd.valid());
  for (std::uint64_t offset = 0; offset < 3 * kChunk; offset += kBlock) {
    const bool zero =
        std::find(zero_blocks.begin(), zero_blocks.end(), offset) != zero_blocks.end();
    auto hole = RangeIsHole(fd.get(), offset, kBlock);
    ASSERT_TRUE(hole) << hole.error().message();
    EXPECT_EQ(*hole, zero) << "block at " << offset;
  }
}

TEST_F(RestoreTest, RepeatedChunkFarApartWithFewThreads) {
  // A chunk is fetched once and written to every slot that holds it, far
  // apart too; the digest must get its share at each of those slots, with
  // few workers as with many.
  const std::string block = testutil::RandomData(kChunk, 11);
  const auto image = MakeImage("far.img", 60 * kChunk, {{kChunk, 58 * kChunk, Fill::kRandom}});
  testutil::PatchFile(image, 0, block);
  testutil::PatchFile(image, 30 * kChunk, block);
  testutil::PatchFile(image, 59 * kChunk, block);
  const repo::Manifest m = BackupOrDie(image);
  ASSERT_EQ(DistinctDataChunks(m), 58u);
  for (int threads : {1, 2}) {
    const auto dest = out_dir() / ("t" + std::to_string(threads) + ".img");
    auto r = Restore(m, dest, false, threads);
    ASSERT_TRUE(r) << threads << ": " << r.error().message();
    EXPECT_EQ(FileSha(dest), FileSha(image)) << threads;
  }
}

TEST_F(RestoreTest, ManifestWithRepeatedChunkMovedFailsCleanly) {
  // Slot 4 repeats slot 0's chunk; moving it onto a hole slot assembles
  // another image, which the digest must catch.
  const std::string block = testutil::RandomData(kChunk, 12);
  const auto image = MakeImage("moved.img", 8 * kChunk, {{kChunk, kChunk, Fill::kText}});
  testutil::PatchFile(image, 0, block);
  testutil::PatchFile(image, 4 * kChunk, block);
  repo::Manifest m = BackupOrDie(image);
  ASSERT_TRUE(m.chunks[6].is_hole);
  std::swap(m.chunks[4], m.chunks[6]);
  ExpectFailsCleanly(m, ErrorKind::kCorruption, "digest");
}

TEST_F(RestoreTest, RepeatedChunksAreFetchedOnce) {
  const std::string block = testutil::RandomData(kChunk, 5);
  const auto image = MakeImage("repeat.img", 12 * kChunk, {});
  for (std::uint64_t i = 0; i < 12; i += 2) testutil::PatchFile(image, i * kChunk, block);
  const repo::Manifest m = BackupOrDie(image);
  const int gets = faults_->calls(StoreOp::kGet);
  auto r = Restore(m, out_dir() / "r.img");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->chunks_fetched, 1u);
  EXPECT_EQ(faults_->calls(StoreOp::kGet) - gets, 1);
  EXPECT_EQ(FileSha(out_dir() / "r.img"), FileSha(image));
}

TEST_F(RestoreTest, ThreadCountsAgree) {
  const auto image = MakeMixedImage("mixed.img");
  const repo::Manifest m = BackupOrDie(image);
  for (int threads : {1, 2, 16}) {
    const auto dest = out_dir() / ("t" + std::to_string(threads) + ".img");
    auto r = Restore(m, dest, false, threads);
    ASSERT_TRUE(r) << threads << ": " << r.error().message();
    EXPECT_EQ(FileSha(dest), FileSha(image)) << threads;
  }
}

TEST_F(RestoreTest, FromReopenedRepository) {
  const auto image = MakeMixedImage("mixed.img");
  const repo::Manifest m = BackupOrDie(image);
  auto reopened = Repository::Open(*local_, key_);
  ASSERT_TRUE(reopened) << reopened.error().message();
  auto loaded = reopened->LoadManifest("vol-1", m.backup_id);
  ASSERT_TRUE(loaded) << loaded.error().message();
  RestoreOptions o;
  o.destination = out_dir() / "r.img";
  auto r = RestoreBackup(*reopened, *loaded, o);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(FileSha(out_dir() / "r.img"), FileSha(image));
}

TEST_F(RestoreTest, OverwriteReplacesExistingDestination) {
  const auto image = MakeMixedImage("mixed.img");
  const repo::Manifest m = BackupOrDie(image);
  const auto dest = out_dir() / "dest.img";
  testutil::WriteFile(dest, std::string(10 << 20, 'o'));
  auto r = Restore(m, dest, /*overwrite=*/true);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(FileSha(dest), FileSha(image));
  EXPECT_THAT(testutil::ListDir(out_dir()), ElementsAre("dest.img"));
}

TEST_F(RestoreTest, ExistingDestinationWithoutOverwriteIsRefused) {
  const auto image = MakeMixedImage("mixed.img");
  const repo::Manifest m = BackupOrDie(image);
  const auto dest = out_dir() / "dest.img";
  testutil::WriteFile(dest, "keep me");
  auto r = Restore(m, dest);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), ErrorKind::kAlreadyExists);
  EXPECT_EQ(testutil::ReadFileOrDie(dest), "keep me");
  EXPECT_THAT(testutil::ListDir(out_dir()), ElementsAre("dest.img"));
}

TEST_F(RestoreTest, BadDestinationsAreRefused) {
  const auto image = MakeMixedImage("mixed.img");
  const repo::Manifest m = BackupOrDie(image);
  EXPECT_FALSE(Restore(m, out_dir() / "no-such-dir" / "r.img"));
  EXPECT_FALSE(Restore(m, ""));
  std::filesystem::create_directory(out_dir() / "a-dir");
  auto r = Restore(m, out_dir() / "a-dir", /*overwrite=*/true);
  EXPECT_FALSE(r);
  EXPECT_TRUE(std::filesystem::is_directory(out_dir() / "a-dir"));
  EXPECT_THAT(testutil::ListDir(out_dir()), ElementsAre("a-dir"));
}

TEST_F(RestoreTest, MissingChunkFailsCleanly) {
  const auto image = MakeMixedImage("mixed.img");
  const repo::Manifest m = BackupOrDie(image);
  const auto& victim = m.chunks[NthDataChunk(m, 4)];
  DeleteObject(repo::ChunkKey(victim.id));
  auto r = Restore(m, out_dir() / "probe.img");
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message(), HasSubstr(crypto::DigestHex(victim.id)));
  ExpectFailsCleanly(m, r.error().kind());
  EXPECT_TRUE(r.error().kind() == ErrorKind::kCorruption ||
              r.error().kind() == ErrorKind::kNotFound)
      << ErrorKindName(r.error().kind());
}

TEST_F(RestoreTest, CorruptChunkFailsCleanly) {
  const auto image = MakeMixedImage("mixed.img");
  const repo::Manifest m = BackupOrDie(image);
  const auto& victim = m.chunks[NthDataChunk(m, 2)];
  CorruptObject(repo::ChunkKey(victim.id));
  ExpectFailsCleanly(m, ErrorKind::kCorruption, crypto::DigestHex(victim.id));
}

TEST_F(RestoreTest, ChunkSwappedForAnotherFailsCleanly) {
  // A valid object stored under another chunk's key.
  const auto image = MakeMixedImage("mixed.img");
  const repo::Manifest m = BackupOrDie(image);
  const auto a = repo::ChunkKey(m.chunks[NthDataChunk(m, 0)].id);
  const auto b = repo::ChunkKey(m.chunks[NthDataChunk(m, 1)].id);
  ASSERT_TRUE(local_->Put(b, *local_->Get(a)));
  ExpectFailsCleanly(m, ErrorKind::kCorruption);
}

TEST_F(RestoreTest, TruncatedChunkFailsCleanly) {
  const auto image = MakeMixedImage("mixed.img");
  const repo::Manifest m = BackupOrDie(image);
  const auto key = repo::ChunkKey(m.chunks[NthDataChunk(m, 3)].id);
  ASSERT_TRUE(local_->Put(key, local_->Get(key)->substr(0, 100)));
  ExpectFailsCleanly(m, ErrorKind::kCorruption);
}

TEST_F(RestoreTest, ManifestWithWrongImageDigestFailsCleanly) {
  const auto image = MakeMixedImage("mixed.img");
  repo::Manifest m = BackupOrDie(image);
  m.image_digest[0] ^= 1;
  ExpectFailsCleanly(m, ErrorKind::kCorruption);
}

TEST_F(RestoreTest, ManifestWithReorderedChunksFailsCleanly) {
  // Every chunk authenticates, but the image assembled is not the one backed up.
  const auto image = MakeMixedImage("mixed.img");
  repo::Manifest m = BackupOrDie(image);
  std::swap(m.chunks[0], m.chunks[1]);
  ExpectFailsCleanly(m, ErrorKind::kCorruption);
}

TEST_F(RestoreTest, CorruptManifestIsCorruption) {
  const auto image = MakeMixedImage("mixed.img");
  const repo::Manifest m = BackupOrDie(image);
  const std::string key = repo::ManifestKey("vol-1", m.backup_id);
  CorruptObject(key);
  auto loaded = repository().LoadManifest("vol-1", m.backup_id);
  ASSERT_FALSE(loaded);
  EXPECT_EQ(loaded.error().kind(), ErrorKind::kCorruption);
  EXPECT_THAT(loaded.error().message(), HasSubstr(key));
  auto found = repository().FindBackup(m.backup_id);
  ASSERT_FALSE(found);
  EXPECT_EQ(found.error().kind(), ErrorKind::kCorruption);
}

TEST_F(RestoreTest, WrongKeyFileCannotOpenTheStore) {
  const auto image = MakeMixedImage("mixed.img");
  BackupOrDie(image);
  auto other = Repository::Open(*local_, crypto::RandomKey());
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().kind(), ErrorKind::kWrongKey);
}

TEST_F(RestoreTest, OtherStoreKeysFailCleanly) {
  // The chunks of this store read with another store's data keys: every one
  // fails authentication.
  const auto image = MakeMixedImage("mixed.img");
  const repo::Manifest m = BackupOrDie(image);
  auto other_store = storage::LocalStore::Open(dir_ / "other-store");
  ASSERT_TRUE(other_store);
  auto other = Repository::Init(**other_store, key_, kChunk);
  ASSERT_TRUE(other);
  const auto stored = *local_->List("chunks/");
  for (const auto& object : stored)
    ASSERT_TRUE((*other_store)->Put(object.key, *local_->Get(object.key)));
  RestoreOptions o;
  o.destination = out_dir() / "r.img";
  auto r = RestoreBackup(*other, m, o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), ErrorKind::kCorruption);
  EXPECT_THAT(testutil::ListDir(out_dir()), IsEmpty());
}

TEST_F(RestoreTest, StoreErrorFailsCleanly) {
  const auto image = MakeMixedImage("mixed.img");
  const repo::Manifest m = BackupOrDie(image);
  faults_->FailMatching(StoreOp::kGet, crypto::DigestHex(m.chunks[NthDataChunk(m, 5)].id),
                        ErrorKind::kTransient);
  ExpectFailsCleanly(m, ErrorKind::kTransient);
}

TEST_F(RestoreTest, CancelledRestoreLeavesNothing) {
  constexpr std::size_t kChunks = 150;
  const auto image = RandomImage("data.img", kChunks * kChunk);
  const repo::Manifest m = BackupOrDie(image);
  SlowGets(std::chrono::milliseconds(3));
  CancelFlag cancel{false};
  RestoreOptions o;
  o.destination = out_dir() / "r.img";
  o.threads = 2;
  o.cancel = &cancel;
  o.progress = [&](const Progress&) { cancel = true; };
  auto r = RestoreBackup(repository(), m, o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), ErrorKind::kCancelled);
  EXPECT_LT(faults_->calls(StoreOp::kGet), static_cast<int>(kChunks))
      << "cancellation should stop fetching early";
  EXPECT_THAT(testutil::ListDir(out_dir()), IsEmpty());
}

TEST_F(RestoreTest, ProgressReachesTotal) {
  const auto image = MakeMixedImage("mixed.img");
  const repo::Manifest m = BackupOrDie(image);
  std::mutex mu;
  std::vector<Progress> seen;
  RestoreOptions o;
  o.destination = out_dir() / "r.img";
  o.progress = [&](const Progress& p) {
    std::lock_guard lock(mu);
    seen.push_back(p);
  };
  auto r = RestoreBackup(repository(), m, o);
  ASSERT_TRUE(r) << r.error().message();
  ASSERT_FALSE(seen.empty());
  for (const Progress& p : seen) {
    EXPECT_EQ(p.bytes_total, m.image_size);
    EXPECT_LE(p.bytes_done, p.bytes_total);
  }
  EXPECT_EQ(seen.back().bytes_done, m.image_size);
  EXPECT_EQ(seen.back().bytes_transferred, r->bytes_downloaded);
  EXPECT_EQ(seen.back().chunks_done, seen.back().chunks_total)
      << "holes are processed chunks too: a chunk-based progress bar should end at 100%";
}

// RocksDB CorruptionsTest spirit: damage to the newest backup must not take
// the previous one down with it.
TEST_F(RestoreTest, CorruptNewestManifestPreviousStillRestores) {
  const auto image = MakeMixedImage("mixed.img");
  const std::string old_sha = FileSha(image);
  const repo::Manifest old_backup = BackupOrDie(image);
  std::this_thread::sleep_for(std::chrono::milliseconds(3));
  testutil::PatchFile(image, 100, "new data in the newest backup");
  const repo::Manifest new_backup = BackupOrDie(image);
  CorruptObject(repo::ManifestKey("vol-1", new_backup.backup_id));

  auto newest = repository().LoadManifest("vol-1", new_backup.backup_id);
  ASSERT_FALSE(newest);
  EXPECT_EQ(newest.error().kind(), ErrorKind::kCorruption);
  auto listed = repository().ListBackups("vol-1");
  ASSERT_FALSE(listed) << "a manifest that fails to authenticate is an error, not skipped";
  EXPECT_THAT(listed.error().message(), HasSubstr(new_backup.backup_id));

  auto previous = repository().LoadManifest("vol-1", old_backup.backup_id);
  ASSERT_TRUE(previous) << previous.error().message();
  auto r = Restore(*previous, out_dir() / "previous.img");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(FileSha(out_dir() / "previous.img"), old_sha);
}

TEST_F(RestoreTest, CorruptChunkOfNewestBackupPreviousStillRestores) {
  const auto image = MakeImage("data.img", 30 * kChunk, {{0, 30 * kChunk, Fill::kRandom}});
  const std::string old_sha = FileSha(image);
  const repo::Manifest old_backup = BackupOrDie(image);
  testutil::PatchFile(image, 7 * kChunk + 10, "changed");
  const repo::Manifest new_backup = BackupOrDie(image);
  ASSERT_EQ(new_backup.stats.chunks_uploaded, 1u);
  CorruptObject(repo::ChunkKey(new_backup.chunks[7].id));

  ExpectFailsCleanly(new_backup, ErrorKind::kCorruption);
  auto r = Restore(old_backup, out_dir() / "previous.img");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(FileSha(out_dir() / "previous.img"), old_sha);
}

}  // namespace
}  // namespace kindling::engine
