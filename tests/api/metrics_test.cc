// GET /metrics: valid Prometheus text (promtool check metrics), gauges for
// everything computed from rows, values aggregated over every volume.
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "api_test_fixture.h"
#include "common/subprocess.h"

namespace kindling::api {
namespace {

// promtool on PATH; empty when missing.
std::string FindPromtool() {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    const std::filesystem::path candidate = std::filesystem::path(dir) / "promtool";
    if (!dir.empty() && ::access(candidate.c_str(), X_OK) == 0) return candidate.string();
  }
  return "";
}

class MetricsTest : public ApiServerTest {
 protected:
  // `n` volumes (one project each) on one server, each with a succeeded
  // backup of 10 s that moved 1000 bytes, a failed restore that moved 7, and
  // a backup row; the first is deleted.
  void MakeVolumesWithHistory(int n) {
    const std::string server = MakeServer("w1");
    for (int i = 0; i < n; ++i) {
      const std::string project = MakeProject(org_, "p" + std::to_string(i));
      const db::Volume volume = MakeVolume(project, server);
      const std::string v = "'" + volume.id + "'";
      Sql("INSERT INTO project_volume_operations (project_volume_id, kind, status, started_at, "
          "completed_at, progress) VALUES (" +
          v +
          ", 'backup', 'succeeded', now() - interval '10 seconds', now(), "
          "'{\"bytes_done\": 1000}')");
      Sql("INSERT INTO project_volume_operations (project_volume_id, kind, status, started_at, "
          "failed_at, progress) VALUES (" +
          v +
          ", 'restore', 'failed', now() - interval '3 seconds', now(), "
          "'{\"bytes_done\": 7, \"note\": \"x\"}')");
      Sql("INSERT INTO project_volume_backups (project_volume_id, kind, status, size_bytes) "
          "VALUES (" +
          v + ", 'manual', 'succeeded', 4096)");
      if (i == 0) Sql("UPDATE project_volumes SET deleted_at = now() WHERE id = " + v);
    }
  }

  std::string Scrape() {
    auto res = client_->Get("/metrics", {{"Authorization", "Bearer " + admin_key_}});
    EXPECT_TRUE(res);
    if (!res) return "";
    EXPECT_EQ(res->status, 200) << res->body;
    return res->body;
  }

  testutil::TempDir dir_;
};

TEST_F(MetricsTest, PassesPromtoolCheckMetrics) {
  const std::string promtool = FindPromtool();
  // CI installs it (scripts/install-deps.sh): a missing promtool fails.
  ASSERT_FALSE(promtool.empty()) << "promtool is not on PATH (Debian package prometheus)";
  MakeVolumesWithHistory(3);
  Sql("INSERT INTO control_plane_backup_status (stanza, ok, report, hostname) VALUES ('main', "
      "true, "
      "'{\"last_backup_age_seconds\": 60, \"archiver\": {\"failed_count\": 2}}', 'db1')");
  const std::string text = Scrape();
  const std::filesystem::path file = dir_.path() / "metrics.txt";
  std::ofstream(file) << text;
  auto checked = SystemCommandRunner().Run(CommandOptions{
      .args = {"/bin/sh", "-c", "exec \"$0\" check metrics < \"$1\"", promtool, file.string()}});
  ASSERT_TRUE(checked) << checked.error().message();
  EXPECT_EQ(checked->exit_status, 0) << checked->output << checked->errors << "\n" << text;
  EXPECT_NE(text.find("kindling_control_plane_wal_archive_failed_total 2\n"), std::string::npos)
      << text;
}

TEST_F(MetricsTest, OperationGaugesAggregateEveryVolume) {
  MakeVolumesWithHistory(4);
  const std::string text = Scrape();
  for (const std::string line : {
           "# TYPE kindling_operations gauge\n",
           "kindling_operations{kind=\"backup\",status=\"succeeded\"} 4\n",
           "kindling_operations{kind=\"restore\",status=\"failed\"} 4\n",
           "# TYPE kindling_operation_bytes gauge\n",
           "kindling_operation_bytes{kind=\"backup\"} 4000\n",
           "kindling_operation_bytes{kind=\"restore\"} 28\n",
           "# TYPE kindling_operation_succeeded_duration_seconds gauge\n",
           "kindling_operation_succeeded_duration_seconds{kind=\"restore\"} 0\n",
       }) {
    EXPECT_NE(text.find(line), std::string::npos) << line << " in\n" << text;
  }
  // No counter or summary computed from rows that can go away.
  EXPECT_EQ(text.find("kindling_operation_bytes_total"), std::string::npos) << text;
  EXPECT_EQ(text.find("summary"), std::string::npos) << text;
  const std::string duration = "kindling_operation_succeeded_duration_seconds{kind=\"backup\"} ";
  const auto at = text.find(duration);
  ASSERT_NE(at, std::string::npos) << text;
  EXPECT_NEAR(std::stod(text.substr(at + duration.size())), 40.0, 0.5);
}

// The value after `prefix` on its line of `text`; NaN when absent.
double Sample(const std::string& text, const std::string& prefix) {
  const auto at = text.find(prefix);
  if (at == std::string::npos) return std::nan("");
  return std::stod(text.substr(at + prefix.size()));
}

TEST_F(MetricsTest, VolumeBackupAgeIsPerLiveVolumeAndCountsOnlySucceededBackups) {
  const std::string server = MakeServer("w1");
  const db::Volume backed_up = MakeVolume(MakeProject(org_, "a"), server);
  const db::Volume damaged_only = MakeVolume(MakeProject(org_, "b"), server);
  const db::Volume deleted = MakeVolume(MakeProject(org_, "c"), server);
  const auto quoted = [](const db::Volume& v) { return "'" + v.id + "'"; };
  Sql("INSERT INTO project_volume_backups (project_volume_id, kind, status, completed_at) VALUES "
      "(" +
      quoted(backed_up) + ", 'scheduled', 'succeeded', now() - interval '2 hours'), (" +
      quoted(backed_up) + ", 'scheduled', 'succeeded', now() - interval '5 hours'), (" +
      quoted(backed_up) + ", 'scheduled', 'failed', now() - interval '1 minute')");
  Sql("INSERT INTO project_volume_backups (project_volume_id, kind, status, completed_at) VALUES "
      "(" +
      quoted(damaged_only) + ", 'manual', 'succeeded', now() - interval '10 minutes')");
  Sql("UPDATE project_volume_backups SET status = 'damaged' WHERE project_volume_id = " +
      quoted(damaged_only));
  Sql("UPDATE project_volumes SET created_at = now() - interval '3 days' WHERE id = " +
      quoted(damaged_only));
  Sql("UPDATE project_volumes SET deleted_at = now() WHERE id = " + quoted(deleted));

  const std::string text = Scrape();
  const auto labels = [](const db::Volume& v) {
    return "{volume_id=\"" + v.id + "\",project_id=\"" + v.project_id + "\"} ";
  };
  EXPECT_NE(text.find("# TYPE kindling_volume_last_backup_age_seconds gauge\n"), std::string::npos);
  EXPECT_NEAR(Sample(text, "kindling_volume_last_backup_age_seconds" + labels(backed_up)), 7200, 60)
      << text;
  EXPECT_EQ(Sample(text, "kindling_volume_backed_up" + labels(backed_up)), 1) << text;
  // Only a damaged backup: not backed up, aged since the volume's creation.
  EXPECT_NEAR(Sample(text, "kindling_volume_last_backup_age_seconds" + labels(damaged_only)),
              3 * 86400, 60)
      << text;
  EXPECT_EQ(Sample(text, "kindling_volume_backed_up" + labels(damaged_only)), 0) << text;
  EXPECT_EQ(text.find(deleted.id), std::string::npos) << "a deleted volume has no series";
}

TEST_F(MetricsTest, CountsHowTheReadCacheAnsweredAndTheGate) {
  const std::string server = MakeServer("w1");
  const db::Volume volume = MakeVolume(MakeProject(org_, "cached"), server);
  const double before =
      Sample(Scrape(), "kindling_api_read_cache_gets_total{cache=\"volume\",answer=\"read\"} ");
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(Send("GET", "/api/projects/" + volume.project_id + "/volume", admin_key_).status,
              200);
  }
  const std::string text = Scrape();
  EXPECT_NE(text.find("# TYPE kindling_api_read_cache_gets_total counter\n"), std::string::npos);
  // Each GET is counted once, as one of the four answers.
  double total = 0;
  for (const char* answer : {"hit", "stale", "joined", "read"}) {
    total +=
        Sample(text, std::string("kindling_api_read_cache_gets_total{cache=\"volume\",answer=\"") +
                         answer + "\"} ");
  }
  EXPECT_EQ(total, 3) << text;
  // The first of them found nothing kept.
  EXPECT_GE(Sample(text, "kindling_api_read_cache_gets_total{cache=\"volume\",answer=\"read\"} "),
            before + 1)
      << text;
  EXPECT_GE(Sample(text, "\nkindling_api_connections "), 1) << text;
  EXPECT_GE(Sample(text, "\nkindling_api_connections_accepted_total "), 1) << text;
  EXPECT_EQ(Sample(text, "\nkindling_api_connections_refused_total "), 0) << text;
  EXPECT_GE(Sample(text, "\nkindling_api_threads "), 1) << text;
}

}  // namespace
}  // namespace kindling::api
