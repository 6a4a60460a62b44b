#include "engine/restore.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <map>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>

#include "common/files.h"
#include "engine/backup.h"
#include "engine/chunk_id_hash.h"
#include "engine/pipeline.h"
#include "repo/chunk_codec.h"

namespace kindling::engine {
namespace {

namespace fs = std::filesystem;
using repo::ChunkId;
using repo::Manifest;

// One fetch: a distinct chunk and every slot of the image that holds it.
struct Fetch {
  ChunkId id;
  std::vector<std::size_t> indexes;
};

std::vector<Fetch> PlanFetches(const Manifest& m) {
  std::vector<Fetch> fetches;
  std::unordered_map<ChunkId, std::size_t, ChunkIdHash> position;
  for (std::size_t i = 0; i < m.chunks.size(); ++i) {
    if (m.chunks[i].is_hole) continue;
    auto [it, inserted] = position.emplace(m.chunks[i].id, fetches.size());
    if (inserted) fetches.push_back(Fetch{m.chunks[i].id, {}});
    fetches[it->second].indexes.push_back(i);
  }
  return fetches;
}

// Temp files of restores that were killed: a live restore holds an exclusive
// flock on its temp file, so one we can lock is abandoned.
void RemoveAbandonedTempFiles(const fs::path& destination) {
  const std::string prefix = "." + destination.filename().string() + ".tmp-";
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(destination.parent_path(), ec)) {
    if (!entry.path().filename().string().starts_with(prefix)) continue;
    UniqueFd fd(::open(entry.path().c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.valid() && ::flock(fd.get(), LOCK_EX | LOCK_NB) == 0) ::unlink(entry.path().c_str());
  }
}

// Removes the temp file unless Commit() was called.
class TempFile {
 public:
  explicit TempFile(fs::path path) : path_(std::move(path)) {}
  ~TempFile() {
    if (!committed_) ::unlink(path_.c_str());
  }
  void Commit() { committed_ = true; }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
  bool committed_ = false;
};

// Decoded chunks handed from the fetch workers to the digest, by the slot
// that first holds them. Thread-safe.
class ReadySlots {
 public:
  void Put(std::size_t index, BufferPool::Handle buffer) {
    std::lock_guard lock(mu_);
    ready_.emplace(index, std::move(buffer));
    cv_.notify_all();
  }
  // Waits until `index` is put or `stop()` says to give up (null).
  template <typename StopFn>
  BufferPool::Handle Take(std::size_t index, StopFn stop) {
    std::unique_lock lock(mu_);
    for (;;) {
      if (auto it = ready_.find(index); it != ready_.end()) {
        BufferPool::Handle buffer = std::move(it->second);
        ready_.erase(it);
        return buffer;
      }
      if (stop()) return nullptr;
      cv_.wait_for(lock, std::chrono::milliseconds(50));
    }
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::size_t, BufferPool::Handle> ready_;
};

Status CheckDestination(const RestoreOptions& o) {
  if (o.destination.empty()) return InvalidArgument("restore destination is empty");
  if (o.threads < 0 || o.threads > 256) return InvalidArgument("threads must be 0-256");
  std::error_code ec;
  const fs::path dir =
      o.destination.parent_path().empty() ? fs::path(".") : o.destination.parent_path();
  if (!fs::is_directory(dir, ec))
    return InvalidArgument("destination directory does not exist: " + dir.string());
  const auto status = fs::symlink_status(o.destination, ec);
  if (fs::exists(status)) {
    if (!o.overwrite)
      return MakeError(ErrorKind::kAlreadyExists, "destination exists: " + o.destination.string() +
                                                      " (overwrite it with --force)");
    if (!fs::is_regular_file(status))
      return InvalidArgument("destination exists and is not a regular file: " +
                             o.destination.string());
  }
  return OkStatus();
}

Status CheckFreeSpace(const fs::path& dir, std::uint64_t needed) {
  struct statvfs vfs {};
  if (::statvfs(dir.c_str(), &vfs) != 0) return OkStatus();  // unknown: let writes tell
  const std::uint64_t available = static_cast<std::uint64_t>(vfs.f_bavail) * vfs.f_frsize;
  if (available < needed)
    return IoError("not enough space in " + dir.string() + ": the backup needs " +
                   std::to_string(needed) + " bytes of data, " + std::to_string(available) +
                   " are free");
  return OkStatus();
}

}  // namespace

Result<RestoreResult> RestoreBackup(const Repository& repository, const Manifest& m,
                                    const RestoreOptions& o) {
  KINDLING_RETURN_IF_ERROR(CheckDestination(o));
  const fs::path destination = fs::absolute(o.destination);
  const fs::path dir = destination.parent_path();
  const int threads = o.threads > 0 ? o.threads : DefaultThreads();
  KINDLING_RETURN_IF_ERROR(CheckFreeSpace(dir, m.stats.bytes_data));
  RemoveAbandonedTempFiles(destination);

  TempFile temp(TempSiblingPath(destination));
  UniqueFd fd(::open(temp.path().c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd.valid()) return ErrnoError("create " + temp.path().string(), errno);
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0)
    return ErrnoError("lock " + temp.path().string(), errno);
  if (::ftruncate(fd.get(), static_cast<off_t>(m.image_size)) != 0)
    return ErrnoError("size " + temp.path().string(), errno);

  const std::vector<Fetch> fetches = PlanFetches(m);
  // first_slot[i]: slot i is the first slot of its chunk (the one the digest
  // gets the decoded buffer for); later slots of a repeated chunk are read
  // back from the temp file, which holds them by then.
  std::vector<std::uint8_t> first_slot(m.chunks.size(), 0);
  for (const Fetch& f : fetches) first_slot[f.indexes.front()] = 1;

  // Workers take fetches in image order and hand the plaintext to the digest,
  // which consumes it in image order: the pool (threads + 4 buffers) is the
  // reorder window, so memory stays bounded whatever the image size. A worker
  // takes its buffer before it claims a fetch, so the lowest fetch not yet
  // digested always has a buffer and the window cannot deadlock.
  BufferPool pool(static_cast<std::size_t>(threads) + 4, m.chunk_size);
  // Chunks are written with O_DIRECT where the filesystem allows it: no copy
  // into the page cache, and the final fsync has no dirty pages to flush.
  const UniqueFd direct = OpenDirect(temp.path(), O_WRONLY);
  const DirectIo io(fd.get(), direct.get());
  ReadySlots ready;
  FirstError error;
  ProgressCounters counters;
  std::atomic<std::size_t> next_fetch{0};
  std::atomic<std::uint64_t> bytes_downloaded{0};
  // Holes need no work: they count as done from the start.
  std::uint64_t hole_bytes = 0;
  std::uint64_t hole_chunks = 0;
  for (std::size_t i = 0; i < m.chunks.size(); ++i) {
    if (!m.chunks[i].is_hole) continue;
    hole_bytes += m.ChunkLength(i);
    ++hole_chunks;
  }
  counters.bytes_done = hole_bytes;
  counters.chunks_done = hole_chunks;

  auto fetch_one = [&](repo::ChunkCodec& codec, AlignedBuffer& plain, const Fetch& f) -> Status {
    const std::string key = repo::ChunkKey(f.id);
    auto object = repository.store().Get(key);
    if (!object) {
      if (object.error().is_not_found())
        return Corruption("chunk " + crypto::DigestHex(f.id) + " is missing from the store (" +
                          key + ", image offset " +
                          std::to_string(m.ChunkOffset(f.indexes.front())) + ")");
      return std::unexpected(object.error().WithContext("read " + key));
    }
    bytes_downloaded.fetch_add(object->size(), std::memory_order_relaxed);
    counters.bytes_transferred.fetch_add(object->size(), std::memory_order_relaxed);
    auto size = codec.DecodeInto(*object, f.id, std::span<char>(plain.data(), plain.capacity()));
    if (!size) return std::unexpected(size.error().WithContext(key));
    plain.resize(*size);
    for (std::size_t index : f.indexes) {
      const std::uint64_t offset = m.ChunkOffset(index);
      if (plain.size() != m.ChunkLength(index))
        return Corruption("chunk " + crypto::DigestHex(f.id) + " has " +
                          std::to_string(plain.size()) + " bytes but its slot at offset " +
                          std::to_string(offset) + " has " + std::to_string(m.ChunkLength(index)));
      // The temp file is new and sized with ftruncate, so it reads as zeros
      // everywhere: all-zero blocks are left as holes.
      auto written = PwriteSkippingZeroBlocks(io, plain.data(), plain.size(), offset);
      if (!written)
        return std::unexpected(written.error().WithContext("write " + temp.path().string()));
      // Start writeback of what went through the page cache now, so the
      // final fsync has little left to wait for.
      if (*written > 0 && !io.direct())
        ::sync_file_range(fd.get(), static_cast<off_t>(offset), static_cast<off_t>(plain.size()),
                          SYNC_FILE_RANGE_WRITE);
      counters.bytes_done.fetch_add(plain.size(), std::memory_order_relaxed);
      counters.chunks_done.fetch_add(1, std::memory_order_relaxed);
    }
    return OkStatus();
  };

  crypto::Digest digest{};
  {
    ProgressTicker ticker(o.progress, counters, "restore", m.image_size, m.chunks.size());
    WorkerGroup workers(threads, [&](int) {
      repo::ChunkCodec codec(repository.keys(), 1);
      while (!error.CheckCancel(o.cancel)) {
        BufferPool::Handle plain = pool.Acquire();
        if (!plain) break;
        const std::size_t n = next_fetch.fetch_add(1, std::memory_order_relaxed);
        if (n >= fetches.size()) break;
        if (auto st = fetch_one(codec, *plain, fetches[n]); !st) {
          error.Set(st.error());
          break;
        }
        ready.Put(fetches[n].indexes.front(), std::move(plain));
      }
    });

    // The digest runs here, over the decoded plaintext in image order (holes
    // as zeros), concurrently with the fetches.
    crypto::Sha256 sha;
    std::string readback;
    for (std::size_t i = 0; i < m.chunks.size(); ++i) {
      const std::uint64_t length = m.ChunkLength(i);
      if (m.chunks[i].is_hole) {
        sha.UpdateZeros(length);
        continue;
      }
      if (error.CheckCancel(o.cancel)) break;
      if (first_slot[i]) {
        BufferPool::Handle plain = ready.Take(i, [&] { return error.CheckCancel(o.cancel); });
        if (!plain) break;
        sha.Update(plain->data(), plain->size());
        continue;
      }
      readback.resize(length);
      auto got = PreadFull(fd.get(), readback.data(), length, m.ChunkOffset(i));
      if (!got || *got != length) {
        error.Set(got ? Error(ErrorKind::kIo, "short read of " + temp.path().string())
                      : got.error().WithContext("read back " + temp.path().string()));
        break;
      }
      sha.Update(readback.data(), length);
    }
    if (error.failed()) pool.Close();  // unblocks workers waiting for a buffer
    workers.Join();
    if (error.failed()) return std::unexpected(error.Take());
    digest = sha.Finish();
    ticker.Finish();
  }

  if (digest != m.image_sha256)
    return Corruption("restored image digest " + crypto::DigestHex(digest) +
                      " does not match the backup's " + crypto::DigestHex(m.image_sha256));
  if (o.cancel != nullptr && o.cancel->load()) return Cancelled();
  if (::fsync(fd.get()) != 0) return ErrnoError("fsync " + temp.path().string(), errno);
  const unsigned flags = o.overwrite ? 0 : RENAME_NOREPLACE;
  if (::renameat2(AT_FDCWD, temp.path().c_str(), AT_FDCWD, destination.c_str(), flags) != 0)
    return ErrnoError("rename " + temp.path().string() + " to " + destination.string(), errno);
  temp.Commit();
  KINDLING_RETURN_IF_ERROR(FsyncDirectory(dir));

  RestoreResult result;
  result.image_size = m.image_size;
  result.bytes_downloaded = bytes_downloaded.load();
  result.chunks_fetched = fetches.size();
  result.image_sha256_hex = crypto::DigestHex(digest);
  return result;
}

}  // namespace kindling::engine
