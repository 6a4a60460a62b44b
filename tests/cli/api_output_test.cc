// The human views of API answers: aligned tables and fields, "-" for what is
// missing, secrets only as set/not set, progress read from an operation.
#include "cli/api_output.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace kindling::cli {
namespace {

using nlohmann::json;

// The value of the "label  value" line for `label` ("<none>" without one).
std::string FieldValue(const std::string& text, const std::string& label) {
  std::size_t at = 0;
  while (at < text.size()) {
    const std::size_t end = text.find('\n', at);
    const std::string line = text.substr(at, end - at);
    if (line.starts_with(label + "  ")) {
      const std::size_t value = line.find_first_not_of(' ', label.size());
      return value == std::string::npos ? "" : line.substr(value);
    }
    if (end == std::string::npos) break;
    at = end + 1;
  }
  return "<none>";
}

TEST(ApiOutputTest, TablesAlignColumns) {
  EXPECT_EQ(FormatTable({"ID", "NAME"}, {{"1", "web"}, {"12345", "db"}}),
            "ID     NAME\n"
            "1      web\n"
            "12345  db\n");
  // Short rows are padded; trailing blanks are trimmed.
  EXPECT_EQ(FormatTable({"A", "B", "C"}, {{"x"}}), "A  B  C\nx\n");
  EXPECT_EQ(FormatFields({{"status", "ok"}, {"last error", "-"}}),
            "status      ok\n"
            "last error  -\n");
}

TEST(ApiOutputTest, CellsShowMissingAsDash) {
  const json object = {{"s", "text"}, {"empty", ""}, {"null", nullptr},
                       {"n", 42},     {"yes", true}, {"obj", {{"a", 1}}}};
  EXPECT_EQ(Cell(object, "s"), "text");
  EXPECT_EQ(Cell(object, "empty"), "-");
  EXPECT_EQ(Cell(object, "null"), "-");
  EXPECT_EQ(Cell(object, "absent"), "-");
  EXPECT_EQ(Cell(object, "n"), "42");
  EXPECT_EQ(Cell(object, "yes"), "yes");
  EXPECT_EQ(Cell(object, "obj"), R"({"a":1})");
  EXPECT_EQ(Cell(json::array(), "s"), "-");
  EXPECT_EQ(Cell(json{{"s", "\x1b[31mred\nline"}}, "s"), "\\x1b[31mred line");
}

TEST(ApiOutputTest, ReadsOperationProgress) {
  EXPECT_FALSE(ProgressOf(json{{"progress", {{"phase", nullptr}}}}));
  EXPECT_FALSE(ProgressOf(json{{"status", "pending"}}));
  auto progress = ProgressOf(
      json{{"progress", {{"phase", "backup"}, {"bytes_done", 512}, {"bytes_total", 2048}}}});
  ASSERT_TRUE(progress);
  EXPECT_EQ(progress->phase, "backup");
  EXPECT_EQ(progress->bytes_done, 512u);
  EXPECT_EQ(progress->bytes_total, 2048u);
  progress = ProgressOf(json{{"progress", {{"phase", "retention"}}}});
  ASSERT_TRUE(progress);
  EXPECT_EQ(progress->bytes_total, 0u);
}

TEST(ApiOutputTest, OperationShowsProgressErrorAndResult) {
  const json op = {{"id", "op-1"},
                   {"kind", "backup"},
                   {"status", "running"},
                   {"backup_id", "b-1"},
                   {"target_server_id", nullptr},
                   {"progress",
                    {{"phase", "backup"},
                     {"bytes_done", std::uint64_t{1} << 30},
                     {"bytes_total", std::uint64_t{4} << 30}}},
                   {"error", "disk on fire"},
                   {"result", {{"stored_bytes", 1536}, {"image_sha256", "abc"}}}};
  const std::string text = OperationText(op);
  EXPECT_EQ(FieldValue(text, "progress"), "backup 1.00 GiB / 4.00 GiB (25%)") << text;
  EXPECT_EQ(FieldValue(text, "error"), "disk on fire") << text;
  EXPECT_EQ(FieldValue(text, "result.stored_bytes"), "1.50 KiB") << text;
  EXPECT_EQ(FieldValue(text, "result.image_sha256"), "abc") << text;
  EXPECT_EQ(FieldValue(text, "target server"), "<none>") << text;
  EXPECT_EQ(QueuedText(op), "queued backup: operation op-1, backup b-1\n");
}

TEST(ApiOutputTest, VolumeServersAndSettings) {
  const json volume = {{"id", "v-1"},
                       {"status", "detached"},
                       {"size_gb", 5},
                       {"backup_policy", {{"schedule", "daily"}, {"retention_count", 7}}},
                       {"current_operation", nullptr},
                       {"last_error", nullptr}};
  const std::string text = VolumeText(volume);
  EXPECT_EQ(FieldValue(text, "size"), "5 GiB") << text;
  EXPECT_EQ(FieldValue(text, "backups"), "daily, keep 7") << text;
  EXPECT_EQ(FieldValue(text, "server"), "-") << text;
  EXPECT_EQ(FieldValue(text, "last error"), "<none>") << text;
  EXPECT_EQ(FieldValue(text, "last backup"), "-") << text;

  // The schedule's details, the last backup's age and verification.
  json scheduled = volume;
  scheduled["backup_policy"] = {{"schedule", "cron"},          {"cron", "0 */6 * * *"},
                                {"window_start", "22:00"},     {"window_minutes", nullptr},
                                {"time_zone", "Europe/Paris"}, {"retention_count", 2}};
  scheduled["next_backup_at"] = "2026-12-04T03:00:00Z";
  scheduled["last_successful_backup_at"] = "2026-12-03T21:00:00Z";
  scheduled["last_backup_age_seconds"] = 3 * 3600;
  scheduled["last_backup_verify_state"] = "ok";
  const std::string shown_schedule = VolumeText(scheduled);
  EXPECT_EQ(FieldValue(shown_schedule, "backups"),
            "cron \"0 */6 * * *\" in 22:00+60min Europe/Paris, keep 2")
      << shown_schedule;
  EXPECT_EQ(FieldValue(shown_schedule, "next backup"), "2026-12-04T03:00:00Z") << shown_schedule;
  EXPECT_EQ(FieldValue(shown_schedule, "last backup"), "2026-12-03T21:00:00Z (3h ago, verified ok)")
      << shown_schedule;
  scheduled["last_backup_verify_state"] = nullptr;
  EXPECT_EQ(FieldValue(VolumeText(scheduled), "last backup"),
            "2026-12-03T21:00:00Z (3h ago, verified never)");

  const json servers = json::array({{{"id", "s-1"},
                                     {"hostname", "w1"},
                                     {"status", "active"},
                                     {"health", "healthy"},
                                     {"heartbeat_age_seconds", 3.2},
                                     {"runtime", "sparse-image"},
                                     {"enabled_components", {"worker", "api"}}}});
  const std::string table = ServersText(servers);
  EXPECT_NE(table.find("s-1  w1        active  healthy  3s ago     sparse-image  worker,api"),
            std::string::npos)
      << table;
  EXPECT_EQ(ServersText(json::array()), "no servers\n");

  const json settings = {{"s3_bucket", "b"},
                         {"s3_access_key_id", "set"},
                         {"s3_secret_access_key", "not set"},
                         {"configured", false},
                         {"missing_reason", "volume_backup_s3_secret_access_key is not set"},
                         {"storage_url", nullptr}};
  const std::string shown = BackupSettingsText(settings);
  EXPECT_EQ(FieldValue(shown, "s3 secret access key"), "not set") << shown;
  EXPECT_EQ(FieldValue(shown, "s3 access key id"), "set") << shown;
  EXPECT_EQ(FieldValue(shown, "configured"), "no (volume_backup_s3_secret_access_key is not set)")
      << shown;
  EXPECT_EQ(ProbeText(json{
                {"ok", false}, {"step", "write"}, {"error", "denied"}, {"storage_url", "s3://b"}}),
            "failed at step write (s3://b): denied\n");
}

TEST(ApiOutputTest, BackupsShowDamagedChunksUnderTheirRow) {
  const std::string chunk(64, 'c');
  const json backups = json::array(
      {{{"id", "b-2"},
        {"status", "damaged"},
        {"kind", "manual"},
        {"size_bytes", 1024},
        {"pinned", true},
        {"verified_at", "2026-01-02T00:00:00Z"},
        {"verify_state", "damaged"},
        {"storage_url", "file:///srv/b"},
        {"error", nullptr},
        {"damage",
         {{"chunks",
           {{{"chunk_id", chunk}, {"problem", "corrupt"}, {"offsets", {0, 4194304, 8388608, 1}}},
            {{"chunk_id", "d1"}, {"problem", "missing"}, {"offsets", {65536}}}}},
          {"storage_url", "file:///srv/b"}}}},
       {{"id", "b-1"},
        {"status", "failed"},
        {"kind", "manual"},
        {"error", "disk\nfull"},
        {"damage", nullptr}}});
  const std::string text = BackupsText(backups);
  EXPECT_EQ(
      text.substr(0, text.find('\n')),
      "ID   STATUS   KIND    PINNED  SIZE      CREATED  COMPLETED  VERIFIED                      "
      "STORE          ERROR")
      << text;
  // The damage lines follow the damaged row, before the next one.
  const std::size_t row = text.find(
      "b-2  damaged  manual  yes     1.00 KiB  -        -          damaged 2026-01-02T00:00:00Z");
  const std::size_t corrupt =
      text.find("    corrupt chunk " + chunk + " at offsets 0, 4194304, 8388608 and 1 more\n");
  const std::size_t missing = text.find("    missing chunk d1 at offset 65536\n");
  const std::size_t next =
      text.find("b-1  failed   manual  -       -         -        -          -  ");
  ASSERT_NE(row, std::string::npos) << text;
  ASSERT_NE(corrupt, std::string::npos) << text;
  ASSERT_NE(missing, std::string::npos) << text;
  ASSERT_NE(next, std::string::npos) << text;
  EXPECT_LT(row, corrupt);
  EXPECT_LT(corrupt, missing);
  EXPECT_LT(missing, next);
  EXPECT_NE(text.find("disk full"), std::string::npos) << text;  // one line per row
  EXPECT_NE(text.find("1 damaged backup(s) cannot be restored"), std::string::npos) << text;
  EXPECT_EQ(BackupsText(json::array()), "no backups\n");
  EXPECT_TRUE(DamageLines(backups[1]).empty());
  EXPECT_EQ(DamageLines(backups[0]).size(), 2u);
}

TEST(ApiOutputTest, ProjectBackupsShowVolumeAndDeletion) {
  const json backups = json::array({{{"id", "b-1"},
                                     {"status", "succeeded"},
                                     {"kind", "pre_delete"},
                                     {"project_volume_id", "v-1"},
                                     {"volume_deleted", true},
                                     {"pinned", false},
                                     {"verified_at", "2026-01-03T00:00:00Z"},
                                     {"verify_state", "ok"},
                                     {"size_bytes", 2048},
                                     {"created_at", "2026-01-01T00:00:00Z"},
                                     {"storage_url", "s3://b/p"}}});
  EXPECT_EQ(ProjectBackupsText(backups),
            "ID   STATUS     KIND        PINNED  VOLUME  VOLUME DELETED  SIZE      CREATED         "
            "      VERIFIED                 STORE     ERROR\n"
            "b-1  succeeded  pre_delete  no      v-1     yes             2.00 KiB  "
            "2026-01-01T00:00:00Z  ok 2026-01-03T00:00:00Z  s3://b/p  -\n");
  EXPECT_EQ(ProjectBackupsText(json::array()), "no backups\n");
}

TEST(ApiOutputTest, VerifyOperationListsProblems) {
  const json op = {{"id", "op-1"},
                   {"kind", "verify"},
                   {"status", "succeeded"},
                   {"backup_id", "b-1"},
                   {"result",
                    {{"ok", false},
                     {"chunks_checked", 3},
                     {"problems",
                      {{{"kind", "corrupt"},
                        {"chunk_id", "ab"},
                        {"key", "chunks/ab/ab"},
                        {"offset", 4194304},
                        {"message", "authentication failed"}}}}}}};
  const std::string text = OperationText(op);
  EXPECT_EQ(FieldValue(text, "result.problems"), "1") << text;
  EXPECT_EQ(FieldValue(text, "result.ok"), "no") << text;
  EXPECT_EQ(VerifyProblemsText(op),
            "  corrupt chunk ab at offset 4194304 (chunks/ab/ab): authentication failed\n");
  EXPECT_EQ(VerifyProblemsText(json{{"result", {{"ok", true}, {"problems", json::array()}}}}), "");
  EXPECT_EQ(VerifyProblemsText(json::object()), "");
}

TEST(ApiOutputTest, QuarantineAndStores) {
  const json entries = json::array({{{"id", "q-1"},
                                     {"reason", "conflict"},
                                     {"status", "held"},
                                     {"project_volume_id", "v-1"},
                                     {"server_id", "s-1"},
                                     {"size_bytes", 1073741824},
                                     {"allocated_bytes", 3145728},
                                     {"quarantined_at", "2026-01-01T00:00:00Z"},
                                     {"purge_after", nullptr},
                                     {"detail", "the database pins the volume to server s-2"}},
                                    {{"id", "q-2"},
                                     {"reason", "replaced"},
                                     {"status", "purged"},
                                     {"project_volume_id", "v-1"},
                                     {"server_id", "s-1"},
                                     {"detail", "restore r moved the volume"}}});
  const std::string text = QuarantineText(entries);
  EXPECT_NE(text.find("q-1  conflict  held    v-1     s-1     1.00 GiB  3.00 MiB   "
                      "2026-01-01T00:00:00Z  -\n"
                      "    the database pins the volume to server s-2\n"),
            std::string::npos)
      << text;
  // Only held entries need a decision: no detail line for the purged one.
  EXPECT_EQ(text.find("restore r moved"), std::string::npos) << text;
  EXPECT_EQ(QuarantineText(json::array()), "no quarantined images\n");
  EXPECT_EQ(PurgeRequestedText(json{{"id", "q-1"},
                                    {"project_volume_id", "v-1"},
                                    {"server_id", "s-1"},
                                    {"purge_after", "2026-01-01T00:00:00Z"}}),
            "purge requested: quarantined image q-1 of volume v-1 on server s-1 is deleted by that "
            "worker on its next pass (purge after 2026-01-01T00:00:00Z)\n");

  const json stores =
      json::array({{{"storage_url", "file:///srv/b"}, {"created_at", "t1"}, {"updated_at", "t2"}},
                   {{"storage_url", "s3://bucket/p"}, {"created_at", "t0"}, {"updated_at", "t1"}}});
  EXPECT_EQ(BackupStoresText(stores, "s3://bucket/p"),
            "STORAGE URL    CURRENT  CREATED  UPDATED\n"
            "file:///srv/b  no       t1       t2\n"
            "s3://bucket/p  yes      t0       t1\n");
  EXPECT_NE(BackupStoresText(stores, "").find("file:///srv/b  no"), std::string::npos);
  EXPECT_EQ(BackupStoresText(json::array(), ""), "no backup stores used yet\n");
}

TEST(ApiOutputTest, RescanOrphansAndAssignment) {
  const json report = {
      {"stores", {"file:///srv/b"}},
      {"manifests", 4},
      {"known", 1},
      {"imported",
       {{{"backup_id", "b1"},
         {"volume_id", "v1"},
         {"project_id", "p1"},
         {"size_bytes", 1073741824},
         {"created_at", "2024-05-01T00:00:00Z"},
         {"storage_url", "file:///srv/b"},
         {"volume_deleted", true},
         {"recovered", true}}}},
      {"orphaned",
       {{{"backup_id", "b2"},
         {"volume_id", "vol-42"},
         {"assignable", false},
         {"first_found", true}}}},
      {"unreadable",
       {{{"storage_url", "s3://gone"}, {"key", nullptr}, {"error", "not\nrecorded"}}}}};
  const std::string text = RescanText(report);
  EXPECT_NE(text.find("was failed, volume deleted"), std::string::npos) << text;
  EXPECT_NE(text.find("b2"), std::string::npos) << text;
  EXPECT_NE(text.find("- (ids not UUIDs)"), std::string::npos) << text;
  EXPECT_NE(text.find("  s3://gone: not recorded\n"), std::string::npos) << text;
  EXPECT_NE(text.find("scanned 1 store(s), 4 backup(s): 1 imported, 1 orphan(s) (1 new), 1 "
                      "unreadable, 1 already known"),
            std::string::npos)
      << text;
  // An answer without the lists (an older or newer server) still renders.
  EXPECT_NE(RescanText(json::object()).find("0 imported"), std::string::npos);
  EXPECT_EQ(OrphansText(json::array()), "no orphan backups\n");
  EXPECT_NE(AssignedText({{"backup", {{"id", "b2"}}},
                          {"project_id", "p9"},
                          {"volume_id", "v9"},
                          {"volume_created", true}})
                .find("kindling volume restore --project p9 --backup b2"),
            std::string::npos);
}

// A deployment as the API answers it, with its newest instance.
json Deployment(const std::string& id, const std::string& status, json instance) {
  return {{"id", id},
          {"project_id", "p1"},
          {"service", "web"},
          {"image", "canary"},
          {"status", status},
          {"desired_state", "running"},
          {"hostname", "web-shop.apps.example.com"},
          {"memory_mib", 256},
          {"vcpus", 2},
          {"boot_timeout_seconds", 60},
          {"stop_timeout_seconds", 20},
          {"error", nullptr},
          {"superseded_at", nullptr},
          {"instance", std::move(instance)},
          {"created_at", "2024-05-01T12:00:00Z"}};
}

TEST(ApiOutputTest, DeploymentFieldsAndItsInstance) {
  json running = Deployment("d1", "running",
                            {{"id", "i1"},
                             {"server_id", "s1"},
                             {"vm_id", "vm1"},
                             {"status", "running"},
                             {"address", "10.0.0.2:8080"},
                             {"error", nullptr}});
  std::string text = DeploymentText(running);
  EXPECT_EQ(FieldValue(text, "deployment"), "d1");
  EXPECT_EQ(FieldValue(text, "desired"), "running");
  EXPECT_EQ(FieldValue(text, "hostname"), "web-shop.apps.example.com");
  EXPECT_EQ(FieldValue(text, "resources"), "256 MiB, 2 vCPUs");
  EXPECT_EQ(FieldValue(text, "timeouts"), "boot 60s, stop 20s");
  EXPECT_EQ(FieldValue(text, "instance"), "i1 running");
  EXPECT_EQ(FieldValue(text, "server"), "s1");
  EXPECT_EQ(FieldValue(text, "address"), "10.0.0.2:8080");
  EXPECT_EQ(FieldValue(text, "vm"), "vm1");
  EXPECT_EQ(FieldValue(text, "error"), "<none>");

  // The instance's error wins over the deployment's; no instance shows "-".
  json failed = Deployment("d2", "failed",
                           {{"id", "i2"},
                            {"server_id", "s1"},
                            {"status", "failed"},
                            {"error", "guest did not answer\nin 60 s"}});
  failed["error"] = "instance failed";
  EXPECT_EQ(FieldValue(DeploymentText(failed), "error"), "guest did not answer in 60 s");
  json bare = Deployment("d3", "pending", nullptr);
  bare["error"] = "no worker";
  bare["superseded_at"] = "2024-05-02T00:00:00Z";
  bare["desired_state"] = "stopped";
  text = DeploymentText(bare);
  EXPECT_EQ(FieldValue(text, "instance"), "-");
  EXPECT_EQ(FieldValue(text, "error"), "no worker");
  EXPECT_EQ(FieldValue(text, "desired"), "stopped (superseded)");
  EXPECT_EQ(FieldValue(DeploymentText(json::object()), "resources"), "-");
}

TEST(ApiOutputTest, DeploymentsTableWithErrorsUnderTheirRow) {
  EXPECT_EQ(DeploymentsText(json::array()), "no deployments\n");
  json failed = Deployment("d2", "failed",
                           {{"id", "i2"},
                            {"server_id", "s1"},
                            {"status", "failed"},
                            {"address", nullptr},
                            {"error", "guest did not answer"}});
  json old =
      Deployment("d1", "stopped",
                 {{"id", "i1"}, {"server_id", "s1"}, {"status", "stopped"}, {"address", nullptr}});
  old["desired_state"] = "stopped";
  old["superseded_at"] = "2024-05-02T00:00:00Z";
  const std::string text = DeploymentsText(json::array({failed, old}));
  EXPECT_TRUE(text.starts_with("ID  SERVICE  IMAGE   STATUS   DESIRED               HOSTNAME"))
      << text;
  EXPECT_NE(text.find("d2  web      canary  failed   running               "
                      "web-shop.apps.example.com  s1      -"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("\n    error: guest did not answer\nd1  "), std::string::npos) << text;
  EXPECT_NE(text.find("stopped (superseded)"), std::string::npos) << text;
}

TEST(ApiOutputTest, DeploymentStatusLine) {
  EXPECT_EQ(DeploymentStatusLine(Deployment("d1", "pending", nullptr)), "web (canary): pending");
  EXPECT_EQ(DeploymentStatusLine(Deployment("d1", "running",
                                            {{"id", "0190a2b4-0000-7000-8000-000000000001"},
                                             {"server_id", "5e1f2c3d-0000-4000-8000-000000000002"},
                                             {"status", "running"},
                                             {"address", "10.0.0.9:8080"}})),
            "web (canary): running; instance running on server 5e1f2c3d at 10.0.0.9:8080");
}

}  // namespace
}  // namespace kindling::cli
