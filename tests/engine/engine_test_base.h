// Shared fixture for the engine tests: a LocalStore in a fresh temp dir behind
// a FaultInjectingStore, an initialised repository with 64 KiB chunks, and
// helpers to build images, corrupt objects and inspect the output directory.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "common/result.h"
#include "crypto/sha256.h"
#include "engine/backup.h"
#include "engine/repository.h"
#include "engine/restore.h"
#include "repo/chunk_codec.h"
#include "repo/layout.h"
#include "storage/local_store.h"
#include "testutil/fault_injecting_store.h"
#include "testutil/sparse_image.h"
#include "testutil/temp_dir.h"

namespace kindling::engine {

inline constexpr std::uint32_t kChunk = repo::kMinChunkSize;

class EngineTestBase : public ::testing::Test {
 protected:
  void SetUp() override {
    auto local = storage::LocalStore::Open(dir_ / "store");
    ASSERT_TRUE(local) << local.error().message();
    local_ = std::move(*local);
    faults_ = std::make_unique<testutil::FaultInjectingStore>(*local_);
    auto repository = Repository::Init(*faults_, key_, kChunk);
    ASSERT_TRUE(repository) << repository.error().message();
    repo_.emplace(std::move(*repository));
    std::filesystem::create_directory(out_dir());
  }

  const Repository& repository() const { return *repo_; }
  std::filesystem::path out_dir() const { return dir_ / "out"; }

  // Makes dir_/name with apparent size `size` and the given extents.
  std::filesystem::path MakeImage(const std::string& name, std::uint64_t size,
                                  const std::vector<testutil::Extent>& extents,
                                  std::uint64_t seed = 1) {
    const auto path = dir_ / name;
    testutil::MakeSparseFile(path, size, extents, seed);
    return path;
  }

  // Holes, written zeros, random and text chunks, a chunk half hole and half
  // data, and a tail that is not a multiple of the chunk size.
  std::filesystem::path MakeMixedImage(const std::string& name) {
    using testutil::Fill;
    return MakeImage(name, 23 * std::uint64_t{kChunk} + 1234,
                     {{0, 2 * kChunk, Fill::kRandom},
                      {3 * kChunk, kChunk, Fill::kZeros},
                      {5 * kChunk, 3 * kChunk, Fill::kText},
                      {9 * kChunk, kChunk / 2, Fill::kRandom},
                      {12 * kChunk + 4096, 100, Fill::kText},
                      {15 * kChunk, 2 * kChunk, Fill::kZeros},
                      {18 * kChunk, kChunk + 5000, Fill::kRandom},
                      {22 * kChunk + 7000, kChunk - 7000 + 1234, Fill::kText}});
  }

  BackupOptions Options(const std::filesystem::path& image, const std::string& volume = "vol-1") {
    BackupOptions o;
    o.volume_id = volume;
    o.image = image;
    return o;
  }

  Result<repo::Manifest> Backup(const std::filesystem::path& image,
                                const std::string& volume = "vol-1") {
    return CreateBackup(repository(), Options(image, volume));
  }

  // Backs up `image` and fails the test unless that works.
  repo::Manifest BackupOrDie(const std::filesystem::path& image,
                             const std::string& volume = "vol-1") {
    auto m = Backup(image, volume);
    EXPECT_TRUE(m) << m.error().message();
    if (!m) throw std::runtime_error("backup failed: " + m.error().message());
    return std::move(*m);
  }

  Result<RestoreResult> Restore(const repo::Manifest& m, const std::filesystem::path& destination,
                                bool overwrite = false, int threads = 0) {
    RestoreOptions o;
    o.destination = destination;
    o.overwrite = overwrite;
    o.threads = threads;
    return RestoreBackup(repository(), m, o);
  }

  // Number of chunk objects / manifests in the store (read beneath the fault
  // injector, so injected faults do not disturb the count).
  std::size_t StoredChunks() const { return local_->List("chunks/")->size(); }
  std::size_t StoredManifests() const { return local_->List(repo::kVolumesPrefix)->size(); }

  // Flips one bit of a stored object, at `offset` or (when npos) in its middle.
  void CorruptObject(const std::string& key, std::size_t offset = std::string::npos) {
    auto object = local_->Get(key);
    ASSERT_TRUE(object) << key << ": " << object.error().message();
    ASSERT_FALSE(object->empty());
    if (offset == std::string::npos) offset = object->size() / 2;
    (*object)[offset] = static_cast<char>((*object)[offset] ^ 0x10);
    ASSERT_TRUE(local_->Put(key, *object));
  }
  void DeleteObject(const std::string& key) {
    ASSERT_TRUE(local_->Head(key)) << key << " is not stored";
    ASSERT_TRUE(local_->Delete(key));
  }

  // Index of the n-th (0-based) data chunk of `m`.
  static std::size_t NthDataChunk(const repo::Manifest& m, std::size_t n) {
    for (std::size_t i = 0; i < m.chunks.size(); ++i)
      if (!m.chunks[i].is_hole && n-- == 0) return i;
    throw std::out_of_range("manifest has too few data chunks");
  }
  static std::size_t DistinctDataChunks(const repo::Manifest& m) {
    std::unordered_set<std::string> ids;
    for (const auto& c : m.chunks)
      if (!c.is_hole) ids.insert(crypto::DigestHex(c.id));
    return ids.size();
  }

  static std::string FileSha(const std::filesystem::path& path) {
    return testutil::Sha256OfFile(path);
  }
  // The image digest a backup with `chunk_size` must record for `path`.
  static std::string FileDigest(const std::filesystem::path& path,
                                std::uint32_t chunk_size = 4u << 20) {
    return testutil::ImageDigestOfFile(path, chunk_size);
  }

  testutil::TempDir dir_;
  std::unique_ptr<storage::LocalStore> local_;
  std::unique_ptr<testutil::FaultInjectingStore> faults_;
  crypto::Key key_ = crypto::RandomKey();
  std::optional<Repository> repo_;
};

}  // namespace kindling::engine
