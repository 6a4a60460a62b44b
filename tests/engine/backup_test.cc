#include "engine/backup.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "common/ids.h"
#include "engine/engine_test_base.h"
#include "repo/envelope.h"

namespace kindling::engine {
namespace {

using ::testing::HasSubstr;
using testutil::Extent;
using testutil::Fill;
using testutil::StoreOp;

class BackupTest : public EngineTestBase {
 protected:
  // A store whose Puts take `delay`, so that a backup lasts long enough for
  // the progress ticker to fire mid-way.
  void SlowPuts(std::chrono::milliseconds delay) {
    faults_->SetRule([delay](StoreOp op, std::string_view) -> std::optional<Error> {
      if (op == StoreOp::kPut) std::this_thread::sleep_for(delay);
      return std::nullopt;
    });
  }
};

TEST_F(BackupTest, ManifestDescribesImage) {
  const auto image = MakeMixedImage("mixed.img");
  const auto before_ms =
      static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
  const repo::Manifest m = BackupOrDie(image);

  EXPECT_EQ(m.volume_id, "vol-1");
  EXPECT_TRUE(IsUuid(m.backup_id)) << m.backup_id;
  EXPECT_EQ(m.backup_id[14], '7') << "expected a time-ordered UUID: " << m.backup_id;
  EXPECT_EQ(m.image_size, std::filesystem::file_size(image));
  EXPECT_EQ(m.chunk_size, kChunk);
  EXPECT_GE(m.created_unix_ms, before_ms);
  ASSERT_EQ(m.chunks.size(), repo::ChunkCount(m.image_size, kChunk));
  EXPECT_EQ(crypto::DigestHex(m.image_digest), FileDigest(image, m.chunk_size));

  // Chunk kinds follow the image layout (see MakeMixedImage).
  const std::set<std::size_t> holes = {2, 3, 4, 8, 10, 11, 13, 14, 15, 16, 17, 20, 21};
  for (std::size_t i = 0; i < m.chunks.size(); ++i)
    EXPECT_EQ(m.chunks[i].is_hole, holes.contains(i)) << "chunk " << i;

  const repo::BackupStats& s = m.stats;
  EXPECT_EQ(s.chunks_hole, holes.size());
  EXPECT_EQ(s.chunks_data, m.chunks.size() - holes.size());
  std::uint64_t data_bytes = 0, stored_bytes = 0;
  for (std::size_t i = 0; i < m.chunks.size(); ++i) {
    if (m.chunks[i].is_hole) continue;
    data_bytes += m.ChunkLength(i);
    stored_bytes += m.chunks[i].stored_size;
  }
  EXPECT_EQ(s.bytes_data, data_bytes);
  EXPECT_EQ(s.bytes_referenced, stored_bytes);  // every data chunk differs
  EXPECT_EQ(s.chunks_uploaded, s.chunks_data);
  EXPECT_EQ(s.bytes_uploaded, stored_bytes);
  EXPECT_LT(s.bytes_uploaded, s.bytes_data) << "text chunks should compress";
  EXPECT_EQ(StoredChunks(), s.chunks_data);

  // Each stored size is the object's real size.
  for (const auto& c : m.chunks) {
    if (c.is_hole) continue;
    auto size = local_->Head(repo::ChunkKey(c.id));
    ASSERT_TRUE(size);
    EXPECT_EQ(*size, c.stored_size);
  }

  // The committed manifest is the one returned.
  auto loaded = repository().LoadManifest(m.volume_id, m.backup_id);
  ASSERT_TRUE(loaded) << loaded.error().message();
  EXPECT_EQ(loaded->image_digest, m.image_digest);
  EXPECT_EQ(loaded->created_unix_ms, m.created_unix_ms);
  ASSERT_EQ(loaded->chunks.size(), m.chunks.size());
  for (std::size_t i = 0; i < m.chunks.size(); ++i) EXPECT_EQ(loaded->chunks[i].id, m.chunks[i].id);
}

TEST_F(BackupTest, HolesAreNeitherReadNorStored) {
  // 20 chunks: 0-4 and 15-19 data, 7 written zeros, the rest never written.
  const auto image = MakeImage("holes.img", 20 * kChunk,
                               {{0, 5 * kChunk, Fill::kRandom},
                                {7 * kChunk, kChunk, Fill::kZeros},
                                {15 * kChunk, 5 * kChunk, Fill::kText}});
  const int puts_before = faults_->calls(StoreOp::kPut);
  const repo::Manifest m = BackupOrDie(image);
  EXPECT_EQ(m.stats.chunks_data, 10u);
  EXPECT_EQ(m.stats.chunks_hole, 10u);
  // Holes are skipped by SEEK_DATA; the written-zero chunk has to be read.
  EXPECT_EQ(m.stats.bytes_read, 11u * kChunk);
  EXPECT_EQ(m.stats.bytes_data, 10u * kChunk);
  EXPECT_EQ(StoredChunks(), 10u);
  EXPECT_EQ(faults_->calls(StoreOp::kPut) - puts_before, 12)
      << "10 chunks + 1 manifest + 1 writer marker (engine/gc.h)";
  EXPECT_EQ(crypto::DigestHex(m.image_digest), FileDigest(image, m.chunk_size));
}

TEST_F(BackupTest, HolesInsideDataChunksAreNotRead) {
  // Chunk 1 holds 4 KiB of data amid holes, chunk 2 data in its first half
  // only: just those bytes are read, yet both chunks are stored whole (holes
  // as zeros) and the digest covers every byte.
  const auto image =
      MakeImage("partly.img", 4 * kChunk,
                {{kChunk + 8192, 4096, Fill::kRandom}, {2 * kChunk, kChunk / 2, Fill::kText}});
  const repo::Manifest m = BackupOrDie(image);
  EXPECT_EQ(m.stats.chunks_data, 2u);
  EXPECT_EQ(m.stats.bytes_read, 4096u + kChunk / 2);
  EXPECT_EQ(m.stats.bytes_data, 2u * kChunk);
  EXPECT_EQ(crypto::DigestHex(m.image_digest), FileDigest(image, m.chunk_size));
  auto r = Restore(m, out_dir() / "r.img");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(FileSha(out_dir() / "r.img"), FileSha(image));
}

TEST_F(BackupTest, AllHoleImageReadsAndStoresNothing) {
  const auto image = MakeImage("empty-fs.img", 64 * kChunk + 17, {});
  const repo::Manifest m = BackupOrDie(image);
  EXPECT_EQ(m.stats.bytes_read, 0u);
  EXPECT_EQ(m.stats.chunks_data, 0u);
  EXPECT_EQ(m.stats.chunks_hole, 65u);
  EXPECT_EQ(m.stats.bytes_uploaded, 0u);
  EXPECT_EQ(StoredChunks(), 0u);
  EXPECT_EQ(crypto::DigestHex(m.image_digest), FileDigest(image, m.chunk_size));
}

TEST_F(BackupTest, AllZeroImageStoresNothing) {
  const auto image = MakeImage("zeros.img", 8 * kChunk, {{0, 8 * kChunk, Fill::kZeros}});
  const repo::Manifest m = BackupOrDie(image);
  EXPECT_EQ(m.stats.bytes_read, 8u * kChunk);
  EXPECT_EQ(m.stats.chunks_data, 0u);
  EXPECT_EQ(m.stats.chunks_hole, 8u);
  EXPECT_EQ(StoredChunks(), 0u);
}

TEST_F(BackupTest, EmptyImage) {
  const auto image = MakeImage("zero-length.img", 0, {});
  const repo::Manifest m = BackupOrDie(image);
  EXPECT_EQ(m.image_size, 0u);
  EXPECT_TRUE(m.chunks.empty());
  EXPECT_EQ(crypto::DigestHex(m.image_digest), FileDigest(image, m.chunk_size));
  EXPECT_TRUE(repository().LoadManifest("vol-1", m.backup_id));
}

TEST_F(BackupTest, UnchangedImageUploadsNothing) {
  const auto image = MakeMixedImage("mixed.img");
  const repo::Manifest first = BackupOrDie(image);
  const int puts = faults_->calls(StoreOp::kPut);
  const int heads = faults_->calls(StoreOp::kHead);
  const repo::Manifest second = BackupOrDie(image);
  EXPECT_NE(second.backup_id, first.backup_id);
  EXPECT_EQ(second.stats.chunks_uploaded, 0u);
  EXPECT_EQ(second.stats.bytes_uploaded, 0u);
  EXPECT_EQ(second.stats.chunks_data, first.stats.chunks_data);
  EXPECT_EQ(second.stats.bytes_referenced, first.stats.bytes_referenced);
  EXPECT_EQ(second.image_digest, first.image_digest);
  EXPECT_EQ(faults_->calls(StoreOp::kPut) - puts, 2) << "only the manifest and the writer marker";
  // Chunks named by the volume's newest manifest need no HEAD (only the new
  // manifest's key is checked, and the writer marker before the commit).
  EXPECT_LE(faults_->calls(StoreOp::kHead) - heads, 2);
  EXPECT_EQ(StoredManifests(), 2u);
}

TEST_F(BackupTest, SecondVolumeWithSameContentUploadsNothing) {
  const auto image = MakeMixedImage("mixed.img");
  const repo::Manifest first = BackupOrDie(image, "vol-1");
  const std::size_t stored = StoredChunks();
  const int heads = faults_->calls(StoreOp::kHead);
  const repo::Manifest other = BackupOrDie(image, "vol-2");
  EXPECT_EQ(other.volume_id, "vol-2");
  EXPECT_EQ(other.stats.chunks_uploaded, 0u);
  EXPECT_EQ(other.stats.bytes_uploaded, 0u);
  EXPECT_EQ(StoredChunks(), stored);
  // At most one HEAD per distinct chunk (plus the manifest key and the
  // writer marker).
  EXPECT_LE(faults_->calls(StoreOp::kHead) - heads,
            static_cast<int>(DistinctDataChunks(first)) + 2);
  EXPECT_EQ(other.stats.bytes_referenced, first.stats.bytes_referenced);
}

// A writer killed mid-upload can leave a short object on a store whose PUT
// is not atomic (s3rver keeps partial bodies). A later backup that finds the
// id must not trust that object.
TEST_F(BackupTest, ShortChunkObjectLeftByAKilledUploadIsWrittenAgain) {
  const auto image = MakeImage("data.img", 4 * kChunk, {{0, 4 * kChunk, Fill::kRandom}});
  BackupOrDie(image, "vol-1");
  std::filesystem::path victim;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir_.path() / "store"))
    if (entry.is_regular_file() && entry.path().string().find("/chunks/") != std::string::npos)
      victim = entry.path();
  ASSERT_FALSE(victim.empty());
  std::filesystem::resize_file(victim, std::filesystem::file_size(victim) / 2);

  const repo::Manifest other = BackupOrDie(image, "vol-2");
  EXPECT_EQ(other.stats.chunks_uploaded, 1u);
  auto restored = Restore(other, out_dir() / "r.img");
  ASSERT_TRUE(restored) << restored.error().message();
  EXPECT_EQ(FileSha(out_dir() / "r.img"), FileSha(image));
}

TEST_F(BackupTest, SmallChangeUploadsOnlyChangedChunks) {
  constexpr std::size_t kChunks = 200;
  const auto image =
      MakeImage("data.img", kChunks * kChunk, {{0, kChunks * kChunk, Fill::kRandom}});
  const repo::Manifest first = BackupOrDie(image);
  EXPECT_EQ(first.stats.chunks_uploaded, kChunks);

  // Overwrite 2% of the chunks: 4 distinct chunks, 512 bytes each at a random
  // offset inside the chunk (fixed seed).
  std::mt19937_64 rng(2024);
  std::set<std::size_t> changed;
  while (changed.size() < 4) changed.insert(rng() % kChunks);
  for (std::size_t index : changed) {
    const std::uint64_t offset = index * std::uint64_t{kChunk} + rng() % (kChunk - 512);
    testutil::PatchFile(image, offset, testutil::RandomData(512, index));
  }
  const repo::Manifest second = BackupOrDie(image);
  EXPECT_EQ(second.stats.chunks_uploaded, changed.size());
  EXPECT_EQ(second.stats.bytes_uploaded,
            changed.size() * (kChunk + repo::kEnvelopeHeaderSize + crypto::kSealOverhead));
  EXPECT_EQ(second.stats.bytes_read, kChunks * std::uint64_t{kChunk});
  for (std::size_t i = 0; i < kChunks; ++i)
    EXPECT_EQ(second.chunks[i].id == first.chunks[i].id, !changed.contains(i)) << "chunk " << i;
  EXPECT_EQ(StoredChunks(), kChunks + changed.size());
  EXPECT_EQ(crypto::DigestHex(second.image_digest), FileDigest(image, second.chunk_size));

  auto restored = Restore(second, out_dir() / "restored.img");
  ASSERT_TRUE(restored) << restored.error().message();
  EXPECT_EQ(FileSha(out_dir() / "restored.img"), FileSha(image));
}

TEST_F(BackupTest, RepeatedChunksAreStoredOnce) {
  const std::string block = testutil::TextData(kChunk, 77);
  const auto image = MakeImage("repeat.img", 10 * kChunk, {});
  for (std::uint64_t i = 0; i < 10; ++i) testutil::PatchFile(image, i * kChunk, block);
  const repo::Manifest m = BackupOrDie(image);
  EXPECT_EQ(m.stats.chunks_data, 10u);
  EXPECT_EQ(DistinctDataChunks(m), 1u);
  EXPECT_EQ(StoredChunks(), 1u);
  EXPECT_EQ(m.stats.bytes_referenced, m.chunks[0].stored_size);
}

TEST_F(BackupTest, ChunkSizeOverride) {
  const auto image = MakeMixedImage("mixed.img");
  BackupOptions o = Options(image);
  o.chunk_size = 4 * kChunk;
  auto m = CreateBackup(repository(), o);
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_EQ(m->chunk_size, 4 * kChunk);
  EXPECT_EQ(m->chunks.size(), repo::ChunkCount(m->image_size, 4 * kChunk));
  EXPECT_EQ(crypto::DigestHex(m->image_digest), FileDigest(image, m->chunk_size));
  auto restored = Restore(*m, out_dir() / "r.img");
  ASSERT_TRUE(restored) << restored.error().message();
  EXPECT_EQ(FileSha(out_dir() / "r.img"), FileSha(image));
}

TEST_F(BackupTest, SingleThreadAndManyThreadsGiveTheSameChunks) {
  const auto image = MakeMixedImage("mixed.img");
  BackupOptions one = Options(image, "vol-a");
  one.threads = 1;
  BackupOptions many = Options(image, "vol-b");
  many.threads = 16;
  auto a = CreateBackup(repository(), one);
  auto b = CreateBackup(repository(), many);
  ASSERT_TRUE(a && b);
  ASSERT_EQ(a->chunks.size(), b->chunks.size());
  for (std::size_t i = 0; i < a->chunks.size(); ++i) {
    EXPECT_EQ(a->chunks[i].is_hole, b->chunks[i].is_hole);
    EXPECT_EQ(a->chunks[i].id, b->chunks[i].id);
  }
  EXPECT_EQ(a->image_digest, b->image_digest);
}

TEST_F(BackupTest, ExplicitBackupIdAndNoOverwrite) {
  const auto image = MakeMixedImage("mixed.img");
  BackupOptions o = Options(image);
  o.backup_id = "nightly-2024-01-01";
  auto m = CreateBackup(repository(), o);
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_EQ(m->backup_id, "nightly-2024-01-01");
  const std::string manifest = *local_->Get(repo::ManifestKey("vol-1", o.backup_id));

  testutil::PatchFile(image, 0, "changed");
  auto again = CreateBackup(repository(), o);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().kind(), ErrorKind::kAlreadyExists);
  EXPECT_EQ(*local_->Get(repo::ManifestKey("vol-1", o.backup_id)), manifest);
}

TEST_F(BackupTest, InvalidOptionsAreRejectedBeforeAnyWrite) {
  const auto image = MakeMixedImage("mixed.img");
  const int puts = faults_->calls(StoreOp::kPut);  // the store's config
  auto expect_invalid = [&](BackupOptions o, const std::string& what) {
    auto m = CreateBackup(repository(), o);
    ASSERT_FALSE(m) << what;
    EXPECT_EQ(m.error().kind(), ErrorKind::kInvalidArgument) << what << ": " << m.error().message();
  };
  for (const std::string& volume :
       std::vector<std::string>{"", "a/b", ".hidden", "..", "sp ace", std::string(129, 'v')}) {
    BackupOptions o = Options(image, volume);
    expect_invalid(o, "volume '" + volume + "'");
  }
  BackupOptions o = Options(image);
  o.backup_id = "../escape";
  expect_invalid(o, "backup id");
  o = Options(image);
  o.chunk_size = kChunk / 2;
  expect_invalid(o, "chunk size below minimum");
  o.chunk_size = repo::kMaxChunkSize * 2;
  expect_invalid(o, "chunk size above maximum");
  o = Options(image);
  o.zstd_level = 0;
  expect_invalid(o, "zstd level 0");
  o.zstd_level = 20;
  expect_invalid(o, "zstd level 20");
  o = Options(dir_.path());
  expect_invalid(o, "image is a directory");
  EXPECT_EQ(faults_->calls(StoreOp::kPut), puts);
  EXPECT_EQ(StoredChunks(), 0u);
  EXPECT_EQ(StoredManifests(), 0u);
}

TEST_F(BackupTest, MissingImageIsNotFound) {
  auto m = Backup(dir_ / "no-such.img");
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().kind(), ErrorKind::kNotFound);
  EXPECT_EQ(StoredManifests(), 0u);
}

TEST_F(BackupTest, PutFailureWritesNoManifestAndNextBackupReusesChunks) {
  constexpr std::size_t kChunks = 40;
  const auto image =
      MakeImage("data.img", kChunks * kChunk, {{0, kChunks * kChunk, Fill::kRandom}});
  // Fail the 11th chunk upload.
  std::atomic<int> chunk_puts{0};
  faults_->SetRule([&](StoreOp op, std::string_view key) -> std::optional<Error> {
    if (op == StoreOp::kPut && key.starts_with("chunks/") && ++chunk_puts == 11)
      return Error(ErrorKind::kIo, "injected: disk full");
    return std::nullopt;
  });
  auto failed = Backup(image);
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().kind(), ErrorKind::kIo);
  EXPECT_THAT(failed.error().message(), HasSubstr("injected"));
  EXPECT_EQ(StoredManifests(), 0u);
  const std::size_t survived = StoredChunks();
  EXPECT_GE(survived, 10u);
  EXPECT_LT(survived, kChunks);
  auto listed = repository().ListBackups();
  ASSERT_TRUE(listed);
  EXPECT_TRUE(listed->empty());

  faults_->Clear();
  const repo::Manifest m = BackupOrDie(image);
  EXPECT_EQ(m.stats.chunks_uploaded, kChunks - survived);
  EXPECT_EQ(StoredChunks(), kChunks);
  auto restored = Restore(m, out_dir() / "r.img");
  ASSERT_TRUE(restored) << restored.error().message();
  EXPECT_EQ(FileSha(out_dir() / "r.img"), FileSha(image));
}

// On a local store the chunks go through one batch: none is visible (and so
// none can be trusted by another backup's HEAD) before all are durable, and
// then all are, before the manifest.
TEST_F(BackupTest, ChunksAreStagedUntilAllAreStoredThenCommittedBeforeTheManifest) {
  constexpr std::size_t kChunks = 12;
  const auto image =
      MakeImage("data.img", kChunks * kChunk, {{0, kChunks * kChunk, Fill::kRandom}});
  std::atomic<int> chunk_puts{0};
  std::atomic<std::size_t> visible_during_puts{0};
  std::atomic<std::size_t> visible_at_manifest{0};
  faults_->SetRule([&](StoreOp op, std::string_view key) -> std::optional<Error> {
    if (op != StoreOp::kPut) return std::nullopt;
    if (key.starts_with("chunks/")) {
      ++chunk_puts;
      visible_during_puts = std::max(visible_during_puts.load(), StoredChunks());
    } else if (key.find(".manifest") != std::string_view::npos) {
      visible_at_manifest = StoredChunks();
    }
    return std::nullopt;
  });
  const repo::Manifest m = BackupOrDie(image);
  EXPECT_EQ(chunk_puts.load(), static_cast<int>(kChunks));
  EXPECT_EQ(visible_during_puts.load(), 0u);
  EXPECT_EQ(visible_at_manifest.load(), kChunks);
  EXPECT_EQ(faults_->calls(StoreOp::kCommit), 1);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "store/.staging") &&
               !std::filesystem::is_empty(dir_ / "store/.staging"));
  auto restored = Restore(m, out_dir() / "r.img");
  ASSERT_TRUE(restored) << restored.error().message();
  EXPECT_EQ(FileSha(out_dir() / "r.img"), FileSha(image));
}

TEST_F(BackupTest, ACommitFailureWritesNoManifest) {
  const auto image = MakeMixedImage("mixed.img");
  faults_->SetRule([](StoreOp op, std::string_view) -> std::optional<Error> {
    if (op == StoreOp::kCommit) return Error(ErrorKind::kIo, "injected: fdatasync failed");
    return std::nullopt;
  });
  auto m = Backup(image);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().kind(), ErrorKind::kIo);
  EXPECT_EQ(faults_->calls(StoreOp::kCommit), 1) << "a failed commit is not tried again";
  EXPECT_EQ(StoredManifests(), 0u);
  EXPECT_EQ(StoredChunks(), 0u);
  faults_->Clear();
  const repo::Manifest again = BackupOrDie(image);
  auto restored = Restore(again, out_dir() / "r.img");
  ASSERT_TRUE(restored) << restored.error().message();
  EXPECT_EQ(FileSha(out_dir() / "r.img"), FileSha(image));
}

TEST_F(BackupTest, HeadFailureWritesNoManifest) {
  const auto image = MakeMixedImage("mixed.img");
  faults_->FailMatching(StoreOp::kHead, "chunks/", ErrorKind::kTransient);
  auto m = Backup(image);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().kind(), ErrorKind::kTransient);
  EXPECT_EQ(StoredManifests(), 0u);
}

TEST_F(BackupTest, ManifestPutFailureLeavesOnlyChunks) {
  const auto image = MakeMixedImage("mixed.img");
  faults_->FailMatching(StoreOp::kPut, ".manifest", ErrorKind::kTransient);
  auto m = Backup(image);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().kind(), ErrorKind::kTransient);
  EXPECT_EQ(StoredManifests(), 0u);
  EXPECT_GT(StoredChunks(), 0u);
  faults_->Clear();
  const repo::Manifest again = BackupOrDie(image);
  EXPECT_EQ(again.stats.chunks_uploaded, 0u);
}

TEST_F(BackupTest, CancelFromProgressCallback) {
  constexpr std::size_t kChunks = 150;
  const auto image =
      MakeImage("data.img", kChunks * kChunk, {{0, kChunks * kChunk, Fill::kRandom}});
  SlowPuts(std::chrono::milliseconds(3));
  CancelFlag cancel{false};
  int calls = 0;
  BackupOptions o = Options(image);
  o.threads = 2;
  o.cancel = &cancel;
  o.progress = [&](const Progress&) {
    ++calls;
    cancel = true;
  };
  auto m = CreateBackup(repository(), o);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().kind(), ErrorKind::kCancelled);
  EXPECT_GE(calls, 1);
  EXPECT_EQ(StoredManifests(), 0u);
  EXPECT_LT(StoredChunks(), kChunks) << "cancellation should stop the upload early";

  // Nothing half-written: the next backup works and reuses what was stored.
  faults_->Clear();
  const std::size_t stored = StoredChunks();
  const repo::Manifest done = BackupOrDie(image);
  EXPECT_EQ(done.stats.chunks_uploaded, kChunks - stored);
}

TEST_F(BackupTest, CancelBeforeStartUploadsNothing) {
  const auto image = MakeMixedImage("mixed.img");
  CancelFlag cancel{true};
  BackupOptions o = Options(image);
  o.cancel = &cancel;
  auto m = CreateBackup(repository(), o);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().kind(), ErrorKind::kCancelled);
  EXPECT_EQ(StoredChunks(), 0u);
  EXPECT_EQ(StoredManifests(), 0u);
}

TEST_F(BackupTest, ProgressReachesTotal) {
  constexpr std::size_t kChunks = 120;
  const auto image = MakeImage("data.img", kChunks * kChunk + 99,
                               {{0, 60 * kChunk, Fill::kRandom}, {90 * kChunk, 10, Fill::kText}});
  SlowPuts(std::chrono::milliseconds(5));
  std::mutex mu;
  std::atomic<int> inside{0};
  bool overlapped = false;
  std::vector<Progress> seen;
  std::vector<std::string> phases;
  BackupOptions o = Options(image);
  o.threads = 2;
  o.progress = [&](const Progress& p) {
    if (inside.fetch_add(1) != 0) overlapped = true;
    {
      std::lock_guard lock(mu);
      seen.push_back(p);
      phases.emplace_back(p.phase);
    }
    inside.fetch_sub(1);
  };
  const repo::Manifest m = *CreateBackup(repository(), o);
  ASSERT_FALSE(seen.empty());
  EXPECT_FALSE(overlapped) << "progress must be called from one thread at a time";
  EXPECT_GE(seen.size(), 2u) << "expected reports while the backup ran, not only at the end";
  const std::uint64_t size = std::filesystem::file_size(image);
  std::uint64_t max_done = 0;
  std::uint64_t last_done_in_phase = 0;
  std::string_view last_phase;
  for (const Progress& p : seen) {
    EXPECT_EQ(p.bytes_total, size);
    EXPECT_LE(p.bytes_done, p.bytes_total);
    EXPECT_LE(p.chunks_done, p.chunks_total);
    if (p.phase == last_phase) {
      EXPECT_GE(p.bytes_done, last_done_in_phase) << "went backwards";
    }
    last_phase = p.phase;
    last_done_in_phase = p.bytes_done;
    max_done = std::max(max_done, p.bytes_done);
  }
  EXPECT_EQ(max_done, size);
  EXPECT_EQ(seen.back().bytes_done, size);
  EXPECT_EQ(seen.back().chunks_done, seen.back().chunks_total);
  EXPECT_EQ(seen.back().chunks_total, m.chunks.size());
  EXPECT_EQ(seen.back().bytes_transferred, m.stats.bytes_uploaded);
  EXPECT_THAT(phases, ::testing::Contains("backup"));
}

TEST_F(BackupTest, ImageChangedDuringBackupIsRefused) {
  constexpr std::size_t kChunks = 100;
  const auto image =
      MakeImage("data.img", kChunks * kChunk, {{0, kChunks * kChunk, Fill::kRandom}});
  SlowPuts(std::chrono::milliseconds(5));
  bool patched = false;
  BackupOptions o = Options(image);
  o.threads = 2;
  o.progress = [&](const Progress& p) {
    if (!patched && p.phase == "backup") {
      patched = true;
      testutil::PatchFile(image, 5, "written while backing up");
    }
  };
  auto m = CreateBackup(repository(), o);
  ASSERT_TRUE(patched);
  ASSERT_FALSE(m) << "a backup of an image that changed while read must not commit";
  EXPECT_EQ(StoredManifests(), 0u);
}

TEST_F(BackupTest, CorruptPreviousManifestDoesNotBlockNextBackup) {
  const auto image = MakeMixedImage("mixed.img");
  const repo::Manifest first = BackupOrDie(image);
  CorruptObject(repo::ManifestKey("vol-1", first.backup_id));
  const repo::Manifest second = BackupOrDie(image);
  // The corrupt manifest cannot vouch for its chunks, but HEAD finds them.
  EXPECT_EQ(second.stats.chunks_uploaded, 0u);
  auto restored = Restore(second, out_dir() / "r.img");
  ASSERT_TRUE(restored) << restored.error().message();
  EXPECT_EQ(FileSha(out_dir() / "r.img"), FileSha(image));
}

TEST_F(BackupTest, DefaultThreadsIsReasonable) {
  EXPECT_GE(DefaultThreads(), 1);
  EXPECT_LE(DefaultThreads(), 256);
}

// The chunk-count bound is checked before the backup reads or stores
// anything: an image past what a manifest holds fails at once with a clear
// error naming the chunk size that would do. A small injected bound stands
// for the format's ~58 M chunks.
TEST_F(BackupTest, ImageOfTooManyChunksFailsBeforeAnyWork) {
  const auto image =
      MakeImage("ten.img", 10 * std::uint64_t{kChunk}, {{0, 10 * kChunk, Fill::kRandom}});
  BackupOptions o = Options(image);
  o.max_chunks = 9;
  auto m = CreateBackup(repository(), o);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_THAT(m.error().message(), HasSubstr("more than a manifest holds (9)"));
  EXPECT_THAT(m.error().message(),
              HasSubstr("chunk size of at least " +
                        std::to_string(MinChunkSizeFor(10 * std::uint64_t{kChunk}, 9))));
  auto chunks = local_->List("chunks/");
  ASSERT_TRUE(chunks);
  EXPECT_TRUE(chunks->empty());
  auto manifests = local_->List(repo::kVolumesPrefix);
  ASSERT_TRUE(manifests);
  EXPECT_TRUE(manifests->empty());

  o.max_chunks = 10;
  auto fits = CreateBackup(repository(), o);
  ASSERT_TRUE(fits) << fits.error().message();
  EXPECT_EQ(fits->chunks.size(), 10u);
}

TEST(BackupLimitsTest, MinChunkSizeFor) {
  EXPECT_EQ(MinChunkSizeFor(0, 10), repo::kMinChunkSize);
  EXPECT_EQ(MinChunkSizeFor(100ull << 20, 10), 10ull << 20);
  EXPECT_EQ(MinChunkSizeFor((100ull << 20) + 1, 10), (10ull << 20) + 4096);
  // 16 TiB fits the format's limit with chunks of about 300 KiB.
  const std::uint64_t for_16_tib = MinChunkSizeFor(16ull << 40);
  EXPECT_LT(for_16_tib, 512u << 10);
  EXPECT_LE(repo::ChunkCount(16ull << 40, static_cast<std::uint32_t>(for_16_tib)),
            repo::kMaxManifestChunks);
  EXPECT_GT(repo::ChunkCount(16ull << 40, static_cast<std::uint32_t>(for_16_tib - 4096)),
            repo::kMaxManifestChunks);
}

}  // namespace
}  // namespace kindling::engine
