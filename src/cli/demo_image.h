// Demo volume images: a sparse file with the mix of content a real ext4 image
// has (incompressible data, compressible text, written zeros, holes), and the
// random overwrites that make a second backup incremental. Deterministic for
// a given seed. Thread-compatible (no shared state).
#pragma once

#include <cstdint>
#include <filesystem>

#include "common/result.h"
#include "crypto/sha256.h"
#include "engine/progress.h"

namespace kindling::cli {

struct DemoImageLayout {
  std::uint64_t size = 0;
  std::uint64_t random_bytes = 0;  // incompressible
  std::uint64_t text_bytes = 0;    // log-like text, compresses well
  std::uint64_t zero_bytes = 0;    // zeros written out (allocated)
  std::uint64_t hole_bytes = 0;    // never written (sparse)
};

// Creates (or truncates) `path` as a sparse image of `size` bytes.
[[nodiscard]] Result<DemoImageLayout> WriteDemoImage(const std::filesystem::path& path,
                                                     std::uint64_t size, std::uint64_t seed,
                                                     const engine::CancelFlag* cancel);

struct ImageChange {
  std::uint64_t bytes_written = 0;
  std::uint64_t chunks_touched = 0;
};

// Overwrites random runs inside round(fraction * chunk count) (at least one)
// distinct chunks of `chunk_size`, each run half to all of its chunk, with
// random bytes. The file keeps its size.
[[nodiscard]] Result<ImageChange> ChangeImage(const std::filesystem::path& path,
                                              std::uint32_t chunk_size, double fraction,
                                              std::uint64_t seed);

// SHA-256 of a file's content (holes read as zeros), read in 1 MiB pieces.
[[nodiscard]] Result<crypto::Digest> Sha256OfFile(const std::filesystem::path& path,
                                                  const engine::CancelFlag* cancel);

}  // namespace kindling::cli
