#include "cli/cli.h"

#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <functional>
#include <memory>
#include <string>

#include "cli/api_commands.h"
#include "cli/cancel.h"
#include "cli/commands.h"
#include "cli/control_plane_commands.h"
#include "cli/duration_flags.h"
#include "cli/exit_codes.h"
#include "cli/flags.h"
#include "cli/master_key_commands.h"
#include "cli/serve_commands.h"
#include "service/log_format.h"

namespace kindling::cli {
namespace {

constexpr char kExitCodesFooter[] =
    "Exit codes: 0 success, 1 operation failed, 2 usage or invalid argument, 3 integrity "
    "problem (corrupt or missing data), 4 wrong key file, 130 cancelled (SIGINT/SIGTERM).";

// Every flag of every command, bound to CLI11 options.
struct AllFlags {
  CommonFlags common;
  StoreInitFlags store_init;
  StoreGcFlags store_gc;
  BackupCreateFlags create;
  BackupListFlags list;
  BackupRestoreFlags restore;
  BackupVerifyFlags verify;
  BackupForgetFlags forget;
  BackupDeleteFlags backup_delete;
  ImageDigestFlags image_digest;
  DemoFlags demo;
};

void AddCommonFlags(CLI::App& command, CommonFlags& common) {
  command.add_option("--threads", common.threads, "Worker threads (0: chosen from the core count)")
      ->type_name("N");
  command.add_flag("-q,--quiet", common.quiet, "No progress output");
  command
      .add_option("--progress", common.progress,
                  "Progress on stderr: auto (bar on a terminal, else JSON lines), bar, json, none")
      ->check(CLI::IsMember({"auto", "bar", "json", "none"}))
      ->type_name("MODE");
  command
      .add_option("--log-level", common.log_level,
                  "Diagnostics on stderr: trace, debug, info, warn, error, off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}))
      ->envname("KINDLING_LOG_LEVEL")
      ->type_name("LEVEL");
  command.add_flag("--json", common.json,
                   "Print the result as one JSON object on the last line of stdout");
}

void AddStoreFlags(CLI::App& command, StoreFlags& store) {
  command.add_option("--store", store.url, "Store URL: file:///dir or s3://bucket[/prefix]")
      ->required()
      ->envname("KINDLING_STORE")
      ->type_name("URL");
  command.add_option("--key-file", store.key_file, "The store's key file (keep it secret)")
      ->required()
      ->envname("KINDLING_KEY_FILE")
      ->type_name("PATH");
  command
      .add_option("--s3-endpoint", store.s3_endpoint,
                  "S3-compatible endpoint, http(s)://host[:port] (default: AWS_ENDPOINT_URL, "
                  "else AWS)")
      ->type_name("URL");
  command
      .add_option("--s3-region", store.s3_region, "S3 region (default: AWS_REGION, else us-east-1)")
      ->type_name("REGION");
}

CLI::App* Leaf(CLI::App& parent, const std::string& name, const std::string& description) {
  CLI::App* command = parent.add_subcommand(name, description);
  command->footer(kExitCodesFooter);
  return command;
}

// "kindling backup create" for the deepest subcommand named on the command line.
std::string CommandPath(const CLI::App& app) {
  std::string path = app.get_name();
  const CLI::App* current = &app;
  for (;;) {
    const auto selected = current->get_subcommands();
    if (selected.empty()) break;
    current = selected.front();
    path += " " + current->get_name();
  }
  return path;
}

int RunOrThrow(int argc, char** argv) {
  AllFlags flags;
  std::function<int()> action;

  CLI::App app("kindling: encrypted, deduplicated, incremental backups of ext4 volume images",
               "kindling");
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("kindling ") + KINDLING_VERSION);
  app.footer(kExitCodesFooter);

  CLI::App* store = app.add_subcommand("store", "Manage a backup store");
  store->require_subcommand(1);
  CLI::App* init =
      Leaf(*store, "init", "Initialise a store; creates the key file when it does not exist");
  AddStoreFlags(*init, flags.store_init.store);
  init->add_option("--chunk-size", flags.store_init.chunk_size,
                   "Chunk size of new backups, e.g. 4MiB (default), 1MiB, 65536")
      ->type_name("BYTES");
  AddCommonFlags(*init, flags.common);
  init->callback([&] { action = [&] { return RunStoreInit(flags.store_init, flags.common); }; });

  CLI::App* gc = Leaf(*store, "gc",
                      "Delete the chunks no backup references (and their damage records); safe "
                      "while backups run, which it waits for before it deletes anything");
  AddStoreFlags(*gc, flags.store_gc.store);
  gc->add_option("--grace", flags.store_gc.grace_seconds,
                 "Keep unreferenced chunks written less than this long ago, e.g. 1h, 2d "
                 "(default 0: none kept)")
      ->transform(DurationUnits())
      ->check(CLI::NonNegativeNumber)
      ->type_name("DURATION");
  gc->add_flag("--dry-run", flags.store_gc.dry_run,
               "Report what would be deleted; delete nothing and take no lock");
  gc->add_option("--max-wait", flags.store_gc.max_wait_seconds,
                 "How long to wait for running backups to finish before giving up, deleting "
                 "nothing more (default 6h; 0: no limit)")
      ->transform(DurationUnits())
      ->check(CLI::NonNegativeNumber)
      ->type_name("DURATION");
  gc->add_option("--marker-stale-after", flags.store_gc.marker_stale_after_seconds,
                 "A backup's marker or a collection's lock left unchanged this long belongs to a "
                 "process that died: it is removed or taken over (default 10m; at least 1s)")
      ->transform(DurationUnits())
      ->check(CLI::NonNegativeNumber)
      ->type_name("DURATION");
  AddCommonFlags(*gc, flags.common);
  gc->callback([&] { action = [&] { return RunStoreGc(flags.store_gc, flags.common); }; });

  CLI::App* backup =
      app.add_subcommand("backup", "Create, list, restore, verify, forget and delete backups");
  backup->require_subcommand(1);

  CLI::App* create = Leaf(*backup, "create", "Back up a volume image");
  AddStoreFlags(*create, flags.create.store);
  create->add_option("--volume-id", flags.create.volume_id, "The volume the image belongs to")
      ->required()
      ->type_name("ID");
  create->add_option("--image", flags.create.image, "The volume image file (may be sparse)")
      ->required()
      ->type_name("PATH");
  create
      ->add_option("--backup-id", flags.create.backup_id,
                   "Id of the new backup (default: a new time-ordered UUID)")
      ->type_name("ID");
  create
      ->add_option("--chunk-size", flags.create.chunk_size,
                   "Chunk size for this backup (default: the store's)")
      ->type_name("BYTES");
  create
      ->add_option("--compression-level", flags.create.compression_level,
                   "zstd level, 1..19 (default 1)")
      ->type_name("N");
  create
      ->add_option("--snapshot", flags.create.snapshot,
                   "Back up a reflink clone of the image taken first (XFS with reflink, "
                   "btrfs): auto (where the filesystem can), on (fail where it cannot), off")
      ->check(CLI::IsMember({"auto", "on", "off"}))
      ->type_name("auto|on|off");
  create
      ->add_option("--changed-blocks", flags.create.changed_blocks,
                   "Read only the chunks that changed since the previous backup's snapshot, "
                   "from the two snapshots' extent maps: auto, on (fail where the filesystem "
                   "cannot clone), off (read every data chunk)")
      ->check(CLI::IsMember({"auto", "on", "off"}))
      ->type_name("auto|on|off");
  create->add_flag("--reread-skipped", flags.create.reread_skipped,
                   "Check mode: read the chunks skipped as unchanged too, and fail if any "
                   "differs from the previous snapshot (nothing is committed then)");
  AddCommonFlags(*create, flags.common);
  create->callback([&] { action = [&] { return RunBackupCreate(flags.create, flags.common); }; });

  CLI::App* list = Leaf(*backup, "list", "List backups, newest first");
  AddStoreFlags(*list, flags.list.store);
  list->add_option("--volume-id", flags.list.volume_id, "Only this volume's backups")
      ->type_name("ID");
  AddCommonFlags(*list, flags.common);
  list->callback([&] { action = [&] { return RunBackupList(flags.list, flags.common); }; });

  CLI::App* restore =
      Leaf(*backup, "restore", "Restore a backup to an image file (checked against its SHA-256)");
  AddStoreFlags(*restore, flags.restore.store);
  restore->add_option("--backup", flags.restore.backup_id, "The backup id")
      ->required()
      ->type_name("ID");
  restore
      ->add_option("--volume-id", flags.restore.volume_id,
                   "The backup's volume (optional; saves a search)")
      ->type_name("ID");
  restore->add_option("--to", flags.restore.destination, "Destination image file")
      ->required()
      ->type_name("PATH");
  restore->add_flag("--force", flags.restore.force, "Replace the destination if it exists");
  AddCommonFlags(*restore, flags.common);
  restore->callback(
      [&] { action = [&] { return RunBackupRestore(flags.restore, flags.common); }; });

  CLI::App* verify =
      Leaf(*backup, "verify", "Fetch and authenticate a backup's chunks; report damaged ones");
  AddStoreFlags(*verify, flags.verify.store);
  verify->add_option("--backup", flags.verify.backup_id, "The backup id")
      ->required()
      ->type_name("ID");
  verify
      ->add_option("--volume-id", flags.verify.volume_id,
                   "The backup's volume (optional; saves a search)")
      ->type_name("ID");
  verify
      ->add_option("--sample", flags.verify.sample,
                   "Share of the chunks to check, in (0, 1] (default 1: all)")
      ->type_name("FRACTION");
  verify->add_option("--seed", flags.verify.seed, "Seed of the sample (default: random)")
      ->type_name("N");
  AddCommonFlags(*verify, flags.common);
  verify->callback([&] { action = [&] { return RunBackupVerify(flags.verify, flags.common); }; });

  CLI::App* forget =
      Leaf(*backup, "forget",
           "Apply a retention policy to a volume's backups: delete the manifests of "
           "those no --keep-* rule keeps (at least one rule is required). Rules "
           "as restic's: each keeps the newest backup of each of its N newest "
           "periods (UTC; weeks start on Monday); a backup any rule keeps stays. "
           "Only manifests are deleted: `kindling store gc` frees the chunks no "
           "remaining backup uses. The store does not know what the control plane "
           "protects (pre-delete backups, backups pinned with `kindling volume pin-backup`, "
           "a restore's source): this command drops them like any other. For a cluster's "
           "volumes set the policy on the volume instead (`kindling volume create --keep-*`)");
  AddStoreFlags(*forget, flags.forget.store);
  forget->add_option("--volume-id", flags.forget.volume_id, "The volume whose backups to thin out")
      ->required()
      ->type_name("ID");
  forget->add_option("--keep-last", flags.forget.keep_last, "Keep the N newest backups")
      ->type_name("N");
  forget
      ->add_option("--keep-hourly", flags.forget.keep_hourly,
                   "Keep the newest backup of each of the N newest hours that have one")
      ->type_name("N");
  forget
      ->add_option("--keep-daily", flags.forget.keep_daily,
                   "Keep the newest backup of each of the N newest days (UTC) that have one")
      ->type_name("N");
  forget
      ->add_option("--keep-weekly", flags.forget.keep_weekly,
                   "Keep the newest backup of each of the N newest ISO weeks that have one")
      ->type_name("N");
  forget
      ->add_option("--keep-monthly", flags.forget.keep_monthly,
                   "Keep the newest backup of each of the N newest months that have one")
      ->type_name("N");
  forget
      ->add_option("--keep-yearly", flags.forget.keep_yearly,
                   "Keep the newest backup of each of the N newest years that have one")
      ->type_name("N");
  forget->add_flag("--dry-run", flags.forget.dry_run,
                   "Report what would be kept and dropped; delete nothing");
  AddCommonFlags(*forget, flags.common);
  forget->callback([&] { action = [&] { return RunBackupForget(flags.forget, flags.common); }; });

  CLI::App* backup_delete = Leaf(*backup, "delete",
                                 "Delete one backup's manifest. Only the manifest is deleted: "
                                 "`kindling store gc` frees the chunks no remaining backup uses");
  AddStoreFlags(*backup_delete, flags.backup_delete.store);
  backup_delete->add_option("--backup", flags.backup_delete.backup_id, "The backup id")
      ->required()
      ->type_name("ID");
  backup_delete
      ->add_option("--volume-id", flags.backup_delete.volume_id,
                   "The backup's volume (optional; saves a search)")
      ->type_name("ID");
  AddCommonFlags(*backup_delete, flags.common);
  backup_delete->callback(
      [&] { action = [&] { return RunBackupDelete(flags.backup_delete, flags.common); }; });

  CLI::App* image = app.add_subcommand("image", "Work with volume image files");
  image->require_subcommand(1);
  CLI::App* digest = Leaf(*image, "digest",
                          "Print an image file's digest, to compare with a backup's image_sha256 "
                          "(a SHA-256 chunk-tree digest, not what sha256sum prints)");
  digest->add_option("--image", flags.image_digest.image, "The image file or block device")
      ->required()
      ->type_name("PATH");
  digest
      ->add_option("--chunk-size", flags.image_digest.chunk_size,
                   "Chunk size of the backup to compare with (default 4MiB)")
      ->type_name("BYTES");
  AddCommonFlags(*digest, flags.common);
  digest->callback(
      [&] { action = [&] { return RunImageDigest(flags.image_digest, flags.common); }; });

  CLI::App* demo =
      Leaf(app, "demo", "Build a demo image, back it up twice, restore, verify, compare");
  demo->add_option("--dir", flags.demo.dir,
                   "Working directory, empty or new (default: a new one under /tmp)")
      ->type_name("DIR");
  demo->add_option("--size-mib", flags.demo.size_mib, "Image size in MiB (default 1024)")
      ->type_name("N");
  demo->add_option("--chunk-size", flags.demo.chunk_size, "Store chunk size (default 4MiB)")
      ->type_name("BYTES");
  demo->add_option("--change", flags.demo.change_fraction,
                   "Share of chunks changed before the second backup (default 0.02)")
      ->type_name("FRACTION");
  demo->add_option("--seed", flags.demo.seed, "Seed of the image content (default: random)")
      ->type_name("N");
  demo->add_option("--compression-level", flags.demo.compression_level,
                   "zstd level, 1..19 (default 1)")
      ->type_name("N");
  AddCommonFlags(*demo, flags.common);
  demo->callback([&] { action = [&] { return RunDemo(flags.demo, flags.common); }; });

  CLI::App* version = Leaf(app, "version", "Print the version");
  version->add_flag("--json", flags.common.json, "Print the version as JSON");
  version->callback([&] { action = [&] { return RunVersion(flags.common); }; });

  AddServeCommands(app, flags.common, action);
  AddMasterKeyCommands(app, action);
  AddControlPlaneCommands(*app.get_subcommand("admin"), action);
  AddApiCommands(app, action);

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {  // --help, --help-all, --version
    return app.exit(e, std::cout, std::cerr);
  } catch (const CLI::ParseError& e) {
    std::string message = e.what();
    while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) {
      message.pop_back();
    }
    return ReportError(
        Error(ErrorKind::kInvalidArgument, message + " (see: " + CommandPath(app) + " --help)"));
  }

  auto log_format = service::ParseLogFormat(flags.common.log_format);
  service::SetUpLogging(flags.common.log_level,
                        log_format ? *log_format : service::LogFormat::kText);
  if (!log_format) return ReportError(log_format.error());
  if (auto st = ValidateCommon(flags.common); !st) return ReportError(st.error());
  if (!action) return ReportError(InternalError("no command selected").error());
  InstallCancelHandlers();
  return action();
}

}  // namespace

int Run(int argc, char** argv) {
  try {
    const int code = RunOrThrow(argc, argv);
    std::fflush(stdout);
    spdlog::shutdown();
    return code;
  } catch (const std::exception& e) {
    return ReportError(InternalError(std::string("unexpected exception: ") + e.what()).error());
  } catch (...) {
    return ReportError(InternalError("unexpected exception").error());
  }
}

}  // namespace kindling::cli
