// Restore pipeline: manifest -> parallel chunk fetches -> temp sparse file ->
// whole-image SHA-256 check -> fsync -> atomic rename onto the destination.
//
// Each chunk is authenticated and its id re-checked; holes stay holes, and so
// do all-zero 4 KiB blocks inside data chunks (the temp file is new, so they
// read as zeros without being written). The SHA-256 is computed from the
// decoded chunks in image order while the fetches run, through a bounded
// reorder window, so memory does not grow with the image. Writeback starts as
// chunks are written, so the final fsync is short. On any failure (wrong key,
// missing or corrupt chunk, digest mismatch, disk full, cancellation) the
// destination is untouched and the temp file is removed; a process killed
// mid-restore leaves at most a ".<name>.tmp-*" file beside the destination,
// never a partial destination.
#pragma once

#include <filesystem>

#include "engine/progress.h"
#include "engine/repository.h"

namespace kindling::engine {

struct RestoreOptions {
  std::filesystem::path destination;  // REQUIRED
  bool overwrite = false;             // replace an existing destination
  int threads = 0;                    // 0: a default (fetches in flight)
  ProgressFn progress;
  const CancelFlag* cancel = nullptr;
};

struct RestoreResult {
  std::uint64_t image_size = 0;
  std::uint64_t bytes_downloaded = 0;
  std::uint64_t chunks_fetched = 0;
  std::string image_digest_hex;  // repo/image_digest.h ("image_sha256" in outputs)
};

[[nodiscard]] Result<RestoreResult> RestoreBackup(const Repository& repository,
                                                  const repo::Manifest& manifest,
                                                  const RestoreOptions& options);

}  // namespace kindling::engine
