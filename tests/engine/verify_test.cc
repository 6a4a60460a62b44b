#include "engine/verify.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <mutex>

#include "engine/engine_test_base.h"

namespace kindling::engine {
namespace {

using ::testing::HasSubstr;
using testutil::Fill;
using testutil::StoreOp;

class VerifyTest : public EngineTestBase {
 protected:
  Result<VerifyReport> Verify(const repo::Manifest& m, double fraction = 1.0,
                              std::uint64_t seed = 0) {
    VerifyOptions o;
    o.sample_fraction = fraction;
    o.seed = seed;
    return VerifyBackup(repository(), m, o);
  }
  repo::Manifest BackupRandom(std::size_t chunks) {
    const auto image =
        MakeImage("data.img", chunks * kChunk, {{0, chunks * kChunk, Fill::kRandom}});
    return BackupOrDie(image);
  }
};

TEST_F(VerifyTest, HealthyBackupVerifies) {
  const repo::Manifest m = BackupOrDie(MakeMixedImage("mixed.img"));
  const int gets = faults_->calls(StoreOp::kGet);
  auto report = Verify(m);
  ASSERT_TRUE(report) << report.error().message();
  EXPECT_TRUE(report->ok());
  EXPECT_TRUE(report->problems.empty());
  EXPECT_EQ(report->chunks_referenced, DistinctDataChunks(m));
  EXPECT_EQ(report->chunks_checked, report->chunks_referenced);
  EXPECT_EQ(report->bytes_checked, m.stats.bytes_referenced);
  EXPECT_EQ(faults_->calls(StoreOp::kGet) - gets, static_cast<int>(report->chunks_checked));
  EXPECT_TRUE(report->image_digest_checked);
  EXPECT_TRUE(report->image_digest_matches);
}

TEST_F(VerifyTest, ImageDigestThatDoesNotMatchTheChunksFailsVerify) {
  repo::Manifest m = BackupOrDie(MakeMixedImage("mixed.img"));
  m.image_digest[3] ^= 0x40;
  auto report = Verify(m);
  ASSERT_TRUE(report) << report.error().message();
  EXPECT_TRUE(report->problems.empty());
  EXPECT_TRUE(report->image_digest_checked);
  EXPECT_FALSE(report->image_digest_matches);
  EXPECT_FALSE(report->ok());
}

TEST_F(VerifyTest, SampleDoesNotClaimTheImageDigest) {
  const repo::Manifest m = BackupRandom(8);
  auto report = Verify(m, 0.25, 3);
  ASSERT_TRUE(report) << report.error().message();
  EXPECT_TRUE(report->ok());
  EXPECT_FALSE(report->image_digest_checked);
}

TEST_F(VerifyTest, ReportsMissingAndCorruptChunksByIdAndOffset) {
  const repo::Manifest m = BackupRandom(20);
  const std::size_t missing = 3, corrupt = 11, corrupt_tag = 17;
  DeleteObject(repo::ChunkKey(m.chunks[missing].id));
  CorruptObject(repo::ChunkKey(m.chunks[corrupt].id));
  CorruptObject(repo::ChunkKey(m.chunks[corrupt_tag].id), m.chunks[corrupt_tag].stored_size - 1);

  auto report = Verify(m);
  ASSERT_TRUE(report) << report.error().message();
  EXPECT_FALSE(report->ok());
  EXPECT_EQ(report->chunks_checked, 20u) << "verify must not stop at the first problem";
  ASSERT_EQ(report->problems.size(), 3u);
  std::map<std::uint64_t, ChunkProblem> by_offset;
  for (const auto& p : report->problems) by_offset.emplace(p.offset, p);

  auto expect = [&](std::size_t index, ChunkProblem::Kind kind) {
    const std::uint64_t offset = index * std::uint64_t{kChunk};
    ASSERT_TRUE(by_offset.contains(offset)) << "no problem reported at offset " << offset;
    const ChunkProblem& p = by_offset.at(offset);
    EXPECT_EQ(p.kind, kind) << ProblemKindName(p.kind);
    EXPECT_EQ(p.chunk_id_hex, crypto::DigestHex(m.chunks[index].id));
    EXPECT_EQ(p.key, repo::ChunkKey(m.chunks[index].id));
    EXPECT_FALSE(p.message.empty());
  };
  expect(missing, ChunkProblem::Kind::kMissing);
  expect(corrupt, ChunkProblem::Kind::kCorrupt);
  expect(corrupt_tag, ChunkProblem::Kind::kCorrupt);
}

TEST_F(VerifyTest, SharedChunkIsReportedAtItsFirstOffset) {
  const std::string block = testutil::RandomData(kChunk, 9);
  const auto image = MakeImage("repeat.img", 10 * kChunk, {{0, 2 * kChunk, Fill::kText}});
  for (std::uint64_t i : {4, 6, 9}) testutil::PatchFile(image, i * kChunk, block);
  const repo::Manifest m = BackupOrDie(image);
  DeleteObject(repo::ChunkKey(m.chunks[4].id));
  auto report = Verify(m);
  ASSERT_TRUE(report);
  EXPECT_EQ(report->chunks_referenced, 3u);
  ASSERT_EQ(report->problems.size(), 1u);
  EXPECT_EQ(report->problems[0].kind, ChunkProblem::Kind::kMissing);
  EXPECT_EQ(report->problems[0].offset, 4u * kChunk);
}

TEST_F(VerifyTest, StoreErrorIsUnreadable) {
  const repo::Manifest m = BackupRandom(8);
  faults_->FailMatching(StoreOp::kGet, crypto::DigestHex(m.chunks[5].id), ErrorKind::kTransient);
  auto report = Verify(m);
  ASSERT_TRUE(report) << report.error().message();
  ASSERT_EQ(report->problems.size(), 1u);
  EXPECT_EQ(report->problems[0].kind, ChunkProblem::Kind::kUnreadable);
  EXPECT_EQ(report->problems[0].offset, 5u * kChunk);
  EXPECT_THAT(report->problems[0].message, HasSubstr("injected"));
}

TEST_F(VerifyTest, OtherStoreKeysReportEveryChunkCorrupt) {
  const repo::Manifest m = BackupRandom(6);
  auto other_store = storage::LocalStore::Open(dir_ / "other-store");
  ASSERT_TRUE(other_store);
  auto other = Repository::Init(**other_store, key_, kChunk);
  ASSERT_TRUE(other);
  const auto stored = *local_->List("chunks/");
  for (const auto& object : stored)
    ASSERT_TRUE((*other_store)->Put(object.key, *local_->Get(object.key)));
  auto report = VerifyBackup(*other, m, VerifyOptions{});
  ASSERT_TRUE(report) << report.error().message();
  ASSERT_EQ(report->problems.size(), 6u);
  for (const auto& p : report->problems) EXPECT_EQ(p.kind, ChunkProblem::Kind::kCorrupt);
}

TEST_F(VerifyTest, SampleFractionChecksAboutThatShare) {
  const repo::Manifest m = BackupRandom(200);
  for (double fraction : {0.01, 0.1, 0.25, 0.5, 0.9}) {
    const int gets = faults_->calls(StoreOp::kGet);
    auto report = Verify(m, fraction, 42);
    ASSERT_TRUE(report) << report.error().message();
    EXPECT_EQ(report->chunks_referenced, 200u);
    const double expected = fraction * 200;
    EXPECT_GE(report->chunks_checked, std::max(1.0, std::floor(expected * 0.7))) << fraction;
    EXPECT_LE(report->chunks_checked, std::ceil(expected * 1.3) + 1) << fraction;
    EXPECT_EQ(faults_->calls(StoreOp::kGet) - gets, static_cast<int>(report->chunks_checked))
        << "only sampled chunks are fetched";
  }
}

TEST_F(VerifyTest, SampleWithSeedIsReproducibleAndFindsDamageInSample) {
  const repo::Manifest m = BackupRandom(100);
  // Damage every chunk: whatever the sample, each checked chunk is reported,
  // so the problems name exactly the sampled chunks.
  const auto stored = *local_->List("chunks/");
  for (const auto& object : stored) CorruptObject(object.key);
  auto a = Verify(m, 0.3, 7);
  auto b = Verify(m, 0.3, 7);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->problems.size(), a->chunks_checked);
  ASSERT_EQ(a->problems.size(), b->problems.size());
  for (std::size_t i = 0; i < a->problems.size(); ++i)
    EXPECT_EQ(a->problems[i].chunk_id_hex, b->problems[i].chunk_id_hex);
  auto c = Verify(m, 0.3, 8);
  ASSERT_TRUE(c);
  bool differs = c->problems.size() != a->problems.size();
  for (std::size_t i = 0; !differs && i < a->problems.size(); ++i)
    differs = a->problems[i].chunk_id_hex != c->problems[i].chunk_id_hex;
  EXPECT_TRUE(differs) << "different seeds should sample different chunks";
}

TEST_F(VerifyTest, InvalidSampleFractionIsInvalidArgument) {
  const repo::Manifest m = BackupRandom(2);
  for (double fraction : {0.0, -0.5, 1.0000001, 2.0, std::nan("")}) {
    auto report = Verify(m, fraction);
    ASSERT_FALSE(report) << fraction;
    EXPECT_EQ(report.error().kind(), ErrorKind::kInvalidArgument) << fraction;
  }
}

TEST_F(VerifyTest, EmptyAndAllHoleBackupsVerify) {
  for (std::uint64_t size : {std::uint64_t{0}, std::uint64_t{50} * kChunk}) {
    const repo::Manifest m = BackupOrDie(MakeImage("img-" + std::to_string(size), size, {}));
    auto report = Verify(m);
    ASSERT_TRUE(report) << report.error().message();
    EXPECT_TRUE(report->ok());
    EXPECT_EQ(report->chunks_referenced, 0u);
    EXPECT_EQ(report->chunks_checked, 0u);
  }
}

TEST_F(VerifyTest, CancelIsCancelled) {
  const repo::Manifest m = BackupRandom(20);
  CancelFlag cancel{true};
  VerifyOptions o;
  o.cancel = &cancel;
  auto report = VerifyBackup(repository(), m, o);
  ASSERT_FALSE(report);
  EXPECT_EQ(report.error().kind(), ErrorKind::kCancelled);
}

TEST_F(VerifyTest, ProgressReachesTotal) {
  const repo::Manifest m = BackupOrDie(MakeMixedImage("mixed.img"));
  std::mutex mu;
  std::vector<Progress> seen;
  VerifyOptions o;
  o.progress = [&](const Progress& p) {
    std::lock_guard lock(mu);
    seen.push_back(p);
  };
  auto report = VerifyBackup(repository(), m, o);
  ASSERT_TRUE(report);
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back().phase, "verify");
  EXPECT_EQ(seen.back().chunks_done, seen.back().chunks_total);
  EXPECT_EQ(seen.back().bytes_transferred, report->bytes_checked);
  EXPECT_EQ(seen.back().bytes_done, seen.back().bytes_total)
      << "progress.h: verify counts the bytes of the chunks it checks; a full verify should end "
         "at 100%";
}

}  // namespace
}  // namespace kindling::engine
