// A test database whose backup settings name a local store in a temp dir,
// opened as the cluster opens it (control::OpenCurrentBackupStore), and
// engine backups of random images in that store.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "control/admin_service.h"
#include "control/backup_store.h"
#include "crypto/aead.h"
#include "db/db_test_util.h"
#include "engine/backup.h"
#include "testutil/sparse_image.h"
#include "testutil/temp_dir.h"

namespace kindling::control {

class LocalStoreDbTest : public db::DbTest {
 protected:
  void SetUp() override {
    DbTest::SetUp();
    if (HasFatalFailure()) return;
    store_dir_ = dir_.path() / "store";
    auto saved = UpdateBackupSettings(db(), master_key_, Actor{},
                                      BackupSettingsUpdate{.local_directory = store_dir_.string()});
    ASSERT_TRUE(saved) << saved.error().message;
    auto opened = OpenCurrentBackupStore(db(), master_key_);
    ASSERT_TRUE(opened) << opened.error().message();
    store_ = std::move(*opened);
  }

  // A backup under `volume_id` of a `size`-byte random image (`seed`: its
  // content) in `chunk_size` chunks; an empty manifest (and a test failure)
  // when it fails.
  repo::Manifest RandomBackup(const std::string& volume_id, std::uint64_t seed, std::uint64_t size,
                              std::uint32_t chunk_size = 256u << 10) {
    const auto image = dir_.path() / ("random-" + std::to_string(seed) + ".img");
    testutil::MakeSparseFile(image, size, {{.offset = 0, .length = size}}, seed);
    engine::BackupOptions options;
    options.volume_id = volume_id;
    options.image = image;
    options.chunk_size = chunk_size;
    auto manifest = engine::CreateBackup(*store_.repository, options);
    EXPECT_TRUE(manifest) << manifest.error().message();
    return manifest ? *manifest : repo::Manifest{};
  }
  std::size_t StoredChunks() const {
    auto chunks = store_.store->List("chunks/");
    EXPECT_TRUE(chunks) << chunks.error().message();
    return chunks ? chunks->size() : 0;
  }

  testutil::TempDir dir_;
  crypto::Key master_key_ = crypto::RandomKey();
  std::filesystem::path store_dir_;
  OpenedBackupStore store_;
};

}  // namespace kindling::control
