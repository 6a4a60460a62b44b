// The end-to-end tests against an S3-compatible server (s3rver, which checks
// SigV4), with and without a proxy that fails 20% of requests.
//
// Tests named *Slow are left out of the sanitizer run (scripts/test.sh).
#include <map>
#include <memory>

#include "cli_harness.h"
#include "testutil/require.h"
#include "testutil/s3_test_server.h"

namespace kindling::clitest {
namespace {

constexpr std::uint64_t kChunk = 65536;
constexpr char kSecret[] = "sEcReT-never-printed-4711";

class S3CliTest : public CliTest {
 protected:
  void StartServer(double fault_rate) {
    KINDLING_REQUIRE_S3_TEST_SERVER();
    testutil::S3TestServerOptions options;
    options.secret_access_key = kSecret;
    options.fault_rate = fault_rate;
    try {
      server_ = std::make_unique<testutil::S3TestServer>(options);
    } catch (const std::exception& e) {
      FAIL() << "S3 test server: " << e.what();
    }
    store_args_ = {"--store",       "s3://" + options.bucket + "/kindling-test",
                   "--key-file",    key_file_.string(),
                   "--s3-endpoint", server_->endpoint()};
    // Credentials come from the environment; the bogus endpoint there shows
    // that --s3-endpoint wins over AWS_ENDPOINT_URL.
    env_ = {{"AWS_ACCESS_KEY_ID", options.access_key_id},
            {"AWS_SECRET_ACCESS_KEY", kSecret},
            {"AWS_REGION", "us-east-1"},
            {"AWS_ENDPOINT_URL", "http://127.0.0.1:9"},
            {"AWS_ENDPOINT_URL_S3", ""},
            {"KINDLING_LOG_LEVEL", "debug"}};
  }

  void ExpectNoSecret(const RunResult& result) {
    EXPECT_EQ(result.out.find(kSecret), std::string::npos) << "secret on stdout";
    EXPECT_EQ(result.err.find(kSecret), std::string::npos) << "secret on stderr";
  }

  std::unique_ptr<testutil::S3TestServer> server_;
};

class CliS3Test : public S3CliTest {
 protected:
  void SetUp() override {
    StartServer(0.0);
    if (IsSkipped() || HasFatalFailure()) return;
    Init(std::to_string(kChunk));
  }
};

TEST_F(CliS3Test, InitCreateListRestoreVerify) {
  const fs::path image = Path("volume.img");
  MakeSparse(image, 40 * kChunk + 17);
  WriteAt(image, 0, RandomBytes(10 * kChunk, 31));
  WriteAt(image, 25 * kChunk + 3, RandomBytes(12 * kChunk, 32));
  const std::string sha = FileSha256(image);
  const std::string digest = Digest(image);

  const auto create = Run({"backup", "create"}, {"--volume-id", "vol-s3", "--image", image.string(),
                                                 "--json", "--quiet"});
  ExpectNoSecret(create);
  ASSERT_EQ(create.exit_code, 0) << create.Describe();
  const auto created = create.Json();
  EXPECT_EQ(created["image_sha256"], digest);
  EXPECT_GT(created["chunks_uploaded"].get<int>(), 0);
  EXPECT_EQ(created["chunks_uploaded"], created["chunks_data"]);

  const auto listed = List("vol-s3");
  ASSERT_EQ(listed["backups"].size(), 1u);
  EXPECT_EQ(listed["backups"][0]["backup_id"], created["backup_id"]);

  const auto restore = Run({"backup", "restore"}, {"--backup", created["backup_id"], "--to",
                                                   Path("restored.img").string(), "--json"});
  ExpectNoSecret(restore);
  ASSERT_EQ(restore.exit_code, 0) << restore.Describe();
  EXPECT_EQ(restore.Json()["image_sha256"], digest);
  EXPECT_EQ(FileSha256(Path("restored.img")), sha);

  EXPECT_EQ(Verify(created["backup_id"])["ok"], true);
  const auto again = Create("vol-s3", image);
  EXPECT_EQ(again["chunks_uploaded"], 0);

  // The endpoint may come from the environment alone.
  store_args_.resize(4);
  for (auto& [name, value] : env_) {
    if (name == "AWS_ENDPOINT_URL") value = server_->endpoint();
  }
  EXPECT_EQ(List("vol-s3")["backups"].size(), 2u);
}

// The edge sizes of the local round trip, on the S3 backend.
TEST_F(CliS3Test, EdgeSizesHolesAndZerosRestoreBitIdentical) {
  std::uint64_t seed = 50;
  for (const std::uint64_t size :
       {std::uint64_t{0}, std::uint64_t{1}, kChunk - 1, kChunk, kChunk + 1, 5 * kChunk + 12345}) {
    const fs::path image = Path("size-" + std::to_string(size) + ".img");
    WriteWhole(image, RandomBytes(size, seed++));
    ExpectRoundTrip(image, "vol-size-" + std::to_string(size));
  }
  const fs::path holes = Path("holes.img");
  MakeSparse(holes, 9 * kChunk + 5);
  ExpectRoundTrip(holes, "vol-holes");
  const fs::path zeros = Path("zeros.img");
  WriteWhole(zeros, std::string(7 * kChunk + 3, '\0'));
  ExpectRoundTrip(zeros, "vol-zeros");
}

TEST_F(CliS3Test, MissingCredentialsAreAUsageError) {
  env_ = {{"AWS_ACCESS_KEY_ID", ""}, {"AWS_SECRET_ACCESS_KEY", ""}};
  const auto result = Run({"backup", "list"});
  EXPECT_EQ(result.exit_code, 2) << result.Describe();
  EXPECT_NE(result.err.find("AWS_SECRET_ACCESS_KEY"), std::string::npos) << result.Describe();
}

TEST_F(CliS3Test, WrongSecretFailsWithoutPrintingIt) {
  for (auto& [name, value] : env_) {
    if (name == "AWS_SECRET_ACCESS_KEY") value = "wrong-secret-also-private";
  }
  const auto result = Run({"backup", "list"});
  EXPECT_NE(result.exit_code, 0) << result.Describe();
  EXPECT_EQ(result.err.find("wrong-secret-also-private"), std::string::npos) << result.err;
}

TEST_F(CliS3Test, SigkillDuringBackupNeverCorruptsSlow) {
  constexpr std::uint64_t kSize = 16ull << 20;
  const fs::path image = Path("volume.img");
  WriteWhole(image, RandomBytes(kSize, 41));
  std::mt19937_64 rng(TestSeed(42));
  std::map<std::string, std::string> sha_by_id;
  sha_by_id["full"] = FileSha256(image);
  const auto start = std::chrono::steady_clock::now();
  Create("vol", image, {"--backup-id", "full"});
  const auto full_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::steady_clock::now() - start)
                           .count();
  int killed = 0;
  // Ten rounds, and more (up to 30) until three were killed mid-way: on a
  // loaded machine a backup may finish before its kill.
  for (int i = 0; i < 30 && (i < 10 || killed < 3); ++i) {
    // Rewrite a quarter of the image so every round has uploads to interrupt.
    WriteAt(image, (rng() % 4) * (kSize / 4), RandomBytes(kSize / 4, rng()));
    const std::string id = "kill-" + std::to_string(i);
    sha_by_id[id] = FileSha256(image);
    auto child = Start({"backup", "create"}, {"--volume-id", "vol", "--image", image.string(),
                                              "--backup-id", id, "--quiet"});
    std::this_thread::sleep_for(std::chrono::milliseconds(
        rng() % static_cast<std::uint64_t>(std::max<long>(1, full_ms / (i < 10 ? 2 : 8)))));
    child->Signal(SIGKILL);
    const auto result = child->Wait();
    if (result.term_signal == SIGKILL) {
      ++killed;
    } else {
      ASSERT_EQ(result.exit_code, 0) << result.Describe();
    }
  }
  EXPECT_GE(killed, 3);
  for (const auto& backup : List()["backups"]) {
    const std::string id = backup["backup_id"];
    ASSERT_TRUE(sha_by_id.count(id)) << id;
    const fs::path out = Path("restored-" + id + ".img");
    Restore(id, out);
    EXPECT_EQ(FileSha256(out), sha_by_id[id]) << id;
    fs::remove(out);
  }
  const auto last = Create("vol", image, {"--backup-id", "after"});
  EXPECT_EQ(last["image_sha256"], Digest(image));
}

class CliS3FaultTest : public S3CliTest {
 protected:
  void SetUp() override {
    StartServer(0.2);
    if (IsSkipped() || HasFatalFailure()) return;
    Init(std::to_string(kChunk));
  }
};

TEST_F(CliS3FaultTest, BackupRestoreVerifySurviveTwentyPercentFaults) {
  const fs::path image = Path("volume.img");
  MakeSparse(image, 64 * kChunk);
  WriteAt(image, 0, RandomBytes(24 * kChunk, 51));
  WriteAt(image, 40 * kChunk, RandomBytes(20 * kChunk + 5, 52));
  const std::string sha = FileSha256(image);
  const std::string digest = Digest(image);

  const auto created = Create("vol-faulty", image);
  EXPECT_EQ(created["image_sha256"], digest);
  const auto restored = Restore(created["backup_id"], Path("restored.img"));
  EXPECT_EQ(restored["image_sha256"], digest);
  EXPECT_EQ(FileSha256(Path("restored.img")), sha);
  EXPECT_EQ(Verify(created["backup_id"])["ok"], true);
  EXPECT_EQ(List()["backups"].size(), 1u);
  EXPECT_GT(server_->faults_injected(), 0);
}

}  // namespace
}  // namespace kindling::clitest
