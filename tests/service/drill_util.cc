#include "drill_util.h"

#include <httplib.h>
#include <sys/stat.h>

#include <cstdio>
#include <pqxx/pqxx>
#include <thread>

#include "common/subprocess.h"

namespace kindling::service {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

nlohmann::json CliResult::Json() const {
  const auto end = output.find_last_not_of('\n');
  if (end == std::string::npos) return nlohmann::json();
  const auto start = output.rfind('\n', end);
  const std::string line = output.substr(start == std::string::npos ? 0 : start + 1,
                                         end - (start == std::string::npos ? 0 : start + 1) + 1);
  return nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
}

CliResult Kindling(std::vector<std::string> args, seconds timeout,
                   std::vector<std::string> extra_env) {
  CommandOptions options;
  options.args = {KINDLING_BINARY};
  options.args.insert(options.args.end(), args.begin(), args.end());
  options.timeout = timeout;
  options.extra_env = std::move(extra_env);
  const auto start = Clock::now();
  auto result = SystemCommandRunner().Run(options);
  CliResult out;
  out.took = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
  if (!result) {
    out.errors = result.error().message();
    return out;
  }
  out.exit_status = result->timed_out ? -2 : result->exit_status;
  out.output = result->output;
  out.errors = result->errors;
  return out;
}

std::string Rfc3339Now() {
  const auto now = std::chrono::ceil<milliseconds>(std::chrono::system_clock::now());
  const auto day = std::chrono::floor<std::chrono::days>(now);
  const std::chrono::year_month_day date(day);
  const std::chrono::hh_mm_ss<milliseconds> time(now - day);
  char buffer[40];
  std::snprintf(buffer, sizeof buffer, "%04d-%02u-%02uT%02lld:%02lld:%02lld.%03lldZ",
                static_cast<int>(date.year()), static_cast<unsigned>(date.month()),
                static_cast<unsigned>(date.day()), static_cast<long long>(time.hours().count()),
                static_cast<long long>(time.minutes().count()),
                static_cast<long long>(time.seconds().count()),
                static_cast<long long>(time.subseconds().count()));
  return buffer;
}

std::string Unquoted(std::string value) {
  if (value.size() >= 2 && value.front() == '\'' && value.back() == '\'')
    value = value.substr(1, value.size() - 2);
  return value;
}

std::vector<std::string> Strings(const std::string& dsn, const std::string& sql) {
  pqxx::connection conn(dsn);
  pqxx::nontransaction work(conn);
  std::vector<std::string> out;
  for (const auto& row : work.exec(sql)) out.push_back(row[0].c_str());
  return out;
}

nlohmann::json WaitForStoredCheck(const std::function<nlohmann::json()>& get_health,
                                  std::chrono::system_clock::time_point since,
                                  std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  nlohmann::json health;
  do {
    health = get_health()["control_plane_backup"];
    const double since_seconds =
        std::chrono::duration<double>(std::chrono::system_clock::now() - since).count();
    // "ok" is null while nothing was checked.
    if (health["ok"] == true && health["checked_by"].value("process", "") == "kindling dev" &&
        health.value("check_age_seconds", 1e9) < since_seconds)
      return health;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  } while (std::chrono::steady_clock::now() < deadline);
  return health;
}

void DevDrillTest::SetUp() {
  ::chmod(dir_.path().c_str(), 0755);  // the postgres user works inside
  state_ = dir_ / "state";
}

nlohmann::json DevDrillTest::Call(const std::string& method, const std::string& path,
                                  const nlohmann::json& body, int* status) {
  httplib::Client client("127.0.0.1", dev_->port());
  client.set_connection_timeout(5, 0);
  client.set_read_timeout(30, 0);
  const httplib::Headers headers = {{"Authorization", "Bearer " + dev_->value("KINDLING_API_KEY")}};
  const std::string payload = body.is_null() ? "" : body.dump();
  httplib::Result res = method == "GET"   ? client.Get(path, headers)
                        : method == "PUT" ? client.Put(path, headers, payload, "application/json")
                                          : client.Post(path, headers, payload, "application/json");
  if (!res) {
    ADD_FAILURE() << method << " " << path << ": no answer";
    return nlohmann::json();
  }
  if (status != nullptr)
    *status = res->status;
  else
    EXPECT_LT(res->status, 300) << method << " " << path << ": " << res->body;
  return res->body.empty() ? nlohmann::json() : nlohmann::json::parse(res->body, nullptr, false);
}

std::string DevDrillTest::CreateProject(const std::string& name) {
  return Call("POST", "/api/projects", {{"name", name}}).value("id", "");
}

std::set<std::string> DevDrillTest::ProjectNames() {
  std::set<std::string> names;
  for (const nlohmann::json& project : Call("GET", "/api/projects"))
    names.insert(project.value("name", ""));
  return names;
}

nlohmann::json DevDrillTest::WaitForOperation(const std::string& id, std::chrono::seconds timeout) {
  nlohmann::json op = nlohmann::json::object();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    op = Call("GET", "/api/operations/" + id);
    if (op.value("status", "") == "succeeded" || op.value("status", "") == "failed") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return op;
}

bool DevDrillTest::WorkersHeartbeatSince(std::chrono::system_clock::time_point since,
                                         std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int fresh = 0;
    for (const nlohmann::json& server : Call("GET", "/api/platform/servers")) {
      const double age = server.value("heartbeat_age_seconds", 1e9);
      const auto beat = std::chrono::system_clock::now() -
                        std::chrono::duration_cast<std::chrono::system_clock::duration>(
                            std::chrono::duration<double>(age));
      if (server.value("heartbeat_health", "") == "healthy" && beat > since) ++fresh;
    }
    if (fresh >= 2) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return false;
}

CliResult DevDrillTest::ControlPlane(const std::string& command, std::vector<std::string> args,
                                     std::chrono::seconds timeout,
                                     std::vector<std::string> extra_env) {
  std::vector<std::string> all = {"admin", "control-plane", command, "--state-dir",
                                  state_.string()};
  all.insert(all.end(), args.begin(), args.end());
  return Kindling(all, timeout, std::move(extra_env));
}

}  // namespace kindling::service
