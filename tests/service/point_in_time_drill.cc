#include "point_in_time_drill.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <thread>

#include "service/local_postgres.h"

namespace kindling::service {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

fs::path FindFileStartingWith(const fs::path& root, const std::string& prefix) {
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file() && it->path().filename().string().starts_with(prefix))
      return it->path();
  }
  return {};
}

json ControlPlaneDrillTest::QueueBackup(const std::string& project) {
  return Call("POST", "/api/projects/" + project + "/volume/backups", json::object());
}

fs::path ControlPlaneDrillTest::ImageOf(const std::string& volume_id) const {
  for (const auto& entry : fs::directory_iterator(state_)) {
    const fs::path image = entry.path() / "volumes" / (volume_id + ".img");
    if (entry.path().filename().string().starts_with("worker-") && fs::exists(image)) return image;
  }
  return {};
}

void ControlPlaneDrillTest::WritePattern(const fs::path& image, const std::string& label,
                                         std::uint64_t offset, std::size_t bytes) {
  std::string data(bytes, '\0');
  std::uint64_t x = std::hash<std::string>{}(label) | 1;
  for (std::size_t i = 0; i < bytes; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    data[i] = static_cast<char>(x);
  }
  std::memcpy(data.data(), label.data(), std::min(label.size(), bytes));
  const int fd = ::open(image.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0) << image;
  ASSERT_EQ(::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset)),
            static_cast<ssize_t>(data.size()));
  ASSERT_EQ(::fsync(fd), 0);
  ::close(fd);
}

std::string ControlPlaneDrillTest::BytesAt(const fs::path& image, std::uint64_t offset,
                                           std::size_t bytes) {
  std::string data(bytes, '\0');
  const int fd = ::open(image.c_str(), O_RDONLY);
  if (fd < 0) return "";
  const ssize_t got = ::pread(fd, data.data(), data.size(), static_cast<off_t>(offset));
  ::close(fd);
  data.resize(got < 0 ? 0 : static_cast<std::size_t>(got));
  return data;
}

std::string ControlPlaneDrillTest::ImageDigest(const fs::path& image, std::int64_t chunk_size) {
  const CliResult digest = Kindling({"image", "digest", "--image", image.string(), "--chunk-size",
                                     std::to_string(chunk_size), "--json"});
  EXPECT_EQ(digest.exit_status, 0) << digest.output << digest.errors;
  return digest.Json().value("image_sha256", "");
}

json ControlPlaneDrillTest::AuditEvents(const std::string& action) {
  return Call("GET", "/api/platform/audit-events?limit=1000&action=" + action);
}

CliResult ControlPlaneDrillTest::RepositoryCommand(const DrillRepository& repository,
                                                   const std::string& command,
                                                   std::vector<std::string> args) {
  CliResult result = ControlPlane(command, std::move(args), seconds(180), repository.env);
  if (!repository.secret.empty()) {
    EXPECT_EQ(result.output.find(repository.secret), std::string::npos)
        << command << " printed the secret";
    EXPECT_EQ(result.errors.find(repository.secret), std::string::npos)
        << command << " printed the secret";
  }
  if (!repository.description.empty() && result.Json().is_object() &&
      result.Json().contains("repository")) {
    EXPECT_EQ(result.Json().value("repository", ""), repository.description) << command;
  }
  return result;
}

void ControlPlaneDrillTest::RunPointInTimeDrill(const DrillRepository& repository) {
  const auto test_start = Clock::now();
  const std::string dsn = Unquoted(dev_->value("KINDLING_DSN"));
  // kindling dev configured archiving and wal_level=logical itself.
  EXPECT_EQ(Strings(dsn, "SHOW wal_level"), std::vector<std::string>{"logical"});
  EXPECT_EQ(Strings(dsn, "SHOW archive_mode"), std::vector<std::string>{"on"});
  struct stat config {};
  ASSERT_EQ(::stat((state_ / "pgbackrest.conf").c_str(), &config), 0);
  EXPECT_EQ(config.st_mode & 0777, 0640u);
  EXPECT_NE(ReadAll(state_ / "pgbackrest.conf").find("repo1-cipher-type=aes-256-cbc"),
            std::string::npos);

  // Rows before T: two projects, a volume and a volume backup.
  const std::string keep = CreateProject("before-t");
  CreateProject("also-before-t");
  Call("PUT", "/api/projects/" + keep + "/volume", {{"size_gb", 1}});
  json volume = json::object();
  for (int i = 0; i < 200 && volume.value("health", "") != "healthy"; ++i) {
    volume = Call("GET", "/api/projects/" + keep + "/volume");
    std::this_thread::sleep_for(milliseconds(100));
  }
  ASSERT_EQ(volume.value("health", ""), "healthy") << volume;
  const std::string volume_id = volume.value("id", "");
  const fs::path image = ImageOf(volume_id);
  ASSERT_FALSE(image.empty()) << "no image of volume " << volume_id << " under " << state_;
  // Something recognisable in the image (a region ext4 leaves unused), then
  // a volume backup before T.
  constexpr std::uint64_t kPatternAt = 900ull << 20;
  WritePattern(image, "pattern-A", kPatternAt, 64 << 10);
  json op = WaitForOperation(QueueBackup(keep).value("id", ""));
  ASSERT_EQ(op.value("status", ""), "succeeded") << op;
  const std::string volume_backup = op.value("backup_id", "");

  // Without a backup, check fails and says why; it warns (without failing
  // for it) that the master key was never exported.
  const CliResult first_check = RepositoryCommand(repository, "check", {"--json"});
  EXPECT_EQ(first_check.exit_status, 1) << first_check.output << first_check.errors;
  EXPECT_NE(first_check.errors.find("no backup yet"), std::string::npos) << first_check.errors;
  EXPECT_EQ(first_check.Json().value("pgbackrest_check", ""), "ok") << first_check.output;
  ASSERT_EQ(first_check.Json()["warnings"].size(), 1u) << first_check.output;
  EXPECT_NE(first_check.Json()["warnings"][0].get<std::string>().find(
                "no export of the master key recorded"),
            std::string::npos)
      << first_check.output;
  EXPECT_NE(first_check.errors.find("warning: no export of the master key"), std::string::npos)
      << first_check.errors;
  // The operator's copy of the key, recorded in the database (before T, so
  // the restored database knows of it too).
  const CliResult exported =
      Kindling({"admin", "master-key", "export", "--out", (dir_ / "master.key.copy").string(),
                "--state-dir", state_.string(), "--dsn-file", (state_ / "postgres.dsn").string()});
  ASSERT_EQ(exported.exit_status, 0) << exported.output << exported.errors;
  EXPECT_NE(exported.errors.find("can read every backup"), std::string::npos) << exported.errors;

  const CliResult backup = RepositoryCommand(repository, "backup", {"--type", "full", "--json"});
  ASSERT_EQ(backup.exit_status, 0) << backup.output << backup.errors;
  const json backup_json = backup.Json();
  EXPECT_EQ(backup_json.value("type", ""), "full");
  EXPECT_FALSE(backup_json.value("label", "").empty());
  EXPECT_GT(backup_json.value("size_bytes", 0), 0);
  EXPECT_GT(backup_json.value("repo_size_bytes", 0), 0);
  EXPECT_GT(backup_json.value("duration_ms", 0), 0);

  const CliResult check = RepositoryCommand(repository, "check", {"--json"});
  ASSERT_EQ(check.exit_status, 0) << check.output << check.errors;
  const json check_json = check.Json();
  EXPECT_TRUE(check_json.value("ok", false));
  EXPECT_EQ(check_json.value("wal_level", ""), "logical");
  EXPECT_EQ(check_json["last_backup"].value("label", ""), backup_json.value("label", ""));
  EXPECT_LT(check_json.value("last_backup_age_seconds", 1e9), 120);
  EXPECT_FALSE(check_json["archiver"].value("failing", true));
  EXPECT_TRUE(check_json["warnings"].empty()) << check.output;
  EXPECT_EQ(check.output.find("WARNING"), std::string::npos) << check.output;

  // T: a second after the backup finished (restore needs a backup that
  // finished before T), with commits on both sides, and a volume backup in
  // flight at T (64 MiB that do not compress take it a moment): the
  // restored database has its operation pending or running, its manifest
  // is in the store.
  std::this_thread::sleep_for(milliseconds(1100));
  WritePattern(image, "pattern-B", kPatternAt, 64 << 20);
  const std::string in_flight = QueueBackup(keep).value("id", "");
  const std::string target = Rfc3339Now();
  std::this_thread::sleep_for(milliseconds(50));
  CreateProject("after-t");
  ASSERT_EQ(ProjectNames(), (std::set<std::string>{"before-t", "also-before-t", "after-t"}));
  op = WaitForOperation(in_flight);
  ASSERT_EQ(op.value("status", ""), "succeeded") << op;
  const std::string in_flight_backup = op.value("backup_id", "");
  const std::string in_flight_sha = op["result"].value("image_sha256", "");
  // A volume backup after T, of an image holding pattern C; then the image
  // changes again, so only a restore of that backup brings pattern C back.
  WritePattern(image, "pattern-C", kPatternAt, 1 << 20);
  op = WaitForOperation(QueueBackup(keep).value("id", ""));
  ASSERT_EQ(op.value("status", ""), "succeeded") << op;
  const std::string after_t_backup = op.value("backup_id", "");
  const std::string after_t_sha = op["result"].value("image_sha256", "");
  const json after_t_row = Call("GET", "/api/projects/" + keep + "/volume/backups")[0];
  ASSERT_EQ(after_t_row.value("id", ""), after_t_backup) << after_t_row;
  const std::int64_t chunk_size = after_t_row["metadata"].value("chunk_size", 0);
  ASSERT_GT(chunk_size, 0) << after_t_row;
  EXPECT_EQ(ImageDigest(image, chunk_size), after_t_sha);
  WritePattern(image, "pattern-D", kPatternAt, 1 << 20);
  ASSERT_NE(ImageDigest(image, chunk_size), after_t_sha);

  // While kindling dev runs, restoring in place is refused...
  const CliResult refused = RepositoryCommand(repository, "restore", {"--time", target});
  EXPECT_EQ(refused.exit_status, 1);
  EXPECT_NE(refused.errors.find("kindling dev is running"), std::string::npos) << refused.errors;

  // ...but a drill into another directory runs next to it.
  const fs::path copy = dir_ / "drill";
  const CliResult drill =
      RepositoryCommand(repository, "restore",
                        {"--time", target, "--into", copy.string(), "--keep-running", "--json"});
  ASSERT_EQ(drill.exit_status, 0) << drill.output << drill.errors;
  const json drill_json = drill.Json();
  EXPECT_TRUE(drill_json.value("running", false));
  EXPECT_EQ(drill_json.value("wal_level", ""), "logical");
  EXPECT_EQ(drill_json["row_counts"].value("projects", -1), 2);
  EXPECT_GT(drill_json.value("schema_version", 0), 0);
  EXPECT_TRUE(drill_json["new_backup"].is_null());
  const std::string copy_dsn = drill_json.value("dsn", "");
  {
    const auto names = Strings(copy_dsn, "SELECT name FROM projects ORDER BY name");
    EXPECT_EQ(names, (std::vector<std::string>{"also-before-t", "before-t"}));
    EXPECT_EQ(Strings(copy_dsn, "SHOW archive_mode"), std::vector<std::string>{"off"});
    EXPECT_EQ(Strings(copy_dsn, "SELECT count(*) FROM project_volume_backups WHERE id = '" +
                                    volume_backup + "'"),
              std::vector<std::string>{"1"});
    // At T the backup was in flight, and the one after T did not exist.
    const auto status = Strings(
        copy_dsn, "SELECT status FROM project_volume_operations WHERE id = '" + in_flight + "'");
    ASSERT_EQ(status.size(), 1u);
    EXPECT_TRUE(status[0] == "pending" || status[0] == "running") << status[0];
    EXPECT_EQ(Strings(copy_dsn, "SELECT count(*) FROM project_volume_backups WHERE id = '" +
                                    after_t_backup + "'"),
              std::vector<std::string>{"0"});
    // A drill copy is never audited: it shows the snapshot as it was.
    EXPECT_TRUE(drill_json["audit_event_id"].is_null()) << drill_json;
    EXPECT_EQ(Strings(copy_dsn,
                      "SELECT count(*) FROM cluster_audit_events WHERE action = "
                      "'control_plane.restored'"),
              std::vector<std::string>{"0"});
  }
  // Stop the copy (it would not archive anyway: archive_mode is off, also in
  // its postgresql.auto.conf).
  {
    LocalPostgresOptions options;
    options.data_dir = copy;
    options.socket_dir = copy;
    options.log_file = copy.string() + ".log";
    auto pg = LocalPostgres::Create(options);
    ASSERT_TRUE(pg);
    ASSERT_TRUE(pg->Stop());
  }
  // The running cluster kept everything and keeps running; the copy's new
  // timeline never reached the repository.
  EXPECT_EQ(ProjectNames(), (std::set<std::string>{"before-t", "also-before-t", "after-t"}));
  EXPECT_FALSE(repository.holds_timeline(2));
  EXPECT_EQ(Strings(dsn, "SELECT timeline_id::text FROM pg_control_checkpoint()"),
            std::vector<std::string>{"1"});

  // The real thing: stop kindling dev, restore in place to T, start again.
  const std::string api_key = dev_->value("KINDLING_API_KEY");
  const auto stopped = dev_->Terminate(seconds(90));
  ASSERT_TRUE(stopped.has_value());
  EXPECT_EQ(*stopped, 0);
  const CliResult restore = RepositoryCommand(repository, "restore", {"--time", target, "--json"});
  ASSERT_EQ(restore.exit_status, 0) << restore.output << restore.errors;
  const json restore_json = restore.Json();
  EXPECT_EQ(restore_json["row_counts"].value("projects", -1), 2);
  EXPECT_EQ(restore_json.value("wal_level", ""), "logical");
  EXPECT_FALSE(restore_json.value("running", true)) << "dev's cluster is left stopped";
  EXPECT_EQ(restore_json["new_backup"].value("type", ""), "full");
  EXPECT_TRUE(restore_json["problems"].empty()) << restore_json;
  // Among them: every WAL file archived before the stop.
  EXPECT_TRUE(restore_json["warnings"].empty()) << restore_json;
  EXPECT_LT(restore_json.value("restore_ms", 1e9), 30'000);
  EXPECT_TRUE(restore_json["audit_event_id"].is_string()) << restore_json;
  // Timeline 2 began, and the restore's new backup put its history in the
  // repository (which also shows the copy's absence above is no accident).
  EXPECT_TRUE(repository.holds_timeline(2));
  // The next steps, in order: DSN file, start again, validate, the rescan.
  {
    const json steps = restore_json["next_steps"];
    ASSERT_GE(steps.size(), 4u) << restore_json;
    EXPECT_NE(steps[0].get<std::string>().find("postgres.dsn"), std::string::npos) << steps;
    EXPECT_NE(steps[1].get<std::string>().find("kindling dev --state-dir"), std::string::npos)
        << steps;
    EXPECT_NE(steps[2].get<std::string>().find("kindling admin validate"), std::string::npos)
        << steps;
    EXPECT_NE(steps[3].get<std::string>().find("kindling admin backups rescan"), std::string::npos)
        << steps;
  }

  // Start again, with a short leader start grace: what the snapshot left in
  // flight must be resolved within it.
  ::setenv("KINDLING_LEADER_START_GRACE", "30s", 1);
  const auto restarted_at = std::chrono::system_clock::now();
  const auto restarted = Clock::now();
  dev_ = std::make_unique<DevProcess>(state_, kBackupsByHand);
  ::unsetenv("KINDLING_LEADER_START_GRACE");
  EXPECT_EQ(dev_->value("KINDLING_API_KEY"), api_key);
  EXPECT_EQ(ProjectNames(), (std::set<std::string>{"before-t", "also-before-t"}));
  // The rescan the leader runs when it starts leading gives the backup made
  // after T its row back...
  json backups;
  for (const auto deadline = Clock::now() + seconds(60); Clock::now() < deadline;) {
    backups = Call("GET", "/api/projects/" + keep + "/volume/backups");
    if (std::ranges::any_of(backups,
                            [&](const json& b) { return b.value("id", "") == after_t_backup; }))
      break;
    std::this_thread::sleep_for(milliseconds(250));
  }
  // ...and no operation stays pending or running beyond the grace.
  std::vector<std::string> unresolved;
  for (const auto deadline = restarted + seconds(75); Clock::now() < deadline;) {
    unresolved = Strings(dsn,
                         "SELECT id::text || ' ' || kind || ' ' || status FROM "
                         "project_volume_operations WHERE status IN ('pending', 'running')");
    if (unresolved.empty()) break;
    std::this_thread::sleep_for(milliseconds(250));
  }
  EXPECT_TRUE(unresolved.empty()) << unresolved[0];
  const auto resolved_after = std::chrono::duration_cast<milliseconds>(Clock::now() - restarted);
  // The backup in flight at T was recorded from its manifest, not made again.
  op = Call("GET", "/api/operations/" + in_flight);
  EXPECT_EQ(op.value("status", ""), "succeeded") << op;
  EXPECT_TRUE(op["result"].value("resumed", false)) << op;
  EXPECT_EQ(op["result"].value("image_sha256", ""), in_flight_sha) << op;
  backups = Call("GET", "/api/projects/" + keep + "/volume/backups");
  ASSERT_TRUE(backups.is_array());
  std::map<std::string, json> by_id;
  for (const json& b : backups) by_id[b.value("id", "")] = b;
  EXPECT_EQ(by_id.size(), 3u) << backups;
  EXPECT_EQ(by_id[volume_backup].value("status", ""), "succeeded") << backups;
  EXPECT_EQ(by_id[in_flight_backup].value("status", ""), "succeeded") << backups;
  EXPECT_EQ(by_id[in_flight_backup]["metadata"].value("image_sha256", ""), in_flight_sha);
  EXPECT_EQ(by_id[after_t_backup].value("status", ""), "succeeded") << backups;
  EXPECT_TRUE(by_id[after_t_backup]["metadata"].value("imported", false)) << backups;
  EXPECT_EQ(by_id[after_t_backup]["metadata"].value("image_sha256", ""), after_t_sha);

  // The audit trail: the restore itself (written by it into the restored
  // database) and the rescan's imports.
  const json restored_events = AuditEvents("control_plane.restored");
  ASSERT_EQ(restored_events.size(), 1u) << restored_events;
  {
    const json& details = restored_events[0]["details"];
    EXPECT_EQ(restored_events[0].value("resource_type", ""), "cluster");
    EXPECT_EQ(details.value("target", ""), target) << details;
    EXPECT_EQ(details.value("backup_set", ""), restore_json.value("backup_set", "")) << details;
    EXPECT_FALSE(details.value("host", "").empty()) << details;
    EXPECT_FALSE(details.value("os_user", "").empty()) << details;
    EXPECT_GT(details.value("recovery_ms", 0), 0) << details;
    EXPECT_EQ(restored_events[0].value("id", ""), restore_json.value("audit_event_id", ""));
  }
  const json imported_events = AuditEvents("volume.backup.imported");
  ASSERT_EQ(imported_events.size(), 1u) << imported_events;
  EXPECT_EQ(imported_events[0]["details"].value("backup_id", ""), after_t_backup);
  EXPECT_EQ(imported_events[0]["details"].value("by", ""), "rescan");
  EXPECT_EQ(imported_events[0].value("resource_id", ""), volume_id);
  EXPECT_FALSE(AuditEvents("backups.rescan").empty());

  // The backup made after T restores bit for bit: pattern C is back.
  volume = Call("GET", "/api/projects/" + keep + "/volume");
  op = Call("POST", "/api/projects/" + keep + "/volume/restore",
            {{"backup_id", after_t_backup}, {"target_server_id", volume.value("server_id", "")}});
  op = WaitForOperation(op.value("id", ""), seconds(120));
  ASSERT_EQ(op.value("status", ""), "succeeded") << op;
  EXPECT_EQ(op["result"].value("image_sha256", ""), after_t_sha) << op;
  const fs::path restored_image = ImageOf(volume_id);
  EXPECT_EQ(ImageDigest(restored_image, chunk_size), after_t_sha);
  EXPECT_EQ(BytesAt(restored_image, kPatternAt, 9), "pattern-C");

  EXPECT_EQ(Strings(dsn, "SHOW wal_level"), std::vector<std::string>{"logical"});
  EXPECT_EQ(Strings(dsn, "SELECT timeline_id::text FROM pg_control_checkpoint()"),
            std::vector<std::string>{"2"});
  Call("GET", "/api/meta");
  EXPECT_TRUE(WorkersHeartbeatSince(restarted_at, seconds(30)));
  // Backups keep working on the new timeline; the validation checklist passes.
  const CliResult after = RepositoryCommand(repository, "check", {"--json"});
  EXPECT_EQ(after.exit_status, 0) << after.output << after.errors;
  EXPECT_TRUE(after.Json()["warnings"].empty()) << after.output;  // the export is before T
  // kindling dev checked the control-plane backups of the new timeline and
  // stored the report for the API (the validation's control_plane_backup).
  const json health =
      WaitForStoredCheck([&] { return Call("GET", "/api/platform/health"); }, restarted_at);
  EXPECT_EQ(health["ok"], true) << health.dump(2);
  EXPECT_FALSE(health.value("stale", true)) << health.dump(2);
  EXPECT_EQ(health["schedule"].value("full_every_seconds", -1), 0) << health.dump(2);
  const CliResult validate =
      Kindling({"admin", "validate", "--url", dev_->value("KINDLING_URL"), "--api-key", api_key,
                "--dsn-file", (state_ / "postgres.dsn").string()});
  EXPECT_EQ(validate.exit_status, 0) << validate.output << validate.errors;

  ASSERT_TRUE(dev_->Terminate(seconds(90)).has_value());
  const auto took = std::chrono::duration_cast<seconds>(Clock::now() - test_start);
  std::printf(
      "drill (%s) took %lld s (backup %lld ms, in-place restore %lld ms [pgbackrest restore %lld "
      "ms, "
      "recovery %lld ms, with the new full backup %lld ms], copy %lld ms, operations resolved "
      "%lld ms after the restart)\n",
      repository.description.c_str(), static_cast<long long>(took.count()),
      static_cast<long long>(backup.took.count()), static_cast<long long>(restore.took.count()),
      static_cast<long long>(restore_json.value("restore_ms", 0)),
      static_cast<long long>(restore_json.value("recovery_ms", 0)),
      static_cast<long long>(restore_json.value("duration_ms", 0)),
      static_cast<long long>(drill.took.count()), static_cast<long long>(resolved_after.count()));
}

}  // namespace kindling::service
