#include "engine/restore.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>

#include "common/aligned_buffer.h"
#include "common/files.h"
#include "engine/backup.h"
#include "engine/chunk_id_hash.h"
#include "engine/damage.h"
#include "engine/pipeline.h"
#include "repo/chunk_codec.h"
#include "repo/image_digest.h"

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
  // Each worker fetches distinct chunks (in image order, so the file fills
  // front to back), checks, decodes and writes them to every slot that holds
  // them, and records their digests; holes need nothing. The image digest is
  // assembled from those chunk digests, so it costs no pass of its own.
  // Memory: one chunk buffer per worker, whatever the image size.
  repo::ImageDigest image_digest(m.image_size, m.chunk_size);
  // Chunks are written with O_DIRECT where the filesystem allows it: no copy
  // into the page cache, and the final fsync has no dirty pages to flush.
  const UniqueFd direct = OpenDirect(temp.path(), O_WRONLY);
  const DirectIo io(fd.get(), direct.get());
  FirstError error;
  ProgressCounters counters;
  std::atomic<std::size_t> next_fetch{0};
  std::atomic<std::uint64_t> bytes_downloaded{0};
  // Holes need no work: they count as done from the start.
  std::uint64_t hole_bytes = 0;
  std::uint64_t hole_chunks = 0;
  for (std::size_t i = 0; i < m.chunks.size(); ++i) {
    if (!m.chunks[i].is_hole) continue;
    image_digest.SetZeroChunk(i);
    hole_bytes += m.ChunkLength(i);
    ++hole_chunks;
  }
  counters.bytes_done = hole_bytes;
  counters.chunks_done = hole_chunks;

  auto fetch_one = [&](repo::ChunkCodec& codec, AlignedBuffer& plain, const Fetch& f) -> Status {
    const std::string key = repo::ChunkKey(f.id);
    auto object = repository.store().Get(key);
    if (!object) {
      if (object.error().is_not_found()) {
        RecordChunkDamageOrWarn(repository, f.id, m.volume_id, m.backup_id);
        return Corruption("chunk " + crypto::DigestHex(f.id) + " is missing from the store (" +
                          key + ", image offset " +
                          std::to_string(m.ChunkOffset(f.indexes.front())) + ")");
      }
      return std::unexpected(object.error().WithContext("read " + key));
    }
    bytes_downloaded.fetch_add(object->size(), std::memory_order_relaxed);
    counters.bytes_transferred.fetch_add(object->size(), std::memory_order_relaxed);
    crypto::Digest plain_sha256{};
    auto size = codec.DecodeInto(*object, f.id, std::span<char>(plain.data(), plain.capacity()),
                                 &plain_sha256);
    if (!size) {
      // Recording fetches the object again and decodes it without this
      // slot's limit, so a manifest that is wrong about a sound chunk
      // (larger than its slot) records nothing.
      if (size.error().is_corruption())
        RecordChunkDamageOrWarn(repository, f.id, m.volume_id, m.backup_id);
      return std::unexpected(size.error().WithContext(key));
    }
    plain.resize(*size);
    for (std::size_t index : f.indexes) {
      image_digest.SetChunk(index, plain_sha256);
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
      AlignedBuffer plain(m.chunk_size);
      while (!error.CheckCancel(o.cancel)) {
        const std::size_t n = next_fetch.fetch_add(1, std::memory_order_relaxed);
        if (n >= fetches.size()) break;
        if (auto st = fetch_one(codec, plain, fetches[n]); !st) {
          error.Set(st.error());
          break;
        }
      }
    });
    workers.Join();
    if (error.failed()) return std::unexpected(error.Take());
    KINDLING_ASSIGN_OR_RETURN(digest, image_digest.Finish());
    ticker.Finish();
  }

  if (digest != m.image_digest)
    return Corruption("restored image digest " + crypto::DigestHex(digest) +
                      " does not match the backup's " + crypto::DigestHex(m.image_digest));
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
  result.image_digest_hex = crypto::DigestHex(digest);
  return result;
}

}  // namespace kindling::engine
