// Garbage collection over a synthetic store of a million live chunk ids:
// the collection's time and its peak memory.
//
//   build/bench/gc_bench [--live 1000000] [--garbage 250000] [--volumes 10]
//                        [--backups 3]
//
// The store is generated, not stored: chunk listings and manifests are made
// on request (chunk id i: its first byte i mod 256, then i big-endian, so a
// shard lists in key order), so the process's memory is the collection's.
// Volume v's backups reference `live / volumes` distinct ids between them
// (each backup all but a few of them, shifted by backup); ids past `live`
// are garbage. Prints one JSON line and a Markdown table: time, chunks
// listed, deleted (counted, not stored), live ids, and the peak resident set
// (VmHWM, reset just before the collection) against the 256 MiB target.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/hex.h"
#include "crypto/aead.h"
#include "engine/gc.h"
#include "engine/repository.h"
#include "repo/layout.h"
#include "repo/manifest.h"
#include "storage/object_store.h"

namespace {

using kindling::Result;
using kindling::Status;
using kindling::storage::ObjectInfo;
namespace repo = kindling::repo;

struct Shape {
  std::uint64_t live = 1'000'000;
  std::uint64_t garbage = 250'000;
  std::uint64_t volumes = 10;
  std::uint64_t backups = 3;
  std::uint64_t shift = 1000;  // ids a backup drops from the start and adds at the end
};

repo::ChunkId IdOf(std::uint64_t i) {
  repo::ChunkId id{};
  id[0] = static_cast<std::uint8_t>(i % 256);
  for (int b = 0; b < 8; ++b) id[1 + b] = static_cast<std::uint8_t>(i >> (8 * (7 - b)));
  for (std::size_t b = 9; b < id.size(); ++b) id[b] = static_cast<std::uint8_t>(i * 31 + b);
  return id;
}

std::string BackupId(std::uint64_t volume, std::uint64_t backup) {
  char text[64];
  std::snprintf(text, sizeof(text), "00000000-0000-7000-8000-%06llx%06llx",
                static_cast<unsigned long long>(volume), static_cast<unsigned long long>(backup));
  return text;
}

// Chunks and manifests generated on request; other objects (the store
// config, the markers) held in memory.
class SyntheticStore : public kindling::storage::ObjectStore {
 public:
  explicit SyntheticStore(Shape shape) : shape_(shape) {}
  void SetKeys(const repo::DataKeys* keys) { keys_ = keys; }
  std::uint64_t deleted() const { return deleted_; }

  Status Put(std::string_view key, std::string_view data) override {
    std::lock_guard lock(mu_);
    others_[std::string(key)] = std::string(data);
    return {};
  }
  Status PutIfAbsent(std::string_view key, std::string_view data) override {
    std::lock_guard lock(mu_);
    if (!others_.emplace(std::string(key), std::string(data)).second) {
      return kindling::MakeError(kindling::ErrorKind::kAlreadyExists, std::string(key));
    }
    return {};
  }
  Result<std::string> Get(std::string_view key) override {
    if (auto name = repo::ParseManifestKey(key); name && keys_ != nullptr) {
      return repo::EncodeManifest(*keys_, MakeManifest(*name));
    }
    std::lock_guard lock(mu_);
    auto it = others_.find(std::string(key));
    if (it == others_.end()) return kindling::MakeError(kindling::ErrorKind::kNotFound, "absent");
    return it->second;
  }
  Result<std::uint64_t> Head(std::string_view key) override {
    auto got = Get(key);
    if (!got) return std::unexpected(got.error());
    return got->size();
  }
  Status Delete(std::string_view key) override {
    if (key.starts_with("chunks/")) {
      ++deleted_;
      return {};
    }
    std::lock_guard lock(mu_);
    others_.erase(std::string(key));
    return {};
  }
  Result<std::vector<ObjectInfo>> List(std::string_view prefix) override {
    std::vector<ObjectInfo> out;
    if (prefix.starts_with("chunks/") && prefix.size() == 10) {
      const auto shard = kindling::HexDecode(prefix.substr(7, 2));
      if (!shard || shard->size() != 1) return out;
      const auto first = static_cast<std::uint8_t>((*shard)[0]);
      for (std::uint64_t i = first; i < shape_.live + shape_.garbage; i += 256) {
        out.push_back({repo::ChunkKey(IdOf(i)), 65536, 1});
      }
      return out;
    }
    if (prefix == repo::kVolumesPrefix) {
      for (std::uint64_t v = 0; v < shape_.volumes; ++v)
        for (std::uint64_t b = 0; b < shape_.backups; ++b)
          out.push_back({repo::ManifestKey(Volume(v), BackupId(v, b)), 1000, 1});
      return out;
    }
    std::lock_guard lock(mu_);
    for (auto it = others_.lower_bound(std::string(prefix));
         it != others_.end() && it->first.starts_with(prefix); ++it) {
      out.push_back({it->first, it->second.size(), 1});
    }
    return out;
  }
  std::string Describe() const override { return "synthetic store"; }

 private:
  static std::string Volume(std::uint64_t v) { return "vol-" + std::to_string(v); }
  repo::Manifest MakeManifest(const repo::ManifestName& name) const {
    const std::uint64_t v = std::stoull(name.volume_id.substr(4));
    const std::uint64_t b = std::stoull(name.backup_id.substr(30), nullptr, 16);
    const std::uint64_t per_volume = shape_.live / shape_.volumes;
    const std::uint64_t span = per_volume - (shape_.backups - 1) * shape_.shift;
    repo::Manifest m;
    m.volume_id = name.volume_id;
    m.backup_id = name.backup_id;
    m.chunk_size = 65536;
    m.image_size = span * m.chunk_size;
    m.chunks.resize(span);
    for (std::uint64_t k = 0; k < span; ++k) {
      m.chunks[k] = {.is_hole = false,
                     .id = IdOf(v * per_volume + b * shape_.shift + k),
                     .stored_size = 65536};
    }
    return m;
  }

  const Shape shape_;
  const repo::DataKeys* keys_ = nullptr;
  std::mutex mu_;
  std::map<std::string, std::string> others_;
  std::atomic<std::uint64_t> deleted_{0};
};

std::uint64_t StatusKiB(const char* field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.starts_with(field))
      return std::strtoull(line.c_str() + std::strlen(field), nullptr, 10);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Shape shape;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const std::uint64_t value = std::strtoull(argv[i + 1], nullptr, 10);
    if (flag == "--live")
      shape.live = value;
    else if (flag == "--garbage")
      shape.garbage = value;
    else if (flag == "--volumes")
      shape.volumes = value;
    else if (flag == "--backups")
      shape.backups = value;
    else {
      std::fprintf(stderr,
                   "usage: gc_bench [--live N] [--garbage N] [--volumes N] [--backups N]\n");
      return 2;
    }
  }
  if (shape.volumes == 0 || shape.live / shape.volumes <= shape.backups * shape.shift) {
    std::fprintf(stderr, "gc_bench: --live must exceed volumes x backups x %llu\n",
                 static_cast<unsigned long long>(shape.shift));
    return 2;
  }
  SyntheticStore store(shape);
  auto repository = kindling::engine::Repository::Init(store, kindling::crypto::RandomKey());
  if (!repository) {
    std::fprintf(stderr, "gc_bench: %s\n", repository.error().message().c_str());
    return 1;
  }
  store.SetKeys(&repository->keys());

  const std::uint64_t rss_before_kib = StatusKiB("VmRSS:");
  {
    std::ofstream clear("/proc/self/clear_refs");
    clear << "5";  // resets VmHWM to the current RSS
  }
  kindling::engine::GcOptions options;
  auto report = kindling::engine::CollectGarbage(*repository, options);
  const std::uint64_t peak_kib = StatusKiB("VmHWM:");
  if (!report) {
    std::fprintf(stderr, "gc_bench: %s\n", report.error().message().c_str());
    return 1;
  }
  const double seconds = static_cast<double>(report->duration_ms) / 1000.0;
  const double peak_mib = static_cast<double>(peak_kib) / 1024.0;
  const bool ids_ok = report->live_chunks == shape.live &&
                      report->chunks_deleted == shape.garbage && store.deleted() == shape.garbage;
  const nlohmann::json line = {{"live_chunk_ids", report->live_chunks},
                               {"manifests", report->manifests},
                               {"chunks_listed", report->chunks_examined},
                               {"chunks_deleted", report->chunks_deleted},
                               {"seconds", seconds},
                               {"rss_before_mib", static_cast<double>(rss_before_kib) / 1024.0},
                               {"peak_rss_mib", peak_mib},
                               {"counts_as_expected", ids_ok}};
  std::printf("%s\n\n", line.dump().c_str());
  std::printf("| live chunk ids | manifests | chunks listed | deleted | time s | peak RSS MiB |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|\n");
  std::printf("| %llu | %llu | %llu | %llu | %.2f | %.1f |\n",
              static_cast<unsigned long long>(report->live_chunks),
              static_cast<unsigned long long>(report->manifests),
              static_cast<unsigned long long>(report->chunks_examined),
              static_cast<unsigned long long>(report->chunks_deleted), seconds, peak_mib);
  std::printf("- peak RSS %.1f MiB (target < 256 MiB): %s\n", peak_mib,
              peak_mib < 256.0 ? "PASS" : "MISS");
  std::printf("- live ids %llu and deletions %llu as generated: %s\n",
              static_cast<unsigned long long>(report->live_chunks),
              static_cast<unsigned long long>(report->chunks_deleted), ids_ok ? "PASS" : "MISS");
  return ids_ok ? 0 : 1;
}
