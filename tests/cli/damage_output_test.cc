// How `backup list` shows damaged backups: the JSON fields and the offsets
// line of the human table.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "cli/output.h"

namespace kindling::cli {
namespace {

TEST(CliDamageOutputTest, FormatOffsetsShowsTheFirstFewAndACount) {
  EXPECT_EQ(FormatOffsets({}), "");
  EXPECT_EQ(FormatOffsets({65536}), "65536");
  EXPECT_EQ(FormatOffsets({0, 65536, 131072}), "0, 65536, 131072");
  EXPECT_EQ(FormatOffsets({0, 1, 2, 3, 4}), "0, 1, 2 and 2 more");
  EXPECT_EQ(FormatOffsets({0, 1, 2}, 1), "0 and 2 more");
}

TEST(CliDamageOutputTest, BackupInfoJsonCarriesStatusAndDamagedChunks) {
  engine::BackupInfo info;
  info.volume_id = "vol-1";
  info.backup_id = "b1";
  info.chunk_size = 65536;
  nlohmann::json ok = BackupInfoJson(info);
  EXPECT_EQ(ok["status"], "ok");
  EXPECT_EQ(ok["damaged_chunks"], nlohmann::json::array());

  info.damaged_chunks.push_back(
      engine::DamagedChunkUse{std::string(64, 'a'), engine::DamageProblem::kMissing, {0, 131072}});
  nlohmann::json damaged = BackupInfoJson(info);
  EXPECT_EQ(damaged["status"], "damaged");
  ASSERT_EQ(damaged["damaged_chunks"].size(), 1u);
  EXPECT_EQ(damaged["damaged_chunks"][0]["chunk_id"], std::string(64, 'a'));
  EXPECT_EQ(damaged["damaged_chunks"][0]["problem"], "missing");
  EXPECT_EQ(damaged["damaged_chunks"][0]["offsets"], nlohmann::json::array({0, 131072}));
}

}  // namespace
}  // namespace kindling::cli
