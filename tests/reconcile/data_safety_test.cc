// The control plane never destroys the only copy of a volume: images leave a
// worker only through its quarantine (replaced, deleted, conflict), restores
// and moves keep what they replace, damaged backups are marked and healed,
// and each backup is read from the store it was written to.
//
// Most tests drive workers step by step (AddSteppedWorker: RunNextOperation,
// ReconcileImagesOnce) so that every pass happens when the test says, and
// give them a clock that moves only when the test advances it.
#include <gmock/gmock.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/ids.h"
#include "crypto/sha256.h"
#include "db/audit.h"
#include "db/backups.h"
#include "db/quarantine.h"
#include "engine/damage.h"
#include "engine/image_file.h"
#include "reconcile/worker.h"
#include "reconcile_test_base.h"
#include "repo/layout.h"
#include "testutil/sparse_image.h"

namespace kindling::reconcile {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using SysClock = std::chrono::system_clock;
using ::testing::HasSubstr;

constexpr seconds kGrace{3600};
constexpr seconds kRetention{7 * 24 * 3600};

db::Timestamp ToTimestamp(SysClock::time_point t) {
  return std::chrono::time_point_cast<std::chrono::microseconds>(t);
}

class DataSafetyTest : public ReconcileTest {
 protected:
  // The workers' wall clock: starts at the real time (whole seconds, so
  // purge times survive entry.json's milliseconds exactly) and moves only
  // when the test advances it.
  SysClock::time_point Now() const { return SysClock::time_point(SysClock::duration(now_.load())); }
  void AdvanceClock(seconds by) {
    now_ += std::chrono::duration_cast<SysClock::duration>(by).count();
  }

  WorkerOptions Options(const std::string& name) {
    WorkerOptions o = FastOptions(name);
    o.quarantine_grace = kGrace;
    o.quarantine_retention = kRetention;
    o.now = [this] { return Now(); };
    return o;
  }

  // Image digest (repo/image_digest.h) with the store's chunk size: equal
  // digests mean equal content, and it compares with backups' image_sha256.
  static std::string Digest(const fs::path& image) {
    auto digest = engine::DigestImageFile(image, kStoreChunkSize, 2);
    EXPECT_TRUE(digest) << image << ": " << digest.error().message();
    return digest ? crypto::DigestHex(*digest) : std::string();
  }

  // Writes data the test can recognise: another seed, another content.
  static void WriteData(const fs::path& image, std::uint64_t seed) {
    testutil::PatchFile(image, 64u << 20, testutil::RandomData(3u << 20, seed));
    testutil::PatchFile(image, 700u << 20, testutil::TextData(1u << 20, seed + 1));
  }

  // A stepped worker's reconcile pass makes the image of a new volume.
  fs::path CreateImage(Worker& worker, const db::Volume& volume) {
    auto reconciled = worker.ReconcileImagesOnce();
    EXPECT_TRUE(reconciled) << reconciled.error().message();
    const fs::path image = worker.ImageOf(volume.id);
    EXPECT_TRUE(fs::exists(image)) << "no image made for " << volume.id;
    return image;
  }
  fs::path WaitForImage(Worker& worker, const db::Volume& volume) {
    const fs::path image = worker.ImageOf(volume.id);
    EXPECT_TRUE(WaitFor([&] { return fs::exists(image); }, milliseconds(20'000)))
        << "image never created";
    return image;
  }

  void Reconcile(Worker& worker) {
    auto reconciled = worker.ReconcileImagesOnce();
    EXPECT_TRUE(reconciled) << reconciled.error().message();
  }

  // Claims and runs the stepped worker's next operation (`operation_id`);
  // returns the operation as it is afterwards.
  db::Operation Step(Worker& worker, const std::string& operation_id) {
    auto ran = worker.RunNextOperation();
    EXPECT_TRUE(ran) << ran.error().message();
    EXPECT_TRUE(ran && *ran) << "nothing to claim on " << worker.server_id();
    return GetOperation(operation_id);
  }
  db::Operation StepToSuccess(Worker& worker, const std::string& operation_id) {
    db::Operation op = Step(worker, operation_id);
    EXPECT_EQ(op.status, db::OperationStatus::kSucceeded) << op.error.value_or("");
    return op;
  }

  db::QueuedOperation QueueRestore(const std::string& volume_id, const std::string& backup_id,
                                   const std::string& server_id) {
    return Queue({.volume_id = volume_id,
                  .kind = db::OperationKind::kRestore,
                  .server_id = server_id,
                  .backup_id = backup_id,
                  .target_server_id = server_id});
  }

  std::vector<QuarantinedImage> Entries(Worker& worker) {
    auto entries = worker.quarantine().List();
    EXPECT_TRUE(entries) << entries.error().message();
    return entries ? *entries : std::vector<QuarantinedImage>{};
  }
  std::vector<QuarantinedImage> EntriesOf(Worker& worker, const std::string& volume_id) {
    std::vector<QuarantinedImage> out = Entries(worker);
    std::erase_if(out, [&](const QuarantinedImage& e) { return e.volume_id != volume_id; });
    return out;
  }

  std::optional<db::QuarantineEntry> Row(const std::string& entry_id) {
    auto row = db().Transact([&](db::Tx& tx) { return db::GetQuarantineEntry(tx, entry_id); });
    if (!row) {
      EXPECT_TRUE(row.error().is_not_found()) << row.error().message();
      return std::nullopt;
    }
    return *row;
  }

  db::Backup GetBackup(const std::string& id) {
    auto b = Must([&](db::Tx& tx) { return db::GetBackup(tx, id); });
    return b ? *b : db::Backup{};
  }

  // Details of the volume's audit events named `action`, newest first.
  std::vector<json> AuditDetails(const std::string& action, const std::string& volume_id) {
    auto events = Must([&](db::Tx& tx) {
      return db::ListAuditEvents(
          tx, db::AuditFilter{.action = action, .resource_id = volume_id, .limit = 100});
    });
    std::vector<json> out;
    if (events)
      for (const db::AuditEvent& e : *events) out.push_back(json::parse(e.details_json));
    return out;
  }
  bool AuditedEntry(const std::string& action, const std::string& volume_id,
                    const std::string& entry_id) {
    for (const json& d : AuditDetails(action, volume_id))
      if (d.value("entry_id", "") == entry_id) return true;
    return false;
  }

  // A data chunk of `backup_id` that only the given image offset holds.
  repo::ChunkId ChunkAt(const engine::Repository& repository, const std::string& volume_id,
                        const std::string& backup_id, std::uint64_t offset) {
    auto manifest = repository.LoadManifest(volume_id, backup_id);
    EXPECT_TRUE(manifest) << manifest.error().message();
    if (!manifest) return {};
    const std::size_t index = offset / manifest->chunk_size;
    EXPECT_FALSE(manifest->chunks.at(index).is_hole);
    return manifest->chunks.at(index).id;
  }

  std::atomic<SysClock::rep> now_{SysClock::time_point(std::chrono::floor<seconds>(SysClock::now()))
                                      .time_since_epoch()
                                      .count()};
};

// Keeps the default logger's warnings and errors while it lives.
class LogCapture {
 public:
  LogCapture() : sink_(std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(1000)) {
    sink_->set_level(spdlog::level::warn);
    spdlog::default_logger()->sinks().push_back(sink_);
  }
  ~LogCapture() {
    auto& sinks = spdlog::default_logger()->sinks();
    std::erase(sinks, sink_);
  }
  std::string Text() const {
    std::string out;
    for (const std::string& line : sink_->last_formatted()) out += line;
    return out;
  }

 private:
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink_;
};

TEST_F(DataSafetyTest, DatabaseRevertedUnderRunningWorkersLosesNoImageAndAdoptionResolvesIt) {
  LogCapture log;
  Worker& a = StartWorker(Options("a"));
  Worker& b = StartWorker(Options("b"));
  const db::Volume volume = MakePinnedVolume(a.server_id());
  WriteData(WaitForImage(a, volume), 7);
  const std::string on_a = Digest(a.ImageOf(volume.id));

  const db::QueuedOperation move = Queue({.volume_id = volume.id,
                                          .kind = db::OperationKind::kMove,
                                          .server_id = a.server_id(),
                                          .target_server_id = b.server_id(),
                                          .create_backup = db::BackupKind::kManual});
  const db::Operation moved = WaitFinished(move.operation.id);
  ASSERT_EQ(moved.status, db::OperationStatus::kSucceeded) << moved.error.value_or("");
  ASSERT_EQ(GetVolume(volume.id).server_id.value_or(""), b.server_id());
  // Written on B after the move: the newest data exists only there.
  WriteData(b.ImageOf(volume.id), 11);
  const std::string on_b = Digest(b.ImageOf(volume.id));
  ASSERT_NE(on_b, on_a);
  // A's leftover is kept, as replaced, until the grace has passed.
  std::string a_entry_id;
  ASSERT_TRUE(WaitFor([&] {
    auto entries = EntriesOf(a, volume.id);
    if (entries.size() != 1 || !Row(entries[0].id)) return false;
    a_entry_id = entries[0].id;
    return true;
  })) << "A's copy never reached its quarantine";
  EXPECT_EQ(EntriesOf(a, volume.id)[0].reason, db::QuarantineReason::kReplaced);

  // The database goes back to a dump taken before the move: pinned to A,
  // no move, no backup of it, no quarantine rows.
  Sql("UPDATE project_volumes SET server_id = '" + a.server_id() +
      "', status = 'detached', health = 'healthy', last_error = NULL WHERE id = '" + volume.id +
      "'");
  Sql("DELETE FROM project_volume_operations WHERE project_volume_id = '" + volume.id + "'");
  Sql("DELETE FROM project_volume_backups WHERE project_volume_id = '" + volume.id + "'");
  Sql("DELETE FROM volume_image_quarantine");

  // B's image, which nothing in the database explains, is held intact.
  std::optional<QuarantinedImage> held;
  ASSERT_TRUE(WaitFor([&] {
    auto entries = EntriesOf(b, volume.id);
    if (entries.size() != 1 || entries[0].image_sha256.empty()) return false;
    held = entries[0];
    return true;
  })) << "B's image was not quarantined";
  EXPECT_EQ(held->reason, db::QuarantineReason::kConflict);
  EXPECT_FALSE(held->purge_after.has_value()) << "a conflict is held until an operator acts";
  EXPECT_EQ(held->image_sha256, on_b);
  EXPECT_EQ(Digest(held->image), on_b);
  EXPECT_FALSE(fs::exists(b.ImageOf(volume.id)));

  // A's old copy is still on disk.
  if (fs::exists(a.ImageOf(volume.id))) {
    EXPECT_EQ(Digest(a.ImageOf(volume.id)), on_a);
  } else {
    auto entries = EntriesOf(a, volume.id);
    ASSERT_EQ(entries.size(), 1u);
    EXPECT_EQ(entries[0].id, a_entry_id);
    EXPECT_EQ(Digest(entries[0].image), on_a);
  }

  // The rows the revert dropped are re-created from the directories.
  ASSERT_TRUE(WaitFor([&] { return Row(a_entry_id) && Row(held->id); }));
  const db::QuarantineEntry a_row = *Row(a_entry_id);
  EXPECT_EQ(a_row.server_id, a.server_id());
  EXPECT_EQ(a_row.reason, db::QuarantineReason::kReplaced);
  EXPECT_EQ(a_row.status, db::QuarantineStatus::kHeld);
  EXPECT_TRUE(a_row.purge_after.has_value());
  EXPECT_EQ(a_row.image_sha256.value_or(""), on_a);
  ASSERT_TRUE(WaitFor([&] { return Row(held->id)->image_sha256.has_value(); }));
  const db::QuarantineEntry b_row = *Row(held->id);
  EXPECT_EQ(b_row.server_id, b.server_id());
  EXPECT_EQ(b_row.reason, db::QuarantineReason::kConflict);
  EXPECT_EQ(b_row.status, db::QuarantineStatus::kHeld);
  EXPECT_FALSE(b_row.purge_after.has_value());
  EXPECT_EQ(b_row.image_sha256.value_or(""), on_b);
  EXPECT_EQ(b_row.size_bytes, 1ll << 30);

  // The volume shows the conflict, naming B's image and its digest.
  ASSERT_TRUE(WaitFor([&] {
    const db::Volume v = GetVolume(volume.id);
    return v.last_error && v.last_error->find(held->id) != std::string::npos &&
           v.last_error->find(on_b) != std::string::npos;
  })) << GetVolume(volume.id).last_error.value_or("(no last_error)");
  const db::Volume conflicted = GetVolume(volume.id);
  EXPECT_TRUE(conflicted.health == db::VolumeHealth::kDegraded ||
              conflicted.health == db::VolumeHealth::kMissing)
      << db::Name(conflicted.health);
  EXPECT_THAT(*conflicted.last_error, HasSubstr(b.server_id()));
  EXPECT_THAT(*conflicted.last_error, HasSubstr(std::to_string(1ull << 30) + " bytes"));
  EXPECT_TRUE(AuditedEntry("volume.image.quarantined", volume.id, held->id));
  bool recovered_audited = false;
  for (const json& d : AuditDetails("volume.image.quarantined", volume.id))
    if (d.value("entry_id", "") == a_entry_id && d.value("recovered", false))
      recovered_audited = true;
  EXPECT_TRUE(recovered_audited) << "re-created row not audited";
  // And in the log, at warning level, naming the volume and the entry.
  EXPECT_THAT(log.Text(), HasSubstr("[warning] worker: moved image of volume " + volume.id +
                                    " to quarantine " + held->id));

  // The operator adopts B's image: the volume is B's again, with its data.
  const db::QueuedOperation adopt =
      Queue({.volume_id = volume.id,
             .kind = db::OperationKind::kAdopt,
             .server_id = b.server_id(),
             .extra_request_metadata_json = json{{"quarantine_id", held->id}}.dump()});
  const db::Operation adopted = WaitFinished(adopt.operation.id);
  ASSERT_EQ(adopted.status, db::OperationStatus::kSucceeded) << adopted.error.value_or("");
  const db::Volume after = GetVolume(volume.id);
  EXPECT_EQ(after.server_id.value_or(""), b.server_id());
  EXPECT_EQ(after.health, db::VolumeHealth::kHealthy);
  EXPECT_EQ(after.status, db::VolumeStatus::kDetached);
  EXPECT_FALSE(after.last_error.has_value()) << *after.last_error;
  EXPECT_EQ(Digest(b.ImageOf(volume.id)), on_b);
  EXPECT_EQ(Row(held->id)->status, db::QuarantineStatus::kAdopted);
  EXPECT_TRUE(Row(held->id)->resolved_at.has_value());
  // Only the entry's description was left; it goes once the row says adopted.
  EXPECT_TRUE(WaitFor([&] { return EntriesOf(b, volume.id).empty(); }));
  EXPECT_EQ(json::parse(adopted.result_metadata_json)["image_sha256"], on_b);

  // And it backs up and restores bit-identically.
  const db::QueuedOperation backup = QueueBackup(after);
  const db::Operation backed_up = WaitFinished(backup.operation.id);
  ASSERT_EQ(backed_up.status, db::OperationStatus::kSucceeded) << backed_up.error.value_or("");
  EXPECT_EQ(json::parse(backed_up.result_metadata_json)["image_sha256"], on_b);
  const db::QueuedOperation restore =
      QueueRestore(volume.id, *backup.operation.backup_id, a.server_id());
  const db::Operation restored = WaitFinished(restore.operation.id);
  ASSERT_EQ(restored.status, db::OperationStatus::kSucceeded) << restored.error.value_or("");
  EXPECT_EQ(Digest(a.ImageOf(volume.id)), on_b);
  // The conflict stays resolved while the workers keep reconciling.
  ASSERT_TRUE(WaitFor([&] { return EntriesOf(b, volume.id).size() == 1; }));
  EXPECT_EQ(EntriesOf(b, volume.id)[0].reason, db::QuarantineReason::kReplaced);
  EXPECT_FALSE(GetVolume(volume.id).last_error.has_value());
}

TEST_F(DataSafetyTest, RestoreAndMoveLeftoversAreReplacedAndPurgedOnlyAfterTheGrace) {
  Worker& a = AddSteppedWorker(Options("a"));
  Worker& b = AddSteppedWorker(Options("b"));
  const db::Volume volume = MakePinnedVolume(a.server_id());
  WriteData(CreateImage(a, volume), 3);
  const std::string first = Digest(a.ImageOf(volume.id));
  const db::QueuedOperation backup = QueueBackup(volume);
  StepToSuccess(a, backup.operation.id);

  // Restore to B: B had no image, A's is a leftover.
  const db::QueuedOperation restore =
      QueueRestore(volume.id, *backup.operation.backup_id, b.server_id());
  const db::Operation restored = StepToSuccess(b, restore.operation.id);
  EXPECT_FALSE(json::parse(restored.result_metadata_json).contains("replaced_image_quarantine_id"));
  EXPECT_TRUE(Entries(b).empty());
  EXPECT_EQ(Digest(b.ImageOf(volume.id)), first);
  Reconcile(a);
  EXPECT_FALSE(fs::exists(a.ImageOf(volume.id)));
  auto a_entries = EntriesOf(a, volume.id);
  ASSERT_EQ(a_entries.size(), 1u);
  const QuarantinedImage from_restore = a_entries[0];
  EXPECT_EQ(from_restore.reason, db::QuarantineReason::kReplaced);
  EXPECT_THAT(from_restore.detail, HasSubstr(restore.operation.id));
  EXPECT_EQ(from_restore.purge_after, Now() + kGrace);
  EXPECT_EQ(Digest(from_restore.image), first);
  auto row = Row(from_restore.id);
  ASSERT_TRUE(row);
  EXPECT_EQ(row->reason, db::QuarantineReason::kReplaced);
  EXPECT_EQ(row->purge_after, ToTimestamp(Now() + kGrace));
  EXPECT_EQ(row->image_sha256.value_or(""), first);
  EXPECT_TRUE(AuditedEntry("volume.image.quarantined", volume.id, from_restore.id));
  // A replaced copy is no conflict.
  EXPECT_FALSE(GetVolume(volume.id).last_error.has_value());
  EXPECT_EQ(GetVolume(volume.id).health, db::VolumeHealth::kHealthy);

  // Move back to A, with new data on B first: B's copy is the leftover now.
  WriteData(b.ImageOf(volume.id), 5);
  const std::string second = Digest(b.ImageOf(volume.id));
  const db::QueuedOperation move = Queue({.volume_id = volume.id,
                                          .kind = db::OperationKind::kMove,
                                          .server_id = b.server_id(),
                                          .target_server_id = a.server_id(),
                                          .create_backup = db::BackupKind::kManual});
  EXPECT_EQ(Step(b, move.operation.id).status, db::OperationStatus::kPending);
  StepToSuccess(a, move.operation.id);
  EXPECT_EQ(Digest(a.ImageOf(volume.id)), second);
  Reconcile(b);
  auto b_entries = EntriesOf(b, volume.id);
  ASSERT_EQ(b_entries.size(), 1u);
  const QuarantinedImage from_move = b_entries[0];
  EXPECT_EQ(from_move.reason, db::QuarantineReason::kReplaced);
  EXPECT_THAT(from_move.detail, HasSubstr(move.operation.id));
  EXPECT_EQ(from_move.purge_after, Now() + kGrace);
  EXPECT_EQ(Digest(from_move.image), second);
  // A keeps its image of the volume (pinned there again) and its old entry.
  Reconcile(a);
  EXPECT_TRUE(fs::exists(a.ImageOf(volume.id)));
  EXPECT_EQ(EntriesOf(a, volume.id).size(), 1u);

  // A second before the grace ends nothing is purged...
  AdvanceClock(kGrace - seconds(1));
  Reconcile(a);
  Reconcile(b);
  EXPECT_TRUE(fs::exists(from_restore.image));
  EXPECT_TRUE(fs::exists(from_move.image));
  EXPECT_EQ(Row(from_restore.id)->status, db::QuarantineStatus::kHeld);
  // ...and once it has, both are, and audited.
  AdvanceClock(seconds(2));
  Reconcile(a);
  Reconcile(b);
  for (const QuarantinedImage& gone : {from_restore, from_move}) {
    EXPECT_FALSE(fs::exists(gone.image.parent_path())) << gone.id;
    const auto purged = Row(gone.id);
    ASSERT_TRUE(purged);
    EXPECT_EQ(purged->status, db::QuarantineStatus::kPurged);
    EXPECT_TRUE(purged->resolved_at.has_value());
    EXPECT_TRUE(AuditedEntry("volume.image.purged", volume.id, gone.id)) << gone.id;
  }
  EXPECT_EQ(Digest(a.ImageOf(volume.id)), second);
}

TEST_F(DataSafetyTest, RestoreInPlaceKeepsThePreviousImageAndAFailedOneLeavesItInPlace) {
  Worker& a = AddSteppedWorker(Options("a"));
  const db::Volume volume = MakePinnedVolume(a.server_id());
  WriteData(CreateImage(a, volume), 3);
  const std::string backed_up = Digest(a.ImageOf(volume.id));
  const db::QueuedOperation backup = QueueBackup(volume);
  StepToSuccess(a, backup.operation.id);
  WriteData(a.ImageOf(volume.id), 5);
  const std::string current = Digest(a.ImageOf(volume.id));
  ASSERT_NE(current, backed_up);

  // Reading chunks fails: the restore fails, the image is untouched.
  faulty_->FailMatching(testutil::StoreOp::kGet, "chunks/", ErrorKind::kIo);
  const db::QueuedOperation failing =
      QueueRestore(volume.id, *backup.operation.backup_id, a.server_id());
  const db::Operation failed = Step(a, failing.operation.id);
  ASSERT_EQ(failed.status, db::OperationStatus::kFailed);
  EXPECT_EQ(Digest(a.ImageOf(volume.id)), current);
  EXPECT_TRUE(Entries(a).empty());
  db::Volume v = GetVolume(volume.id);
  EXPECT_EQ(v.status, db::VolumeStatus::kDetached);
  EXPECT_EQ(v.server_id.value_or(""), a.server_id());
  EXPECT_EQ(v.last_error, failed.error);
  for (const auto& left : fs::directory_iterator(dir_ / "a" / "restoring"))
    ADD_FAILURE() << "left in restoring/: " << left.path();
  // An unreadable chunk is no evidence of damage.
  EXPECT_EQ(GetBackup(*backup.operation.backup_id).status, db::BackupStatus::kSucceeded);
  Reconcile(a);
  EXPECT_EQ(Digest(a.ImageOf(volume.id)), current);

  faulty_->Clear();
  const db::QueuedOperation restore =
      QueueRestore(volume.id, *backup.operation.backup_id, a.server_id());
  const db::Operation restored = StepToSuccess(a, restore.operation.id);
  EXPECT_EQ(Digest(a.ImageOf(volume.id)), backed_up);
  auto entries = Entries(a);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].reason, db::QuarantineReason::kReplaced);
  EXPECT_EQ(entries[0].purge_after, Now() + kGrace);
  EXPECT_EQ(Digest(entries[0].image), current);
  EXPECT_EQ(json::parse(restored.result_metadata_json)["replaced_image_quarantine_id"],
            entries[0].id);
  // Recorded with the restore, before any reconcile pass.
  auto row = Row(entries[0].id);
  ASSERT_TRUE(row);
  EXPECT_EQ(row->reason, db::QuarantineReason::kReplaced);
  EXPECT_EQ(row->status, db::QuarantineStatus::kHeld);
  EXPECT_EQ(row->purge_after, ToTimestamp(Now() + kGrace));
  // The restored image is the volume's: reconciling leaves it alone.
  Reconcile(a);
  EXPECT_EQ(Digest(a.ImageOf(volume.id)), backed_up);
  EXPECT_EQ(Entries(a).size(), 1u);
  EXPECT_EQ(Row(entries[0].id)->image_sha256.value_or(""), current);
  v = GetVolume(volume.id);
  EXPECT_EQ(v.health, db::VolumeHealth::kHealthy);
  EXPECT_FALSE(v.last_error.has_value());
}

TEST_F(DataSafetyTest, DeletedVolumeImageIsKeptForTheRetention) {
  Worker& a = AddSteppedWorker(Options("a"));
  const db::Volume volume = MakePinnedVolume(a.server_id());
  WriteData(CreateImage(a, volume), 3);
  const std::string digest = Digest(a.ImageOf(volume.id));
  ASSERT_TRUE(Must([&](db::Tx& tx) { return db::MarkVolumeDeleted(tx, volume.id); }));

  Reconcile(a);
  EXPECT_FALSE(fs::exists(a.ImageOf(volume.id)));
  auto entries = Entries(a);
  ASSERT_EQ(entries.size(), 1u);
  const QuarantinedImage entry = entries[0];
  EXPECT_EQ(entry.reason, db::QuarantineReason::kDeleted);
  EXPECT_EQ(entry.purge_after, Now() + kRetention);
  EXPECT_EQ(Digest(entry.image), digest);
  EXPECT_EQ(entry.image_sha256, digest);
  auto row = Row(entry.id);
  ASSERT_TRUE(row);
  EXPECT_EQ(row->reason, db::QuarantineReason::kDeleted);
  EXPECT_EQ(row->purge_after, ToTimestamp(Now() + kRetention));
  EXPECT_EQ(row->project_volume_id, volume.id);
  EXPECT_TRUE(AuditedEntry("volume.image.quarantined", volume.id, entry.id));

  AdvanceClock(kRetention - seconds(1));
  Reconcile(a);
  EXPECT_TRUE(fs::exists(entry.image));
  AdvanceClock(seconds(2));
  Reconcile(a);
  EXPECT_FALSE(fs::exists(entry.image.parent_path()));
  EXPECT_EQ(Row(entry.id)->status, db::QuarantineStatus::kPurged);
  EXPECT_TRUE(AuditedEntry("volume.image.purged", volume.id, entry.id));
}

// A restore completes on B while both workers' reconcilers run in a tight
// loop; whatever the interleaving, neither copy is lost.
TEST_F(DataSafetyTest, RestoreRacingReconcilersNeverLosesACopy) {
  Worker& a = AddSteppedWorker(Options("a"));
  Worker& b = AddSteppedWorker(Options("b"));
  constexpr int kRounds = 10;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const db::Volume volume = MakePinnedVolume(a.server_id());
    const fs::path image = CreateImage(a, volume);
    WriteData(image, 100 + round);
    const db::QueuedOperation backup = QueueBackup(volume);
    const db::Operation backed_up = StepToSuccess(a, backup.operation.id);
    const std::string restored_digest =
        json::parse(backed_up.result_metadata_json)["image_sha256"].get<std::string>();
    // Written after the backup: only A's copy has it.
    testutil::PatchFile(image, 300u << 20, testutil::RandomData(1u << 20, 500 + round));
    const std::string old_digest = Digest(image);
    ASSERT_NE(old_digest, restored_digest);

    const db::QueuedOperation restore =
        QueueRestore(volume.id, *backup.operation.backup_id, b.server_id());
    std::atomic<bool> finished{false};
    std::mutex errors_mu;
    std::vector<std::string> errors;
    auto loop = [&](Worker& worker) {
      // Different pauses each round shift the passes against the restore.
      const auto pause = std::chrono::microseconds((round % 4) * 700);
      do {
        if (auto pass = worker.ReconcileImagesOnce(); !pass) {
          std::lock_guard lock(errors_mu);
          errors.push_back(worker.server_id() + ": " + pass.error().message());
        }
        if (pause.count() > 0) std::this_thread::sleep_for(pause);
      } while (!finished.load());
    };
    std::thread reconcile_a(loop, std::ref(a));
    std::thread reconcile_b(loop, std::ref(b));
    std::thread restorer([&] {
      std::this_thread::sleep_for(milliseconds(round * 3));
      auto ran = b.RunNextOperation();
      EXPECT_TRUE(ran && *ran);
      finished = true;
    });
    restorer.join();
    reconcile_a.join();
    reconcile_b.join();
    EXPECT_THAT(errors, ::testing::IsEmpty());
    Reconcile(a);
    Reconcile(b);

    const db::Operation done = GetOperation(restore.operation.id);
    ASSERT_EQ(done.status, db::OperationStatus::kSucceeded) << done.error.value_or("");
    ASSERT_TRUE(fs::exists(b.ImageOf(volume.id)));
    EXPECT_EQ(Digest(b.ImageOf(volume.id)), restored_digest);
    EXPECT_TRUE(EntriesOf(b, volume.id).empty()) << "B's new image was taken";
    EXPECT_FALSE(fs::exists(a.ImageOf(volume.id))) << "A's copy was not quarantined";
    auto entries = EntriesOf(a, volume.id);
    ASSERT_EQ(entries.size(), 1u) << "A's copy is gone";
    EXPECT_EQ(entries[0].reason, db::QuarantineReason::kReplaced) << entries[0].detail;
    EXPECT_EQ(Digest(entries[0].image), old_digest);
    EXPECT_EQ(entries[0].image_sha256, old_digest);
    const db::Volume after = GetVolume(volume.id);
    EXPECT_EQ(after.server_id.value_or(""), b.server_id());
    EXPECT_FALSE(after.last_error.has_value()) << *after.last_error;
  }
}

// The same with the restore in place: the runner moves the previous image
// into the quarantine while the reconciler lists and mirrors it.
TEST_F(DataSafetyTest, RestoreInPlaceRacingTheReconcilerNeverLosesACopy) {
  Worker& a = AddSteppedWorker(Options("a"));
  const db::Volume volume = MakePinnedVolume(a.server_id());
  const fs::path image = CreateImage(a, volume);
  WriteData(image, 100);
  const db::QueuedOperation backup = QueueBackup(volume);
  const db::Operation backed_up = StepToSuccess(a, backup.operation.id);
  const std::string restored_digest =
      json::parse(backed_up.result_metadata_json)["image_sha256"].get<std::string>();
  constexpr int kRounds = 10;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    testutil::PatchFile(image, 300u << 20, testutil::RandomData(1u << 20, 500 + round));
    const std::string old_digest = Digest(image);
    const db::QueuedOperation restore =
        QueueRestore(volume.id, *backup.operation.backup_id, a.server_id());
    std::atomic<bool> finished{false};
    std::vector<std::string> errors;
    std::thread reconciler([&] {
      const auto pause = std::chrono::microseconds((round % 4) * 300);
      do {
        if (auto pass = a.ReconcileImagesOnce(); !pass) errors.push_back(pass.error().message());
        if (pause.count() > 0) std::this_thread::sleep_for(pause);
      } while (!finished.load());
    });
    std::thread restorer([&] {
      std::this_thread::sleep_for(milliseconds(round * 3));
      auto ran = a.RunNextOperation();
      EXPECT_TRUE(ran && *ran);
      finished = true;
    });
    restorer.join();
    reconciler.join();
    EXPECT_THAT(errors, ::testing::IsEmpty());
    Reconcile(a);

    const db::Operation done = GetOperation(restore.operation.id);
    ASSERT_EQ(done.status, db::OperationStatus::kSucceeded) << done.error.value_or("");
    EXPECT_EQ(Digest(image), restored_digest);
    const std::string entry_id =
        json::parse(done.result_metadata_json).value("replaced_image_quarantine_id", "");
    bool kept = false;
    for (const QuarantinedImage& e : EntriesOf(a, volume.id)) {
      if (e.id != entry_id) continue;
      kept = true;
      EXPECT_EQ(e.reason, db::QuarantineReason::kReplaced);
      EXPECT_EQ(Digest(e.image), old_digest);
    }
    EXPECT_TRUE(kept) << "the previous image is gone";
  }
}

TEST_F(DataSafetyTest, PreDeleteBackupDeletesTheVolumeOnlyAfterItSucceeded) {
  Worker& a = AddSteppedWorker(Options("a"));
  const db::Volume volume = MakePinnedVolume(a.server_id());
  WriteData(CreateImage(a, volume), 3);
  const std::string digest = Digest(a.ImageOf(volume.id));
  auto queue_pre_delete = [&] {
    return Queue({.volume_id = volume.id,
                  .kind = db::OperationKind::kBackup,
                  .server_id = a.server_id(),
                  .create_backup = db::BackupKind::kPreDelete,
                  .volume_status = db::VolumeStatus::kDeleting,
                  .extra_request_metadata_json = R"({"delete_volume_after": true})"});
  };

  // The store refuses uploads: the backup fails and the volume stays.
  faulty_->FailMatching(testutil::StoreOp::kPut, "", ErrorKind::kIo);
  const db::QueuedOperation failing = queue_pre_delete();
  ASSERT_EQ(GetVolume(volume.id).status, db::VolumeStatus::kDeleting);
  const db::Operation failed = Step(a, failing.operation.id);
  ASSERT_EQ(failed.status, db::OperationStatus::kFailed);
  db::Volume v = GetVolume(volume.id);
  EXPECT_FALSE(v.deleted_at.has_value());
  EXPECT_EQ(v.status, db::VolumeStatus::kDetached);
  EXPECT_EQ(v.last_error, failed.error);
  EXPECT_EQ(GetBackup(*failing.operation.backup_id).status, db::BackupStatus::kFailed);
  Reconcile(a);
  EXPECT_EQ(Digest(a.ImageOf(volume.id)), digest);
  EXPECT_TRUE(Entries(a).empty());

  faulty_->Clear();
  const db::QueuedOperation op = queue_pre_delete();
  const db::Operation done = StepToSuccess(a, op.operation.id);
  EXPECT_EQ(json::parse(done.result_metadata_json)["volume_deleted"], true);
  const db::Backup backup = GetBackup(*op.operation.backup_id);
  EXPECT_EQ(backup.status, db::BackupStatus::kSucceeded);
  EXPECT_EQ(backup.kind, db::BackupKind::kPreDelete);
  v = GetVolume(volume.id);
  EXPECT_TRUE(v.deleted_at.has_value());
  EXPECT_FALSE(AuditDetails("volume.deleted", volume.id).empty());

  Reconcile(a);
  EXPECT_FALSE(fs::exists(a.ImageOf(volume.id)));
  auto entries = Entries(a);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].reason, db::QuarantineReason::kDeleted);
  EXPECT_EQ(entries[0].purge_after, Now() + kRetention);
  EXPECT_EQ(Digest(entries[0].image), digest);
  EXPECT_EQ(json::parse(backup.metadata_json)["image_sha256"], digest);
}

TEST_F(DataSafetyTest, BackupOfADeletedVolumeRestoresIntoTheProjectsNewVolume) {
  Worker& a = AddSteppedWorker(Options("a"));
  Worker& b = AddSteppedWorker(Options("b"));
  const db::Volume old_volume = MakePinnedVolume(a.server_id());
  WriteData(CreateImage(a, old_volume), 3);
  const std::string digest = Digest(a.ImageOf(old_volume.id));
  const db::QueuedOperation backup = QueueBackup(old_volume);
  StepToSuccess(a, backup.operation.id);
  ASSERT_TRUE(Must([&](db::Tx& tx) { return db::MarkVolumeDeleted(tx, old_volume.id); }));
  auto created = Must([&](db::Tx& tx) {
    return db::CreateVolume(
        tx, db::NewVolume{
                .project_id = old_volume.project_id, .server_id = a.server_id(), .size_gb = 1});
  });
  ASSERT_TRUE(created);
  const db::Volume new_volume = *created;

  auto listed = Must([&](db::Tx& tx) { return db::ListProjectBackups(tx, old_volume.project_id); });
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].backup.id, *backup.operation.backup_id);
  EXPECT_TRUE((*listed)[0].volume_deleted);

  const db::QueuedOperation restore =
      QueueRestore(new_volume.id, *backup.operation.backup_id, b.server_id());
  const db::Operation restored = StepToSuccess(b, restore.operation.id);
  const json result = json::parse(restored.result_metadata_json);
  EXPECT_EQ(result["source_volume_id"], old_volume.id);
  EXPECT_EQ(result["image_sha256"], digest);
  EXPECT_EQ(Digest(b.ImageOf(new_volume.id)), digest);
  const db::Volume after = GetVolume(new_volume.id);
  EXPECT_EQ(after.server_id.value_or(""), b.server_id());
  EXPECT_EQ(after.health, db::VolumeHealth::kHealthy);
  // The old volume's image went to A's quarantine, untouched.
  Reconcile(a);
  auto entries = EntriesOf(a, old_volume.id);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].reason, db::QuarantineReason::kDeleted);
  EXPECT_EQ(Digest(entries[0].image), digest);
}

// A copy of a volume's image on a server the volume is not pinned to, that
// nothing in the database explains (rows rewritten by hand).
class StrayImageTest : public DataSafetyTest {
 protected:
  void SetUp() override {
    DataSafetyTest::SetUp();
    if (HasFatalFailure()) return;
    a_ = &AddSteppedWorker(Options("a"));
    b_ = &AddSteppedWorker(Options("b"));
    volume_ = MakePinnedVolume(a_->server_id());
    WriteData(CreateImage(*a_, volume_), 3);
    on_a_ = Digest(a_->ImageOf(volume_.id));
    // B's copy: other data.
    testutil::MakeSparseFile(b_->ImageOf(volume_.id), 1ull << 30,
                             {{.offset = 64u << 20, .length = 3u << 20}}, 9);
    on_b_ = Digest(b_->ImageOf(volume_.id));
    Reconcile(*b_);
    auto entries = EntriesOf(*b_, volume_.id);
    ASSERT_EQ(entries.size(), 1u);
    held_ = entries[0];
    ASSERT_EQ(held_.reason, db::QuarantineReason::kConflict);
  }

  Worker* a_ = nullptr;
  Worker* b_ = nullptr;
  db::Volume volume_;
  std::string on_a_, on_b_;
  QuarantinedImage held_;
};

TEST_F(StrayImageTest, IsHeldUntilAnOperatorPurgesItThenTheConflictClears) {
  EXPECT_FALSE(held_.purge_after.has_value());
  EXPECT_EQ(held_.image_sha256, on_b_);
  EXPECT_EQ(Digest(held_.image), on_b_);
  db::Volume v = GetVolume(volume_.id);
  EXPECT_EQ(v.health, db::VolumeHealth::kDegraded);
  EXPECT_EQ(v.status, db::VolumeStatus::kDetached) << "A's image is still usable";
  ASSERT_TRUE(v.last_error.has_value());
  EXPECT_THAT(*v.last_error, HasSubstr(held_.id));
  EXPECT_THAT(*v.last_error, HasSubstr(on_b_));
  // A's passes leave the conflict standing, and time does not purge it.
  Reconcile(*a_);
  AdvanceClock(kRetention * 10);
  Reconcile(*b_);
  EXPECT_TRUE(fs::exists(held_.image));
  EXPECT_EQ(GetVolume(volume_.id).health, db::VolumeHealth::kDegraded);
  // Operations that settle the volume keep the conflict in sight.
  const db::QueuedOperation backup = QueueBackup(volume_);
  StepToSuccess(*a_, backup.operation.id);
  v = GetVolume(volume_.id);
  EXPECT_EQ(v.health, db::VolumeHealth::kDegraded);
  EXPECT_THAT(v.last_error.value_or(""), HasSubstr(held_.id));
  const db::QueuedOperation repair = Queue(
      {.volume_id = volume_.id, .kind = db::OperationKind::kRepair, .server_id = a_->server_id()});
  StepToSuccess(*a_, repair.operation.id);
  EXPECT_EQ(GetVolume(volume_.id).health, db::VolumeHealth::kDegraded);
  EXPECT_THAT(GetVolume(volume_.id).last_error.value_or(""), HasSubstr(held_.id));
  const std::string repaired = Digest(a_->ImageOf(volume_.id));  // e2fsck writes to it

  ASSERT_TRUE(Must([&](db::Tx& tx) { return db::RequestQuarantinePurge(tx, held_.id); }));
  Reconcile(*b_);
  EXPECT_FALSE(fs::exists(held_.image.parent_path()));
  EXPECT_EQ(Row(held_.id)->status, db::QuarantineStatus::kPurged);
  EXPECT_TRUE(AuditedEntry("volume.image.purged", volume_.id, held_.id));
  // With nothing held any more, the server that has the volume clears it.
  Reconcile(*a_);
  v = GetVolume(volume_.id);
  EXPECT_EQ(v.health, db::VolumeHealth::kHealthy);
  EXPECT_FALSE(v.last_error.has_value()) << *v.last_error;
  EXPECT_EQ(Digest(a_->ImageOf(volume_.id)), repaired);
}

TEST_F(StrayImageTest, AdoptedThereTheOldServersCopyBecomesReplaced) {
  const db::QueuedOperation adopt =
      Queue({.volume_id = volume_.id,
             .kind = db::OperationKind::kAdopt,
             .server_id = b_->server_id(),
             .extra_request_metadata_json = json{{"quarantine_id", held_.id}}.dump()});
  EXPECT_EQ(adopt.volume.status, db::VolumeStatus::kRestoring);
  // The reconcilers keep off the volume while the adoption is queued.
  Reconcile(*a_);
  EXPECT_TRUE(fs::exists(a_->ImageOf(volume_.id)));
  const db::Operation adopted = StepToSuccess(*b_, adopt.operation.id);
  const json result = json::parse(adopted.result_metadata_json);
  EXPECT_EQ(result["previous_server_id"], a_->server_id());
  EXPECT_EQ(result["server_id"], b_->server_id());
  EXPECT_EQ(Digest(b_->ImageOf(volume_.id)), on_b_);
  db::Volume v = GetVolume(volume_.id);
  EXPECT_EQ(v.server_id.value_or(""), b_->server_id());
  EXPECT_EQ(v.health, db::VolumeHealth::kHealthy);
  EXPECT_FALSE(v.last_error.has_value());

  Reconcile(*a_);
  Reconcile(*b_);
  auto entries = EntriesOf(*a_, volume_.id);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].reason, db::QuarantineReason::kReplaced) << entries[0].detail;
  EXPECT_THAT(entries[0].detail, HasSubstr(adopt.operation.id));
  EXPECT_EQ(Digest(entries[0].image), on_a_);
  EXPECT_TRUE(EntriesOf(*b_, volume_.id).empty());
  EXPECT_EQ(Row(held_.id)->status, db::QuarantineStatus::kAdopted);
  EXPECT_FALSE(GetVolume(volume_.id).last_error.has_value());
}

TEST_F(StrayImageTest, AFailedAdoptionLeavesTheVolumesImageInPlace) {
  // The operator adopts the held image into the volume on A... but the
  // entry is on B, so the adoption is queued on A for an entry A lacks.
  const db::QueuedOperation wrong_server =
      Queue({.volume_id = volume_.id,
             .kind = db::OperationKind::kAdopt,
             .server_id = a_->server_id(),
             .extra_request_metadata_json = json{{"quarantine_id", held_.id}}.dump()});
  EXPECT_EQ(Step(*a_, wrong_server.operation.id).status, db::OperationStatus::kFailed);
  EXPECT_EQ(Digest(a_->ImageOf(volume_.id)), on_a_);
  EXPECT_TRUE(EntriesOf(*a_, volume_.id).empty());

  // An entry on A whose image is gone (given to another volume by an
  // adoption whose record was lost).
  testutil::MakeSparseFile(dir_ / "spare.img", 1ull << 30, {{.offset = 0, .length = 1u << 20}}, 5);
  auto spare = a_->quarantine().Take(dir_ / "spare.img", volume_.id,
                                     db::QuarantineReason::kConflict, "spare", std::nullopt);
  ASSERT_TRUE(spare) << spare.error().message();
  ASSERT_TRUE(a_->quarantine().GiveBack(spare->id, NewUuidV4(), dir_ / "elsewhere.img"));
  const db::QueuedOperation empty_entry =
      Queue({.volume_id = volume_.id,
             .kind = db::OperationKind::kAdopt,
             .server_id = a_->server_id(),
             .extra_request_metadata_json = json{{"quarantine_id", spare->id}}.dump()});
  const db::Operation failed = Step(*a_, empty_entry.operation.id);
  EXPECT_EQ(failed.status, db::OperationStatus::kFailed);
  // The volume's own image was not touched.
  ASSERT_TRUE(fs::exists(a_->ImageOf(volume_.id))) << "the failed adoption took the image away";
  EXPECT_EQ(Digest(a_->ImageOf(volume_.id)), on_a_);
  for (const QuarantinedImage& e : EntriesOf(*a_, volume_.id))
    EXPECT_NE(e.reason, db::QuarantineReason::kReplaced) << e.detail;
  Reconcile(*a_);
  const db::Volume v = GetVolume(volume_.id);
  EXPECT_NE(v.health, db::VolumeHealth::kMissing);
  EXPECT_EQ(v.status, db::VolumeStatus::kDetached);
  EXPECT_EQ(v.server_id.value_or(""), a_->server_id());
}

// A restore lands on a server that holds an image of the volume the
// database does not explain (the reconciler has not taken it yet: the
// restore was queued, e.g. in a reverted database, before its pass). That
// image may be the newest copy: it is held, not purged after the grace.
TEST_F(StrayImageTest, ARestoreOntoAStrayImageHoldsIt) {
  // A second stray copy on B, not yet seen by B's reconciler.
  testutil::MakeSparseFile(b_->ImageOf(volume_.id), 1ull << 30,
                           {{.offset = 80u << 20, .length = 2u << 20}}, 13);
  const std::string stray = Digest(b_->ImageOf(volume_.id));
  const db::QueuedOperation backup = QueueBackup(volume_);
  StepToSuccess(*a_, backup.operation.id);
  const db::QueuedOperation restore =
      QueueRestore(volume_.id, *backup.operation.backup_id, b_->server_id());
  const db::Operation restored = StepToSuccess(*b_, restore.operation.id);
  EXPECT_EQ(Digest(b_->ImageOf(volume_.id)), on_a_);
  const std::string kept_id =
      json::parse(restored.result_metadata_json).value("replaced_image_quarantine_id", "");
  ASSERT_FALSE(kept_id.empty());
  auto kept = b_->quarantine().Get(kept_id);
  ASSERT_TRUE(kept) << kept.error().message();
  EXPECT_EQ(kept->reason, db::QuarantineReason::kConflict) << kept->detail;
  EXPECT_FALSE(kept->purge_after.has_value());
  EXPECT_EQ(Digest(kept->image), stray);
  // The volume says so, with both held images.
  const db::Volume v = GetVolume(volume_.id);
  EXPECT_EQ(v.server_id.value_or(""), b_->server_id());
  EXPECT_EQ(v.health, db::VolumeHealth::kDegraded);
  ASSERT_TRUE(v.last_error.has_value());
  EXPECT_THAT(*v.last_error, HasSubstr(kept_id));
  EXPECT_THAT(*v.last_error, HasSubstr(held_.id));
  EXPECT_TRUE(AuditedEntry("volume.image.quarantined", volume_.id, kept_id));

  AdvanceClock(kGrace + seconds(1));
  Reconcile(*b_);
  EXPECT_TRUE(fs::exists(kept->image)) << "the stray copy was purged after the grace";
  EXPECT_EQ(Row(kept_id)->image_sha256.value_or(""), stray);
  EXPECT_THAT(GetVolume(volume_.id).last_error.value_or(""), HasSubstr(stray));
}

// A restore back to a server whose previous copy its reconciler has not
// taken yet: the database explains that copy (the last restore took the
// volume away from there), so it is a replaced copy kept for the grace, not a
// conflict for an operator.
TEST_F(DataSafetyTest, RestoreBackOntoAnExplainedLeftoverKeepsItForTheGrace) {
  Worker& a = AddSteppedWorker(Options("a"));
  Worker& b = AddSteppedWorker(Options("b"));
  const db::Volume volume = MakePinnedVolume(a.server_id());
  WriteData(CreateImage(a, volume), 5);
  const std::string on_a = Digest(a.ImageOf(volume.id));
  const db::QueuedOperation backup = QueueBackup(volume);
  StepToSuccess(a, backup.operation.id);
  StepToSuccess(b,
                QueueRestore(volume.id, *backup.operation.backup_id, b.server_id()).operation.id);
  // Straight back to A, before A's reconciler saw the first restore.
  ASSERT_TRUE(fs::exists(a.ImageOf(volume.id)));
  const db::Operation back = StepToSuccess(
      a, QueueRestore(volume.id, *backup.operation.backup_id, a.server_id()).operation.id);
  const std::string kept_id =
      json::parse(back.result_metadata_json).value("replaced_image_quarantine_id", "");
  ASSERT_FALSE(kept_id.empty());
  auto kept = a.quarantine().Get(kept_id);
  ASSERT_TRUE(kept) << kept.error().message();
  EXPECT_EQ(kept->reason, db::QuarantineReason::kReplaced) << kept->detail;
  ASSERT_TRUE(kept->purge_after.has_value());
  EXPECT_EQ(Digest(kept->image), on_a);
  EXPECT_EQ(Digest(a.ImageOf(volume.id)), on_a);
  const db::Volume after = GetVolume(volume.id);
  EXPECT_EQ(after.server_id.value_or(""), a.server_id());
  EXPECT_EQ(after.health, db::VolumeHealth::kHealthy);
  EXPECT_FALSE(after.last_error.has_value()) << *after.last_error;
}

// The reconciler picks an image to move away on one read of the row and acts
// in the volume's (or entry's) busy section on a fresh, locked read: a row
// that changed in between leaves the image where it is.
TEST_F(DataSafetyTest, AnImageStaysWhenItsRowChangesBetweenDecisionAndAction) {
  Worker& a = AddSteppedWorker(Options("a"));
  std::function<void(std::string_view, const std::string&)> hook;
  WorkerOptions b_options = Options("b");
  b_options.before_image_action = [&](std::string_view action, const std::string& id) {
    if (hook) hook(action, id);
  };
  Worker& b = AddSteppedWorker(std::move(b_options));
  const db::Volume volume = MakePinnedVolume(a.server_id());
  WriteData(CreateImage(a, volume), 3);
  const fs::path stray = b.ImageOf(volume.id);
  testutil::MakeSparseFile(stray, 1ull << 30, {{.offset = 64u << 20, .length = 3u << 20}}, 9);
  const std::string on_b = Digest(stray);

  // Pinned to A when B looked, pinned to B (a restore, an operator) when B
  // is about to move it: B's image is the volume's now and stays.
  int calls = 0;
  hook = [&](std::string_view action, const std::string& id) {
    if (action != "quarantine" || id != volume.id) return;
    ++calls;
    Sql("UPDATE project_volumes SET server_id = '" + b.server_id() + "' WHERE id = '" + id + "'");
  };
  Reconcile(b);
  EXPECT_EQ(calls, 1);
  ASSERT_TRUE(fs::exists(stray));
  EXPECT_EQ(Digest(stray), on_b);
  EXPECT_TRUE(EntriesOf(b, volume.id).empty());
  EXPECT_TRUE(AuditDetails("volume.image.quarantined", volume.id).empty());

  // Same with an operation queued on the volume meanwhile.
  Sql("UPDATE project_volumes SET server_id = '" + a.server_id() + "' WHERE id = '" + volume.id +
      "'");
  std::string queued;
  hook = [&](std::string_view action, const std::string& id) {
    if (action != "quarantine" || id != volume.id || !queued.empty()) return;
    queued = QueueBackup(GetVolume(volume.id)).operation.id;
  };
  Reconcile(b);
  EXPECT_FALSE(queued.empty());
  ASSERT_TRUE(fs::exists(stray));
  EXPECT_TRUE(EntriesOf(b, volume.id).empty());
  StepToSuccess(a, queued);

  // Unchanged, it goes (held: nothing explains it).
  hook = nullptr;
  Reconcile(b);
  EXPECT_FALSE(fs::exists(stray));
  auto entries = EntriesOf(b, volume.id);
  ASSERT_EQ(entries.size(), 1u);
  const QuarantinedImage held = entries[0];
  EXPECT_EQ(held.reason, db::QuarantineReason::kConflict);

  // A purge requested, then withdrawn (purge_after cleared) after the
  // listing but before the entry's busy section: the image stays held.
  ASSERT_TRUE(Must([&](db::Tx& tx) { return db::RequestQuarantinePurge(tx, held.id); }));
  AdvanceClock(seconds(60));  // the workers' clock past the database's now()
  calls = 0;
  hook = [&](std::string_view action, const std::string& id) {
    if (action != "purge" || id != held.id) return;
    ++calls;
    Sql("UPDATE volume_image_quarantine SET purge_after = NULL WHERE id = '" + id + "'");
  };
  Reconcile(b);
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(fs::exists(held.image));
  EXPECT_EQ(Digest(held.image), on_b);
  EXPECT_EQ(Row(held.id)->status, db::QuarantineStatus::kHeld);
  EXPECT_FALSE(AuditedEntry("volume.image.purged", volume.id, held.id));

  // Requested again and left alone, it is purged.
  hook = nullptr;
  ASSERT_TRUE(Must([&](db::Tx& tx) { return db::RequestQuarantinePurge(tx, held.id); }));
  AdvanceClock(seconds(60));
  Reconcile(b);
  EXPECT_FALSE(fs::exists(held.image));
  EXPECT_EQ(Row(held.id)->status, db::QuarantineStatus::kPurged);
}

TEST_F(DataSafetyTest, ImageOfAVolumeTheDatabaseDoesNotKnowIsHeld) {
  Worker& a = AddSteppedWorker(Options("a"));
  const std::string unknown = NewUuidV4();
  testutil::MakeSparseFile(a.ImageOf(unknown), 1ull << 30,
                           {{.offset = 5u << 20, .length = 2u << 20}}, 4);
  const std::string digest = Digest(a.ImageOf(unknown));
  Reconcile(a);
  auto entries = EntriesOf(a, unknown);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].reason, db::QuarantineReason::kUnknownVolume);
  EXPECT_FALSE(entries[0].purge_after.has_value());
  EXPECT_EQ(Digest(entries[0].image), digest);
  auto row = Row(entries[0].id);
  ASSERT_TRUE(row);
  EXPECT_EQ(row->project_volume_id, unknown);
  EXPECT_EQ(row->image_sha256.value_or(""), digest);
  AdvanceClock(kRetention * 10);
  Reconcile(a);
  EXPECT_TRUE(fs::exists(entries[0].image));
}

class DamageThroughWorkerTest : public DataSafetyTest,
                                public ::testing::WithParamInterface<engine::DamageProblem> {};

TEST_P(DamageThroughWorkerTest, RestoreMarksTheBackupDamagedVerifyReportsItBackupHealsIt) {
  const engine::DamageProblem problem = GetParam();
  const std::string problem_name(engine::DamageProblemName(problem));
  Worker& a = AddSteppedWorker(Options("a"));
  Worker& b = AddSteppedWorker(Options("b"));
  const db::Volume volume = MakePinnedVolume(a.server_id());
  WriteData(CreateImage(a, volume), 7);
  const std::string digest = Digest(a.ImageOf(volume.id));
  const db::QueuedOperation first = QueueBackup(volume);
  StepToSuccess(a, first.operation.id);
  const std::string first_id = *first.operation.backup_id;

  // The chunk at 65 MiB (random data, held by no other offset) goes bad.
  constexpr std::uint64_t kOffset = 65u << 20;
  const repo::ChunkId victim = ChunkAt(*repository_, volume.id, first_id, kOffset);
  const std::string victim_hex = crypto::DigestHex(victim);
  const std::string key = repo::ChunkKey(victim);
  if (problem == engine::DamageProblem::kMissing) {
    ASSERT_TRUE(local_->Delete(key));
  } else {
    auto object = local_->Get(key);
    ASSERT_TRUE(object) << object.error().message();
    (*object)[object->size() / 2] ^= 0x10;
    ASSERT_TRUE(local_->Put(key, *object));
  }

  // The restore fails and the backup row says why.
  const db::QueuedOperation failing = QueueRestore(volume.id, first_id, b.server_id());
  const db::Operation failed = Step(b, failing.operation.id);
  ASSERT_EQ(failed.status, db::OperationStatus::kFailed);
  EXPECT_THAT(failed.error.value_or(""), HasSubstr(victim_hex));
  EXPECT_FALSE(fs::exists(b.ImageOf(volume.id)));
  const db::Volume v = GetVolume(volume.id);
  EXPECT_EQ(v.server_id.value_or(""), a.server_id());
  EXPECT_EQ(v.status, db::VolumeStatus::kDetached);
  EXPECT_EQ(Digest(a.ImageOf(volume.id)), digest);
  db::Backup damaged = GetBackup(first_id);
  ASSERT_EQ(damaged.status, db::BackupStatus::kDamaged);
  ASSERT_TRUE(damaged.damage_json.has_value());
  const json damage = json::parse(*damaged.damage_json);
  ASSERT_EQ(damage["chunks"].size(), 1u) << damage.dump();
  EXPECT_EQ(damage["chunks"][0]["chunk_id"], victim_hex);
  EXPECT_EQ(damage["chunks"][0]["problem"], problem_name);
  EXPECT_EQ(damage["chunks"][0]["offsets"], json::array({kOffset}));
  EXPECT_EQ(damage["storage_url"], StoreUrl());
  EXPECT_FALSE(AuditDetails("volume.backup.damaged", volume.id).empty());
  // A damaged backup is not offered for restores.
  auto refused = db().Transact([&](db::Tx& tx) {
    return db::QueueOperation(tx, {.volume_id = volume.id,
                                   .kind = db::OperationKind::kRestore,
                                   .server_id = b.server_id(),
                                   .backup_id = first_id});
  });
  EXPECT_FALSE(refused);

  // A verify reports it.
  const db::QueuedOperation verify = Queue({.volume_id = volume.id,
                                            .kind = db::OperationKind::kVerify,
                                            .server_id = a.server_id(),
                                            .backup_id = first_id});
  EXPECT_EQ(verify.volume.status, db::VolumeStatus::kDetached) << "verify leaves the volume be";
  const db::Operation verified = StepToSuccess(a, verify.operation.id);
  const json report = json::parse(verified.result_metadata_json);
  EXPECT_EQ(report["ok"], false);
  EXPECT_EQ(report["storage_url"], StoreUrl());
  ASSERT_EQ(report["problems"].size(), 1u) << report.dump();
  EXPECT_EQ(report["problems"][0]["chunk_id"], victim_hex);
  EXPECT_EQ(report["problems"][0]["kind"], problem_name);
  EXPECT_EQ(report["problems"][0]["offset"], kOffset);
  const db::Backup found_damaged = GetBackup(first_id);
  EXPECT_EQ(found_damaged.status, db::BackupStatus::kDamaged);
  // What the verify found is on the row, beside the damage.
  EXPECT_EQ(found_damaged.verify_state, db::VerifyState::kDamaged);
  ASSERT_TRUE(found_damaged.verified_at.has_value());

  // A backup of the unchanged image stores the chunk again.
  const db::QueuedOperation second = QueueBackup(GetVolume(volume.id));
  const db::Operation healed_by = StepToSuccess(a, second.operation.id);
  const json healing = json::parse(healed_by.result_metadata_json);
  EXPECT_GE(healing["chunks_healed"].get<int>(), 1) << healing.dump();
  EXPECT_EQ(healing["backups_healed"], json::array({first_id})) << healing.dump();
  const db::Backup healed = GetBackup(first_id);
  EXPECT_EQ(healed.status, db::BackupStatus::kSucceeded);
  EXPECT_FALSE(healed.damage_json.has_value());
  EXPECT_FALSE(AuditDetails("volume.backup.healed", volume.id).empty());

  // Both backups restore bit-identically.
  const db::QueuedOperation restore_first = QueueRestore(volume.id, first_id, b.server_id());
  StepToSuccess(b, restore_first.operation.id);
  EXPECT_EQ(Digest(b.ImageOf(volume.id)), digest);
  const db::QueuedOperation restore_second =
      QueueRestore(volume.id, *second.operation.backup_id, a.server_id());
  StepToSuccess(a, restore_second.operation.id);
  EXPECT_EQ(Digest(a.ImageOf(volume.id)), digest);
  const db::QueuedOperation verify_again = Queue({.volume_id = volume.id,
                                                  .kind = db::OperationKind::kVerify,
                                                  .server_id = a.server_id(),
                                                  .backup_id = first_id});
  EXPECT_EQ(json::parse(StepToSuccess(a, verify_again.operation.id).result_metadata_json)["ok"],
            true);
  const db::Backup verified_ok = GetBackup(first_id);
  EXPECT_EQ(verified_ok.verify_state, db::VerifyState::kOk);
  ASSERT_TRUE(verified_ok.verified_at.has_value());
  EXPECT_GT(*verified_ok.verified_at, *found_damaged.verified_at);
}

INSTANTIATE_TEST_SUITE_P(Problems, DamageThroughWorkerTest,
                         ::testing::Values(engine::DamageProblem::kCorrupt,
                                           engine::DamageProblem::kMissing),
                         [](const ::testing::TestParamInfo<engine::DamageProblem>& problem_info) {
                           return std::string(engine::DamageProblemName(problem_info.param));
                         });

// Damage recorded elsewhere (another host, the offline CLI) reaches the
// backup rows through the worker's periodic sync, and so does its repair.
TEST_F(DataSafetyTest, PeriodicSyncBringsDamageRecordedElsewhereIntoTheRows) {
  WorkerOptions options = Options("a");
  options.damage_sync_interval = milliseconds(100);
  Worker& a = StartWorker(options);
  const db::Volume volume = MakePinnedVolume(a.server_id());
  WriteData(WaitForImage(a, volume), 7);
  const db::QueuedOperation backup = QueueBackup(volume);
  ASSERT_EQ(WaitFinished(backup.operation.id).status, db::OperationStatus::kSucceeded);
  const std::string backup_id = *backup.operation.backup_id;

  const repo::ChunkId victim = ChunkAt(*repository_, volume.id, backup_id, 64u << 20);
  ASSERT_TRUE(engine::WriteDamageRecord(
      *repository_, engine::DamageRecord{.chunk_id = victim,
                                         .problem = engine::DamageProblem::kMissing,
                                         .detected_unix_ms = 1,
                                         .message = "found by another host",
                                         .volume_id = volume.id,
                                         .backup_id = backup_id}));
  ASSERT_TRUE(WaitFor([&] { return GetBackup(backup_id).status == db::BackupStatus::kDamaged; }));
  const json damage = json::parse(GetBackup(backup_id).damage_json.value_or("{}"));
  EXPECT_EQ(damage["chunks"][0]["chunk_id"], crypto::DigestHex(victim));
  EXPECT_EQ(damage["chunks"][0]["problem"], "missing");

  ASSERT_TRUE(engine::ClearDamage(*repository_, victim));
  ASSERT_TRUE(WaitFor([&] { return GetBackup(backup_id).status == db::BackupStatus::kSucceeded; }));
  EXPECT_FALSE(GetBackup(backup_id).damage_json.has_value());
}

TEST_F(DataSafetyTest, EachBackupIsReadFromTheStoreItWasWrittenTo) {
  const std::string second_store = AddStore("store2");
  Worker& a = AddSteppedWorker(Options("a"));
  Worker& b = AddSteppedWorker(Options("b"));
  const db::Volume volume = MakePinnedVolume(a.server_id());
  WriteData(CreateImage(a, volume), 3);
  const std::string first_digest = Digest(a.ImageOf(volume.id));
  const db::QueuedOperation first = QueueBackup(volume);
  StepToSuccess(a, first.operation.id);
  EXPECT_EQ(GetBackup(*first.operation.backup_id).storage_url.value_or(""), StoreUrl());

  // The cluster's store changes; the image too.
  SetCurrentStore(second_store);
  WriteData(a.ImageOf(volume.id), 9);
  const std::string second_digest = Digest(a.ImageOf(volume.id));
  const db::QueuedOperation second = QueueBackup(GetVolume(volume.id));
  StepToSuccess(a, second.operation.id);
  EXPECT_EQ(GetBackup(*second.operation.backup_id).storage_url.value_or(""), second_store);
  EXPECT_TRUE(RepositoryAt(second_store)->LoadManifest(volume.id, *second.operation.backup_id));
  EXPECT_FALSE(RepositoryAt(second_store)->LoadManifest(volume.id, *first.operation.backup_id));
  EXPECT_FALSE(RepositoryAt(StoreUrl())->LoadManifest(volume.id, *second.operation.backup_id));

  // The first backup comes from the first store.
  const db::QueuedOperation restore_first =
      QueueRestore(volume.id, *first.operation.backup_id, b.server_id());
  const db::Operation restored = StepToSuccess(b, restore_first.operation.id);
  EXPECT_EQ(json::parse(restored.result_metadata_json)["storage_url"], StoreUrl());
  EXPECT_EQ(Digest(b.ImageOf(volume.id)), first_digest);
  const db::QueuedOperation verify_first = Queue({.volume_id = volume.id,
                                                  .kind = db::OperationKind::kVerify,
                                                  .server_id = b.server_id(),
                                                  .backup_id = *first.operation.backup_id});
  const json verified =
      json::parse(StepToSuccess(b, verify_first.operation.id).result_metadata_json);
  EXPECT_EQ(verified["ok"], true);
  EXPECT_EQ(verified["storage_url"], StoreUrl());
  // And the second from the second.
  const db::QueuedOperation restore_second =
      QueueRestore(volume.id, *second.operation.backup_id, a.server_id());
  const db::Operation restored_second = StepToSuccess(a, restore_second.operation.id);
  EXPECT_EQ(json::parse(restored_second.result_metadata_json)["storage_url"], second_store);
  EXPECT_EQ(Digest(a.ImageOf(volume.id)), second_digest);

  // A backup whose store the cluster does not know fails with that reason.
  Sql("UPDATE project_volume_backups SET storage_url = 'file:///nowhere' WHERE id = '" +
      *first.operation.backup_id + "'");
  const db::QueuedOperation lost =
      QueueRestore(volume.id, *first.operation.backup_id, b.server_id());
  const db::Operation failed = Step(b, lost.operation.id);
  EXPECT_EQ(failed.status, db::OperationStatus::kFailed);
  EXPECT_THAT(failed.error.value_or(""), HasSubstr("file:///nowhere"));
  EXPECT_EQ(Digest(b.ImageOf(volume.id)), first_digest) << "B's image is untouched";
}

}  // namespace
}  // namespace kindling::reconcile
