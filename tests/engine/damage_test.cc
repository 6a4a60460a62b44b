#include "engine/damage.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>

#include "engine/engine_test_base.h"
#include "engine/verify.h"

namespace kindling::engine {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testutil::Fill;
using testutil::StoreOp;

class DamageTest : public EngineTestBase {
 protected:
  void SetUp() override {
    EngineTestBase::SetUp();
    // The same store without the fault injector: what a test's hook uses to
    // act as another host while a call of the engine is under way.
    auto direct = Repository::Open(*local_, key_);
    ASSERT_TRUE(direct) << direct.error().message();
    direct_.emplace(std::move(*direct));
  }

  DamageMap Damage() {
    auto damage = LoadDamage(repository());
    EXPECT_TRUE(damage) << damage.error().message();
    return damage ? *damage : DamageMap{};
  }
  std::vector<BackupInfo> List(std::optional<std::string_view> volume = std::nullopt) {
    auto listed = repository().ListBackups(volume);
    EXPECT_TRUE(listed) << listed.error().message();
    return listed ? *listed : std::vector<BackupInfo>{};
  }
  std::vector<BackupDamage> Damaged(std::optional<std::string_view> volume = std::nullopt) {
    auto found = FindDamagedBackups(repository(), volume);
    EXPECT_TRUE(found) << found.error().message();
    return found ? *found : std::vector<BackupDamage>{};
  }

  // Backs up `image` as `volume`, returning the manifest and the healed chunks.
  repo::Manifest BackupHealing(const std::filesystem::path& image,
                               std::vector<repo::ChunkId>& healed,
                               const std::string& volume = "vol-1") {
    BackupOptions o = Options(image, volume);
    o.healed = &healed;
    auto m = CreateBackup(repository(), o);
    EXPECT_TRUE(m) << m.error().message();
    if (!m) throw std::runtime_error("backup failed: " + m.error().message());
    return std::move(*m);
  }

  // Restores `m` into out/<name> and expects the bytes of a file whose
  // SHA-256 is `sha`.
  void ExpectRestores(const repo::Manifest& m, const std::string& name, const std::string& sha) {
    const auto dest = out_dir() / name;
    auto r = Restore(m, dest);
    ASSERT_TRUE(r) << name << ": " << r.error().message();
    EXPECT_EQ(FileSha(dest), sha) << name;
  }

  static DamageRecord RecordOf(const repo::ChunkId& id, DamageProblem problem) {
    DamageRecord record;
    record.chunk_id = id;
    record.problem = problem;
    record.detected_unix_ms = 1700000000000;
    record.message = "found in a test";
    record.volume_id = "vol-x";
    record.backup_id = "b-x";
    return record;
  }

  // After restore found a chunk damaged: one record naming it and the
  // backup; then a backup of the same image stores exactly that chunk again,
  // the record goes, and the old and the new backup both restore.
  void ExpectRestoreRecordsAndBackupHeals(DamageProblem problem) {
    const auto image = MakeMixedImage("mixed.img");
    const std::string sha = FileSha(image);
    const repo::Manifest first = BackupOrDie(image);
    const std::size_t index = NthDataChunk(first, 2);
    const repo::ChunkId victim = first.chunks[index].id;
    if (problem == DamageProblem::kMissing)
      DeleteObject(repo::ChunkKey(victim));
    else
      CorruptObject(repo::ChunkKey(victim));

    const auto dest = out_dir() / "first.img";
    auto refused = Restore(first, dest);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().kind(), ErrorKind::kCorruption);
    EXPECT_THAT(refused.error().message(), HasSubstr(crypto::DigestHex(victim)));
    EXPECT_FALSE(std::filesystem::exists(dest));

    const DamageMap damage = Damage();
    ASSERT_EQ(damage.size(), 1u);
    const DamageRecord& record = damage.begin()->second;
    EXPECT_EQ(record.chunk_id, victim);
    EXPECT_EQ(record.problem, problem);
    EXPECT_EQ(record.volume_id, "vol-1");
    EXPECT_EQ(record.backup_id, first.backup_id);
    EXPECT_GT(record.detected_unix_ms, 0u);
    EXPECT_THAT(record.message, HasSubstr(crypto::DigestHex(victim)));
    const auto listed = List();
    ASSERT_EQ(listed.size(), 1u);
    ASSERT_EQ(listed[0].damaged_chunks.size(), 1u);
    EXPECT_EQ(listed[0].damaged_chunks[0].chunk_id_hex, crypto::DigestHex(victim));
    EXPECT_EQ(listed[0].damaged_chunks[0].problem, problem);
    EXPECT_THAT(listed[0].damaged_chunks[0].offsets, ElementsAre(first.ChunkOffset(index)));

    std::vector<repo::ChunkId> healed;
    const repo::Manifest second = BackupHealing(image, healed);
    EXPECT_THAT(healed, ElementsAre(victim));
    EXPECT_EQ(second.stats.chunks_uploaded, 1u);
    EXPECT_EQ(second.stats.bytes_read, first.stats.bytes_read)
        << "a chunk recorded when the backup starts is healed as it is read, not read twice";
    EXPECT_THAT(Damage(), IsEmpty());
    EXPECT_FALSE(local_->Head(repo::DamagedChunkKey(victim)));
    for (const BackupInfo& info : List()) EXPECT_FALSE(info.damaged()) << info.backup_id;
    EXPECT_THAT(Damaged(), IsEmpty());

    ExpectRestores(first, "first.img", sha);
    ExpectRestores(second, "second.img", sha);

    // Healed for good: the next backup trusts the chunk again.
    healed.assign(1, victim);
    const repo::Manifest third = BackupHealing(image, healed);
    EXPECT_THAT(healed, IsEmpty());
    EXPECT_EQ(third.stats.chunks_uploaded, 0u);
  }

  std::optional<Repository> direct_;
};

TEST_F(DamageTest, CorruptChunkFoundByRestoreIsRecordedAndHealedByTheNextBackup) {
  ExpectRestoreRecordsAndBackupHeals(DamageProblem::kCorrupt);
}

TEST_F(DamageTest, MissingChunkFoundByRestoreIsRecordedAndHealedByTheNextBackup) {
  ExpectRestoreRecordsAndBackupHeals(DamageProblem::kMissing);
}

// A healed chunk's record goes only once the chunk is durable: when the
// batch holding it fails to commit, the backup fails and the record stays,
// so the next backup does not trust the damaged copy.
TEST_F(DamageTest, ARecordStaysWhenTheBatchHoldingItsHealFailsToCommit) {
  const auto image = MakeMixedImage("mixed.img");
  const repo::Manifest first = BackupOrDie(image);
  const repo::ChunkId victim = first.chunks[NthDataChunk(first, 1)].id;
  CorruptObject(repo::ChunkKey(victim));
  ASSERT_FALSE(Restore(first, out_dir() / "first.img"));
  ASSERT_EQ(Damage().size(), 1u);

  faults_->SetRule([](StoreOp op, std::string_view) -> std::optional<Error> {
    if (op == StoreOp::kCommit) return Error(ErrorKind::kIo, "injected: commit failed");
    return std::nullopt;
  });
  auto failed = Backup(image);
  ASSERT_FALSE(failed);
  EXPECT_THAT(failed.error().message(), HasSubstr("commit failed"));
  EXPECT_EQ(Damage().size(), 1u) << "the record went before its heal was durable";

  faults_->Clear();
  std::vector<repo::ChunkId> healed;
  const repo::Manifest second = BackupHealing(image, healed);
  EXPECT_THAT(healed, ElementsAre(victim));
  EXPECT_THAT(Damage(), IsEmpty());
  ExpectRestores(first, "first.img", FileSha(image));
}

TEST_F(DamageTest, WithoutARecordTheNextBackupTrustsTheDamagedChunk) {
  // The failure the records exist for: nothing has looked at the chunk, so
  // the backup reuses it and is as damaged as the first.
  const auto image = MakeMixedImage("mixed.img");
  const repo::Manifest first = BackupOrDie(image);
  CorruptObject(repo::ChunkKey(first.chunks[NthDataChunk(first, 1)].id));
  const repo::Manifest second = BackupOrDie(image);
  EXPECT_EQ(second.stats.chunks_uploaded, 0u);
  auto r = Restore(second, out_dir() / "second.img");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), ErrorKind::kCorruption);
  ASSERT_EQ(Damage().size(), 1u) << "the failed restore records it";
}

TEST_F(DamageTest, VerifyRecordsEveryMissingOrCorruptChunkButNotUnreadableOnes) {
  const auto image = MakeImage("data.img", 12 * kChunk, {{0, 12 * kChunk, Fill::kRandom}});
  const repo::Manifest m = BackupOrDie(image);
  const repo::ChunkId missing = m.chunks[2].id;
  const repo::ChunkId corrupt = m.chunks[7].id;
  const repo::ChunkId unreadable = m.chunks[9].id;
  DeleteObject(repo::ChunkKey(missing));
  CorruptObject(repo::ChunkKey(corrupt));
  faults_->FailMatching(StoreOp::kGet, crypto::DigestHex(unreadable), ErrorKind::kTransient);

  VerifyOptions o;
  auto report = VerifyBackup(repository(), m, o);
  ASSERT_TRUE(report) << report.error().message();
  ASSERT_EQ(report->problems.size(), 3u);
  faults_->Clear();

  const DamageMap damage = Damage();
  ASSERT_EQ(damage.size(), 2u);
  ASSERT_TRUE(damage.contains(missing));
  ASSERT_TRUE(damage.contains(corrupt));
  EXPECT_EQ(damage.at(missing).problem, DamageProblem::kMissing);
  EXPECT_EQ(damage.at(corrupt).problem, DamageProblem::kCorrupt);
  EXPECT_EQ(damage.at(corrupt).backup_id, m.backup_id);
  EXPECT_FALSE(damage.contains(unreadable)) << "a store error is no evidence of damage";

  const auto found = Damaged();
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].backup_id, m.backup_id);
  ASSERT_EQ(found[0].chunks.size(), 2u);
  EXPECT_EQ(found[0].chunks[0].chunk_id_hex, crypto::DigestHex(missing));
  EXPECT_THAT(found[0].chunks[0].offsets, ElementsAre(2 * kChunk));
  EXPECT_EQ(found[0].chunks[1].chunk_id_hex, crypto::DigestHex(corrupt));
  EXPECT_THAT(found[0].chunks[1].offsets, ElementsAre(7 * kChunk));

  std::vector<repo::ChunkId> healed;
  const repo::Manifest second = BackupHealing(image, healed);
  std::vector<repo::ChunkId> expected = {missing, corrupt};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(healed, expected);
  EXPECT_EQ(second.stats.chunks_uploaded, 2u);
  EXPECT_THAT(Damage(), IsEmpty());
  const std::string sha = FileSha(image);
  ExpectRestores(m, "first.img", sha);
  ExpectRestores(second, "second.img", sha);
}

TEST_F(DamageTest, StaleRecordOnlyCostsAnUpload) {
  const auto image = MakeMixedImage("mixed.img");
  const repo::Manifest first = BackupOrDie(image);
  const repo::ChunkId sound = first.chunks[NthDataChunk(first, 0)].id;
  ASSERT_TRUE(WriteDamageRecord(repository(), RecordOf(sound, DamageProblem::kCorrupt)));
  ASSERT_EQ(List()[0].damaged_chunks.size(), 1u);

  std::vector<repo::ChunkId> healed;
  const repo::Manifest second = BackupHealing(image, healed);
  EXPECT_THAT(healed, ElementsAre(sound));
  EXPECT_EQ(second.stats.chunks_uploaded, 1u);
  EXPECT_EQ(second.stats.bytes_read, first.stats.bytes_read);
  EXPECT_THAT(Damage(), IsEmpty());
  const std::string sha = FileSha(image);
  ExpectRestores(first, "first.img", sha);
  ExpectRestores(second, "second.img", sha);
}

TEST_F(DamageTest, RecordingReadsTheChunkAgainAndSkipsASoundOne) {
  const auto image = MakeMixedImage("mixed.img");
  const repo::Manifest m = BackupOrDie(image);
  const repo::ChunkId id = m.chunks[NthDataChunk(m, 3)].id;
  auto sound = RecordChunkDamage(repository(), id, "vol-1", m.backup_id);
  ASSERT_TRUE(sound) << sound.error().message();
  EXPECT_FALSE(*sound);
  EXPECT_THAT(Damage(), IsEmpty());

  CorruptObject(repo::ChunkKey(id));
  auto corrupt = RecordChunkDamage(repository(), id, "vol-1", m.backup_id);
  ASSERT_TRUE(corrupt) << corrupt.error().message();
  ASSERT_TRUE(*corrupt);
  EXPECT_EQ((*corrupt)->problem, DamageProblem::kCorrupt);
  EXPECT_EQ(Damage().size(), 1u);

  // A store error while reading again records nothing (and says so).
  ASSERT_TRUE(ClearDamage(repository(), id));
  faults_->FailMatching(StoreOp::kGet, "chunks/", ErrorKind::kTransient);
  auto unreadable = RecordChunkDamage(repository(), id, "vol-1", m.backup_id);
  ASSERT_FALSE(unreadable);
  EXPECT_EQ(unreadable.error().kind(), ErrorKind::kTransient);
  faults_->Clear();
  EXPECT_THAT(Damage(), IsEmpty());
}

TEST_F(DamageTest, ChunkRewrittenBetweenRestoreAndRecordIsNotRecorded) {
  // A healing backup elsewhere replaces the corrupt object after the
  // restore's fetch: the second look finds it sound and records nothing.
  const auto image = MakeMixedImage("mixed.img");
  const repo::Manifest m = BackupOrDie(image);
  const std::string key = repo::ChunkKey(m.chunks[NthDataChunk(m, 1)].id);
  const std::string good = *local_->Get(key);
  CorruptObject(key);
  std::atomic<int> gets{0};
  faults_->SetRule([&](StoreOp op, std::string_view k) -> std::optional<Error> {
    if (op == StoreOp::kGet && k == key && gets.fetch_add(1) == 1) (void)local_->Put(key, good);
    return std::nullopt;
  });
  auto r = Restore(m, out_dir() / "r.img", false, 1);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), ErrorKind::kCorruption);
  EXPECT_EQ(gets.load(), 2);
  faults_->Clear();
  EXPECT_THAT(Damage(), IsEmpty());
}

TEST_F(DamageTest, FailingToRecordDoesNotHideTheCorruption) {
  const auto image = MakeMixedImage("mixed.img");
  const repo::Manifest m = BackupOrDie(image);
  CorruptObject(repo::ChunkKey(m.chunks[NthDataChunk(m, 0)].id));
  faults_->FailMatching(StoreOp::kPut, std::string(repo::kDamagedChunksPrefix),
                        ErrorKind::kTransient);
  auto r = Restore(m, out_dir() / "r.img");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), ErrorKind::kCorruption) << r.error().message();
  VerifyOptions o;
  auto report = VerifyBackup(repository(), m, o);
  ASSERT_TRUE(report) << report.error().message();
  ASSERT_EQ(report->problems.size(), 1u);
  EXPECT_EQ(report->problems[0].kind, ChunkProblem::Kind::kCorrupt);
  faults_->Clear();
  EXPECT_THAT(Damage(), IsEmpty());
}

TEST_F(DamageTest, RecordWrittenDuringABackupIsHealedBeforeItCommits) {
  const auto image = MakeMixedImage("mixed.img");
  const std::string first_sha = FileSha(image);
  const repo::Manifest first = BackupOrDie(image);
  const std::size_t victim_index = NthDataChunk(first, 3);
  const repo::ChunkId victim = first.chunks[victim_index].id;
  // The next backup has one new chunk to upload; while it does, a restore on
  // another host finds `victim` corrupt and records it. The backup started
  // before the record, so its first look trusted `victim`.
  testutil::PatchFile(image, 0, testutil::RandomData(100, 77));
  const std::string second_sha = FileSha(image);
  CorruptObject(repo::ChunkKey(victim));
  std::atomic<bool> recorded{false};
  faults_->SetRule([&](StoreOp op, std::string_view key) -> std::optional<Error> {
    if (op == StoreOp::kPut && key.starts_with("chunks/") && !recorded.exchange(true)) {
      auto written = RecordChunkDamage(*direct_, victim, "vol-1", first.backup_id);
      EXPECT_TRUE(written && *written);
    }
    return std::nullopt;
  });
  std::vector<repo::ChunkId> healed;
  const repo::Manifest second = BackupHealing(image, healed);
  faults_->Clear();
  ASSERT_TRUE(recorded.load());
  EXPECT_THAT(healed, ElementsAre(victim));
  EXPECT_EQ(second.stats.chunks_uploaded, 2u) << "the new chunk and the healed one";
  EXPECT_THAT(Damage(), IsEmpty());
  EXPECT_EQ(second.chunks[victim_index].id, victim);
  ExpectRestores(first, "first.img", first_sha);
  ExpectRestores(second, "second.img", second_sha);
}

TEST_F(DamageTest, RecordRacingThisBackupsOwnUploadIsClearedBeforeCommit) {
  // A verify elsewhere fetched the old, corrupt object before this backup
  // stored it again and records it afterwards: the final pass stores it once
  // more and clears the record; the upload is counted once.
  const auto image = MakeMixedImage("mixed.img");
  const repo::Manifest first = BackupOrDie(image);
  const repo::ChunkId victim = first.chunks[NthDataChunk(first, 2)].id;
  ASSERT_TRUE(WriteDamageRecord(repository(), RecordOf(victim, DamageProblem::kCorrupt)));
  std::atomic<int> lists{0};
  faults_->SetRule([&](StoreOp op, std::string_view prefix) -> std::optional<Error> {
    if (op == StoreOp::kList && prefix == repo::kDamagedChunksPrefix && lists.fetch_add(1) == 1) {
      EXPECT_TRUE(WriteDamageRecord(*direct_, RecordOf(victim, DamageProblem::kCorrupt)));
    }
    return std::nullopt;
  });
  std::vector<repo::ChunkId> healed;
  const repo::Manifest second = BackupHealing(image, healed);
  faults_->Clear();
  EXPECT_EQ(lists.load(), 2);
  EXPECT_THAT(healed, ElementsAre(victim));
  EXPECT_EQ(second.stats.chunks_uploaded, 1u);
  EXPECT_THAT(Damage(), IsEmpty());
  ExpectRestores(second, "second.img", FileSha(image));
}

TEST_F(DamageTest, ImageChangedBeforeTheFinalHealFailsTheBackup) {
  const auto image = MakeMixedImage("mixed.img");
  const repo::Manifest first = BackupOrDie(image);
  const std::size_t index = NthDataChunk(first, 1);
  const repo::ChunkId victim = first.chunks[index].id;
  std::atomic<int> lists{0};
  faults_->SetRule([&](StoreOp op, std::string_view prefix) -> std::optional<Error> {
    if (op == StoreOp::kList && prefix == repo::kDamagedChunksPrefix && lists.fetch_add(1) == 1) {
      EXPECT_TRUE(WriteDamageRecord(*direct_, RecordOf(victim, DamageProblem::kMissing)));
      testutil::PatchFile(image, first.ChunkOffset(index) + 10, "changed");
    }
    return std::nullopt;
  });
  auto second = Backup(image);
  faults_->Clear();
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().kind(), ErrorKind::kIo);
  EXPECT_THAT(second.error().message(), HasSubstr("changed"));
  EXPECT_EQ(StoredManifests(), 1u) << "nothing committed";
  EXPECT_EQ(Damage().size(), 1u) << "the record stays: nothing healed it";
}

TEST_F(DamageTest, BackupFailsWhenTheRecordsCannotBeListed) {
  const auto image = MakeMixedImage("mixed.img");
  BackupOrDie(image);
  faults_->FailMatching(StoreOp::kList, std::string(repo::kDamagedChunksPrefix),
                        ErrorKind::kTransient);
  auto second = Backup(image);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().kind(), ErrorKind::kTransient);
  faults_->Clear();
  EXPECT_EQ(StoredManifests(), 1u);
}

TEST_F(DamageTest, DamagedBackupsNameEveryOffsetAndEveryVolume) {
  // One chunk, `shared`, at two offsets of vol-1's image and one of vol-2's;
  // vol-3's image does not hold it.
  const std::string shared = testutil::RandomData(kChunk, 31);
  const auto a = MakeImage("a.img", 6 * kChunk, {{kChunk, kChunk, Fill::kText}}, 1);
  testutil::PatchFile(a, 0, shared);
  testutil::PatchFile(a, 4 * kChunk, shared);
  const auto b = MakeImage("b.img", 4 * kChunk, {{0, kChunk, Fill::kRandom}}, 2);
  testutil::PatchFile(b, 2 * kChunk, shared);
  const auto c = MakeImage("c.img", 3 * kChunk, {{0, 3 * kChunk, Fill::kRandom}}, 3);
  const repo::Manifest ma = BackupOrDie(a, "vol-1");
  const repo::Manifest mb = BackupOrDie(b, "vol-2");
  const repo::Manifest mc = BackupOrDie(c, "vol-3");
  const repo::ChunkId id = ma.chunks[0].id;
  ASSERT_EQ(mb.chunks[2].id, id);

  const int gets = faults_->calls(StoreOp::kGet);
  EXPECT_THAT(Damaged(), IsEmpty());
  EXPECT_EQ(faults_->calls(StoreOp::kGet), gets) << "no record: no manifest is read";

  DeleteObject(repo::ChunkKey(id));
  VerifyOptions o;
  ASSERT_TRUE(VerifyBackup(repository(), mb, o));
  const auto found = Damaged();
  ASSERT_EQ(found.size(), 2u);
  EXPECT_EQ(found[0].volume_id, "vol-1");
  EXPECT_EQ(found[0].backup_id, ma.backup_id);
  ASSERT_EQ(found[0].chunks.size(), 1u);
  EXPECT_EQ(found[0].chunks[0].chunk_id_hex, crypto::DigestHex(id));
  EXPECT_EQ(found[0].chunks[0].problem, DamageProblem::kMissing);
  EXPECT_THAT(found[0].chunks[0].offsets, ElementsAre(0u, 4 * kChunk));
  EXPECT_EQ(found[1].volume_id, "vol-2");
  EXPECT_EQ(found[1].backup_id, mb.backup_id);
  ASSERT_EQ(found[1].chunks.size(), 1u);
  EXPECT_THAT(found[1].chunks[0].offsets, ElementsAre(2 * kChunk));

  const auto only_vol2 = Damaged("vol-2");
  ASSERT_EQ(only_vol2.size(), 1u);
  EXPECT_EQ(only_vol2[0].backup_id, mb.backup_id);
  EXPECT_THAT(Damaged("vol-3"), IsEmpty());

  for (const BackupInfo& info : List()) {
    if (info.volume_id == "vol-3") {
      EXPECT_FALSE(info.damaged());
    } else {
      ASSERT_TRUE(info.damaged()) << info.volume_id;
      EXPECT_EQ(info.damaged_chunks[0].offsets.size(), info.volume_id == "vol-1" ? 2u : 1u);
    }
  }

  // A backup of vol-2 heals the chunk for vol-1's backup too.
  std::vector<repo::ChunkId> healed;
  BackupHealing(b, healed, "vol-2");
  EXPECT_THAT(healed, ElementsAre(id));
  EXPECT_THAT(Damaged(), IsEmpty());
  ExpectRestores(ma, "a.img", FileSha(a));
  ExpectRestores(mc, "c.img", FileSha(c));
}

TEST_F(DamageTest, RecordDocumentRoundTripAndUnreadableDocuments) {
  repo::ChunkId id{};
  id[0] = 0xab;
  const DamageRecord record = RecordOf(id, DamageProblem::kMissing);
  const std::string document = EncodeDamageRecord(record);
  EXPECT_THAT(document, HasSubstr("\"problem\":\"missing\""));
  auto decoded = DecodeDamageRecord(document, id);
  ASSERT_TRUE(decoded) << decoded.error().message();
  EXPECT_EQ(decoded->chunk_id, id);
  EXPECT_EQ(decoded->problem, DamageProblem::kMissing);
  EXPECT_EQ(decoded->detected_unix_ms, record.detected_unix_ms);
  EXPECT_EQ(decoded->message, record.message);
  EXPECT_EQ(decoded->volume_id, record.volume_id);
  EXPECT_EQ(decoded->backup_id, record.backup_id);

  repo::ChunkId other = id;
  other[1] = 1;
  for (const std::string& bad :
       {std::string("not json"), std::string("[]"), std::string(R"({"problem":"missing"})"),
        EncodeDamageRecord(RecordOf(other, DamageProblem::kMissing))}) {
    auto refused = DecodeDamageRecord(bad, id);
    ASSERT_FALSE(refused) << bad;
    EXPECT_EQ(refused.error().kind(), ErrorKind::kCorruption);
  }

  // An unreadable document still marks its chunk: distrusting a sound chunk
  // costs one upload, trusting a damaged one a backup.
  ASSERT_TRUE(local_->Put(repo::DamagedChunkKey(id), "garbage"));
  const DamageMap damage = Damage();
  ASSERT_EQ(damage.size(), 1u);
  EXPECT_EQ(damage.begin()->first, id);
  EXPECT_EQ(damage.begin()->second.problem, DamageProblem::kCorrupt);
  // Other objects under the prefix are ignored.
  ASSERT_TRUE(local_->Put(std::string(repo::kDamagedChunksPrefix) + "README", "x"));
  EXPECT_EQ(Damage().size(), 1u);
  ASSERT_TRUE(ClearDamage(repository(), id));
  ASSERT_TRUE(ClearDamage(repository(), id)) << "idempotent";
  EXPECT_THAT(Damage(), IsEmpty());
}

}  // namespace
}  // namespace kindling::engine
