// End-to-end: store init, backup create/list/restore/verify through the
// binary, with bit-identical restores of edge-case images and the dedup
// figures of incremental backups.
#include <set>

#include "cli_harness.h"

namespace kindling::clitest {
namespace {

constexpr std::uint64_t kChunk = 65536;

class CliRoundTripTest : public CliTest {
 protected:
  void SetUp() override { Init(std::to_string(kChunk)); }
};

TEST_F(CliRoundTripTest, InitCreateListRestoreVerify) {
  const fs::path image = Path("volume.img");
  MakeSparse(image, 3 * kChunk + 100);
  WriteAt(image, 0, RandomBytes(kChunk + 10, 1));
  WriteAt(image, 2 * kChunk + 50, RandomBytes(kChunk + 50, 2));

  const auto created = Create("vol-1", image, {"--backup-id", "first"});
  EXPECT_EQ(created["backup_id"], "first");
  EXPECT_EQ(created["volume_id"], "vol-1");
  EXPECT_EQ(created["image_sha256"], Digest(image));
  EXPECT_EQ(created["image_size"], 3 * kChunk + 100);
  EXPECT_EQ(created["chunks_total"], 4);
  EXPECT_EQ(created["chunks_data"].get<int>() + created["chunks_hole"].get<int>(), 4);
  EXPECT_EQ(created["chunks_uploaded"], created["chunks_data"]);
  EXPECT_GT(created["bytes_uploaded"].get<std::uint64_t>(), 0u);
  EXPECT_GT(created["bytes_read"].get<std::uint64_t>(), 0u);
  EXPECT_TRUE(created.contains("duration_ms"));

  const auto listed = List();
  ASSERT_EQ(listed["backups"].size(), 1u);
  EXPECT_EQ(listed["backups"][0]["backup_id"], "first");
  EXPECT_EQ(listed["backups"][0]["volume_id"], "vol-1");
  EXPECT_EQ(listed["backups"][0]["image_sha256"], created["image_sha256"]);

  const auto restored = Restore("first", Path("restored.img"));
  EXPECT_EQ(restored["backup_id"], "first");
  EXPECT_EQ(restored["image_sha256"], created["image_sha256"]);
  EXPECT_EQ(restored["destination"], Path("restored.img").string());
  EXPECT_TRUE(restored.contains("bytes_downloaded"));
  EXPECT_EQ(FileSha256(Path("restored.img")), FileSha256(image));

  // An operator checks a restored image against the backup with
  // `kindling image digest` (same chunk size as the backup).
  const RunResult digest = RunKindling({"image", "digest", "--image", Path("restored.img").string(),
                                        "--chunk-size", std::to_string(kChunk), "--json"});
  ASSERT_EQ(digest.exit_code, 0) << digest.Describe();
  EXPECT_EQ(digest.Json()["image_sha256"], created["image_sha256"]);
  const RunResult text = RunKindling(
      {"image", "digest", "--image", image.string(), "--chunk-size", std::to_string(kChunk)});
  EXPECT_EQ(text.out, created["image_sha256"].get<std::string>() + "  " + image.string() + "\n");
  const RunResult missing =
      RunKindling({"image", "digest", "--image", Path("missing.img").string()});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("missing.img"), std::string::npos) << missing.err;

  const auto verified = Verify("first");
  EXPECT_EQ(verified["ok"], true);
  EXPECT_EQ(verified["image_digest_checked"], true);
  EXPECT_EQ(verified["image_digest_matches"], true);
  EXPECT_EQ(verified["chunks_checked"], created["chunks_data"]);
  EXPECT_TRUE(verified["problems"].is_array());

  // Human output works too and names the backup.
  const auto human = Run({"backup", "list"});
  EXPECT_EQ(human.exit_code, 0) << human.Describe();
  EXPECT_NE(human.out.find("first"), std::string::npos);
}

TEST_F(CliRoundTripTest, EdgeSizesRestoreBitIdentical) {
  struct Case {
    std::string name;
    std::uint64_t size;
  };
  const std::vector<Case> cases = {{"empty", 0},
                                   {"one-byte", 1},
                                   {"chunk-minus-1", kChunk - 1},
                                   {"chunk", kChunk},
                                   {"chunk-plus-1", kChunk + 1},
                                   {"random", 5 * kChunk + 12345}};
  std::uint64_t seed = 10;
  for (const auto& c : cases) {
    const fs::path image = Path(c.name + ".img");
    WriteWhole(image, RandomBytes(c.size, seed++));
    ExpectRoundTrip(image, "vol-" + c.name);
  }
}

TEST_F(CliRoundTripTest, AllHolesImageStaysSparse) {
  const fs::path image = Path("holes.img");
  MakeSparse(image, 64 * kChunk + 7);
  const auto created = Create("vol-holes", image);
  EXPECT_EQ(created["chunks_data"], 0);
  EXPECT_EQ(created["chunks_uploaded"], 0);
  EXPECT_EQ(created["bytes_read"], 0);
  ExpectRoundTrip(image, "vol-holes");
  EXPECT_LT(AllocatedBytes(Path("holes.img.restored")), 4 * kChunk);
}

TEST_F(CliRoundTripTest, WrittenZerosAreHolesInTheStore) {
  const fs::path image = Path("zeros.img");
  WriteWhole(image, std::string(16 * kChunk + 3, '\0'));
  const auto created = Create("vol-zeros", image);
  EXPECT_EQ(created["chunks_data"], 0);
  EXPECT_EQ(created["chunks_uploaded"], 0);
  ExpectRoundTrip(image, "vol-zeros");
}

TEST_F(CliRoundTripTest, UnchangedImageUploadsNothing) {
  const fs::path image = Path("volume.img");
  WriteWhole(image, RandomBytes(40 * kChunk, 3));
  const auto first = Create("vol-1", image);
  EXPECT_EQ(first["chunks_uploaded"], 40);
  const auto second = Create("vol-1", image);
  EXPECT_EQ(second["chunks_uploaded"], 0);
  EXPECT_EQ(second["bytes_uploaded"], 0);
  EXPECT_EQ(second["image_sha256"], first["image_sha256"]);
  EXPECT_NE(second["backup_id"], first["backup_id"]);
}

TEST_F(CliRoundTripTest, SecondVolumeWithSameContentUploadsNothing) {
  const fs::path image = Path("volume.img");
  WriteWhole(image, RandomBytes(40 * kChunk, 4));
  Create("vol-a", image);
  const auto other = Create("vol-b", image);
  EXPECT_EQ(other["chunks_uploaded"], 0);
  EXPECT_EQ(List("vol-b")["backups"].size(), 1u);
  EXPECT_EQ(List("vol-a")["backups"].size(), 1u);
  EXPECT_EQ(List()["backups"].size(), 2u);
}

TEST_F(CliRoundTripTest, TwoPercentChangeUploadsTwoPercentOfChunks) {
  constexpr std::uint64_t kChunks = 500;
  const fs::path image = Path("volume.img");
  WriteWhole(image, RandomBytes(kChunks * kChunk, 5));
  const auto first = Create("vol-1", image);
  EXPECT_EQ(first["chunks_uploaded"], kChunks);

  // 2% of the image's chunks get one small random write each.
  std::mt19937_64 rng(TestSeed(6));
  std::set<std::uint64_t> touched;
  while (touched.size() < kChunks / 50) touched.insert(rng() % kChunks);
  for (const std::uint64_t chunk : touched) {
    WriteAt(image, chunk * kChunk + rng() % (kChunk - 512), RandomBytes(512, rng()));
  }
  const auto second = Create("vol-1", image);
  EXPECT_EQ(second["chunks_uploaded"], touched.size());
  const double share =
      second["bytes_uploaded"].get<double>() / first["bytes_uploaded"].get<double>();
  EXPECT_NEAR(share, 0.02, 0.005);
  ExpectRoundTrip(image, "vol-1");
}

TEST_F(CliRoundTripTest, ProgressGoesToStderrAsJsonLines) {
  const fs::path image = Path("volume.img");
  WriteWhole(image, RandomBytes(20 * kChunk, 7));
  const auto result = Run({"backup", "create"}, {"--volume-id", "v", "--image", image.string(),
                                                 "--json", "--progress", "json"});
  ASSERT_EQ(result.exit_code, 0) << result.Describe();
  std::istringstream lines(result.err);
  int progress_lines = 0;
  for (std::string line; std::getline(lines, line);) {
    const auto json = nlohmann::json::parse(line, nullptr, false);
    if (json.is_discarded() || json.value("type", "") != "progress") continue;
    ++progress_lines;
    for (const char* field : {"phase", "bytes_done", "bytes_total", "chunks_done", "chunks_total",
                              "bytes_transferred", "rate_bytes_per_second", "eta_seconds"}) {
      EXPECT_TRUE(json.contains(field)) << field << " in " << line;
    }
  }
  EXPECT_GE(progress_lines, 1) << result.err;
  // stdout holds only the result.
  EXPECT_EQ(std::count(result.out.begin(), result.out.end(), '\n'), 1) << result.out;

  const auto quiet = Run({"backup", "create"},
                         {"--volume-id", "v", "--image", image.string(), "--json", "--quiet"});
  ASSERT_EQ(quiet.exit_code, 0) << quiet.Describe();
  EXPECT_EQ(quiet.err.find("\"progress\""), std::string::npos) << quiet.err;
  const auto none = Run({"backup", "create"},
                        {"--volume-id", "v", "--image", image.string(), "--progress", "none"});
  ASSERT_EQ(none.exit_code, 0) << none.Describe();
  EXPECT_EQ(none.err.find("\"progress\""), std::string::npos) << none.err;
}

TEST_F(CliRoundTripTest, StoreInitIsIdempotent) {
  const auto again = Init();
  EXPECT_EQ(again["initialised"], false);
  EXPECT_EQ(again["key_created"], false);
  EXPECT_EQ(again["chunk_size"], kChunk);
}

TEST(CliBasicsTest, HelpAndVersion) {
  for (const std::vector<std::string>& command :
       std::vector<std::vector<std::string>>{{"--help"},
                                             {"store", "--help"},
                                             {"store", "init", "--help"},
                                             {"backup", "--help"},
                                             {"backup", "create", "--help"},
                                             {"backup", "list", "--help"},
                                             {"backup", "restore", "--help"},
                                             {"backup", "verify", "--help"},
                                             {"demo", "--help"},
                                             {"version", "--help"}}) {
    const auto result = RunKindling(command);
    EXPECT_EQ(result.exit_code, 0) << command.front() << result.Describe();
    EXPECT_NE(result.out.find("Usage"), std::string::npos) << result.Describe();
  }
  const auto version = RunKindling({"version"});
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_EQ(version.out.rfind("kindling ", 0), 0u) << version.out;
  const auto json = RunKindling({"version", "--json"}).Json();
  EXPECT_TRUE(json.contains("version"));
}

}  // namespace
}  // namespace kindling::clitest
