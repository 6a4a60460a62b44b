#include "cli/master_key_commands.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/exit_codes.h"
#include "cli/output.h"
#include "db/database.h"
#include "service/master_key.h"
#include "service/serve.h"

namespace kindling::cli {
namespace {

using nlohmann::json;

constexpr char kWarning[] =
    "kindling: warning: this is the cluster master key. Whoever has this file (and the bucket) "
    "can read every backup and every cluster secret: keep it offline, apart from the database "
    "backups. Without it a restored database's cluster_secrets and the backup stores' keys are "
    "unreadable.\n";

struct MasterKeyFlags {
  std::string file;  // --out (export) or --from (import)
  std::string master_key_file;
  std::string state_dir = service::kDefaultStateDir;
  std::string dsn_file;
  bool no_database = false;
  bool force = false;
  bool json = false;
};

std::filesystem::path KeyFileOf(const MasterKeyFlags& flags) {
  if (!flags.master_key_file.empty()) return flags.master_key_file;
  return std::filesystem::path(flags.state_dir) / "master.key";
}

// The cluster's database when one is reachable. A DSN file named by
// --dsn-file or $KINDLING_DSN_FILE must work; the default one may be missing
// or its database down (a host being rebuilt): then nullptr, with a note.
Result<std::unique_ptr<db::Database>> MaybeOpenDatabase(const MasterKeyFlags& flags) {
  if (flags.no_database) return std::unique_ptr<db::Database>();
  const char* env = std::getenv(service::kDsnFileEnv);
  const bool named = !flags.dsn_file.empty() || (env != nullptr && *env != '\0');
  const std::filesystem::path dsn_file = service::ResolveDsnFile(flags.dsn_file);
  auto skip = [&](const std::string& why) -> Result<std::unique_ptr<db::Database>> {
    if (named) return InvalidArgument(why);
    std::fprintf(stderr,
                 "kindling: note: no database (%s): the key is not checked against the "
                 "cluster's and nothing is recorded\n",
                 why.c_str());
    return std::unique_ptr<db::Database>();
  };
  std::error_code ec;
  if (!named && !std::filesystem::exists(dsn_file, ec))
    return skip("no DSN file " + dsn_file.string());
  auto dsn = db::ReadDsnFile(dsn_file);
  if (!dsn) return skip(dsn.error().message());
  db::DatabaseOptions options;
  options.dsn = *dsn;
  options.max_connections = 2;
  options.application_name = "kindling admin master-key";
  auto opened = db::Database::Open(options);
  if (!opened) {
    if (named) return std::unexpected(opened.error());
    return skip("database " + db::RedactDsn(*dsn) + " unreachable: " + opened.error().message());
  }
  return std::move(*opened);
}

void Print(const MasterKeyFlags& flags, const json& answer, const std::string& text) {
  if (flags.json) {
    PrintJsonLine(answer);
  } else {
    std::fputs(text.c_str(), stdout);
  }
  std::fflush(stdout);
}

json AnswerOf(const service::MasterKeyCopy& copy, bool database) {
  return json{
      {"checked_against_cluster", copy.checked_against_cluster},
      {"database", database},
      {"unchanged", copy.unchanged},
      {"replaced_key_kept_at",
       copy.replaced_key_kept_at ? json(copy.replaced_key_kept_at->string()) : json(nullptr)}};
}

std::string CheckedText(const service::MasterKeyCopy& copy, bool database) {
  if (copy.checked_against_cluster) return "it is the cluster's key";
  return database ? "the cluster has recorded no key yet" : "not checked: no database";
}

int RunExport(const MasterKeyFlags& flags) {
  std::fputs(kWarning, stderr);
  auto database = MaybeOpenDatabase(flags);
  if (!database) return ReportError(database.error());
  const std::filesystem::path key_file = KeyFileOf(flags);
  auto copy = service::ExportMasterKey(key_file, flags.file, flags.force, database->get());
  if (!copy) return ReportError(copy.error());
  json answer = AnswerOf(*copy, *database != nullptr);
  answer["key_file"] = key_file.string();
  answer["out"] = flags.file;
  Print(flags, answer,
        "exported the master key " + key_file.string() + " to " + flags.file + " (" +
            CheckedText(*copy, *database != nullptr) +
            (*database ? "; master_key_exported_at recorded" : "") + ")\n");
  return kExitOk;
}

int RunImport(const MasterKeyFlags& flags) {
  std::fputs(kWarning, stderr);
  auto database = MaybeOpenDatabase(flags);
  if (!database) return ReportError(database.error());
  const std::filesystem::path key_file = KeyFileOf(flags);
  auto copy = service::ImportMasterKey(flags.file, key_file, flags.force, database->get());
  if (!copy) return ReportError(copy.error());
  json answer = AnswerOf(*copy, *database != nullptr);
  answer["key_file"] = key_file.string();
  answer["from"] = flags.file;
  std::string text =
      copy->unchanged ? key_file.string() + " already holds this master key"
                      : "installed the master key from " + flags.file + " as " + key_file.string();
  text += " (" + CheckedText(*copy, *database != nullptr) + ")\n";
  if (copy->replaced_key_kept_at)
    text += "the key it replaced is kept in " + copy->replaced_key_kept_at->string() + "\n";
  Print(flags, answer, text);
  return kExitOk;
}

void AddKeyFlags(CLI::App& command, MasterKeyFlags& flags) {
  command
      .add_option("--master-key-file", flags.master_key_file,
                  "The master key file (default: STATE_DIR/master.key)")
      ->envname("KINDLING_MASTER_KEY_FILE")
      ->type_name("PATH");
  command
      .add_option("--state-dir", flags.state_dir,
                  std::string("kindling serve's state directory (default ") +
                      service::kDefaultStateDir + ")")
      ->envname("KINDLING_STATE_DIR")
      ->type_name("DIR");
  command
      .add_option("--dsn-file", flags.dsn_file,
                  "DSN file of the cluster's database, to check the key against it (default: "
                  "$KINDLING_DSN_FILE, else /etc/kindling/postgres.dsn when it exists)")
      ->type_name("PATH");
  command.add_flag("--no-database", flags.no_database, "Do not use the database");
  command.add_flag("--json", flags.json, "Print one JSON object on the last line of stdout");
}

}  // namespace

void AddMasterKeyCommands(CLI::App& app, std::function<int()>& action) {
  auto found = app.get_subcommands([](CLI::App* sub) { return sub->get_name() == "admin"; });
  CLI::App* admin =
      found.empty() ? app.add_subcommand("admin", "Cluster administration") : found.front();
  admin->require_subcommand(1);
  CLI::App* group = admin->add_subcommand(
      "master-key",
      "Copies of the cluster master key: whoever has it can read every backup and cluster "
      "secret; a restored database is unreadable without it");
  group->require_subcommand(1);

  auto export_flags = std::make_shared<MasterKeyFlags>();
  CLI::App* exp = group->add_subcommand(
      "export",
      "Write the master key to a file (mode 0600, atomically) to keep apart from the database "
      "backups; with the database reachable, checks it is the cluster's key and records "
      "master_key_exported_at");
  exp->add_option("--out", export_flags->file, "The file to write")->required()->type_name("FILE");
  exp->add_flag("--force", export_flags->force, "Replace --out when it holds something else");
  AddKeyFlags(*exp, *export_flags);
  exp->callback(
      [&action, export_flags] { action = [export_flags] { return RunExport(*export_flags); }; });

  auto import_flags = std::make_shared<MasterKeyFlags>();
  CLI::App* imp = group->add_subcommand(
      "import",
      "Install an exported master key as this host's (before `kindling serve` starts on a "
      "restored database); with the database reachable, refuses a key that is not the "
      "cluster's");
  imp->add_option("--from", import_flags->file, "The exported key file")
      ->required()
      ->type_name("FILE");
  imp->add_flag("--force", import_flags->force,
                "Replace a different key already there (it is kept beside it, never deleted)");
  AddKeyFlags(*imp, *import_flags);
  imp->callback(
      [&action, import_flags] { action = [import_flags] { return RunImport(*import_flags); }; });
}

}  // namespace kindling::cli
