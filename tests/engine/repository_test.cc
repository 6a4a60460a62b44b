#include "engine/repository.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "engine/engine_test_base.h"

namespace kindling::engine {
namespace {

using ::testing::HasSubstr;
using testutil::Fill;
using testutil::StoreOp;

class RepositoryTest : public EngineTestBase {
 protected:
  // A backup of a small image with distinct content per call; sleeps so that
  // consecutive backups get distinct creation times.
  repo::Manifest BackupOf(const std::string& volume) {
    const auto image = MakeImage("img-" + std::to_string(counter_), 3 * kChunk,
                                 {{0, kChunk, Fill::kRandom}}, 1000 + counter_);
    ++counter_;
    std::this_thread::sleep_for(std::chrono::milliseconds(3));
    return BackupOrDie(image, volume);
  }
  int counter_ = 0;
};

TEST_F(RepositoryTest, InitTwiceIsAlreadyExists) {
  auto again = Repository::Init(*local_, key_, kChunk);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().kind(), ErrorKind::kAlreadyExists);
  auto other_key = Repository::Init(*local_, crypto::RandomKey(), kChunk);
  ASSERT_FALSE(other_key);
  EXPECT_EQ(other_key.error().kind(), ErrorKind::kAlreadyExists);
  EXPECT_TRUE(Repository::Open(*local_, key_));
}

TEST_F(RepositoryTest, OpenKeepsKeysAndDefaultChunkSize) {
  auto opened = Repository::Open(*local_, key_);
  ASSERT_TRUE(opened) << opened.error().message();
  EXPECT_EQ(opened->keys().store_id, repository().keys().store_id);
  EXPECT_EQ(opened->keys().data_key, repository().keys().data_key);
  EXPECT_EQ(opened->keys().chunk_id_key, repository().keys().chunk_id_key);
  EXPECT_EQ(opened->keys().default_chunk_size, kChunk);
  EXPECT_EQ(&opened->store(), local_.get());
}

TEST_F(RepositoryTest, OpenErrors) {
  auto wrong = Repository::Open(*local_, crypto::RandomKey());
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().kind(), ErrorKind::kWrongKey);

  auto empty_store = storage::LocalStore::Open(dir_ / "empty-store");
  ASSERT_TRUE(empty_store);
  auto uninitialised = Repository::Open(**empty_store, key_);
  ASSERT_FALSE(uninitialised);
  EXPECT_EQ(uninitialised.error().kind(), ErrorKind::kNotFound);

  CorruptObject(std::string(repo::kConfigKey));
  auto corrupt = Repository::Open(*local_, key_);
  ASSERT_FALSE(corrupt);
  EXPECT_EQ(corrupt.error().kind(), ErrorKind::kCorruption);
}

TEST_F(RepositoryTest, InitRejectsBadChunkSizes) {
  for (std::uint32_t size : {0u, repo::kMinChunkSize - 4096, repo::kMaxChunkSize + 4096}) {
    auto store = storage::LocalStore::Open(dir_ / ("s" + std::to_string(size)));
    ASSERT_TRUE(store);
    auto r = Repository::Init(**store, key_, size);
    ASSERT_FALSE(r) << size;
    EXPECT_EQ(r.error().kind(), ErrorKind::kInvalidArgument);
    EXPECT_TRUE((*store)->List("")->empty()) << "nothing written for a refused init";
  }
}

TEST_F(RepositoryTest, ListBackupsNewestFirst) {
  std::vector<repo::Manifest> made;
  made.push_back(BackupOf("vol-1"));
  made.push_back(BackupOf("vol-2"));
  made.push_back(BackupOf("vol-1"));
  made.push_back(BackupOf("vol-10"));
  made.push_back(BackupOf("vol-1"));

  auto all = repository().ListBackups();
  ASSERT_TRUE(all) << all.error().message();
  ASSERT_EQ(all->size(), 5u);
  for (std::size_t i = 0; i < 5; ++i) {
    EXPECT_EQ((*all)[i].backup_id, made[4 - i].backup_id) << i;
    EXPECT_EQ((*all)[i].volume_id, made[4 - i].volume_id) << i;
  }
  for (std::size_t i = 1; i < all->size(); ++i)
    EXPECT_GE((*all)[i - 1].created_unix_ms, (*all)[i].created_unix_ms);

  auto vol1 = repository().ListBackups("vol-1");
  ASSERT_TRUE(vol1);
  ASSERT_EQ(vol1->size(), 3u) << "vol-10 must not be listed as vol-1";
  EXPECT_EQ((*vol1)[0].backup_id, made[4].backup_id);
  EXPECT_EQ((*vol1)[1].backup_id, made[2].backup_id);
  EXPECT_EQ((*vol1)[2].backup_id, made[0].backup_id);

  auto none = repository().ListBackups("vol-3");
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
  auto prefix = repository().ListBackups("vol-");
  ASSERT_TRUE(prefix);
  EXPECT_TRUE(prefix->empty());
}

TEST_F(RepositoryTest, ListBackupsOfEmptyStore) {
  auto all = repository().ListBackups();
  ASSERT_TRUE(all);
  EXPECT_TRUE(all->empty());
}

TEST_F(RepositoryTest, InfoOfMatchesManifest) {
  const repo::Manifest m = BackupOf("vol-1");
  auto listed = repository().ListBackups();
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 1u);
  const BackupInfo& info = listed->front();
  EXPECT_EQ(info.volume_id, m.volume_id);
  EXPECT_EQ(info.backup_id, m.backup_id);
  EXPECT_EQ(info.image_size, m.image_size);
  EXPECT_EQ(info.chunk_size, m.chunk_size);
  EXPECT_EQ(info.created_unix_ms, m.created_unix_ms);
  EXPECT_EQ(info.image_digest_hex, crypto::DigestHex(m.image_digest));
  EXPECT_EQ(info.stats.chunks_data, m.stats.chunks_data);
  EXPECT_EQ(info.stats.bytes_uploaded, m.stats.bytes_uploaded);
  EXPECT_EQ(InfoOf(m).image_digest_hex, info.image_digest_hex);
}

TEST_F(RepositoryTest, ListIgnoresStrayObjects) {
  const repo::Manifest m = BackupOf("vol-1");
  ASSERT_TRUE(local_->Put("project-volumes/vol-1/notes.txt", "x"));
  ASSERT_TRUE(local_->Put("project-volumes/vol-1/backups/readme", "x"));
  ASSERT_TRUE(local_->Put("project-volumes/vol-1/backups/x/y.manifest", "x"));
  auto listed = repository().ListBackups();
  ASSERT_TRUE(listed) << listed.error().message();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ(listed->front().backup_id, m.backup_id);
}

TEST_F(RepositoryTest, ListBackupsNamesCorruptManifest) {
  BackupOf("vol-1");
  const repo::Manifest bad = BackupOf("vol-1");
  const std::string key = repo::ManifestKey("vol-1", bad.backup_id);
  CorruptObject(key);
  auto listed = repository().ListBackups();
  ASSERT_FALSE(listed);
  EXPECT_EQ(listed.error().kind(), ErrorKind::kCorruption);
  EXPECT_THAT(listed.error().message(), HasSubstr(key));
}

TEST_F(RepositoryTest, ManifestMovedToAnotherKeyIsCorruption) {
  const repo::Manifest m = BackupOf("vol-1");
  const std::string object = *local_->Get(repo::ManifestKey("vol-1", m.backup_id));
  ASSERT_TRUE(local_->Put(repo::ManifestKey("vol-2", m.backup_id), object));
  ASSERT_TRUE(local_->Put(repo::ManifestKey("vol-1", "renamed"), object));
  auto moved = repository().LoadManifest("vol-2", m.backup_id);
  ASSERT_FALSE(moved);
  EXPECT_EQ(moved.error().kind(), ErrorKind::kCorruption);
  auto renamed = repository().LoadManifest("vol-1", "renamed");
  ASSERT_FALSE(renamed);
  EXPECT_EQ(renamed.error().kind(), ErrorKind::kCorruption);
}

TEST_F(RepositoryTest, LoadManifestMissingIsNotFound) {
  auto m = repository().LoadManifest("vol-1", "no-such-backup");
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().kind(), ErrorKind::kNotFound);
}

TEST_F(RepositoryTest, FindBackupAcrossVolumes) {
  BackupOf("vol-1");
  const repo::Manifest target = BackupOf("vol-2");
  BackupOf("vol-3");
  auto found = repository().FindBackup(target.backup_id);
  ASSERT_TRUE(found) << found.error().message();
  EXPECT_EQ(found->volume_id, "vol-2");
  EXPECT_EQ(found->backup_id, target.backup_id);
  EXPECT_EQ(found->image_digest, target.image_digest);

  auto missing = repository().FindBackup("01890a5d-ac96-774b-bcce-b302099a8057");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().kind(), ErrorKind::kNotFound);
  // A prefix of an id is not the id.
  auto prefix = repository().FindBackup(target.backup_id.substr(0, 20));
  ASSERT_FALSE(prefix);
  EXPECT_EQ(prefix.error().kind(), ErrorKind::kNotFound);
}

TEST_F(RepositoryTest, FindBackupWithSameIdInTwoVolumesIsAmbiguous) {
  const auto image = MakeImage("img", kChunk, {{0, kChunk, Fill::kRandom}});
  for (std::string volume : {"vol-a", "vol-b"}) {
    BackupOptions o = Options(image, volume);
    o.backup_id = "same-id";
    ASSERT_TRUE(CreateBackup(repository(), o));
  }
  auto found = repository().FindBackup("same-id");
  ASSERT_FALSE(found) << "an id in two volumes must not silently pick one";
  EXPECT_THAT(found.error().message(), HasSubstr("vol-a"));
  EXPECT_THAT(found.error().message(), HasSubstr("vol-b"));
}

TEST_F(RepositoryTest, DeleteBackup) {
  const repo::Manifest keep = BackupOf("vol-1");
  const repo::Manifest drop = BackupOf("vol-1");
  const std::size_t chunks = StoredChunks();
  ASSERT_TRUE(repository().DeleteBackup("vol-1", drop.backup_id));

  auto listed = repository().ListBackups("vol-1");
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ(listed->front().backup_id, keep.backup_id);
  auto loaded = repository().LoadManifest("vol-1", drop.backup_id);
  ASSERT_FALSE(loaded);
  EXPECT_EQ(loaded.error().kind(), ErrorKind::kNotFound);
  auto found = repository().FindBackup(drop.backup_id);
  ASSERT_FALSE(found);
  EXPECT_EQ(found.error().kind(), ErrorKind::kNotFound);
  EXPECT_EQ(StoredChunks(), chunks) << "chunks are left for gc";

  // Idempotent.
  EXPECT_TRUE(repository().DeleteBackup("vol-1", drop.backup_id));
  EXPECT_TRUE(repository().DeleteBackup("vol-9", "never-existed"));

  // The remaining backup still restores.
  auto r = Restore(keep, out_dir() / "keep.img");
  ASSERT_TRUE(r) << r.error().message();
}

TEST_F(RepositoryTest, StoreErrorsPropagateWithTheirKind) {
  BackupOf("vol-1");
  faults_->FailMatching(StoreOp::kList, "project-volumes/", ErrorKind::kTransient);
  auto listed = repository().ListBackups();
  ASSERT_FALSE(listed);
  EXPECT_EQ(listed.error().kind(), ErrorKind::kTransient);
  auto found = repository().FindBackup("x");
  ASSERT_FALSE(found);
  EXPECT_EQ(found.error().kind(), ErrorKind::kTransient);
  faults_->Clear();
  faults_->FailMatching(StoreOp::kGet, ".manifest", ErrorKind::kPermissionDenied);
  auto loaded = repository().ListBackups();
  ASSERT_FALSE(loaded);
  EXPECT_EQ(loaded.error().kind(), ErrorKind::kPermissionDenied);
}

}  // namespace
}  // namespace kindling::engine
