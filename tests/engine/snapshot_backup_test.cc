// Snapshots and changed-block tracking on real filesystems: XFS with reflink
// and btrfs on loop devices (testutil/loop_fs.h), one mounted filesystem per
// suite, a folder per test. The store lives on /tmp.
//
// Every backup here runs with snapshot and changed blocks on and with
// reread_skipped, so a chunk skipped as unchanged that did change fails the
// backup (kInternal); every backup is restored and compared byte for byte
// with the image, and its manifest's image digest with the image's (but for
// the intermediate backups of a very fragmented image, whose digest only is
// checked). ext4 (no reflink) checks the fallback.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/fiemap.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "common/extents.h"
#include "common/files.h"
#include "common/ids.h"
#include "engine/damage.h"
#include "engine/engine_test_base.h"
#include "engine/image_file.h"
#include "engine/snapshots.h"
#include "testutil/loop_fs.h"
#include "testutil/require.h"

namespace kindling::engine {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;
using testutil::Fill;
using testutil::LoopFilesystem;
using testutil::LoopFsKind;

constexpr std::uint64_t kC = kChunk;
constexpr std::uint64_t kTail = 5000;
// The base image: 64 chunks and a tail of 5000 bytes.
constexpr std::uint64_t kImageSize = 64 * kC + kTail;

// Chunks of the base image written whole with random bytes or text: a write
// anywhere in one changes that chunk alone, and reading it reads all of it.
bool FullDataChunk(std::uint64_t index) {
  return index < 16 || (index >= 20 && index < 24) || (index >= 40 && index < 64);
}

// What a descriptor is open on.
fs::path PathOfFd(int fd) {
  std::error_code ec;
  fs::path path = fs::read_symlink("/proc/self/fd/" + std::to_string(fd), ec);
  return ec ? fs::path() : path;
}

// The clone the running backup took (as opposed to the previous snapshot).
bool IsPendingClone(int fd) { return PathOfFd(fd).extension() == ".pending"; }

void PunchHole(const fs::path& path, std::uint64_t offset, std::uint64_t length) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  ASSERT_TRUE(fd.valid()) << path;
  ASSERT_EQ(::fallocate(fd.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                        static_cast<off_t>(offset), static_cast<off_t>(length)),
            0)
      << std::strerror(errno);
}

// A reflink copy of `from` (mode 0400), as a backup's clone would be.
void CloneFile(const fs::path& from, const fs::path& to) {
  UniqueFd src(::open(from.c_str(), O_RDONLY | O_CLOEXEC));
  UniqueFd dst(::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0400));
  ASSERT_TRUE(src.valid() && dst.valid()) << from << " -> " << to;
  auto cloned = DefaultExtentFs().Clone(src.get(), dst.get());
  ASSERT_TRUE(cloned) << cloned.error().message();
}

std::string ReadRange(const fs::path& path, std::uint64_t offset, std::size_t length) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) throw std::runtime_error("open " + path.string());
  std::string data(length, '\0');
  auto got = PreadFull(fd.get(), data.data(), length, offset);
  if (!got || *got != length) throw std::runtime_error("read " + path.string());
  return data;
}

// The mount table (/proc files have no size: read as a stream).
std::string Mounts() {
  std::ifstream in("/proc/self/mounts");
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

unsigned ModeOf(const fs::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

// ---- fault-injecting extent maps ----------------------------------------------

// Every extent map fails, as FIEMAP would on an I/O error.
class FailingMapFs final : public ExtentFsWrapper {
 public:
  FailingMapFs() : ExtentFsWrapper(DefaultExtentFs()) {}
  Result<ExtentMap> Map(int) const override { return IoError("FIEMAP: injected failure"); }
};

// Alters the running backup's clone's map in chosen byte ranges: another
// physical address, or extra flags. The bytes are what they were, so a
// backup that reads those chunks anyway (it must) still restores identical.
class AlteredMapFs final : public ExtentFsWrapper {
 public:
  struct Change {
    std::uint64_t begin = 0;
    std::uint64_t end = 0;
    std::uint64_t physical_shift = 0;
    std::uint32_t add_flags = 0;
  };
  explicit AlteredMapFs(std::vector<Change> changes)
      : ExtentFsWrapper(DefaultExtentFs()), changes_(std::move(changes)) {}

  Result<ExtentMap> Map(int fd) const override {
    KINDLING_ASSIGN_OR_RETURN(ExtentMap map, ExtentFsWrapper::Map(fd));
    if (!IsPendingClone(fd)) return map;
    std::uint64_t altered = 0;
    for (const Change& c : changes_) map = Alter(map, c, altered);
    altered_ = altered;
    return map;
  }
  // Bytes of data the last map of the clone had altered.
  std::uint64_t altered() const { return altered_.load(); }

 private:
  // `map` with the records split at the change's bounds and the part inside
  // altered.
  static ExtentMap Alter(const ExtentMap& map, const Change& c, std::uint64_t& altered) {
    ExtentMap out;
    for (const Extent& e : map) {
      const std::uint64_t end = e.logical + e.length;
      const std::uint64_t cuts[] = {e.logical, std::clamp(c.begin, e.logical, end),
                                    std::clamp(c.end, e.logical, end), end};
      for (int i = 0; i < 3; ++i) {
        if (cuts[i] == cuts[i + 1]) continue;
        Extent piece{cuts[i], e.physical + (cuts[i] - e.logical), cuts[i + 1] - cuts[i], e.flags};
        if (i == 1) {
          piece.physical += c.physical_shift;
          piece.flags |= c.add_flags;
          altered += piece.length;
        }
        out.push_back(piece);
      }
    }
    return out;
  }

  std::vector<Change> changes_;
  mutable std::atomic<std::uint64_t> altered_{0};
};

// Gives the running backup's clone the previous snapshot's map: claims that
// nothing changed, whatever did.
class StaleMapFs final : public ExtentFsWrapper {
 public:
  StaleMapFs() : ExtentFsWrapper(DefaultExtentFs()) {}
  Result<ExtentMap> Map(int fd) const override {
    if (!IsPendingClone(fd)) return ExtentFsWrapper::Map(fd);
    for (const auto& entry : fs::directory_iterator(PathOfFd(fd).parent_path())) {
      if (entry.path().extension() != ".snap") continue;
      UniqueFd snap(::open(entry.path().c_str(), O_RDONLY | O_CLOEXEC));
      if (!snap.valid()) return IoError("open " + entry.path().string());
      return ExtentFsWrapper::Map(snap.get());
    }
    return IoError("no previous snapshot to lie with");
  }
};

// ---- fixture --------------------------------------------------------------------

// One backup and what it reported.
struct BackupRun {
  repo::Manifest m;
  BackupReport report;
};

// The cases, on whatever filesystem the derived fixture mounted.
class SnapshotBackupBase : public EngineTestBase {
 protected:
  // Called by the derived SetUp once the filesystem is known to be there.
  void SetUpOn(LoopFilesystem& lfs) {
    EngineTestBase::SetUp();
    work_ = lfs.NewDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    image_ = work_ / "disk.img";
    folder_ = SnapshotDir::FolderOf(image_);
  }
  void TearDown() override {
    std::error_code ec;
    if (!work_.empty()) fs::remove_all(work_, ec);
  }

  void MakeBaseImage() {
    testutil::MakeSparseFile(image_, kImageSize,
                             {{0, 16 * kC, Fill::kRandom},
                              {20 * kC, 4 * kC, Fill::kText},
                              {24 * kC, 2 * kC, Fill::kZeros},
                              {26 * kC, kC / 2, Fill::kRandom},
                              {40 * kC, 24 * kC + kTail, Fill::kRandom}},
                             /*seed=*/7);
  }

  // Snapshot and changed blocks on, every skipped chunk read again.
  BackupOptions SnapOptions(const std::string& volume = "vol-1") {
    BackupOptions o = Options(image_, volume);
    o.snapshot = Use::kOn;
    o.changed_blocks = Use::kOn;
    o.reread_skipped = true;
    o.threads = 4;
    return o;
  }

  // Backs up with `o`, restores the backup and compares; with a snapshot,
  // checks that it is the only one left, read-only, and holds the image.
  BackupRun BackupAndCheck(BackupOptions o, bool snapshot = true) {
    BackupRun run;
    o.report = &run.report;
    auto m = CreateBackup(repository(), o);
    if (!m) {
      ADD_FAILURE() << "backup failed: " << m.error().message();
      throw std::runtime_error("backup failed: " + m.error().message());
    }
    run.m = std::move(*m);
    if (restore_each_backup_) {
      ExpectRestoresIdentical(run.m);
    } else {
      ExpectDigestMatches(run.m);
    }
    if (snapshot) {
      ExpectOnlySnapshot(run.m.backup_id);
      EXPECT_EQ(run.report.snapshot, folder_ / (run.m.backup_id + ".snap"));
      EXPECT_EQ(FileSha(run.report.snapshot), FileSha(image_)) << "the snapshot holds the image";
    }
    return run;
  }

  // The stored manifest of `m` restores to the image's bytes, and its image
  // digest is the image's.
  void ExpectRestoresIdentical(const repo::Manifest& m) {
    auto stored = repository().LoadManifest(m.volume_id, m.backup_id);
    ASSERT_TRUE(stored) << stored.error().message();
    const fs::path out = out_dir() / (m.backup_id + ".img");
    auto restored = Restore(*stored, out);
    ASSERT_TRUE(restored) << restored.error().message();
    EXPECT_EQ(fs::file_size(out), fs::file_size(image_));
    EXPECT_EQ(FileSha(out), FileSha(image_)) << "restore of " << m.backup_id;
    EXPECT_EQ(restored->image_digest_hex, crypto::DigestHex(stored->image_digest));
    auto digest = DigestImageFile(image_, stored->chunk_size);
    ASSERT_TRUE(digest) << digest.error().message();
    EXPECT_EQ(crypto::DigestHex(*digest), crypto::DigestHex(stored->image_digest));
    EXPECT_EQ(crypto::DigestHex(stored->image_digest), FileDigest(image_, stored->chunk_size));
    std::error_code ec;
    fs::remove(out, ec);
  }

  // The image digest of the stored manifest of `m` is the image's (for
  // images whose every restore would cost too long).
  void ExpectDigestMatches(const repo::Manifest& m) {
    auto stored = repository().LoadManifest(m.volume_id, m.backup_id);
    ASSERT_TRUE(stored) << stored.error().message();
    auto digest = DigestImageFile(image_, stored->chunk_size);
    ASSERT_TRUE(digest) << digest.error().message();
    EXPECT_EQ(crypto::DigestHex(*digest), crypto::DigestHex(stored->image_digest));
  }

  // The folder holds `backup_id`'s snapshot and digests, both 0400, and
  // nothing else.
  void ExpectOnlySnapshot(const std::string& backup_id) {
    EXPECT_THAT(testutil::ListDir(folder_),
                ElementsAre(backup_id + ".digests", backup_id + ".snap"));
    EXPECT_EQ(ModeOf(folder_ / (backup_id + ".snap")), 0400u);
    EXPECT_EQ(ModeOf(folder_ / (backup_id + ".digests")), 0400u);
    EXPECT_EQ(ModeOf(folder_), 0700u);
  }

  static std::uint64_t LengthOf(const repo::Manifest& m, const std::set<std::size_t>& chunks) {
    std::uint64_t sum = 0;
    for (std::size_t i : chunks) sum += m.ChunkLength(i);
    return sum;
  }

  // A changed-blocks backup that read `read` (and skipped every other
  // chunk), reading `bytes_read` bytes of data there.
  static void ExpectChangedBlocks(const BackupRun& run, const std::set<std::size_t>& read,
                                  std::uint64_t bytes_read) {
    const BackupReport& r = run.report;
    EXPECT_EQ(r.read_path, "changed-blocks");
    EXPECT_EQ(r.fallback, "");
    EXPECT_EQ(r.bytes_read, bytes_read);
    EXPECT_EQ(run.m.stats.bytes_read, bytes_read);
    std::uint64_t skipped_chunks = 0;
    std::uint64_t skipped_bytes = 0;
    for (std::size_t i = 0; i < run.m.chunks.size(); ++i) {
      if (run.m.chunks[i].is_hole || read.contains(i)) continue;
      ++skipped_chunks;
      skipped_bytes += run.m.ChunkLength(i);
    }
    EXPECT_EQ(r.chunks_skipped, skipped_chunks);
    EXPECT_EQ(r.bytes_skipped, skipped_bytes);
    // reread_skipped reads every skipped chunk, holes included.
    EXPECT_EQ(r.bytes_reread, run.m.image_size - LengthOf(run.m, read));
  }
  // As above, for chunks that are data in full.
  static void ExpectReadOnly(const BackupRun& run, const std::set<std::size_t>& read) {
    ExpectChangedBlocks(run, read, LengthOf(run.m, read));
  }

  // A backup that read the whole image (no changed blocks), `why` in its
  // fallback.
  static void ExpectFullRead(const BackupRun& run, const std::string& why) {
    EXPECT_EQ(run.report.read_path, "full");
    EXPECT_THAT(run.report.fallback, StartsWith("full read: "));
    EXPECT_THAT(run.report.fallback, HasSubstr(why));
    EXPECT_EQ(run.report.bytes_skipped, 0u);
    EXPECT_EQ(run.report.chunks_skipped, 0u);
    EXPECT_EQ(run.report.bytes_reread, 0u);
    EXPECT_EQ(run.report.bytes_read, run.m.stats.bytes_read);
    EXPECT_GE(run.report.bytes_read, run.m.stats.bytes_data - kC / 2);  // chunk 26 is half hole
  }

  static void ExpectSameChunks(const repo::Manifest& a, const repo::Manifest& b) {
    ASSERT_EQ(a.chunks.size(), b.chunks.size());
    for (std::size_t i = 0; i < a.chunks.size(); ++i) {
      EXPECT_EQ(a.chunks[i].is_hole, b.chunks[i].is_hole) << "chunk " << i;
      if (!a.chunks[i].is_hole && !b.chunks[i].is_hole) {
        EXPECT_EQ(a.chunks[i].id, b.chunks[i].id) << "chunk " << i;
      }
    }
    EXPECT_EQ(a.image_digest, b.image_digest);
  }

  std::size_t BackupCount() {
    auto listed = repository().ListBackups();
    EXPECT_TRUE(listed) << listed.error().message();
    return listed ? listed->size() : 0;
  }

  // ---- the cases -------------------------------------------------------------

  void UnchangedImageReadsNothing() {
    MakeBaseImage();
    int around = 0;
    BackupOptions o = SnapOptions();
    o.around_snapshot = [&](const std::function<Status()>& take) {
      ++around;
      return take();
    };
    const BackupRun first = BackupAndCheck(o);
    EXPECT_EQ(first.report.read_path, "full");
    EXPECT_THAT(first.report.fallback, HasSubstr("no previous snapshot"));
    EXPECT_GT(first.report.bytes_read, 0u);
    EXPECT_EQ(first.report.bytes_read, first.m.stats.bytes_read);
    EXPECT_EQ(first.report.bytes_skipped, 0u);
    EXPECT_EQ(first.report.bytes_reread, 0u);

    const BackupRun second = BackupAndCheck(o);
    EXPECT_EQ(around, 2);
    ExpectChangedBlocks(second, {}, 0);
    EXPECT_EQ(second.report.bytes_skipped, first.m.stats.bytes_data);
    EXPECT_EQ(second.report.chunks_skipped, first.m.stats.chunks_data);
    EXPECT_EQ(second.report.bytes_reread, kImageSize);
    EXPECT_EQ(second.m.stats.chunks_uploaded, 0u);
    EXPECT_EQ(second.m.stats.bytes_data, first.m.stats.bytes_data);
    ExpectSameChunks(first.m, second.m);
  }

  void RandomWritesReadOnlyTheirChunks() {
    MakeBaseImage();
    BackupAndCheck(SnapOptions());
    std::mt19937_64 rng(20240611);
    std::set<std::size_t> touched;
    for (int i = 0; i < 6; ++i) {
      std::uint64_t chunk = 0;
      do {
        chunk = rng() % 64;
      } while (!FullDataChunk(chunk));
      // Any offset at which the 4 KiB stay inside the chunk (mostly unaligned).
      const std::uint64_t offset = chunk * kC + rng() % (kC - 4096 + 1);
      testutil::PatchFile(image_, offset, testutil::RandomData(4096, rng()));
      touched.insert(chunk);
    }
    const BackupRun second = BackupAndCheck(SnapOptions());
    ExpectReadOnly(second, touched);
    EXPECT_EQ(second.m.stats.chunks_uploaded, touched.size());

    // A block written into a hole: that chunk only, and only that block read.
    testutil::PatchFile(image_, 30 * kC + 8192, testutil::RandomData(4096, 31));
    const BackupRun third = BackupAndCheck(SnapOptions());
    ExpectChangedBlocks(third, {30}, 4096);
    EXPECT_FALSE(third.m.chunks[30].is_hole);
  }

  void AppendedImageReadsTheNewChunks() {
    MakeBaseImage();
    BackupAndCheck(SnapOptions());
    // Appended: the old partial last chunk (64) is filled up, 65-67 are new.
    testutil::PatchFile(image_, kImageSize, testutil::RandomData(3 * kC + 777, 41));
    const BackupRun second = BackupAndCheck(SnapOptions());
    ASSERT_EQ(second.m.image_size, 67 * kC + kTail + 777);
    ExpectReadOnly(second, {64, 65, 66, 67});

    // Grown by a hole: the old last chunk is read (it is longer now: its
    // data, 5777 bytes, reads as two 4 KiB blocks), the new ones are holes.
    fs::resize_file(image_, second.m.image_size + 2 * kC);
    const BackupRun third = BackupAndCheck(SnapOptions());
    ASSERT_EQ(third.m.chunks.size(), 70u);
    ExpectChangedBlocks(third, {67, 68, 69}, 8192);
    EXPECT_TRUE(third.m.chunks[68].is_hole);
    EXPECT_TRUE(third.m.chunks[69].is_hole);
  }

  void TruncatedImageReadsOnlyTheNewLastChunk() {
    MakeBaseImage();
    BackupAndCheck(SnapOptions());
    // Cut at a chunk boundary: what is left is unchanged.
    fs::resize_file(image_, 56 * kC);
    const BackupRun second = BackupAndCheck(SnapOptions());
    ASSERT_EQ(second.m.chunks.size(), 56u);
    ExpectChangedBlocks(second, {}, 0);
    // Cut inside a chunk: that chunk (shorter now) is read.
    fs::resize_file(image_, 50 * kC + 1000);
    const BackupRun third = BackupAndCheck(SnapOptions());
    ASSERT_EQ(third.m.chunks.size(), 51u);
    ExpectChangedBlocks(third, {50}, 1000);
  }

  void PunchedHolesAreRead() {
    MakeBaseImage();
    const BackupRun first = BackupAndCheck(SnapOptions());
    PunchHole(image_, 3 * kC, kC);            // a whole chunk
    PunchHole(image_, 41 * kC + 8192, 8192);  // part of one
    PunchHole(image_, 26 * kC, 4096);         // part of the half-hole chunk
    const BackupRun second = BackupAndCheck(SnapOptions());
    EXPECT_FALSE(first.m.chunks[3].is_hole);
    EXPECT_TRUE(second.m.chunks[3].is_hole);
    ExpectChangedBlocks(second, {3, 26, 41}, (kC - 8192) + (kC / 2 - 4096));
  }

  void IdenticalOverwriteRestoresIdentical() {
    MakeBaseImage();
    const BackupRun first = BackupAndCheck(SnapOptions());
    for (const std::uint64_t chunk : {5, 21, 45})
      testutil::PatchFile(image_, chunk * kC, ReadRange(image_, chunk * kC, kC));
    testutil::PatchFile(image_, 10 * kC + 100, ReadRange(image_, 10 * kC + 100, 4096));
    const BackupRun second = BackupAndCheck(SnapOptions());
    // Copy on write moved those blocks: they may be read again (or not, on a
    // filesystem that deduplicates); nothing else is, nothing new is stored.
    EXPECT_EQ(second.report.read_path, "changed-blocks");
    EXPECT_LE(second.report.bytes_read, 4 * kC);
    EXPECT_EQ(second.report.bytes_read + second.report.bytes_skipped, first.m.stats.bytes_data);
    EXPECT_EQ(second.m.stats.chunks_uploaded, 0u);
    ExpectSameChunks(first.m, second.m);
  }

  void RewriteByCpReadsEverything() {
    MakeBaseImage();
    const BackupRun first = BackupAndCheck(SnapOptions());
    // A new file (a real copy: no extent shared) replaces the image.
    const std::string command = "cp --reflink=never '" + image_.string() + "' '" + image_.string() +
                                ".new' && mv '" + image_.string() + ".new' '" + image_.string() +
                                "'";
    ASSERT_EQ(std::system(command.c_str()), 0) << command;
    const BackupRun second = BackupAndCheck(SnapOptions());
    EXPECT_EQ(second.report.read_path, "changed-blocks");
    EXPECT_EQ(second.report.fallback, "");
    EXPECT_EQ(second.report.chunks_skipped, 0u);
    EXPECT_EQ(second.report.bytes_skipped, 0u);
    // Every data chunk read (the written zeros may have become holes).
    EXPECT_GE(second.report.bytes_read, first.report.bytes_read - 2 * kC);
    EXPECT_EQ(second.m.stats.chunks_uploaded, 0u);
    ExpectSameChunks(first.m, second.m);
  }

  void CrashLeftoversAreRemoved() {
    MakeBaseImage();
    const BackupRun first = BackupAndCheck(SnapOptions());
    const std::string id = first.m.backup_id;
    // What backups killed at various points leave: a clone taken by one that
    // never committed, digests written by one killed before renaming its
    // clone (newer than the committed snapshot: must not be taken for it),
    // an older committed pair a commit was killed before deleting, a temp
    // file of WriteFileAtomic.
    const std::string newer = "ffffffff-ffff-7fff-bfff-ffffffffffff";
    const std::string older = "00000000-0000-7000-8000-000000000000";
    CloneFile(image_, folder_ / (newer + ".pending"));
    SnapshotDigests digests{"vol-1", newer, kImageSize, kChunk, {}};
    digests.chunks.resize(65);
    ASSERT_TRUE(
        WriteFileAtomic(folder_ / (newer + ".digests"), EncodeSnapshotDigests(digests), 0400));
    CloneFile(folder_ / (id + ".snap"), folder_ / (older + ".snap"));
    fs::copy_file(folder_ / (id + ".digests"), folder_ / (older + ".digests"));
    testutil::WriteFile(folder_ / ("." + newer + ".digests.tmp-x1y2"), "partial");
    ASSERT_EQ(testutil::ListDir(folder_).size(), 7u);

    testutil::PatchFile(image_, 12 * kC + 300, testutil::RandomData(4096, 5));
    const BackupRun second = BackupAndCheck(SnapOptions());  // checks the folder is clean
    ExpectReadOnly(second, {12});
  }

  void DeletedSnapshotFallsBackToFullRead() {
    MakeBaseImage();
    const BackupRun first = BackupAndCheck(SnapOptions());
    fs::remove(folder_ / (first.m.backup_id + ".snap"));
    const BackupRun second = BackupAndCheck(SnapOptions());
    ExpectFullRead(second, "no previous snapshot");
    EXPECT_EQ(second.report.bytes_read, first.report.bytes_read);
    ExpectSameChunks(first.m, second.m);
    // The snapshot it took serves the next one.
    const BackupRun third = BackupAndCheck(SnapOptions());
    ExpectChangedBlocks(third, {}, 0);
  }

  void CorruptDigestsFallBackToFullRead() {
    MakeBaseImage();
    const BackupRun first = BackupAndCheck(SnapOptions());
    const fs::path digests = folder_ / (first.m.backup_id + ".digests");
    std::string bytes = testutil::ReadFileOrDie(digests);
    bytes[bytes.size() / 2] = static_cast<char>(bytes[bytes.size() / 2] ^ 1);
    fs::permissions(digests, fs::perms::owner_write, fs::perm_options::add);
    testutil::WriteFile(digests, bytes);
    const BackupRun second = BackupAndCheck(SnapOptions());
    ExpectFullRead(second, "snapshot digests");
    ExpectSameChunks(first.m, second.m);
  }

  void MissingPreviousManifestFallsBackToFullRead() {
    MakeBaseImage();
    const BackupRun first = BackupAndCheck(SnapOptions());
    DeleteObject(repo::ManifestKey("vol-1", first.m.backup_id));
    const BackupRun second = BackupAndCheck(SnapOptions());
    ExpectFullRead(second, "cannot be read from this store");
  }

  void AnotherVolumesSnapshotFallsBackToFullRead() {
    MakeBaseImage();
    BackupAndCheck(SnapOptions("vol-1"));
    const BackupRun second = BackupAndCheck(SnapOptions("vol-2"));
    ExpectFullRead(second, "another volume");
  }

  void OtherChunkSizeFallsBackToFullRead() {
    MakeBaseImage();
    BackupAndCheck(SnapOptions());
    BackupOptions o = SnapOptions();
    o.chunk_size = 2 * kChunk;
    const BackupRun second = BackupAndCheck(o);
    EXPECT_EQ(second.m.chunk_size, 2 * kChunk);
    ExpectFullRead(second, "another chunk size");
    testutil::PatchFile(image_, 7 * kC, testutil::RandomData(100, 8));
    const BackupRun third = BackupAndCheck(o);
    ExpectReadOnly(third, {3});  // 128 KiB chunks now
  }

  void ExtentMapErrorFallsBackToFullRead() {
    MakeBaseImage();
    const BackupRun first = BackupAndCheck(SnapOptions());
    testutil::PatchFile(image_, 2 * kC, testutil::RandomData(4096, 9));
    const FailingMapFs failing;
    BackupOptions o = SnapOptions();
    o.extent_fs = &failing;
    const BackupRun second = BackupAndCheck(o);
    ExpectFullRead(second, "extent map: ");
    EXPECT_THAT(second.report.fallback, HasSubstr("injected failure"));
    EXPECT_EQ(second.report.bytes_read, first.report.bytes_read);
    const BackupRun third = BackupAndCheck(SnapOptions());
    ExpectChangedBlocks(third, {}, 0);
  }

  void AlteredExtentMapsReadThoseChunks() {
    MakeBaseImage();
    BackupAndCheck(SnapOptions());
    const AlteredMapFs altered({
        {7 * kC + 8192, 7 * kC + 12288, std::uint64_t{1} << 40, 0},    // moved
        {45 * kC, 46 * kC, 0, FIEMAP_EXTENT_UNKNOWN},                  // unknown
        {52 * kC + 4096, 52 * kC + 8192, 0, FIEMAP_EXTENT_DELALLOC},   // delalloc
        {60 * kC + 4096, 60 * kC + 8192, 0, FIEMAP_EXTENT_UNWRITTEN},  // unwritten in one only
    });
    BackupOptions o = SnapOptions();
    o.extent_fs = &altered;
    const BackupRun second = BackupAndCheck(o);
    EXPECT_EQ(altered.altered(), 3 * 4096 + kC) << "the changes hit data";
    ExpectReadOnly(second, {7, 45, 52, 60});
  }

  void StaleMapIsCaughtByRereadSkipped() {
    MakeBaseImage();
    const BackupRun first = BackupAndCheck(SnapOptions());
    testutil::PatchFile(image_, 12 * kC + 777, testutil::RandomData(4096, 3));
    const StaleMapFs stale;
    BackupOptions o = SnapOptions();
    o.extent_fs = &stale;
    auto lied = CreateBackup(repository(), o);
    ASSERT_FALSE(lied);
    EXPECT_EQ(lied.error().kind(), ErrorKind::kInternal) << lied.error().message();
    EXPECT_THAT(lied.error().message(), HasSubstr("offset " + std::to_string(12 * kC)));
    EXPECT_EQ(BackupCount(), 1u) << "nothing committed";
    ExpectOnlySnapshot(first.m.backup_id);
    // The true maps find the change.
    const BackupRun second = BackupAndCheck(SnapOptions());
    ExpectReadOnly(second, {12});
  }

  void FailedBackupKeepsThePreviousSnapshot() {
    MakeBaseImage();
    const BackupRun first = BackupAndCheck(SnapOptions());
    testutil::PatchFile(image_, 33 * kC, testutil::RandomData(4096, 4));  // a hole before
    BackupOptions o = SnapOptions();
    o.backup_id = NewUuidV7();
    faults_->FailMatching(testutil::StoreOp::kPut, repo::ManifestKey("vol-1", o.backup_id),
                          ErrorKind::kIo);
    auto failed = CreateBackup(repository(), o);
    ASSERT_FALSE(failed);
    faults_->Clear();
    ExpectOnlySnapshot(first.m.backup_id);
    // A pause hook that fails, before or after taking the clone.
    o.backup_id.clear();
    o.around_snapshot = [](const std::function<Status()>&) -> Status {
      return IoError("cannot pause the VM");
    };
    auto unpaused = CreateBackup(repository(), o);
    ASSERT_FALSE(unpaused);
    EXPECT_THAT(unpaused.error().message(), HasSubstr("cannot pause the VM"));
    ExpectOnlySnapshot(first.m.backup_id);
    o.around_snapshot = [](const std::function<Status()>& take) -> Status {
      if (auto taken = take(); !taken) return taken;
      return IoError("cannot resume the VM");
    };
    auto unresumed = CreateBackup(repository(), o);
    ASSERT_FALSE(unresumed);
    EXPECT_THAT(unresumed.error().message(), HasSubstr("cannot resume the VM"));
    ExpectOnlySnapshot(first.m.backup_id);
    EXPECT_EQ(BackupCount(), 1u);

    const BackupRun second = BackupAndCheck(SnapOptions());
    ExpectChangedBlocks(second, {33}, 4096);
  }

  void DamagedChunkInAnUnchangedRangeIsStoredAgain() {
    MakeBaseImage();
    const BackupRun first = BackupAndCheck(SnapOptions());
    const repo::ChunkId victim = first.m.chunks[10].id;
    CorruptObject(repo::ChunkKey(victim));
    auto recorded = RecordChunkDamage(repository(), victim, "vol-1", first.m.backup_id);
    ASSERT_TRUE(recorded && *recorded) << "the corrupt chunk is recorded";

    std::vector<repo::ChunkId> healed;
    BackupOptions o = SnapOptions();
    o.healed = &healed;
    const BackupRun second = BackupAndCheck(o);
    ExpectReadOnly(second, {10});
    EXPECT_THAT(healed, ElementsAre(victim));
    EXPECT_EQ(second.m.stats.chunks_uploaded, 1u);
    auto left = ListDamagedChunks(repository());
    ASSERT_TRUE(left);
    EXPECT_THAT(*left, IsEmpty());
    // The first backup, which references the same chunk, is repaired too.
    ExpectRestoresIdentical(first.m);
  }

  void PreallocatedRangeReadsOnlyTheWrittenChunks() {
    MakeBaseImage();
    {
      UniqueFd fd(::open(image_.c_str(), O_WRONLY | O_CLOEXEC));
      ASSERT_TRUE(fd.valid());
      ASSERT_EQ(::fallocate(fd.get(), 0, 28 * kC, 10 * kC), 0) << std::strerror(errno);
    }
    const BackupRun first = BackupAndCheck(SnapOptions());
    for (std::size_t i = 28; i < 38; ++i) EXPECT_TRUE(first.m.chunks[i].is_hole) << i;
    // Written into the preallocated (unwritten) blocks: those chunks only;
    // the rest is unwritten in both snapshots at the same place.
    testutil::PatchFile(image_, 33 * kC + 8192, testutil::RandomData(4096, 51));
    testutil::PatchFile(image_, 36 * kC, testutil::RandomData(4096, 52));
    const BackupRun second = BackupAndCheck(SnapOptions());
    ExpectChangedBlocks(second, {33, 36}, 2 * 4096);
    EXPECT_FALSE(second.m.chunks[33].is_hole);
    EXPECT_TRUE(second.m.chunks[34].is_hole);
  }

  void ManyExtentsAreMappedAcrossFiemapCalls() {
    // 1100 data blocks, each between two holes: 1100 extents, three FIEMAP
    // calls' worth (extents.cc asks for 512 records at a time).
    constexpr std::uint64_t kBlocks = 1100;
    testutil::MakeSparseFile(image_, 2 * kBlocks * 4096 + 100, {});
    {
      UniqueFd fd(::open(image_.c_str(), O_WRONLY | O_CLOEXEC));
      ASSERT_TRUE(fd.valid());
      const std::string data = testutil::RandomData(kBlocks * 4096, 61);
      for (std::uint64_t b = 0; b < kBlocks; ++b)
        ASSERT_TRUE(PwriteFull(fd.get(), data.data() + b * 4096, 4096, 2 * b * 4096));
      ASSERT_EQ(::fsync(fd.get()), 0);
    }
    UniqueFd fd(::open(image_.c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(fd.valid());
    auto map = DefaultExtentFs().Map(fd.get());
    ASSERT_TRUE(map) << map.error().message();
    ASSERT_EQ(map->size(), kBlocks);
    for (std::uint64_t b = 0; b < kBlocks; ++b) {
      EXPECT_EQ((*map)[b].logical, 2 * b * 4096) << b;
      EXPECT_EQ((*map)[b].length, 4096u) << b;
    }
    EXPECT_NE(map->back().flags & FIEMAP_EXTENT_LAST, 0u);
    auto info = DefaultExtentFs().Info(fd.get());
    ASSERT_TRUE(info) << info.error().message();
    EXPECT_NE(info->kind, FsKind::kOther) << info->name;

    // Restoring a file of so many 4 KiB pieces is slow: the last backup only.
    restore_each_backup_ = false;
    BackupAndCheck(SnapOptions());
    const BackupRun unchanged = BackupAndCheck(SnapOptions());
    ExpectChangedBlocks(unchanged, {}, 0);
    // One block rewritten in chunk 5 and one in chunk 60.
    testutil::PatchFile(image_, 5 * kC + 2 * 4096, testutil::RandomData(4096, 62));
    testutil::PatchFile(image_, 60 * kC, testutil::RandomData(4096, 63));
    restore_each_backup_ = true;
    const BackupRun second = BackupAndCheck(SnapOptions());
    // Half of each of those chunks is data.
    ExpectChangedBlocks(second, {5, 60}, kC);
  }

  void WritesAfterTheCloneAreNotInTheBackup() {
    MakeBaseImage();
    BackupAndCheck(SnapOptions());
    const std::string before = FileSha(image_);
    // The "VM" resumes right after the clone and writes.
    BackupOptions o = SnapOptions();
    o.around_snapshot = [&](const std::function<Status()>& take) -> Status {
      if (auto taken = take(); !taken) return taken;
      testutil::PatchFile(image_, 9 * kC, testutil::RandomData(kC, 71));
      testutil::PatchFile(image_, kImageSize, testutil::RandomData(3000, 72));
      return OkStatus();
    };
    BackupReport report;
    o.report = &report;
    auto m = CreateBackup(repository(), o);
    ASSERT_TRUE(m) << m.error().message();
    EXPECT_EQ(m->image_size, kImageSize);
    EXPECT_EQ(report.bytes_read, 0u) << "the clone is the unchanged image";
    EXPECT_EQ(FileSha(report.snapshot), before);
    const fs::path out = out_dir() / "at-clone.img";
    ASSERT_TRUE(Restore(*m, out));
    EXPECT_EQ(FileSha(out), before);
    // The next backup finds both writes.
    const BackupRun next = BackupAndCheck(SnapOptions());
    ExpectReadOnly(next, {9, 64});
  }

  void TinyAndEmptyImagesRoundTrip() {
    // Empty, inline-sized (btrfs keeps up to 2 KiB in the metadata: no
    // address), a few blocks with an unaligned end, one chunk exactly.
    for (const std::uint64_t size :
         {std::uint64_t{0}, std::uint64_t{100}, std::uint64_t{3000}, std::uint64_t{kC}}) {
      SCOPED_TRACE(size);
      std::error_code ec;
      fs::remove_all(folder_, ec);
      testutil::MakeSparseFile(image_, size,
                               size == 0 ? std::vector<testutil::Extent>{}
                                         : std::vector<testutil::Extent>{{0, size, Fill::kRandom}});
      const BackupRun first = BackupAndCheck(SnapOptions());
      EXPECT_EQ(first.m.image_size, size);
      const BackupRun second = BackupAndCheck(SnapOptions());
      EXPECT_EQ(second.report.read_path, "changed-blocks");
      EXPECT_EQ(second.report.bytes_read + second.report.bytes_skipped, size);
      testutil::PatchFile(image_, size / 2, testutil::RandomData(10, size + 1));
      const BackupRun third = BackupAndCheck(SnapOptions());
      EXPECT_EQ(third.report.read_path, "changed-blocks");
      EXPECT_EQ(third.report.bytes_read, std::max<std::uint64_t>(size, size / 2 + 10));
    }
  }

  void OnlyOneReadOnlySnapshotRemains() {
    MakeBaseImage();
    std::mt19937_64 rng(77);
    for (int round = 0; round < 5; ++round) {
      SCOPED_TRACE(round);
      std::set<std::size_t> changed;
      if (round > 0) {
        const std::uint64_t chunk = 40 + rng() % 24;
        testutil::PatchFile(image_, chunk * kC + 4096 * (rng() % 15),
                            testutil::RandomData(4096, rng()));
        changed.insert(chunk);
      }
      const BackupRun run = BackupAndCheck(SnapOptions());  // checks the folder
      if (round > 0) ExpectReadOnly(run, changed);
    }
    EXPECT_EQ(BackupCount(), 5u);
    // The folder is locked while a backup of the image runs.
    auto held = SnapshotDir::Open(image_);
    ASSERT_TRUE(held) << held.error().message();
    auto refused = CreateBackup(repository(), SnapOptions());
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().kind(), ErrorKind::kFailedPrecondition);
    EXPECT_THAT(refused.error().message(), HasSubstr("another backup"));
  }

  fs::path work_;
  fs::path image_;
  fs::path folder_;
  bool restore_each_backup_ = true;
};

// One filesystem of `kKind` mounted for the whole suite.
template <LoopFsKind kKind>
class OnLoopFs : public SnapshotBackupBase {
 protected:
  static void SetUpTestSuite() { lfs_ = LoopFilesystem::Create(kKind, &why_); }
  static void TearDownTestSuite() { lfs_.reset(); }
  void SetUp() override {
    KINDLING_REQUIRE(lfs_ != nullptr, why_);
    SetUpOn(*lfs_);
  }

  static inline std::unique_ptr<LoopFilesystem> lfs_;
  static inline std::string why_;
};

template <typename On>
class SnapshotBackupTest : public OnLoopFs<On::kKind> {};

struct OnXfs {
  static constexpr LoopFsKind kKind = LoopFsKind::kXfs;
};
struct OnBtrfs {
  static constexpr LoopFsKind kKind = LoopFsKind::kBtrfs;
};
using ReflinkFilesystems = ::testing::Types<OnXfs, OnBtrfs>;
class FilesystemName {
 public:
  template <typename On>
  static std::string GetName(int) {
    return std::string(testutil::LoopFsName(On::kKind));
  }
};
TYPED_TEST_SUITE(SnapshotBackupTest, ReflinkFilesystems, FilesystemName);

TYPED_TEST(SnapshotBackupTest, UnchangedImageReadsNothing) { this->UnchangedImageReadsNothing(); }
TYPED_TEST(SnapshotBackupTest, RandomWritesReadOnlyTheirChunks) {
  this->RandomWritesReadOnlyTheirChunks();
}
TYPED_TEST(SnapshotBackupTest, AppendedImageReadsTheNewChunks) {
  this->AppendedImageReadsTheNewChunks();
}
TYPED_TEST(SnapshotBackupTest, TruncatedImageReadsOnlyTheNewLastChunk) {
  this->TruncatedImageReadsOnlyTheNewLastChunk();
}
TYPED_TEST(SnapshotBackupTest, PunchedHolesAreRead) { this->PunchedHolesAreRead(); }
TYPED_TEST(SnapshotBackupTest, IdenticalOverwriteRestoresIdentical) {
  this->IdenticalOverwriteRestoresIdentical();
}
TYPED_TEST(SnapshotBackupTest, RewriteByCpReadsEverything) { this->RewriteByCpReadsEverything(); }
TYPED_TEST(SnapshotBackupTest, CrashLeftoversAreRemoved) { this->CrashLeftoversAreRemoved(); }
TYPED_TEST(SnapshotBackupTest, DeletedSnapshotFallsBackToFullRead) {
  this->DeletedSnapshotFallsBackToFullRead();
}
TYPED_TEST(SnapshotBackupTest, CorruptDigestsFallBackToFullRead) {
  this->CorruptDigestsFallBackToFullRead();
}
TYPED_TEST(SnapshotBackupTest, MissingPreviousManifestFallsBackToFullRead) {
  this->MissingPreviousManifestFallsBackToFullRead();
}
TYPED_TEST(SnapshotBackupTest, AnotherVolumesSnapshotFallsBackToFullRead) {
  this->AnotherVolumesSnapshotFallsBackToFullRead();
}
TYPED_TEST(SnapshotBackupTest, OtherChunkSizeFallsBackToFullRead) {
  this->OtherChunkSizeFallsBackToFullRead();
}
TYPED_TEST(SnapshotBackupTest, ExtentMapErrorFallsBackToFullRead) {
  this->ExtentMapErrorFallsBackToFullRead();
}
TYPED_TEST(SnapshotBackupTest, AlteredExtentMapsReadThoseChunks) {
  this->AlteredExtentMapsReadThoseChunks();
}
TYPED_TEST(SnapshotBackupTest, StaleMapIsCaughtByRereadSkipped) {
  this->StaleMapIsCaughtByRereadSkipped();
}
TYPED_TEST(SnapshotBackupTest, FailedBackupKeepsThePreviousSnapshot) {
  this->FailedBackupKeepsThePreviousSnapshot();
}
TYPED_TEST(SnapshotBackupTest, DamagedChunkInAnUnchangedRangeIsStoredAgain) {
  this->DamagedChunkInAnUnchangedRangeIsStoredAgain();
}
TYPED_TEST(SnapshotBackupTest, PreallocatedRangeReadsOnlyTheWrittenChunks) {
  this->PreallocatedRangeReadsOnlyTheWrittenChunks();
}
TYPED_TEST(SnapshotBackupTest, ManyExtentsAreMappedAcrossFiemapCalls) {
  this->ManyExtentsAreMappedAcrossFiemapCalls();
}
TYPED_TEST(SnapshotBackupTest, WritesAfterTheCloneAreNotInTheBackup) {
  this->WritesAfterTheCloneAreNotInTheBackup();
}
TYPED_TEST(SnapshotBackupTest, TinyAndEmptyImagesRoundTrip) { this->TinyAndEmptyImagesRoundTrip(); }
TYPED_TEST(SnapshotBackupTest, OnlyOneReadOnlySnapshotRemains) {
  this->OnlyOneReadOnlySnapshotRemains();
}

// ---- ext4: no reflink ------------------------------------------------------------

class SnapshotExt4FallbackTest : public OnLoopFs<LoopFsKind::kExt4> {};

TEST_F(SnapshotExt4FallbackTest, AutoReadsTheLiveImageAndLeavesNoFolder) {
  MakeBaseImage();
  BackupOptions o = SnapOptions();
  o.snapshot = Use::kAuto;
  o.changed_blocks = Use::kAuto;
  for (int round = 0; round < 2; ++round) {
    SCOPED_TRACE(round);
    const BackupRun run = BackupAndCheck(o, /*snapshot=*/false);
    EXPECT_EQ(run.report.read_path, "full");
    EXPECT_EQ(run.report.snapshot, fs::path());
    EXPECT_THAT(run.report.fallback, HasSubstr("cannot clone"));
    EXPECT_EQ(run.report.bytes_skipped, 0u);
    EXPECT_EQ(run.report.chunks_skipped, 0u);
    EXPECT_EQ(run.report.bytes_read, run.m.stats.bytes_read);
    EXPECT_GT(run.report.bytes_read, 0u);
    EXPECT_FALSE(fs::exists(folder_));
    EXPECT_THAT(testutil::ListDir(work_), ElementsAre("disk.img"));
  }
}

TEST_F(SnapshotExt4FallbackTest, SnapshotOnFailsWithFailedPrecondition) {
  MakeBaseImage();
  for (const Use changed : {Use::kOn, Use::kAuto, Use::kOff}) {
    SCOPED_TRACE(std::string(UseName(changed)));
    BackupOptions o = SnapOptions();
    o.changed_blocks = changed;
    auto refused = CreateBackup(repository(), o);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().kind(), ErrorKind::kFailedPrecondition) << refused.error().message();
    EXPECT_THAT(refused.error().message(), HasSubstr("cannot snapshot"));
    EXPECT_FALSE(fs::exists(folder_));
  }
  EXPECT_EQ(BackupCount(), 0u);
}

// backup.h: "kOn fails the backup (kFailedPrecondition) where the filesystem
// cannot clone files", for changed_blocks as for snapshot.
TEST_F(SnapshotExt4FallbackTest, ChangedBlocksOnFailsWhereNothingClones) {
  MakeBaseImage();
  BackupOptions o = SnapOptions();
  o.snapshot = Use::kAuto;
  o.changed_blocks = Use::kOn;
  auto refused = CreateBackup(repository(), o);
  ASSERT_FALSE(refused) << "backed up with changed blocks on, read_path full";
  EXPECT_EQ(refused.error().kind(), ErrorKind::kFailedPrecondition) << refused.error().message();
  EXPECT_FALSE(fs::exists(folder_));
  EXPECT_EQ(BackupCount(), 0u);
}

// The test kit itself: each kind mounts, is the filesystem it claims, and
// goes away with its object.
TEST(LoopFilesystemTest, MountsEachKindAndCleansUp) {
  for (const LoopFsKind kind : {LoopFsKind::kXfs, LoopFsKind::kBtrfs, LoopFsKind::kExt4}) {
    SCOPED_TRACE(std::string(testutil::LoopFsName(kind)));
    std::string why;
    KINDLING_REQUIRE(LoopFilesystem::Available(kind, &why), why);
    auto lfs = LoopFilesystem::Create(kind, &why);
    ASSERT_TRUE(lfs) << why;
    const fs::path mount_point = lfs->mount_point();
    const fs::path a = lfs->NewDir("d");
    const fs::path b = lfs->NewDir("d");
    EXPECT_NE(a, b);
    EXPECT_EQ(a.parent_path(), mount_point);
    UniqueFd fd(::open(a.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    ASSERT_TRUE(fd.valid());
    auto info = DefaultExtentFs().Info(fd.get());
    ASSERT_TRUE(info) << info.error().message();
    EXPECT_EQ(info->kind, kind == LoopFsKind::kXfs     ? FsKind::kXfs
                          : kind == LoopFsKind::kBtrfs ? FsKind::kBtrfs
                                                       : FsKind::kOther);
    EXPECT_NE(Mounts().find(mount_point.string()), std::string::npos);
    fd = UniqueFd();
    lfs.reset();
    EXPECT_FALSE(fs::exists(mount_point));
    EXPECT_EQ(Mounts().find(mount_point.string()), std::string::npos);
  }
}

// Changed blocks need a snapshot.
TEST(SnapshotOptionsTest, ChangedBlocksWithoutSnapshotIsInvalid) {
  testutil::TempDir dir;
  auto local = storage::LocalStore::Open(dir / "store");
  ASSERT_TRUE(local);
  auto repository = Repository::Init(**local, crypto::RandomKey(), kChunk);
  ASSERT_TRUE(repository);
  testutil::MakeSparseFile(dir / "disk.img", kC, {});
  for (const Use changed : {Use::kOn, Use::kAuto}) {
    BackupOptions o;
    o.volume_id = "vol-1";
    o.image = dir / "disk.img";
    o.snapshot = Use::kOff;
    o.changed_blocks = changed;
    auto refused = CreateBackup(*repository, o);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().kind(), ErrorKind::kInvalidArgument);
  }
  EXPECT_EQ(ParseUse("auto"), Use::kAuto);
  EXPECT_EQ(ParseUse("on"), Use::kOn);
  EXPECT_EQ(ParseUse("off"), Use::kOff);
  EXPECT_EQ(ParseUse("yes"), std::nullopt);
  EXPECT_EQ(UseName(Use::kAuto), "auto");
}

}  // namespace
}  // namespace kindling::engine
