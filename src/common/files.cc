#include "common/files.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "common/aligned_buffer.h"

namespace kindling {

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.Release();
  }
  return *this;
}

UniqueFd::~UniqueFd() {
  if (fd_ >= 0) ::close(fd_);
}

int UniqueFd::Release() {
  int fd = fd_;
  fd_ = -1;
  return fd;
}

std::filesystem::path TempSiblingPath(const std::filesystem::path& path) {
  // Distinct across threads and processes writing beside the same file.
  std::uint64_t random = 0;
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&random), sizeof random) != 1) {
    std::fputs("kindling: fatal: OpenSSL's random generator failed\n", stderr);
    std::abort();
  }
  char suffix[17];
  std::snprintf(suffix, sizeof suffix, "%016llx", static_cast<unsigned long long>(random));
  std::string name = "." + path.filename().string() + ".tmp-" + suffix;
  return path.parent_path() / name;
}

Status FsyncDirectory(const std::filesystem::path& dir) {
  UniqueFd fd(::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError("open directory " + dir.string(), errno);
  if (::fsync(fd.get()) != 0) return ErrnoError("fsync directory " + dir.string(), errno);
  return OkStatus();
}

Status RenameNoReplaceDurably(const std::filesystem::path& from, const std::filesystem::path& to) {
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) != 0) {
    const int e = errno;
    if (e == EEXIST) return MakeError(ErrorKind::kAlreadyExists, to.string() + " already exists");
    return ErrnoError("rename " + from.string() + " to " + to.string(), e);
  }
  KINDLING_RETURN_IF_ERROR(FsyncDirectory(to.parent_path()));
  if (from.parent_path() != to.parent_path())
    KINDLING_RETURN_IF_ERROR(FsyncDirectory(from.parent_path()));
  return OkStatus();
}

namespace {

// Files at least this large are written (and read) with O_DIRECT (where the filesystem
// has it) through a small aligned staging buffer: a user-space copy is far
// cheaper than the kernel's copy into fresh page-cache pages, and a chunk
// object written once and fsynced at once, or read once by a restore, gains
// nothing from the cache.
constexpr std::size_t kDirectWriteThreshold = 1 << 20;
constexpr std::size_t kStagingSize = 1 << 20;

Status WriteContent(int fd, const std::filesystem::path& path, std::string_view data) {
  UniqueFd direct;
  if (data.size() >= kDirectWriteThreshold) direct = OpenDirect(path, O_WRONLY);
  if (!direct.valid()) return PwriteFull(fd, data.data(), data.size(), 0);
  const DirectIo io(fd, direct.get());
  thread_local AlignedBuffer staging(kStagingSize);
  for (std::size_t done = 0; done < data.size();) {
    const std::size_t n = std::min(kStagingSize, data.size() - done);
    std::memcpy(staging.data(), data.data() + done, n);
    KINDLING_RETURN_IF_ERROR(io.Pwrite(staging.data(), n, done));
    done += n;
  }
  return OkStatus();
}

// The read side of the same: large files are read with O_DIRECT through the
// staging buffer. Returns the bytes read (short only at end of file).
Result<std::size_t> ReadContent(int fd, const std::filesystem::path& path, std::string& data) {
  UniqueFd direct;
  if (data.size() >= kDirectWriteThreshold) direct = OpenDirect(path, O_RDONLY);
  if (!direct.valid()) return PreadFull(fd, data.data(), data.size(), 0);
  const DirectIo io(fd, direct.get());
  thread_local AlignedBuffer staging(kStagingSize);
  std::size_t done = 0;
  while (done < data.size()) {
    const std::size_t want = std::min(kStagingSize, data.size() - done);
    KINDLING_ASSIGN_OR_RETURN(std::size_t got, io.Pread(staging.data(), want, done));
    std::memcpy(data.data() + done, staging.data(), got);
    done += got;
    if (got < want) break;  // end of file
  }
  return done;
}

}  // namespace

namespace {

// Moves `temp` to `path` without replacing anything there.
Status MoveNoReplace(const std::filesystem::path& temp, const std::filesystem::path& path) {
  if (::renameat2(AT_FDCWD, temp.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE) == 0)
    return OkStatus();
  int e = errno;
  if (e == EINVAL || e == ENOSYS) {
    // No RENAME_NOREPLACE here: link() fails with EEXIST just the same.
    if (::link(temp.c_str(), path.c_str()) == 0) {
      ::unlink(temp.c_str());
      return OkStatus();
    }
    e = errno;
  }
  if (e == EEXIST) return MakeError(ErrorKind::kAlreadyExists, path.string() + " already exists");
  return ErrnoError("rename to " + path.string() + " from " + temp.string(), e);
}

Status WriteFileImpl(const std::filesystem::path& path, std::string_view data, unsigned mode,
                     bool replace) {
  const auto temp = TempSiblingPath(path);
  UniqueFd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
  if (!fd.valid()) return ErrnoError("create " + temp.string(), errno);
  auto fail = [&](std::string_view what, int err) {
    ::unlink(temp.c_str());
    return ErrnoError(std::string(what) + " " + temp.string(), err);
  };
  if (auto st = WriteContent(fd.get(), temp, data); !st) {
    ::unlink(temp.c_str());
    return std::unexpected(st.error());
  }
  if (::fsync(fd.get()) != 0) return fail("fsync", errno);
  if (::close(fd.Release()) != 0) return fail("close", errno);
  if (replace) {
    if (::rename(temp.c_str(), path.c_str()) != 0)
      return fail("rename to " + path.string() + " from", errno);
  } else if (auto moved = MoveNoReplace(temp, path); !moved) {
    ::unlink(temp.c_str());
    return moved;
  }
  return FsyncDirectory(path.parent_path());
}

}  // namespace

Status WriteNewFileUnsynced(const std::filesystem::path& path, std::string_view data,
                            unsigned mode) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
  if (!fd.valid()) return ErrnoError("create " + path.string(), errno);
  if (auto st = WriteContent(fd.get(), path, data); !st) {
    ::unlink(path.c_str());
    return std::unexpected(st.error());
  }
  // What went through the page cache (small files, unaligned tails) starts
  // on its way to disk now, so that the caller's fsync has less to wait for.
  (void)::sync_file_range(fd.get(), 0, 0, SYNC_FILE_RANGE_WRITE);
  if (::close(fd.Release()) != 0) {
    const int e = errno;
    ::unlink(path.c_str());
    return ErrnoError("close " + path.string(), e);
  }
  return OkStatus();
}

Status FdatasyncFile(const std::filesystem::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError("open " + path.string(), errno);
  if (::fdatasync(fd.get()) != 0) return ErrnoError("fdatasync " + path.string(), errno);
  return OkStatus();
}

Status WriteFileAtomic(const std::filesystem::path& path, std::string_view data, unsigned mode) {
  return WriteFileImpl(path, data, mode, /*replace=*/true);
}

Status WriteFileNoReplace(const std::filesystem::path& path, std::string_view data, unsigned mode) {
  return WriteFileImpl(path, data, mode, /*replace=*/false);
}

Result<int> CreateDirectoriesDurably(const std::filesystem::path& dir) {
  // The missing levels, deepest first.
  std::vector<std::filesystem::path> missing;
  struct stat st {};
  for (std::filesystem::path p = dir; !p.empty(); p = p.parent_path()) {
    if (::stat(p.c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode)) return IoError("not a directory: " + p.string());
      break;
    }
    if (errno != ENOENT) return ErrnoError("stat " + p.string(), errno);
    missing.push_back(p);
    if (p == p.parent_path()) break;
  }
  int created = 0;
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    if (::mkdir(it->c_str(), 0755) == 0) {
      ++created;
      KINDLING_RETURN_IF_ERROR(FsyncDirectory(*it));
    } else if (errno != EEXIST) {
      return ErrnoError("create directory " + it->string(), errno);
    }
    // Also when a racing creator won: its fsync of the parent may not have
    // happened yet, and our file must not depend on it.
    KINDLING_RETURN_IF_ERROR(FsyncDirectory(it->parent_path()));
  }
  return created;
}

Result<std::string> ReadFile(const std::filesystem::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT) return NotFound("no such file: " + path.string());
    return ErrnoError("open " + path.string(), errno);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return ErrnoError("stat " + path.string(), errno);
  std::string data;
  data.resize(static_cast<std::size_t>(st.st_size));
  KINDLING_ASSIGN_OR_RETURN(std::size_t got, ReadContent(fd.get(), path, data));
  data.resize(got);
  return data;
}

Result<std::size_t> PreadFull(int fd, void* buffer, std::size_t size, std::uint64_t offset) {
  auto* out = static_cast<char*>(buffer);
  std::size_t done = 0;
  while (done < size) {
    ssize_t n = ::pread(fd, out + done, size - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("read", errno);
    }
    if (n == 0) break;
    done += static_cast<std::size_t>(n);
  }
  return done;
}

Status PwriteFull(int fd, const void* buffer, std::size_t size, std::uint64_t offset) {
  const auto* in = static_cast<const char*>(buffer);
  std::size_t done = 0;
  while (done < size) {
    ssize_t n = ::pwrite(fd, in + done, size - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("write", errno);
    }
    done += static_cast<std::size_t>(n);
  }
  return OkStatus();
}

Result<bool> RangeIsHole(int fd, std::uint64_t offset, std::uint64_t length) {
  if (length == 0) return true;
  off_t data = ::lseek(fd, static_cast<off_t>(offset), SEEK_DATA);
  if (data < 0) {
    if (errno == ENXIO) return true;  // no data at or after offset
    if (errno == EINVAL || errno == EOPNOTSUPP) return false;
    return ErrnoError("seek data", errno);
  }
  return static_cast<std::uint64_t>(data) >= offset + length;
}

UniqueFd OpenDirect(const std::filesystem::path& path, int flags) {
  return UniqueFd(::open(path.c_str(), flags | O_DIRECT | O_CLOEXEC));
}

std::size_t DirectIo::DirectPrefix(const void* buffer, std::size_t size,
                                   std::uint64_t offset) const {
  if (!direct()) return 0;
  if (reinterpret_cast<std::uintptr_t>(buffer) % kAlignment != 0 || offset % kAlignment != 0)
    return 0;
  return size / kAlignment * kAlignment;
}

namespace {

// cachestat(2) (Linux 6.5), declared here for older kernel headers.
#ifndef __NR_cachestat
#define __NR_cachestat 451  // the same in every architecture's table
#endif
struct CachestatRange {
  std::uint64_t off;
  std::uint64_t len;
};
struct Cachestat {
  std::uint64_t nr_cache;
  std::uint64_t nr_dirty;
  std::uint64_t nr_writeback;
  std::uint64_t nr_evicted;
  std::uint64_t nr_recently_evicted;
};

// Whether the page cache may hold a page of [offset, offset+size): false
// only when cachestat says it holds none (one cheap call, the usual case of
// a file read once); true where cachestat is missing.
bool MayBeCached(int fd, std::uint64_t offset, std::size_t size) {
  static std::atomic<bool> unsupported{false};
  if (unsupported.load(std::memory_order_relaxed)) return true;
  CachestatRange range{offset, size};
  Cachestat stat{};
  if (::syscall(__NR_cachestat, fd, &range, &stat, 0) == 0) return stat.nr_cache > 0;
  if (errno == ENOSYS) unsupported.store(true, std::memory_order_relaxed);
  return true;
}

// How many bytes from `offset` on (at most `size`) the page cache holds, to
// the page, by mincore() over a mapping that is never touched: no fault, no
// read-ahead. 0 when the file cannot be mapped.
std::size_t CachedPrefix(int fd, std::uint64_t offset, std::size_t size) {
  if (size == 0 || !MayBeCached(fd, offset, size)) return 0;
  static const auto page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  const std::uint64_t start = offset / page * page;
  const std::size_t span = static_cast<std::size_t>(offset + size - start);
  void* map = ::mmap(nullptr, span, PROT_READ, MAP_SHARED, fd, static_cast<off_t>(start));
  if (map == MAP_FAILED) return 0;
  thread_local std::vector<unsigned char> resident;
  resident.resize((span + page - 1) / page);
  std::uint64_t cached_end = start;
  if (::mincore(map, span, resident.data()) == 0) {
    for (unsigned char r : resident) {
      if ((r & 1) == 0) break;
      cached_end += page;
    }
  }
  ::munmap(map, span);
  return cached_end <= offset
             ? 0
             : static_cast<std::size_t>(std::min<std::uint64_t>(cached_end - offset, size));
}

}  // namespace

Result<std::size_t> DirectIo::Pread(char* buffer, std::size_t size, std::uint64_t offset) const {
  std::size_t done = 0;
  // What the page cache already holds is copied from it (no disk I/O). It
  // is found with mincore first: a read of an uncached page, even with
  // RWF_NOWAIT, starts a read-ahead into the page cache that would read
  // from disk again what the direct read then reads.
  if (const std::size_t cached = direct() ? CachedPrefix(buffered_, offset, size) : 0; cached > 0) {
    // RWF_NOWAIT stops at the first page no longer cached (evicted since).
    while (done < cached) {
      iovec iov{buffer + done, cached - done};
      const ssize_t n =
          ::preadv2(buffered_, &iov, 1, static_cast<off_t>(offset + done), RWF_NOWAIT);
      if (n < 0 && errno == EINTR) continue;
      if (n == 0) return done;  // end of file
      if (n < 0) break;         // EAGAIN: not cached; EOPNOTSUPP: no such reads here
      done += static_cast<std::size_t>(n);
    }
    if (done == size) return done;
  }
  const std::size_t direct = done + DirectPrefix(buffer + done, size - done, offset + done);
  while (done < direct) {
    const ssize_t n =
        ::pread(direct_, buffer + done, direct - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EINVAL) return ErrnoError("read", errno);
      direct_ok_.store(false, std::memory_order_relaxed);  // refused: page cache from now on
      break;
    }
    if (n == 0) return done;  // end of file
    done += static_cast<std::size_t>(n);
    if (done % kAlignment != 0) return done;  // a short read ends at end of file
  }
  KINDLING_ASSIGN_OR_RETURN(std::size_t rest,
                            PreadFull(buffered_, buffer + done, size - done, offset + done));
  return done + rest;
}

Status DirectIo::Pwrite(const char* data, std::size_t size, std::uint64_t offset) const {
  std::size_t done = 0;
  const std::size_t direct = DirectPrefix(data, size, offset);
  while (done < direct) {
    const ssize_t n =
        ::pwrite(direct_, data + done, direct - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EINVAL) return ErrnoError("write", errno);
      direct_ok_.store(false, std::memory_order_relaxed);
      break;
    }
    done += static_cast<std::size_t>(n);
    // A partial direct write (rare) leaves an unaligned remainder: finish it
    // through the page cache.
    if (done % kAlignment != 0) break;
  }
  return PwriteFull(buffered_, data + done, size - done, offset + done);
}

Result<std::size_t> PreadSparse(const DirectIo& io, char* buffer, std::size_t size,
                                std::uint64_t offset) {
  constexpr std::uint64_t kAlign = DirectIo::kAlignment;
  const std::uint64_t end = offset + size;
  std::uint64_t pos = offset;
  std::size_t read = 0;
  auto zero_to = [&](std::uint64_t until) {
    if (until > pos) std::memset(buffer + (pos - offset), 0, until - pos);
    pos = std::max(pos, until);
  };
  while (pos < end) {
    const off_t data = ::lseek(io.fd(), static_cast<off_t>(pos), SEEK_DATA);
    std::uint64_t data_end = end;
    if (data < 0) {
      if (errno == ENXIO) {  // only a hole (or end of file) from here
        zero_to(end);
        break;
      }
      if (errno != EINVAL && errno != EOPNOTSUPP) return ErrnoError("seek data", errno);
      // No SEEK_DATA: the rest is data.
    } else {
      if (static_cast<std::uint64_t>(data) >= end) {
        zero_to(end);
        break;
      }
      zero_to(static_cast<std::uint64_t>(data));
      const off_t hole = ::lseek(io.fd(), data, SEEK_HOLE);
      if (hole >= 0) {
        const std::uint64_t up = (static_cast<std::uint64_t>(hole) + kAlign - 1) / kAlign * kAlign;
        data_end = std::min(end, up);
      }
      // Widen the start to a 4 KiB boundary (what lies between is hole: zeros).
      pos = std::max(offset, pos / kAlign * kAlign);
    }
    const std::size_t want = static_cast<std::size_t>(data_end - pos);
    KINDLING_ASSIGN_OR_RETURN(std::size_t got, io.Pread(buffer + (pos - offset), want, pos));
    read += got;
    pos += got;
    if (got < want) {  // end of file: the rest reads as zeros
      zero_to(end);
      break;
    }
  }
  return read;
}

Result<std::size_t> PwriteSkippingZeroBlocks(const DirectIo& io, const char* data, std::size_t size,
                                             std::uint64_t offset) {
  constexpr std::uint64_t kBlock = 4096;
  // Block i of the buffer ends at the next 4 KiB boundary of the file.
  auto block_end = [&](std::size_t pos) {
    const std::uint64_t next = (offset + pos) / kBlock * kBlock + kBlock;
    return static_cast<std::size_t>(std::min<std::uint64_t>(next - offset, size));
  };
  std::size_t written = 0;
  std::size_t pos = 0;
  while (pos < size) {
    while (pos < size && IsAllZero(data + pos, block_end(pos) - pos)) pos = block_end(pos);
    const std::size_t start = pos;
    while (pos < size && !IsAllZero(data + pos, block_end(pos) - pos)) pos = block_end(pos);
    if (pos > start) {
      KINDLING_RETURN_IF_ERROR(io.Pwrite(data + start, pos - start, offset + start));
      written += pos - start;
    }
  }
  return written;
}

bool IsAllZero(const void* data, std::size_t size) {
  const auto* p = static_cast<const unsigned char*>(data);
  // Check a word-aligned prefix byte-wise, then compare the buffer with itself
  // shifted by 16 bytes: memcmp is vectorised and stops at the first difference.
  constexpr std::size_t kHead = 16;
  if (size <= kHead) {
    for (std::size_t i = 0; i < size; ++i)
      if (p[i] != 0) return false;
    return true;
  }
  for (std::size_t i = 0; i < kHead; ++i)
    if (p[i] != 0) return false;
  return std::memcmp(p, p + kHead, size - kHead) == 0;
}

}  // namespace kindling
