#include "common/files.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

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

}  // namespace
}  // namespace kindling
