// Changed-block tracking's pure parts: which byte ranges two extent maps say
// are unchanged (UnchangedRanges), which chunks that makes skippable
// (UnchangedChunks), the snapshot digests file, and the snapshot folder's
// bookkeeping (SnapshotDir, with a copying stand-in for the clone so that it
// runs on any filesystem). Real filesystems: snapshot_backup_test.cc.
#include "engine/changed_blocks.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/fiemap.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common/files.h"
#include "crypto/sha256.h"
#include "engine/snapshots.h"
#include "testutil/sparse_image.h"
#include "testutil/temp_dir.h"

namespace kindling::engine {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr std::uint64_t kBlock = 4096;
constexpr std::uint32_t kChunk = 64 * 1024;
// Device addresses, far apart.
constexpr std::uint64_t kP = 1ull << 30;
constexpr std::uint64_t kQ = 2ull << 30;

Extent Data(std::uint64_t logical, std::uint64_t physical, std::uint64_t length,
            std::uint32_t flags = 0) {
  return Extent{logical, physical, length, flags};
}

std::vector<ByteRange> RangesOrDie(const ExtentMap& before, std::uint64_t before_size,
                                   const ExtentMap& after, std::uint64_t after_size) {
  auto ranges = UnchangedRanges(before, before_size, after, after_size);
  EXPECT_TRUE(ranges) << ranges.error().message();
  return ranges ? *ranges : std::vector<ByteRange>{};
}

// ---- UnchangedRanges ----------------------------------------------------------

TEST(UnchangedRangesTest, SameAddressesAreUnchanged) {
  const ExtentMap map = {Data(0, kP, 4 * kBlock), Data(4 * kBlock, kQ, 4 * kBlock)};
  EXPECT_THAT(RangesOrDie(map, 8 * kBlock, map, 8 * kBlock), ElementsAre(ByteRange{0, 8 * kBlock}));
}

TEST(UnchangedRangesTest, MovedAddressIsChanged) {
  const ExtentMap before = {Data(0, kP, 8 * kBlock)};
  // Block 3 was written (copy on write): it lives elsewhere now.
  const ExtentMap after = {Data(0, kP, 3 * kBlock), Data(3 * kBlock, kQ, kBlock),
                           Data(4 * kBlock, kP + 4 * kBlock, 4 * kBlock)};
  EXPECT_THAT(RangesOrDie(before, 8 * kBlock, after, 8 * kBlock),
              ElementsAre(ByteRange{0, 3 * kBlock}, ByteRange{4 * kBlock, 8 * kBlock}));
}

TEST(UnchangedRangesTest, SameLengthAtAnotherAddressIsChanged) {
  const ExtentMap before = {Data(0, kP, 4 * kBlock)};
  const ExtentMap after = {Data(0, kP + kBlock, 4 * kBlock)};
  EXPECT_THAT(RangesOrDie(before, 4 * kBlock, after, 4 * kBlock), IsEmpty());
}

TEST(UnchangedRangesTest, HoleVersusDataIsChanged) {
  // Data where there was a hole, and a hole where there was data.
  const ExtentMap before = {Data(0, kP, 2 * kBlock)};
  const ExtentMap after = {Data(2 * kBlock, kQ, 2 * kBlock)};
  EXPECT_THAT(RangesOrDie(before, 6 * kBlock, after, 6 * kBlock),
              ElementsAre(ByteRange{4 * kBlock, 6 * kBlock}));
}

TEST(UnchangedRangesTest, BothHolesAreUnchanged) {
  EXPECT_THAT(RangesOrDie({}, 10 * kBlock, {}, 10 * kBlock),
              ElementsAre(ByteRange{0, 10 * kBlock}));
  // A hole between two extents, in both.
  const ExtentMap map = {Data(0, kP, kBlock), Data(5 * kBlock, kQ, kBlock)};
  EXPECT_THAT(RangesOrDie(map, 6 * kBlock, map, 6 * kBlock), ElementsAre(ByteRange{0, 6 * kBlock}));
}

TEST(UnchangedRangesTest, RecordsSplitDifferentlyAtTheSameAddressesAreUnchanged) {
  const ExtentMap before = {Data(0, kP, 12 * kBlock)};
  const ExtentMap after = {Data(0, kP, kBlock), Data(kBlock, kP + kBlock, 5 * kBlock),
                           Data(6 * kBlock, kP + 6 * kBlock, 6 * kBlock)};
  EXPECT_THAT(RangesOrDie(before, 12 * kBlock, after, 12 * kBlock),
              ElementsAre(ByteRange{0, 12 * kBlock}));
  EXPECT_THAT(RangesOrDie(after, 12 * kBlock, before, 12 * kBlock),
              ElementsAre(ByteRange{0, 12 * kBlock}));
}

TEST(UnchangedRangesTest, ComparesByByteRangeAcrossRecordBoundaries) {
  // Both split, at different offsets; the middle record of `after` moved.
  const ExtentMap before = {Data(0, kP, 3 * kBlock), Data(3 * kBlock, kP + 3 * kBlock, 5 * kBlock)};
  const ExtentMap after = {Data(0, kP, 2 * kBlock), Data(2 * kBlock, kQ, 2 * kBlock),
                           Data(4 * kBlock, kP + 4 * kBlock, 4 * kBlock)};
  EXPECT_THAT(RangesOrDie(before, 8 * kBlock, after, 8 * kBlock),
              ElementsAre(ByteRange{0, 2 * kBlock}, ByteRange{4 * kBlock, 8 * kBlock}));
}

TEST(UnchangedRangesTest, HarmlessFlagsKeepARangeUnchanged) {
  for (const std::uint32_t flag :
       {std::uint32_t{FIEMAP_EXTENT_LAST}, std::uint32_t{FIEMAP_EXTENT_SHARED},
        std::uint32_t{FIEMAP_EXTENT_MERGED}}) {
    SCOPED_TRACE(flag);
    const ExtentMap before = {Data(0, kP, 4 * kBlock)};
    const ExtentMap after = {Data(0, kP, 4 * kBlock, flag)};
    EXPECT_THAT(RangesOrDie(before, 4 * kBlock, after, 4 * kBlock),
                ElementsAre(ByteRange{0, 4 * kBlock}));
  }
}

TEST(UnchangedRangesTest, FlagsThatMakeTheAddressMeaninglessAreChanged) {
  const std::vector<std::pair<const char*, std::uint32_t>> flags = {
      {"UNKNOWN", FIEMAP_EXTENT_UNKNOWN},         {"DELALLOC", FIEMAP_EXTENT_DELALLOC},
      {"ENCODED", FIEMAP_EXTENT_ENCODED},         {"DATA_ENCRYPTED", FIEMAP_EXTENT_DATA_ENCRYPTED},
      {"NOT_ALIGNED", FIEMAP_EXTENT_NOT_ALIGNED}, {"DATA_INLINE", FIEMAP_EXTENT_DATA_INLINE},
      {"DATA_TAIL", FIEMAP_EXTENT_DATA_TAIL}};
  for (const auto& [name, flag] : flags) {
    SCOPED_TRACE(name);
    // The flagged record is the middle one, in either map.
    const ExtentMap plain = {Data(0, kP, 6 * kBlock)};
    const ExtentMap flagged = {Data(0, kP, 2 * kBlock),
                               Data(2 * kBlock, kP + 2 * kBlock, 2 * kBlock, flag),
                               Data(4 * kBlock, kP + 4 * kBlock, 2 * kBlock)};
    const std::vector<ByteRange> expected = {ByteRange{0, 2 * kBlock},
                                             ByteRange{4 * kBlock, 6 * kBlock}};
    EXPECT_EQ(RangesOrDie(plain, 6 * kBlock, flagged, 6 * kBlock), expected);
    EXPECT_EQ(RangesOrDie(flagged, 6 * kBlock, plain, 6 * kBlock), expected);
    EXPECT_THAT(RangesOrDie(flagged, 6 * kBlock, flagged, 6 * kBlock),
                ElementsAre(expected[0], expected[1]))
        << "flagged in both maps still counts as changed";
  }
}

TEST(UnchangedRangesTest, UnwrittenInOneMapOnlyIsChanged) {
  const ExtentMap written = {Data(0, kP, 4 * kBlock)};
  const ExtentMap unwritten = {Data(0, kP, 4 * kBlock, FIEMAP_EXTENT_UNWRITTEN)};
  EXPECT_THAT(RangesOrDie(written, 4 * kBlock, unwritten, 4 * kBlock), IsEmpty());
  EXPECT_THAT(RangesOrDie(unwritten, 4 * kBlock, written, 4 * kBlock), IsEmpty());
  // Unwritten (reads as zeros) in both, at the same address: unchanged.
  EXPECT_THAT(RangesOrDie(unwritten, 4 * kBlock, unwritten, 4 * kBlock),
              ElementsAre(ByteRange{0, 4 * kBlock}));
}

TEST(UnchangedRangesTest, ExtentsPastTheSizeAreIgnored) {
  // Preallocation past the end of the file, at different addresses.
  const ExtentMap before = {Data(0, kP, 2 * kBlock), Data(4 * kBlock, kQ, 4 * kBlock)};
  const ExtentMap after = {Data(0, kP, 2 * kBlock),
                           Data(3 * kBlock, kQ + 100 * kBlock, 5 * kBlock)};
  EXPECT_THAT(RangesOrDie(before, 3 * kBlock, after, 3 * kBlock),
              ElementsAre(ByteRange{0, 3 * kBlock}));
  // A record that runs past the size counts up to the size only.
  const ExtentMap long_record = {Data(0, kP, 16 * kBlock)};
  const ExtentMap short_record = {Data(0, kP, 2 * kBlock)};
  EXPECT_THAT(RangesOrDie(long_record, 2 * kBlock, short_record, 2 * kBlock),
              ElementsAre(ByteRange{0, 2 * kBlock}));
}

TEST(UnchangedRangesTest, SizesDifferCompareUpToTheSmaller) {
  const ExtentMap before = {Data(0, kP, 10 * kBlock)};
  const ExtentMap after = {Data(0, kP, 4 * kBlock)};
  EXPECT_THAT(RangesOrDie(before, 10 * kBlock, after, 4 * kBlock),
              ElementsAre(ByteRange{0, 4 * kBlock}));
  EXPECT_THAT(RangesOrDie(after, 4 * kBlock, before, 10 * kBlock),
              ElementsAre(ByteRange{0, 4 * kBlock}));
  // An unaligned size.
  EXPECT_THAT(RangesOrDie(before, 10 * kBlock, before, 3 * kBlock + 7),
              ElementsAre(ByteRange{0, 3 * kBlock + 7}));
}

TEST(UnchangedRangesTest, EmptyFilesHaveNoRanges) {
  EXPECT_THAT(RangesOrDie({}, 0, {}, 0), IsEmpty());
  EXPECT_THAT(RangesOrDie({Data(0, kP, kBlock)}, kBlock, {}, 0), IsEmpty());
}

TEST(UnchangedRangesTest, ZeroLengthRecordsAreIgnored) {
  const ExtentMap before = {Data(0, kP, 4 * kBlock)};
  const ExtentMap after = {Data(0, kQ, 0), Data(0, kP, 4 * kBlock), Data(kBlock, kQ, 0)};
  EXPECT_THAT(RangesOrDie(before, 4 * kBlock, after, 4 * kBlock),
              ElementsAre(ByteRange{0, 4 * kBlock}));
}

TEST(UnchangedRangesTest, OverlappingOrUnsortedRecordsAreAnError) {
  const ExtentMap good = {Data(0, kP, 8 * kBlock)};
  const std::vector<std::pair<const char*, ExtentMap>> bad = {
      {"overlapping", {Data(0, kP, 4 * kBlock), Data(3 * kBlock, kQ, 4 * kBlock)}},
      {"unsorted", {Data(4 * kBlock, kQ, 2 * kBlock), Data(0, kP, 4 * kBlock)}},
      {"duplicated", {Data(0, kP, 4 * kBlock), Data(0, kP, 4 * kBlock)}},
      {"wrapping", {Data(kBlock, kP, ~std::uint64_t{0})}},
  };
  for (const auto& [name, map] : bad) {
    SCOPED_TRACE(name);
    for (const bool bad_first : {true, false}) {
      auto ranges = bad_first ? UnchangedRanges(map, 8 * kBlock, good, 8 * kBlock)
                              : UnchangedRanges(good, 8 * kBlock, map, 8 * kBlock);
      ASSERT_FALSE(ranges);
      EXPECT_EQ(ranges.error().kind(), ErrorKind::kCorruption);
    }
  }
}

TEST(UnchangedRangesTest, UnsortedRecordAfterOneReachingTheSizeIsAnError) {
  // The first record runs to the end of the file; the second, at offset 0,
  // is out of order and inside the compared range: the map is broken, not a
  // hole at [0, 4 blocks).
  const ExtentMap unsorted = {Data(4 * kBlock, kQ, 4 * kBlock), Data(0, kP, 4 * kBlock)};
  const ExtentMap holes_then_data = {Data(4 * kBlock, kQ, 4 * kBlock)};
  auto ranges = UnchangedRanges(holes_then_data, 8 * kBlock, unsorted, 8 * kBlock);
  ASSERT_FALSE(ranges) << "treated [0, 16 KiB) as a hole in both maps";
  EXPECT_EQ(ranges.error().kind(), ErrorKind::kCorruption);
}

// ---- UnchangedChunks -----------------------------------------------------------

TEST(UnchangedChunksTest, EveryChunkCoveredIsUnchangedTheLastPartialOneIncluded) {
  const std::uint64_t size = 3 * kChunk + 100;
  EXPECT_THAT(UnchangedChunks({ByteRange{0, size}}, size, size, kChunk),
              ElementsAre(true, true, true, true));
}

TEST(UnchangedChunksTest, AChunkPartlyCoveredIsChanged) {
  const std::uint64_t size = 3 * kChunk;
  // Chunk 1 has one changed block; chunk 2 is covered by the second range.
  const std::vector<ByteRange> ranges = {ByteRange{0, kChunk + kBlock},
                                         ByteRange{kChunk + 2 * kBlock, size}};
  EXPECT_THAT(UnchangedChunks(ranges, size, size, kChunk), ElementsAre(true, false, true));
  EXPECT_THAT(UnchangedChunks({}, size, size, kChunk), ElementsAre(false, false, false));
  EXPECT_THAT(UnchangedChunks({ByteRange{kBlock, size}}, size, size, kChunk),
              ElementsAre(false, true, true));
  EXPECT_THAT(UnchangedChunks({ByteRange{0, size - 1}}, size, size, kChunk),
              ElementsAre(true, true, false));
}

TEST(UnchangedChunksTest, GrownImageTheOldPartialChunkAndTheNewChunksAreChanged) {
  const std::uint64_t before = 2 * kChunk + 100;
  const std::uint64_t after = 4 * kChunk;
  // Whatever UnchangedRanges found, it stops at the old size.
  EXPECT_THAT(UnchangedChunks({ByteRange{0, before}}, before, after, kChunk),
              ElementsAre(true, true, false, false));
  // Grown from a whole number of chunks: only the new chunks.
  EXPECT_THAT(UnchangedChunks({ByteRange{0, 2 * kChunk}}, 2 * kChunk, after, kChunk),
              ElementsAre(true, true, false, false));
}

TEST(UnchangedChunksTest, ShrunkImageTheNewPartialChunkIsChanged) {
  const std::uint64_t before = 4 * kChunk;
  const std::uint64_t after = 2 * kChunk + 100;
  EXPECT_THAT(UnchangedChunks({ByteRange{0, after}}, before, after, kChunk),
              ElementsAre(true, true, false));
  // Shrunk to a whole number of chunks: all that is left is unchanged.
  EXPECT_THAT(UnchangedChunks({ByteRange{0, 2 * kChunk}}, before, 2 * kChunk, kChunk),
              ElementsAre(true, true));
}

TEST(UnchangedChunksTest, EmptyImageHasNoChunks) {
  EXPECT_THAT(UnchangedChunks({}, 0, 0, kChunk), IsEmpty());
  EXPECT_THAT(UnchangedChunks({}, 5 * kChunk, 0, kChunk), IsEmpty());
  EXPECT_THAT(UnchangedChunks({}, 0, 2 * kChunk, kChunk), ElementsAre(false, false));
}

TEST(UnchangedChunksTest, FromExtentMapsEndToEnd) {
  // Chunks of 4 blocks: chunk 1 has a block moved, chunk 2 turned from hole
  // to data, chunk 3 stayed a hole, chunk 4 is the tail of a shrunk image.
  constexpr std::uint32_t chunk = 4 * kBlock;
  const ExtentMap before = {Data(0, kP, 8 * kBlock), Data(16 * kBlock, kQ, 8 * kBlock)};
  const ExtentMap after = {Data(0, kP, 5 * kBlock), Data(5 * kBlock, kQ + 50 * kBlock, kBlock),
                           Data(6 * kBlock, kP + 6 * kBlock, 2 * kBlock),
                           Data(8 * kBlock, kQ + 60 * kBlock, 4 * kBlock),
                           Data(16 * kBlock, kQ, 8 * kBlock)};
  const std::uint64_t before_size = 24 * kBlock;
  const std::uint64_t after_size = 18 * kBlock;
  auto ranges = UnchangedRanges(before, before_size, after, after_size);
  ASSERT_TRUE(ranges) << ranges.error().message();
  EXPECT_THAT(UnchangedChunks(*ranges, before_size, after_size, chunk),
              ElementsAre(true, false, false, true, false));
}

// ---- snapshot digests ------------------------------------------------------------

SnapshotDigests SampleDigests(std::uint64_t image_size = 3 * kChunk + 5) {
  SnapshotDigests d;
  d.volume_id = "vol-1";
  d.backup_id = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
  d.image_size = image_size;
  d.chunk_size = kChunk;
  const std::uint64_t count = (image_size + kChunk - 1) / kChunk;
  for (std::uint64_t i = 0; i < count; ++i)
    d.chunks.push_back(crypto::Sha256Of("chunk " + std::to_string(i)));
  return d;
}

void ExpectSameDigests(const SnapshotDigests& got, const SnapshotDigests& want) {
  EXPECT_EQ(got.volume_id, want.volume_id);
  EXPECT_EQ(got.backup_id, want.backup_id);
  EXPECT_EQ(got.image_size, want.image_size);
  EXPECT_EQ(got.chunk_size, want.chunk_size);
  EXPECT_EQ(got.chunks, want.chunks);
}

TEST(SnapshotDigestsTest, RoundTrip) {
  for (const std::uint64_t size :
       {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{kChunk}, 3 * std::uint64_t{kChunk} + 5}) {
    SCOPED_TRACE(size);
    const SnapshotDigests d = SampleDigests(size);
    const std::string bytes = EncodeSnapshotDigests(d);
    auto decoded = DecodeSnapshotDigests(bytes);
    ASSERT_TRUE(decoded) << decoded.error().message();
    ExpectSameDigests(*decoded, d);
    EXPECT_EQ(EncodeSnapshotDigests(*decoded), bytes);
  }
}

TEST(SnapshotDigestsTest, EveryFlippedBitIsDetected) {
  const std::string bytes = EncodeSnapshotDigests(SampleDigests());
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    for (int bit = 0; bit < 8; bit += 3) {
      std::string bad = bytes;
      bad[i] = static_cast<char>(bad[i] ^ (1 << bit));
      auto decoded = DecodeSnapshotDigests(bad);
      ASSERT_FALSE(decoded) << "byte " << i << " bit " << bit;
      EXPECT_EQ(decoded.error().kind(), ErrorKind::kCorruption);
    }
  }
}

TEST(SnapshotDigestsTest, TruncatedExtendedOrForeignBytesAreCorrupt) {
  const std::string bytes = EncodeSnapshotDigests(SampleDigests());
  std::vector<std::pair<std::string, std::string>> bad = {
      {"empty", ""},
      {"magic only", bytes.substr(0, 8)},
      {"last byte cut", bytes.substr(0, bytes.size() - 1)},
      {"half", bytes.substr(0, bytes.size() / 2)},
      {"byte appended", bytes + "x"},
      {"other file", std::string(bytes.size(), 'a')},
  };
  for (std::size_t cut = 0; cut < bytes.size(); cut += 7)
    bad.emplace_back("cut at " + std::to_string(cut), bytes.substr(0, cut));
  for (const auto& [name, data] : bad) {
    SCOPED_TRACE(name);
    auto decoded = DecodeSnapshotDigests(data);
    ASSERT_FALSE(decoded);
    EXPECT_EQ(decoded.error().kind(), ErrorKind::kCorruption);
  }
}

TEST(SnapshotDigestsTest, InconsistentHeaderWithAValidChecksumIsCorrupt) {
  // Encode checksums whatever it is given: a digest count that does not
  // match the size, or a chunk size of zero, must still be refused.
  SnapshotDigests short_list = SampleDigests();
  short_list.chunks.pop_back();
  SnapshotDigests long_list = SampleDigests();
  long_list.chunks.push_back(crypto::Sha256Of("extra"));
  SnapshotDigests zero_chunk = SampleDigests(0);
  zero_chunk.chunk_size = 0;
  for (const SnapshotDigests* d : {&short_list, &long_list, &zero_chunk}) {
    auto decoded = DecodeSnapshotDigests(EncodeSnapshotDigests(*d));
    ASSERT_FALSE(decoded);
    EXPECT_EQ(decoded.error().kind(), ErrorKind::kCorruption);
    EXPECT_THAT(decoded.error().message(), HasSubstr("inconsistent"));
  }
}

// ---- SnapshotDir, on any filesystem ------------------------------------------------

// Clone by copying the bytes: SnapshotDir's bookkeeping without reflinks.
class CopyingExtentFs final : public ExtentFsWrapper {
 public:
  CopyingExtentFs() : ExtentFsWrapper(DefaultExtentFs()) {}
  Status Clone(int src_fd, int dst_fd) const override {
    struct stat st {};
    if (::fstat(src_fd, &st) != 0) return IoError("fstat");
    std::string data(static_cast<std::size_t>(st.st_size), '\0');
    KINDLING_ASSIGN_OR_RETURN(const std::size_t got,
                              PreadFull(src_fd, data.data(), data.size(), 0));
    if (got != data.size()) return IoError("short read");
    return PwriteFull(dst_fd, data.data(), data.size(), 0);
  }
};

// Clones nothing: the filesystem cannot.
class NoCloneExtentFs final : public ExtentFsWrapper {
 public:
  NoCloneExtentFs() : ExtentFsWrapper(DefaultExtentFs()) {}
  Status Clone(int, int) const override { return FailedPrecondition("no reflink here"); }
};

class SnapshotDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    image_ = dir_ / "disk.img";
    testutil::MakeSparseFile(image_, 3 * kChunk + 5, {{0, 2 * kChunk, testutil::Fill::kRandom}});
    fd_ = UniqueFd(::open(image_.c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(fd_.valid());
  }

  SnapshotDir OpenOrDie() {
    auto dir = SnapshotDir::Open(image_);
    if (!dir) throw std::runtime_error("open: " + dir.error().message());
    return std::move(*dir);
  }

  SnapshotDigests DigestsFor(const std::string& backup_id) {
    SnapshotDigests d = SampleDigests(3 * kChunk + 5);
    d.backup_id = backup_id;
    return d;
  }

  // Takes and commits a snapshot for `backup_id`.
  void TakeAndCommit(const std::string& backup_id) {
    SnapshotDir dir = OpenOrDie();
    auto taken = dir.Take(copying_, fd_.get(), backup_id);
    ASSERT_TRUE(taken) << taken.error().message();
    ASSERT_TRUE(dir.Commit(DigestsFor(backup_id)));
  }

  std::vector<std::string> Folder() const {
    return testutil::ListDir(SnapshotDir::FolderOf(image_));
  }

  testutil::TempDir dir_;
  std::filesystem::path image_;
  UniqueFd fd_;
  CopyingExtentFs copying_;
};

TEST_F(SnapshotDirTest, FolderIsHiddenBesideTheImage) {
  EXPECT_EQ(SnapshotDir::FolderOf("/a/b/disk.img"),
            std::filesystem::path("/a/b/.disk.img.snapshots"));
  SnapshotDir dir = OpenOrDie();
  EXPECT_EQ(dir.folder(), dir_ / ".disk.img.snapshots");
  EXPECT_TRUE(std::filesystem::is_directory(dir.folder()));
  EXPECT_FALSE(dir.previous());
}

TEST_F(SnapshotDirTest, TakeCommitAndTheNextOpenFindsIt) {
  SnapshotDir dir = OpenOrDie();
  auto taken = dir.Take(copying_, fd_.get(), "b1");
  ASSERT_TRUE(taken) << taken.error().message();
  EXPECT_EQ(*taken, dir.folder() / "b1.pending");
  EXPECT_EQ(testutil::Sha256OfFile(*taken), testutil::Sha256OfFile(image_));
  struct stat st {};
  ASSERT_EQ(::stat(taken->c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0400u);
  ASSERT_TRUE(dir.Commit(DigestsFor("b1")));
  ASSERT_TRUE(dir.previous());
  EXPECT_EQ(dir.previous()->backup_id, "b1");
  EXPECT_THAT(Folder(), ElementsAre("b1.digests", "b1.snap"));
  for (const char* name : {"b1.digests", "b1.snap"}) {
    ASSERT_EQ(::stat((dir.folder() / name).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0400u) << name;
  }
  auto bytes = ReadFile(dir.folder() / "b1.digests");
  ASSERT_TRUE(bytes);
  auto decoded = DecodeSnapshotDigests(*bytes);
  ASSERT_TRUE(decoded) << decoded.error().message();
  ExpectSameDigests(*decoded, DigestsFor("b1"));

  // The next backup: b1 is its previous snapshot; committing b2 deletes it.
  { SnapshotDir unlocked = std::move(dir); }
  SnapshotDir next = OpenOrDie();
  ASSERT_TRUE(next.previous());
  EXPECT_EQ(next.previous()->backup_id, "b1");
  EXPECT_EQ(next.previous()->snap, next.folder() / "b1.snap");
  ASSERT_TRUE(next.Take(copying_, fd_.get(), "b2"));
  ASSERT_TRUE(next.Commit(DigestsFor("b2")));
  EXPECT_THAT(Folder(), ElementsAre("b2.digests", "b2.snap"));
}

TEST_F(SnapshotDirTest, CommitOfAnotherBackupIsRefused) {
  SnapshotDir dir = OpenOrDie();
  ASSERT_TRUE(dir.Take(copying_, fd_.get(), "b1"));
  auto committed = dir.Commit(DigestsFor("b2"));
  ASSERT_FALSE(committed);
  EXPECT_EQ(committed.error().kind(), ErrorKind::kInternal);
}

TEST_F(SnapshotDirTest, DiscardAndDestructionDeleteThePendingClone) {
  TakeAndCommit("b1");
  {
    SnapshotDir dir = OpenOrDie();
    ASSERT_TRUE(dir.Take(copying_, fd_.get(), "b2"));
    EXPECT_THAT(Folder(), ElementsAre("b1.digests", "b1.snap", "b2.pending"));
    dir.Discard();
    EXPECT_THAT(Folder(), ElementsAre("b1.digests", "b1.snap"));
    ASSERT_TRUE(dir.Take(copying_, fd_.get(), "b3"));
  }  // a backup that failed without Discard
  EXPECT_THAT(Folder(), ElementsAre("b1.digests", "b1.snap"));
}

TEST_F(SnapshotDirTest, OpenRemovesLeftoversAndKeepsTheNewestCommittedSnapshot) {
  TakeAndCommit("b1");
  const auto folder = SnapshotDir::FolderOf(image_);
  // What crashes can leave: an older committed pair, pending clones, a
  // .snap without digests and the reverse, a temp file, anything else.
  std::filesystem::copy_file(folder / "b1.snap", folder / "b0.snap");
  std::filesystem::copy_file(folder / "b1.digests", folder / "b0.digests");
  testutil::WriteFile(folder / "b2.pending", "partial clone");
  testutil::WriteFile(folder / "b3.digests", "digests without a snap");
  testutil::WriteFile(folder / "b4.snap", "snap without digests");
  testutil::WriteFile(folder / ".b5.digests.tmp-abc", "temp");
  testutil::WriteFile(folder / "stray", "?");
  std::filesystem::create_directory(folder / "dir.snap");

  SnapshotDir dir = OpenOrDie();
  ASSERT_TRUE(dir.previous());
  EXPECT_EQ(dir.previous()->backup_id, "b1");
  EXPECT_THAT(Folder(), ElementsAre("b1.digests", "b1.snap"));
}

TEST_F(SnapshotDirTest, ASecondBackupOfTheImageIsRefusedWhileTheFirstRuns) {
  SnapshotDir first = OpenOrDie();
  auto second = SnapshotDir::Open(image_);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().kind(), ErrorKind::kFailedPrecondition);
  EXPECT_THAT(second.error().message(), HasSubstr("another backup"));
  { SnapshotDir done = std::move(first); }
  EXPECT_TRUE(SnapshotDir::Open(image_));
}

TEST_F(SnapshotDirTest, FailedCloneLeavesNothingAndAnEmptyFolderCanGo) {
  SnapshotDir dir = OpenOrDie();
  const NoCloneExtentFs no_clone;
  auto taken = dir.Take(no_clone, fd_.get(), "b1");
  ASSERT_FALSE(taken);
  EXPECT_EQ(taken.error().kind(), ErrorKind::kFailedPrecondition);
  EXPECT_THAT(Folder(), IsEmpty());
  dir.RemoveIfEmpty();
  EXPECT_FALSE(std::filesystem::exists(SnapshotDir::FolderOf(image_)));
}

TEST_F(SnapshotDirTest, RemoveIfEmptyKeepsAFolderWithASnapshot) {
  TakeAndCommit("b1");
  SnapshotDir dir = OpenOrDie();
  dir.RemoveIfEmpty();
  EXPECT_THAT(Folder(), ElementsAre("b1.digests", "b1.snap"));
}

}  // namespace
}  // namespace kindling::engine
