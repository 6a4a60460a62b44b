// Backup pipeline: image file -> chunks in the store -> manifest (last).
//
// Reads the image in fixed-size chunks; holes (SEEK_DATA) and all-zero chunks
// are recorded as holes and never hashed, compressed or stored. Data chunks are
// identified by keyed hash, compressed, encrypted and uploaded unless the store
// already has them: chunks named by the volume's newest manifest are known to
// exist; any other chunk is checked with one HEAD before upload (no listing
// of the bucket). Work runs on `threads` workers. Memory: about
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
// content hashes), and its record is deleted. Just before the manifest, the
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
// Crash safety: the manifest is written after every chunk it names is stored.
// A crash or cancellation before that leaves only chunks (reused by the next
// backup), never a manifest.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "engine/gc.h"
#include "engine/progress.h"
#include "engine/repository.h"

namespace kindling::engine {

struct BackupOptions {
  std::string volume_id;         // REQUIRED: a safe key component
  std::string backup_id;         // empty: a new time-ordered UUID
  std::filesystem::path image;   // REQUIRED: a regular file
  std::uint32_t chunk_size = 0;  // 0: the store's default
  int zstd_level = 1;
  int threads = 0;  // 0: a default from the core count
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
