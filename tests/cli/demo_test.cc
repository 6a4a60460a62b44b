// `kindling demo` end to end on a small image.
#include "cli_harness.h"

namespace kindling::clitest {
namespace {

TEST(CliDemoTest, SmallDemoIsBitIdentical) {
  testutil::TempDir dir;
  const fs::path work = dir.path() / "demo";
  const auto result = RunKindling({"demo", "--dir", work.string(), "--size-mib", "48",
                                   "--chunk-size", "1MiB", "--seed", "5", "--json", "--quiet"});
  ASSERT_EQ(result.exit_code, 0) << result.Describe();
  const auto report = result.Json();
  ASSERT_TRUE(report.is_object()) << result.Describe();
  EXPECT_EQ(report["bit_identical"], true);
  EXPECT_EQ(report["verify_ok"], true);
  EXPECT_EQ(report["original_sha256"], report["restored_sha256"]);
  ASSERT_EQ(report["backups"].size(), 2u);
  const auto& full = report["backups"][0];
  const auto& incremental = report["backups"][1];
  EXPECT_EQ(full["chunks_total"], 48);
  // ~2% of 48 chunks is one chunk; the incremental uploads just that.
  EXPECT_EQ(incremental["chunks_uploaded"], report["change"]["chunks_touched"]);
  EXPECT_LT(incremental["bytes_uploaded"].get<std::uint64_t>(),
            full["bytes_uploaded"].get<std::uint64_t>() / 4);
  EXPECT_TRUE(fs::exists(work / "restored.img"));
  EXPECT_TRUE(fs::exists(work / "store.key"));
  EXPECT_EQ(FileSha256(work / "restored.img"), FileSha256(work / "volume.img"));
}

TEST(CliDemoTest, HumanOutputSaysBitIdentical) {
  testutil::TempDir dir;
  const auto result = RunKindling({"demo", "--dir", (dir.path() / "d").string(), "--size-mib", "8",
                                   "--chunk-size", "256K", "--quiet"});
  ASSERT_EQ(result.exit_code, 0) << result.Describe();
  EXPECT_NE(result.out.find("bit-identical: yes"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("incremental"), std::string::npos) << result.out;
}

TEST(CliDemoTest, RefusesNonEmptyDirectory) {
  testutil::TempDir dir;
  WriteWhole(dir.path() / "something", "x");
  const auto result = RunKindling({"demo", "--dir", dir.path().string(), "--size-mib", "8"});
  EXPECT_EQ(result.exit_code, 2) << result.Describe();
}

}  // namespace
}  // namespace kindling::clitest
