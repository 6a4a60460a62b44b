#include "client/cluster_validation.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>

#include "client/deployment_follow.h"
#include "client/edge_client.h"
#include "client/http_text.h"
#include "client/poll.h"
#include "common/durations.h"

namespace kindling::client {
namespace {

using json = nlohmann::json;
using Outcome = ValidationStep::Outcome;
using Clock = std::chrono::steady_clock;

// The guest image the canary steps deploy and expect (the workers' name for
// the canary guest, reconcile::kCanaryImage).
constexpr char kCanaryImage[] = "canary";

std::string Text(const json& value, const char* key) {
  if (!value.is_object() || !value.contains(key) || value[key].is_null()) return "";
  return value[key].is_string() ? value[key].get<std::string>() : value[key].dump();
}

ValidationStep Step(std::string name, Outcome outcome, std::string evidence,
                    json details = nullptr) {
  return ValidationStep{std::move(name), outcome, std::move(evidence), std::move(details)};
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

// ---- the edge steps ---------------------------------------------------------

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string Seconds(double seconds) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.1f s", seconds);
  return buffer;
}

std::string Limit(const ValidationInputs& inputs) {
  return FormatAge(std::chrono::duration<double>(inputs.canary_timeout).count());
}

// The edge's pages are HTML with the reason in the first <p>; other bodies
// are quoted as they are.
std::string AnswerSummary(const std::string& body) {
  const auto open = body.find("<p>");
  const auto close = open == std::string::npos ? open : body.find("</p>", open);
  if (close != std::string::npos) return PrintableExcerpt(body.substr(open + 3, close - open - 3));
  return PrintableExcerpt(body);
}

Result<std::unique_ptr<EdgeClient>> ConnectEdge(const ValidationInputs& inputs,
                                                std::string_view needed_for) {
  if (inputs.edge_url.empty()) {
    return InvalidArgument("the edge URL is needed " + std::string(needed_for) +
                           ": give --edge-url URL or set KINDLING_EDGE_URL (`kindling dev` prints "
                           "it)");
  }
  return EdgeClient::Create(EdgeClientOptions{.base_url = inputs.edge_url,
                                              .user_agent = "kindling-validate",
                                              .ca_file = inputs.edge_ca_file});
}

// The project's current deployment of the web service: the newest one not
// superseded (the list is newest first). Null when there is none.
json CurrentDeployment(const json& deployments) {
  if (!deployments.is_array()) return nullptr;
  for (const json& d : deployments) {
    if (!Text(d, "superseded_at").empty()) continue;
    const std::string service = Text(d, "service");
    if (service.empty() || service == "web") return d;
  }
  return nullptr;
}

// What the edge last said, for the evidence and details.
struct EdgeOutcome {
  bool answered = false;  // an answer other than RouteComingUp() came
  EdgeAnswer answer{};
  std::string failure{};  // when !answered: why, for the evidence
  double seconds = 0;     // from the step's start to the last answer
};

// Answers that a route coming up, or an instance starting, gives for a
// moment: asked again.
bool RouteComingUp(long status) {
  return status == 404 || status == 502 || status == 503 || status == 504;
}

// GETs `path` through the edge with Host: `hostname` until an answer other
// than RouteComingUp() comes, the deadline passes, or the wait is cancelled.
// Transport failures that may pass (a refused connection) are asked again;
// others end the wait.
EdgeOutcome AskThroughEdge(EdgeClient& edge, const std::string& path, const std::string& hostname,
                           Clock::time_point start, Clock::time_point deadline,
                           const ValidationInputs& inputs) {
  EdgeOutcome outcome;
  json last = nullptr;
  auto fetch = [&]() -> Result<json> {
    auto answer = edge.Get(path, hostname);
    outcome.seconds = SecondsSince(start);
    if (!answer) {
      outcome.answer = EdgeAnswer{};
      if (!answer.error().retryable()) return std::unexpected(answer.error());
      return json{{"error", answer.error().message()}};
    }
    outcome.answer = std::move(*answer);
    return json{{"status", outcome.answer.status}};
  };
  auto done = [](const json& doc) {
    return doc.contains("status") && !RouteComingUp(doc["status"].get<long>());
  };
  auto state = [&](const json& doc) {
    if (doc.contains("error")) return doc["error"].get<std::string>();
    return "answering HTTP " + std::to_string(doc["status"].get<long>()) + " (" +
           AnswerSummary(outcome.answer.body) + ")";
  };
  const auto remaining =
      std::max(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()),
               std::chrono::milliseconds(1));
  auto result = PollUntil(fetch, done, state,
                          PollOptions{.interval = inputs.poll_interval,
                                      .transient_grace = remaining,
                                      .timeout = remaining,
                                      .cancelled = inputs.cancelled,
                                      .on_update = [&](const json& doc) { last = doc; }},
                          "GET " + path);
  if (result) {
    outcome.answered = true;
    return outcome;
  }
  const std::string asked =
      "GET " + path + " through the edge at " + edge.base_url() + " (Host: " + hostname + ")";
  if (result.error().kind() == ErrorKind::kCancelled) {
    outcome.failure = asked + ": interrupted";
  } else if (result.error().kind() == ErrorKind::kTransient && !last.is_null()) {
    // The deadline passed: say what the edge kept answering.
    outcome.failure = last.contains("error")
                          ? asked + ": still unreachable after " + Limit(inputs) + ": " +
                                last["error"].get<std::string>()
                          : asked + " was still " + state(last) + " after " + Limit(inputs);
  } else {
    outcome.failure = asked + ": " + result.error().message();
  }
  return outcome;
}

// Pending or starting, meant to run: waited for rather than replaced.
bool OnItsWay(const json& deployment) {
  const std::string status = WorkloadStatus(deployment);
  return (status == "pending" || status == "starting") &&
         Text(deployment, "desired_state") != "stopped";
}

void AddEdgeDetails(json& details, const EdgeOutcome& edge) {
  details["edge_status"] = edge.answer.status == 0 ? json(nullptr) : json(edge.answer.status);
  details["seconds_to_answer"] = edge.answer.status == 0 ? json(nullptr) : json(edge.seconds);
}

ValidationStep CheckCanary(ApiClient& client, const ValidationInputs& inputs) {
  constexpr char kName[] = "canary";
  const std::string& project = inputs.canary_project_id;
  if (project.empty()) {
    return Step(kName, Outcome::kSkip,
                "give --canary-project ID to deploy a canary and check it through the edge");
  }
  const Clock::time_point start = Clock::now();
  const Clock::time_point deadline = start + inputs.canary_timeout;
  json details = {{"project_id", project}, {"deployed", false}};
  auto fail = [&](std::string evidence) {
    return Step(kName, Outcome::kFail, std::move(evidence), details);
  };
  auto edge = ConnectEdge(inputs, "to check the canary");
  if (!edge) return fail(edge.error().message());

  auto deployments = client.ListDeployments(project);
  if (!deployments) {
    return fail("cannot list the canary project's deployments: " + deployments.error().message());
  }
  json current = CurrentDeployment(*deployments);
  if (!current.is_null() && Text(current, "image") != kCanaryImage) {
    details["deployment_id"] = Text(current, "id");
    details["image"] = Text(current, "image");
    return fail("project " + project + "'s workload runs image \"" + Text(current, "image") +
                "\", not the canary: left alone (deploy image canary there, or give the canary's "
                "project)");
  }
  // Why it is deployed now (empty: it is not).
  std::string reason;
  if (current.is_null()) {
    reason = "it had no deployment";
  } else if (inputs.redeploy) {
    reason = "redeploy";
  } else if (!IsRunning(current) && !OnItsWay(current)) {
    reason = "it was " + WorkloadStatus(current);
  }
  if (!reason.empty()) {
    auto deployed = client.Deploy(project, DeployRequest{.image = kCanaryImage});
    if (!deployed) {
      return fail("no deployment could be made (" + reason + "): " + deployed.error().message());
    }
    current = std::move(*deployed);
    details["deployed"] = true;
    details["deploy_reason"] = reason;
  }
  const std::string deployment = Text(current, "id");
  const std::string hostname = Text(current, "hostname");
  details["deployment_id"] = deployment;
  details["hostname"] = hostname;
  details["status"] = WorkloadStatus(current);
  std::string how = reason.empty()         ? "already running"
                    : reason == "redeploy" ? "redeployed"
                                           : "deployed: " + reason;
  if (!IsRunning(current)) {
    if (reason.empty()) how = "found " + WorkloadStatus(current) + ", waited for it";
    const auto remaining =
        std::max(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()),
                 std::chrono::milliseconds(1));
    auto followed = FollowDeployment(
        client, project, deployment,
        DeploymentFollowOptions{
            .interval = inputs.poll_interval,
            .transient_grace = remaining,
            .timeout = remaining,
            .cancelled = inputs.cancelled,
            .on_update = [&](const json& d) { details["status"] = WorkloadStatus(d); }});
    if (!followed) {
      if (followed.error().kind() == ErrorKind::kCancelled) {
        return fail("deployment " + deployment + ": interrupted while it was " +
                    details["status"].get<std::string>());
      }
      if (followed.error().kind() == ErrorKind::kTransient) {
        return fail("deployment " + deployment + " did not run within " + Limit(inputs) +
                    ": still " + details["status"].get<std::string>());
      }
      return fail("deployment " + deployment + ": " + followed.error().message());
    }
    current = std::move(*followed);
    details["status"] = WorkloadStatus(current);
    if (!IsRunning(current)) {
      const std::string error = DeploymentError(current);
      return fail("deployment " + deployment + " is " + WorkloadStatus(current) +
                  (error.empty() ? "" : ": " + error));
    }
    details["seconds_to_running"] = SecondsSince(start);
    how += "; running " + Seconds(SecondsSince(start)) + " after the step began";
  }
  if (hostname.empty()) return fail("deployment " + deployment + " has no hostname");

  const EdgeOutcome asked = AskThroughEdge(**edge, "/healthz", hostname, start, deadline, inputs);
  AddEdgeDetails(details, asked);
  if (!asked.answered) return fail(asked.failure);
  if (asked.answer.status != 200) {
    return fail("GET /healthz through the edge (Host: " + hostname + ") answered HTTP " +
                std::to_string(asked.answer.status) + " (" + AnswerSummary(asked.answer.body) +
                ")");
  }
  return Step(kName, Outcome::kPass,
              hostname + " running (deployment " + deployment + ", " + how +
                  "); GET /healthz through the edge answered 200 " + Seconds(asked.seconds) +
                  " after it began",
              details);
}

// {"records":N,"intact":N,"damaged":[ids]}, the canary's contract.
bool IsVerifyReport(const json& report) {
  return report.is_object() && report.contains("records") && report["records"].is_number() &&
         report.contains("intact") && report["intact"].is_number() && report.contains("damaged") &&
         report["damaged"].is_array();
}

ValidationStep CheckVolumeRecords(ApiClient& client, const ValidationInputs& inputs) {
  constexpr char kName[] = "volume_records";
  const std::string& project = inputs.volume_project_id;
  if (project.empty()) {
    return Step(kName, Outcome::kSkip,
                "give --volume-project ID to check the records of that project's canary through "
                "the edge");
  }
  const Clock::time_point start = Clock::now();
  const Clock::time_point deadline = start + inputs.canary_timeout;
  json details = {{"project_id", project}};
  auto fail = [&](std::string evidence) {
    return Step(kName, Outcome::kFail, std::move(evidence), details);
  };
  auto edge = ConnectEdge(inputs, "to ask the canary for its records");
  if (!edge) return fail(edge.error().message());
  auto deployments = client.ListDeployments(project);
  if (!deployments) {
    return fail("cannot list project " + project +
                "'s deployments: " + deployments.error().message());
  }
  const json current = CurrentDeployment(*deployments);
  constexpr char kNeedsCanary[] =
      "the in-guest record check needs the canary running on the volume";
  if (current.is_null()) return fail("project " + project + " has no deployment: " + kNeedsCanary);
  const std::string deployment = Text(current, "id");
  const std::string hostname = Text(current, "hostname");
  details["deployment_id"] = deployment;
  details["hostname"] = hostname;
  details["image"] = Text(current, "image");
  details["status"] = WorkloadStatus(current);
  if (Text(current, "image") != kCanaryImage) {
    return fail("project " + project + "'s workload runs image \"" + Text(current, "image") +
                "\", not the canary: " + kNeedsCanary);
  }
  if (!IsRunning(current)) {
    return fail("project " + project + "'s canary (deployment " + deployment + ") is " +
                WorkloadStatus(current) + ", not running: " + kNeedsCanary);
  }
  if (hostname.empty()) return fail("deployment " + deployment + " has no hostname");

  const EdgeOutcome asked =
      AskThroughEdge(**edge, "/records/verify", hostname, start, deadline, inputs);
  AddEdgeDetails(details, asked);
  if (!asked.answered) return fail(asked.failure);
  const std::string asked_text = "GET /records/verify through the edge (Host: " + hostname + ")";
  if (asked.answer.status != 200) {
    return fail(asked_text + " answered HTTP " + std::to_string(asked.answer.status) + " (" +
                AnswerSummary(asked.answer.body) + ")");
  }
  const json report = json::parse(asked.answer.body, nullptr, /*allow_exceptions=*/false);
  if (!IsVerifyReport(report)) {
    return fail(asked_text + " answered what is not {records, intact, damaged}: " +
                PrintableExcerpt(asked.answer.body));
  }
  details["records"] = report["records"];
  details["intact"] = report["intact"];
  details["damaged"] = report["damaged"];
  const std::string counts =
      report["records"].dump() + " record(s), " + report["intact"].dump() + " intact";
  if (!report["damaged"].empty()) {
    std::string ids;
    for (const json& id : report["damaged"]) ids += (ids.empty() ? "" : ", ") + id.dump();
    return fail(std::to_string(report["damaged"].size()) + " damaged record(s) on project " +
                project + "'s volume (" + counts + "): ids " + ids);
  }
  if (report["intact"] != report["records"]) {
    return fail(counts + " on project " + project + "'s volume, though none is listed damaged");
  }
  std::string evidence = counts + " on project " + project + "'s volume (" + hostname +
                         ", deployment " + deployment + ")";
  if (report["records"] == 0) evidence += "; no record to check yet (POST /records writes one)";
  return Step(kName, Outcome::kPass, evidence, details);
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
    json item = {
        {"name", step.name}, {"outcome", OutcomeName(step.outcome)}, {"evidence", step.evidence}};
    if (!step.details.is_null()) item["details"] = step.details;
    out.push_back(std::move(item));
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
  report.steps.push_back(CheckCanary(client, inputs));
  report.steps.push_back(CheckVolumeRecords(client, inputs));
  return report;
}

}  // namespace kindling::client
