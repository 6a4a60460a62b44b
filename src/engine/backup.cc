#include "engine/backup.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "common/aligned_buffer.h"
#include "common/files.h"
#include "common/ids.h"
#include "engine/changed_blocks.h"
#include "engine/chunk_id_hash.h"
#include "engine/damage.h"
#include "engine/gc.h"
#include "engine/image_file.h"
#include "engine/pipeline.h"
#include "engine/snapshots.h"
#include "repo/chunk_codec.h"
#include "repo/image_digest.h"
#include "repo/layout.h"

namespace kindling::engine {
namespace {

using repo::ChunkId;
using repo::ChunkRef;
using repo::Manifest;

std::uint64_t MsSince(std::chrono::steady_clock::time_point start) {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::steady_clock::now() - start)
                                        .count());
}

std::uint64_t NowUnixMs() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

// Asks the kernel to start reading the data extents of the next `window`
// bytes, so the disk works ahead of the reader (a cold image read through the
// page cache, when direct I/O is not available) and the reader mostly waits
// for a copy, not a seek. Holes are skipped: readahead of a hole would fill
// the page cache with zeros.
class Prefetcher {
 public:
  Prefetcher(int fd, std::uint64_t size, std::uint64_t window)
      : fd_(fd), size_(size), window_(window) {}

  void Advance(std::uint64_t position) {
    const std::uint64_t limit = std::min(size_, position + window_);
    while (done_ < limit) {
      const off_t data = ::lseek(fd_, static_cast<off_t>(done_), SEEK_DATA);
      if (data < 0) {  // no data left, or no SEEK_DATA: leave it to readahead
        done_ = size_;
        return;
      }
      const auto start = static_cast<std::uint64_t>(data);
      if (start >= limit) {
        done_ = start;
        return;
      }
      const off_t hole = ::lseek(fd_, data, SEEK_HOLE);
      const std::uint64_t end = hole < 0 ? limit : std::min<std::uint64_t>(hole, limit);
      ::posix_fadvise(fd_, data, static_cast<off_t>(end - start), POSIX_FADV_WILLNEED);
      done_ = end;
    }
  }

 private:
  int fd_;
  std::uint64_t size_;
  std::uint64_t window_;
  std::uint64_t done_ = 0;
};

using ChunkIdSet = std::unordered_set<ChunkId, ChunkIdHash>;

// Chunk ids this backup may reference without checking the store, with their
// stored sizes: everything the volume's earlier manifests reference (but the
// chunks recorded damaged), plus what this backup has stored or found so far.
// Thread-safe.
class KnownChunks {
 public:
  std::optional<std::uint32_t> Find(const ChunkId& id) {
    std::lock_guard lock(mu_);
    auto it = map_.find(id);
    if (it == map_.end()) return std::nullopt;
    return it->second;
  }
  void Add(const ChunkId& id, std::uint32_t stored_size) {
    std::lock_guard lock(mu_);
    map_.emplace(id, stored_size);
  }
  // This backup stored `id` as an object of `stored_size` bytes. True the
  // first time for `id` (two workers may store the same new chunk at once).
  bool Stored(const ChunkId& id, std::uint32_t stored_size) {
    std::lock_guard lock(mu_);
    map_.insert_or_assign(id, stored_size);
    return stored_.insert(id).second;
  }

 private:
  std::mutex mu_;
  std::unordered_map<ChunkId, std::uint32_t, ChunkIdHash> map_;
  ChunkIdSet stored_;
};

// The recorded damaged chunks this backup stored again. Thread-safe.
class Heals {
 public:
  void Add(const ChunkId& id) {
    std::lock_guard lock(mu_);
    ids_.insert(id);
  }
  std::vector<ChunkId> Sorted() {
    std::lock_guard lock(mu_);
    std::vector<ChunkId> ids(ids_.begin(), ids_.end());
    std::sort(ids.begin(), ids.end());
    return ids;
  }

 private:
  std::mutex mu_;
  ChunkIdSet ids_;
};

// The volume's newest manifest (by key: backup ids are time-ordered UUIDs)
// that can be read seeds the known set, except for the chunks recorded
// damaged. Older manifests add little (what changed since is uploaded or
// found by a HEAD) and would cost a read each. A manifest that cannot be read
// is passed over: it only costs a HEAD per chunk, and must not fail this
// backup. Its chunks exist for as long as this backup holds its writer
// marker (engine/gc.h): no sweep runs meanwhile.
void LoadPreviousChunks(const Repository& repository, std::string_view volume_id,
                        const ChunkIdSet& damaged, KnownChunks& known) {
  auto objects = repository.store().List(repo::VolumeBackupsPrefix(volume_id));
  if (!objects) return;
  for (auto it = objects->rbegin(); it != objects->rend(); ++it) {
    auto name = repo::ParseManifestKey(it->key);
    if (!name) continue;
    auto manifest = repository.LoadManifest(name->volume_id, name->backup_id);
    if (!manifest) continue;
    for (const ChunkRef& c : manifest->chunks)
      if (!c.is_hole && !damaged.contains(c.id)) known.Add(c.id, c.stored_size);
    return;
  }
}

// The clone this backup reads, when it takes one.
struct Snapshot {
  std::optional<SnapshotDir> dir;
  std::filesystem::path path;  // empty: read the live image
};

// Takes the clone of the image open at `live` (see BackupOptions::snapshot).
// Where the filesystem cannot clone: kFailedPrecondition for kOn, else no
// snapshot and the reason in `report.fallback`.
Result<Snapshot> TakeSnapshot(const BackupOptions& o, const ExtentFs& fs, int live,
                              std::string_view backup_id, BackupReport& report) {
  Snapshot snap;
  if (o.snapshot == Use::kOff) return snap;
  auto cannot = [&](const std::string& why) -> Result<Snapshot> {
    if (o.snapshot == Use::kOn || o.changed_blocks == Use::kOn)
      return FailedPrecondition("cannot snapshot " + o.image.string() + ": " + why);
    report.fallback = "no snapshot: " + why;
    return Snapshot{};
  };
  struct stat st {};
  if (::fstat(live, &st) != 0 || !S_ISREG(st.st_mode)) return cannot("not a regular file");
  auto info = fs.Info(live);
  if (!info) return cannot("its filesystem: " + info.error().message());
  if (info->kind == FsKind::kOther)
    return cannot("its filesystem (" + info->name + ") cannot clone files (reflink)");
  KINDLING_ASSIGN_OR_RETURN(SnapshotDir dir, SnapshotDir::Open(o.image));
  // The image's dirty pages written out before around_snapshot (which may
  // pause a VM): the clone then flushes only what was written since.
  (void)::fdatasync(live);
  const auto started = std::chrono::steady_clock::now();
  Result<std::filesystem::path> taken = std::filesystem::path();
  auto take = [&]() -> Status {
    taken = dir.Take(fs, live, backup_id);
    return taken ? OkStatus() : Status(std::unexpected(taken.error()));
  };
  Status st_taken = o.around_snapshot ? o.around_snapshot(take) : take();
  report.snapshot_ms = MsSince(started);
  if (!taken) {
    if (taken.error().kind() == ErrorKind::kFailedPrecondition) {
      dir.RemoveIfEmpty();
      return cannot(taken.error().message());
    }
    return std::unexpected(taken.error());
  }
  if (!st_taken) return std::unexpected(st_taken.error());
  if (taken->empty()) return InternalError("around_snapshot did not take the snapshot");
  snap.path = *taken;
  snap.dir.emplace(std::move(dir));
  return snap;
}

// The chunks of this backup that need no read: unchanged since the previous
// snapshot, with what the previous backup recorded of them.
struct ChangedPlan {
  std::vector<bool> unchanged;  // per chunk of this backup's image
  repo::Manifest previous;
  SnapshotDigests digests;
};

constexpr int kDiffAttempts = 3;

// The extent diff of the previous snapshot against `current` (open, `size`
// bytes): nullopt with the reason when the maps cannot be trusted. The
// previous snapshot's map is read before and after the current one's and
// must not move; on btrfs neither may the generation, nor a balance run.
Result<std::vector<ByteRange>> DiffSnapshots(const ExtentFs& fs, int previous,
                                             std::uint64_t previous_size, int current,
                                             std::uint64_t size, std::string& why) {
  for (int attempt = 0; attempt < kDiffAttempts; ++attempt) {
    auto before = fs.Info(current);
    auto old_map = fs.Map(previous);
    auto new_map = fs.Map(current);
    auto old_again = fs.Map(previous);
    auto after = fs.Info(current);
    if (!before || !after) {
      why = "filesystem: " + (!before ? before.error() : after.error()).message();
      return std::vector<ByteRange>{};
    }
    if (before->kind == FsKind::kBtrfs && before->generation == 0) {
      why = "the btrfs generation is unknown (kernel without FS_INFO generation)";
      return std::vector<ByteRange>{};
    }
    for (const auto* m : {&old_map, &new_map, &old_again})
      if (!*m) {
        why = "extent map: " + m->error().message();
        return std::vector<ByteRange>{};
      }
    if (before->relocating || after->relocating) {
      why = "a btrfs balance is relocating extents";
      continue;
    }
    if (before->generation != after->generation) {
      why = "the btrfs generation moved while the snapshots were compared";
      continue;
    }
    if (*old_map != *old_again) {
      why = "the previous snapshot's extents moved while the snapshots were compared";
      continue;
    }
    auto ranges = UnchangedRanges(*old_map, previous_size, *new_map, size);
    if (!ranges) {
      why = ranges.error().message();
      return std::vector<ByteRange>{};
    }
    why.clear();
    return ranges;
  }
  return std::vector<ByteRange>{};
}

// Plans the changed-block read (see BackupOptions::changed_blocks); nullopt
// with the reason in `report.fallback` when the full read must run.
Result<std::optional<ChangedPlan>> PlanChangedBlocks(
    const Repository& repository, const BackupOptions& o, const ExtentFs& fs, const Snapshot& snap,
    int current, const repo::Manifest& m, const ChunkIdSet& damaged, BackupReport& report) {
  auto fallback = [&](const std::string& why) -> Result<std::optional<ChangedPlan>> {
    report.fallback = "full read: " + why;
    return std::optional<ChangedPlan>();
  };
  if (o.changed_blocks == Use::kOff) return std::optional<ChangedPlan>();
  if (snap.path.empty()) return std::optional<ChangedPlan>();  // fallback already says why
  const auto& previous = snap.dir->previous();
  if (!previous) return fallback("no previous snapshot of this image");
  auto bytes = ReadFile(previous->digests);
  if (!bytes) return fallback("previous snapshot digests: " + bytes.error().message());
  auto digests = DecodeSnapshotDigests(*bytes);
  if (!digests) return fallback(digests.error().message());
  if (digests->volume_id != m.volume_id || digests->backup_id != previous->backup_id)
    return fallback("the previous snapshot belongs to another volume");
  if (digests->chunk_size != m.chunk_size)
    return fallback("the previous backup used another chunk size");
  auto manifest = repository.LoadManifest(m.volume_id, previous->backup_id);
  if (!manifest)
    return fallback("the previous snapshot's backup " + previous->backup_id +
                    " cannot be read from this store: " + manifest.error().message());
  if (manifest->image_size != digests->image_size || manifest->chunk_size != m.chunk_size)
    return fallback("the previous snapshot does not match its backup's manifest");

  const auto started = std::chrono::steady_clock::now();
  UniqueFd old_fd(::open(previous->snap.c_str(), O_RDONLY | O_CLOEXEC));
  if (!old_fd.valid()) return fallback("open previous snapshot: " + std::string(strerror(errno)));
  struct stat old_st {};
  if (::fstat(old_fd.get(), &old_st) != 0 ||
      static_cast<std::uint64_t>(old_st.st_size) != digests->image_size)
    return fallback("the previous snapshot's size is not its backup's");
  std::string why;
  KINDLING_ASSIGN_OR_RETURN(
      const std::vector<ByteRange> ranges,
      DiffSnapshots(fs, old_fd.get(), digests->image_size, current, m.image_size, why));
  report.diff_ms = MsSince(started);
  if (!why.empty()) return fallback(why);

  ChangedPlan plan;
  plan.unchanged = UnchangedChunks(ranges, digests->image_size, m.image_size, m.chunk_size);
  // The digests file must agree with the manifest for every chunk it lets
  // this backup skip: a data chunk's keyed id derives from its digest, a
  // hole's digest is the zero chunk's.
  repo::ChunkCodec codec(repository.keys(), 1);
  KINDLING_ASSIGN_OR_RETURN(const crypto::Digest zero_full, repo::ZeroBytesSha256(m.chunk_size));
  for (std::size_t i = 0; i < plan.unchanged.size(); ++i) {
    if (!plan.unchanged[i]) continue;
    const repo::ChunkRef& ref = manifest->chunks[i];
    if (ref.is_hole) {
      const crypto::Digest zero = m.ChunkLength(i) == m.chunk_size
                                      ? zero_full
                                      : repo::ZeroBytesSha256(m.ChunkLength(i)).value();
      if (digests->chunks[i] != zero)
        return fallback("the previous snapshot's digests disagree with its manifest");
      continue;
    }
    KINDLING_ASSIGN_OR_RETURN(const ChunkId id, codec.IdOf(digests->chunks[i]));
    if (id != ref.id) return fallback("the previous snapshot's digests disagree with its manifest");
    if (damaged.contains(ref.id)) plan.unchanged[i] = false;  // read and healed
  }
  plan.previous = std::move(*manifest);
  plan.digests = std::move(*digests);
  return std::optional<ChangedPlan>(std::move(plan));
}

Status ValidateOptions(const BackupOptions& o, std::uint32_t chunk_size) {
  if (!IsSafeKeyComponent(o.volume_id))
    return InvalidArgument("volume id must be 1-128 characters of [A-Za-z0-9._-]: '" + o.volume_id +
                           "'");
  if (!o.backup_id.empty() && !IsSafeKeyComponent(o.backup_id))
    return InvalidArgument("backup id must be 1-128 characters of [A-Za-z0-9._-]: '" + o.backup_id +
                           "'");
  if (chunk_size < repo::kMinChunkSize || chunk_size > repo::kMaxChunkSize ||
      chunk_size % 4096 != 0)
    return InvalidArgument("chunk size must be a multiple of 4096 between 64 KiB and 64 MiB");
  if (o.zstd_level < 1 || o.zstd_level > 19)
    return InvalidArgument("compression level must be 1-19");
  if (o.threads < 0 || o.threads > 256) return InvalidArgument("threads must be 0-256");
  if (o.changed_blocks != Use::kOff && o.snapshot == Use::kOff)
    return InvalidArgument("changed blocks need a snapshot (snapshot off)");
  return OkStatus();
}

}  // namespace

std::optional<Use> ParseUse(std::string_view text) {
  if (text == "off") return Use::kOff;
  if (text == "auto") return Use::kAuto;
  if (text == "on") return Use::kOn;
  return std::nullopt;
}

std::string_view UseName(Use use) {
  switch (use) {
    case Use::kOff:
      return "off";
    case Use::kAuto:
      return "auto";
    case Use::kOn:
      return "on";
  }
  return "off";
}

std::uint64_t MinChunkSizeFor(std::uint64_t image_size, std::uint64_t max_chunks) {
  if (max_chunks == 0) max_chunks = repo::kMaxManifestChunks;
  const std::uint64_t at_least = (image_size + max_chunks - 1) / max_chunks;
  const std::uint64_t aligned =
      std::max<std::uint64_t>((at_least + 4095) / 4096 * 4096, repo::kMinChunkSize);
  return aligned;
}

int DefaultThreads() {
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  return static_cast<int>(std::clamp(cores * 2, 4u, 16u));
}

Result<Manifest> CreateBackup(const Repository& repository, const BackupOptions& o) {
  const auto started = std::chrono::steady_clock::now();
  const std::uint32_t chunk_size =
      o.chunk_size != 0 ? o.chunk_size : repository.keys().default_chunk_size;
  KINDLING_RETURN_IF_ERROR(ValidateOptions(o, chunk_size));
  storage::ObjectStore& store = repository.store();

  Manifest m;
  m.volume_id = o.volume_id;
  m.backup_id = o.backup_id.empty() ? NewUuidV7() : o.backup_id;
  m.chunk_size = chunk_size;
  const std::string manifest_key = repo::ManifestKey(m.volume_id, m.backup_id);
  if (auto head = store.Head(manifest_key); head)
    return MakeError(ErrorKind::kAlreadyExists, "backup " + m.backup_id + " already exists");
  else if (!head.error().is_not_found())
    return std::unexpected(head.error());

  BackupReport report;
  const ExtentFs& fs = o.extent_fs != nullptr ? *o.extent_fs : DefaultExtentFs();
  Snapshot snap;
  ImageFile image;
  {
    KINDLING_ASSIGN_OR_RETURN(ImageFile live, OpenImage(o.image));
    KINDLING_ASSIGN_OR_RETURN(snap, TakeSnapshot(o, fs, live.fd.get(), m.backup_id, report));
    if (snap.path.empty()) {
      image = std::move(live);
    } else {
      KINDLING_ASSIGN_OR_RETURN(image, OpenImage(snap.path));
      report.snapshot = snap.path;
    }
  }
  m.image_size = image.size;
  // Checked before any work: past the manifest format's limit, the backup
  // could read and upload the whole image and then fail to commit.
  const std::uint64_t max_chunks = o.max_chunks != 0 ? o.max_chunks : repo::kMaxManifestChunks;
  if (const std::uint64_t count = repo::ChunkCount(m.image_size, chunk_size); count > max_chunks)
    return InvalidArgument("image " + o.image.string() + " of " + std::to_string(m.image_size) +
                           " bytes is " + std::to_string(count) + " chunks of " +
                           std::to_string(chunk_size) + " bytes, more than a manifest holds (" +
                           std::to_string(max_chunks) + "); use a chunk size of at least " +
                           std::to_string(MinChunkSizeFor(m.image_size, max_chunks)) + " bytes");
  const std::size_t chunk_count = repo::ChunkCount(m.image_size, chunk_size);
  m.chunks.resize(chunk_count);

  if (o.healed != nullptr) o.healed->clear();
  // Held from before this backup learns which chunks exist until its
  // manifest is written: no garbage collection sweeps meanwhile.
  KINDLING_ASSIGN_OR_RETURN(const std::unique_ptr<WriterMarker> marker,
                            WriterMarker::Acquire(repository, m.backup_id, o.gc_timing, o.cancel));
  // A chunk recorded damaged is trusted neither from earlier manifests nor
  // from a HEAD: it is stored again, which repairs every backup that
  // references it. Without the records the backup cannot know what not to
  // trust, so failing to list them fails the backup.
  KINDLING_ASSIGN_OR_RETURN(const std::vector<ChunkId> recorded, ListDamagedChunks(repository));
  const ChunkIdSet damaged(recorded.begin(), recorded.end());
  KnownChunks known;
  LoadPreviousChunks(repository, m.volume_id, damaged, known);
  Heals heals;
  // The chunks that need no read. Planned while the writer marker is held:
  // the previous manifest's chunks stay stored until this backup commits.
  KINDLING_ASSIGN_OR_RETURN(
      const std::optional<ChangedPlan> plan,
      PlanChangedBlocks(repository, o, fs, snap, image.fd.get(), m, damaged, report));
  if (plan) report.read_path = "changed-blocks";
  // A changed-block read is a scatter of reads and uploads: half as many
  // workers again keep more of them in flight. More cost memory (each
  // worker's buffers) and, measured on two cores, no time.
  const int threads = o.threads > 0 ? o.threads : DefaultThreads() * (plan ? 3 : 2) / 2;
  std::atomic<std::uint64_t> bytes_skipped{0};
  std::atomic<std::uint64_t> chunks_skipped{0};
  std::atomic<std::uint64_t> bytes_reread{0};

  FirstError error;
  ProgressCounters counters;
  std::atomic<std::uint64_t> chunks_uploaded{0};
  std::atomic<std::uint64_t> bytes_uploaded{0};
  std::atomic<std::uint64_t> bytes_read{0};
  std::atomic<std::uint64_t> bytes_data{0};

  // Each worker claims the next chunk, skips it when it is a hole, reads it,
  // hashes, compresses, encrypts and uploads it: reads overlap with each
  // other (several requests in flight suit disks and network block devices)
  // and with the CPU work. Chunks finish in any order: the image digest is a
  // tree of chunk digests (repo/image_digest.h), so no step runs serially
  // over the image. Memory: one chunk buffer per worker, whatever the image
  // size.
  repo::ImageDigest image_digest(m.image_size, chunk_size);
  std::atomic<std::size_t> next_chunk{0};
  // Direct reads (when the filesystem has them) skip the page cache for what
  // it does not already hold: no kernel copy, and a backup does not evict
  // everything else cached.
  const DirectIo io(image.fd.get(), image.direct.get());
  std::mutex prefetch_mu;
  Prefetcher prefetch(image.fd.get(), m.image_size,
                      std::max<std::uint64_t>(8 * std::uint64_t{chunk_size}, 32u << 20));

  // The chunks the workers store go through one batch (storage/object_store.h),
  // committed once they are all stored: on a local store one sync for all.
  // A backup that fails commits what it stored all the same (each object is
  // whole, and durable once committed): the next one reuses those chunks
  // instead of uploading them again, and garbage collection takes those no
  // backup comes to reference.
  KINDLING_ASSIGN_OR_RETURN(std::unique_ptr<storage::PutBatch> batch, store.NewBatch());
  bool batch_open = true;
  struct CommitOnFailure {
    storage::PutBatch& batch;
    const bool& open;
    ~CommitOnFailure() {
      if (!open) return;
      if (auto committed = batch.Commit(); !committed)
        spdlog::warn("the chunks of a failed backup are not kept: {}", committed.error().message());
    }
  } const commit_on_failure{*batch, batch_open};

  // When a chunk recorded damaged is stored again, the record goes once the
  // object is stored, so that everyone sees the heal; a record that cannot
  // be deleted is only stale (the chunk is sound): it costs the next backup
  // one more upload, so it does not fail this one.
  auto clear_damage = [&](const ChunkId& id) {
    if (auto cleared = ClearDamage(repository, id); !cleared)
      spdlog::warn("chunk {} is stored again, but its damage record stays: {}",
                   crypto::DigestHex(id), cleared.error().message());
  };
  // Stores a chunk object: into the batch while it is open (a heal's record
  // then goes when the batch is committed), straight into the store after.
  auto store_chunk = [&](const ChunkId& id, std::string_view object, bool heal) -> Status {
    const std::string key = repo::ChunkKey(id);
    KINDLING_RETURN_IF_ERROR(batch_open ? batch->Put(key, object) : store.Put(key, object));
    counters.bytes_transferred.fetch_add(object.size(), std::memory_order_relaxed);
    if (known.Stored(id, static_cast<std::uint32_t>(object.size()))) {
      chunks_uploaded.fetch_add(1, std::memory_order_relaxed);
      bytes_uploaded.fetch_add(object.size(), std::memory_order_relaxed);
    }
    if (heal) {
      heals.Add(id);
      if (!batch_open) clear_damage(id);
    }
    return OkStatus();
  };

  auto upload = [&](repo::ChunkCodec& codec, std::string& object, std::size_t index,
                    std::string_view plain) -> Status {
    // Hashing fails closed (crypto/sha256.h): a failure fails the backup
    // rather than name every chunk by the same made-up id.
    KINDLING_ASSIGN_OR_RETURN(const crypto::Digest plain_sha256, crypto::TrySha256Of(plain));
    image_digest.SetChunk(index, plain_sha256);
    KINDLING_ASSIGN_OR_RETURN(const ChunkId id, codec.IdOf(plain_sha256));
    ChunkRef& ref = m.chunks[index];
    ref.is_hole = false;
    ref.id = id;
    if (auto size = known.Find(id)) {
      ref.stored_size = *size;
      return OkStatus();
    }
    const bool heal = damaged.contains(id);
    std::optional<std::uint64_t> found_size;
    if (!heal) {
      auto head = store.Head(repo::ChunkKey(id));
      if (!head && !head.error().is_not_found()) return std::unexpected(head.error());
      if (head) found_size = *head;
    }
    codec.Encode(plain, id, object);
    // An object under this id whose size is not the encoding's is either a
    // valid copy written with other settings or one cut short by a writer
    // killed mid-upload on a store whose PUT is not atomic (some
    // S3-compatible servers keep partial bodies). Writing it again is safe
    // in both cases (same id: same plaintext), trusting it is not.
    if (found_size && *found_size == object.size()) {
      ref.stored_size = static_cast<std::uint32_t>(*found_size);
      known.Add(id, ref.stored_size);
      return OkStatus();
    }
    KINDLING_RETURN_IF_ERROR(store_chunk(id, object, heal));
    ref.stored_size = static_cast<std::uint32_t>(object.size());
    return OkStatus();
  };

  // A chunk unchanged since the previous snapshot: what the previous backup
  // recorded, not read (but for reread_skipped, which checks it).
  auto skip_chunk = [&](AlignedBuffer& buffer, std::size_t index) -> Status {
    const std::uint64_t offset = m.ChunkOffset(index);
    const auto length = static_cast<std::size_t>(m.ChunkLength(index));
    const repo::ChunkRef& ref = plan->previous.chunks[index];
    const crypto::Digest& digest = plan->digests.chunks[index];
    if (o.reread_skipped) {
      auto got = PreadSparse(io, buffer.data(), length, offset);
      if (!got) return std::unexpected(got.error().WithContext("read image " + o.image.string()));
      bytes_reread.fetch_add(length, std::memory_order_relaxed);
      KINDLING_ASSIGN_OR_RETURN(const crypto::Digest now,
                                crypto::TrySha256Of(std::string_view(buffer.data(), length)));
      if (now != digest)
        return InternalError("changed-block tracking skipped the chunk at offset " +
                             std::to_string(offset) + " of " + o.image.string() +
                             ", which differs from the previous snapshot's");
    }
    m.chunks[index] = ref;
    image_digest.SetChunk(index, digest);
    if (!ref.is_hole) {
      bytes_data.fetch_add(length, std::memory_order_relaxed);
      bytes_skipped.fetch_add(length, std::memory_order_relaxed);
      chunks_skipped.fetch_add(1, std::memory_order_relaxed);
    }
    counters.bytes_done.fetch_add(length, std::memory_order_relaxed);
    counters.chunks_done.fetch_add(1, std::memory_order_relaxed);
    return OkStatus();
  };

  // One chunk, start to end. Holes and all-zero chunks are recorded as such.
  auto back_up_chunk = [&](repo::ChunkCodec& codec, AlignedBuffer& buffer, std::string& object,
                           std::size_t index) -> Status {
    if (plan && plan->unchanged[index]) return skip_chunk(buffer, index);
    const std::uint64_t offset = m.ChunkOffset(index);
    const auto length = static_cast<std::size_t>(m.ChunkLength(index));
    // Read-ahead would read the unchanged ranges too.
    if (!io.direct() && !plan) {
      std::lock_guard lock(prefetch_mu);
      prefetch.Advance(offset);
    }
    auto is_hole = RangeIsHole(image.fd.get(), offset, length);
    if (!is_hole) return std::unexpected(is_hole.error().WithContext("image " + o.image.string()));
    bool zero = *is_hole;
    if (!zero) {
      auto got = PreadSparse(io, buffer.data(), length, offset);
      if (!got) return std::unexpected(got.error().WithContext("read image " + o.image.string()));
      bytes_read.fetch_add(*got, std::memory_order_relaxed);
      zero = IsAllZero(buffer.data(), length);
    }
    if (zero) {
      m.chunks[index].is_hole = true;
      image_digest.SetZeroChunk(index);
    } else {
      bytes_data.fetch_add(length, std::memory_order_relaxed);
      KINDLING_RETURN_IF_ERROR(
          upload(codec, object, index, std::string_view(buffer.data(), length)));
    }
    counters.bytes_done.fetch_add(length, std::memory_order_relaxed);
    counters.chunks_done.fetch_add(1, std::memory_order_relaxed);
    return OkStatus();
  };

  {
    ProgressTicker ticker(o.progress, counters, "backup", m.image_size, chunk_count);
    WorkerGroup workers(threads, [&](int) {
      repo::ChunkCodec codec(repository.keys(), o.zstd_level);
      AlignedBuffer buffer(chunk_size);
      std::string object;
      while (!error.CheckCancel(o.cancel)) {
        const std::size_t index = next_chunk.fetch_add(1, std::memory_order_relaxed);
        if (index >= chunk_count) break;
        if (auto st = back_up_chunk(codec, buffer, object, index); !st) error.Set(st.error());
      }
    });
    workers.Join();
    if (error.failed()) return std::unexpected(error.Take());
    KINDLING_ASSIGN_OR_RETURN(m.image_digest, image_digest.Finish());
    ticker.Finish();
  }
  batch_open = false;
  KINDLING_RETURN_IF_ERROR(batch->Commit());
  for (const ChunkId& id : heals.Sorted()) clear_damage(id);

  // Just before the commit point, the records again: a chunk recorded damaged
  // since this backup started (a restore or verify, here or on another host,
  // found it) is not committed on trust. It is read again from the image,
  // checked to be the chunk this backup read there, and stored again. Chunks
  // this backup already stored are included: a record that appeared since
  // may come from a fetch made before that Put, or be new damage.
  auto heal_recorded_since_start = [&]() -> Status {
    KINDLING_ASSIGN_OR_RETURN(const std::vector<ChunkId> now, ListDamagedChunks(repository));
    if (now.empty()) return OkStatus();
    const ChunkIdSet wanted(now.begin(), now.end());
    std::unordered_map<ChunkId, std::uint32_t, ChunkIdHash> healed_size;
    repo::ChunkCodec codec(repository.keys(), o.zstd_level);
    AlignedBuffer buffer(chunk_size);
    std::string object;
    for (std::size_t index = 0; index < m.chunks.size(); ++index) {
      ChunkRef& ref = m.chunks[index];
      if (ref.is_hole || !wanted.contains(ref.id)) continue;
      if (auto it = healed_size.find(ref.id); it != healed_size.end()) {
        ref.stored_size = it->second;
        continue;
      }
      if (o.cancel != nullptr && o.cancel->load()) return Cancelled();
      const std::uint64_t offset = m.ChunkOffset(index);
      const auto length = static_cast<std::size_t>(m.ChunkLength(index));
      auto got = PreadSparse(io, buffer.data(), length, offset);
      if (!got) return std::unexpected(got.error().WithContext("read image " + o.image.string()));
      bytes_read.fetch_add(*got, std::memory_order_relaxed);
      const std::string_view plain(buffer.data(), length);
      KINDLING_ASSIGN_OR_RETURN(const ChunkId again, codec.Id(plain));
      if (again != ref.id)
        return MakeError(
            ErrorKind::kIo,
            "image " + o.image.string() + " changed during backup (the chunk at offset " +
                std::to_string(offset) + " differs when read again); back up a detached volume");
      codec.Encode(plain, ref.id, object);
      KINDLING_RETURN_IF_ERROR(store_chunk(ref.id, object, /*heal=*/true));
      ref.stored_size = static_cast<std::uint32_t>(object.size());
      healed_size.emplace(ref.id, ref.stored_size);
    }
    return OkStatus();
  };
  KINDLING_RETURN_IF_ERROR(heal_recorded_since_start());

  // Backups are cold: an image that changed while it was read would yield a
  // backup of no state that ever existed.
  struct stat after {};
  if (::fstat(image.fd.get(), &after) == 0 && S_ISREG(after.st_mode) &&
      (after.st_size != image.st.st_size || after.st_mtim.tv_sec != image.st.st_mtim.tv_sec ||
       after.st_mtim.tv_nsec != image.st.st_mtim.tv_nsec))
    return MakeError(ErrorKind::kIo, "image " + o.image.string() +
                                         " changed during backup; back up a detached volume");

  std::unordered_set<ChunkId, ChunkIdHash> distinct;
  for (const ChunkRef& c : m.chunks) {
    if (c.is_hole) {
      m.stats.chunks_hole++;
      continue;
    }
    m.stats.chunks_data++;
    if (distinct.insert(c.id).second) m.stats.bytes_referenced += c.stored_size;
  }
  m.stats.chunks_uploaded = chunks_uploaded.load();
  m.stats.bytes_uploaded = bytes_uploaded.load();
  m.stats.bytes_read = bytes_read.load();
  m.stats.bytes_data = bytes_data.load();
  m.created_unix_ms = NowUnixMs();
  m.stats.duration_ms =
      static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::steady_clock::now() - started)
                                     .count());

  if (o.cancel != nullptr && o.cancel->load()) return Cancelled();
  if (o.progress) {
    Progress p{"commit",    m.image_size, m.image_size,
               chunk_count, chunk_count,  m.stats.bytes_uploaded};
    o.progress(p);
  }
  // The commit point: everything the manifest names is stored (and, the
  // marker still held, no sweep deleted what it reuses).
  KINDLING_ASSIGN_OR_RETURN(const std::string manifest_object,
                            repo::EncodeManifest(repository.keys(), m));
  KINDLING_RETURN_IF_ERROR(marker->CheckHeld());
  KINDLING_RETURN_IF_ERROR(store.Put(manifest_key, manifest_object));
  if (o.healed != nullptr) *o.healed = heals.Sorted();

  // Committed: the clone becomes the next backup's previous snapshot. A
  // failure here costs the next backup its changed blocks, not this backup.
  if (snap.dir) {
    SnapshotDigests digests{m.volume_id, m.backup_id, m.image_size, m.chunk_size,
                            image_digest.chunk_digests()};
    if (auto committed = snap.dir->Commit(digests); !committed) {
      spdlog::warn("backup {} committed, but its snapshot was not kept: {}", m.backup_id,
                   committed.error().message());
      snap.dir->Discard();
      report.snapshot.clear();
    } else {
      report.snapshot = snap.dir->previous()->snap;
    }
  }
  if (o.report != nullptr) {
    report.bytes_read = bytes_read.load();
    report.bytes_skipped = bytes_skipped.load();
    report.chunks_skipped = chunks_skipped.load();
    report.bytes_reread = bytes_reread.load();
    *o.report = std::move(report);
  }
  return m;
}

}  // namespace kindling::engine
