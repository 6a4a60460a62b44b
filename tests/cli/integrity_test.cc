// End-to-end failure paths: wrong key file, tampered chunk and manifest
// objects, refusing to overwrite, and bad command lines. Each checks the exit
// code, the one-line reason on stderr and that nothing was left half-done.
#include "cli_harness.h"

namespace kindling::clitest {
namespace {

constexpr std::uint64_t kChunk = 65536;

// The "kindling: error: ..." line of stderr, or "" when there is none.
std::string ErrorLine(const RunResult& result) {
  const std::string marker = "kindling: error: ";
  const std::size_t at = result.err.rfind(marker);
  if (at == std::string::npos) return "";
  return result.err.substr(at, result.err.find('\n', at) - at);
}

class CliIntegrityTest : public CliTest {
 protected:
  void SetUp() override {
    Init(std::to_string(kChunk));
    image_ = Path("volume.img");
    WriteWhole(image_, RandomBytes(8 * kChunk + 100, 21));
  }
  fs::path image_;
};

TEST_F(CliIntegrityTest, WrongKeyFileExitsFour) {
  const auto created = Create("vol-1", image_);
  // Another store's key file.
  const fs::path other_key = Path("other.key");
  ASSERT_EQ(RunKindling({"store", "init", "--store", "file://" + Path("other").string(),
                         "--key-file", other_key.string()})
                .exit_code,
            0);
  store_args_ = {"--store", "file://" + store_dir_.string(), "--key-file", other_key.string()};
  for (const auto& command : std::vector<std::vector<std::string>>{
           {"backup", "list"},
           {"backup", "create", "--volume-id", "vol-1", "--image", image_.string()},
           {"backup", "restore", "--backup", created["backup_id"], "--to",
            Path("out.img").string()},
           {"backup", "verify", "--backup", created["backup_id"]},
           {"store", "init"}}) {
    const auto result = Run(command);
    EXPECT_EQ(result.exit_code, 4) << result.Describe();
    EXPECT_NE(ErrorLine(result).find("wrong key"), std::string::npos) << result.Describe();
  }
  EXPECT_FALSE(fs::exists(Path("out.img")));
}

TEST_F(CliIntegrityTest, KeyFileThatIsNoKeyIsAUsageError) {
  WriteWhole(Path("junk.key"), "not a key\n");
  store_args_ = {"--store", "file://" + store_dir_.string(), "--key-file",
                 Path("junk.key").string()};
  const auto result = Run({"backup", "list"});
  EXPECT_EQ(result.exit_code, 2) << result.Describe();
  EXPECT_NE(ErrorLine(result).find("junk.key"), std::string::npos) << result.Describe();
}

TEST_F(CliIntegrityTest, TamperedChunkFailsRestoreAndVerifyNamesIt) {
  const auto created = Create("vol-1", image_);
  const auto chunks = StoreObjects(store_dir_, "chunks");
  ASSERT_EQ(chunks.size(), 9u);
  const fs::path victim = chunks[3];
  FlipByte(victim, fs::file_size(victim) / 2);
  const std::string chunk_id = victim.filename().string();
  const std::string key = fs::relative(victim, store_dir_).generic_string();

  const fs::path out = Path("out.img");
  const auto restore = Run({"backup", "restore"},
                           {"--backup", created["backup_id"], "--to", out.string(), "--quiet"});
  EXPECT_EQ(restore.exit_code, 3) << restore.Describe();
  EXPECT_NE(ErrorLine(restore).find(chunk_id), std::string::npos) << restore.Describe();
  EXPECT_FALSE(fs::exists(out));
  EXPECT_TRUE(TempFilesUnder(dir_.path()).empty());

  const auto verify = Verify(created["backup_id"], 3);
  ASSERT_TRUE(verify.is_object());
  EXPECT_EQ(verify["ok"], false);
  ASSERT_EQ(verify["problems"].size(), 1u) << verify.dump();
  const auto& problem = verify["problems"][0];
  EXPECT_EQ(problem["chunk_id"], chunk_id);
  EXPECT_EQ(problem["key"], key);
  EXPECT_EQ(problem["kind"], "corrupt");
  EXPECT_EQ(problem["offset"].get<std::uint64_t>() % kChunk, 0u);
  EXPECT_FALSE(problem["message"].get<std::string>().empty());
  EXPECT_EQ(verify["chunks_checked"], 9);

  // Human verify output names the chunk too.
  const auto human = Run({"backup", "verify"}, {"--backup", created["backup_id"], "--quiet"});
  EXPECT_EQ(human.exit_code, 3);
  EXPECT_NE(human.out.find(chunk_id), std::string::npos) << human.Describe();
}

TEST_F(CliIntegrityTest, MissingChunkIsReportedByVerify) {
  const auto created = Create("vol-1", image_);
  const auto chunks = StoreObjects(store_dir_, "chunks");
  ASSERT_FALSE(chunks.empty());
  fs::remove(chunks[0]);
  const auto verify = Verify(created["backup_id"], 3);
  ASSERT_EQ(verify["problems"].size(), 1u) << verify.dump();
  EXPECT_EQ(verify["problems"][0]["kind"], "missing");
  EXPECT_EQ(verify["problems"][0]["chunk_id"], chunks[0].filename().string());
  const auto restore = Run({"backup", "restore"},
                           {"--backup", created["backup_id"], "--to", Path("out.img").string()});
  EXPECT_NE(restore.exit_code, 0);
  EXPECT_FALSE(fs::exists(Path("out.img")));
}

// A damaged chunk found by verify is recorded in the store: `backup list`
// marks the backup damaged at the chunk's offset, the next backup of the same
// image stores the chunk again (chunks_healed), and then the old and the new
// backup both restore the image byte for byte and list as ok.
class CliIntegrityDamageTest : public CliIntegrityTest {
 protected:
  void ExpectRecordedAndHealed(bool missing) {
    const std::string image_bytes = ReadWholeFile(image_);
    Create("vol-1", image_, {"--backup-id", "b1"});
    const auto chunks = StoreObjects(store_dir_, "chunks");
    ASSERT_EQ(chunks.size(), 9u);
    const fs::path victim = chunks[5];
    const std::string chunk_id = victim.filename().string();
    if (missing) {
      fs::remove(victim);
    } else {
      FlipByte(victim, fs::file_size(victim) / 2);
    }
    const std::string problem = missing ? "missing" : "corrupt";

    const auto verify = Run({"backup", "verify"}, {"--backup", "b1", "--json", "--quiet"});
    EXPECT_EQ(verify.exit_code, 3) << verify.Describe();
    EXPECT_NE(verify.out.find(chunk_id), std::string::npos) << verify.Describe();
    const auto report = verify.Json();
    ASSERT_EQ(report["problems"].size(), 1u) << verify.Describe();
    EXPECT_EQ(report["problems"][0]["kind"], problem);
    const std::uint64_t offset = report["problems"][0]["offset"];
    EXPECT_EQ(offset % kChunk, 0u);
    EXPECT_LT(offset, fs::file_size(image_));
    EXPECT_EQ(StoreObjects(store_dir_, "damaged-chunks").size(), 1u);

    const auto refused = Run({"backup", "restore"},
                             {"--backup", "b1", "--to", Path("early.img").string(), "--quiet"});
    EXPECT_EQ(refused.exit_code, 3) << refused.Describe();
    EXPECT_FALSE(fs::exists(Path("early.img")));

    const auto listed = List();
    ASSERT_EQ(listed["backups"].size(), 1u) << listed.dump();
    const auto& entry = listed["backups"][0];
    EXPECT_EQ(entry["status"], "damaged") << listed.dump();
    ASSERT_EQ(entry["damaged_chunks"].size(), 1u) << listed.dump();
    EXPECT_EQ(entry["damaged_chunks"][0]["chunk_id"], chunk_id);
    EXPECT_EQ(entry["damaged_chunks"][0]["problem"], problem);
    EXPECT_EQ(entry["damaged_chunks"][0]["offsets"], nlohmann::json::array({offset}));
    const auto human = Run({"backup", "list"});
    EXPECT_EQ(human.exit_code, 0) << human.Describe();
    EXPECT_NE(human.out.find("damaged"), std::string::npos) << human.Describe();
    EXPECT_NE(human.out.find(chunk_id), std::string::npos) << human.Describe();
    EXPECT_NE(human.out.find(std::to_string(offset)), std::string::npos) << human.Describe();

    const auto healed = Create("vol-1", image_, {"--backup-id", "b2"});
    EXPECT_EQ(healed["chunks_healed"], 1) << healed.dump();
    EXPECT_EQ(healed["healed_chunk_ids"], nlohmann::json::array({chunk_id}));
    EXPECT_EQ(healed["chunks_uploaded"], 1) << healed.dump();
    EXPECT_TRUE(fs::exists(victim));
    EXPECT_TRUE(StoreObjects(store_dir_, "damaged-chunks").empty());

    for (const std::string backup : {"b1", "b2"}) {
      const fs::path out = Path(backup + ".img");
      Restore(backup, out);
      EXPECT_EQ(ReadWholeFile(out), image_bytes) << backup << " is not bit-identical";
    }
    const auto after = List();
    ASSERT_EQ(after["backups"].size(), 2u) << after.dump();
    for (const auto& backup : after["backups"]) {
      EXPECT_EQ(backup["status"], "ok") << after.dump();
      EXPECT_TRUE(backup["damaged_chunks"].empty()) << after.dump();
    }
    Verify("b1");

    // Nothing left to heal: the next backup says nothing about it.
    const auto quiet =
        Run({"backup", "create"}, {"--volume-id", "vol-1", "--image", image_.string(), "--quiet"});
    EXPECT_EQ(quiet.exit_code, 0) << quiet.Describe();
    EXPECT_EQ(quiet.out.find("healed"), std::string::npos) << quiet.Describe();
  }
};

TEST_F(CliIntegrityDamageTest, CorruptChunkIsListedDamagedThenHealedByTheNextBackup) {
  ExpectRecordedAndHealed(/*missing=*/false);
}

TEST_F(CliIntegrityDamageTest, MissingChunkIsListedDamagedThenHealedByTheNextBackup) {
  ExpectRecordedAndHealed(/*missing=*/true);
}

TEST_F(CliIntegrityDamageTest, HumanBackupCreateSaysWhatItHealed) {
  Create("vol-1", image_, {"--backup-id", "b1"});
  const auto chunks = StoreObjects(store_dir_, "chunks");
  ASSERT_FALSE(chunks.empty());
  fs::remove(chunks[0]);
  const auto refused =
      Run({"backup", "restore"}, {"--backup", "b1", "--to", Path("out.img").string(), "--quiet"});
  EXPECT_EQ(refused.exit_code, 3) << refused.Describe();
  const auto created =
      Run({"backup", "create"}, {"--volume-id", "vol-1", "--image", image_.string(), "--quiet"});
  EXPECT_EQ(created.exit_code, 0) << created.Describe();
  EXPECT_NE(created.out.find("healed    1 chunk"), std::string::npos) << created.Describe();
  Restore("b1", Path("out.img"));
  EXPECT_EQ(FileSha256(Path("out.img")), FileSha256(image_));
}

TEST_F(CliIntegrityTest, TamperedManifestFailsButOlderBackupRestores) {
  const std::string first_sha = FileSha256(image_);
  Create("vol-1", image_, {"--backup-id", "b1"});
  WriteAt(image_, 100, RandomBytes(5000, 22));
  Create("vol-1", image_, {"--backup-id", "b2"});
  const fs::path manifest = store_dir_ / "project-volumes/vol-1/backups/b2.manifest";
  ASSERT_TRUE(fs::exists(manifest));
  FlipByte(manifest, fs::file_size(manifest) - 20);

  const fs::path out = Path("out.img");
  const auto restore = Run({"backup", "restore"}, {"--backup", "b2", "--to", out.string()});
  EXPECT_EQ(restore.exit_code, 3) << restore.Describe();
  EXPECT_NE(ErrorLine(restore).find("project-volumes/vol-1/backups/b2.manifest"), std::string::npos)
      << restore.Describe();
  EXPECT_FALSE(fs::exists(out));
  const auto direct =
      Run({"backup", "restore"}, {"--backup", "b2", "--volume-id", "vol-1", "--to", out.string()});
  EXPECT_EQ(direct.exit_code, 3) << direct.Describe();

  const auto verify = Run({"backup", "verify"}, {"--backup", "b2", "--volume-id", "vol-1"});
  EXPECT_EQ(verify.exit_code, 3) << verify.Describe();

  const auto list = Run({"backup", "list"});
  EXPECT_EQ(list.exit_code, 3) << list.Describe();
  EXPECT_NE(ErrorLine(list).find("b2.manifest"), std::string::npos) << list.Describe();

  // The previous backup is still whole.
  Restore("b1", out, {"--volume-id", "vol-1"});
  EXPECT_EQ(FileSha256(out), first_sha);
}

TEST_F(CliIntegrityTest, RestoreRefusesExistingDestinationWithoutForce) {
  const auto created = Create("vol-1", image_);
  const fs::path out = Path("existing.img");
  WriteWhole(out, "old content");
  const auto refused =
      Run({"backup", "restore"}, {"--backup", created["backup_id"], "--to", out.string()});
  EXPECT_EQ(refused.exit_code, 2) << refused.Describe();
  EXPECT_NE(ErrorLine(refused).find("--force"), std::string::npos) << refused.Describe();
  EXPECT_EQ(ReadWholeFile(out), "old content");

  Restore(created["backup_id"], out, {"--force"});
  EXPECT_EQ(FileSha256(out), FileSha256(image_));
  EXPECT_TRUE(TempFilesUnder(dir_.path()).empty());
}

TEST_F(CliIntegrityTest, BadCommandLinesExitTwoWithAReason) {
  const std::string url = "file://" + store_dir_.string();
  const std::string key = key_file_.string();
  const std::string image = image_.string();
  struct Case {
    std::vector<std::string> args;
    std::string expect_in_message;
  };
  const std::vector<Case> cases = {
      {{}, "subcommand"},
      {{"backup"}, "subcommand"},
      {{"frobnicate"}, ""},
      {{"backup", "create", "--store", url, "--volume-id", "v", "--image", image}, "--key-file"},
      {{"backup", "create", "--key-file", key, "--volume-id", "v", "--image", image}, "--store"},
      {{"backup", "create", "--store", url, "--key-file", key, "--image", image}, "--volume-id"},
      {{"backup", "create", "--store", url, "--key-file", key, "--volume-id", "v"}, "--image"},
      {{"backup", "create", "--store", url, "--key-file", key, "--volume-id", "v", "--image", image,
        "--bogus"},
       "--bogus"},
      {{"backup", "list", "--store", "http://example.com/x", "--key-file", key}, "store URL"},
      {{"backup", "list", "--store", "file://relative/dir", "--key-file", key}, "store URL"},
      {{"backup", "list", "--store", "s3://", "--key-file", key}, "bucket"},
      {{"backup", "create", "--store", url, "--key-file", key, "--volume-id", "v", "--image",
        Path("missing.img").string()},
       "missing.img"},
      {{"backup", "create", "--store", url, "--key-file", key, "--volume-id", "v", "--image",
        dir_.path().string()},
       "regular file"},
      {{"backup", "create", "--store", url, "--key-file", key, "--volume-id", "../etc", "--image",
        image},
       "--volume-id"},
      {{"backup", "create", "--store", url, "--key-file", key, "--volume-id", "a/b", "--image",
        image},
       "--volume-id"},
      {{"backup", "create", "--store", url, "--key-file", key, "--volume-id", ".hidden", "--image",
        image},
       "--volume-id"},
      {{"backup", "create", "--store", url, "--key-file", key, "--volume-id", "v", "--image", image,
        "--backup-id", "x y"},
       "--backup-id"},
      {{"backup", "create", "--store", url, "--key-file", key, "--volume-id", "v", "--image", image,
        "--chunk-size", "12"},
       "--chunk-size"},
      {{"backup", "create", "--store", url, "--key-file", key, "--volume-id", "v", "--image", image,
        "--compression-level", "99"},
       "--compression-level"},
      {{"backup", "create", "--store", url, "--key-file", key, "--volume-id", "v", "--image", image,
        "--threads", "-1"},
       "--threads"},
      {{"backup", "create", "--store", url, "--key-file", key, "--volume-id", "v", "--image", image,
        "--progress", "fancy"},
       "--progress"},
      {{"backup", "create", "--store", url, "--key-file", Path("nokey").string(), "--volume-id",
        "v", "--image", image},
       "key file not found"},
      {{"backup", "verify", "--store", url, "--key-file", key, "--backup", "b", "--sample", "0"},
       "--sample"},
      {{"backup", "verify", "--store", url, "--key-file", key, "--backup", "b", "--sample", "1.5"},
       "--sample"},
      {{"backup", "restore", "--store", url, "--key-file", key, "--backup", "b"}, "--to"},
      {{"store", "init", "--store", url, "--key-file", key, "--chunk-size", "lots"}, "byte size"},
      {{"demo", "--size-mib", "0"}, "--size-mib"},
  };
  for (const auto& c : cases) {
    std::string joined;
    for (const auto& a : c.args) joined += a + " ";
    const auto result = RunKindling(c.args);
    EXPECT_EQ(result.exit_code, 2) << joined << "\n" << result.Describe();
    const std::string line = ErrorLine(result);
    EXPECT_FALSE(line.empty()) << joined << "\n" << result.Describe();
    EXPECT_NE(line.find(c.expect_in_message), std::string::npos) << joined << "\n"
                                                                 << result.Describe();
    EXPECT_TRUE(result.out.empty()) << joined << "\n" << result.Describe();
  }
}

TEST_F(CliIntegrityTest, OperationalFailuresExitOne) {
  // A store nobody initialised.
  const auto uninitialised =
      RunKindling({"backup", "list", "--store", "file://" + Path("empty-store").string(),
                   "--key-file", key_file_.string()});
  EXPECT_EQ(uninitialised.exit_code, 1) << uninitialised.Describe();
  EXPECT_NE(ErrorLine(uninitialised).find("not initialised"), std::string::npos)
      << uninitialised.Describe();
  // A backup that does not exist.
  const auto missing =
      Run({"backup", "restore"}, {"--backup", "no-such-backup", "--to", Path("x.img").string()});
  EXPECT_EQ(missing.exit_code, 1) << missing.Describe();
  EXPECT_NE(ErrorLine(missing).find("no-such-backup"), std::string::npos) << missing.Describe();
  EXPECT_FALSE(fs::exists(Path("x.img")));
}

}  // namespace
}  // namespace kindling::clitest
