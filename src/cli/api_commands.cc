#include "cli/api_commands.h"

#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <iterator>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "cli/api_output.h"
#include "cli/cancel.h"
#include "cli/commands.h"
#include "cli/duration_flags.h"
#include "cli/exit_codes.h"
#include "cli/flags.h"
#include "cli/output.h"
#include "cli/progress_reporter.h"
#include "client/api_client.h"
#include "client/cluster_validation.h"
#include "client/deployment_follow.h"
#include "client/http_text.h"
#include "client/operation_follow.h"
#include "common/files.h"
#include "common/ids.h"
#include "common/secret.h"
#include "db/cluster_status.h"
#include "db/database.h"
#include "service/serve.h"

namespace kindling::cli {
namespace {

using nlohmann::json;

constexpr char kDefaultUrl[] = "http://127.0.0.1:8080";
constexpr char kSecretEnv[] = "AWS_SECRET_ACCESS_KEY";

constexpr char kApiExitCodesFooter[] =
    "Exit codes: 0 success; 1 failed (a followed operation or deployment failed, or the API "
    "refused: not found, denied, conflict such as volume_busy or backup_damaged, "
    "unreachable); 2 usage or invalid argument (including the API's validation_error); 3 a "
    "followed verify found missing or corrupt data; 130 interrupted (SIGINT/SIGTERM while "
    "following: the operation or deployment carries on on the server).";

struct ConnectionFlags {
  std::string url = kDefaultUrl;
  std::string api_key;
  std::string ca_file;  // empty: the system CA store
  bool json = false;
};

struct FollowFlags {
  bool follow = false;
  std::string progress = "auto";
  bool quiet = false;
};

// S3 settings flags and the setting each one writes.
struct SettingFlag {
  const char* flag;
  const char* setting;
  const char* help;
};
constexpr SettingFlag kS3Flags[] = {
    {"--s3-bucket", "s3_bucket",
     "S3 bucket; selects an S3 store and clears the local directory (not with "
     "--local-directory)"},
    {"--s3-region", "s3_region", "S3 region"},
    {"--s3-endpoint", "s3_endpoint", "S3-compatible endpoint, http(s)://host[:port]"},
    {"--s3-prefix", "s3_prefix", "Key prefix inside the bucket"},
    {"--s3-access-key-id", "s3_access_key_id", "S3 access key id"},
};
constexpr const char* kClearable[] = {"s3-bucket",      "s3-region",        "s3-endpoint",
                                      "s3-prefix",      "s3-access-key-id", "s3-secret-access-key",
                                      "local-directory"};

// The flags that describe a backup store, for `settings backup set` (what to
// save) and `settings backup test` (what to probe); each command binds its
// own copy.
struct StoreFlags {
  std::string local_directory;
  CLI::Option* local_directory_option = nullptr;
  std::string s3_values[std::size(kS3Flags)];
  CLI::Option* s3_options[std::size(kS3Flags)] = {};
  std::string secret_file;
  std::string secret_value;  // only to refuse it without echoing it
  CLI::Option* secret_value_option = nullptr;
  std::vector<std::string> clear;
};

// `project deploy` (the API's defaults for what is not given) and the wait of
// `deploy --follow` / `start --follow`.
struct DeployFlags {
  std::string image;
  std::string service;  // deploy, stop, start; empty: the API's default (web)
  int memory_mib = 0;
  int vcpus = 0;
  int boot_timeout_seconds = 0;
  int stop_timeout_seconds = 0;
  CLI::Option* memory_mib_option = nullptr;
  CLI::Option* vcpus_option = nullptr;
  CLI::Option* boot_timeout_option = nullptr;
  CLI::Option* stop_timeout_option = nullptr;
  std::int64_t follow_timeout_seconds = 300;
};

// `admin validate`'s edge steps (only that command binds them).
struct ValidateFlags {
  std::string canary_project;
  std::string volume_project;
  std::string edge_url;
  std::int64_t canary_timeout_seconds = 120;
  bool redeploy = false;
};

// Every flag of every API command; CLI11 binds them, one command runs.
struct ApiFlags {
  // The chosen command's connection flags. Each command binds its own copy
  // (per_command): CLI11 applies environment values to the options of every
  // command, chosen or not, so a shared variable would be overwritten.
  ConnectionFlags connection;
  std::deque<ConnectionFlags> per_command;
  std::map<const CLI::App*, const ConnectionFlags*> connection_of;
  FollowFlags follow;
  std::string project;
  std::string dsn_file;
  std::string backup;
  std::string target_server;
  std::string operation;
  std::string name;
  std::string organization;
  // volume create
  int size_gb = 0;
  std::string mount_path;
  std::string schedule;
  int retention = 0;
  CLI::Option* size_gb_option = nullptr;
  CLI::Option* mount_path_option = nullptr;
  CLI::Option* schedule_option = nullptr;
  CLI::Option* retention_option = nullptr;
  bool pre_delete_backup = false;
  CLI::Option* pre_delete_backup_option = nullptr;
  // hourly, daily, weekly, monthly, yearly (kKeepRules)
  std::array<int, 5> keep{};
  std::array<CLI::Option*, 5> keep_options{};
  // The schedule's details; "" clears the cron expression or the window.
  std::string backup_cron;
  std::string window_start;
  int window_minutes = 0;
  std::string time_zone;
  CLI::Option* backup_cron_option = nullptr;
  CLI::Option* window_start_option = nullptr;
  CLI::Option* window_minutes_option = nullptr;
  CLI::Option* time_zone_option = nullptr;
  bool dry_run = true;  // volume retention: always a dry run
  // volume backup, restore, move
  client::WorkloadOptions workload;
  // settings backup set / test
  StoreFlags store_set;
  StoreFlags store_test;
  // project deploy, deployments, stop, start
  DeployFlags deploy;
  // admin validate
  ValidateFlags validate;
  // volume adopt-image, quarantine
  std::string image;
  std::string server;
  std::string volume;
  std::string quarantine_status;
  std::string quarantine_id;
  std::string server_id;
  // user, org, api-key
  std::string email;
  std::string role;
  std::string user;
  std::string key_id;
  bool platform_admin = false;
  // servers list
  bool all = false;
  // admin backups orphans
  bool include_assigned = false;
  // audit list
  std::string action;
  std::string resource_type;
  std::string resource_id;
  std::string since;
  int limit = 0;
  CLI::Option* limit_option = nullptr;
};

bool Given(const CLI::Option* option) { return option != nullptr && option->count() > 0; }

Result<std::unique_ptr<client::ApiClient>> Connect(const ConnectionFlags& flags) {
  client::ApiClientOptions options;
  options.base_url = flags.url;
  options.api_key = Secret::FromView(flags.api_key);
  options.ca_file = flags.ca_file;
  options.user_agent = std::string("kindling-cli/") + KINDLING_VERSION;
  return client::ApiClient::Create(std::move(options));
}

void PrintText(const std::string& text) {
  std::fputs(text.c_str(), stdout);
  std::fflush(stdout);
}

// Prints an answer: the JSON document with --json, else `render(answer)`.
int PrintAnswer(const ConnectionFlags& flags, const json& answer,
                std::string (*render)(const json&)) {
  if (flags.json) {
    PrintJsonLine(answer);
  } else {
    PrintText(render(answer));
  }
  return kExitOk;
}

// Runs `call` with a connected client and prints its answer.
template <typename Call>
int RunCall(const ConnectionFlags& flags, Call&& call, std::string (*render)(const json&)) {
  auto client = Connect(flags);
  if (!client) return ReportError(client.error());
  Result<json> answer = call(**client);
  if (!answer) return FailCommand(answer.error());
  return PrintAnswer(flags, *answer, render);
}

// Status changes on stderr, in the progress display's style.
void ReportStatus(ProgressReporter& reporter, const json& operation) {
  switch (reporter.style()) {
    case ProgressReporter::Style::kNone:
      return;
    case ProgressReporter::Style::kBar:
      reporter.Finish();
      std::fprintf(stderr, "operation %s: %s\n", Cell(operation, "id").c_str(),
                   Cell(operation, "status").c_str());
      break;
    case ProgressReporter::Style::kJsonLines:
      std::fprintf(stderr, "%s\n",
                   DumpJson(json{{"type", "status"},
                                 {"operation_id", operation.value("id", json(nullptr))},
                                 {"kind", operation.value("kind", json(nullptr))},
                                 {"status", operation.value("status", json(nullptr))}})
                       .c_str());
      break;
  }
  std::fflush(stderr);
}

// A finished verify's problems, for the error line: "chunk <id> (corrupt) at
// offset N; ..." (the first few).
std::string ProblemsSummary(const json& operation) {
  const json& result = operation.value("result", json::object());
  const json problems = result.is_object() ? result.value("problems", json::array()) : json();
  std::string text;
  std::size_t listed = 0;
  if (problems.is_array()) {
    for (const json& problem : problems) {
      if (++listed > 3) {
        text += "; and " + std::to_string(problems.size() - 3) + " more";
        break;
      }
      if (!text.empty()) text += "; ";
      text += "chunk " + Cell(problem, "chunk_id") + " (" + Cell(problem, "kind") + ") at offset " +
              Cell(problem, "offset");
    }
  }
  return text;
}

// Polls the operation until it finishes, showing its progress on stderr;
// prints the final document and returns 0 when it succeeded, 1 when it
// failed, 3 when it is a verify that found problems.
int FollowAndReport(client::ApiClient& client, const std::string& operation_id,
                    const ConnectionFlags& connection, const FollowFlags& flags) {
  auto mode = ParseProgressMode(flags.progress);
  if (!mode) return ReportError(mode.error());
  ProgressReporter reporter(
      ProgressReporter::StyleFor(*mode, flags.quiet, ::isatty(STDERR_FILENO) == 1), stderr);
  std::string last_status;
  client::FollowOptions options;
  options.cancelled = [] { return CancelRequested(); };
  options.on_update = [&](const json& operation) {
    const std::string status = Cell(operation, "status");
    if (status != last_status) {
      ReportStatus(reporter, operation);
      last_status = status;
    }
    // A pending operation's progress is a previous attempt's; a finished
    // one's shows where it ended.
    if (status == "pending" || status == "failed") return;
    if (auto progress = ProgressOf(operation)) {
      engine::Progress p;
      p.phase = progress->phase;
      p.bytes_done = progress->bytes_done;
      p.bytes_total = progress->bytes_total;
      reporter.Report(p);
    }
  };
  auto finished = client::FollowOperation(client, operation_id, options);
  reporter.Finish();
  if (!finished) {
    if (finished.error().kind() == ErrorKind::kCancelled || CancelRequested()) {
      return ReportError(Error(ErrorKind::kCancelled,
                               "interrupted: stopped following operation " + operation_id +
                                   ", which carries on on the server (kindling operation follow " +
                                   operation_id + ")"));
    }
    return ReportError(finished.error());
  }
  const bool verify = Cell(*finished, "kind") == "verify";
  if (connection.json) {
    PrintJsonLine(*finished);
  } else {
    PrintText(OperationText(*finished) + (verify ? VerifyProblemsText(*finished) : ""));
  }
  if (client::Succeeded(*finished)) {
    if (!verify) return kExitOk;
    const json result = finished->value("result", json::object());
    if (!result.is_object()) return kExitOk;
    const bool chunks_ok = result.value("ok", true) != false;
    const bool digest_ok = result.value("image_digest_checked", false) != true ||
                           result.value("image_digest_matches", true) != false;
    if (chunks_ok && digest_ok) return kExitOk;
    std::string message =
        "verify " + operation_id + " found problems in backup " + Cell(*finished, "backup_id");
    const std::string problems = ProblemsSummary(*finished);
    if (!problems.empty()) message += ": " + problems;
    if (!digest_ok) {
      message += "; the image digest recomputed from its chunks does not match its manifest";
    }
    return ReportError(Error(ErrorKind::kCorruption, message));
  }
  ReportError(Error(ErrorKind::kInternal, "operation " + operation_id + " (" +
                                              Cell(*finished, "kind") +
                                              ") failed: " + Cell(*finished, "error")));
  return kExitFailed;
}

// Queues an operation with `queue`, then prints it or follows it.
template <typename Queue>
int RunQueue(const ApiFlags& flags, Queue&& queue) {
  auto client = Connect(flags.connection);
  if (!client) return ReportError(client.error());
  Result<json> queued = queue(**client);
  if (!queued) return FailCommand(queued.error());
  if (!flags.follow.follow) {
    return PrintAnswer(flags.connection, *queued, [](const json& op) {
      return QueuedText(op) + "follow it with: kindling operation follow " + Cell(op, "id") + "\n";
    });
  }
  if (!flags.connection.json) PrintText(QueuedText(*queued));
  const std::string id = queued->value("id", "");
  if (id.empty()) return ReportError(InternalError("the API's answer has no operation id").error());
  return FollowAndReport(**client, id, flags.connection, flags.follow);
}

// Shows a followed deployment on stderr: on a terminal one status line
// redrawn in place with the time waited; otherwise a JSON line whenever the
// deployment or its instance changes ({"type":"status","deployment_id",...}).
class DeploymentProgress {
 public:
  explicit DeploymentProgress(ProgressReporter::Style style)
      : style_(style), start_(std::chrono::steady_clock::now()) {}
  ~DeploymentProgress() { Finish(); }
  DeploymentProgress(const DeploymentProgress&) = delete;
  DeploymentProgress& operator=(const DeploymentProgress&) = delete;

  void Update(const json& deployment) {
    switch (style_) {
      case ProgressReporter::Style::kNone:
        return;
      case ProgressReporter::Style::kBar: {
        const auto waited = std::chrono::duration_cast<std::chrono::seconds>(
            std::chrono::steady_clock::now() - start_);
        // \r redraws the line in place; \x1b[K clears what a longer line left.
        std::fprintf(stderr, "\r%s  (%llds)\x1b[K", DeploymentStatusLine(deployment).c_str(),
                     static_cast<long long>(waited.count()));
        line_open_ = true;
        break;
      }
      case ProgressReporter::Style::kJsonLines: {
        const json& instance = deployment.value("instance", json(nullptr));
        auto field = [](const json& object, const char* key) {
          return object.is_object() ? object.value(key, json(nullptr)) : json(nullptr);
        };
        json line = {{"type", "status"},
                     {"deployment_id", field(deployment, "id")},
                     {"status", field(deployment, "status")},
                     {"desired_state", field(deployment, "desired_state")},
                     {"instance_id", field(instance, "id")},
                     {"instance_status", field(instance, "status")},
                     {"server_id", field(instance, "server_id")},
                     {"address", field(instance, "address")},
                     {"error", client::DeploymentError(deployment)}};
        if (line["error"] == "") line["error"] = nullptr;
        if (line == last_) return;
        last_ = line;
        std::fprintf(stderr, "%s\n", DumpJson(line).c_str());
        break;
      }
    }
    std::fflush(stderr);
  }

  // Ends the status line so that later output starts on a fresh line.
  void Finish() {
    if (!line_open_) return;
    std::fputc('\n', stderr);
    std::fflush(stderr);
    line_open_ = false;
  }

 private:
  const ProgressReporter::Style style_;
  const std::chrono::steady_clock::time_point start_;
  bool line_open_ = false;
  json last_;
};

// Polls the project's deployments until `deployment_id` runs, fails or
// stops for good (or the --timeout passed), showing its status on stderr;
// prints its last document and returns 0 when it runs, 1 otherwise (the
// instance's error in the message).
int FollowDeploymentAndReport(client::ApiClient& client, const std::string& project_id,
                              const std::string& deployment_id, const ConnectionFlags& connection,
                              const FollowFlags& follow, const DeployFlags& deploy) {
  auto mode = ParseProgressMode(follow.progress);
  if (!mode) return ReportError(mode.error());
  DeploymentProgress progress(
      ProgressReporter::StyleFor(*mode, follow.quiet, ::isatty(STDERR_FILENO) == 1));
  client::DeploymentFollowOptions options;
  options.timeout = std::chrono::seconds(deploy.follow_timeout_seconds);
  options.cancelled = [] { return CancelRequested(); };
  options.on_update = [&](const json& deployment) { progress.Update(deployment); };
  auto settled = client::FollowDeployment(client, project_id, deployment_id, options);
  progress.Finish();
  if (!settled) {
    if (settled.error().kind() == ErrorKind::kCancelled || CancelRequested()) {
      return ReportError(Error(ErrorKind::kCancelled,
                               "interrupted: stopped following deployment " + deployment_id +
                                   ", which carries on on the server (kindling project "
                                   "deployments --project " +
                                   project_id + ")"));
    }
    return ReportError(settled.error());
  }
  if (connection.json) {
    PrintJsonLine(*settled);
  } else {
    PrintText(DeploymentText(*settled));
  }
  if (client::IsRunning(*settled)) return kExitOk;
  std::string message = "deployment " + deployment_id + " (" + Cell(*settled, "service") + ", " +
                        Cell(*settled, "image") + ") ";
  if (client::WorkloadStatus(*settled) == "failed") {
    const std::string error = client::DeploymentError(*settled);
    message += "failed: " + (error.empty() ? std::string("no error recorded") : error);
  } else {
    message += "stopped before it ran: it was stopped or superseded meanwhile";
  }
  ReportError(Error(ErrorKind::kInternal, message));
  return kExitFailed;
}

// Sends `call` (deploy or start), then prints the deployment or follows it.
template <typename Call>
int RunWorkloadCall(const ApiFlags& flags, Call&& call) {
  auto client = Connect(flags.connection);
  if (!client) return ReportError(client.error());
  Result<json> answer = call(**client);
  if (!answer) return FailCommand(answer.error());
  if (!flags.follow.follow) {
    return PrintAnswer(flags.connection, *answer, [](const json& d) {
      return DeploymentText(d) + "see how it goes with: kindling project deployments --project " +
             Cell(d, "project_id") + " (or pass --follow)\n";
    });
  }
  const std::string id = answer->value("id", "");
  if (id.empty()) {
    return ReportError(InternalError("the API's answer has no deployment id").error());
  }
  if (!flags.connection.json) {
    // The workload's status: after `start` of a failed deployment the
    // deployment still says failed while its new instance is pending.
    PrintText("deployment " + id + " (" + Cell(*answer, "service") + ", " + Cell(*answer, "image") +
              "): " + client::WorkloadStatus(*answer) + ", desired " +
              Cell(*answer, "desired_state") + "\n");
  }
  return FollowDeploymentAndReport(**client, flags.project, id, flags.connection, flags.follow,
                                   flags.deploy);
}

int RunDeploy(const ApiFlags& flags) {
  const DeployFlags& d = flags.deploy;
  client::DeployRequest request{.image = d.image};
  if (!d.service.empty()) request.service = d.service;
  if (Given(d.memory_mib_option)) request.memory_mib = d.memory_mib;
  if (Given(d.vcpus_option)) request.vcpus = d.vcpus;
  if (Given(d.boot_timeout_option)) request.boot_timeout_seconds = d.boot_timeout_seconds;
  if (Given(d.stop_timeout_option)) request.stop_timeout_seconds = d.stop_timeout_seconds;
  return RunWorkloadCall(flags,
                         [&](client::ApiClient& c) { return c.Deploy(flags.project, request); });
}

// The settings changes `flags` describe (name -> value, null clears), as
// PUT and POST .../test take them. kInvalidArgument for contradictions: a
// directory and a bucket at once (each selects a store), a setting both given
// and cleared, a secret as a flag value.
Result<json> StoreChanges(const StoreFlags& flags) {
  if (Given(flags.secret_value_option)) {
    return InvalidArgument(
        "--s3-secret-access-key is refused: a secret on the command line shows in ps and shell "
        "history; set AWS_SECRET_ACCESS_KEY or use --s3-secret-access-key-file");
  }
  const bool local = Given(flags.local_directory_option);
  const bool bucket = Given(flags.s3_options[0]);
  if (local && bucket) {
    return InvalidArgument(
        "--local-directory and --s3-bucket select different stores: give one of them (either "
        "one switches the store to it and clears the other)");
  }
  json changes = json::object();
  bool sets_s3 = false;
  if (local) {
    changes["local_directory"] = flags.local_directory;
    changes["s3_bucket"] = nullptr;  // the API clears it too: one store at a time
  }
  for (std::size_t i = 0; i < std::size(kS3Flags); ++i) {
    if (!Given(flags.s3_options[i])) continue;
    changes[kS3Flags[i].setting] = flags.s3_values[i];
    sets_s3 = true;
  }
  if (bucket) changes["local_directory"] = nullptr;
  if (!flags.secret_file.empty()) {
    auto read = ReadFile(flags.secret_file);
    if (!read) {
      return std::unexpected(Error(ErrorKind::kInvalidArgument,
                                   "--s3-secret-access-key-file: " + read.error().message()));
    }
    const Secret text(std::move(*read));
    std::string_view secret = text.Reveal();
    while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r' ||
                               secret.back() == ' ' || secret.back() == '\t')) {
      secret.remove_suffix(1);
    }
    if (secret.empty()) {
      return InvalidArgument("--s3-secret-access-key-file " + flags.secret_file + " is empty");
    }
    // The one copy outside `text`, wiped by WipeSecretChangeOnExit.
    changes["s3_secret_access_key"] = std::string(secret);
  } else if (const char* env = std::getenv(kSecretEnv);
             sets_s3 && env != nullptr && *env != '\0' &&
             std::ranges::find(flags.clear, "s3-secret-access-key") == flags.clear.end()) {
    // (An explicit --clear wins over the environment.)
    changes["s3_secret_access_key"] = env;
  }
  for (const std::string& flag : flags.clear) {
    std::string name = flag;
    for (char& c : name) c = c == '-' ? '_' : c;
    const bool given = changes.contains(name) && !changes[name].is_null();
    if (given) {
      return InvalidArgument("--clear " + flag + " contradicts the value given for it");
    }
    changes[name] = nullptr;
  }
  return changes;
}

// Wipes the S3 secret in settings changes (StoreChanges) when the command
// that sends them returns.
class WipeSecretChangeOnExit {
 public:
  explicit WipeSecretChangeOnExit(json& changes) : changes_(changes) {}
  ~WipeSecretChangeOnExit() {
    const auto it = changes_.find("s3_secret_access_key");
    if (it != changes_.end() && it->is_string()) WipeString(it->get_ref<std::string&>());
  }
  WipeSecretChangeOnExit(const WipeSecretChangeOnExit&) = delete;
  WipeSecretChangeOnExit& operator=(const WipeSecretChangeOnExit&) = delete;

 private:
  json& changes_;
};

int RunSettingsSet(const ApiFlags& flags) {
  auto changes = StoreChanges(flags.store_set);
  if (!changes) return ReportError(changes.error());
  const WipeSecretChangeOnExit wipe(*changes);
  if (changes->empty()) {
    return ReportError(InvalidArgument("nothing to change: give --local-directory, --s3-* flags, "
                                       "--s3-secret-access-key-file or --clear (see --help)")
                           .error());
  }
  auto client = Connect(flags.connection);
  if (!client) return ReportError(client.error());
  auto saved = (*client)->PutBackupSettings(*changes);
  if (!saved) return FailCommand(saved.error());
  const json& store = (*saved)["store"];
  if (saved->value("configured", false) && store.is_object() &&
      store.value("ready", false) != true) {
    std::fprintf(stderr,
                 "kindling: warning: settings saved, but the store could not be opened: %s\n",
                 Cell(store, "error").c_str());
  }
  return PrintAnswer(flags.connection, *saved, BackupSettingsText);
}

int RunSettingsTest(const ApiFlags& flags) {
  auto overrides = StoreChanges(flags.store_test);
  if (!overrides) return ReportError(overrides.error());
  const WipeSecretChangeOnExit wipe(*overrides);
  auto client = Connect(flags.connection);
  if (!client) return ReportError(client.error());
  auto probe = (*client)->TestBackupSettings(*overrides);
  if (!probe) return FailCommand(probe.error());
  PrintAnswer(flags.connection, *probe, ProbeText);
  if (probe->value("ok", false)) return kExitOk;
  ReportError(Error(ErrorKind::kIo, "backup store probe failed at step " + Cell(*probe, "step") +
                                        ": " + Cell(*probe, "error")));
  return kExitFailed;
}

int RunSettingsStores(const ApiFlags& flags) {
  auto client = Connect(flags.connection);
  if (!client) return ReportError(client.error());
  auto stores = (*client)->ListBackupStores();
  if (!stores) return FailCommand(stores.error());
  if (flags.connection.json) {
    PrintJsonLine(*stores);
    return kExitOk;
  }
  // Which one new backups go to; the history is still worth showing when
  // the settings cannot be read.
  std::string current;
  if (auto settings = (*client)->GetBackupSettings(); settings && settings->is_object()) {
    const json& url = (*settings)["storage_url"];
    if (url.is_string()) current = url.get<std::string>();
  }
  PrintText(BackupStoresText(*stores, current));
  return kExitOk;
}

// Connects with this host's DSN (5 s at most) and asks whether the server
// is in recovery.
client::ValidationInputs::DsnProbe ProbeDsn(const std::string& dsn) {
  client::ValidationInputs::DsnProbe probe;
  ::setenv("PGCONNECT_TIMEOUT", "5", /*overwrite=*/0);
  auto database = db::Database::Open({.dsn = dsn,
                                      .max_connections = 1,
                                      .acquire_timeout = std::chrono::milliseconds(5'000),
                                      .max_transaction_attempts = 1,
                                      .application_name = "kindling validate"});
  if (!database) {
    probe.error = database.error().message();
    return probe;
  }
  auto in_recovery =
      (*database)->Transact([](db::Tx& tx) { return db::InRecovery(tx); }, {.read_only = true});
  if (!in_recovery) {
    probe.error = in_recovery.error().message();
  } else {
    probe.in_recovery = *in_recovery;
  }
  return probe;
}

int RunValidate(const ApiFlags& flags) {
  auto client = Connect(flags.connection);
  if (!client) return ReportError(client.error());
  client::ValidationInputs inputs;
  const std::filesystem::path dsn_file = service::ResolveDsnFile(flags.dsn_file);
  if (auto dsn = db::ReadDsnFile(dsn_file); dsn) {
    inputs.local_dsn_sha256 = service::DsnDigest(*dsn);
    inputs.local_dsn_probe = ProbeDsn(*dsn);
  } else if (!flags.dsn_file.empty()) {
    return ReportError(dsn.error());  // asked for this file: it must be readable
  }
  const ValidateFlags& edge = flags.validate;
  for (const auto& [flag, id] : {std::pair{"--canary-project", &edge.canary_project},
                                 std::pair{"--volume-project", &edge.volume_project}}) {
    if (!id->empty() && !IsUuid(*id)) {
      return ReportError(InvalidArgument(std::string(flag) +
                                         " must be a project id (a UUID), got \"" +
                                         client::PrintableExcerpt(*id) + "\"")
                             .error());
    }
  }
  if (!edge.edge_url.empty()) {
    if (auto url = client::NormalizeBaseUrl(edge.edge_url, "edge"); !url) {
      return ReportError(url.error());
    }
  }
  inputs.canary_project_id = edge.canary_project;
  inputs.volume_project_id = edge.volume_project;
  inputs.edge_url = edge.edge_url;
  inputs.edge_ca_file = flags.connection.ca_file;
  inputs.redeploy = edge.redeploy;
  inputs.canary_timeout = std::chrono::seconds(edge.canary_timeout_seconds);
  inputs.cancelled = [] { return CancelRequested(); };
  const client::ValidationReport report = client::ValidateCluster(**client, inputs);
  if (flags.connection.json) {
    PrintJsonLine(report.ToJson());
  } else {
    std::string text;
    for (const client::ValidationStep& step : report.steps) {
      text += fmt::format("{:<5} {:<22} {}\n", client::OutcomeName(step.outcome), step.name,
                          step.evidence);
    }
    text += report.passed() ? "validation passed\n" : "validation FAILED\n";
    PrintText(text);
  }
  if (CancelRequested()) return kExitCancelled;
  return report.passed() ? kExitOk : kExitFailed;
}

int RunBackupsRescan(const ApiFlags& flags) {
  auto client = Connect(flags.connection);
  if (!client) return ReportError(client.error());
  auto report = (*client)->RescanBackups();
  if (!report) return FailCommand(report.error());
  PrintAnswer(flags.connection, *report, RescanText);
  // What could not be read does not fail the rescan, but must not pass
  // unnoticed either.
  const json& unreadable = (*report)["unreadable"];
  if (unreadable.is_array() && !unreadable.empty()) {
    std::fprintf(stderr,
                 "kindling: warning: %zu store(s) or backup(s) could not be read; the rest was "
                 "scanned\n",
                 unreadable.size());
  }
  return kExitOk;
}

// The `admin` group (`kindling admin bootstrap` creates it), or a new one.
CLI::App* AdminGroup(CLI::App& app) {
  auto found = app.get_subcommands([](CLI::App* sub) { return sub->get_name() == "admin"; });
  if (!found.empty()) return found.front();
  CLI::App* admin = app.add_subcommand("admin", "Cluster administration");
  admin->require_subcommand(1);
  return admin;
}

// `volume pin-backup` (pin) and `volume unpin-backup`: the backup as it is now.
int RunPinBackup(const ApiFlags& flags, bool pin) {
  return RunCall(
      flags.connection,
      [&](client::ApiClient& c) { return c.PinBackup(flags.project, flags.backup, pin); },
      BackupText);
}

int RunVolumeDelete(const ApiFlags& flags) {
  auto client = Connect(flags.connection);
  if (!client) return ReportError(client.error());
  auto answer = (*client)->DeleteVolume(flags.project);
  if (!answer) return FailCommand(answer.error());
  if (!answer->is_object()) {
    // 204: deleted at once (its image goes to the worker's quarantine).
    if (flags.connection.json) {
      PrintJsonLine(*answer);
    } else {
      PrintText("deleted the volume of project " + flags.project +
                "; its image is kept in the worker's quarantine (kindling volume quarantine)\n");
    }
    return kExitOk;
  }
  // 202: a pre-delete backup first; the volume goes once it succeeded.
  const std::string id = answer->value("id", "");
  if (!flags.follow.follow) {
    return PrintAnswer(flags.connection, *answer, [](const json& op) {
      return QueuedText(op) +
             "the volume is deleted once this pre-delete backup succeeded; follow it with: "
             "kindling operation follow " +
             Cell(op, "id") + "\n";
    });
  }
  if (!flags.connection.json) PrintText(QueuedText(*answer));
  if (id.empty()) return ReportError(InternalError("the API's answer has no operation id").error());
  const int code = FollowAndReport(**client, id, flags.connection, flags.follow);
  if (code == kExitOk && !flags.connection.json) {
    PrintText("the pre-delete backup succeeded: the volume is deleted\n");
  }
  return code;
}

client::AuditQuery AuditQueryFrom(const ApiFlags& flags) {
  client::AuditQuery query;
  if (!flags.action.empty()) query.action = flags.action;
  if (!flags.resource_type.empty()) query.resource_type = flags.resource_type;
  if (!flags.resource_id.empty()) query.resource_id = flags.resource_id;
  if (!flags.since.empty()) query.since = flags.since;
  if (Given(flags.limit_option)) query.limit = flags.limit;
  return query;
}

std::string CreatedKeyText(const json& key) {
  return "created API key " + Cell(key, "id") + " (" + Cell(key, "name") +
         "); its secret is shown only now:\nKINDLING_API_KEY=" + Cell(key, "secret") + "\n";
}

// ---- wiring -----------------------------------------------------------------

// A command group: needs one of its subcommands.
CLI::App* Group(CLI::App& parent, const std::string& name, const std::string& description) {
  CLI::App* group = parent.add_subcommand(name, description);
  group->require_subcommand(1);
  group->footer(kApiExitCodesFooter);
  return group;
}

CLI::App* Leaf(CLI::App& parent, const std::string& name, const std::string& description,
               ApiFlags& flags) {
  CLI::App* command = parent.add_subcommand(name, description);
  command->footer(kApiExitCodesFooter);
  ConnectionFlags& connection = flags.per_command.emplace_back();
  flags.connection_of[command] = &connection;
  command
      ->add_option("--url", connection.url,
                   "API base URL (default " + std::string(kDefaultUrl) + ")")
      ->envname("KINDLING_URL")
      ->type_name("URL");
  command
      ->add_option("--api-key", connection.api_key,
                   "API key; prefer the KINDLING_API_KEY environment variable (a flag value "
                   "shows in ps and shell history)")
      ->envname("KINDLING_API_KEY")
      ->required()
      ->type_name("KEY");
  command
      ->add_option("--ca-file", connection.ca_file,
                   "PEM file of the CA certificates to verify an https:// API (and edge) with, "
                   "instead of the system's")
      ->envname("KINDLING_CA_FILE")
      ->check(CLI::ExistingFile)
      ->type_name("PATH");
  command->add_flag("--json", connection.json,
                    "Print the API's answer as one JSON document on the last line of stdout");
  return command;
}

void AddFollowFlags(CLI::App& command, FollowFlags& flags, bool optional_follow) {
  if (optional_follow) {
    command.add_flag("--follow", flags.follow,
                     "Wait for the operation to finish, showing its progress on stderr");
  }
  command
      .add_option("--progress", flags.progress,
                  "Progress on stderr while following: auto (bar on a terminal, else JSON "
                  "lines), bar, json, none")
      ->check(CLI::IsMember({"auto", "bar", "json", "none"}))
      ->type_name("MODE");
  command.add_flag("-q,--quiet", flags.quiet, "No progress output");
}

void AddProjectFlag(CLI::App& command, ApiFlags& flags) {
  command.add_option("--project", flags.project, "Project id")->required()->type_name("ID");
}

void AddStopWorkloadFlag(CLI::App& command, ApiFlags& flags) {
  command.add_flag("--stop-workload", flags.workload.stop_workload,
                   "Stop the project's running workload for the operation (cleanly, killed "
                   "after its stop timeout) and start it again after; the operation's result "
                   "has downtime_ms. Without it a running workload refuses the operation "
                   "(volume_attached)");
}

void AddValidateFlag(CLI::App& command, ApiFlags& flags) {
  command.add_flag("--validate", flags.workload.validate,
                   "Boot the verify mode of the project's guest image (the canary's record "
                   "check) on the new image before it replaces the old one; a failed check "
                   "fails the operation and keeps the old image (result.validation)");
}

// After DurationUnits: whole seconds, at least one.
CLI::Validator PositiveDuration() {
  return CLI::Validator(
      [](std::string& seconds) -> std::string {
        const bool digits =
            !seconds.empty() && seconds.find_first_not_of("0123456789") == std::string::npos;
        if (digits && seconds.find_first_not_of('0') != std::string::npos) return "";
        return "must be at least 1s, e.g. 90s or 5m";
      },
      "", "positive duration");
}

void AddServiceFlag(CLI::App& command, ApiFlags& flags) {
  command
      .add_option("--service", flags.deploy.service,
                  "Service name: 1-32 of a-z, 0-9 and '-' (default web)")
      ->type_name("NAME");
}

// --follow, its --timeout and the progress flags of deploy and start.
void AddDeploymentFollowFlags(CLI::App& command, ApiFlags& flags) {
  command.add_flag("--follow", flags.follow.follow,
                   "Wait until the workload runs or fails, showing its status on stderr; exit 1 "
                   "when it failed (with the instance's error)");
  command
      .add_option("--timeout", flags.deploy.follow_timeout_seconds,
                  "With --follow: stop waiting after this long, e.g. 90s, 10m (default 5m; exit "
                  "1, the workload carries on)")
      ->transform(DurationUnits())
      ->check(PositiveDuration())
      ->type_name("DURATION");
  command
      .add_option("--progress", flags.follow.progress,
                  "Status on stderr while following: auto (a line redrawn on a terminal, else "
                  "JSON lines), bar (the line), json, none")
      ->check(CLI::IsMember({"auto", "bar", "json", "none"}))
      ->type_name("MODE");
  command.add_flag("-q,--quiet", flags.follow.quiet, "No status output while following");
}

// The store-describing flags of `settings backup set` and `test`.
void AddStoreFlags(CLI::App& command, StoreFlags& flags) {
  flags.local_directory_option =
      command
          .add_option("--local-directory", flags.local_directory,
                      "Absolute directory on every worker (single host); selects a local store "
                      "and clears the bucket (not with --s3-bucket)")
          ->type_name("DIR");
  for (std::size_t i = 0; i < std::size(kS3Flags); ++i) {
    flags.s3_options[i] =
        command.add_option(kS3Flags[i].flag, flags.s3_values[i], kS3Flags[i].help)
            ->type_name("VALUE");
  }
  command
      .add_option("--s3-secret-access-key-file", flags.secret_file,
                  "File holding the S3 secret access key (default: $AWS_SECRET_ACCESS_KEY)")
      ->type_name("PATH");
  // Hidden: accepted only to be refused with advice, without echoing the value.
  flags.secret_value_option =
      command.add_option("--s3-secret-access-key", flags.secret_value)->group("");
  command
      .add_option("--clear", flags.clear,
                  "Clear a setting (repeatable): s3-bucket, s3-region, s3-endpoint, s3-prefix, "
                  "s3-access-key-id, s3-secret-access-key, local-directory")
      ->check(CLI::IsMember(std::vector<std::string>(std::begin(kClearable), std::end(kClearable))))
      ->type_name("NAME");
}

}  // namespace

void AddApiCommands(CLI::App& app, std::function<int()>& action) {
  auto flags = std::make_shared<ApiFlags>();
  ApiFlags& f = *flags;
  // The callback of `command`: runs `run` with the command's connection flags.
  auto set = [&action, flags](const CLI::App* command, int (*run)(const ApiFlags&)) {
    return [&action, flags, command, run] {
      flags->connection = *flags->connection_of.at(command);
      action = [flags, run] { return run(*flags); };
    };
  };

  // project
  CLI::App* project = Group(app, "project", "Projects and their workloads (through the API)");
  CLI::App* project_create = Leaf(*project, "create", "Create a project", f);
  project_create->add_option("--name", f.name, "Project name")->required();
  project_create
      ->add_option("--organization", f.organization,
                   "Organisation id (needed when you administer several)")
      ->type_name("ID");
  project_create->callback(set(project_create, [](const ApiFlags& x) {
    return RunCall(
        x.connection, [&](client::ApiClient& c) { return c.CreateProject(x.name, x.organization); },
        [](const json& p) {
          return "created project " + Cell(p, "id") + " (" + Cell(p, "name") + ")\n";
        });
  }));
  CLI::App* project_backups =
      Leaf(*project, "backups",
           "List the backups of every volume the project has had (deleted ones included), "
           "newest first",
           f);
  AddProjectFlag(*project_backups, f);
  project_backups->callback(set(project_backups, [](const ApiFlags& x) {
    return RunCall(
        x.connection, [&](client::ApiClient& c) { return c.ListProjectBackups(x.project); },
        ProjectBackupsText);
  }));
  CLI::App* project_list = Leaf(*project, "list", "List the projects you can see", f);
  project_list->callback(set(project_list, [](const ApiFlags& x) {
    return RunCall(
        x.connection, [](client::ApiClient& c) { return c.ListProjects(); }, ProjectsText);
  }));

  // project deploy, deployments, stop, start: the workload, which runs in a
  // microVM on the worker holding the project's volume.
  CLI::App* project_deploy =
      Leaf(*project, "deploy",
           "Deploy a guest image as the project's service: it runs in a microVM on the worker "
           "holding the project's volume (attached to it), replacing the service's current "
           "deployment. Refused while the volume is busy or unavailable (exit 1) or when the "
           "worker lacks the image (exit 2)",
           f);
  AddProjectFlag(*project_deploy, f);
  project_deploy
      ->add_option(
          "--image", f.deploy.image,
          "Guest image the volume's worker has, e.g. canary (a refusal lists the ones it has)")
      ->required()
      ->type_name("NAME");
  AddServiceFlag(*project_deploy, f);
  f.deploy.memory_mib_option =
      project_deploy
          ->add_option("--memory-mib", f.deploy.memory_mib, "Guest memory, 128-65536 (default 128)")
          ->type_name("N");
  f.deploy.vcpus_option =
      project_deploy->add_option("--vcpus", f.deploy.vcpus, "Guest vCPUs, 1-32 (default 1)")
          ->type_name("N");
  f.deploy.boot_timeout_option =
      project_deploy
          ->add_option("--boot-timeout", f.deploy.boot_timeout_seconds,
                       "How long the guest may take to answer its health check, 5s-1h (default "
                       "60s)")
          ->transform(DurationUnits())
          ->type_name("DURATION");
  f.deploy.stop_timeout_option =
      project_deploy
          ->add_option("--stop-timeout", f.deploy.stop_timeout_seconds,
                       "How long a stop waits for the guest to power down before killing it, "
                       "1s-10m (default 20s)")
          ->transform(DurationUnits())
          ->type_name("DURATION");
  AddDeploymentFollowFlags(*project_deploy, f);
  project_deploy->callback(set(project_deploy, RunDeploy));

  CLI::App* project_deployments =
      Leaf(*project, "deployments",
           "List the project's deployments, newest first, with their instance's server and "
           "address",
           f);
  AddProjectFlag(*project_deployments, f);
  project_deployments->callback(set(project_deployments, [](const ApiFlags& x) {
    return RunCall(
        x.connection, [&](client::ApiClient& c) { return c.ListDeployments(x.project); },
        DeploymentsText);
  }));

  CLI::App* project_stop =
      Leaf(*project, "stop",
           "Stop the service's workload: its worker powers the guest down (killing it after "
           "the stop timeout); the deployment stays, for `project start`",
           f);
  AddProjectFlag(*project_stop, f);
  AddServiceFlag(*project_stop, f);
  project_stop->callback(set(project_stop, [](const ApiFlags& x) {
    return RunCall(
        x.connection,
        [&](client::ApiClient& c) { return c.StopWorkload(x.project, x.deploy.service); },
        DeploymentText);
  }));

  CLI::App* project_start =
      Leaf(*project, "start",
           "Start the service's current deployment again (a new instance on the worker holding "
           "the volume now, when none is live)",
           f);
  AddProjectFlag(*project_start, f);
  AddServiceFlag(*project_start, f);
  AddDeploymentFollowFlags(*project_start, f);
  project_start->callback(set(project_start, [](const ApiFlags& x) {
    return RunWorkloadCall(
        x, [&](client::ApiClient& c) { return c.StartWorkload(x.project, x.deploy.service); });
  }));

  // volume
  CLI::App* volume = Group(app, "volume", "A project's volume: backups, restores, moves, repairs");
  CLI::App* volume_show = Leaf(*volume, "show", "Show the project's volume", f);
  AddProjectFlag(*volume_show, f);
  volume_show->callback(set(volume_show, [](const ApiFlags& x) {
    return RunCall(
        x.connection, [&](client::ApiClient& c) { return c.GetVolume(x.project); }, VolumeText);
  }));

  CLI::App* volume_create =
      Leaf(*volume, "create", "Create the project's volume, or change its settings", f);
  AddProjectFlag(*volume_create, f);
  f.size_gb_option =
      volume_create->add_option("--size-gb", f.size_gb, "Size in GiB (grow only)")->type_name("N");
  f.mount_path_option =
      volume_create->add_option("--mount-path", f.mount_path, "Mount path in the guest")
          ->type_name("PATH");
  f.schedule_option = volume_create
                          ->add_option("--backup-schedule", f.schedule,
                                       "Backup schedule: off, manual, daily (every day at "
                                       "the window's start), weekly (Mondays), cron")
                          ->check(CLI::IsMember({"off", "manual", "daily", "weekly", "cron"}))
                          ->type_name("SCHEDULE");
  f.backup_cron_option =
      volume_create
          ->add_option("--backup-cron", f.backup_cron,
                       "Cron expression (minute hour day month weekday, e.g. \"30 1 * * *\"); "
                       "makes the schedule cron")
          ->type_name("EXPR");
  f.window_start_option =
      volume_create
          ->add_option("--backup-window-start", f.window_start,
                       "Start of the backup window, local time HH:MM (\"\" clears the window's "
                       "start); starts are spread over the window's first half")
          ->type_name("HH:MM");
  f.window_minutes_option =
      volume_create
          ->add_option("--backup-window-minutes", f.window_minutes,
                       "Length of the backup window in minutes (0 clears it; default: a day "
                       "without a start, 60 with one)")
          ->check(CLI::Range(0, 7 * 24 * 60))
          ->type_name("N");
  f.time_zone_option = volume_create
                           ->add_option("--backup-time-zone", f.time_zone,
                                        "IANA time zone of the schedule (default UTC)")
                           ->type_name("ZONE");
  f.retention_option =
      volume_create
          ->add_option("--backup-retention-count", f.retention, "Succeeded backups to keep")
          ->type_name("N");
  f.pre_delete_backup_option = volume_create->add_flag(
      "--pre-delete-backup,!--no-pre-delete-backup", f.pre_delete_backup,
      "Back the volume up before deleting it (kindling volume delete waits for that backup; a "
      "failed one keeps the volume); --no-pre-delete-backup turns it off");
  static constexpr std::array<std::pair<const char*, std::optional<int> client::VolumeSettings::*>,
                              5>
      kKeepRules = {{{"hourly", &client::VolumeSettings::backup_keep_hourly},
                     {"daily", &client::VolumeSettings::backup_keep_daily},
                     {"weekly", &client::VolumeSettings::backup_keep_weekly},
                     {"monthly", &client::VolumeSettings::backup_keep_monthly},
                     {"yearly", &client::VolumeSettings::backup_keep_yearly}}};
  for (std::size_t i = 0; i < kKeepRules.size(); ++i) {
    const std::string rule = kKeepRules[i].first;
    f.keep_options[i] =
        volume_create
            ->add_option("--keep-" + rule, f.keep[i],
                         "Also keep the newest backup of each of the N newest " +
                             std::string(rule == "daily"     ? "days"
                                         : rule == "hourly"  ? "hours"
                                         : rule == "weekly"  ? "weeks"
                                         : rule == "monthly" ? "months"
                                                             : "years") +
                             " that have one (UTC; 0: off; `volume retention` previews)")
            ->check(CLI::Range(0, 100000))
            ->type_name("N");
  }
  volume_create->callback(set(volume_create, [](const ApiFlags& x) {
    client::VolumeSettings settings;
    if (Given(x.size_gb_option)) settings.size_gb = x.size_gb;
    if (Given(x.mount_path_option)) settings.mount_path = x.mount_path;
    if (Given(x.schedule_option)) settings.backup_schedule = x.schedule;
    if (Given(x.backup_cron_option)) settings.backup_cron = x.backup_cron;
    if (Given(x.window_start_option)) settings.backup_window_start = x.window_start;
    if (Given(x.window_minutes_option)) settings.backup_window_minutes = x.window_minutes;
    if (Given(x.time_zone_option)) settings.backup_time_zone = x.time_zone;
    if (Given(x.retention_option)) settings.backup_retention_count = x.retention;
    if (Given(x.pre_delete_backup_option)) settings.pre_delete_backup_enabled = x.pre_delete_backup;
    for (std::size_t i = 0; i < kKeepRules.size(); ++i) {
      if (Given(x.keep_options[i])) settings.*kKeepRules[i].second = x.keep[i];
    }
    return RunCall(
        x.connection, [&](client::ApiClient& c) { return c.PutVolume(x.project, settings); },
        VolumeText);
  }));

  CLI::App* volume_backup =
      Leaf(*volume, "backup", "Queue a backup of the volume (prints operation and backup ids)", f);
  AddProjectFlag(*volume_backup, f);
  AddStopWorkloadFlag(*volume_backup, f);
  AddFollowFlags(*volume_backup, f.follow, true);
  volume_backup->callback(set(volume_backup, [](const ApiFlags& x) {
    return RunQueue(x, [&](client::ApiClient& c) { return c.QueueBackup(x.project, x.workload); });
  }));

  CLI::App* volume_retention =
      Leaf(*volume, "retention",
           "Show what the volume's retention policy keeps (and why) and drops now: what the worker "
           "deletes after the next backup. Changes nothing (--dry-run is the only mode)",
           f);
  AddProjectFlag(*volume_retention, f);
  volume_retention->add_flag("--dry-run", f.dry_run, "Only show (the default, and the only mode)");
  volume_retention->callback(set(volume_retention, [](const ApiFlags& x) {
    return RunCall(
        x.connection, [&](client::ApiClient& c) { return c.PreviewRetention(x.project); },
        RetentionText);
  }));

  CLI::App* volume_backups = Leaf(*volume, "backups", "List the volume's backups, newest first", f);
  AddProjectFlag(*volume_backups, f);
  volume_backups->callback(set(volume_backups, [](const ApiFlags& x) {
    return RunCall(
        x.connection, [&](client::ApiClient& c) { return c.ListBackups(x.project); }, BackupsText);
  }));

  CLI::App* volume_delete =
      Leaf(*volume, "delete",
           "Delete the project's volume; its image goes to the worker's quarantine. With a "
           "pre-delete backup set (volume create --pre-delete-backup) that backup is queued "
           "first and the volume is deleted once it succeeded",
           f);
  AddProjectFlag(*volume_delete, f);
  AddFollowFlags(*volume_delete, f.follow, true);
  volume_delete->callback(set(volume_delete, RunVolumeDelete));

  CLI::App* volume_verify =
      Leaf(*volume, "verify-backup",
           "Queue a verify of a backup (of any volume of the project): fetch and authenticate "
           "its chunks; missing or corrupt ones mark the backup damaged. With --follow: exit 3 "
           "when it found problems, listing them",
           f);
  AddProjectFlag(*volume_verify, f);
  volume_verify->add_option("--backup", f.backup, "Backup id")->required()->type_name("ID");
  AddFollowFlags(*volume_verify, f.follow, true);
  volume_verify->callback(set(volume_verify, [](const ApiFlags& x) {
    return RunQueue(x, [&](client::ApiClient& c) { return c.VerifyBackup(x.project, x.backup); });
  }));

  const struct {
    const char* name;
    const char* help;
    int (*run)(const ApiFlags&);
  } pin_commands[] = {
      {"pin-backup",
       "Pin a backup (of any volume of the project): retention keeps it whatever the policy "
       "until it is unpinned. The offline `kindling backup forget` cannot see pins (they live in "
       "the control plane's database)",
       [](const ApiFlags& x) { return RunPinBackup(x, true); }},
      {"unpin-backup",
       "Unpin a backup: the volume's retention policy applies to it again (from the next backup "
       "on)",
       [](const ApiFlags& x) { return RunPinBackup(x, false); }},
  };
  for (const auto& command : pin_commands) {
    CLI::App* volume_pin = Leaf(*volume, command.name, command.help, f);
    AddProjectFlag(*volume_pin, f);
    volume_pin->add_option("--backup", f.backup, "Backup id")->required()->type_name("ID");
    volume_pin->callback(set(volume_pin, command.run));
  }

  CLI::App* volume_quarantine =
      Leaf(*volume, "quarantine",
           "List quarantined images of the project's volumes (replaced, deleted, conflict)", f);
  AddProjectFlag(*volume_quarantine, f);
  volume_quarantine->callback(set(volume_quarantine, [](const ApiFlags& x) {
    return RunCall(
        x.connection, [&](client::ApiClient& c) { return c.ListVolumeQuarantine(x.project); },
        QuarantineText);
  }));

  CLI::App* volume_adopt =
      Leaf(*volume, "adopt-image",
           "Queue the adoption of a quarantined image as the project's volume's image (the "
           "image it replaces goes to the quarantine)",
           f);
  AddProjectFlag(*volume_adopt, f);
  volume_adopt->add_option("--image", f.image, "Quarantined image id (kindling volume quarantine)")
      ->required()
      ->type_name("ID");
  AddFollowFlags(*volume_adopt, f.follow, true);
  volume_adopt->callback(set(volume_adopt, [](const ApiFlags& x) {
    return RunQueue(x, [&](client::ApiClient& c) { return c.AdoptImage(x.project, x.image); });
  }));

  CLI::App* volume_restore = Leaf(
      *volume, "restore",
      "Queue a restore of a backup (of the volume, or of an earlier volume of the project)", f);
  AddProjectFlag(*volume_restore, f);
  volume_restore->add_option("--backup", f.backup, "Backup id")->required()->type_name("ID");
  volume_restore
      ->add_option("--target-server", f.target_server,
                   "Worker to restore on (default: chosen by the API)")
      ->type_name("ID");
  AddStopWorkloadFlag(*volume_restore, f);
  AddValidateFlag(*volume_restore, f);
  AddFollowFlags(*volume_restore, f.follow, true);
  volume_restore->callback(set(volume_restore, [](const ApiFlags& x) {
    return RunQueue(x, [&](client::ApiClient& c) {
      return c.QueueRestore(x.project, x.backup, x.target_server, x.workload);
    });
  }));

  CLI::App* volume_move = Leaf(*volume, "move", "Queue a move of the volume to another worker", f);
  AddProjectFlag(*volume_move, f);
  volume_move
      ->add_option("--target-server", f.target_server,
                   "Worker to move to (default: chosen by the API)")
      ->type_name("ID");
  AddStopWorkloadFlag(*volume_move, f);
  AddValidateFlag(*volume_move, f);
  AddFollowFlags(*volume_move, f.follow, true);
  volume_move->callback(set(volume_move, [](const ApiFlags& x) {
    return RunQueue(x, [&](client::ApiClient& c) {
      return c.QueueMove(x.project, x.target_server, x.workload);
    });
  }));

  CLI::App* volume_repair =
      Leaf(*volume, "repair", "Queue a filesystem check and repair (e2fsck -f -y)", f);
  AddProjectFlag(*volume_repair, f);
  AddFollowFlags(*volume_repair, f.follow, true);
  volume_repair->callback(set(volume_repair, [](const ApiFlags& x) {
    return RunQueue(x, [&](client::ApiClient& c) { return c.QueueRepair(x.project); });
  }));

  CLI::App* volume_grow =
      Leaf(*volume, "grow",
           "Grow the volume and its ext4 filesystem (offline, on a copy of the image: the "
           "workload must be stopped)",
           f);
  AddProjectFlag(*volume_grow, f);
  volume_grow->add_option("--size-gb", f.size_gb, "The new size in GiB (larger than now)")
      ->required()
      ->check(CLI::PositiveNumber);
  AddFollowFlags(*volume_grow, f.follow, true);
  volume_grow->callback(set(volume_grow, [](const ApiFlags& x) {
    auto client = Connect(x.connection);
    if (!client) return ReportError(client.error());
    Result<json> put =
        (*client)->PutVolume(x.project, client::VolumeSettings{.size_gb = x.size_gb});
    if (!put) return FailCommand(put.error());
    const json op = put->is_object() ? put->value("current_operation", json()) : json();
    // No image yet: the row has the size, and the image is made at it.
    if (!op.is_object() || op.value("kind", "") != "grow") {
      return PrintAnswer(x.connection, *put, VolumeText);
    }
    return RunQueue(x, [&](client::ApiClient&) -> Result<json> { return op; });
  }));

  // operation
  CLI::App* operation = Group(app, "operation", "Volume operations");
  CLI::App* operation_show = Leaf(*operation, "show", "Show an operation", f);
  operation_show->add_option("id", f.operation, "Operation id")->required()->type_name("ID");
  operation_show->callback(set(operation_show, [](const ApiFlags& x) {
    return RunCall(
        x.connection, [&](client::ApiClient& c) { return c.GetOperation(x.operation); },
        OperationText);
  }));
  CLI::App* operation_follow =
      Leaf(*operation, "follow",
           "Wait for an operation to finish, with progress (phase, bytes, rate, ETA) on stderr", f);
  operation_follow->add_option("id", f.operation, "Operation id")->required()->type_name("ID");
  AddFollowFlags(*operation_follow, f.follow, false);
  operation_follow->callback(set(operation_follow, [](const ApiFlags& x) {
    auto client = Connect(x.connection);
    if (!client) return ReportError(client.error());
    return FollowAndReport(**client, x.operation, x.connection, x.follow);
  }));

  // settings backup
  CLI::App* settings = Group(app, "settings", "Cluster settings (platform admin)");
  CLI::App* backup_settings = Group(*settings, "backup", "Where volume backups are stored");
  CLI::App* settings_show =
      Leaf(*backup_settings, "show", "Show the backup store settings (secrets as set/not set)", f);
  settings_show->callback(set(settings_show, [](const ApiFlags& x) {
    return RunCall(
        x.connection, [](client::ApiClient& c) { return c.GetBackupSettings(); },
        BackupSettingsText);
  }));
  CLI::App* settings_set =
      Leaf(*backup_settings, "set",
           "Change the backup store settings; flags not given are left as they are. "
           "--local-directory and --s3-bucket each switch the store (and clear the other). The S3 "
           "secret access key is read from AWS_SECRET_ACCESS_KEY (sent when an --s3-* flag is "
           "given) or --s3-secret-access-key-file, never from a flag value",
           f);
  AddStoreFlags(*settings_set, f.store_set);
  settings_set->callback(set(settings_set, RunSettingsSet));
  CLI::App* settings_test =
      Leaf(*backup_settings, "test",
           "Write, read and delete a probe object; says which step failed. Without flags it "
           "probes the saved settings; with the flags of `set` it probes the store they would "
           "select (saving nothing)",
           f);
  AddStoreFlags(*settings_test, f.store_test);
  settings_test->callback(set(settings_test, RunSettingsTest));
  CLI::App* settings_stores =
      Leaf(*backup_settings, "stores",
           "List every store the cluster has written backups to (each backup is restored from "
           "its own), marking the current one",
           f);
  settings_stores->callback(set(settings_stores, RunSettingsStores));

  // quarantine
  CLI::App* quarantine =
      Group(app, "quarantine",
            "Volume images workers took aside instead of deleting them (platform admin)");
  CLI::App* quarantine_list =
      Leaf(*quarantine, "list", "List quarantined images of every server, newest first", f);
  quarantine_list->add_option("--server", f.server, "Only images held by this server")
      ->type_name("ID");
  quarantine_list->add_option("--volume", f.volume, "Only images of this volume")->type_name("ID");
  quarantine_list
      ->add_option("--status", f.quarantine_status,
                   "Only entries in this state: held, adopted, purged")
      ->check(CLI::IsMember({"held", "adopted", "purged"}))
      ->type_name("STATUS");
  quarantine_list->callback(set(quarantine_list, [](const ApiFlags& x) {
    client::QuarantineQuery query;
    if (!x.server.empty()) query.server_id = x.server;
    if (!x.volume.empty()) query.volume_id = x.volume;
    if (!x.quarantine_status.empty()) query.status = x.quarantine_status;
    return RunCall(
        x.connection, [&](client::ApiClient& c) { return c.ListPlatformQuarantine(query); },
        QuarantineText);
  }));
  CLI::App* quarantine_purge =
      Leaf(*quarantine, "purge",
           "Ask the worker holding a quarantined image to delete it now (the image is gone for "
           "good once it did)",
           f);
  quarantine_purge->add_option("id", f.quarantine_id, "Quarantined image id")
      ->required()
      ->type_name("ID");
  quarantine_purge
      ->add_option("--project", f.project,
                   "Go through this project (for organisation admins: the image must be of one "
                   "of its volumes)")
      ->type_name("ID");
  quarantine_purge->callback(set(quarantine_purge, [](const ApiFlags& x) {
    return RunCall(
        x.connection,
        [&](client::ApiClient& c) { return c.PurgeQuarantined(x.quarantine_id, x.project); },
        PurgeRequestedText);
  }));

  // servers
  CLI::App* servers = Group(app, "servers", "Worker hosts and their health");
  CLI::App* servers_list = Leaf(*servers, "list", "List servers with health and heartbeat age", f);
  servers_list->add_flag("--all", f.all,
                         "Every server (platform admin), not only your organisations'");
  servers_list->callback(set(servers_list, [](const ApiFlags& x) {
    return RunCall(
        x.connection, [&](client::ApiClient& c) { return c.ListServers(x.all); }, ServersText);
  }));
  CLI::App* servers_drain =
      Leaf(*servers, "drain",
           "Take a server out of placement (platform admin): no new volumes, restores or moves "
           "go to it; it shows drained once no operation runs on it",
           f);
  servers_drain->add_option("id", f.server_id, "Server id")->required()->type_name("ID");
  servers_drain->callback(set(servers_drain, [](const ApiFlags& x) {
    return RunCall(
        x.connection, [&](client::ApiClient& c) { return c.DrainServer(x.server_id); },
        [](const json& s) { return ServersText(json::array({s})); });
  }));
  CLI::App* servers_activate =
      Leaf(*servers, "activate",
           "Put a drained or draining server back in placement (platform admin)", f);
  servers_activate->add_option("id", f.server_id, "Server id")->required()->type_name("ID");
  servers_activate->callback(set(servers_activate, [](const ApiFlags& x) {
    return RunCall(
        x.connection, [&](client::ApiClient& c) { return c.ActivateServer(x.server_id); },
        [](const json& s) { return ServersText(json::array({s})); });
  }));

  // audit
  CLI::App* audit = Group(app, "audit", "The audit trail (platform admin)");
  CLI::App* audit_list = Leaf(*audit, "list", "List audit events, newest first", f);
  audit_list->add_option("--action", f.action, "Only this action, e.g. volume.backup.queue");
  audit_list->add_option("--resource-type", f.resource_type,
                         "Only this resource type, e.g. project_volume");
  audit_list->add_option("--resource-id", f.resource_id, "Only this resource")->type_name("ID");
  audit_list->add_option("--since", f.since, "Only events at or after this RFC 3339 time")
      ->type_name("TIME");
  f.limit_option =
      audit_list->add_option("--limit", f.limit, "At most N events, 1-1000 (default 50)")
          ->type_name("N");
  audit_list->callback(set(audit_list, [](const ApiFlags& x) {
    return RunCall(
        x.connection, [&](client::ApiClient& c) { return c.ListAuditEvents(AuditQueryFrom(x)); },
        AuditText);
  }));

  // admin backups
  CLI::App* admin_backups =
      Group(*AdminGroup(app), "backups",
            "Backups in the stores that the database lacks, e.g. after restoring it from an "
            "older snapshot (platform admin)");
  CLI::App* backups_rescan =
      Leaf(*admin_backups, "rescan",
           "Scan every store the cluster knows and import the backups the database lacks: those "
           "of known volumes (deleted ones too) become succeeded backups, those of unknown "
           "volumes are listed as orphans. Lists what could not be read; idempotent",
           f);
  backups_rescan->callback(set(backups_rescan, RunBackupsRescan));
  CLI::App* backups_orphans =
      Leaf(*admin_backups, "orphans", "List backups whose volume the database does not know", f);
  backups_orphans->add_flag("--all", f.include_assigned, "Also those already assigned");
  backups_orphans->callback(set(backups_orphans, [](const ApiFlags& x) {
    return RunCall(
        x.connection, [&](client::ApiClient& c) { return c.ListOrphanBackups(x.include_assigned); },
        OrphansText);
  }));
  CLI::App* backups_assign =
      Leaf(*admin_backups, "assign",
           "Give an orphan backup to a project (its volume is recorded as a deleted volume of "
           "the project), so that `kindling volume restore` restores it into the project's volume",
           f);
  backups_assign->add_option("backup", f.backup, "Orphan backup id")->required()->type_name("ID");
  AddProjectFlag(*backups_assign, f);
  backups_assign->callback(set(backups_assign, [](const ApiFlags& x) {
    return RunCall(
        x.connection,
        [&](client::ApiClient& c) { return c.AssignOrphanBackup(x.backup, x.project); },
        AssignedText);
  }));

  // api-key
  CLI::App* api_key = Group(app, "api-key", "API keys: yours, or anyone's for platform admins");
  CLI::App* key_list = Leaf(*api_key, "list", "List API keys (never their secrets)", f);
  key_list->add_option("--user", f.user, "This user's keys (platform admin)")->type_name("ID");
  key_list->callback(set(key_list, [](const ApiFlags& x) {
    return RunCall(
        x.connection, [&](client::ApiClient& c) { return c.ListApiKeys(x.user); }, ApiKeysText);
  }));
  CLI::App* key_create =
      Leaf(*api_key, "create",
           "Create an API key (yours, or a user's first one); prints its secret once", f);
  key_create->add_option("--name", f.name, "What the key is for")->required();
  key_create->add_option("--user", f.user, "For this user (platform admin)")->type_name("ID");
  key_create->callback(set(key_create, [](const ApiFlags& x) {
    return RunCall(
        x.connection, [&](client::ApiClient& c) { return c.CreateApiKey(x.name, x.user); },
        CreatedKeyText);
  }));
  CLI::App* key_revoke =
      Leaf(*api_key, "revoke",
           "Revoke an API key (yours, or anyone's for platform admins); refused from then on", f);
  key_revoke->add_option("id", f.key_id, "API key id")->required()->type_name("ID");
  key_revoke->callback(set(key_revoke, [](const ApiFlags& x) {
    return RunCall(
        x.connection,
        [&](client::ApiClient& c) -> Result<json> {
          KINDLING_RETURN_IF_ERROR(c.RevokeApiKey(x.key_id));
          return json{{"id", x.key_id}, {"revoked", true}};
        },
        RevokedKeyText);
  }));

  // user
  CLI::App* user = Group(app, "user", "Users (platform admin)");
  CLI::App* user_create =
      Leaf(*user, "create",
           "Create a user; give them a first key with: kindling api-key create --user ID", f);
  user_create->add_option("--email", f.email, "Their email address (unique)")->required();
  user_create->add_option("--name", f.name, "Their name (default: the email)");
  user_create->add_flag("--platform-admin", f.platform_admin, "Make them a platform admin");
  user_create->callback(set(user_create, [](const ApiFlags& x) {
    return RunCall(
        x.connection,
        [&](client::ApiClient& c) { return c.CreateUser(x.email, x.name, x.platform_admin); },
        UserText);
  }));
  CLI::App* user_list = Leaf(*user, "list", "List every user", f);
  user_list->callback(set(user_list, [](const ApiFlags& x) {
    return RunCall(
        x.connection, [](client::ApiClient& c) { return c.ListUsers(); }, UsersText);
  }));

  // org
  CLI::App* org = Group(app, "org", "Organisations and their members");
  CLI::App* org_create = Leaf(*org, "create", "Create an organisation (platform admin)", f);
  org_create->add_option("--name", f.name, "Its name")->required();
  org_create->add_option("--owner", f.user, "Its first owner (default: you)")->type_name("USER_ID");
  org_create->callback(set(org_create, [](const ApiFlags& x) {
    return RunCall(
        x.connection, [&](client::ApiClient& c) { return c.CreateOrganization(x.name, x.user); },
        OrganizationText);
  }));
  CLI::App* org_list =
      Leaf(*org, "list", "List your organisations (every one for platform admins)", f);
  org_list->callback(set(org_list, [](const ApiFlags& x) {
    return RunCall(
        x.connection, [](client::ApiClient& c) { return c.ListOrganizations(); },
        OrganizationsText);
  }));
  CLI::App* org_members = Leaf(*org, "members", "List an organisation's members and roles", f);
  org_members->add_option("--org", f.organization, "Organisation id")->required()->type_name("ID");
  org_members->callback(set(org_members, [](const ApiFlags& x) {
    return RunCall(
        x.connection, [&](client::ApiClient& c) { return c.ListMembers(x.organization); },
        MembersText);
  }));
  CLI::App* org_set = Leaf(*org, "set-member",
                           "Add a user to an organisation or change their role (owners: any role; "
                           "admins: member and admin, never owners)",
                           f);
  org_set->add_option("--org", f.organization, "Organisation id")->required()->type_name("ID");
  CLI::Option* by_user = org_set->add_option("--user", f.user, "The user")->type_name("ID");
  CLI::Option* by_email = org_set->add_option("--email", f.email, "The user, by email");
  by_user->excludes(by_email);
  org_set->add_option("--role", f.role, "owner, admin or member")
      ->required()
      ->check(CLI::IsMember({"owner", "admin", "member"}));
  org_set->callback(set(org_set, [](const ApiFlags& x) {
    if (x.user.empty() && x.email.empty()) {
      return ReportError(InvalidArgument("give --user or --email").error());
    }
    return RunCall(
        x.connection,
        [&](client::ApiClient& c) { return c.SetMember(x.organization, x.user, x.email, x.role); },
        MemberText);
  }));
  CLI::App* org_remove =
      Leaf(*org, "remove-member", "Remove a user from an organisation (its last owner stays)", f);
  org_remove->add_option("--org", f.organization, "Organisation id")->required()->type_name("ID");
  org_remove->add_option("--user", f.user, "The user")->required()->type_name("ID");
  org_remove->callback(set(org_remove, [](const ApiFlags& x) {
    return RunCall(
        x.connection,
        [&](client::ApiClient& c) -> Result<json> {
          KINDLING_RETURN_IF_ERROR(c.RemoveMember(x.organization, x.user));
          return json{{"organization_id", x.organization}, {"user_id", x.user}, {"removed", true}};
        },
        RemovedMemberText);
  }));

  // admin validate
  CLI::App* validate =
      Leaf(*AdminGroup(app), "validate",
           "Run the runbook's validation checklist (API, heartbeats, DSN files, control-plane "
           "backups, a canary through the edge, a volume's records); exit 0 "
           "when no step failed",
           f);
  validate
      ->add_option("--dsn-file", f.dsn_file,
                   "This host's DSN file, compared with the servers' (default: "
                   "$KINDLING_DSN_FILE, else /etc/kindling/postgres.dsn when readable)")
      ->type_name("PATH");
  validate
      ->add_option("--canary-project", f.validate.canary_project,
                   "The project whose workload is the canary (image canary): deployed when it "
                   "does not run, then GET /healthz through the edge must answer 200 (step "
                   "canary; skipped without it)")
      ->envname("KINDLING_CANARY_PROJECT")
      ->type_name("ID");
  validate
      ->add_option("--edge-url", f.validate.edge_url,
                   "The edge the canary steps go through, http(s)://host[:port] (`kindling dev` "
                   "prints it)")
      ->envname("KINDLING_EDGE_URL")
      ->type_name("URL");
  validate
      ->add_option("--canary-timeout", f.validate.canary_timeout_seconds,
                   "Time limit of each canary step: deploy, run and answer through the edge "
                   "within it, e.g. 90s, 5m (default 120s)")
      ->transform(DurationUnits())
      ->check(PositiveDuration())
      ->type_name("DURATION");
  validate->add_flag(
      "--redeploy", f.validate.redeploy,
      "Deploy the canary again even when it runs (a new deployment of image canary)");
  validate
      ->add_option("--volume-project", f.validate.volume_project,
                   "Check this project's volume from inside its canary: its workload must run "
                   "image canary; GET /records/verify through the edge must list no damaged "
                   "record (step volume_records; skipped without it)")
      ->type_name("ID");
  validate->callback(set(validate, RunValidate));
}

}  // namespace kindling::cli
