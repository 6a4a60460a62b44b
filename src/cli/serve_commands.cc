#include "cli/serve_commands.h"

#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "api/api_server.h"
#include "cli/cancel.h"
#include "cli/dev_canary.h"
#include "cli/duration_flags.h"
#include "cli/exit_codes.h"
#include "control/backup_verification.h"
#include "db/auth.h"
#include "db/database.h"
#include "db/migrations.h"
#include "service/dev.h"
#include "service/log_format.h"
#include "service/serve.h"

namespace kindling::cli {
namespace {

// Scheduled control-plane backups (service/control_plane_schedule.h).
struct ControlPlaneScheduleFlags {
  std::int64_t full_every_seconds = 7 * 24 * 3600;
  std::int64_t diff_every_seconds = 24 * 3600;
  std::int64_t incr_every_seconds = 3600;
  std::int64_t check_every_seconds = 300;

  service::ControlPlaneScheduleOptions Options() const {
    service::ControlPlaneScheduleOptions options;
    options.intervals.full_every = std::chrono::seconds(full_every_seconds);
    options.intervals.diff_every = std::chrono::seconds(diff_every_seconds);
    options.intervals.incr_every = std::chrono::seconds(incr_every_seconds);
    options.check_every = std::chrono::seconds(check_every_seconds);
    return options;
  }
};

struct ServeFlags {
  std::string components = "api,worker";
  std::string dsn_file;
  std::string state_dir = service::kDefaultStateDir;
  std::string server_id_file;
  std::string master_key_file;
  std::string listen = "127.0.0.1:8080";
  std::string tls_cert;
  std::string tls_key;
  bool insecure_http = false;
  std::string edge_listen = "127.0.0.1:8000";
  std::string hostname;
  std::string internal_ip = "127.0.0.1";
  std::string runtime = "sparse-image";
  std::string guest_dir;
  bool metrics_public = false;
  std::int64_t quarantine_grace_seconds = 3600;
  std::int64_t quarantine_retention_seconds = 7 * 24 * 3600;
  std::int64_t store_gc_every_seconds = 24 * 3600;
  std::int64_t store_gc_grace_seconds = 3600;
  std::int64_t backup_verify_every_seconds = 7 * 24 * 3600;
  std::string backup_verify_sample = "all";
  std::int64_t leader_start_grace_seconds = 120;
  int api_db_connections = 8;
  int api_threads = 0;
  int max_operations = 2;
  int operation_nice = 19;
  std::string pgbackrest_config;
  std::string pg_user = "postgres";
  ControlPlaneScheduleFlags control_plane;
};

struct DevFlags {
  std::string state_dir = service::kDefaultDevStateDir;
  std::string listen = "127.0.0.1:8080";
  std::string edge_listen = "127.0.0.1:8000";
  std::string guest_dir;
  int workers = 2;
  std::string dsn_file;
  bool canary = false;
  std::string log_format = "text";  // the children's too
  ControlPlaneScheduleFlags control_plane;
};

// --control-plane-{full,diff,incr,check}-every for serve and dev.
void AddScheduleFlags(CLI::App* command, ControlPlaneScheduleFlags& flags) {
  const struct {
    const char* name;
    const char* env;
    std::int64_t* value;
    const char* help;
  } options[] = {
      {"--control-plane-full-every", "KINDLING_CONTROL_PLANE_FULL_EVERY", &flags.full_every_seconds,
       "Take a full control-plane backup when the newest full is this old (default 168h; 0: "
       "never)"},
      {"--control-plane-diff-every", "KINDLING_CONTROL_PLANE_DIFF_EVERY", &flags.diff_every_seconds,
       "Take a differential backup when the newest full or diff is this old (default 24h; 0: "
       "never)"},
      {"--control-plane-incr-every", "KINDLING_CONTROL_PLANE_INCR_EVERY", &flags.incr_every_seconds,
       "Take an incremental backup when the newest backup is this old (default 1h; 0: never)"},
      {"--control-plane-check-every", "KINDLING_CONTROL_PLANE_CHECK_EVERY",
       &flags.check_every_seconds,
       "Check the control-plane backups and WAL archiving this often and store the report for "
       "/metrics and GET /api/platform/health (default 5m)"},
  };
  for (const auto& o : options) {
    command->add_option(o.name, *o.value, o.help)
        ->envname(o.env)
        ->transform(DurationUnits())
        ->check(CLI::NonNegativeNumber)
        ->type_name("DURATION");
  }
}

struct BootstrapFlags {
  std::string dsn_file;
  std::string email;
  std::string name = "Platform admin";
  std::string organization = "default";
  bool json = false;
};

std::vector<std::string> SplitComponents(const std::string& list) {
  std::vector<std::string> out;
  std::stringstream in(list);
  std::string item;
  while (std::getline(in, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

// The API server as a Serve component.
class ApiComponent final : public service::Component {
 public:
  ApiComponent(db::Database& db, const crypto::Key& master_key, api::ApiServerOptions options)
      : server_(db, master_key, std::move(options)) {}
  Status Start() override {
    KINDLING_RETURN_IF_ERROR(server_.Start());
    spdlog::info("api listening on port {}", server_.port());
    return OkStatus();
  }
  void Stop() override { server_.Stop(); }

 private:
  api::ApiServer server_;
};

int RunServe(const ServeFlags& flags) {
  service::UseAsyncLogging();
  service::ServeOptions options;
  options.components = SplitComponents(flags.components);
  options.dsn_file = flags.dsn_file;
  options.state_dir = flags.state_dir;
  options.server_id_file = flags.server_id_file;
  options.master_key_file = flags.master_key_file;
  options.hostname = flags.hostname;
  options.internal_ip = flags.internal_ip;
  options.runtime = flags.runtime;
  options.guest_dir = flags.guest_dir;
  options.listen = flags.listen;
  options.edge_listen = flags.edge_listen;
  options.quarantine_grace = std::chrono::seconds(flags.quarantine_grace_seconds);
  options.quarantine_retention = std::chrono::seconds(flags.quarantine_retention_seconds);
  options.store_gc_every = std::chrono::seconds(flags.store_gc_every_seconds);
  options.store_gc_grace = std::chrono::seconds(flags.store_gc_grace_seconds);
  options.backup_verify_every = std::chrono::seconds(flags.backup_verify_every_seconds);
  // Checked by the flag's validator already.
  auto sample = control::ParseVerifySample(flags.backup_verify_sample);
  if (!sample) return ReportError(sample.error());
  options.backup_verify_sample_percent = *sample;
  options.leader_start_grace = std::chrono::seconds(flags.leader_start_grace_seconds);
  options.api_db_connections = static_cast<std::size_t>(flags.api_db_connections);
  options.max_concurrent_operations = flags.max_operations;
  // Lowered operations also take the disk last; at nice 0 they run as the
  // rest of the process does.
  options.operation_priority =
      ThreadPriority{.nice = flags.operation_nice, .io_level = flags.operation_nice > 0 ? 7 : -1};
  options.pgbackrest_config = flags.pgbackrest_config;
  options.pg_user = flags.pg_user;
  options.control_plane = flags.control_plane.Options();
  if (options.control_plane.check_every.count() < 1) {
    std::fprintf(stderr, "error: --control-plane-check-every must be at least 1s\n");
    return kExitUsage;
  }
  auto listen = service::ParseListenAddress(flags.listen);
  if (!listen) return ReportError(listen.error());
  // Only a process that runs the API serves it (a worker-only host may share
  // the API hosts' environment).
  const bool serves_api = std::find(options.components.begin(), options.components.end(), "api") !=
                          options.components.end();
  if (auto transport =
          service::CheckApiTransport(*listen, flags.tls_cert, flags.tls_key, flags.insecure_http);
      serves_api && !transport) {
    return ReportError(transport.error());
  }
  const bool metrics_public = flags.metrics_public;
  options.api_factory =
      [listen = *listen, metrics_public, tls_cert = flags.tls_cert, tls_key = flags.tls_key,
       api_threads = static_cast<std::size_t>(flags.api_threads)](
          const service::ServeContext& context) -> Result<std::unique_ptr<service::Component>> {
    api::ApiServerOptions api_options;
    api_options.serving_threads = api_threads;
    api_options.listen_address = listen.host;
    api_options.port = listen.port;
    api_options.metrics_public = metrics_public;
    api_options.tls_cert_file = tls_cert;
    api_options.tls_key_file = tls_key;
    return std::make_unique<ApiComponent>(context.api_db, context.master_key, api_options);
  };
  options.on_ready = [](const service::ServeContext& context) {
    spdlog::info("kindling serve ready: server {}", context.server_id);
  };
  // Threads started before Serve blocks SIGINT and SIGTERM (the logging
  // thread) take them with the cancel handler: its flag stops serve too.
  options.stop = &InstallCancelHandlers();
  if (auto st = service::Serve(options); !st) return ReportError(st.error());
  return kExitOk;
}

int RunDev(const DevFlags& flags) {
  service::DevOptions options;
  options.state_dir = flags.state_dir;
  options.listen = flags.listen;
  options.edge_listen = flags.edge_listen;
  options.guest_dir = flags.guest_dir;
  options.workers = flags.workers;
  options.dsn_file = flags.dsn_file;
  auto log_format = service::ParseLogFormat(flags.log_format);
  if (!log_format) return ReportError(log_format.error());
  options.log_format = *log_format;
  options.control_plane = flags.control_plane.Options();
  if (options.control_plane.check_every.count() < 1) {
    std::fprintf(stderr, "error: --control-plane-check-every must be at least 1s\n");
    return kExitUsage;
  }
  options.on_ready = [canary = flags.canary](const service::DevEndpoints& endpoints) {
    std::fputs(service::DevEnvironmentLines(endpoints).c_str(), stdout);
    std::fflush(stdout);
    std::fprintf(stderr,
                 "kindling dev is ready: API %s; state in %s, logs in %s.\n"
                 "In another shell: source %s/dev.env. Ctrl-C stops everything.\n",
                 endpoints.url.c_str(), endpoints.state_dir.c_str(), endpoints.log_dir.c_str(),
                 endpoints.state_dir.c_str());
    if (canary) ShowDevCanary(endpoints);
  };
  options.stop = &InstallCancelHandlers();  // as for serve
  if (auto st = service::RunDev(options); !st) return ReportError(st.error());
  return kExitOk;
}

int RunBootstrap(const BootstrapFlags& flags) {
  auto dsn = db::ReadDsnFile(service::ResolveDsnFile(flags.dsn_file));
  if (!dsn) return ReportError(dsn.error());
  db::DatabaseOptions db_options;
  db_options.dsn = *dsn;
  db_options.max_connections = 2;
  auto database = db::Database::Open(db_options);
  if (!database) return ReportError(database.error());
  if (auto migrated = db::RunMigrations(**database); !migrated)
    return ReportError(migrated.error());
  auto made = (*database)->Transact([&](db::Tx& tx) {
    return db::BootstrapPlatformAdmin(tx, flags.email, flags.name, flags.organization);
  });
  if (!made) return ReportError(made.error());
  if (flags.json) {
    const std::string_view key = made->api_key.secret.Reveal();
    std::printf("{\"user_id\":\"%s\",\"organization_id\":\"%s\",\"api_key\":\"%.*s\"}\n",
                made->user.id.c_str(), made->organization.id.c_str(), static_cast<int>(key.size()),
                key.data());
  } else {
    const std::string_view key = made->api_key.secret.Reveal();
    std::printf("KINDLING_API_KEY=%.*s\n", static_cast<int>(key.size()), key.data());
  }
  return kExitOk;
}

// --log-format for serve and dev.
void AddLogFormatFlag(CLI::App* command, CommonFlags& common) {
  command
      ->add_option("--log-format", common.log_format,
                   "Log lines on stderr: text (default) or json (one object a line: time, level, "
                   "message and the message's key=value fields)")
      ->check(CLI::IsMember({"text", "json"}))
      ->envname("KINDLING_LOG_FORMAT")
      ->type_name("FORMAT");
}

}  // namespace

void AddServeCommands(CLI::App& app, CommonFlags& common, std::function<int()>& action) {
  auto serve_flags = std::make_shared<ServeFlags>();
  CLI::App* serve = app.add_subcommand(
      "serve", "Run control-plane components (api, worker, edge) on the shared PostgreSQL");
  serve
      ->add_option("--components", serve_flags->components,
                   "Comma-separated: api, worker, edge (default api,worker)")
      ->envname("KINDLING_COMPONENTS")
      ->type_name("LIST");
  serve
      ->add_option("--dsn-file", serve_flags->dsn_file,
                   "DSN file (default: $KINDLING_DSN_FILE, else /etc/kindling/postgres.dsn)")
      ->type_name("PATH");
  serve
      ->add_option("--state-dir", serve_flags->state_dir,
                   "State directory: server-id, master.key, volumes/")
      ->envname("KINDLING_STATE_DIR")
      ->type_name("DIR");
  serve
      ->add_option("--server-id-file", serve_flags->server_id_file,
                   "Stable server id file (default: STATE_DIR/server-id)")
      ->type_name("PATH");
  serve
      ->add_option("--master-key-file", serve_flags->master_key_file,
                   "Cluster master key (default: STATE_DIR/master.key)")
      ->envname("KINDLING_MASTER_KEY_FILE")
      ->type_name("PATH");
  serve
      ->add_option("--listen", serve_flags->listen,
                   "API address (default 127.0.0.1:8080); an address other than loopback needs "
                   "--tls-cert/--tls-key or --insecure-http")
      ->envname("KINDLING_LISTEN")
      ->type_name("ADDR:PORT");
  serve
      ->add_option("--tls-cert", serve_flags->tls_cert,
                   "Serve the API over HTTPS with this certificate chain (PEM, the server's "
                   "certificate first); needs --tls-key")
      ->envname("KINDLING_TLS_CERT")
      ->type_name("FILE");
  serve
      ->add_option("--tls-key", serve_flags->tls_key,
                   "The private key of --tls-cert (PEM, unencrypted; keep it mode 0600)")
      ->envname("KINDLING_TLS_KEY")
      ->type_name("FILE");
  serve
      ->add_flag("--insecure-http", serve_flags->insecure_http,
                 "Allow plain HTTP on an address other than loopback (API keys and the S3 "
                 "secret then cross the network in clear; for a trusted network only)")
      ->envname("KINDLING_INSECURE_HTTP");
  serve
      ->add_option("--edge-listen", serve_flags->edge_listen,
                   "Edge address, with the edge component (default 127.0.0.1:8000; port 0 picks "
                   "a free one)")
      ->envname("KINDLING_EDGE_LISTEN")
      ->type_name("ADDR:PORT");
  serve->add_option("--hostname", serve_flags->hostname, "Name in servers (default: hostname)");
  serve->add_option("--internal-ip", serve_flags->internal_ip, "Address in servers");
  serve->add_option("--runtime", serve_flags->runtime,
                    "Worker runtime reported in metadata without --guest-dir");
  serve
      ->add_option("--guest-dir", serve_flags->guest_dir,
                   "Run workloads: the canary guest's directory (vmlinux, initramfs.cpio.gz); the "
                   "VM runtime is detected by trying it")
      ->envname("KINDLING_GUEST_DIR")
      ->type_name("DIR");
  serve->add_flag("--metrics-public", serve_flags->metrics_public,
                  "Serve /metrics without an API key (trusted networks only)");
  serve
      ->add_option("--quarantine-grace", serve_flags->quarantine_grace_seconds,
                   "How long a worker keeps the image a restore, move or adoption replaced "
                   "(default 1h)")
      ->envname("KINDLING_QUARANTINE_GRACE")
      ->transform(DurationUnits())
      ->check(CLI::NonNegativeNumber)
      ->type_name("DURATION");
  serve
      ->add_option("--quarantine-retention", serve_flags->quarantine_retention_seconds,
                   "How long a worker keeps the image of a deleted volume (default 7d); images "
                   "the database cannot explain are kept until an operator decides")
      ->envname("KINDLING_QUARANTINE_RETENTION")
      ->transform(DurationUnits())
      ->check(CLI::NonNegativeNumber)
      ->type_name("DURATION");
  serve
      ->add_option("--store-gc-every", serve_flags->store_gc_every_seconds,
                   "How often the leader deletes the backup store's chunks that no backup "
                   "references any more (default 1d; 0: never; safe while backups run)")
      ->envname("KINDLING_STORE_GC_EVERY")
      ->transform(DurationUnits())
      ->check(CLI::NonNegativeNumber)
      ->type_name("DURATION");
  serve
      ->add_option("--store-gc-grace", serve_flags->store_gc_grace_seconds,
                   "Unreferenced chunks written less than this long ago are kept by the "
                   "scheduled collection (default 1h)")
      ->envname("KINDLING_STORE_GC_GRACE")
      ->transform(DurationUnits())
      ->check(CLI::NonNegativeNumber)
      ->type_name("DURATION");
  serve
      ->add_option("--backup-verify-every", serve_flags->backup_verify_every_seconds,
                   "How often the leader starts a round verifying the backups' chunks through "
                   "the workers (default 7d; 0: never); each backup records verified_at and "
                   "verify_state, and damaged chunks are marked for healing")
      ->envname("KINDLING_BACKUP_VERIFY_EVERY")
      ->transform(DurationUnits())
      ->check(CLI::NonNegativeNumber)
      ->type_name("DURATION");
  serve
      ->add_option("--backup-verify-sample", serve_flags->backup_verify_sample,
                   "What a verification round verifies: all (default) or a percentage such as "
                   "25%, the least recently verified backups first, so successive rounds cover "
                   "every backup")
      ->envname("KINDLING_BACKUP_VERIFY_SAMPLE")
      ->check(CLI::Validator(
          [](std::string& value) -> std::string {
            auto parsed = control::ParseVerifySample(value);
            return parsed ? std::string() : parsed.error().message();
          },
          ""))
      ->type_name("all|N%");
  serve
      ->add_option("--leader-start-grace", serve_flags->leader_start_grace_seconds,
                   "After this process becomes the leader, how long before it marks silent "
                   "servers dead or fails their operations (default 2m; at least 30s): workers "
                   "restarted after a database restore take their work back meanwhile")
      ->envname("KINDLING_LEADER_START_GRACE")
      ->transform(DurationUnits())
      ->check(CLI::NonNegativeNumber)
      ->type_name("DURATION");
  serve
      ->add_option("--api-db-connections", serve_flags->api_db_connections,
                   "PostgreSQL connections of the API's own pool (default 8); requests beyond "
                   "them wait their turn, oldest first")
      ->envname("KINDLING_API_DB_CONNECTIONS")
      ->check(CLI::Range(1, 256))
      ->type_name("N");
  serve
      ->add_option("--api-threads", serve_flags->api_threads,
                   "Threads serving API requests at once, in the order they arrive (default 0: "
                   "one per core); one waiting for PostgreSQL or a slow client is replaced "
                   "meanwhile")
      ->envname("KINDLING_API_THREADS")
      ->check(CLI::Range(0, 1024))
      ->type_name("N");
  serve
      ->add_option("--max-operations", serve_flags->max_operations,
                   "Volume operations (backups, restores, moves, repairs) a worker runs at once "
                   "(default 2)")
      ->envname("KINDLING_MAX_OPERATIONS")
      ->check(CLI::Range(1, 64))
      ->type_name("N");
  serve
      ->add_option("--operation-nice", serve_flags->operation_nice,
                   "Nice value of a worker's volume operations, 0-19 (default 19, with the "
                   "lowest best-effort I/O priority above 0): they take the CPU and disk the "
                   "API and heartbeats leave; their leases are kept at the process's priority")
      ->envname("KINDLING_OPERATION_NICE")
      ->check(CLI::Range(0, 19))
      ->type_name("N");
  serve
      ->add_option("--pgbackrest-config", serve_flags->pgbackrest_config,
                   std::string("This host's pgBackRest configuration: schedule control-plane "
                               "backups and checks from here (default: ") +
                       service::kDefaultPgBackRestConfig + " when it exists)")
      ->envname("KINDLING_PGBACKREST_CONFIG")
      ->type_name("PATH");
  serve
      ->add_option("--pg-user", serve_flags->pg_user,
                   "PostgreSQL superuser (and, as root, the system user pgBackRest runs as) for "
                   "the scheduled control-plane backups (default postgres)")
      ->type_name("NAME");
  AddScheduleFlags(serve, serve_flags->control_plane);
  CLI::Option* serve_log_level =
      serve
          ->add_option("--log-level", common.log_level,
                       "Diagnostics on stderr: trace, debug, info (default: the access log, one "
                       "line a request), warn, error, off")
          ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}))
          ->envname("KINDLING_LOG_LEVEL")
          ->type_name("LEVEL");
  AddLogFormatFlag(serve, common);
  serve->callback([&action, &common, serve_flags, serve_log_level] {
    if (serve_log_level->count() == 0) common.log_level = "info";
    action = [serve_flags] { return RunServe(*serve_flags); };
  });

  auto dev_flags = std::make_shared<DevFlags>();
  CLI::App* dev = app.add_subcommand(
      "dev",
      "Run everything on this machine: a private PostgreSQL, the API and workers, a local "
      "backup store, an edge. Prints KINDLING_URL, KINDLING_API_KEY, KINDLING_DSN and "
      "KINDLING_EDGE_URL when ready; "
      "Ctrl-C stops it; the state directory keeps the data for the next start");
  dev->add_option("--state-dir", dev_flags->state_dir,
                  std::string("State directory (default ") + service::kDefaultDevStateDir + ")")
      ->envname("KINDLING_DEV_STATE_DIR")
      ->type_name("DIR");
  dev->add_option("--listen", dev_flags->listen,
                  "API address, loopback only, plain HTTP (default 127.0.0.1:8080; port 0 picks "
                  "a free one)")
      ->type_name("ADDR:PORT");
  dev->add_option("--edge-listen", dev_flags->edge_listen,
                  "Edge address (default 127.0.0.1:8000; port 0 picks a free one)")
      ->type_name("ADDR:PORT");
  dev->add_option("--guest-dir", dev_flags->guest_dir,
                  "The canary guest the workers run workloads with (default: the build's, when "
                  "it made one; none: no workloads)")
      ->type_name("DIR");
  dev->add_option("--workers", dev_flags->workers, "Worker processes (default 2)")
      ->check(CLI::Range(1, 16))
      ->type_name("N");
  dev->add_option("--dsn-file", dev_flags->dsn_file,
                  "Run the API and workers against the database this DSN file names instead of "
                  "a private PostgreSQL")
      ->type_name("PATH");
  dev->add_flag("--canary", dev_flags->canary,
                "Once ready, run the canary guest in a project named canary (made on the first "
                "start) and show it answering through the edge");
  AddScheduleFlags(dev, dev_flags->control_plane);
  AddLogFormatFlag(dev, common);
  dev->callback([&action, &common, dev_flags] {
    dev_flags->log_format = common.log_format;
    action = [dev_flags] { return RunDev(*dev_flags); };
  });

  auto bootstrap_flags = std::make_shared<BootstrapFlags>();
  CLI::App* admin = app.add_subcommand("admin", "Cluster administration");
  admin->require_subcommand(1);
  CLI::App* bootstrap =
      admin->add_subcommand("bootstrap", "Create the first platform admin and print its API key");
  bootstrap->add_option("--email", bootstrap_flags->email, "The admin's email")->required();
  bootstrap->add_option("--name", bootstrap_flags->name, "The admin's name");
  bootstrap->add_option("--organization", bootstrap_flags->organization,
                        "Organisation the admin owns");
  bootstrap->add_option("--dsn-file", bootstrap_flags->dsn_file,
                        "DSN file (default: $KINDLING_DSN_FILE, else /etc/kindling/postgres.dsn)");
  bootstrap->add_flag("--json", bootstrap_flags->json, "Print one JSON object");
  bootstrap->callback([&action, bootstrap_flags] {
    action = [bootstrap_flags] { return RunBootstrap(*bootstrap_flags); };
  });
}

}  // namespace kindling::cli
