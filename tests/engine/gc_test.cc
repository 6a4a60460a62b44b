// Garbage collection (engine/gc.h): what it frees, what it keeps, and its
// safety while backups run (writer markers, the sweep marker, stale
// markers of dead processes).
#include "engine/gc.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/files.h"
#include "engine/verify.h"
#include "engine_test_base.h"

namespace kindling::engine {
namespace {

using namespace std::chrono_literals;
using testutil::Fill;
using testutil::StoreOp;

// Short marker timing, so that tests of staleness take well under a second.
GcTiming FastTiming(std::chrono::milliseconds stale_after = 400ms) {
  GcTiming t;
  t.stale_after = stale_after;
  t.refresh_every = 20ms;
  t.poll_every = 10ms;
  return t;
}

class GcTest : public EngineTestBase {
 protected:
  GcOptions Options() const {
    GcOptions o;
    o.timing = FastTiming();
    return o;
  }
  GcReport CollectOrDie(const GcOptions& options) {
    auto report = CollectGarbage(repository(), options);
    EXPECT_TRUE(report) << report.error().message();
    if (!report) throw std::runtime_error("gc failed: " + report.error().message());
    return *report;
  }
  GcReport CollectOrDie() { return CollectOrDie(Options()); }
  // Backups with the short marker timing (a dead sweep goes stale fast).
  repo::Manifest BackupOrDie(const std::filesystem::path& image) {
    BackupOptions o = EngineTestBase::Options(image);
    o.gc_timing = FastTiming();
    auto m = CreateBackup(repository(), o);
    EXPECT_TRUE(m) << m.error().message();
    if (!m) throw std::runtime_error("backup failed: " + m.error().message());
    return std::move(*m);
  }

  // Bytes of every chunk object in the store, read beneath the injector.
  std::uint64_t StoredChunkBytes() const {
    std::uint64_t total = 0;
    const auto objects = local_->List("chunks/");
    EXPECT_TRUE(objects);
    if (!objects) return 0;
    for (const auto& object : *objects) total += object.size;
    return total;
  }
  // Distinct chunks the backups reference, and their stored bytes.
  static std::pair<std::size_t, std::uint64_t> Referenced(
      const std::vector<repo::Manifest>& backups) {
    std::map<std::string, std::uint32_t> ids;
    for (const auto& m : backups)
      for (const auto& c : m.chunks)
        if (!c.is_hole) ids.emplace(crypto::DigestHex(c.id), c.stored_size);
    std::uint64_t bytes = 0;
    for (const auto& [id, size] : ids) bytes += size;
    return {ids.size(), bytes};
  }

  // Restores `m` and compares it with `image`, bit for bit.
  void ExpectRestores(const repo::Manifest& m, const std::filesystem::path& image) {
    const auto out = out_dir() / (m.backup_id + ".img");
    auto restored = Restore(m, out);
    ASSERT_TRUE(restored) << m.backup_id << ": " << restored.error().message();
    EXPECT_EQ(FileSha(out), FileSha(image)) << m.backup_id;
    std::filesystem::remove(out);
  }

  // An image of 32 chunks: the first `shared` chunks the same in every
  // generation, the rest random per `generation`.
  std::filesystem::path Generation(int generation, std::uint64_t shared = 16) {
    const auto path = dir_ / ("gen-" + std::to_string(generation) + ".img");
    testutil::MakeSparseFile(path, 32 * std::uint64_t{kChunk},
                             {{0, shared * kChunk, Fill::kRandom}}, /*seed=*/7);
    // The rest: random data of this generation.
    auto tail = dir_ / ("tail-" + std::to_string(generation));
    testutil::MakeSparseFile(tail, (32 - shared) * kChunk,
                             {{0, (32 - shared) * kChunk, Fill::kRandom}},
                             /*seed=*/1000 + static_cast<std::uint64_t>(generation));
    auto data = ReadFile(tail);
    EXPECT_TRUE(data);
    const int fd = ::open(path.c_str(), O_WRONLY);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(::pwrite(fd, data->data(), data->size(), static_cast<off_t>(shared * kChunk)),
              static_cast<ssize_t>(data->size()));
    ::close(fd);
    std::filesystem::remove(tail);
    return path;
  }
};

TEST_F(GcTest, AfterRetentionTheStoreHoldsExactlyWhatTheRemainingBackupsReference) {
  std::vector<repo::Manifest> backups;
  std::vector<std::filesystem::path> images;
  for (int g = 0; g < 5; ++g) {
    images.push_back(Generation(g));
    backups.push_back(BackupOrDie(images.back()));
  }
  const std::uint64_t before = StoredChunkBytes();
  // Retention keeps generations 1 and 4.
  for (int g : {0, 2, 3})
    ASSERT_TRUE(repository().DeleteBackup("vol-1", backups[static_cast<std::size_t>(g)].backup_id));
  const std::vector<repo::Manifest> kept = {backups[1], backups[4]};
  const auto [live_chunks, live_bytes] = Referenced(kept);

  const GcReport report = CollectOrDie();
  EXPECT_EQ(report.manifests, 2u);
  EXPECT_EQ(report.live_chunks, live_chunks);
  EXPECT_EQ(report.chunks_deleted, 3u * 16u) << "the random halves of generations 0, 2 and 3";
  EXPECT_EQ(report.bytes_deleted, before - live_bytes);
  EXPECT_EQ(report.bytes_kept, live_bytes);
  EXPECT_EQ(StoredChunkBytes(), live_bytes);
  EXPECT_EQ(StoredChunks(), live_chunks);
  // The markers are gone.
  EXPECT_TRUE(local_->List("kindling-store/gc/")->empty());
  EXPECT_TRUE(local_->List(kWriterMarkersPrefix)->empty());

  ExpectRestores(backups[1], images[1]);
  ExpectRestores(backups[4], images[4]);
  for (const auto& m : kept) {
    auto verified = VerifyBackup(repository(), m, VerifyOptions{});
    ASSERT_TRUE(verified) << verified.error().message();
    EXPECT_TRUE(verified->ok()) << m.backup_id;
  }
  // A second collection finds nothing more.
  const GcReport again = CollectOrDie();
  EXPECT_EQ(again.chunks_deleted, 0u);
  EXPECT_EQ(again.bytes_kept, live_bytes);
}

TEST_F(GcTest, ADryRunReportsAndDeletesNothing) {
  const auto first = BackupOrDie(Generation(0));
  BackupOrDie(Generation(1));
  ASSERT_TRUE(repository().DeleteBackup("vol-1", first.backup_id));
  const std::size_t chunks = StoredChunks();
  const int puts = faults_->calls(StoreOp::kPut);
  const int deletes = faults_->calls(StoreOp::kDelete);
  GcOptions o = Options();
  o.dry_run = true;
  const GcReport report = CollectOrDie(o);
  EXPECT_TRUE(report.dry_run);
  EXPECT_EQ(report.chunks_deleted, 16u);
  EXPECT_GT(report.bytes_deleted, 0u);
  EXPECT_EQ(StoredChunks(), chunks);
  EXPECT_EQ(faults_->calls(StoreOp::kPut), puts) << "no marker either";
  EXPECT_EQ(faults_->calls(StoreOp::kDelete), deletes);
}

TEST_F(GcTest, GraceKeepsRecentUnreferencedChunks) {
  const auto first = BackupOrDie(Generation(0));
  BackupOrDie(Generation(1));
  ASSERT_TRUE(repository().DeleteBackup("vol-1", first.backup_id));
  const std::size_t chunks = StoredChunks();
  GcOptions o = Options();
  o.grace = std::chrono::hours(1);
  const GcReport report = CollectOrDie(o);
  EXPECT_EQ(report.chunks_deleted, 0u);
  EXPECT_EQ(report.chunks_in_grace, 16u);
  EXPECT_EQ(StoredChunks(), chunks);
  // Without the grace they go.
  EXPECT_EQ(CollectOrDie().chunks_deleted, 16u);
}

TEST_F(GcTest, AManifestThatCannotBeReadStopsTheCollectionBeforeAnyDeletion) {
  const auto first = BackupOrDie(Generation(0));
  const auto second = BackupOrDie(Generation(1));
  ASSERT_TRUE(repository().DeleteBackup("vol-1", first.backup_id));
  CorruptObject(repo::ManifestKey("vol-1", second.backup_id));
  const std::size_t chunks = StoredChunks();
  auto report = CollectGarbage(repository(), Options());
  ASSERT_FALSE(report);
  EXPECT_NE(report.error().message().find(second.backup_id), std::string::npos)
      << report.error().message();
  EXPECT_EQ(StoredChunks(), chunks);
  EXPECT_TRUE(local_->List("kindling-store/gc/")->empty()) << "the lock is released";
}

TEST_F(GcTest, DamageRecordsOfChunksNoBackupReferencesAreDeleted) {
  const auto first = BackupOrDie(Generation(0));
  const auto second = BackupOrDie(Generation(1));
  // A record for a chunk only the first backup has, and one for a shared chunk.
  const repo::ChunkId only_first = first.chunks[NthDataChunk(first, 20)].id;
  const repo::ChunkId shared = first.chunks[NthDataChunk(first, 0)].id;
  for (const auto& id : {only_first, shared})
    ASSERT_TRUE(local_->Put(repo::DamagedChunkKey(id), R"({"problem":"missing"})"));
  ASSERT_TRUE(repository().DeleteBackup("vol-1", first.backup_id));
  const GcReport report = CollectOrDie();
  EXPECT_EQ(report.damage_records_deleted, 1u);
  EXPECT_FALSE(local_->Head(repo::DamagedChunkKey(only_first)));
  EXPECT_TRUE(local_->Head(repo::DamagedChunkKey(shared))) << "still a reason to upload it again";
  (void)second;
}

TEST_F(GcTest, ALiveCollectionIsNotJoinedAndADeadOnesLockIsTakenOver) {
  // A live collection: its lock changes while watched.
  ASSERT_TRUE(local_->Put(std::string(kGcLockKey), R"({"holder":"other","seq":0})"));
  std::atomic<bool> stop{false};
  std::thread refresher([&] {
    for (int seq = 1; !stop; ++seq) {
      (void)local_->Put(std::string(kGcLockKey),
                        R"({"holder":"other","seq":)" + std::to_string(seq) + "}");
      std::this_thread::sleep_for(20ms);
    }
  });
  auto joined = CollectGarbage(repository(), Options());
  stop = true;
  refresher.join();
  ASSERT_FALSE(joined);
  EXPECT_EQ(joined.error().kind(), ErrorKind::kAlreadyExists) << joined.error().message();
  EXPECT_TRUE(local_->Head(std::string(kGcLockKey))) << "not taken from its holder";

  // The same holder, dead (SIGKILLed mid-sweep: its sweep marker is left
  // too): unchanged for stale_after, the lock is taken over and the job done.
  const auto first = BackupOrDie(Generation(0));
  ASSERT_TRUE(local_->Put(std::string(kGcSweepKey), R"({"holder":"other","seq":9})"));
  const auto second_image = Generation(1);
  // (A backup waits for the dead sweep to go stale, then runs.)
  const auto second = BackupOrDie(second_image);
  ASSERT_TRUE(repository().DeleteBackup("vol-1", first.backup_id));
  const GcReport report = CollectOrDie();
  EXPECT_TRUE(report.took_over_stale_lock);
  EXPECT_EQ(report.chunks_deleted, 16u);
  EXPECT_TRUE(local_->List("kindling-store/gc/")->empty());
  ExpectRestores(second, second_image);
}

TEST_F(GcTest, ACollectionTakenOverLeavesItsSuccessorsMarkersAlone) {
  // Another collection's sweep marker replaces this one's mid-run (it took
  // this one for dead): this one stops before its next shard and, releasing,
  // leaves the successor's markers in place.
  const auto first = BackupOrDie(Generation(0));
  BackupOrDie(Generation(1));
  ASSERT_TRUE(repository().DeleteBackup("vol-1", first.backup_id));
  faults_->SetRule([this](StoreOp op, std::string_view key) -> std::optional<Error> {
    if (op == StoreOp::kList && key == "chunks/80/") {
      (void)local_->Put(std::string(kGcSweepKey), R"({"holder":"successor","seq":0})");
      (void)local_->Put(std::string(kGcLockKey), R"({"holder":"successor","seq":0})");
    }
    return std::nullopt;
  });
  // No refresh during the run: a refresh that read the marker just before
  // the successor wrote it would write over it (the store has no
  // compare-and-swap), and then the successor, not this one, is the one
  // that stops.
  GcOptions options = Options();
  options.timing.refresh_every = std::chrono::hours(1);
  options.timing.stale_after = std::chrono::hours(2);
  auto report = CollectGarbage(repository(), options);
  faults_->Clear();
  ASSERT_FALSE(report);
  EXPECT_EQ(report.error().kind(), ErrorKind::kFailedPrecondition) << report.error().message();
  EXPECT_TRUE(local_->Head(std::string(kGcSweepKey))) << "the successor's sweep marker";
  EXPECT_TRUE(local_->Head(std::string(kGcLockKey))) << "the successor's lock";
}

TEST_F(GcTest, ABackupWaitsWhileASweepRuns) {
  ASSERT_TRUE(local_->Put(std::string(kGcSweepKey), R"({"holder":"gc","seq":0})"));
  std::atomic<bool> stop{false};
  std::thread refresher([&] {
    for (int seq = 1; !stop; ++seq) {
      (void)local_->Put(std::string(kGcSweepKey),
                        R"({"holder":"gc","seq":)" + std::to_string(seq) + "}");
      std::this_thread::sleep_for(20ms);
    }
  });
  const auto image = Generation(0);
  std::atomic<bool> done{false};
  std::optional<Result<repo::Manifest>> result;
  std::thread backup([&] {
    BackupOptions o = EngineTestBase::Options(image);
    o.gc_timing = FastTiming();
    result.emplace(CreateBackup(repository(), o));
    done = true;
  });
  std::this_thread::sleep_for(800ms);  // twice the stale time: the sweep is alive
  EXPECT_FALSE(done) << "the backup ran during a sweep";
  EXPECT_EQ(StoredChunks(), 0u);
  EXPECT_TRUE(local_->List(kWriterMarkersPrefix)->empty()) << "it withdrew its marker";
  stop = true;
  refresher.join();
  ASSERT_TRUE(local_->Delete(std::string(kGcSweepKey)));
  backup.join();
  ASSERT_TRUE(result.has_value());
  ASSERT_TRUE(*result) << (*result).error().message();
  ExpectRestores(**result, image);
}

TEST_F(GcTest, ADeadBackupsMarkerIsRemovedAndAStalledBackupDoesNotCommit) {
  // A marker nobody refreshes: a backup that died.
  ASSERT_TRUE(local_->Put(WriterMarkerKey("dead-backup"), R"({"holder":"dead-backup"})"));
  const auto first = BackupOrDie(Generation(0));
  BackupOrDie(Generation(1));
  ASSERT_TRUE(repository().DeleteBackup("vol-1", first.backup_id));
  const GcReport report = CollectOrDie();
  EXPECT_EQ(report.stale_writers_removed, 1u);
  EXPECT_EQ(report.chunks_deleted, 16u);
  EXPECT_FALSE(local_->Head(WriterMarkerKey("dead-backup")));

  // A live marker removed as stale (its process stalled): no commit.
  auto marker = WriterMarker::Acquire(repository(), "stalled", FastTiming());
  ASSERT_TRUE(marker) << marker.error().message();
  EXPECT_TRUE((*marker)->CheckHeld());
  ASSERT_TRUE(local_->Delete(WriterMarkerKey("stalled")));
  std::this_thread::sleep_for(100ms);  // a refresh tick: it must not write it again
  EXPECT_FALSE(local_->Head(WriterMarkerKey("stalled")));
  auto held = (*marker)->CheckHeld();
  ASSERT_FALSE(held);
  EXPECT_EQ(held.error().kind(), ErrorKind::kFailedPrecondition);
}

TEST_F(GcTest, ABackupReadsOnlyTheVolumesNewestManifest) {
  for (int g = 0; g < 4; ++g) BackupOrDie(Generation(g));
  const int gets = faults_->calls(StoreOp::kGet);
  const auto image = Generation(4);
  // With the default timing, so that its marker's refresher (which reads the
  // marker) does not tick during the backup.
  auto made = CreateBackup(repository(), EngineTestBase::Options(image));
  ASSERT_TRUE(made) << made.error().message();
  const repo::Manifest& m = *made;
  // The sweep marker's GET (absent) and the newest manifest's.
  EXPECT_EQ(faults_->calls(StoreOp::kGet) - gets, 2);
  EXPECT_EQ(m.stats.chunks_uploaded, 16u) << "the shared half known from the newest manifest";
  ExpectRestores(m, image);
}

// Backups and collections at once, with random timing and no grace: every
// backup that committed restores. Each backup's seed (the newest manifest)
// is deleted by retention while it runs, so that what it reuses is exactly
// what a collection would take for garbage.
TEST_F(GcTest, BackupsRunningDuringCollectionsAllRestore) {
  std::mt19937 random(20261203);
  std::vector<std::pair<repo::Manifest, std::filesystem::path>> committed;
  std::optional<repo::Manifest> previous;
  int collections = 0;
  for (int round = 0; round < 20; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    // Half the chunks change each round; the other half come from the
    // previous backup.
    const auto image = Generation(round, /*shared=*/round % 2 == 0 ? 16 : 24);
    std::optional<Result<repo::Manifest>> result;
    const auto backup_delay = std::chrono::milliseconds(random() % 15);
    const auto gc_delay = std::chrono::milliseconds(random() % 15);
    std::thread backup([&] {
      std::this_thread::sleep_for(backup_delay);
      BackupOptions o = EngineTestBase::Options(image);
      o.gc_timing = FastTiming(5s);
      o.threads = 2;
      result.emplace(CreateBackup(repository(), o));
    });
    std::thread collect([&] {
      std::this_thread::sleep_for(gc_delay);
      // Retention: only the newest backup stays.
      if (previous) {
        ASSERT_TRUE(repository().DeleteBackup("vol-1", previous->backup_id));
      }
      GcOptions o;
      o.timing = FastTiming(5s);
      auto report = CollectGarbage(repository(), o);
      ASSERT_TRUE(report) << report.error().message();
      ++collections;
    });
    backup.join();
    collect.join();
    ASSERT_TRUE(result.has_value());
    ASSERT_TRUE(*result) << (*result).error().message();
    if (previous) committed.pop_back();  // deleted by retention
    committed.emplace_back(**result, image);
    previous = **result;
    ExpectRestores(**result, image);
  }
  EXPECT_EQ(collections, 20);
  ASSERT_EQ(committed.size(), 1u);
  // After a last collection the store holds exactly the newest backup.
  const GcReport last = CollectOrDie();
  EXPECT_EQ(StoredChunks(), DistinctDataChunks(committed.back().first));
  EXPECT_EQ(last.manifests, 1u);
  ExpectRestores(committed.back().first, committed.back().second);
}

}  // namespace
}  // namespace kindling::engine
