#include "client/cluster_validation.h"

#include <cstdio>
#include <map>
#include <set>

#include "common/durations.h"

namespace kindling::client {
namespace {

using json = nlohmann::json;
using Outcome = ValidationStep::Outcome;

std::string Text(const json& value, const char* key) {
  if (!value.is_object() || !value.contains(key) || value[key].is_null()) return "";
  return value[key].is_string() ? value[key].get<std::string>() : value[key].dump();
}

ValidationStep Step(std::string name, Outcome outcome, std::string evidence) {
  return ValidationStep{std::move(name), outcome, std::move(evidence)};
}

ValidationStep CheckMeta(ApiClient& client) {
  auto meta = client.Get("/api/meta");
  if (!meta) return Step("api_meta", Outcome::kFail, meta.error().message());
  return Step("api_meta", Outcome::kPass,
              "GET /api/meta answered (public_base_url " +
                  (Text(*meta, "public_base_url").empty() ? std::string("not set")
                                                          : Text(*meta, "public_base_url")) +
                  ")");
}

ValidationStep CheckHeartbeats(const Result<json>& servers) {
  if (!servers) return Step("server_heartbeats", Outcome::kFail, servers.error().message());
  std::vector<std::string> healthy;
  std::vector<std::string> stale;
  for (const json& s : *servers) {
    if (Text(s, "status") != "active") continue;
    const std::string who = Text(s, "hostname") + " (" + Text(s, "id") + ")";
    (Text(s, "heartbeat_health") == "healthy" ? healthy : stale).push_back(who);
  }
  if (healthy.empty() && stale.empty())
    return Step("server_heartbeats", Outcome::kFail, "no active server");
  if (!stale.empty()) {
    std::string evidence = "stale or missing heartbeats:";
    for (const std::string& who : stale) evidence += " " + who;
    return Step("server_heartbeats", Outcome::kFail, evidence);
  }
  return Step("server_heartbeats", Outcome::kPass,
              std::to_string(healthy.size()) + " active server(s), all heartbeats healthy");
}

ValidationStep CheckDsnDigests(const Result<json>& servers, const ValidationInputs& inputs) {
  if (!servers) return Step("dsn_files_agree", Outcome::kFail, servers.error().message());
  // digest -> hosts reporting it
  std::map<std::string, std::set<std::string>> by_digest;
  for (const json& s : *servers) {
    if (Text(s, "status") == "dead") continue;
    for (const json& c : s.value("components", json::array())) {
      const std::string digest = Text(c.value("metadata", json::object()), "dsn_sha256");
      if (!digest.empty()) by_digest[digest].insert(Text(s, "hostname"));
    }
  }
  if (inputs.local_dsn_sha256) by_digest[*inputs.local_dsn_sha256].insert("this host");
  if (by_digest.empty())
    return Step("dsn_files_agree", Outcome::kSkip, "no server reports its DSN digest");
  if (by_digest.size() == 1) {
    return Step("dsn_files_agree", Outcome::kPass,
                "same DSN on " + std::to_string(by_digest.begin()->second.size()) +
                    " host(s) (sha256 " + by_digest.begin()->first.substr(0, 12) + "...)");
  }
  std::string evidence = "the DSN differs between hosts:";
  for (const auto& [digest, hosts] : by_digest) {
    evidence += " sha256 " + digest.substr(0, 12) + "... on";
    for (const std::string& host : hosts) evidence += " " + host;
    evidence += ";";
  }
  return Step("dsn_files_agree", Outcome::kFail, evidence);
}

ValidationStep CheckDsnTarget(const ValidationInputs& inputs) {
  constexpr char kName[] = "dsn_reaches_primary";
  if (!inputs.local_dsn_probe)
    return Step(kName, Outcome::kSkip, "no DSN file on this host (give --dsn-file)");
  const ValidationInputs::DsnProbe& probe = *inputs.local_dsn_probe;
  if (!probe.error.empty())
    return Step(kName, Outcome::kFail, "this host's DSN does not connect: " + probe.error);
  if (probe.in_recovery) {
    return Step(kName, Outcome::kFail,
                "this host's DSN reaches a server in recovery (a standby, or a restored cluster "
                "not promoted yet): point the DSN files at the primary or its pooler");
  }
  return Step(kName, Outcome::kPass, "this host's DSN reaches a primary (not in recovery)");
}

std::string AgeOf(const json& report, const char* key) {
  if (!report.contains(key) || !report[key].is_number()) return "unknown";
  return FormatAge(report[key].get<double>());
}

ValidationStep CheckControlPlaneBackup(ApiClient& client) {
  constexpr char kName[] = "control_plane_backup";
  auto health = client.GetPlatformHealth();
  if (!health) return Step(kName, Outcome::kFail, health.error().message());
  const json backup = health->value("control_plane_backup", json::object());
  if (!backup.is_object() || !backup.value("configured", false))
    return Step(kName, Outcome::kSkip,
                "no process has ever checked the control-plane backups: on the database host, "
                "run `kindling admin control-plane configure`, then `kindling serve` (it picks "
                "up /etc/kindling/pgbackrest.conf, or --pgbackrest-config)");
  const std::string who = Text(backup.value("checked_by", json::object()), "hostname");
  const std::string checked =
      "checked " + AgeOf(backup, "check_age_seconds") + " ago" + (who.empty() ? "" : " by " + who);
  const bool ok = backup.value("ok", false) && !backup.value("stale", true);
  if (!ok) {
    std::string evidence = backup.value("stale", false) ? "stale: " : "";
    evidence += checked + "; problems:";
    for (const json& problem : backup.value("problems", json::array()))
      evidence += " " + (problem.is_string() ? problem.get<std::string>() : problem.dump()) + ";";
    return Step(kName, Outcome::kFail, evidence);
  }
  const json last = backup.value("last_backup", json::object());
  return Step(kName, Outcome::kPass,
              "last backup " + Text(last, "label") + " (" + Text(last, "type") + ") " +
                  AgeOf(backup, "last_backup_age_seconds") + " old; last WAL archived " +
                  AgeOf(backup, "last_archived_age_seconds") + " ago; " + checked);
}

}  // namespace

std::string_view OutcomeName(Outcome outcome) {
  switch (outcome) {
    case Outcome::kPass:
      return "pass";
    case Outcome::kFail:
      return "fail";
    case Outcome::kSkip:
      return "skip";
  }
  return "skip";
}

bool ValidationReport::passed() const {
  for (const ValidationStep& step : steps)
    if (step.outcome == Outcome::kFail) return false;
  return true;
}

nlohmann::json ValidationReport::ToJson() const {
  json out = json::array();
  for (const ValidationStep& step : steps) {
    out.push_back(
        {{"name", step.name}, {"outcome", OutcomeName(step.outcome)}, {"evidence", step.evidence}});
  }
  return json{{"passed", passed()}, {"steps", out}};
}

ValidationReport ValidateCluster(ApiClient& client, const ValidationInputs& inputs) {
  ValidationReport report;
  report.steps.push_back(CheckMeta(client));
  const Result<json> servers = client.ListServers(/*all=*/true);
  report.steps.push_back(CheckHeartbeats(servers));
  report.steps.push_back(CheckDsnDigests(servers, inputs));
  report.steps.push_back(CheckDsnTarget(inputs));
  report.steps.push_back(CheckControlPlaneBackup(client));
  report.steps.push_back(
      Step("canary", Outcome::kSkip, "no workload runtime in this cluster yet: nothing to route"));
  return report;
}

}  // namespace kindling::client
