// Verify: fetches the chunks a backup references (all, or a random sample),
// authenticates and re-hashes each one, and reports every missing or corrupt
// chunk by id and image offset. Does not stop at the first problem. When every
// chunk was checked and is sound, it also recomputes the image digest from
// them and compares it with the manifest's. Every missing or corrupt chunk
// (not one the store failed to read: kUnreadable) is also recorded in the
// store as damaged (engine/damage.h), so that the next backup stores it again.
#pragma once

#include <string>
#include <vector>

#include "engine/progress.h"
#include "engine/repository.h"

namespace kindling::engine {

struct VerifyOptions {
  double sample_fraction = 1.0;  // (0, 1]: share of distinct data chunks checked
  std::uint64_t seed = 0;        // sample selection; 0 = random
  int threads = 0;
  ProgressFn progress;
  const CancelFlag* cancel = nullptr;
};

struct ChunkProblem {
  enum class Kind { kMissing, kCorrupt, kUnreadable } kind;
  std::string chunk_id_hex;
  std::string key;
  std::uint64_t offset = 0;  // first image offset that uses the chunk
  std::string message;
};

struct VerifyReport {
  std::uint64_t chunks_referenced = 0;  // distinct data chunks in the manifest
  std::uint64_t chunks_checked = 0;
  std::uint64_t bytes_checked = 0;  // stored bytes fetched
  std::vector<ChunkProblem> problems;
  bool image_digest_checked = false;  // every chunk sound, digest recomputed
  bool image_digest_matches = false;  // meaningful when image_digest_checked
  bool ok() const { return problems.empty() && (!image_digest_checked || image_digest_matches); }
};

std::string_view ProblemKindName(ChunkProblem::Kind kind);

// An error only when verification itself could not run (bad options,
// cancelled); damaged chunks are reported in the VerifyReport.
[[nodiscard]] Result<VerifyReport> VerifyBackup(const Repository& repository,
                                                const repo::Manifest& manifest,
                                                const VerifyOptions& options);

}  // namespace kindling::engine
