#include "common/files.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "common/aligned_buffer.h"
#include "testutil/sparse_image.h"
#include "testutil/temp_dir.h"

namespace kindling {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

class FilesTest : public ::testing::Test {
 protected:
  testutil::TempDir dir_;
};

TEST_F(FilesTest, WriteFileAtomicWritesContent) {
  const auto path = dir_ / "file";
  ASSERT_TRUE(WriteFileAtomic(path, "hello"));
  auto data = ReadFile(path);
  ASSERT_TRUE(data) << data.error().message();
  EXPECT_EQ(*data, "hello");
}

TEST_F(FilesTest, WriteFileAtomicReplacesAndLeavesNoTempFile) {
  const auto path = dir_ / "file";
  ASSERT_TRUE(WriteFileAtomic(path, "first version, longer"));
  ASSERT_TRUE(WriteFileAtomic(path, "second"));
  EXPECT_EQ(*ReadFile(path), "second");
  EXPECT_THAT(testutil::ListDir(dir_.path()), ElementsAre("file"));
}

TEST_F(FilesTest, WriteFileAtomicLargeContentRoundTrips) {
  // Large files take the direct-I/O path: sizes around its threshold and
  // staging size, with unaligned tails, come back byte for byte.
  for (std::size_t size : {std::size_t{1} << 20, (std::size_t{1} << 20) - 1,
                           (std::size_t{3} << 20) + 123, std::size_t{5} << 20}) {
    const auto path = dir_ / ("large-" + std::to_string(size));
    const std::string data = testutil::RandomData(size, size);
    ASSERT_TRUE(WriteFileAtomic(path, data));
    auto back = ReadFile(path);
    ASSERT_TRUE(back) << back.error().message();
    EXPECT_EQ(back->size(), size);
    EXPECT_TRUE(*back == data) << size;
    // Replacing it works the same way.
    const std::string other = testutil::RandomData(size, size + 1);
    ASSERT_TRUE(WriteFileAtomic(path, other));
    EXPECT_TRUE(*ReadFile(path) == other) << size;
  }
  for (const auto& entry : std::filesystem::directory_iterator(dir_.path()))
    EXPECT_THAT(entry.path().filename().string(), StartsWith("large-")) << "temp file left";
}

TEST_F(FilesTest, WriteFileAtomicEmptyContent) {
  const auto path = dir_ / "empty";
  ASSERT_TRUE(WriteFileAtomic(path, ""));
  auto data = ReadFile(path);
  ASSERT_TRUE(data);
  EXPECT_TRUE(data->empty());
}

TEST_F(FilesTest, WriteFileAtomicAppliesMode) {
  const auto path = dir_ / "secret";
  ASSERT_TRUE(WriteFileAtomic(path, "x", 0600));
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(FilesTest, WriteFileAtomicIntoMissingDirectoryFailsWithoutLeftovers) {
  auto st = WriteFileAtomic(dir_ / "no-such-dir" / "file", "x");
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().kind(), ErrorKind::kIo);
  EXPECT_TRUE(testutil::ListDir(dir_.path()).empty());
}

TEST_F(FilesTest, ReadFileMissingIsNotFound) {
  auto data = ReadFile(dir_ / "missing");
  ASSERT_FALSE(data);
  EXPECT_EQ(data.error().kind(), ErrorKind::kNotFound);
  EXPECT_TRUE(data.error().is_not_found());
}

TEST_F(FilesTest, ReadFileOfDirectoryIsAnError) {
  auto data = ReadFile(dir_.path());
  ASSERT_FALSE(data);
  EXPECT_EQ(data.error().kind(), ErrorKind::kIo);
}

TEST_F(FilesTest, ReadFileBinaryContent) {
  std::string content = testutil::RandomData(100000, 3);
  content[10] = '\0';
  testutil::WriteFile(dir_ / "bin", content);
  EXPECT_EQ(*ReadFile(dir_ / "bin"), content);
}

TEST_F(FilesTest, TempSiblingPathIsHiddenBesideTarget) {
  const auto path = dir_ / "image.raw";
  const auto temp = TempSiblingPath(path);
  EXPECT_EQ(temp.parent_path(), dir_.path());
  EXPECT_THAT(temp.filename().string(), StartsWith(".image.raw.tmp-"));
  EXPECT_NE(TempSiblingPath(path), temp);
}

TEST_F(FilesTest, PreadFullIsShortOnlyAtEndOfFile) {
  testutil::WriteFile(dir_ / "f", "0123456789");
  UniqueFd fd(::open((dir_ / "f").c_str(), O_RDONLY));
  ASSERT_TRUE(fd.valid());
  char buf[16] = {};
  auto n = PreadFull(fd.get(), buf, 4, 3);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 4u);
  EXPECT_EQ(std::string(buf, 4), "3456");
  n = PreadFull(fd.get(), buf, 16, 6);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 4u);
  n = PreadFull(fd.get(), buf, 16, 100);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 0u);
}

TEST_F(FilesTest, PwriteFullWritesAtOffset) {
  UniqueFd fd(::open((dir_ / "f").c_str(), O_RDWR | O_CREAT, 0644));
  ASSERT_TRUE(fd.valid());
  ASSERT_TRUE(PwriteFull(fd.get(), "abc", 3, 5));
  EXPECT_EQ(testutil::ReadFileOrDie(dir_ / "f"), std::string("\0\0\0\0\0abc", 8));
}

TEST_F(FilesTest, PreadOnBadFdIsIoError) {
  char buf[4];
  auto n = PreadFull(-1, buf, sizeof buf, 0);
  ASSERT_FALSE(n);
  EXPECT_EQ(n.error().kind(), ErrorKind::kIo);
}

TEST_F(FilesTest, UniqueFdMoveTransfersOwnership) {
  UniqueFd a(::open(dir_.path().c_str(), O_RDONLY | O_DIRECTORY));
  ASSERT_TRUE(a.valid());
  const int raw = a.get();
  UniqueFd b(std::move(a));
  EXPECT_FALSE(a.valid());  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(b.get(), raw);
  UniqueFd c;
  c = std::move(b);
  EXPECT_EQ(c.get(), raw);
  const int released = c.Release();
  EXPECT_EQ(released, raw);
  EXPECT_FALSE(c.valid());
  ::close(released);
}

TEST_F(FilesTest, FsyncDirectory) {
  EXPECT_TRUE(FsyncDirectory(dir_.path()));
  auto st = FsyncDirectory(dir_ / "missing");
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().kind(), ErrorKind::kIo);
  EXPECT_THAT(st.error().message(), HasSubstr("missing"));
}

// A real sparse file: 4 MiB apparent, data only in [1 MiB, 1 MiB + 4 KiB)
// and the last 4 KiB.
TEST_F(FilesTest, RangeIsHoleOnSparseFile) {
  constexpr std::uint64_t kMiB = 1 << 20;
  const auto path = dir_ / "sparse";
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT, 0644));
  ASSERT_TRUE(fd.valid());
  ASSERT_EQ(::ftruncate(fd.get(), 4 * kMiB), 0);
  const std::string block(4096, 'x');
  ASSERT_EQ(::pwrite(fd.get(), block.data(), block.size(), kMiB), 4096);
  ASSERT_EQ(::pwrite(fd.get(), block.data(), block.size(), 4 * kMiB - 4096), 4096);
  ASSERT_EQ(::fsync(fd.get()), 0);

  auto is_hole = [&](std::uint64_t offset, std::uint64_t length) {
    auto r = RangeIsHole(fd.get(), offset, length);
    EXPECT_TRUE(r) << r.error().message();
    return r && *r;
  };
  EXPECT_TRUE(is_hole(0, kMiB));
  EXPECT_TRUE(is_hole(0, kMiB - 4096));
  EXPECT_FALSE(is_hole(0, kMiB + 1));
  EXPECT_FALSE(is_hole(kMiB, 4096));
  EXPECT_FALSE(is_hole(kMiB + 100, 1));
  EXPECT_FALSE(is_hole(kMiB - 4096, 8192));
  EXPECT_TRUE(is_hole(kMiB + 4096, kMiB));
  EXPECT_TRUE(is_hole(2 * kMiB, kMiB));
  EXPECT_FALSE(is_hole(2 * kMiB, 2 * kMiB));
  EXPECT_FALSE(is_hole(4 * kMiB - 1, 1));
  // Past the end of the file there is no data at all.
  EXPECT_TRUE(is_hole(4 * kMiB, kMiB));
  // An empty range holds no data.
  EXPECT_TRUE(is_hole(kMiB, 0));
}

TEST_F(FilesTest, RangeIsHoleOnFullyWrittenFile) {
  testutil::WriteFile(dir_ / "dense", std::string(65536, 'a'));
  UniqueFd fd(::open((dir_ / "dense").c_str(), O_RDONLY));
  ASSERT_TRUE(fd.valid());
  auto r = RangeIsHole(fd.get(), 0, 65536);
  ASSERT_TRUE(r);
  EXPECT_FALSE(*r);
}

TEST_F(FilesTest, RangeIsHoleOnAllHoleFile) {
  const auto path = dir_ / "holes";
  testutil::MakeSparseFile(path, 8 << 20, {});
  UniqueFd fd(::open(path.c_str(), O_RDONLY));
  ASSERT_TRUE(fd.valid());
  auto r = RangeIsHole(fd.get(), 0, 8 << 20);
  ASSERT_TRUE(r);
  EXPECT_TRUE(*r);
}

TEST_F(FilesTest, IsAllZeroEdgeCases) {
  EXPECT_TRUE(IsAllZero(nullptr, 0));
  for (std::size_t size : {1u, 15u, 16u, 17u, 31u, 32u, 33u, 4096u, 65537u}) {
    std::string buf(size, '\0');
    EXPECT_TRUE(IsAllZero(buf.data(), buf.size())) << size;
    // A single non-zero byte anywhere, including around the 16-byte head.
    for (std::size_t at : {std::size_t{0}, size / 2, size - 1, std::size_t{15}, std::size_t{16}}) {
      if (at >= size) continue;
      buf[at] = 1;
      EXPECT_FALSE(IsAllZero(buf.data(), buf.size())) << "size " << size << " at " << at;
      buf[at] = 0;
    }
  }
}

TEST_F(FilesTest, IsAllZeroUnalignedStart) {
  std::string buf(1000, '\0');
  EXPECT_TRUE(IsAllZero(buf.data() + 3, 990));
  buf[999] = 'x';
  EXPECT_TRUE(IsAllZero(buf.data() + 3, 996));
  EXPECT_FALSE(IsAllZero(buf.data() + 3, 997));
  buf[2] = 'x';
  EXPECT_TRUE(IsAllZero(buf.data() + 3, 996));
}

// Data at [64 KiB, 72 KiB) and [200 KiB, 204 KiB) of a 256 KiB file; the rest
// is holes.
class SparseIoTest : public FilesTest {
 protected:
  void SetUp() override {
    path_ = dir_ / "sparse";
    fd_ = UniqueFd(::open(path_.c_str(), O_RDWR | O_CREAT, 0644));
    ASSERT_TRUE(fd_.valid());
    ASSERT_EQ(::ftruncate(fd_.get(), kSize), 0);
    expected_.assign(kSize, '\0');
    Put(64 << 10, std::string(8 << 10, 'a'));
    Put(200 << 10, std::string(4 << 10, 'b'));
  }
  void Put(std::uint64_t offset, const std::string& data) {
    ASSERT_TRUE(PwriteFull(fd_.get(), data.data(), data.size(), offset));
    expected_.replace(offset, data.size(), data);
  }

  static constexpr std::uint64_t kSize = 256 << 10;
  std::filesystem::path path_;
  UniqueFd fd_;
  std::string expected_;
};

TEST_F(SparseIoTest, PreadSparseZeroFillsHolesAndCountsOnlyData) {
  std::string buf(kSize, 'x');
  auto got = PreadSparse(fd_.get(), buf.data(), buf.size(), 0);
  ASSERT_TRUE(got) << got.error().message();
  EXPECT_EQ(*got, 12u << 10);
  EXPECT_TRUE(buf == expected_);
}

TEST_F(SparseIoTest, PreadSparseUnalignedRanges) {
  for (auto [offset, size] : {std::pair<std::uint64_t, std::size_t>{0, 1},
                              {(64 << 10) - 7, 100},
                              {(72 << 10) - 1, 2},
                              {(64 << 10) + 5, (140 << 10) + 3},
                              {100 << 10, 1000},
                              {kSize - 10, 10}}) {
    std::string buf(size, 'x');
    auto got = PreadSparse(fd_.get(), buf.data(), buf.size(), offset);
    ASSERT_TRUE(got) << got.error().message();
    EXPECT_TRUE(buf == expected_.substr(offset, size)) << offset << "+" << size;
  }
}

TEST_F(SparseIoTest, PreadSparsePastEndOfFileReadsZeros) {
  std::string buf(8192, 'x');
  auto got = PreadSparse(fd_.get(), buf.data(), buf.size(), kSize - 4096);
  ASSERT_TRUE(got) << got.error().message();
  EXPECT_EQ(*got, 0u);
  EXPECT_EQ(buf, std::string(8192, '\0'));
}

TEST_F(SparseIoTest, PreadSparseOnBadFdIsIoError) {
  char c;
  auto got = PreadSparse(-1, &c, 1, 0);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().kind(), ErrorKind::kIo);
}

TEST_F(FilesTest, PwriteSkippingZeroBlocksLeavesZeroBlocksAsHoles) {
  constexpr std::size_t kBlock = 4096;
  const auto path = dir_ / "out";
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT, 0644));
  ASSERT_TRUE(fd.valid());
  ASSERT_EQ(::ftruncate(fd.get(), 64 * kBlock), 0);
  // Blocks 0, 3 and 7 hold data (block 7 only its last byte); the rest are zeros.
  std::string data(8 * kBlock, '\0');
  data[0] = 'a';
  data.replace(3 * kBlock, kBlock, std::string(kBlock, 'b'));
  data[8 * kBlock - 1] = 'c';
  auto written = PwriteSkippingZeroBlocks(fd.get(), data.data(), data.size(), 16 * kBlock);
  ASSERT_TRUE(written) << written.error().message();
  EXPECT_EQ(*written, 3 * kBlock);
  ASSERT_EQ(::fsync(fd.get()), 0);
  std::string back(data.size(), 'x');
  ASSERT_TRUE(PreadFull(fd.get(), back.data(), back.size(), 16 * kBlock));
  EXPECT_TRUE(back == data);
  for (std::size_t b = 0; b < 8; ++b) {
    const bool data_block = b == 0 || b == 3 || b == 7;
    auto hole = RangeIsHole(fd.get(), (16 + b) * kBlock, kBlock);
    ASSERT_TRUE(hole);
    EXPECT_EQ(*hole, !data_block) << "block " << b;
  }
}

TEST_F(FilesTest, PwriteSkippingZeroBlocksUnalignedOffsetAndTail) {
  // Blocks are aligned on the file, not on the buffer: a buffer that starts
  // mid-block and ends mid-block round-trips exactly.
  const auto path = dir_ / "out";
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT, 0644));
  ASSERT_TRUE(fd.valid());
  ASSERT_EQ(::ftruncate(fd.get(), 1 << 20), 0);
  std::string data = testutil::RandomData(4 * 4096 + 123, 9);
  std::fill(data.begin() + 5000, data.begin() + 13000, '\0');
  const std::uint64_t offset = 4096 * 10 + 777;
  auto written = PwriteSkippingZeroBlocks(fd.get(), data.data(), data.size(), offset);
  ASSERT_TRUE(written) << written.error().message();
  EXPECT_LT(*written, data.size());
  std::string back(data.size(), 'x');
  ASSERT_TRUE(PreadFull(fd.get(), back.data(), back.size(), offset));
  EXPECT_TRUE(back == data);
}

TEST_F(FilesTest, PwriteSkippingZeroBlocksOfOnlyZerosWritesNothing) {
  const auto path = dir_ / "out";
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT, 0644));
  ASSERT_TRUE(fd.valid());
  ASSERT_EQ(::ftruncate(fd.get(), 1 << 20), 0);
  const std::string zeros(256 << 10, '\0');
  auto written = PwriteSkippingZeroBlocks(fd.get(), zeros.data(), zeros.size(), 0);
  ASSERT_TRUE(written);
  EXPECT_EQ(*written, 0u);
  ASSERT_EQ(::fsync(fd.get()), 0);
  EXPECT_EQ(testutil::AllocatedBytes(path), 0u);
}

TEST_F(SparseIoTest, PreadSparseThroughDirectIoMatchesBufferedReads) {
  UniqueFd direct = OpenDirect(path_, O_RDONLY);
  const DirectIo io(fd_.get(), direct.get());
  AlignedBuffer buf(kSize);
  for (auto [offset, size] : {std::pair<std::uint64_t, std::size_t>{0, kSize},
                              {64 << 10, 8 << 10},
                              {60 << 10, 16 << 10},
                              {(64 << 10) + 5, 1000},
                              {kSize - 4096, 4096}}) {
    // Aligned and unaligned destinations: both must read the same bytes.
    for (std::size_t shift : {std::size_t{0}, std::size_t{7}}) {
      if (shift + size > buf.capacity()) continue;
      std::memset(buf.data(), 'x', buf.capacity());
      auto got = PreadSparse(io, buf.data() + shift, size, offset);
      ASSERT_TRUE(got) << got.error().message();
      EXPECT_TRUE(std::string_view(buf.data() + shift, size) == expected_.substr(offset, size))
          << offset << "+" << size << " shift " << shift;
    }
  }
}

TEST_F(FilesTest, DirectIoWritesAlignedPartsDirectAndTheRestBuffered) {
  const auto path = dir_ / "direct";
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT, 0644));
  ASSERT_TRUE(fd.valid());
  ASSERT_EQ(::ftruncate(fd.get(), 1 << 20), 0);
  UniqueFd direct = OpenDirect(path, O_RDWR);
  const DirectIo io(fd.get(), direct.get());
  AlignedBuffer buf(3 * 4096 + 100);
  const std::string data = testutil::RandomData(buf.capacity(), 5);
  std::memcpy(buf.data(), data.data(), data.size());
  // An aligned start with an unaligned tail, then an unaligned start.
  ASSERT_TRUE(io.Pwrite(buf.data(), data.size(), 8192));
  ASSERT_TRUE(io.Pwrite(buf.data() + 1, 5000, 100000));
  std::string back(data.size(), '\0');
  ASSERT_TRUE(PreadFull(fd.get(), back.data(), back.size(), 8192));
  EXPECT_TRUE(back == data);
  back.resize(5000);
  ASSERT_TRUE(PreadFull(fd.get(), back.data(), back.size(), 100000));
  EXPECT_TRUE(back == data.substr(1, 5000));
  // Reads through the same object agree.
  AlignedBuffer in(data.size());
  auto got = io.Pread(in.data(), data.size(), 8192);
  ASSERT_TRUE(got) << got.error().message();
  EXPECT_EQ(*got, data.size());
  EXPECT_TRUE(std::string_view(in.data(), data.size()) == data);
  // Where the filesystem has O_DIRECT, nothing above made it fall back.
  if (direct.valid()) {
    EXPECT_TRUE(io.direct());
  }
}

TEST_F(FilesTest, DirectIoWithoutDirectDescriptorUsesThePageCache) {
  const auto path = dir_ / "buffered";
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT, 0644));
  ASSERT_TRUE(fd.valid());
  const DirectIo io(fd.get());
  EXPECT_FALSE(io.direct());
  AlignedBuffer buf(8192);
  std::memset(buf.data(), 'q', 8192);
  ASSERT_TRUE(io.Pwrite(buf.data(), 8192, 4096));
  auto got = io.Pread(buf.data(), 8192, 4096 + 10);
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, 8192u - 10);  // short only at end of file
}

TEST_F(FilesTest, DirectIoReadPastEndOfFileIsShort) {
  const auto path = dir_ / "short";
  testutil::WriteFile(path, std::string(4096 + 123, 'z'));
  UniqueFd fd(::open(path.c_str(), O_RDONLY));
  UniqueFd direct = OpenDirect(path, O_RDONLY);
  const DirectIo io(fd.get(), direct.get());
  AlignedBuffer buf(3 * 4096);
  auto got = io.Pread(buf.data(), 3 * 4096, 0);
  ASSERT_TRUE(got) << got.error().message();
  EXPECT_EQ(*got, 4096u + 123);
  EXPECT_EQ(std::string_view(buf.data(), *got), std::string(4096 + 123, 'z'));
}

TEST_F(FilesTest, DirectIoReadsThePartlyCachedFileCorrectly) {
  // The first half stays in the page cache (read from it), the second half is
  // dropped from it after fsync (read with O_DIRECT); the bytes must match
  // whichever path served them.
  const auto path = dir_ / "half-cached";
  const std::string content = testutil::RandomData(64 * 4096 + 100, 11);
  testutil::WriteFile(path, content);
  UniqueFd fd(::open(path.c_str(), O_RDONLY));
  ASSERT_TRUE(fd.valid());
  ASSERT_EQ(::fsync(fd.get()), 0);
  ::posix_fadvise(fd.get(), 32 * 4096, 0, POSIX_FADV_DONTNEED);
  UniqueFd direct = OpenDirect(path, O_RDONLY);
  const DirectIo io(fd.get(), direct.get());
  AlignedBuffer buf(content.size() + 4096);
  for (std::uint64_t offset : {std::uint64_t{0}, std::uint64_t{4096}, std::uint64_t{16 * 4096}}) {
    auto got = io.Pread(buf.data(), content.size() - offset, offset);
    ASSERT_TRUE(got) << got.error().message();
    EXPECT_EQ(*got, content.size() - offset);
    EXPECT_EQ(std::string_view(buf.data(), *got), std::string_view(content).substr(offset))
        << offset;
    ::posix_fadvise(fd.get(), 32 * 4096, 0, POSIX_FADV_DONTNEED);
  }
}

// Pages of `fd` in [0, size) that the page cache holds.
std::size_t ResidentPages(int fd, std::size_t size) {
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) return ~std::size_t{0};
  std::vector<unsigned char> resident((size + 4095) / 4096);
  std::size_t count = 0;
  if (::mincore(map, size, resident.data()) == 0)
    for (unsigned char r : resident) count += r & 1;
  ::munmap(map, size);
  return count;
}

// A read of what the page cache does not hold goes to disk once, with
// O_DIRECT: it starts no read-ahead into the page cache beside it.
TEST_F(FilesTest, DirectIoReadOfAnUncachedFileLeavesThePageCacheEmpty) {
  const auto path = dir_ / "cold";
  const std::string content = testutil::RandomData(8 << 20, 12);
  testutil::WriteFile(path, content);
  UniqueFd fd(::open(path.c_str(), O_RDONLY));
  ASSERT_TRUE(fd.valid());
  ASSERT_EQ(::fsync(fd.get()), 0);
  ASSERT_EQ(::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_DONTNEED), 0);
  ASSERT_EQ(ResidentPages(fd.get(), content.size()), 0u);
  UniqueFd direct = OpenDirect(path, O_RDONLY);
  ASSERT_TRUE(direct.valid()) << "the test directory's filesystem has no O_DIRECT";
  const DirectIo io(fd.get(), direct.get());
  AlignedBuffer buf(1 << 20);
  for (std::uint64_t offset = 0; offset < content.size(); offset += 2 << 20) {
    auto got = io.Pread(buf.data(), 1 << 20, offset);
    ASSERT_TRUE(got) << got.error().message();
    ASSERT_EQ(*got, std::size_t{1} << 20);
    EXPECT_EQ(std::string_view(buf.data(), *got), std::string_view(content).substr(offset, *got));
  }
  EXPECT_TRUE(io.direct());
  EXPECT_EQ(ResidentPages(fd.get(), content.size()), 0u);
}

// Racing creators of one file: exactly one wins, the others get
// kAlreadyExists, the winner's content stays, no temp file is left.
TEST_F(FilesTest, WriteFileNoReplaceHasOneWinnerAmongRacers) {
  const auto path = dir_ / "key";
  constexpr int kRacers = 8;
  std::vector<Status> results(kRacers);
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int i = 0; i < kRacers; ++i)
    threads.emplace_back([&, i] {
      while (!go.load()) std::this_thread::yield();
      results[i] = WriteFileNoReplace(path, "racer " + std::to_string(i), 0600);
    });
  go = true;
  for (auto& t : threads) t.join();
  int winner = -1;
  for (int i = 0; i < kRacers; ++i) {
    if (results[i]) {
      EXPECT_EQ(winner, -1) << "two winners";
      winner = i;
    } else {
      EXPECT_EQ(results[i].error().kind(), ErrorKind::kAlreadyExists)
          << results[i].error().message();
    }
  }
  ASSERT_NE(winner, -1);
  EXPECT_EQ(*ReadFile(path), "racer " + std::to_string(winner));
  EXPECT_THAT(testutil::ListDir(dir_.path()), ElementsAre("key"));
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(FilesTest, CreateDirectoriesDurablyCreatesEachMissingLevelOnce) {
  const auto deep = dir_ / "a" / "b" / "c";
  auto created = CreateDirectoriesDurably(deep);
  ASSERT_TRUE(created) << created.error().message();
  EXPECT_EQ(*created, 3);
  EXPECT_TRUE(std::filesystem::is_directory(deep));
  auto again = CreateDirectoriesDurably(deep);
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, 0);
  auto sibling = CreateDirectoriesDurably(dir_ / "a" / "d");
  ASSERT_TRUE(sibling);
  EXPECT_EQ(*sibling, 1);

  testutil::WriteFile(dir_ / "file", "x");
  auto under_file = CreateDirectoriesDurably(dir_ / "file" / "sub");
  ASSERT_FALSE(under_file);
  EXPECT_EQ(under_file.error().kind(), ErrorKind::kIo);
}

}  // namespace
}  // namespace kindling
