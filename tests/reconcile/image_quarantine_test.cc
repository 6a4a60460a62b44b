#include "reconcile/image_quarantine.h"

#include <gtest/gtest.h>

#include "common/ids.h"
#include "testutil/sparse_image.h"
#include "testutil/temp_dir.h"

namespace kindling::reconcile {
namespace {

namespace fs = std::filesystem;
using SysClock = std::chrono::system_clock;

class ImageQuarantineTest : public ::testing::Test {
 protected:
  fs::path MakeImage(const std::string& name, std::uint64_t seed) {
    const fs::path image = dir_ / name;
    testutil::MakeSparseFile(image, 64u << 20, {{.offset = 1u << 20, .length = 1u << 20}}, seed);
    return image;
  }

  testutil::TempDir dir_;
  ImageQuarantine quarantine_{dir_.path()};
  const std::string volume_id_ = NewUuidV4();
};

TEST_F(ImageQuarantineTest, TakeMovesTheImageIntoAnEntryThatDescribesIt) {
  const fs::path image = MakeImage("v.img", 1);
  const std::string content = testutil::ReadFileOrDie(image);
  const auto purge = SysClock::time_point(std::chrono::seconds(2'000'000'000));
  auto taken = quarantine_.Take(image, volume_id_, db::QuarantineReason::kReplaced, "why", purge);
  ASSERT_TRUE(taken) << taken.error().message();
  EXPECT_FALSE(fs::exists(image));
  EXPECT_EQ(taken->image, quarantine_.dir() / taken->id / "image.img");
  EXPECT_EQ(testutil::ReadFileOrDie(taken->image), content);
  EXPECT_EQ(taken->volume_id, volume_id_);
  EXPECT_EQ(taken->size_bytes, 64u << 20);
  EXPECT_GE(taken->allocated_bytes, 1u << 20);
  EXPECT_LT(taken->allocated_bytes, 64u << 20) << "still sparse";
  EXPECT_EQ(taken->purge_after, purge);
  EXPECT_FALSE(taken->adopted_into.has_value());

  auto got = quarantine_.Get(taken->id);
  ASSERT_TRUE(got) << got.error().message();
  EXPECT_EQ(got->reason, db::QuarantineReason::kReplaced);
  EXPECT_EQ(got->detail, "why");
  EXPECT_EQ(got->purge_after, purge);
  EXPECT_EQ(got->size_bytes, taken->size_bytes);
  EXPECT_EQ(std::chrono::floor<std::chrono::milliseconds>(got->mtime),
            std::chrono::floor<std::chrono::milliseconds>(taken->mtime));

  ASSERT_TRUE(quarantine_.SetDigest(taken->id, std::string(64, 'e'), 1u << 20));
  got = quarantine_.Get(taken->id);
  EXPECT_EQ(got->image_sha256, std::string(64, 'e'));
  EXPECT_EQ(got->digest_chunk_size, 1u << 20);

  auto held = quarantine_.Take(MakeImage("w.img", 2), volume_id_, db::QuarantineReason::kConflict,
                               "", std::nullopt);
  ASSERT_TRUE(held);
  auto listed = quarantine_.List();
  ASSERT_TRUE(listed) << listed.error().message();
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].id, taken->id);
  EXPECT_EQ((*listed)[1].id, held->id);
  EXPECT_FALSE((*listed)[1].purge_after.has_value());
}

TEST_F(ImageQuarantineTest, TakeOfAMissingImageLeavesNoEntry) {
  auto taken = quarantine_.Take(dir_ / "none.img", volume_id_, db::QuarantineReason::kDeleted, "",
                                std::nullopt);
  ASSERT_FALSE(taken);
  EXPECT_TRUE(taken.error().is_not_found());
  auto listed = quarantine_.List();
  ASSERT_TRUE(listed);
  EXPECT_TRUE(listed->empty());
  EXPECT_TRUE(!fs::exists(quarantine_.dir()) || fs::is_empty(quarantine_.dir()));
  EXPECT_TRUE(quarantine_.Get(NewUuidV4()).error().is_not_found());
}

TEST_F(ImageQuarantineTest, GiveBackMovesTheImageOutOnceAndOnlyToOneVolume) {
  const fs::path image = MakeImage("v.img", 1);
  const std::string content = testutil::ReadFileOrDie(image);
  auto taken =
      quarantine_.Take(image, volume_id_, db::QuarantineReason::kConflict, "", std::nullopt);
  ASSERT_TRUE(taken);

  // A destination that exists is never replaced.
  const fs::path occupied = MakeImage("occupied.img", 3);
  EXPECT_FALSE(quarantine_.GiveBack(taken->id, volume_id_, occupied));
  EXPECT_EQ(testutil::ReadFileOrDie(taken->image), content);

  const fs::path destination = dir_ / "volumes" / "back.img";
  fs::create_directories(destination.parent_path());
  ASSERT_TRUE(quarantine_.GiveBack(taken->id, volume_id_, destination));
  EXPECT_EQ(testutil::ReadFileOrDie(destination), content);
  EXPECT_FALSE(fs::exists(taken->image));
  // Repeating it (a retried adoption) succeeds; another volume cannot have it.
  EXPECT_TRUE(quarantine_.GiveBack(taken->id, volume_id_, destination));
  EXPECT_FALSE(quarantine_.GiveBack(taken->id, NewUuidV4(), dir_ / "volumes" / "other.img"));
  // The given-back entry is still listed (its row is settled first).
  auto listed = quarantine_.List();
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].adopted_into, volume_id_);

  ASSERT_TRUE(quarantine_.Purge(taken->id));
  EXPECT_FALSE(fs::exists(quarantine_.dir() / taken->id));
  EXPECT_TRUE(fs::exists(destination));
  EXPECT_TRUE(quarantine_.Purge(taken->id)) << "idempotent";
}

// Between Take's entry.json and its rename of the image, the entry has no
// image: a List meanwhile (the reconciler's, beside a restore's Take) must
// leave it alone, or it could delete the image the rename moves in.
TEST_F(ImageQuarantineTest, ListLeavesATakeInProgressAloneAndStartRemovesInterruptedOnes) {
  const fs::path image = MakeImage("v.img", 1);
  const std::string content = testutil::ReadFileOrDie(image);
  auto taken =
      quarantine_.Take(image, volume_id_, db::QuarantineReason::kReplaced, "", std::nullopt);
  ASSERT_TRUE(taken);
  // Back to the state just before the rename.
  fs::rename(taken->image, image);
  auto listed = quarantine_.List();
  ASSERT_TRUE(listed);
  EXPECT_TRUE(listed->empty());
  ASSERT_TRUE(fs::exists(quarantine_.dir() / taken->id / "entry.json"));
  // The rename lands.
  fs::rename(image, taken->image);
  listed = quarantine_.List();
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ(testutil::ReadFileOrDie(taken->image), content);

  // What a killed process leaves: an entry whose image never moved in, an
  // empty entry directory, and (kept) an unreadable entry with an image and
  // an adopted entry.
  auto interrupted = quarantine_.Take(MakeImage("w.img", 2), volume_id_,
                                      db::QuarantineReason::kConflict, "", std::nullopt);
  ASSERT_TRUE(interrupted);
  fs::rename(interrupted->image, dir_ / "w.img");
  const fs::path empty_entry = quarantine_.dir() / NewUuidV4();
  fs::create_directory(empty_entry);
  const fs::path unreadable = quarantine_.dir() / NewUuidV4();
  fs::create_directory(unreadable);
  testutil::WriteFile(unreadable / "entry.json", "{not json");
  testutil::WriteFile(unreadable / "image.img", "data");
  auto adopted = quarantine_.Take(MakeImage("x.img", 3), volume_id_,
                                  db::QuarantineReason::kConflict, "", std::nullopt);
  ASSERT_TRUE(adopted);
  ASSERT_TRUE(quarantine_.GiveBack(adopted->id, volume_id_, dir_ / "adopted.img"));

  quarantine_.RemoveInterruptedTakes();
  EXPECT_FALSE(fs::exists(quarantine_.dir() / interrupted->id));
  EXPECT_FALSE(fs::exists(empty_entry));
  EXPECT_TRUE(fs::exists(unreadable / "image.img"));
  EXPECT_TRUE(fs::exists(quarantine_.dir() / adopted->id / "entry.json"));
  EXPECT_TRUE(fs::exists(taken->image));
  listed = quarantine_.List();
  ASSERT_TRUE(listed);
  EXPECT_EQ(listed->size(), 2u);  // taken, adopted
}

}  // namespace
}  // namespace kindling::reconcile
