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

}  // namespace
}  // namespace kindling::cli
