#include "service/serve.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <ctime>
#include <thread>

#include "common/files.h"
#include "common/ids.h"
#include "common/secret.h"
#include "control/backup_rescan.h"
#include "control/backup_store.h"
#include "crypto/key_file.h"
#include "db/migrations.h"
#include "db/settings.h"
#include "pgbackup/config.h"
#include "reconcile/leader.h"
#include "reconcile/worker.h"
#include "runtime/detect.h"
#include "service/backup_verify_loop.h"
#include "service/edge_component.h"
#include "service/master_key.h"
#include "service/postgres_control.h"
#include "service/stop_signals.h"
#include "service/store_gc_loop.h"

namespace kindling::service {
namespace {

bool Has(const std::vector<std::string>& components, std::string_view name) {
  return std::find(components.begin(), components.end(), name) != components.end();
}

std::string Trim(std::string text) {
  const auto not_space = [](unsigned char c) { return !std::isspace(c); };
  text.erase(text.begin(), std::find_if(text.begin(), text.end(), not_space));
  text.erase(std::find_if(text.rbegin(), text.rend(), not_space).base(), text.end());
  return text;
}

// The startup line: version, server, components, where the API and the edge
// listen, the workloads' runtime and the volume backup store (its URL, never
// a credential).
void LogStartup(const ServeOptions& options, db::Database& db, const crypto::Key& master_key,
                const std::string& server_id, const std::string& runtime, int edge_port) {
  std::string store = "not configured";
  auto settings =
      db.Transact([&](db::Tx& tx) { return control::LoadBackupStoreSettings(tx, master_key); },
                  db::TxOptions{.read_only = true});
  if (!settings) {
    store = "unreadable (" + settings.error().message() + ")";
  } else if (settings->MissingReason().empty()) {
    store = settings->Url();
  }
  const bool api = Has(options.components, "api");
  spdlog::info(
      "kindling serve {} started: server {} ({}), components {}, API {}, edge {}, runtime {}, "
      "backup store {}",
      KINDLING_VERSION, server_id, options.hostname, fmt::join(options.components, ","),
      api ? options.listen : std::string("-"),
      edge_port > 0 ? std::to_string(edge_port) : std::string("-"),
      runtime.empty() ? std::string("-") : runtime, store);
}

// A starting process may come up before its database: wait for it a while.
Result<std::unique_ptr<db::Database>> OpenDatabase(const std::string& dsn,
                                                   std::size_t max_connections,
                                                   std::string application_name) {
  db::DatabaseOptions options;
  options.dsn = dsn;
  options.max_connections = max_connections;
  options.application_name = std::move(application_name);
  for (int attempt = 1;; ++attempt) {
    auto opened = db::Database::Open(options);
    if (opened || !opened.error().retryable() || attempt >= 30) return opened;
    spdlog::warn("database not reachable ({}); retrying", opened.error().message());
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
}

// Brings in the backups the stores hold and the database lacks (after a
// restore of the database from an older snapshot); cheap when none are.
void RescanOnLeading(db::Database& db, const crypto::Key& master_key) {
  const auto started = std::chrono::steady_clock::now();
  auto report = control::RescanBackupStores(db, master_key, control::Actor{});
  if (!report) {
    spdlog::warn("leader: backup rescan failed: {}", report.error().message);
    return;
  }
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - started)
                      .count();
  const auto level =
      report->imported.empty() && report->orphaned.empty() && report->unreadable.empty()
          ? spdlog::level::info
          : spdlog::level::warn;
  spdlog::log(level,
              "leader: backup rescan of {} store(s) in {} ms: {} manifest(s), {} imported, {} "
              "orphan(s), {} unreadable",
              report->stores.size(), ms, report->manifests, report->imported.size(),
              report->orphaned.size(), report->unreadable.size());
  if (!report->orphaned.empty())
    spdlog::warn(
        "leader: {} backup(s) of volumes the database does not know: kindling admin backups "
        "orphans, then assign them to projects",
        report->orphaned.size());
  for (const control::RescanProblem& p : report->unreadable)
    spdlog::warn("leader: backup rescan: cannot read {}{}{}: {}", p.storage_url,
                 p.key.empty() ? "" : " ", p.key, p.error);
}

// The scheduler's pieces when this host has a pgBackRest configuration:
// nullptr server when it has none.
struct ControlPlaneParts {
  pgbackup::Setup setup;
  std::unique_ptr<pgbackup::ServerControl> server;
};

Result<ControlPlaneParts> ControlPlaneFromConfig(const ServeOptions& options) {
  std::filesystem::path path = options.pgbackrest_config;
  std::error_code ec;
  if (path.empty()) {
    if (!std::filesystem::exists(kDefaultPgBackRestConfig, ec)) return ControlPlaneParts{};
    path = kDefaultPgBackRestConfig;
  }
  auto text = ReadFile(path);
  if (!text) {
    if (text.error().is_not_found())
      return InvalidArgument("--pgbackrest-config " + path.string() +
                             " does not exist: run `kindling admin control-plane configure` on "
                             "this host first, or leave the flag out");
    return std::unexpected(text.error().WithContext("--pgbackrest-config"));
  }
  ControlPlaneParts parts;
  auto parsed = pgbackup::ParseConfig(*text, path);
  WipeString(*text);  // it holds the repository's secrets
  KINDLING_ASSIGN_OR_RETURN(parts.setup.config, std::move(parsed));
  if (::geteuid() == 0) {
    KINDLING_ASSIGN_OR_RETURN(RunAsUser user, LookUpSystemUser(options.pg_user));
    parts.setup.run_as = user;
  }
  HostServerOptions host;
  host.data_dir = parts.setup.config.data_dir;
  host.socket_dir = parts.setup.config.socket_dir;
  host.port = parts.setup.config.port;
  host.user = options.pg_user;
  host.run_as = parts.setup.run_as;
  parts.server = std::make_unique<HostServerControl>(host, SystemCommandRunner());
  return parts;
}

}  // namespace

Status CheckMasterKeyMatchesCluster(db::Database& db, const crypto::Key& master_key,
                                    const std::filesystem::path& master_key_file) {
  const std::string check = MasterKeyCheckValue(master_key);
  KINDLING_ASSIGN_OR_RETURN(
      std::optional<std::string> recorded,
      db.Transact([&](db::Tx& tx) -> Result<std::optional<std::string>> {
        KINDLING_ASSIGN_OR_RETURN(auto current, db::GetSetting(tx, kMasterKeyCheckSetting));
        if (current) return current;
        KINDLING_RETURN_IF_ERROR(db::PutSetting(tx, kMasterKeyCheckSetting, check));
        return std::optional<std::string>();
      }));
  if (recorded && *recorded != check)
    return MakeError(ErrorKind::kWrongKey,
                     "the master key " + master_key_file.string() +
                         " is not this cluster's: its secrets and backup store keys were sealed "
                         "with another one. Copy the master key file from a host that runs "
                         "(the same file on every host), or point --master-key-file at it");
  return OkStatus();
}

Result<ListenAddress> ParseListenAddress(const std::string& listen) {
  const auto colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0)
    return InvalidArgument("--listen must be ADDRESS:PORT, got '" + listen + "'");
  ListenAddress out{listen.substr(0, colon), -1};
  try {
    std::size_t used = 0;
    out.port = std::stoi(listen.substr(colon + 1), &used);
    if (used != listen.size() - colon - 1) out.port = -1;
  } catch (const std::exception&) {
    out.port = -1;
  }
  if (out.port < 0 || out.port > 65535)
    return InvalidArgument("--listen has a bad port: '" + listen + "'");
  return out;
}

bool IsLoopbackHost(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host == "localhost") return true;
  const std::string text(host);
  in_addr v4{};
  if (::inet_pton(AF_INET, text.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (::inet_pton(AF_INET6, text.c_str(), &v6) == 1) return IN6_IS_ADDR_LOOPBACK(&v6);
  return false;
}

Status CheckApiTransport(const ListenAddress& listen, const std::string& tls_cert_file,
                         const std::string& tls_key_file, bool insecure_http) {
  if (tls_cert_file.empty() != tls_key_file.empty()) {
    return InvalidArgument("--tls-cert and --tls-key go together: give both, or neither");
  }
  if (!tls_cert_file.empty() || insecure_http || IsLoopbackHost(listen.host)) return OkStatus();
  return InvalidArgument(
      "refusing to serve the API over plain HTTP on " + listen.host + ":" +
      std::to_string(listen.port) +
      ", where API keys and the S3 secret would cross the network in clear: give --tls-cert "
      "FILE and --tls-key FILE (KINDLING_TLS_CERT, KINDLING_TLS_KEY), listen on a loopback "
      "address behind a TLS proxy, or pass --insecure-http to accept the risk");
}

std::filesystem::path ResolveDsnFile(const std::filesystem::path& flag) {
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv(kDsnFileEnv); env != nullptr && *env != '\0') return env;
  return kDefaultDsnFile;
}

Result<std::string> LoadOrCreateServerId(const std::filesystem::path& path) {
  auto existing = ReadFile(path);
  if (existing) {
    std::string id = Trim(*existing);
    if (!IsUuid(id)) return InvalidArgument(path.string() + " does not hold a server id (UUID)");
    return id;
  }
  if (!existing.error().is_not_found()) return std::unexpected(existing.error());
  std::error_code ec;
  std::filesystem::create_directories(path.parent_path(), ec);
  if (ec) return IoError("create " + path.parent_path().string() + ": " + ec.message());
  const std::string id = NewUuidV4();
  KINDLING_RETURN_IF_ERROR(WriteFileAtomic(path, id + "\n", 0644));
  spdlog::info("created server id {} in {}", id, path.string());
  return id;
}

Result<crypto::Key> LoadOrCreateMasterKey(const std::filesystem::path& path) {
  auto loaded = crypto::LoadKeyFile(path);
  if (loaded || !loaded.error().is_not_found()) return loaded;
  std::error_code ec;
  std::filesystem::create_directories(path.parent_path(), ec);
  if (ec) return IoError("create " + path.parent_path().string() + ": " + ec.message());
  auto created = crypto::CreateKeyFile(path);
  // Two processes sharing a state dir may race to create it: take theirs.
  if (!created && created.error().kind() == ErrorKind::kAlreadyExists)
    return crypto::LoadKeyFile(path);
  if (created)
    spdlog::warn("created master key {}: back it up apart from the database", path.string());
  return created;
}

std::string DsnDigest(std::string_view dsn) {
  return crypto::DigestHex(crypto::Sha256Of(db::RedactDsn(dsn)));
}

std::unique_ptr<reconcile::BackupStoreProvider> MakeClusterStoreProvider(
    db::Database& db, const crypto::Key& master_key) {
  auto handle_of = [](control::OpenedBackupStore opened) {
    auto handle = std::make_shared<reconcile::StoreHandle>();
    handle->url = opened.url;
    handle->owned_store = std::move(opened.store);
    handle->repository = std::move(opened.repository);
    return std::shared_ptr<const reconcile::StoreHandle>(std::move(handle));
  };
  return std::make_unique<reconcile::CachingStoreProvider>(
      [&db, &master_key, handle_of]() -> Result<std::shared_ptr<const reconcile::StoreHandle>> {
        KINDLING_ASSIGN_OR_RETURN(control::OpenedBackupStore opened,
                                  control::OpenCurrentBackupStore(db, master_key));
        return handle_of(std::move(opened));
      },
      [&db, &master_key,
       handle_of](const std::string& url) -> Result<std::shared_ptr<const reconcile::StoreHandle>> {
        KINDLING_ASSIGN_OR_RETURN(control::OpenedBackupStore opened,
                                  control::OpenBackupStoreAt(db, master_key, url));
        return handle_of(std::move(opened));
      });
}

Status Serve(const ServeOptions& options) {
  for (const std::string& c : options.components) {
    if (c != "api" && c != "worker" && c != "edge")
      return InvalidArgument("unknown component '" + c + "' (api, worker, edge)");
  }
  if (Has(options.components, "api") && !options.api_factory)
    return InvalidArgument("the api component is not available in this build");

  std::string dsn = options.dsn;
  if (dsn.empty()) {
    const std::filesystem::path dsn_file = ResolveDsnFile(options.dsn_file);
    KINDLING_ASSIGN_OR_RETURN(dsn, db::ReadDsnFile(dsn_file));
  }
  const std::filesystem::path server_id_file =
      options.server_id_file.empty() ? options.state_dir / "server-id" : options.server_id_file;
  const std::filesystem::path master_key_file =
      options.master_key_file.empty() ? options.state_dir / "master.key" : options.master_key_file;
  KINDLING_ASSIGN_OR_RETURN(ControlPlaneParts control_plane, ControlPlaneFromConfig(options));
  KINDLING_ASSIGN_OR_RETURN(const std::string server_id, LoadOrCreateServerId(server_id_file));
  KINDLING_ASSIGN_OR_RETURN(crypto::Key master_key, LoadOrCreateMasterKey(master_key_file));
  const WipeOnExit wipe_master_key(master_key);  // not left in freed stack memory

  KINDLING_ASSIGN_OR_RETURN(std::unique_ptr<db::Database> database,
                            OpenDatabase(dsn, 16, "kindling serve"));
  KINDLING_ASSIGN_OR_RETURN(db::MigrationReport migrated, db::RunMigrations(*database));
  spdlog::info("database {}: schema version {} ({} applied now)", db::RedactDsn(dsn),
               migrated.schema_version, migrated.applied);
  KINDLING_RETURN_IF_ERROR(CheckMasterKeyMatchesCluster(*database, master_key, master_key_file));

  // Threads started from here on inherit the blocked mask, so only the wait
  // below sees SIGINT/SIGTERM.
  StopSignals stop_signals(options.handle_signals, options.stop, "kindling serve");

  std::unique_ptr<reconcile::BackupStoreProvider> stores =
      MakeClusterStoreProvider(*database, master_key);
  std::unique_ptr<db::Database> api_database;
  if (Has(options.components, "api")) {
    KINDLING_ASSIGN_OR_RETURN(
        api_database, OpenDatabase(dsn, std::max<std::size_t>(options.api_db_connections, 1),
                                   "kindling serve api"));
  }
  const ServeContext context{
      *database, api_database ? *api_database : *database, master_key, server_id, dsn, *stores,
      options};

  std::unique_ptr<reconcile::Leader> leader;
  std::unique_ptr<vmm::Vmm> vmm;  // outlives the worker (declared before it)
  std::unique_ptr<reconcile::Worker> worker;
  std::unique_ptr<Component> api;
  std::unique_ptr<EdgeComponent> edge;
  std::unique_ptr<ControlPlaneScheduler> scheduler;
  std::unique_ptr<StoreGcLoop> store_gc;
  std::unique_ptr<BackupVerifyLoop> backup_verify;
  auto stop_all = [&] {
    if (api) api->Stop();
    if (edge) edge->Stop();
    if (scheduler) scheduler->Stop();
    if (store_gc) store_gc->Stop();
    if (backup_verify) backup_verify->Stop();
    if (worker) worker->Stop();
    if (leader) leader->Stop();
  };
  Status started = [&]() -> Status {
    if (Has(options.components, "worker")) {
      reconcile::WorkerOptions w;
      w.server_id = server_id;
      w.hostname = options.hostname;
      w.internal_ip = options.internal_ip;
      w.enabled_components = options.components;
      w.state_dir = options.state_dir;
      w.runtime = options.runtime;
      w.dsn_sha256 = DsnDigest(dsn);
      w.heartbeat_interval = options.heartbeat_interval;
      w.sweep_interval = options.sweep_interval;
      w.quarantine_grace = options.quarantine_grace;
      w.quarantine_retention = options.quarantine_retention;
      w.max_concurrent_operations = options.max_concurrent_operations;
      w.operation_priority = options.operation_priority;
      if (!options.guest_dir.empty()) {
        KINDLING_ASSIGN_OR_RETURN(w.images, reconcile::CanaryCatalogue(options.guest_dir));
        KINDLING_ASSIGN_OR_RETURN(vmm::RuntimeDetection detection,
                                  vmm::DetectRuntime(SystemCommandRunner(),
                                                     {.skip_cloud_hypervisor = true,
                                                      .probe_kernel = options.guest_dir / "vmlinux",
                                                      .scratch_dir = options.state_dir}));
        for (const std::string& note : detection.notes)
          spdlog::info("worker: runtime probe: {}", note);
        KINDLING_ASSIGN_OR_RETURN(vmm, vmm::NewVmm(detection));
        spdlog::info("worker: workloads run on {} ({} image(s) from {})",
                     vmm::RuntimeName(vmm->runtime()), w.images.size(), options.guest_dir.string());
        w.vmm = vmm.get();
      }
      worker = std::make_unique<reconcile::Worker>(*database, *stores, std::move(w));
      KINDLING_RETURN_IF_ERROR(worker->Start());
    }
    if (options.run_leader) {
      reconcile::LeaderOptions l;
      l.sweep_interval = options.sweep_interval;
      l.start_grace = options.leader_start_grace;
      if (options.rescan_on_leading) {
        l.on_leading = [&db = *database, &master_key] { RescanOnLeading(db, master_key); };
      }
      leader = std::make_unique<reconcile::Leader>(*database, std::move(l));
      leader->Start();
      control::StoreGcSchedule gc;
      gc.every = options.store_gc_every;
      gc.grace = options.store_gc_grace;
      store_gc = std::make_unique<StoreGcLoop>(*database, master_key, std::move(gc),
                                               [&leader] { return leader->is_leader(); });
      store_gc->Start();
      control::BackupVerifySchedule verify;
      verify.every = options.backup_verify_every;
      verify.sample_percent = options.backup_verify_sample_percent;
      backup_verify = std::make_unique<BackupVerifyLoop>(*database, master_key, std::move(verify),
                                                         [&leader] { return leader->is_leader(); });
      backup_verify->Start();
    }
    if (control_plane.server) {
      ControlPlaneScheduleOptions c = options.control_plane;
      c.server_id = server_id;
      if (c.hostname.empty()) c.hostname = options.hostname;
      c.process = "kindling serve";
      spdlog::info("control-plane backups: pgBackRest configuration {} (stanza {})",
                   control_plane.setup.config.config_file.string(),
                   control_plane.setup.config.stanza);
      scheduler = std::make_unique<ControlPlaneScheduler>(*database, control_plane.setup,
                                                          *control_plane.server,
                                                          SystemCommandRunner(), std::move(c));
      scheduler->Start();
    }
    if (Has(options.components, "edge")) {
      KINDLING_ASSIGN_OR_RETURN(const ListenAddress edge_listen,
                                ParseListenAddress(options.edge_listen));
      edge = std::make_unique<EdgeComponent>(*database, dsn, edge_listen);
      KINDLING_RETURN_IF_ERROR(edge->Start());
      // Where it listens (port 0 resolved), for whoever started this process.
      KINDLING_RETURN_IF_ERROR(
          WriteFileAtomic(options.state_dir / kEdgeAddressFile,
                          edge_listen.host + ":" + std::to_string(edge->port()) + "\n", 0644));
    }
    if (Has(options.components, "api")) {
      KINDLING_ASSIGN_OR_RETURN(api, options.api_factory(context));
      KINDLING_RETURN_IF_ERROR(api->Start());
    }
    return OkStatus();
  }();
  if (!started) {
    stop_all();
    return started;
  }
  LogStartup(options, *database, master_key, server_id,
             vmm ? std::string(vmm::RuntimeName(vmm->runtime())) : options.runtime,
             edge ? edge->port() : 0);
  if (options.on_ready) options.on_ready(context);

  while (!stop_signals.WaitForStop(std::chrono::milliseconds(200))) {
  }
  stop_all();
  spdlog::info("kindling serve: stopped");
  return OkStatus();
}

}  // namespace kindling::service
