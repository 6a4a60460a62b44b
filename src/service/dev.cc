#include "service/dev.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <optional>
#include <thread>
#include <vector>

#include "common/files.h"
#include "common/secret.h"
#include "common/subprocess.h"
#include "control/admin_service.h"
#include "db/auth.h"
#include "db/database.h"
#include "db/migrations.h"
#include "db/servers.h"
#include "service/child_process.h"
#include "service/local_postgres.h"
#include "service/postgres_control.h"
#include "service/serve.h"
#include "service/stop_signals.h"

namespace kindling::service {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

Result<sockaddr_in> SocketAddress(const ListenAddress& address) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(address.port));
  const std::string host = address.host == "localhost" ? "127.0.0.1" : address.host;
  if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1)
    return InvalidArgument("--listen needs an IPv4 address, got '" + address.host + "'");
  return addr;
}

// A port the kernel hands out now on `host`; the API child binds it a moment
// later.
Result<int> FreePort(const ListenAddress& address) {
  KINDLING_ASSIGN_OR_RETURN(sockaddr_in addr, SocketAddress(address));
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoError("socket", errno);
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const int err = errno;
    ::close(fd);
    return ErrnoError("bind " + address.host, err);
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

bool Accepts(const ListenAddress& address) {
  auto addr = SocketAddress(address);
  if (!addr) return false;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const bool ok = ::connect(fd, reinterpret_cast<const sockaddr*>(&*addr), sizeof(*addr)) == 0;
  ::close(fd);
  return ok;
}

// The postgres user must reach the cluster through every directory above it.
Status CheckReachableByOthers(const fs::path& dir) {
  if (::geteuid() != 0) return OkStatus();
  for (fs::path p = dir; !p.empty(); p = p.parent_path()) {
    struct stat st {};
    if (::stat(p.c_str(), &st) == 0 && (st.st_mode & S_IXOTH) == 0)
      return InvalidArgument("the postgres user cannot enter " + p.string() + " (mode " +
                             std::to_string(st.st_mode & 0777) +
                             "): choose a --state-dir outside it, e.g. " + kDefaultDevStateDir);
    if (p == p.root_path()) break;
  }
  return OkStatus();
}

std::string Trimmed(std::string text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front())))
    text.erase(text.begin());
  return text;
}

// The admin key from <state>/admin-api-key while it still authenticates;
// otherwise the first platform admin is bootstrapped (or, when one exists, a
// new key is made for the dev admin) and the key file rewritten.
Result<std::string> EnsureAdminKey(db::Database& database, const fs::path& key_file,
                                   const std::string& email, std::string* admin_user_id) {
  if (auto saved = ReadFile(key_file); saved) {
    const std::string key = Trimmed(*saved);
    KINDLING_ASSIGN_OR_RETURN(
        std::optional<db::Principal> principal,
        database.Transact([&](db::Tx& tx) { return db::AuthenticateApiKey(tx, key); }));
    if (principal && principal->user.is_platform_admin) {
      *admin_user_id = principal->user.id;
      return key;
    }
    spdlog::warn("{} no longer authenticates a platform admin; making a new key",
                 key_file.string());
  }
  KINDLING_ASSIGN_OR_RETURN(
      db::CreatedApiKey created, database.Transact([&](db::Tx& tx) -> Result<db::CreatedApiKey> {
        auto made = db::BootstrapPlatformAdmin(tx, email, "Dev admin", "default");
        if (made) {
          *admin_user_id = made->user.id;
          return std::move(made->api_key);
        }
        if (made.error().kind() != ErrorKind::kAlreadyExists) return std::unexpected(made.error());
        KINDLING_ASSIGN_OR_RETURN(std::optional<db::User> user, db::FindUserByEmail(tx, email));
        if (!user || !user->is_platform_admin)
          return InvalidArgument("the database already has a platform admin other than " + email +
                                 "; use its API key");
        *admin_user_id = user->id;
        return db::CreateApiKey(tx, user->id, "kindling dev");
      }));
  // (kindling dev hands the key on as text: its clients and the shell
  // assignments it prints need it.)
  std::string text = std::string(created.secret.Reveal()) + "\n";
  const Status written = WriteFileAtomic(key_file, text, 0600);
  WipeString(text);
  KINDLING_RETURN_IF_ERROR(written);
  return std::string(created.secret.Reveal());
}

// A local-directory backup store under the state dir, unless the operator
// configured another store already.
Status EnsureBackupStore(db::Database& database, const crypto::Key& master_key,
                         const std::string& admin_user_id, const fs::path& directory) {
  auto settings = control::GetBackupSettings(database, master_key);
  if (!settings) return InternalError("reading backup settings: " + settings.error().message);
  if (settings->MissingReason().empty()) return OkStatus();
  std::error_code ec;
  fs::create_directories(directory, ec);
  if (ec) return IoError("create " + directory.string() + ": " + ec.message());
  control::BackupSettingsUpdate update;
  update.local_directory = directory.string();
  auto updated = control::UpdateBackupSettings(
      database, master_key, control::Actor{.user_id = admin_user_id}, std::move(update));
  if (!updated) return InternalError("saving backup settings: " + updated.error().message);
  KINDLING_ASSIGN_OR_RETURN(control::OpenedBackupStore opened,
                            control::OpenBackupStore(*updated, master_key, &database));
  spdlog::info("backup store: {}", opened.url);
  return OkStatus();
}

// One supervised `kindling serve` child.
struct Child {
  std::string name;  // api, worker-1, ...
  SpawnOptions spawn;
  std::optional<ChildProcess> process;
  fs::path state_dir;
  int restarts = 0;
  Clock::time_point restart_at{};

  Status Start() {
    KINDLING_ASSIGN_OR_RETURN(ChildProcess started, ChildProcess::Spawn(spawn));
    spdlog::info("{} started (pid {}), log {}", name, started.pid(), spawn.log_file.string());
    process.emplace(std::move(started));
    return OkStatus();
  }
  bool Running() { return process && process->Running(); }
};

// Waits until the API and edge ports accept connections and every worker
// heartbeats since `since`; fails early when a child exits. An edge port of
// 0 is read from the edge's <state>/edge.address once it wrote it.
Status WaitUntilReady(db::Database& database, std::vector<Child>& children,
                      const ListenAddress& api, ListenAddress& edge,
                      const fs::path& edge_address_file, db::Timestamp since,
                      std::chrono::milliseconds timeout, StopSignals& stop_signals) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (edge.port == 0) {
      if (auto written = ReadFile(edge_address_file); written) {
        if (auto parsed = ParseListenAddress(Trimmed(*written)); parsed) edge.port = parsed->port;
      }
    }
    bool ready = Accepts(api) && edge.port != 0 && Accepts(edge);
    for (Child& child : children) {
      if (!child.Running())
        return InternalError(child.name + " exited during start-up (status " +
                             std::to_string(child.process->exit_status().value_or(-1)) +
                             "); its log: " + FileTail(child.spawn.log_file, 1500));
      if (!ready || !child.name.starts_with("worker-")) continue;
      auto id = ReadFile(child.state_dir / "server-id");
      if (!id) {
        ready = false;
        continue;
      }
      auto server = database.Transact([&](db::Tx& tx) { return db::GetServer(tx, Trimmed(*id)); },
                                      db::TxOptions{.read_only = true});
      ready = server && server->last_heartbeat_at && *server->last_heartbeat_at >= since;
    }
    if (ready) return OkStatus();
    if (Clock::now() >= deadline)
      return InternalError("the API, edge and workers were not ready within " +
                           std::to_string(timeout.count() / 1000) + " s; logs in " +
                           children.front().spawn.log_file.parent_path().string());
    if (stop_signals.WaitForStop(std::chrono::milliseconds(200)))
      return Cancelled("stopped during start-up");
  }
}

// Configures control-plane backups of the private PostgreSQL (restarting it
// when wal_level or archiving changed). Failures are logged, not fatal: the
// cluster runs without backups rather than not at all.
std::unique_ptr<pgbackup::ControlPlaneBackup> ConfigureBackups(const fs::path& state,
                                                               const crypto::Key& master_key,
                                                               int port,
                                                               pgbackup::ServerControl& server) {
  // The repository stays what it is (configure --state-dir may have chosen
  // another one); the rest is written again.
  std::optional<pgbackup::Repository> repository;
  const fs::path config_file = state / "pgbackrest.conf";
  if (auto text = ReadFile(config_file); text) {
    auto existing = pgbackup::ParseConfig(*text, config_file);
    WipeString(*text);  // it holds the repository's secrets
    if (existing && !existing->repository.path.empty())
      repository = std::move(existing->repository);
  }
  auto setup = DevBackupSetup(state, master_key, port, repository);
  if (!setup) {
    spdlog::error("control-plane backups are off: {}", setup.error().message());
    return nullptr;
  }
  auto backups = std::make_unique<pgbackup::ControlPlaneBackup>(std::move(*setup),
                                                                SystemCommandRunner(), server);
  const auto start = Clock::now();
  auto report = backups->Configure({.allow_restart = true, .archiving_optional = true});
  if (!report) {
    spdlog::error(
        "control-plane backups are not working: {} (configuration {}; check with `kindling "
        "admin control-plane check --state-dir {}`)",
        report.error().message(), backups->setup().config.config_file.string(), state.string());
    return backups;
  }
  if (!report->archiving) {
    spdlog::warn(
        "pgBackRest is not installed: control-plane backups are off, wal_level=logical only "
        "(apt-get install pgbackrest)");
    return nullptr;
  }
  spdlog::info("control-plane backups: repository {}, WAL archiving on{} ({} ms)",
               report->repository, report->restarted ? ", PostgreSQL restarted to apply it" : "",
               std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count());
  return backups;
}

}  // namespace

LocalPostgresOptions DevPostgresOptions(const fs::path& state_dir, int port) {
  LocalPostgresOptions options;
  options.data_dir = state_dir / "postgres" / "data";
  options.socket_dir = state_dir / "postgres";
  options.log_file = state_dir / "logs" / "postgres.log";
  options.port = port;
  return options;
}

Result<pgbackup::Setup> DevBackupSetup(const fs::path& state_dir, const crypto::Key& master_key,
                                       int port,
                                       const std::optional<pgbackup::Repository>& repository) {
  pgbackup::Setup setup;
  pgbackup::ClusterConfig& config = setup.config;
  const LocalPostgresOptions postgres = DevPostgresOptions(state_dir, port);
  config.config_file = state_dir / "pgbackrest.conf";
  config.data_dir = postgres.data_dir;
  config.socket_dir = postgres.socket_dir;
  config.port = postgres.port;
  config.spool_dir = state_dir / "pgbackrest-spool";
  config.lock_dir = state_dir / "pgbackrest-spool" / "lock";
  config.log_dir = state_dir / "logs" / "pgbackrest";
  if (repository) {
    config.repository = *repository;
  } else {
    config.repository.path = state_dir / "pgbackrest";
  }
  config.cipher_passphrase = pgbackup::RepositoryPassphrase(master_key);
  KINDLING_ASSIGN_OR_RETURN(setup.run_as, PostgresServerUser());
  return setup;
}

Result<std::optional<DevStateLock>> DevStateLock::TryAcquire(const fs::path& state_dir) {
  const fs::path path = state_dir / "dev.lock";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("open " + path.string(), errno);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK) return std::optional<DevStateLock>();
    return ErrnoError("lock " + path.string(), err);
  }
  return std::optional<DevStateLock>(DevStateLock(fd));
}

DevStateLock::DevStateLock(DevStateLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

DevStateLock& DevStateLock::operator=(DevStateLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

DevStateLock::~DevStateLock() {
  if (fd_ >= 0) ::close(fd_);
}

std::string ShellAssignment(const std::string& name, const std::string& value) {
  const bool plain = std::all_of(value.begin(), value.end(), [](unsigned char c) {
    return std::isalnum(c) || std::strchr("-_./:@,+=", c) != nullptr;
  });
  if (plain) return name + "=" + value;
  std::string quoted = "'";
  for (const char c : value) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return name + "=" + quoted + "'";
}

std::string DevEnvironmentLines(const DevEndpoints& endpoints) {
  return ShellAssignment("KINDLING_URL", endpoints.url) + "\n" +
         ShellAssignment("KINDLING_API_KEY", endpoints.api_key) + "\n" +
         ShellAssignment("KINDLING_DSN", endpoints.dsn) + "\n" +
         ShellAssignment("KINDLING_EDGE_URL", endpoints.edge_url) + "\n";
}

Status RunDev(const DevOptions& options) {
  if (options.workers < 1 || options.workers > 16)
    return InvalidArgument("--workers must be 1..16");
  KINDLING_ASSIGN_OR_RETURN(ListenAddress api_address, ParseListenAddress(options.listen));
  // The dev API is plain HTTP with a printed admin key: this machine only.
  if (!IsLoopbackHost(api_address.host)) {
    return InvalidArgument(
        "kindling dev serves its API over plain HTTP on loopback only; --listen " + options.listen +
        " is not a loopback address (use kindling serve "
        "with --tls-cert/--tls-key to serve a network)");
  }
  if (api_address.port == 0) {
    KINDLING_ASSIGN_OR_RETURN(api_address.port, FreePort(api_address));
  }
  // Port 0: the edge binds a free port itself and reports it in its state
  // directory (no window for another process to take it).
  KINDLING_ASSIGN_OR_RETURN(ListenAddress edge_address, ParseListenAddress(options.edge_listen));
  std::error_code ec;
  const fs::path state = fs::absolute(options.state_dir, ec);
  if (ec) return InvalidArgument("bad --state-dir: " + ec.message());
  const fs::path logs = state / "logs";
  fs::create_directories(logs, ec);
  if (ec) return IoError("create " + logs.string() + ": " + ec.message());
  const bool own_postgres = options.dsn_file.empty();
  if (own_postgres) KINDLING_RETURN_IF_ERROR(CheckReachableByOthers(state));
  KINDLING_ASSIGN_OR_RETURN(std::optional<DevStateLock> lock, DevStateLock::TryAcquire(state));
  if (!lock) return InvalidArgument("another kindling dev is running on " + state.string());

  fs::path binary = options.kindling_binary;
  if (binary.empty()) {
    binary = fs::read_symlink("/proc/self/exe", ec);
    if (ec) return IoError("cannot find this program's path: " + ec.message());
  }
  // Workloads: the guest the build made next to the binary
  // (<build>/src/exe/kindling -> <build>/guest) unless one was named.
  fs::path guest_dir = options.guest_dir;
  if (guest_dir.empty()) {
    const fs::path built = binary.parent_path().parent_path().parent_path() / "guest";
    if (fs::exists(built / "vmlinux", ec) && fs::exists(built / "initramfs.cpio.gz", ec))
      guest_dir = built;
  } else if (guest_dir == "none") {
    guest_dir.clear();
  }

  // Signals are waited for below; children get their own mask back.
  StopSignals stop_signals(options.handle_signals, options.stop, "kindling dev");

  // The private PostgreSQL, unless a DSN file names another database.
  std::optional<LocalPostgres> postgres;
  std::optional<LocalServerControl> server;
  std::unique_ptr<pgbackup::ControlPlaneBackup> backups;
  if (own_postgres) {
    KINDLING_ASSIGN_OR_RETURN(
        postgres, LocalPostgres::Create(DevPostgresOptions(state, options.postgres_port)));
    KINDLING_RETURN_IF_ERROR(postgres->InitIfMissing());
    KINDLING_RETURN_IF_ERROR(postgres->Start());
    server.emplace(*postgres);
    spdlog::info("PostgreSQL running in {}", postgres->options().data_dir.string());
  }

  std::vector<Child> children;
  std::unique_ptr<db::Database> database;
  // The scheduler's own view of the cluster (ServerControl is one caller at
  // a time; the supervisor restarts PostgreSQL through `server`).
  std::optional<LocalPostgres> scheduler_postgres;
  std::optional<LocalServerControl> scheduler_server;
  std::unique_ptr<ControlPlaneScheduler> scheduler;
  auto stop_everything = [&] {
    std::error_code remove_ec;
    fs::remove(state / "dev.env", remove_ec);
    // A running scheduled backup is stopped first: the WAL archiving below
    // and the database's stop must not wait for it.
    if (scheduler) scheduler->Stop();
    // The API first (no new requests), then the workers, which hand running
    // operations back, then the database.
    for (Child& child : children) {
      if (child.process && child.process->Running()) {
        const int status = child.process->Stop(std::chrono::seconds(30));
        spdlog::info("{} stopped (status {})", child.name, status);
      }
    }
    if (!postgres) return;
    // A fast shutdown ends with the archiver's last round, which retries
    // archive_command; when the repository cannot be reached that only
    // delays the stop (the files stay ready in pg_wal for the next start).
    std::chrono::seconds fast_timeout(60);
    if (backups) {
      // So that a restore can reach everything committed before the stop.
      if (auto archived = backups->ArchiveCurrentWal(std::chrono::seconds(10)); !archived) {
        spdlog::warn("the last WAL file is not archived: {}", archived.error().message());
        fast_timeout = std::chrono::seconds(10);
      } else {
        spdlog::info("WAL archived up to the stop");
      }
    }
    if (auto st = postgres->Stop(false, fast_timeout); !st)
      spdlog::error("stopping PostgreSQL: {}", st.error().message());
    else
      spdlog::info("PostgreSQL stopped");
  };

  Status started = [&]() -> Status {
    std::string dsn;
    fs::path dsn_file;
    if (own_postgres) {
      KINDLING_ASSIGN_OR_RETURN(
          const bool created,
          db::CreateDatabaseIfMissing(postgres->SocketDsn("postgres"), "kindling"));
      if (created) spdlog::info("created database kindling");
      dsn = postgres->SocketDsn("kindling");
      dsn_file = state / "postgres.dsn";
      KINDLING_RETURN_IF_ERROR(WriteFileAtomic(dsn_file, dsn + "\n", 0600));
    } else {
      dsn_file = fs::absolute(options.dsn_file, ec);
      if (ec) return InvalidArgument("bad --dsn-file: " + ec.message());
      KINDLING_ASSIGN_OR_RETURN(dsn, db::ReadDsnFile(dsn_file));
      spdlog::info("using the database of {}", dsn_file.string());
    }
    const fs::path master_key_file = state / "master.key";
    KINDLING_ASSIGN_OR_RETURN(const crypto::Key master_key, LoadOrCreateMasterKey(master_key_file));
    if (own_postgres) backups = ConfigureBackups(state, master_key, options.postgres_port, *server);

    db::DatabaseOptions db_options;
    db_options.dsn = dsn;
    db_options.max_connections = 2;
    db_options.application_name = "kindling dev";
    KINDLING_ASSIGN_OR_RETURN(database, db::Database::Open(db_options));
    KINDLING_RETURN_IF_ERROR(db::RunMigrations(*database));
    std::string admin_user_id;
    KINDLING_ASSIGN_OR_RETURN(
        const std::string api_key,
        EnsureAdminKey(*database, state / "admin-api-key", options.admin_email, &admin_user_id));
    KINDLING_RETURN_IF_ERROR(
        EnsureBackupStore(*database, master_key, admin_user_id, state / "backups"));

    char host_buffer[256] = {};
    ::gethostname(host_buffer, sizeof(host_buffer) - 1);
    const std::string host = host_buffer[0] != '\0' ? host_buffer : "localhost";
    auto add_child = [&](const std::string& name, std::vector<std::string> extra) {
      Child child;
      child.name = name;
      child.state_dir = state / name;
      child.spawn.args = {binary.string(),     "serve",
                          "--dsn-file",        dsn_file.string(),
                          "--master-key-file", master_key_file.string(),
                          "--state-dir",       child.state_dir.string(),
                          "--hostname",        host + "-" + name,
                          "--log-format",      std::string(LogFormatName(options.log_format))};
      child.spawn.args.insert(child.spawn.args.end(), extra.begin(), extra.end());
      child.spawn.log_file = logs / (name + ".log");
      child.spawn.parent_death_signal = SIGTERM;
      child.spawn.new_process_group = true;
      children.push_back(std::move(child));
    };
    add_child("api", {"--components", "api", "--listen",
                      api_address.host + ":" + std::to_string(api_address.port)});
    std::vector<std::string> worker_args = {"--components", "worker"};
    if (!guest_dir.empty()) {
      worker_args.push_back("--guest-dir");
      worker_args.push_back(guest_dir.string());
    }
    for (int i = 1; i <= options.workers; ++i)
      add_child("worker-" + std::to_string(i), worker_args);
    add_child("edge", {"--components", "edge", "--edge-listen",
                       edge_address.host + ":" + std::to_string(edge_address.port)});

    const db::Timestamp since = std::chrono::time_point_cast<std::chrono::microseconds>(
        std::chrono::system_clock::now() - std::chrono::seconds(1));
    const fs::path edge_address_file = state / "edge" / kEdgeAddressFile;
    fs::remove(edge_address_file, ec);  // a previous run's
    for (Child& child : children) KINDLING_RETURN_IF_ERROR(child.Start());
    KINDLING_RETURN_IF_ERROR(WaitUntilReady(*database, children, api_address, edge_address,
                                            edge_address_file, since, options.ready_timeout,
                                            stop_signals));
    const DevEndpoints endpoints{
        .url = "http://" + api_address.host + ":" + std::to_string(api_address.port),
        .edge_url = "http://" + edge_address.host + ":" + std::to_string(edge_address.port),
        .api_key = api_key,
        .dsn = db::RedactDsn(dsn),
        .state_dir = state,
        .log_dir = logs,
    };
    KINDLING_RETURN_IF_ERROR(
        WriteFileAtomic(state / "dev.env", DevEnvironmentLines(endpoints), 0600));
    if (backups) {
      KINDLING_ASSIGN_OR_RETURN(scheduler_postgres, LocalPostgres::Create(postgres->options()));
      scheduler_server.emplace(*scheduler_postgres);
      ControlPlaneScheduleOptions schedule = options.control_plane;
      if (schedule.hostname.empty()) schedule.hostname = host;
      schedule.process = "kindling dev";
      scheduler = std::make_unique<ControlPlaneScheduler>(
          *database, backups->setup(), *scheduler_server, SystemCommandRunner(), schedule);
      scheduler->Start();
    }
    if (options.on_ready) options.on_ready(endpoints);
    return OkStatus();
  }();
  if (!started) {
    stop_everything();
    return started;
  }

  // Supervise: restart a child (or PostgreSQL) that died, after a pause that
  // grows with its restarts (1 s, 2 s, ... 30 s).
  int postgres_restarts = 0;
  Clock::time_point postgres_restart_at{};
  Clock::time_point postgres_checked_at = Clock::now();
  while (!stop_signals.WaitForStop(std::chrono::milliseconds(200))) {
    if (postgres && Clock::now() - postgres_checked_at >= std::chrono::seconds(1)) {
      postgres_checked_at = Clock::now();
      if (!postgres->Running()) {
        if (postgres_restart_at == Clock::time_point{}) {
          const int pause = std::min(30, 1 << std::min(postgres_restarts, 5));
          postgres_restart_at = postgres_checked_at + std::chrono::seconds(pause);
          spdlog::warn("PostgreSQL exited; restarting in {} s (its log: {})", pause,
                       postgres->options().log_file.string());
        } else if (postgres_checked_at >= postgres_restart_at) {
          postgres_restart_at = {};
          ++postgres_restarts;
          if (auto st = postgres->Start(); !st)
            spdlog::error("restarting PostgreSQL: {}", st.error().message());
          else
            spdlog::info("PostgreSQL restarted (restart {})", postgres_restarts);
        }
      } else {
        postgres_restart_at = {};
      }
    }
    for (Child& child : children) {
      if (child.Running()) continue;
      const auto now = Clock::now();
      if (child.restart_at == Clock::time_point{}) {
        const int pause = std::min(30, 1 << std::min(child.restarts, 5));
        child.restart_at = now + std::chrono::seconds(pause);
        spdlog::warn("{} exited (status {}); restarting in {} s", child.name,
                     child.process->exit_status().value_or(-1), pause);
        continue;
      }
      if (now < child.restart_at) continue;
      child.restart_at = {};
      ++child.restarts;
      if (auto st = child.Start(); !st)
        spdlog::error("restarting {}: {}", child.name, st.error().message());
    }
  }
  stop_everything();
  return OkStatus();
}

}  // namespace kindling::service
