#include "reconcile/worker.h"

#include <nlohmann/json.hpp>

#include "common/subprocess.h"
#include "crypto/sha256.h"
#include "engine/backup.h"
#include "reconcile/volume_images.h"
#include "reconcile_test_base.h"
#include "repo/layout.h"
#include "testutil/sparse_image.h"
#include "testutil/temp_dir.h"

namespace kindling::reconcile {
namespace {

using json = nlohmann::json;
using std::chrono::milliseconds;

class WorkerTest : public ReconcileTest {
 protected:
  // Waits for the worker to make the volume's image, then writes data the
  // test can check for.
  std::filesystem::path MakeImageWithData(Worker& worker, const db::Volume& volume) {
    const auto image = worker.ImageOf(volume.id);
    EXPECT_TRUE(WaitFor([&] { return std::filesystem::exists(image); }, milliseconds(20'000)))
        << "image never created";
    testutil::PatchFile(image, 64u << 20, testutil::RandomData(3u << 20, 7));
    testutil::PatchFile(image, 700u << 20, testutil::TextData(1u << 20, 9));
    return image;
  }
};

TEST_F(WorkerTest, RegistersWithRuntimeAndCreatesPinnedImages) {
  auto options = FastOptions("w1");
  Worker& worker = StartWorker(options);
  auto server = Must([&](db::Tx& tx) { return db::GetServer(tx, worker.server_id()); });
  ASSERT_TRUE(server);
  EXPECT_EQ(server->status, db::ServerStatus::kActive);
  ASSERT_EQ(server->components.size(), 1u);
  EXPECT_EQ(server->components[0].runtime.value_or(""), kDefaultRuntime);

  const db::Volume volume = MakePinnedVolume(worker.server_id());
  ASSERT_TRUE(WaitFor([&] { return GetVolume(volume.id).health == db::VolumeHealth::kHealthy; }));
  EXPECT_TRUE(std::filesystem::exists(worker.ImageOf(volume.id)));
  EXPECT_GE(std::filesystem::file_size(worker.ImageOf(volume.id)), 1ull << 30);

  // Re-registration with the same id reuses the row.
  workers_.front()->Stop();
  workers_.clear();
  StartWorker(options);
  auto servers = Must([&](db::Tx& tx) { return db::ListServers(tx); });
  ASSERT_TRUE(servers);
  EXPECT_EQ(servers->size(), 1u);
}

// A volume too large for the worker's disk is that volume's problem: its
// last_error says why, and the worker stays healthy, eligible as a restore
// target and making images for the other volumes; a new size is tried at
// once.
TEST_F(WorkerTest, AnImageThatCannotBeMadeFailsItsVolumeNotTheWorker) {
  Worker& worker = StartWorker(FastOptions("w1"));
  const db::Volume huge = MakePinnedVolume(worker.server_id(), 1'000'000);
  ASSERT_TRUE(WaitFor([&] { return GetVolume(huge.id).last_error.has_value(); }));
  EXPECT_NE(GetVolume(huge.id).last_error->find("does not fit"), std::string::npos)
      << *GetVolume(huge.id).last_error;
  EXPECT_EQ(GetVolume(huge.id).health, db::VolumeHealth::kUnknown);
  EXPECT_FALSE(std::filesystem::exists(worker.ImageOf(huge.id)));

  const db::Volume small = MakePinnedVolume(worker.server_id());
  ASSERT_TRUE(WaitFor([&] { return GetVolume(small.id).health == db::VolumeHealth::kHealthy; }));
  // After further heartbeats (each reports the component's health), still
  // healthy and eligible.
  const auto heartbeat = [&] {
    auto s = Must([&](db::Tx& tx) { return db::GetServer(tx, worker.server_id()); });
    return s ? s->last_heartbeat_at : std::nullopt;
  };
  for (int i = 0; i < 2; ++i) {
    const auto before = heartbeat();
    ASSERT_TRUE(WaitFor([&] { return heartbeat() != before; }));
  }
  auto server = Must([&](db::Tx& tx) { return db::GetServer(tx, worker.server_id()); });
  ASSERT_TRUE(server);
  ASSERT_EQ(server->components.size(), 1u);
  EXPECT_EQ(server->components[0].status, db::ComponentHealth::kHealthy)
      << server->components[0].last_error_message.value_or("");
  auto eligible = Must([&](db::Tx& tx) { return db::ListEligibleWorkers(tx); });
  ASSERT_TRUE(eligible);
  ASSERT_EQ(eligible->size(), 1u);
  EXPECT_EQ((*eligible)[0].server_id, worker.server_id());

  // Sized down by hand (the API only grows): made at once, not after the
  // retry delay, and the error is cleared.
  Sql("UPDATE project_volumes SET size_gb = 1 WHERE id = '" + huge.id + "'");
  ASSERT_TRUE(WaitFor([&] { return GetVolume(huge.id).health == db::VolumeHealth::kHealthy; }));
  EXPECT_FALSE(GetVolume(huge.id).last_error.has_value());
  EXPECT_TRUE(std::filesystem::exists(worker.ImageOf(huge.id)));
}

// A grow operation grows the image and its ext4 filesystem (on a copy,
// renamed over the image), keeping the files inside.
TEST_F(WorkerTest, GrowKeepsTheDataAndGrowsTheFilesystem) {
  Worker& worker = StartWorker(FastOptions("w1"));
  const db::Volume volume = MakePinnedVolume(worker.server_id());
  ASSERT_TRUE(WaitFor([&] { return GetVolume(volume.id).health == db::VolumeHealth::kHealthy; }));
  const std::filesystem::path image = worker.ImageOf(volume.id);
  const std::filesystem::path local = dir_ / "data.txt";
  const std::string content = testutil::TextData(3u << 20, 5);
  testutil::WriteFile(local, content);
  // A tool run without a shell: its stdout, and exit status.
  const auto run = [](const std::string& tool, std::vector<std::string> args) {
    auto path = FindTool(tool);
    EXPECT_TRUE(path) << tool;
    args.insert(args.begin(), path ? path->string() : tool);
    auto ran =
        SystemCommandRunner().Run(CommandOptions{.args = std::move(args), .max_output = 64u << 20});
    EXPECT_TRUE(ran) << tool;
    return ran ? *ran : kindling::CommandResult{.exit_status = -1};
  };
  ASSERT_EQ(run("debugfs", {"-w", "-R", "write " + local.string() + " data.txt", image.string()})
                .exit_status,
            0);

  const db::QueuedOperation grow = Queue({.volume_id = volume.id,
                                          .kind = db::OperationKind::kGrow,
                                          .server_id = worker.server_id(),
                                          .extra_request_metadata_json = R"({"size_gb": 3})"});
  EXPECT_EQ(GetVolume(volume.id).status, db::VolumeStatus::kRepairing);
  const db::Operation done = WaitFinished(grow.operation.id);
  ASSERT_EQ(done.status, db::OperationStatus::kSucceeded) << done.error.value_or("");
  const db::Volume after = GetVolume(volume.id);
  EXPECT_EQ(after.size_gb, 3);
  EXPECT_EQ(after.status, db::VolumeStatus::kDetached);
  EXPECT_EQ(std::filesystem::file_size(image), 3ull << 30);
  // The filesystem fills the image: block count x block size, from dumpe2fs.
  const auto header = run("dumpe2fs", {"-h", image.string()});
  ASSERT_EQ(header.exit_status, 0);
  const auto field = [&](const std::string& name) -> std::uint64_t {
    const auto at = header.output.find(name + ":");
    if (at == std::string::npos) return 0;
    return std::stoull(header.output.substr(at + name.size() + 1));
  };
  EXPECT_EQ(field("Block count") * field("Block size"), 3ull << 30) << header.output;
  // The file inside is intact, and the filesystem clean.
  const auto cat = run("debugfs", {"-R", "cat data.txt", image.string()});
  ASSERT_EQ(cat.exit_status, 0);
  EXPECT_TRUE(cat.output == content) << "data.txt changed by the grow";
  EXPECT_EQ(run("e2fsck", {"-f", "-n", image.string()}).exit_status, 0);
  // No temp copy left behind.
  int files = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(image.parent_path()))
    ++files;
  EXPECT_EQ(files, 1);
}

TEST_F(WorkerTest, LostImageIsMarkedMissingNotRecreated) {
  Worker& worker = StartWorker(FastOptions("w1"));
  const db::Volume volume = MakePinnedVolume(worker.server_id());
  ASSERT_TRUE(WaitFor([&] { return GetVolume(volume.id).health == db::VolumeHealth::kHealthy; }));
  std::filesystem::remove(worker.ImageOf(volume.id));
  ASSERT_TRUE(WaitFor([&] { return GetVolume(volume.id).health == db::VolumeHealth::kMissing; }));
  const db::Volume after = GetVolume(volume.id);
  EXPECT_EQ(after.status, db::VolumeStatus::kUnavailable);
  EXPECT_TRUE(after.last_error.has_value());
  EXPECT_FALSE(std::filesystem::exists(worker.ImageOf(volume.id)));
}

// A backup the database shows in flight whose manifest was committed
// meanwhile (after the snapshot a restored database came from) is recorded
// from the manifest, even when the image is no longer on the server (the
// volume moved away after the snapshot): the backup exists, and the volume
// is not declared missing for it.
TEST_F(WorkerTest, CommittedBackupIsRecordedFromItsManifestWithoutTheImage) {
  Worker& worker = AddSteppedWorker(FastOptions("w1"));
  const db::Volume volume = MakePinnedVolume(worker.server_id());
  ASSERT_TRUE(worker.ReconcileImagesOnce());
  const auto image = worker.ImageOf(volume.id);
  ASSERT_TRUE(std::filesystem::exists(image));
  testutil::PatchFile(image, 1u << 20, testutil::RandomData(2u << 20, 5));
  const db::QueuedOperation queued = QueueBackup(volume);
  engine::BackupOptions backup;
  backup.volume_id = volume.id;
  backup.backup_id = *queued.operation.backup_id;
  backup.image = image;
  auto manifest = engine::CreateBackup(*repository_, backup);
  ASSERT_TRUE(manifest) << manifest.error().message();
  std::filesystem::remove(image);

  auto ran = worker.RunNextOperation();
  ASSERT_TRUE(ran) << ran.error().message();
  ASSERT_TRUE(*ran);
  const db::Operation done = GetOperation(queued.operation.id);
  ASSERT_EQ(done.status, db::OperationStatus::kSucceeded) << done.error.value_or("");
  const json result = json::parse(done.result_metadata_json);
  EXPECT_EQ(result["resumed"], true);
  EXPECT_EQ(result["image_sha256"], crypto::DigestHex(manifest->image_digest));
  auto row = Must([&](db::Tx& tx) { return db::GetBackup(tx, backup.backup_id); });
  ASSERT_TRUE(row);
  EXPECT_EQ(row->status, db::BackupStatus::kSucceeded);
  EXPECT_EQ(row->size_bytes.value_or(0), 1ll << 30);
  const db::Volume after = GetVolume(volume.id);
  EXPECT_NE(after.health, db::VolumeHealth::kMissing);
  EXPECT_EQ(after.status, db::VolumeStatus::kDetached);
}

TEST_F(WorkerTest, BackupIsPickedUpWithinASecondAndRecordsItsResult) {
  auto options = FastOptions("w1");
  // Only NOTIFY can wake the executors this fast.
  options.sweep_interval = milliseconds(200);
  Worker& worker = StartWorker(options);
  const db::Volume volume = MakePinnedVolume(worker.server_id());
  const auto image = MakeImageWithData(worker, volume);
  const std::string digest = testutil::ImageDigestOfFile(image, kStoreChunkSize);
  // Idle executors now wait the full sweep interval; a NOTIFY must wake them.
  workers_.front()->Stop();
  workers_.clear();
  options.sweep_interval = milliseconds(30'000);
  Worker& slow_sweeper = StartWorker(options);
  std::this_thread::sleep_for(milliseconds(300));

  const auto queued_at = std::chrono::steady_clock::now();
  const db::QueuedOperation queued = QueueBackup(volume);
  ASSERT_TRUE(WaitFor(
      [&] { return GetOperation(queued.operation.id).status != db::OperationStatus::kPending; },
      milliseconds(1'000)))
      << "not picked up within a second";
  EXPECT_LE(std::chrono::steady_clock::now() - queued_at, milliseconds(1'100));

  const db::Operation done = WaitFinished(queued.operation.id);
  ASSERT_EQ(done.status, db::OperationStatus::kSucceeded) << done.error.value_or("");
  const json result = json::parse(done.result_metadata_json);
  EXPECT_EQ(result["image_sha256"], digest);
  EXPECT_EQ(result["size_bytes"], 1ull << 30);
  EXPECT_GT(result["stored_bytes"].get<std::uint64_t>(), 0u);
  EXPECT_GT(result["chunks_uploaded"].get<std::uint64_t>(), 0u);
  EXPECT_TRUE(result.contains("duration_ms"));
  const json progress = json::parse(done.progress_json);
  EXPECT_TRUE(progress.contains("phase")) << done.progress_json;
  // The bytes it moved stay on the succeeded operation (the metrics sum
  // them): the whole image.
  EXPECT_EQ(progress.value("bytes_done", std::uint64_t{0}), 1ull << 30) << done.progress_json;

  auto backup = Must([&](db::Tx& tx) { return db::GetBackup(tx, *queued.operation.backup_id); });
  ASSERT_TRUE(backup);
  EXPECT_EQ(backup->status, db::BackupStatus::kSucceeded);
  EXPECT_EQ(backup->size_bytes.value_or(0), 1ll << 30);
  EXPECT_EQ(backup->storage_key.value_or(""),
            repo::ManifestKey(volume.id, *queued.operation.backup_id));
  EXPECT_EQ(json::parse(backup->metadata_json)["image_sha256"], digest);
  const db::Volume after = GetVolume(volume.id);
  EXPECT_EQ(after.status, db::VolumeStatus::kDetached);
  EXPECT_FALSE(after.last_error.has_value());
  (void)slow_sweeper;
}

TEST_F(WorkerTest, BackupThenRestoreToOtherWorkerIsBitIdenticalAndOldCopyRemoved) {
  Worker& a = StartWorker(FastOptions("a"));
  Worker& b = StartWorker(FastOptions("b"));
  const db::Volume volume = MakePinnedVolume(a.server_id());
  const auto image = MakeImageWithData(a, volume);
  const std::string digest = testutil::Sha256OfFile(image);

  const db::QueuedOperation backup = QueueBackup(volume);
  ASSERT_EQ(WaitFinished(backup.operation.id).status, db::OperationStatus::kSucceeded);

  const db::QueuedOperation restore = Queue({.volume_id = volume.id,
                                             .kind = db::OperationKind::kRestore,
                                             .server_id = b.server_id(),
                                             .backup_id = backup.operation.backup_id,
                                             .target_server_id = b.server_id()});
  const db::Operation done = WaitFinished(restore.operation.id);
  ASSERT_EQ(done.status, db::OperationStatus::kSucceeded) << done.error.value_or("");
  EXPECT_EQ(testutil::Sha256OfFile(b.ImageOf(volume.id)), digest);
  const db::Volume after = GetVolume(volume.id);
  EXPECT_EQ(after.server_id.value_or(""), b.server_id());
  EXPECT_EQ(after.status, db::VolumeStatus::kDetached);
  EXPECT_TRUE(
      WaitFor([&] { return !std::filesystem::exists(a.ImageOf(volume.id)); }, milliseconds(10'000)))
      << "old copy left on the first worker";
  EXPECT_TRUE(std::filesystem::exists(b.ImageOf(volume.id)));
}

TEST_F(WorkerTest, MoveBacksUpOnSourceAndRestoresOnTarget) {
  Worker& a = StartWorker(FastOptions("a"));
  Worker& b = StartWorker(FastOptions("b"));
  const db::Volume volume = MakePinnedVolume(a.server_id());
  const std::string digest = testutil::Sha256OfFile(MakeImageWithData(a, volume));

  const db::QueuedOperation move = Queue({.volume_id = volume.id,
                                          .kind = db::OperationKind::kMove,
                                          .server_id = a.server_id(),
                                          .target_server_id = b.server_id(),
                                          .create_backup = db::BackupKind::kManual});
  const db::Operation done = WaitFinished(move.operation.id);
  ASSERT_EQ(done.status, db::OperationStatus::kSucceeded) << done.error.value_or("");
  EXPECT_EQ(done.server_id.value_or(""), b.server_id());
  EXPECT_EQ(testutil::Sha256OfFile(b.ImageOf(volume.id)), digest);
  EXPECT_EQ(GetVolume(volume.id).server_id.value_or(""), b.server_id());
  EXPECT_TRUE(WaitFor([&] { return !std::filesystem::exists(a.ImageOf(volume.id)); },
                      milliseconds(10'000)));
}

TEST_F(WorkerTest, RetentionTrimsOldBackupsAndADeleteFailureDoesNotFailTheBackup) {
  Worker& worker = StartWorker(FastOptions("w1"));
  db::Volume volume = MakePinnedVolume(worker.server_id());
  MakeImageWithData(worker, volume);
  ASSERT_TRUE(Must([&](db::Tx& tx) {
    return db::UpdateVolumeSettings(tx, volume.id, {.backup_retention_count = 2});
  }));

  std::vector<std::string> backup_ids;
  for (int i = 0; i < 3; ++i) {
    const db::QueuedOperation op = QueueBackup(volume);
    ASSERT_EQ(WaitFinished(op.operation.id).status, db::OperationStatus::kSucceeded);
    backup_ids.push_back(*op.operation.backup_id);
  }
  auto rows = Must([&](db::Tx& tx) { return db::ListBackups(tx, volume.id); });
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_FALSE(local_->Head(repo::ManifestKey(volume.id, backup_ids[0])).has_value());
  EXPECT_TRUE(local_->Head(repo::ManifestKey(volume.id, backup_ids[2])).has_value());

  // Deleting old manifests now fails: the new backup still succeeds and
  // says what it could not trim; the old backup stays listed and restorable.
  faulty_->FailMatching(testutil::StoreOp::kDelete, "", ErrorKind::kPermissionDenied);
  const db::QueuedOperation op = QueueBackup(volume);
  const db::Operation done = WaitFinished(op.operation.id);
  ASSERT_EQ(done.status, db::OperationStatus::kSucceeded) << done.error.value_or("");
  const json retention = json::parse(done.result_metadata_json)["retention"];
  EXPECT_EQ(retention["errors"].size(), 1u) << retention.dump();
  EXPECT_TRUE(retention["deleted"].empty());
  rows = Must([&](db::Tx& tx) { return db::ListBackups(tx, volume.id); });
  ASSERT_TRUE(rows);
  EXPECT_EQ(rows->size(), 3u);
  EXPECT_TRUE(local_->Head(repo::ManifestKey(volume.id, backup_ids[1])).has_value());

  // Once deletes work again the next backup catches up.
  faulty_->Clear();
  const db::QueuedOperation again = QueueBackup(volume);
  ASSERT_EQ(WaitFinished(again.operation.id).status, db::OperationStatus::kSucceeded);
  rows = Must([&](db::Tx& tx) { return db::ListBackups(tx, volume.id); });
  EXPECT_EQ(rows->size(), 2u);
}

// A backup an operator pinned survives any number of backups under a
// policy that would drop it, and counts for no rule: the newest backups
// still fill them. Unpinned, the next backup's retention drops it.
TEST_F(WorkerTest, RetentionNeverDeletesAPinnedBackup) {
  Worker& worker = StartWorker(FastOptions("w1"));
  db::Volume volume = MakePinnedVolume(worker.server_id());
  MakeImageWithData(worker, volume);
  ASSERT_TRUE(Must([&](db::Tx& tx) {
    return db::UpdateVolumeSettings(tx, volume.id, {.backup_retention_count = 1});
  }));
  const db::QueuedOperation first = QueueBackup(volume);
  ASSERT_EQ(WaitFinished(first.operation.id).status, db::OperationStatus::kSucceeded);
  const std::string pinned_id = *first.operation.backup_id;
  ASSERT_TRUE(Must([&](db::Tx& tx) { return db::SetBackupPinned(tx, pinned_id, true); }));

  std::string newest;
  for (int i = 0; i < 2; ++i) {
    const db::QueuedOperation op = QueueBackup(volume);
    const db::Operation done = WaitFinished(op.operation.id);
    ASSERT_EQ(done.status, db::OperationStatus::kSucceeded) << done.error.value_or("");
    newest = *op.operation.backup_id;
  }
  auto rows = Must([&](db::Tx& tx) { return db::ListBackups(tx, volume.id); });
  ASSERT_TRUE(rows);
  std::vector<std::string> ids;
  for (const db::Backup& b : *rows) ids.push_back(b.id);
  EXPECT_EQ(ids, (std::vector<std::string>{newest, pinned_id}));
  EXPECT_TRUE(local_->Head(repo::ManifestKey(volume.id, pinned_id)).has_value());

  ASSERT_TRUE(Must([&](db::Tx& tx) { return db::SetBackupPinned(tx, pinned_id, false); }));
  const db::QueuedOperation after = QueueBackup(volume);
  const db::Operation done = WaitFinished(after.operation.id);
  ASSERT_EQ(done.status, db::OperationStatus::kSucceeded) << done.error.value_or("");
  const json retention = json::parse(done.result_metadata_json)["retention"];
  EXPECT_NE(retention["deleted"].dump().find(pinned_id), std::string::npos) << retention.dump();
  EXPECT_FALSE(local_->Head(repo::ManifestKey(volume.id, pinned_id)).has_value());
}

// Retention deletes a backup from the store it was written to, not from the
// current one: a manifest left in an older store would be imported again by
// the next rescan.
TEST_F(WorkerTest, RetentionDeletesBackupsFromTheirOwnStore) {
  Worker& worker = StartWorker(FastOptions("w1"));
  db::Volume volume = MakePinnedVolume(worker.server_id());
  MakeImageWithData(worker, volume);
  ASSERT_TRUE(Must([&](db::Tx& tx) {
    return db::UpdateVolumeSettings(tx, volume.id, {.backup_retention_count = 1});
  }));
  const db::QueuedOperation first = QueueBackup(volume);
  ASSERT_EQ(WaitFinished(first.operation.id).status, db::OperationStatus::kSucceeded);
  const std::string old_key = repo::ManifestKey(volume.id, *first.operation.backup_id);
  ASSERT_TRUE(local_->Head(old_key).has_value());

  SetCurrentStore(AddStore("newer"));
  const db::QueuedOperation second = QueueBackup(volume);
  const db::Operation done = WaitFinished(second.operation.id);
  ASSERT_EQ(done.status, db::OperationStatus::kSucceeded) << done.error.value_or("");
  const json retention = json::parse(done.result_metadata_json)["retention"];
  EXPECT_EQ(retention["deleted"], json::array({*first.operation.backup_id})) << retention.dump();
  EXPECT_FALSE(local_->Head(old_key).has_value());
  auto rows = Must([&](db::Tx& tx) { return db::ListBackups(tx, volume.id); });
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ(rows->front().id, *second.operation.backup_id);
}

TEST_F(WorkerTest, FailedBackupLeavesVolumeUsableWithLastError) {
  Worker& worker = StartWorker(FastOptions("w1"));
  const db::Volume volume = MakePinnedVolume(worker.server_id());
  MakeImageWithData(worker, volume);
  faulty_->FailMatching(testutil::StoreOp::kPut, "", ErrorKind::kIo);
  const db::QueuedOperation op = QueueBackup(volume);
  const db::Operation done = WaitFinished(op.operation.id);
  ASSERT_EQ(done.status, db::OperationStatus::kFailed);
  EXPECT_FALSE(done.error.value_or("").empty());
  auto backup = Must([&](db::Tx& tx) { return db::GetBackup(tx, *op.operation.backup_id); });
  EXPECT_EQ(backup->status, db::BackupStatus::kFailed);
  const db::Volume after = GetVolume(volume.id);
  EXPECT_EQ(after.status, db::VolumeStatus::kDetached);
  EXPECT_EQ(after.last_error, done.error);

  // And the next backup works and clears last_error.
  faulty_->Clear();
  const db::QueuedOperation retry = QueueBackup(volume);
  ASSERT_EQ(WaitFinished(retry.operation.id).status, db::OperationStatus::kSucceeded);
  EXPECT_FALSE(GetVolume(volume.id).last_error.has_value());
}

TEST_F(WorkerTest, RepairSetsHealthFromFsck) {
  Worker& worker = StartWorker(FastOptions("w1"));
  const db::Volume volume = MakePinnedVolume(worker.server_id());
  MakeImageWithData(worker, volume);
  const db::QueuedOperation ok = Queue({.volume_id = volume.id,
                                        .kind = db::OperationKind::kRepair,
                                        .server_id = worker.server_id()});
  const db::Operation done = WaitFinished(ok.operation.id);
  ASSERT_EQ(done.status, db::OperationStatus::kSucceeded) << done.error.value_or("");
  EXPECT_EQ(GetVolume(volume.id).health, db::VolumeHealth::kHealthy);

  // Not a filesystem any more (no superblock or backup to recover from).
  testutil::WriteFile(worker.ImageOf(volume.id), std::string(1u << 20, '\xff'));
  const db::QueuedOperation bad = Queue({.volume_id = volume.id,
                                         .kind = db::OperationKind::kRepair,
                                         .server_id = worker.server_id()});
  const db::Operation failed = WaitFinished(bad.operation.id);
  EXPECT_EQ(failed.status, db::OperationStatus::kFailed);
  const db::Volume after = GetVolume(volume.id);
  EXPECT_EQ(after.health, db::VolumeHealth::kCorrupt);
  EXPECT_EQ(after.status, db::VolumeStatus::kUnavailable);
  EXPECT_TRUE(after.last_error.has_value());
}

}  // namespace
}  // namespace kindling::reconcile
