#include "engine/verify.h"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <random>
#include <unordered_map>

#include "engine/backup.h"
#include "engine/chunk_id_hash.h"
#include "engine/damage.h"
#include "engine/pipeline.h"
#include "repo/chunk_codec.h"
#include "repo/image_digest.h"

namespace kindling::engine {

std::string_view ProblemKindName(ChunkProblem::Kind kind) {
  switch (kind) {
    case ChunkProblem::Kind::kMissing:
      return "missing";
    case ChunkProblem::Kind::kCorrupt:
      return "corrupt";
    case ChunkProblem::Kind::kUnreadable:
      return "unreadable";
  }
  return "unknown";
}

namespace {

struct Target {
  repo::ChunkId id;
  std::uint64_t offset;
  std::uint64_t length;  // plaintext bytes
};

std::vector<Target> DistinctChunks(const repo::Manifest& m) {
  std::vector<Target> targets;
  std::unordered_map<repo::ChunkId, bool, ChunkIdHash> seen;
  for (std::size_t i = 0; i < m.chunks.size(); ++i) {
    const auto& c = m.chunks[i];
    if (!c.is_hole && seen.emplace(c.id, true).second)
      targets.push_back({c.id, m.ChunkOffset(i), m.ChunkLength(i)});
  }
  return targets;
}

}  // namespace

Result<VerifyReport> VerifyBackup(const Repository& repository, const repo::Manifest& m,
                                  const VerifyOptions& o) {
  if (!(o.sample_fraction > 0.0 && o.sample_fraction <= 1.0))
    return InvalidArgument("sample fraction must be in (0, 1]");
  if (o.threads < 0 || o.threads > 256) return InvalidArgument("threads must be 0-256");
  const int threads = o.threads > 0 ? o.threads : DefaultThreads();

  std::vector<Target> targets = DistinctChunks(m);
  VerifyReport report;
  report.chunks_referenced = targets.size();
  if (o.sample_fraction < 1.0) {
    std::mt19937_64 rng(o.seed != 0 ? o.seed : std::random_device{}());
    std::shuffle(targets.begin(), targets.end(), rng);
    const auto keep = static_cast<std::size_t>(
        std::ceil(o.sample_fraction * static_cast<double>(targets.size())));
    targets.resize(std::min(keep, targets.size()));
    std::sort(targets.begin(), targets.end(),
              [](const Target& a, const Target& b) { return a.offset < b.offset; });
  }

  // Progress counts the plaintext bytes of the chunks to check.
  std::uint64_t bytes_total = 0;
  for (const Target& t : targets) bytes_total += t.length;

  FirstError error;  // only cancellation stops a verify
  ProgressCounters counters;
  std::mutex mu;
  std::atomic<std::size_t> next{0};
  // Chunk digests by distinct chunk (targets' order), for the image digest.
  std::vector<crypto::Digest> chunk_sha256(targets.size());
  {
    ProgressTicker ticker(o.progress, counters, "verify", bytes_total, targets.size());
    WorkerGroup workers(threads, [&](int) {
      repo::ChunkCodec codec(repository.keys(), 1);
      std::string plain;
      while (!error.CheckCancel(o.cancel)) {
        const std::size_t n = next.fetch_add(1, std::memory_order_relaxed);
        if (n >= targets.size()) break;
        const Target& t = targets[n];
        const std::string key = repo::ChunkKey(t.id);
        std::optional<ChunkProblem> problem;
        auto object = repository.store().Get(key);
        if (!object) {
          const auto kind = object.error().is_not_found() ? ChunkProblem::Kind::kMissing
                                                          : ChunkProblem::Kind::kUnreadable;
          problem =
              ChunkProblem{kind, crypto::DigestHex(t.id), key, t.offset, object.error().message()};
        } else {
          counters.bytes_transferred.fetch_add(object->size(), std::memory_order_relaxed);
          if (auto st = codec.Decode(*object, t.id, plain, &chunk_sha256[n]); !st)
            problem = ChunkProblem{ChunkProblem::Kind::kCorrupt, crypto::DigestHex(t.id), key,
                                   t.offset, st.error().message()};
        }
        if (problem && problem->kind != ChunkProblem::Kind::kUnreadable)
          RecordChunkDamageOrWarn(repository, t.id, m.volume_id, m.backup_id);
        counters.bytes_done.fetch_add(t.length, std::memory_order_relaxed);
        counters.chunks_done.fetch_add(1, std::memory_order_relaxed);
        if (problem) {
          std::lock_guard lock(mu);
          report.problems.push_back(std::move(*problem));
        }
      }
    });
    workers.Join();
    if (error.failed()) return std::unexpected(error.Take());
    ticker.Finish();
  }
  report.chunks_checked = targets.size();
  if (report.problems.empty() && targets.size() == report.chunks_referenced) {
    std::unordered_map<repo::ChunkId, std::size_t, ChunkIdHash> by_id;
    for (std::size_t n = 0; n < targets.size(); ++n) by_id.emplace(targets[n].id, n);
    repo::ImageDigest image_digest(m.image_size, m.chunk_size);
    for (std::size_t i = 0; i < m.chunks.size(); ++i) {
      if (m.chunks[i].is_hole)
        image_digest.SetZeroChunk(i);
      else
        image_digest.SetChunk(i, chunk_sha256[by_id.at(m.chunks[i].id)]);
    }
    report.image_digest_checked = true;
    KINDLING_ASSIGN_OR_RETURN(const crypto::Digest digest, image_digest.Finish());
    report.image_digest_matches = digest == m.image_digest;
  }
  report.bytes_checked = counters.bytes_transferred.load();
  std::sort(report.problems.begin(), report.problems.end(),
            [](const ChunkProblem& a, const ChunkProblem& b) { return a.offset < b.offset; });
  return report;
}

}  // namespace kindling::engine
