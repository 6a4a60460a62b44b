#include "testutil/sparse_image.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string_view>

namespace kindling::testutil {
namespace {

[[noreturn]] void Fail(const std::string& what) {
  throw std::runtime_error(what + ": " + std::strerror(errno));
}

void WriteAll(int fd, const std::string& data, std::uint64_t offset) {
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n =
        ::pwrite(fd, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      Fail("pwrite");
    }
    done += static_cast<std::size_t>(n);
  }
}

constexpr std::array<std::string_view, 32> kWords = {
    "the",      "volume", "backup",  "chunk",  "store",   "restore", "image",  "block",
    "inode",    "extent", "journal", "kernel", "device",  "sector",  "mount",  "write",
    "read",     "error",  "info",    "debug",  "request", "session", "worker", "lease",
    "manifest", "digest", "sparse",  "hole",   "zero",    "data",    "ext4",   "commit"};

}  // namespace

std::string RandomData(std::size_t size, std::uint64_t seed) {
  std::mt19937_64 rng(seed * 0x9e3779b97f4a7c15ull + 1);
  std::string out(size, '\0');
  std::size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    const std::uint64_t v = rng();
    std::memcpy(out.data() + i, &v, 8);
  }
  if (i < size) {
    const std::uint64_t v = rng();
    std::memcpy(out.data() + i, &v, size - i);
  }
  return out;
}

std::string TextData(std::size_t size, std::uint64_t seed) {
  std::mt19937_64 rng(seed * 0xbf58476d1ce4e5b9ull + 7);
  std::string out;
  out.reserve(size + 16);
  std::uint64_t line = 0;
  while (out.size() < size) {
    const std::uint64_t v = rng();
    out.append(kWords[v % kWords.size()]);
    if ((v >> 8) % 12 == 0) {
      out.append(" ");
      out.append(std::to_string(line++));
      out.push_back('\n');
    } else {
      out.push_back(' ');
    }
  }
  out.resize(size);
  return out;
}

std::string FillData(Fill fill, std::size_t size, std::uint64_t seed) {
  switch (fill) {
    case Fill::kZeros:
      return std::string(size, '\0');
    case Fill::kRandom:
      return RandomData(size, seed);
    case Fill::kText:
      return TextData(size, seed);
  }
  return {};
}

void MakeSparseFile(const std::filesystem::path& path, std::uint64_t size,
                    const std::vector<Extent>& extents, std::uint64_t seed) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) Fail("open " + path.string());
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    ::close(fd);
    Fail("ftruncate " + path.string());
  }
  std::uint64_t index = 0;
  for (const Extent& e : extents) {
    if (e.offset + e.length > size) {
      ::close(fd);
      throw std::invalid_argument("extent beyond the image size");
    }
    WriteAll(fd, FillData(e.fill, static_cast<std::size_t>(e.length), seed + index++), e.offset);
  }
  if (::close(fd) != 0) Fail("close " + path.string());
}

void PatchFile(const std::filesystem::path& path, std::uint64_t offset, const std::string& data) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) Fail("open " + path.string());
  WriteAll(fd, data, offset);
  if (::close(fd) != 0) Fail("close " + path.string());
}

std::uint64_t AllocatedBytes(const std::filesystem::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) Fail("stat " + path.string());
  return static_cast<std::uint64_t>(st.st_blocks) * 512;
}

std::vector<std::string> ListDir(const std::filesystem::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir))
    names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace kindling::testutil
