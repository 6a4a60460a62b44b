// Backup pipeline: image file -> chunks in the store -> manifest (last).
//
// Reads the image in fixed-size chunks; holes (SEEK_DATA) and all-zero chunks
// are recorded as holes and never hashed, compressed or stored. Data chunks are
// identified by keyed hash, compressed, encrypted and uploaded unless the store
// already has them: chunks named by the volume's earlier manifests are known
// to exist; any other chunk is checked with one HEAD before upload (no listing
// of the bucket). Work runs on `threads` workers; memory is bounded by about
// 3 * threads * chunk_size whatever the image size.
//
// Crash safety: the manifest is written after every chunk it names is stored.
// A crash or cancellation before that leaves only chunks (reused by the next
// backup), never a manifest.
#pragma once

#include <filesystem>
#include <string>

#include "engine/progress.h"
#include "engine/repository.h"

namespace kindling::engine {

struct BackupOptions {
  std::string volume_id;          // REQUIRED: a safe key component
  std::string backup_id;          // empty: a new time-ordered UUID
  std::filesystem::path image;    // REQUIRED: a regular file
  std::uint32_t chunk_size = 0;   // 0: the store's default
  int zstd_level = 1;
  int threads = 0;                // 0: a default from the core count
  ProgressFn progress;
  const CancelFlag* cancel = nullptr;
};

// Returns the committed manifest. kInvalidArgument for bad options, kCancelled,
// or the store's/file's error.
[[nodiscard]] Result<repo::Manifest> CreateBackup(const Repository& repository,
                                                  const BackupOptions& options);

int DefaultThreads();

}  // namespace kindling::engine
