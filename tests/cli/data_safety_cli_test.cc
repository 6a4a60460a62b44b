// The data-safety rules end to end, through the CLI and the API: backups stay
// restorable from the store they were written to after the settings moved to
// another one; a damaged chunk is found by a verify, refused by restores and
// healed by the next backup; a deleted volume leaves its pre-delete backup and
// its image (in the quarantine); an image the database no longer pins to its
// worker is held as a conflict until it is adopted.
//
// Volumes are 1 GiB sparse images with a few MiB of data written into the
// worker's image file; "bit-identical" compares the SHA-256 of the whole image
// file with the one taken when the backup was made.
#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "api_cli_fixture.h"
#include "db/servers.h"
#include "testutil/fake_http_server.h"
#include "testutil/require.h"
#include "testutil/s3_test_server.h"

namespace kindling::clitest {
namespace {

constexpr std::uint64_t kMiB = 1u << 20;
// The engine's default chunk size: data written at a multiple of it, this
// long, is exactly one chunk.
constexpr std::uint64_t kChunk = 4 * kMiB;

class DataSafetyCliTest : public ApiCliTest {
 protected:
  // Backs the project's volume up, following it; returns the finished
  // operation.
  json BackupNow(const std::string& project) {
    RunResult run =
        Kindling({"volume", "backup", "--project", project, "--follow", "--json", "--quiet"});
    EXPECT_EQ(run.exit_code, 0) << run.Describe();
    json op = run.Json();
    EXPECT_EQ(op["status"], "succeeded") << run.Describe();
    EXPECT_TRUE(IsUuid(op.value("backup_id", ""))) << run.Describe();
    return op;
  }

  // Restores `backup` into the project's volume (on this worker) and expects
  // the image to be what it was when the backup was made.
  void ExpectRestores(const std::string& project, const std::string& volume,
                      const std::string& backup, const std::string& sha) {
    SCOPED_TRACE("restore of backup " + backup);
    RunResult run = Kindling({"volume", "restore", "--project", project, "--backup", backup,
                              "--follow", "--json", "--quiet"});
    ASSERT_EQ(run.exit_code, 0) << run.Describe();
    EXPECT_EQ(run.Json()["status"], "succeeded") << run.Describe();
    EXPECT_EQ(FileSha256(worker_->ImageOf(volume)), sha);
  }

  // The element of `items` whose `key` is `value` (null when none).
  static json Find(const json& items, const std::string& key, const std::string& value) {
    if (items.is_array()) {
      for (const json& item : items) {
        if (item.value(key, "") == value) return item;
      }
    }
    return json();
  }

  fs::path StoreDir() const { return dir_.path() / "bucket"; }
};

// The first line of `text` that contains `needle` ("" when none).
std::string LineWith(const std::string& text, const std::string& needle) {
  const std::size_t at = text.find(needle);
  if (at == std::string::npos) return "";
  const std::size_t begin = text.rfind('\n', at);
  const std::size_t end = text.find('\n', at);
  const std::size_t from = begin == std::string::npos ? 0 : begin + 1;
  return text.substr(from, end == std::string::npos ? std::string::npos : end - from);
}

// The whitespace-separated cells of a table line.
std::vector<std::string> Cells(const std::string& line) {
  std::vector<std::string> cells;
  std::size_t at = 0;
  while (at < line.size()) {
    at = line.find_first_not_of(' ', at);
    if (at == std::string::npos) break;
    const std::size_t end = line.find("  ", at);
    cells.push_back(line.substr(at, end == std::string::npos ? std::string::npos : end - at));
    at = end;
  }
  return cells;
}

TEST_F(DataSafetyCliTest, StoreSwitchLocalToS3AndBackKeepsEveryBackupRestorable) {
  KINDLING_REQUIRE_S3_TEST_SERVER();
  testutil::S3TestServer s3(testutil::S3TestServerOptions{
      .access_key_id = "AKIAKINDLINGSWITCH1", .secret_access_key = "kdl-switch-secret-Hq4uP9"});
  const std::string secret = s3.options().secret_access_key;
  const std::string s3_url = "s3://" + s3.options().bucket + "/kindling";
  const std::string local_url = "file://" + StoreDir().string();

  ConfigureLocalStore();
  const auto [project, volume] = MakeProjectWithVolume("switch");
  const fs::path image = worker_->ImageOf(volume);
  std::map<std::string, std::string> sha_of;    // backup id -> image SHA-256 when backed up
  std::map<std::string, std::string> store_of;  // backup id -> the store it went to

  WriteAt(image, 8 * kMiB, RandomBytes(3 * kMiB, 101));
  const std::string b1 = BackupNow(project).value("backup_id", "");
  sha_of[b1] = FileSha256(image);
  store_of[b1] = local_url;

  // --s3-bucket while a local directory is set switches the store.
  json saved = Ok({"settings", "backup", "set", "--s3-bucket", s3.options().bucket, "--s3-region",
                   "us-east-1", "--s3-endpoint", s3.endpoint(), "--s3-prefix", "kindling",
                   "--s3-access-key-id", s3.options().access_key_id},
                  {{"AWS_SECRET_ACCESS_KEY", secret}});
  EXPECT_EQ(saved["storage_url"], s3_url) << saved.dump();
  EXPECT_EQ(saved["local_directory"], "") << saved.dump();
  EXPECT_EQ(saved["store"]["ready"], true) << saved.dump();
  json shown = Ok({"settings", "backup", "show"});
  EXPECT_EQ(shown["storage_url"], s3_url);
  EXPECT_EQ(shown["s3_bucket"], s3.options().bucket);
  EXPECT_EQ(shown["local_directory"], "");

  WriteAt(image, 9 * kMiB, RandomBytes(2 * kMiB, 102));
  WriteAt(image, 200 * kMiB, RandomBytes(kMiB, 103));
  const std::string b2 = BackupNow(project).value("backup_id", "");
  sha_of[b2] = FileSha256(image);
  store_of[b2] = s3_url;

  // `settings backup test` with flags probes the store they describe, not
  // the saved one: a directory whose probe cannot be written fails at the
  // write step, another one works, and the saved settings stay as they are.
  const fs::path unwritable = dir_.path() / "unwritable";
  fs::create_directories(unwritable);
  WriteWhole(unwritable / "probes", "a file where the probe objects' directory would go");
  RunResult bad = Fails({"settings", "backup", "test", "--local-directory", unwritable.string()}, 1,
                        "probe failed at step write");
  EXPECT_NE(bad.out.find("failed at step write (file://" + unwritable.string() + ")"),
            std::string::npos)
      << bad.out;
  RunResult bad_json =
      Kindling({"settings", "backup", "test", "--local-directory", unwritable.string(), "--json"});
  EXPECT_EQ(bad_json.exit_code, 1) << bad_json.Describe();
  EXPECT_EQ(bad_json.Json()["ok"], false) << bad_json.Describe();
  EXPECT_EQ(bad_json.Json()["step"], "write") << bad_json.Describe();
  const fs::path elsewhere = dir_.path() / "elsewhere";
  json other = Ok({"settings", "backup", "test", "--local-directory", elsewhere.string()});
  EXPECT_EQ(other["ok"], true) << other.dump();
  EXPECT_EQ(other["storage_url"], "file://" + elsewhere.string());
  json current = Ok({"settings", "backup", "test"});
  EXPECT_EQ(current["ok"], true) << current.dump();
  EXPECT_EQ(current["storage_url"], s3_url);
  for (const char* command : {"set", "test"}) {
    Fails({"settings", "backup", command, "--local-directory", elsewhere.string(), "--s3-bucket",
           "other-bucket"},
          2, "--local-directory and --s3-bucket select different stores");
  }
  Fails({"settings", "backup", "set", "--s3-bucket", "b", "--clear", "s3-bucket"}, 2,
        "--clear s3-bucket contradicts");
  EXPECT_EQ(Ok({"settings", "backup", "show"})["storage_url"], s3_url);

  // The first backup restores from its own (local) store while the settings
  // name the S3 one.
  ExpectRestores(project, volume, b1, sha_of[b1]);

  // Back to the local directory.
  json back = Ok({"settings", "backup", "set", "--local-directory", StoreDir().string()});
  EXPECT_EQ(back["storage_url"], local_url) << back.dump();
  EXPECT_EQ(back["s3_bucket"], "") << back.dump();
  WriteAt(image, 300 * kMiB, RandomBytes(2 * kMiB, 104));
  const std::string b3 = BackupNow(project).value("backup_id", "");
  sha_of[b3] = FileSha256(image);
  store_of[b3] = local_url;

  // The store history has both, the local one current.
  json stores = Ok({"settings", "backup", "stores"});
  ASSERT_EQ(stores.size(), 2u) << stores.dump();
  EXPECT_FALSE(Find(stores, "storage_url", local_url).is_null()) << stores.dump();
  EXPECT_FALSE(Find(stores, "storage_url", s3_url).is_null()) << stores.dump();
  RunResult stores_text = Kindling({"settings", "backup", "stores"});
  EXPECT_EQ(stores_text.exit_code, 0) << stores_text.Describe();
  EXPECT_NE(stores_text.out.find("STORAGE URL"), std::string::npos) << stores_text.out;
  EXPECT_EQ(Cells(LineWith(stores_text.out, local_url)).at(1), "yes") << stores_text.out;
  EXPECT_EQ(Cells(LineWith(stores_text.out, s3_url)).at(1), "no") << stores_text.out;

  // Every succeeded backup restores bit-identical, each from its own store.
  json backups = Ok({"volume", "backups", "--project", project});
  ASSERT_EQ(backups.size(), 3u) << backups.dump();
  for (const json& backup : backups) {
    const std::string id = backup.value("id", "");
    ASSERT_TRUE(sha_of.contains(id)) << backup.dump();
    EXPECT_EQ(backup["status"], "succeeded") << backup.dump();
    EXPECT_EQ(backup["storage_url"], store_of[id]) << backup.dump();
    if (backup["status"] == "succeeded") ExpectRestores(project, volume, id, sha_of[id]);
  }
  RunResult listed = Kindling({"volume", "backups", "--project", project});
  EXPECT_NE(listed.out.find(s3_url), std::string::npos) << listed.out;
  EXPECT_EQ(transcript_.find(secret), std::string::npos) << transcript_;
}

TEST_F(DataSafetyCliTest, DamagedChunkIsFoundRefusedAndHealed) {
  ConfigureLocalStore();
  const auto [project, volume] = MakeProjectWithVolume("damage");
  const fs::path image = worker_->ImageOf(volume);
  // One chunk of incompressible data: the largest chunk object in the store.
  WriteAt(image, kChunk, RandomBytes(kChunk, 201));
  const std::string first = BackupNow(project).value("backup_id", "");
  std::map<std::string, std::string> sha_of = {{first, FileSha256(image)}};

  RunResult clean = Kindling({"volume", "verify-backup", "--project", project, "--backup", first,
                              "--follow", "--json", "--quiet"});
  ASSERT_EQ(clean.exit_code, 0) << clean.Describe();
  EXPECT_EQ(clean.Json()["kind"], "verify");
  EXPECT_EQ(clean.Json()["result"]["ok"], true) << clean.Describe();
  EXPECT_GT(clean.Json()["result"]["chunks_checked"].get<int>(), 0) << clean.Describe();

  fs::path data_chunk;
  for (const fs::path& object : StoreObjects(StoreDir(), "chunks")) {
    if (data_chunk.empty() || fs::file_size(object) > fs::file_size(data_chunk)) {
      data_chunk = object;
    }
  }
  ASSERT_FALSE(data_chunk.empty());
  ASSERT_GT(fs::file_size(data_chunk), kChunk / 2);
  const std::string chunk_id = data_chunk.filename().string();
  const std::string offset = std::to_string(kChunk);

  std::uint64_t seed = 300;
  for (const std::string problem : {"corrupt", "missing"}) {
    SCOPED_TRACE(problem);
    if (problem == "corrupt") {
      FlipByte(data_chunk, fs::file_size(data_chunk) / 2);
    } else {
      fs::remove(data_chunk);
    }
    // Backups that reference the chunk: every one made so far.
    std::vector<std::string> affected;
    for (const auto& [id, sha] : sha_of) affected.push_back(id);

    // The verify exits 3 and names the chunk and its offset.
    RunResult verified =
        Kindling({"volume", "verify-backup", "--project", project, "--backup", first, "--follow"});
    EXPECT_EQ(verified.exit_code, 3) << verified.Describe();
    EXPECT_NE(verified.out.find(problem + " chunk " + chunk_id + " at offset " + offset),
              std::string::npos)
        << verified.Describe();
    EXPECT_NE(verified.err.find("kindling: error: verify "), std::string::npos)
        << verified.Describe();
    EXPECT_NE(verified.err.find("chunk " + chunk_id + " (" + problem + ") at offset " + offset),
              std::string::npos)
        << verified.Describe();
    RunResult verified_json = Kindling({"volume", "verify-backup", "--project", project, "--backup",
                                        first, "--follow", "--json", "--quiet"});
    EXPECT_EQ(verified_json.exit_code, 3) << verified_json.Describe();
    const json result = verified_json.Json()["result"];
    EXPECT_EQ(result["ok"], false) << verified_json.Describe();
    ASSERT_EQ(result["problems"].size(), 1u) << verified_json.Describe();
    EXPECT_EQ(result["problems"][0]["kind"], problem);
    EXPECT_EQ(result["problems"][0]["chunk_id"], chunk_id);
    EXPECT_EQ(result["problems"][0]["offset"], kChunk);
    // Following the finished verify again says the same.
    RunResult followed = Kindling(
        {"operation", "follow", verified_json.Json().value("id", ""), "--json", "--quiet"});
    EXPECT_EQ(followed.exit_code, 3) << followed.Describe();
    EXPECT_EQ(followed.Json()["result"]["ok"], false) << followed.Describe();

    // Every backup using the chunk is listed damaged, with the offset.
    json backups = Ok({"volume", "backups", "--project", project});
    for (const std::string& id : affected) {
      const json backup = Find(backups, "id", id);
      ASSERT_EQ(backup["status"], "damaged") << backups.dump();
      ASSERT_EQ(backup["damage"]["chunks"].size(), 1u) << backup.dump();
      EXPECT_EQ(backup["damage"]["chunks"][0]["chunk_id"], chunk_id);
      EXPECT_EQ(backup["damage"]["chunks"][0]["problem"], problem);
      EXPECT_EQ(backup["damage"]["chunks"][0]["offsets"], json::array({kChunk}));
    }
    RunResult table = Kindling({"volume", "backups", "--project", project});
    EXPECT_NE(table.out.find(first + "  damaged"), std::string::npos) << table.out;
    EXPECT_NE(table.out.find(problem + " chunk " + chunk_id + " at offset " + offset),
              std::string::npos)
        << table.out;
    json project_backups = Ok({"project", "backups", "--project", project});
    EXPECT_EQ(Find(project_backups, "id", first)["status"], "damaged") << project_backups.dump();

    // A restore of it is refused, naming the offset.
    RunResult refused = Fails({"volume", "restore", "--project", project, "--backup", first}, 1,
                              "(backup_damaged)");
    EXPECT_NE(refused.err.find(chunk_id), std::string::npos) << refused.Describe();
    EXPECT_NE(refused.err.find(offset), std::string::npos) << refused.Describe();

    // The next backup stores the chunk again, which heals every backup.
    ++seed;
    WriteAt(image, (64 + seed % 64) * kMiB, RandomBytes(kMiB, seed));
    const json healing = BackupNow(project);
    EXPECT_EQ(healing["result"]["chunks_healed"], 1) << healing.dump();
    const std::string healer = healing.value("backup_id", "");
    sha_of[healer] = FileSha256(image);
    backups = Ok({"volume", "backups", "--project", project});
    ASSERT_EQ(backups.size(), sha_of.size()) << backups.dump();
    for (const json& backup : backups) {
      EXPECT_EQ(backup["status"], "succeeded") << backup.dump();
      EXPECT_TRUE(backup["damage"].is_null()) << backup.dump();
    }
    ExpectRestores(project, volume, first, sha_of[first]);
    ExpectRestores(project, volume, healer, sha_of[healer]);
  }
}

TEST_F(DataSafetyCliTest, DeleteWithPreDeleteBackupKeepsBackupAndImage) {
  ConfigureLocalStore();
  json project = Ok({"project", "create", "--name", "leaving"});
  const std::string project_id = project.value("id", "");
  json created =
      Ok({"volume", "create", "--project", project_id, "--size-gb", "1", "--pre-delete-backup"});
  EXPECT_EQ(created["backup_policy"]["pre_delete_backup_enabled"], true) << created.dump();
  const std::string old_volume = created.value("id", "");
  ASSERT_TRUE(
      WaitFor([&] { return fs::exists(worker_->ImageOf(old_volume)); }, std::chrono::seconds(30)));
  EXPECT_EQ(Ok({"volume", "create", "--project", project_id,
                "--no-pre-delete-backup"})["backup_policy"]["pre_delete_backup_enabled"],
            false);
  EXPECT_EQ(Ok({"volume", "create", "--project", project_id,
                "--pre-delete-backup"})["backup_policy"]["pre_delete_backup_enabled"],
            true);
  RunResult shown = Kindling({"volume", "show", "--project", project_id});
  EXPECT_NE(shown.out.find("backup before delete: yes"), std::string::npos) << shown.out;
  const fs::path old_image = worker_->ImageOf(old_volume);
  WriteAt(old_image, 16 * kMiB, RandomBytes(3 * kMiB, 401));
  const std::string old_sha = FileSha256(old_image);

  // The delete runs the pre-delete backup, then deletes the volume.
  RunResult deleted =
      Kindling({"volume", "delete", "--project", project_id, "--follow", "--json", "--quiet"});
  ASSERT_EQ(deleted.exit_code, 0) << deleted.Describe();
  const json op = deleted.Json();
  EXPECT_EQ(op["kind"], "backup") << op.dump();
  EXPECT_EQ(op["status"], "succeeded") << op.dump();
  EXPECT_EQ(op["result"]["volume_deleted"], true) << op.dump();
  const std::string pre_delete = op.value("backup_id", "");
  Fails({"volume", "show", "--project", project_id}, 1, "(not_found)");

  json backups = Ok({"project", "backups", "--project", project_id});
  const json backup = Find(backups, "id", pre_delete);
  ASSERT_TRUE(backup.is_object()) << backups.dump();
  EXPECT_EQ(backup["kind"], "pre_delete");
  EXPECT_EQ(backup["status"], "succeeded");
  EXPECT_EQ(backup["volume_deleted"], true);
  EXPECT_EQ(backup["project_volume_id"], old_volume);
  RunResult table = Kindling({"project", "backups", "--project", project_id});
  EXPECT_NE(table.out.find("VOLUME DELETED"), std::string::npos) << table.out;
  // ID STATUS KIND PINNED VOLUME "VOLUME DELETED" SIZE CREATED VERIFIED STORE ERROR
  const std::vector<std::string> row = Cells(LineWith(table.out, pre_delete));
  ASSERT_EQ(row.size(), 11u) << table.out;
  EXPECT_EQ(row[1], "succeeded") << table.out;
  EXPECT_EQ(row[2], "pre_delete") << table.out;
  EXPECT_EQ(row[3], "no") << table.out;
  EXPECT_EQ(row[4], old_volume) << table.out;
  EXPECT_EQ(row[5], "yes") << table.out;
  EXPECT_EQ(row[8], "-") << table.out;
  EXPECT_EQ(row[9], "file://" + StoreDir().string()) << table.out;

  // The image waits in the worker's quarantine, as deleted.
  json held;
  ASSERT_TRUE(WaitFor(
      [&] {
        held = Find(Ok({"volume", "quarantine", "--project", project_id}), "project_volume_id",
                    old_volume);
        return held.is_object();
      },
      std::chrono::seconds(30)));
  EXPECT_EQ(held["reason"], "deleted") << held.dump();
  EXPECT_EQ(held["status"], "held") << held.dump();
  EXPECT_EQ(held["server_id"], server_id_) << held.dump();
  EXPECT_TRUE(fs::exists(held.value("path", ""))) << held.dump();
  RunResult quarantine_text = Kindling({"volume", "quarantine", "--project", project_id});
  const std::vector<std::string> held_row =
      Cells(LineWith(quarantine_text.out, held.value("id", "")));
  ASSERT_GE(held_row.size(), 5u) << quarantine_text.out;
  EXPECT_EQ(held_row[1], "deleted") << quarantine_text.out;
  EXPECT_EQ(held_row[2], "held") << quarantine_text.out;
  EXPECT_EQ(held_row[3], old_volume) << quarantine_text.out;

  // A new volume of the project takes the pre-delete backup, bit-identical;
  // its own backup list starts empty.
  json fresh = Ok({"volume", "create", "--project", project_id, "--size-gb", "1"});
  const std::string new_volume = fresh.value("id", "");
  ASSERT_NE(new_volume, old_volume);
  ASSERT_TRUE(
      WaitFor([&] { return fs::exists(worker_->ImageOf(new_volume)); }, std::chrono::seconds(30)));
  EXPECT_EQ(Ok({"volume", "backups", "--project", project_id}).size(), 0u);
  ExpectRestores(project_id, new_volume, pre_delete, old_sha);

  // Without a pre-delete backup the volume goes at once (--json: null).
  RunResult gone = Kindling({"volume", "delete", "--project", project_id, "--json"});
  ASSERT_EQ(gone.exit_code, 0) << gone.Describe();
  EXPECT_EQ(gone.LastLine(), "null");
  Fails({"volume", "show", "--project", project_id}, 1, "(not_found)");

  // Purges: the platform's route and the project's.
  json second;
  ASSERT_TRUE(WaitFor(
      [&] {
        second = Find(Ok({"quarantine", "list", "--volume", new_volume, "--status", "held"}),
                      "reason", "deleted");
        return second.is_object();
      },
      std::chrono::seconds(30)));
  json requested = Ok({"quarantine", "purge", held.value("id", "")});
  EXPECT_EQ(requested["id"], held["id"]);
  json requested_by_project =
      Ok({"quarantine", "purge", second.value("id", ""), "--project", project_id});
  EXPECT_EQ(requested_by_project["id"], second["id"]);
  ASSERT_TRUE(WaitFor(
      [&] {
        json purged = Ok({"quarantine", "list", "--status", "purged"});
        return HasId(purged, held.value("id", "")) && HasId(purged, second.value("id", ""));
      },
      std::chrono::seconds(30)));
  EXPECT_FALSE(fs::exists(held.value("path", "")));
  Fails({"quarantine", "purge", held.value("id", "")}, 1, "(failed_precondition)");
  Fails({"quarantine", "purge", "nope"}, 2, "must be a UUID");
  Fails({"quarantine", "list", "--status", "lost"}, 2, "--status");
}

TEST_F(DataSafetyCliTest, ConflictingImageIsHeldUntilAdopted) {
  ConfigureLocalStore();
  const auto [project, volume] = MakeProjectWithVolume("adopt");
  const fs::path image = worker_->ImageOf(volume);
  WriteAt(image, 12 * kMiB, RandomBytes(3 * kMiB, 501));
  const std::string sha = FileSha256(image);

  // A database restored from an older dump pins the volume to another server
  // (registered, but no worker runs there).
  const std::string other = NewUuidV4();
  ASSERT_TRUE(Must([&](db::Tx& tx) {
    return db::RegisterServer(tx, db::ServerRegistration{.id = other,
                                                         .hostname = "w-old",
                                                         .internal_ip = "10.0.0.9",
                                                         .enabled_components = {"worker"}});
  }));
  Sql("UPDATE project_volumes SET server_id = '" + other + "' WHERE id = '" + volume + "'");

  // The worker keeps the image aside as a conflict, and says so on the volume.
  json entry;
  ASSERT_TRUE(WaitFor(
      [&] {
        entry = Find(Ok({"quarantine", "list", "--volume", volume}), "reason", "conflict");
        return entry.is_object() && entry["image_sha256"].is_string();
      },
      std::chrono::seconds(60)))
      << entry.dump();
  const std::string entry_id = entry.value("id", "");
  EXPECT_EQ(entry["status"], "held");
  EXPECT_EQ(entry["server_id"], server_id_);
  EXPECT_TRUE(entry["purge_after"].is_null()) << entry.dump();
  EXPECT_FALSE(fs::exists(image));
  json shown;
  ASSERT_TRUE(WaitFor(
      [&] {
        shown = Ok({"volume", "show", "--project", project});
        return shown["last_error"].is_string() &&
               shown.value("last_error", "").find(entry.value("image_sha256", "")) !=
                   std::string::npos;
      },
      std::chrono::seconds(30)))
      << shown.dump();
  EXPECT_NE(shown.value("last_error", "").find(entry_id), std::string::npos) << shown.dump();
  EXPECT_EQ(shown["health"], "degraded") << shown.dump();
  RunResult listed = Kindling({"quarantine", "list"});
  const std::vector<std::string> entry_row = Cells(LineWith(listed.out, entry_id));
  ASSERT_GE(entry_row.size(), 5u) << listed.out;
  EXPECT_EQ(entry_row[1], "conflict") << listed.out;
  EXPECT_EQ(entry_row[2], "held") << listed.out;
  EXPECT_EQ(entry_row[3], volume) << listed.out;
  EXPECT_EQ(entry_row[4], server_id_) << listed.out;
  EXPECT_NE(listed.out.find("records no restore, move or adoption"), std::string::npos)
      << listed.out;
  Fails({"quarantine", "list", "--server", "x"}, 2, "server id must be a UUID");
  EXPECT_TRUE(
      HasId(Ok({"quarantine", "list", "--server", server_id_, "--status", "held"}), entry_id));
  EXPECT_FALSE(HasId(Ok({"quarantine", "list", "--server", other}), entry_id));

  // Adopting it makes the volume usable again, with the same bytes.
  RunResult adopted = Kindling({"volume", "adopt-image", "--project", project, "--image", entry_id,
                                "--follow", "--json", "--quiet"});
  ASSERT_EQ(adopted.exit_code, 0) << adopted.Describe();
  EXPECT_EQ(adopted.Json()["kind"], "adopt");
  EXPECT_EQ(adopted.Json()["status"], "succeeded") << adopted.Describe();
  json volume_after = Ok({"volume", "show", "--project", project});
  EXPECT_EQ(volume_after["server_id"], server_id_) << volume_after.dump();
  EXPECT_EQ(volume_after["health"], "healthy") << volume_after.dump();
  EXPECT_TRUE(volume_after["last_error"].is_null()) << volume_after.dump();
  EXPECT_EQ(FileSha256(image), sha);
  json after = Find(Ok({"quarantine", "list", "--volume", volume}), "id", entry_id);
  EXPECT_EQ(after["status"], "adopted") << after.dump();
  Fails({"volume", "adopt-image", "--project", project, "--image", entry_id}, 1,
        "(failed_precondition)");

  const json backup = BackupNow(project);
  EXPECT_EQ(backup["result"]["image_sha256"], testutil::ImageDigestOfFile(image));
}

// Against a scripted server: a verify operation that failed (rather than
// finding problems) is exit 1, one that found none exit 0.
TEST(DataSafetyFakeServerTest, VerifyExitCodesFollowTheOperation) {
  const std::string operation = NewUuidV4();
  const std::string backup = NewUuidV4();
  json answer = {{"id", operation},     {"kind", "verify"}, {"status", "pending"},
                 {"backup_id", backup}, {"error", nullptr}, {"result", json::object()}};
  testutil::FakeHttpServer fake;
  fake.Post(R"(/api/projects/[^/]+/volume/backups/[^/]+/verify)",
            [&](const httplib::Request&, httplib::Response& res) {
              testutil::FakeHttpServer::Json(res, 202, answer.dump());
            });
  std::mutex mu;
  json finished;  // guarded by mu
  fake.Get(R"(/api/operations/[^/]+)", [&](const httplib::Request&, httplib::Response& res) {
    std::lock_guard lock(mu);
    testutil::FakeHttpServer::Json(res, 200, finished.dump());
  });
  fake.Start();
  const Env env = {{"KINDLING_URL", fake.url()}, {"KINDLING_API_KEY", "kdl_fake_key_123456"}};
  const std::vector<std::string> args = {"volume",   "verify-backup", "--project", NewUuidV4(),
                                         "--backup", backup,          "--follow",  "--quiet"};

  auto finish_as = [&](json op) {
    std::lock_guard lock(mu);
    finished = std::move(op);
  };
  json failed_op = answer;
  failed_op["status"] = "failed";
  failed_op["error"] = "open the store: unreachable";
  finish_as(failed_op);
  RunResult failed = RunKindling(args, env);
  EXPECT_EQ(failed.exit_code, 1) << failed.Describe();
  EXPECT_NE(failed.err.find("(verify) failed: open the store: unreachable"), std::string::npos)
      << failed.Describe();

  json succeeded = answer;
  succeeded["status"] = "succeeded";
  succeeded["result"] = {{"ok", true}, {"chunks_checked", 3}, {"problems", json::array()}};
  finish_as(succeeded);
  RunResult ok = RunKindling(args, env);
  EXPECT_EQ(ok.exit_code, 0) << ok.Describe();
  EXPECT_NE(ok.out.find("result.problems"), std::string::npos) << ok.Describe();

  // A digest that does not match is a problem even without chunk problems.
  succeeded["result"] = {{"ok", true},
                         {"problems", json::array()},
                         {"image_digest_checked", true},
                         {"image_digest_matches", false}};
  finish_as(succeeded);
  RunResult mismatch = RunKindling(args, env);
  EXPECT_EQ(mismatch.exit_code, 3) << mismatch.Describe();
  EXPECT_NE(mismatch.err.find("does not match its manifest"), std::string::npos)
      << mismatch.Describe();

  // Without --follow the queued operation is all there is: exit 0.
  RunResult queued =
      RunKindling({"volume", "verify-backup", "--project", NewUuidV4(), "--backup", backup}, env);
  EXPECT_EQ(queued.exit_code, 0) << queued.Describe();
  EXPECT_NE(queued.out.find("queued verify: operation " + operation + ", backup " + backup),
            std::string::npos)
      << queued.Describe();
}

}  // namespace
}  // namespace kindling::clitest
