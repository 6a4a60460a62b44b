#include "testutil/postgres_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <pqxx/pqxx>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/ids.h"
#include "service/child_process.h"
#include "service/local_postgres.h"

namespace kindling::testutil {
namespace {

namespace fs = std::filesystem;

constexpr char kDirPrefix[] = "kindling-pg-";
constexpr char kCachePrefix[] = "kindling-pgcache-";
constexpr int kStartAttempts = 5;

[[noreturn]] void Fail(const std::string& message) {
  throw std::runtime_error("PostgresServer: " + message);
}

// Who runs initdb/pg_ctl: the postgres system user when we are root (initdb
// refuses root), ourselves otherwise.
using RunAs = std::optional<service::RunAsUser>;

RunAs ServerUser() {
  auto user = service::PostgresServerUser();
  if (!user) Fail(user.error().message());
  return *user;
}

fs::path FindBinDir() {
  auto dir = service::FindPostgresBinDir();
  if (!dir) Fail(dir.error().message());
  return *dir;
}

fs::path BaseTempDir() {
  const char* base = std::getenv("TMPDIR");
  fs::path dir = (base && *base) ? base : "/tmp";
  if (::geteuid() != 0) return dir;
  // The postgres user must be able to reach the cluster dir; a private TMPDIR
  // (e.g. under /root) would not do.
  for (fs::path p = dir; !p.empty(); p = p.parent_path()) {
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0 || (st.st_mode & S_IXOTH) == 0) return "/tmp";
    if (p == p.root_path()) break;
  }
  return dir;
}

// Runs argv[0] (an absolute path) with stdout/stderr appended to `log`, in
// `cwd`, as `as`; returns the exit status.
int RunProcess(const std::vector<std::string>& args, const RunAs& as, const fs::path& cwd,
               const fs::path& log) {
  service::SpawnOptions spawn;
  spawn.args = args;
  spawn.log_file = log;
  spawn.working_dir = cwd;
  spawn.run_as = as;
  spawn.drop_env_prefixes = {"PG", "LC_", "LANG"};
  spawn.extra_env = {"LC_ALL=C"};
  auto status = service::RunToCompletion(spawn);
  if (!status) Fail(status.error().message());
  return *status;
}

std::string Tail(const fs::path& path) { return service::FileTail(path); }

// A port the kernel just handed out; another process may still take it
// before the server binds, so starting retries with a new one.
int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) Fail(std::string("socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const int err = errno;
    ::close(fd);
    Fail(std::string("bind: ") + std::strerror(err));
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

bool ProcessAlive(pid_t pid) {
  if (pid <= 0 || (::kill(pid, 0) != 0 && errno != EPERM)) return false;
  // A killed binary nobody reaped yet is a zombie: dead for our purposes.
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return true;
  const auto paren = line.rfind(')');
  return paren == std::string::npos || paren + 2 >= line.size() || line[paren + 2] != 'Z';
}

// Stops and removes clusters whose test binary died without cleaning up.
void SweepStaleClusters(const fs::path& base, const fs::path& bin_dir, const RunAs& as) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(base, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.starts_with(kCachePrefix) && name.find(".tmp-") != std::string::npos) {
      // A cache build that died half-way; live builds take seconds.
      std::error_code time_ec;
      const auto age =
          fs::file_time_type::clock::now() - fs::last_write_time(entry.path(), time_ec);
      if (!time_ec && age > std::chrono::minutes(10)) fs::remove_all(entry.path(), time_ec);
      continue;
    }
    if (!name.starts_with(kDirPrefix)) continue;
    std::ifstream in(entry.path() / "owner.pid");
    pid_t owner = 0;
    if (!(in >> owner) || ProcessAlive(owner)) continue;
    const fs::path data = entry.path() / "data";
    if (fs::exists(data / "postmaster.pid")) {
      RunProcess(
          {(bin_dir / "pg_ctl").string(), "-D", data.string(), "-m", "immediate", "-w", "stop"}, as,
          entry.path(), entry.path() / "sweep.log");
    }
    std::error_code remove_ec;
    fs::remove_all(entry.path(), remove_ec);
  }
}

// A pristine initdb result for `bin_dir` and this user, created once and
// shared by every cluster (copying it is several times faster than initdb).
// Built in a temp dir and renamed into place, so readers only ever see a
// complete one; concurrent builders race harmlessly.
fs::path InitdbCache(const fs::path& base, const fs::path& bin_dir, const RunAs& as) {
  const fs::path cache =
      base / (kCachePrefix + bin_dir.parent_path().filename().string() + "-" +
              std::to_string(std::hash<std::string>()(bin_dir.string()) % 100000) + "-" +
              std::to_string(::geteuid()));
  if (fs::exists(cache / "PG_VERSION")) return cache;
  std::string tmpl = cache.string() + ".tmp-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) Fail("mkdtemp: " + std::string(std::strerror(errno)));
  const fs::path work = tmpl;
  if (as && ::chown(work.c_str(), as->uid, as->gid) != 0)
    Fail("chown " + work.string() + ": " + std::strerror(errno));
  const int rc = RunProcess({(bin_dir / "initdb").string(), "-D", (work / "data").string(), "-U",
                             "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"},
                            as, work, work / "initdb.log");
  if (rc != 0) {
    const std::string log = Tail(work / "initdb.log");
    std::error_code ec;
    fs::remove_all(work, ec);
    Fail("initdb failed (exit " + std::to_string(rc) + "):\n" + log);
  }
  // Losing the race to another builder is fine: its copy is as good.
  std::error_code ec;
  fs::rename(work / "data", cache, ec);
  fs::remove_all(work, ec);
  if (!fs::exists(cache / "PG_VERSION")) Fail("could not create " + cache.string());
  return cache;
}

std::string QuoteIdent(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

}  // namespace

PostgresServer::PostgresServer() {
  const RunAs as = ServerUser();
  bin_dir_ = FindBinDir();
  const fs::path base = BaseTempDir();
  SweepStaleClusters(base, bin_dir_, as);

  std::string tmpl = (base / (std::string(kDirPrefix) + "XXXXXX")).string();
  if (::mkdtemp(tmpl.data()) == nullptr) Fail("mkdtemp: " + std::string(std::strerror(errno)));
  dir_ = tmpl;
  data_dir_ = dir_ / "data";
  socket_dir_ = dir_;
  log_path_ = dir_ / "server.log";
  try {
    { std::ofstream(dir_ / "owner.pid") << ::getpid() << "\n"; }
    if (as && ::chown(dir_.c_str(), as->uid, as->gid) != 0)
      Fail("chown " + dir_.string() + ": " + std::strerror(errno));
    const fs::path cache = InitdbCache(base, bin_dir_, as);
    // cp -a as the server user keeps the owner and the 0700 mode PostgreSQL
    // insists on.
    const int rc = RunProcess({"/bin/cp", "-a", cache.string(), data_dir_.string()}, as, dir_,
                              dir_ / "copy.log");
    if (rc != 0) Fail("copying " + cache.string() + " failed:\n" + Tail(dir_ / "copy.log"));
    Start();
  } catch (...) {
    if (running_) Stop();
    std::error_code ec;
    fs::remove_all(dir_, ec);
    throw;
  }
}

PostgresServer::~PostgresServer() {
  try {
    if (running_) Stop();
  } catch (...) {
    // A destructor must not throw; the next sweep removes what is left.
    return;
  }
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

PostgresServer& PostgresServer::Shared() {
  static PostgresServer server;
  return server;
}

std::string PostgresServer::dsn() {
  std::call_once(default_database_,
                 [this] { RunSql("CREATE DATABASE kindling TEMPLATE template0"); });
  return DsnFor("kindling");
}

std::string PostgresServer::DsnFor(std::string_view database) const {
  return "postgresql://postgres@127.0.0.1:" + std::to_string(port_) + "/" + std::string(database);
}

std::string PostgresServer::SocketDsnFor(std::string_view database) const {
  return "host=" + socket_dir_.string() + " port=" + std::to_string(port_) +
         " user=postgres dbname=" + std::string(database);
}

void PostgresServer::Start() {
  if (running_) return;
  // The first start picks a port; a restart keeps it so DSNs stay valid.
  const bool keep_port = port_ != 0;
  for (int attempt = 1;; ++attempt) {
    if (!keep_port) port_ = FreePort();
    try {
      StartOnce();
      return;
    } catch (const std::runtime_error&) {
      if (keep_port || attempt == kStartAttempts) throw;
    }
  }
}

void PostgresServer::StartOnce() {
  const std::string options = "-k " + socket_dir_.string() + " -p " + std::to_string(port_) +
                              " -c listen_addresses=127.0.0.1 -c fsync=off"
                              " -c synchronous_commit=off -c full_page_writes=off"
                              " -c wal_level=logical -c max_connections=300"
                              " -c shared_buffers=32MB";
  const int rc = RunProcess({(bin_dir_ / "pg_ctl").string(), "-D", data_dir_.string(), "-l",
                             log_path_.string(), "-w", "-t", "60", "-o", options, "start"},
                            ServerUser(), dir_, dir_ / "pg_ctl.log");
  if (rc != 0)
    Fail("pg_ctl start failed (exit " + std::to_string(rc) + "):\n" + Tail(dir_ / "pg_ctl.log") +
         "\n" + Tail(log_path_));
  running_ = true;
}

void PostgresServer::Stop() {
  if (!running_) return;
  running_ = false;
  const RunAs as = ServerUser();
  const std::string pg_ctl = (bin_dir_ / "pg_ctl").string();
  if (RunProcess({pg_ctl, "-D", data_dir_.string(), "-m", "fast", "-w", "-t", "30", "stop"}, as,
                 dir_, dir_ / "pg_ctl.log") == 0)
    return;
  if (RunProcess({pg_ctl, "-D", data_dir_.string(), "-m", "immediate", "-w", "stop"}, as, dir_,
                 dir_ / "pg_ctl.log") != 0)
    Fail("pg_ctl stop failed:\n" + Tail(dir_ / "pg_ctl.log"));
}

void PostgresServer::RunSql(const std::string& sql) {
  try {
    pqxx::connection conn(DsnFor("postgres"));
    pqxx::nontransaction tx(conn);
    tx.exec(sql);
  } catch (const std::exception& e) {
    Fail(std::string("`") + sql + "`: " + e.what());
  }
}

std::string PostgresServer::CreateDatabase(std::string_view prefix) {
  std::string id = NewUuidV4();
  id.erase(std::remove(id.begin(), id.end(), '-'), id.end());
  const std::string name = std::string(prefix) + "_" + id.substr(0, 16);
  RunSql("CREATE DATABASE " + QuoteIdent(name) + " TEMPLATE template0");
  return name;
}

void PostgresServer::DropDatabase(std::string_view name) {
  RunSql("DROP DATABASE IF EXISTS " + QuoteIdent(name) + " WITH (FORCE)");
}

TestDatabase::TestDatabase(PostgresServer& server)
    : server_(server), name_(server.CreateDatabase("test")), dsn_(server.DsnFor(name_)) {}

TestDatabase::~TestDatabase() {
  try {
    server_.DropDatabase(name_);
  } catch (...) {
    // The cluster goes away with the test binary anyway.
    return;
  }
}

}  // namespace kindling::testutil
