#include "pgbackup/pgbackrest.h"

#include <cctype>

namespace kindling::pgbackup {
namespace {

std::string Trimmed(std::string text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  std::size_t start = 0;
  while (start < text.size() && std::isspace(static_cast<unsigned char>(text[start]))) ++start;
  return text.substr(start);
}

// pgBackRest's error lines, joined: what it printed on stderr, else stdout.
std::string Message(const CommandResult& result) {
  std::string text = Trimmed(result.errors);
  if (text.empty()) text = Trimmed(result.output);
  if (text.size() > 2000) text = text.substr(0, 2000) + "...";
  return text;
}

}  // namespace

Result<CommandResult> PgBackRest::Run(const std::string& command, std::vector<std::string> options,
                                      std::chrono::milliseconds timeout) {
  CommandOptions run;
  run.args = {invocation_.binary.string(), "--config=" + invocation_.config_file.string(),
              "--stanza=" + invocation_.stanza};
  run.args.insert(run.args.end(), options.begin(), options.end());
  run.args.push_back(command);
  run.run_as = invocation_.run_as;
  // libpq and pgBackRest variables of the caller would redirect it; the
  // configuration file says everything.
  run.drop_env_prefixes = {"PG", "LC_", "LANG"};
  run.extra_env = {"LC_ALL=C"};
  run.timeout = timeout;
  auto result = runner_.Run(run);
  if (!result) return std::unexpected(result.error().WithContext("pgbackrest " + command));
  if (result->cancelled)
    return Cancelled("pgbackrest " + command + " was stopped (the process is shutting down)");
  if (result->timed_out)
    return TransientError("pgbackrest " + command + " " + DescribeExit(*result, run) +
                          (Message(*result).empty() ? "" : ": " + Message(*result)));
  if (result->exit_status == 127)
    return NotFound("pgbackrest " + command + ": " + invocation_.binary.string() +
                    " could not be executed (apt-get install pgbackrest)");
  return result;
}

Status PgBackRest::RunChecked(const std::string& command, std::vector<std::string> options,
                              std::chrono::milliseconds timeout) {
  CommandOptions described;
  described.timeout = timeout;
  KINDLING_ASSIGN_OR_RETURN(CommandResult result, Run(command, std::move(options), timeout));
  if (result.exit_status != 0)
    return IoError("pgbackrest " + command + " failed (" + DescribeExit(result, described) +
                   "): " + Message(result));
  return OkStatus();
}

Status PgBackRest::StanzaCreate() {
  return RunChecked("stanza-create", {}, invocation_.short_timeout);
}

Status PgBackRest::Check() { return RunChecked("check", {}, invocation_.short_timeout); }

Status PgBackRest::Backup(const std::string& type) {
  if (type != "full" && type != "diff" && type != "incr")
    return InvalidArgument("the backup type is full, diff or incr, got '" + type + "'");
  return RunChecked("backup", {"--type=" + type}, invocation_.long_timeout);
}

Result<StanzaInfo> PgBackRest::Info() {
  KINDLING_ASSIGN_OR_RETURN(CommandResult result,
                            Run("info", {"--output=json"}, invocation_.short_timeout));
  if (result.exit_status != 0)
    return IoError("pgbackrest info failed (exit " + std::to_string(result.exit_status) +
                   "): " + Message(result));
  return ParseInfo(result.output, invocation_.stanza);
}

std::string PgBackRest::SyncRestoreCommand(const std::filesystem::path& pg_path) const {
  return invocation_.binary.string() + " --config=" + invocation_.config_file.string() +
         " --stanza=" + invocation_.stanza + " --pg1-path=" + pg_path.string() +
         " --no-archive-async archive-get %f \"%p\"";
}

Status PgBackRest::Restore(const RestoreRequest& request) {
  std::vector<std::string> options = {"--delta"};
  if (request.target_time) {
    options.push_back("--type=time");
    options.push_back("--target=" + *request.target_time);
    options.push_back("--target-action=promote");
  } else {
    options.push_back("--type=default");
  }
  if (!request.set.empty()) options.push_back("--set=" + request.set);
  if (!request.pg_path.empty()) options.push_back("--pg1-path=" + request.pg_path.string());
  if (!request.restore_command.empty())
    options.push_back("--recovery-option=restore_command=" + request.restore_command);
  return RunChecked("restore", std::move(options), invocation_.long_timeout);
}

}  // namespace kindling::pgbackup
