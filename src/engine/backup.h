// Backup pipeline: image file -> chunks in the store -> manifest (last).
//
// Reads the image in fixed-size chunks; holes (SEEK_DATA) and all-zero chunks
// are recorded as holes and never hashed, compressed or stored. Data chunks are
// identified by keyed hash, compressed, encrypted and uploaded unless the store
// already has them: chunks named by the volume's newest manifest are known to
// exist; any other chunk is checked with one HEAD before upload (no listing
// of the bucket). The chunks go into the store through one batch
// (storage/object_store.h), committed once all are stored and before the
// manifest: on a local store they are synced together rather than one by
// one, and none is visible before all are durable. A backup that fails
// commits what it stored all the same, for the next one to reuse. Work runs
// on `threads` workers. Memory: about
// 3 * threads * chunk_size of buffers (a chunk, its compressed form, its
// object), plus bookkeeping that grows with the number of chunks: some 100
// bytes per chunk of the image (the manifest's table, the chunk digests) and
// per distinct chunk the volume's newest backup references (the ids known
// to be stored): about 0.5 GiB for 16 TiB at 4 MiB chunks. The image's chunk
// count is checked against what a manifest holds before any work
// (BackupOptions::max_chunks).
//
// Healing: a chunk recorded damaged (engine/damage.h) when the backup starts
// is trusted neither from earlier manifests nor from a HEAD: it is uploaded
// again, which repairs every older backup that references it (ids are keyed
// content hashes), and its record is deleted once the batch holding it is
// committed. Just before the manifest, the
// records are listed again; a chunk this backup references that is recorded
// by then is read again from the image (its id must match, else the image
// changed: the backup fails), uploaded and its record deleted. So a backup
// never commits a reference to a chunk recorded damaged when it commits (but
// for a record written between that last listing and the manifest's Put).
//
// Garbage collection: the backup holds a writer marker (engine/gc.h) from
// before it reads the damage records and the newest manifest until its
// manifest is written, so no sweep deletes a chunk it reuses; it waits while
// a sweep runs, and does not commit when a collection took it for dead
// (kFailedPrecondition).
//
// Snapshots (BackupOptions::snapshot): on a filesystem that clones files
// (XFS with reflink, btrfs), the backup first clones the image into the
// image's snapshot folder (engine/snapshots.h) and reads only the clone: a
// consistent image taken in milliseconds (around_snapshot may pause a VM for
// just that), whatever writes the live image afterwards. Once the manifest
// is written, the clone becomes the snapshot the next backup diffs against.
//
// Changed blocks (BackupOptions::changed_blocks): with a snapshot and the
// previous backup's snapshot still beside the image, the two clones' extent
// maps give the chunks that cannot have changed (engine/changed_blocks.h);
// those are not read: their ids come from the previous backup's manifest and
// their digests from the snapshot's digests file (checked against that
// manifest's keyed ids). Chunks recorded damaged are read all the same. A
// missing, foreign or unreadable previous snapshot or manifest, another
// chunk size, extent maps that moved while compared (btrfs: a generation
// that moved or a balance), or any extent-map error: the full read, with the
// reason in BackupReport::fallback.
//
// Crash safety: the manifest is written after every chunk it names is stored.
// A crash or cancellation before that leaves only chunks (reused by the next
// backup), never a manifest; a clone taken by a backup that did not commit is
// deleted (here, or by the next backup of the image).
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "common/extents.h"
#include "engine/gc.h"
#include "engine/progress.h"
#include "engine/repository.h"

namespace kindling::engine {

// For snapshot and changed_blocks: kAuto uses it where the filesystem allows;
// kOn (for either) fails the backup (kFailedPrecondition) where the
// filesystem cannot clone files; kOff never uses it. Changed blocks also
// need a usable previous snapshot: without one, even kOn reads everything
// (BackupReport::fallback says why).
enum class Use : std::uint8_t { kOff, kAuto, kOn };
// "off", "auto", "on"; nullopt for anything else.
std::optional<Use> ParseUse(std::string_view text);
std::string_view UseName(Use use);

// How a backup read its image.
struct BackupReport {
  std::string read_path = "full";  // "full" or "changed-blocks"
  std::filesystem::path snapshot;  // the clone it read; empty: the live image
  // Why no snapshot or no changed blocks were used although asked (kAuto, or
  // kOn for changed blocks without a usable previous snapshot); empty else.
  std::string fallback;
  std::uint64_t bytes_read = 0;     // image bytes read
  std::uint64_t bytes_skipped = 0;  // data bytes not read: unchanged since the last snapshot
  std::uint64_t chunks_skipped = 0;
  std::uint64_t bytes_reread = 0;  // skipped bytes read anyway (reread_skipped)
  std::uint64_t snapshot_ms = 0;   // taking the clone, around_snapshot included
  std::uint64_t diff_ms = 0;       // mapping and comparing the two snapshots
};

struct BackupOptions {
  std::string volume_id;         // REQUIRED: a safe key component
  std::string backup_id;         // empty: a new time-ordered UUID
  std::filesystem::path image;   // REQUIRED: a regular file
  std::uint32_t chunk_size = 0;  // 0: the store's default
  int zstd_level = 1;
  int threads = 0;  // 0: a default from the core count (x1.5 for a changed-block read)
  ProgressFn progress;
  const CancelFlag* cancel = nullptr;
  // The most chunks the image may have; 0: what a manifest can hold
  // (repo::kMaxManifestChunks). Checked before the backup reads anything.
  std::uint64_t max_chunks = 0;
  // When not null, receives on success the chunks that were recorded damaged
  // and that this backup stored again (distinct, sorted); cleared at the start.
  std::vector<repo::ChunkId>* healed = nullptr;
  // The writer marker's timing (engine/gc.h); tests shorten it.
  GcTiming gc_timing;
  Use snapshot = Use::kOff;
  // Needs a snapshot: kOn or kAuto with snapshot kOff is kInvalidArgument.
  Use changed_blocks = Use::kOff;
  // A check for tests and drills: every chunk skipped as unchanged is read
  // too, and a chunk whose digest differs from the previous snapshot's fails
  // the backup (kInternal) before anything is committed.
  bool reread_skipped = false;
  // Clones and extent maps; nullptr: DefaultExtentFs().
  const ExtentFs* extent_fs = nullptr;
  // When set, the clone is taken inside it: it must call `take` once (say,
  // between pausing and resuming a VM) and return its status, or its own
  // error (the backup then fails).
  std::function<Status(const std::function<Status()>& take)> around_snapshot;
  // When not null, filled on success.
  BackupReport* report = nullptr;
};

// Returns the committed manifest. kInvalidArgument for bad options (an image
// of more chunks than `max_chunks` included, before any work), kCancelled,
// kIo when the image changed while it was read, or the store's/file's error
// (failing to list the damage records included).
[[nodiscard]] Result<repo::Manifest> CreateBackup(const Repository& repository,
                                                  const BackupOptions& options);

int DefaultThreads();

// The smallest valid chunk size (a multiple of 4096, at least
// repo::kMinChunkSize) that cuts `image_size` bytes into at most `max_chunks`
// chunks (0: repo::kMaxManifestChunks). May exceed repo::kMaxChunkSize for
// images no chunk size fits.
std::uint64_t MinChunkSizeFor(std::uint64_t image_size, std::uint64_t max_chunks = 0);

}  // namespace kindling::engine
