#include "testutil/postgres_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
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

extern char** environ;

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
struct RunAs {
  bool drop = false;
  uid_t uid = 0;
  gid_t gid = 0;
};

RunAs ServerUser() {
  RunAs as;
  if (::geteuid() != 0) return as;
  const passwd* pw = ::getpwnam("postgres");
  if (pw == nullptr)
    Fail(
        "running as root needs a `postgres` system user to run initdb as (apt-get install "
        "postgresql creates it)");
  as.drop = true;
  as.uid = pw->pw_uid;
  as.gid = pw->pw_gid;
  return as;
}

// KINDLING_PG_BIN, else the newest /usr/lib/postgresql/<major>/bin.
fs::path FindBinDir() {
  if (const char* env = std::getenv("KINDLING_PG_BIN"); env && *env) return env;
  fs::path best;
  int best_major = -1;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    const int major = std::stoi(name);
    if (major > best_major && fs::exists(entry.path() / "bin/initdb")) {
      best_major = major;
      best = entry.path() / "bin";
    }
  }
  if (best.empty())
    Fail(
        "no PostgreSQL server binaries under /usr/lib/postgresql (set KINDLING_PG_BIN or "
        "run scripts/install-deps.sh)");
  return best;
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

// Environment for the children: ours without libpq/locale variables that
// would redirect or change initdb and pg_ctl.
std::vector<std::string> ChildEnvironment() {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view v(*e);
    if (v.starts_with("PG") || v.starts_with("LC_") || v.starts_with("LANG")) continue;
    env.emplace_back(v);
  }
  env.emplace_back("LC_ALL=C");
  return env;
}

// Runs argv[0] (an absolute path) with stdout/stderr appended to `log`, in
// `cwd`, as `as`; returns the exit status (-1 when it did not exit normally).
int RunProcess(const std::vector<std::string>& args, const RunAs& as, const fs::path& cwd,
               const fs::path& log) {
  // Everything the child touches is prepared before fork: only
  // async-signal-safe calls are allowed after it in a threaded parent.
  std::vector<std::string> env_strings = ChildEnvironment();
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> arg_strings = args;
  std::vector<char*> argv;
  for (std::string& s : arg_strings) argv.push_back(s.data());
  argv.push_back(nullptr);

  const int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) Fail("open " + log.string() + ": " + std::strerror(errno));
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(log_fd);
    Fail(std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    // pg_ctl daemonizes the server: it must not inherit our pipes (ctest would
    // wait for their EOF forever), so stdio goes to the log and the rest closes.
    const int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd < 0 || ::dup2(null_fd, STDIN_FILENO) < 0 || ::dup2(log_fd, STDOUT_FILENO) < 0 ||
        ::dup2(log_fd, STDERR_FILENO) < 0)
      ::_exit(126);
    ::close_range(3, ~0U, 0);
    if (as.drop) {
      if (::setgroups(0, nullptr) != 0 || ::setgid(as.gid) != 0 || ::setuid(as.uid) != 0)
        ::_exit(126);
    }
    if (::chdir(cwd.c_str()) != 0) ::_exit(126);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(log_fd);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) Fail(std::string("waitpid: ") + std::strerror(errno));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string Tail(const fs::path& path, std::size_t max_bytes = 4000) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  if (text.size() > max_bytes) text = "..." + text.substr(text.size() - max_bytes);
  return text;
}

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
  if (as.drop && ::chown(work.c_str(), as.uid, as.gid) != 0)
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
    if (as.drop && ::chown(dir_.c_str(), as.uid, as.gid) != 0)
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
