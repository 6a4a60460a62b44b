// Local file helpers for crash-safe writes and sparse files.
//
// Every function is thread-safe (no shared state). Paths are passed as
// std::filesystem::path; errors come back as ErrorKind::kIo (or kNotFound).
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "common/result.h"

namespace kindling {

// Owns a file descriptor; closes it on destruction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.Release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd();

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int Release();

 private:
  int fd_ = -1;
};

// Writes `data` to `path` atomically: a temp file in the same directory, fsync,
// rename over `path`, fsync of the directory. A crash leaves either the old
// content or the new one, plus at worst a stray ".tmp-*" file that nothing reads.
// Content of 1 MiB or more is written with O_DIRECT where the filesystem has
// it (through a small per-thread staging buffer), sparing the page cache.
[[nodiscard]] Status WriteFileAtomic(const std::filesystem::path& path, std::string_view data,
                                     unsigned mode = 0644);

// As WriteFileAtomic, but never replaces: the temp file is moved into place
// with renameat2(RENAME_NOREPLACE) (link() + unlink() where the filesystem
// lacks it), so of racing creators exactly one wins and the others get
// kAlreadyExists; the winner's content is never touched.
[[nodiscard]] Status WriteFileNoReplace(const std::filesystem::path& path, std::string_view data,
                                        unsigned mode = 0644);

// Creates `path`, which must not exist, holding `data`: written as
// WriteFileAtomic writes its temp file, with the writeback started but not
// waited for. Neither the file nor its name is durable when this returns:
// the caller fsyncs it (and its directory) before anything relies on it.
[[nodiscard]] Status WriteNewFileUnsynced(const std::filesystem::path& path, std::string_view data,
                                          unsigned mode = 0644);

// fdatasyncs the file at `path`: its data, and the size that reads it, are
// durable once this returns.
[[nodiscard]] Status FdatasyncFile(const std::filesystem::path& path);

// Creates `dir` and its missing parents, fsyncing each directory it creates
// and the directory that holds it, so the new names survive a crash (a file
// fsynced inside a directory whose own entry was lost is lost too). Returns
// how many directories it created; a directory a racing creator made first
// counts as existing (its parent is fsynced all the same).
[[nodiscard]] Result<int> CreateDirectoriesDurably(const std::filesystem::path& dir);

// Reads a whole file. kNotFound when it does not exist. Files of 1 MiB or
// more are read with O_DIRECT where the filesystem has it.
[[nodiscard]] Result<std::string> ReadFile(const std::filesystem::path& path);

// fsyncs a directory so that a rename or create inside it is durable.
[[nodiscard]] Status FsyncDirectory(const std::filesystem::path& dir);

// Renames `from` to `to` (failing with kAlreadyExists when `to` exists) and
// fsyncs both directories, so the move survives a crash once this returns.
[[nodiscard]] Status RenameNoReplaceDurably(const std::filesystem::path& from,
                                            const std::filesystem::path& to);

// Returns "<dir>/.<name>.tmp-<random>": a sibling temp path that globbing for
// `name` never matches.
std::filesystem::path TempSiblingPath(const std::filesystem::path& path);

// Reads exactly `size` bytes at `offset` (short only at end of file).
[[nodiscard]] Result<std::size_t> PreadFull(int fd, void* buffer, std::size_t size,
                                            std::uint64_t offset);
// Writes exactly `size` bytes at `offset`.
[[nodiscard]] Status PwriteFull(int fd, const void* buffer, std::size_t size, std::uint64_t offset);

// True when [offset, offset+length) of `fd` holds no data extent (a hole), using
// SEEK_DATA. Filesystems without SEEK_DATA report data everywhere (false).
[[nodiscard]] Result<bool> RangeIsHole(int fd, std::uint64_t offset, std::uint64_t length);

// Opens `path` with `flags | O_DIRECT | O_CLOEXEC`. An invalid fd when the
// filesystem does not support direct I/O (or the open fails otherwise): the
// caller then uses the page cache.
UniqueFd OpenDirect(const std::filesystem::path& path, int flags);

// Reads and writes one file through two descriptors: O_DIRECT for the
// 4 KiB-aligned part of each request (buffer address, offset and length),
// the page cache for the rest, and for everything once the filesystem has
// refused a direct request. Direct I/O saves the kernel's copy and does not
// fill the page cache with an image that is read or written once. A read
// first copies what the page cache already holds at the start of the range
// (found with mincore, which starts no read-ahead). Does not own the
// descriptors. Thread-safe.
class DirectIo {
 public:
  static constexpr std::size_t kAlignment = 4096;

  // `buffered` is REQUIRED; `direct` may be -1 (page cache only).
  explicit DirectIo(int buffered, int direct = -1)
      : buffered_(buffered), direct_(direct), direct_ok_(direct >= 0) {}

  // The buffered descriptor, for lseek, fsync and the like.
  int fd() const { return buffered_; }
  // Whether requests still go through O_DIRECT.
  bool direct() const { return direct_ok_.load(std::memory_order_relaxed); }

  // As PreadFull / PwriteFull.
  [[nodiscard]] Result<std::size_t> Pread(char* buffer, std::size_t size,
                                          std::uint64_t offset) const;
  [[nodiscard]] Status Pwrite(const char* data, std::size_t size, std::uint64_t offset) const;

 private:
  // The length of the prefix of a request that may go through O_DIRECT.
  std::size_t DirectPrefix(const void* buffer, std::size_t size, std::uint64_t offset) const;

  int buffered_;
  int direct_;
  mutable std::atomic<bool> direct_ok_;
};

// Fills `buffer` with [offset, offset+size) of the file, reading only the
// data extents (SEEK_DATA/SEEK_HOLE, widened to 4 KiB boundaries inside the
// range so that they suit direct I/O) and zero-filling holes, so holes cost
// neither I/O nor a kernel copy. Returns the bytes actually read. A range
// past end of file reads as a hole. Filesystems without SEEK_DATA are read
// whole.
[[nodiscard]] Result<std::size_t> PreadSparse(const DirectIo& io, char* buffer, std::size_t size,
                                              std::uint64_t offset);
[[nodiscard]] inline Result<std::size_t> PreadSparse(int fd, char* buffer, std::size_t size,
                                                     std::uint64_t offset) {
  return PreadSparse(DirectIo(fd), buffer, size, offset);
}

// Writes `data` at `offset` but skips every 4 KiB block (aligned on file
// offsets) that is all zeros, so they stay holes. Returns the bytes written.
// REQUIRES: the range already reads as zeros (e.g. a fresh file extended with
// ftruncate): skipped blocks are not cleared.
[[nodiscard]] Result<std::size_t> PwriteSkippingZeroBlocks(const DirectIo& io, const char* data,
                                                           std::size_t size, std::uint64_t offset);
[[nodiscard]] inline Result<std::size_t> PwriteSkippingZeroBlocks(int fd, const char* data,
                                                                  std::size_t size,
                                                                  std::uint64_t offset) {
  return PwriteSkippingZeroBlocks(DirectIo(fd), data, size, offset);
}

// True when every byte of the buffer is zero.
bool IsAllZero(const void* data, std::size_t size);

}  // namespace kindling
