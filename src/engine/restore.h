// Restore pipeline: manifest -> parallel chunk fetches -> temp sparse file ->
// image digest check -> fsync -> atomic rename onto the destination.
//
// Each distinct chunk is fetched once, authenticated, its id re-checked, and
// written to every slot that holds it; holes stay holes, and so do all-zero
// 4 KiB blocks inside data chunks (the temp file is new, so they read as zeros
// without being written). The image digest (repo/image_digest.h) is assembled
// from the decoded chunks' SHA-256, which the id check computes anyway, in
// whatever order the chunks arrive: no pass of its own. Memory: about three
// chunk-sized buffers per worker (the fetched object, its opened form, the
// plaintext), plus some 150 bytes per chunk of the image (the manifest's
// table, the fetch plan, the chunk digests). Chunks are written with
// O_DIRECT where the filesystem allows it, otherwise writeback starts as they
// are written, so the final fsync is short.
//
// A chunk object that is missing or fails authentication, decoding or the id
// check is recorded in the store as damaged (engine/damage.h) before the
// restore fails with kCorruption; a store error (transient, permission) is
// returned as it is and records nothing. On any failure (wrong key, missing or
// corrupt chunk, digest mismatch, disk full, cancellation) the destination is
// untouched and the temp file is removed; a process killed mid-restore leaves
// at most a ".<name>.tmp-*" file beside the destination, never a partial
// destination.
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
