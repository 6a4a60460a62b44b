#include "service/local_postgres.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <system_error>

#include "common/hex.h"

namespace kindling::service {
namespace {

namespace fs = std::filesystem;

// Single-quoted for the shell pg_ctl runs the server through.
std::string ShellQuote(std::string_view text) {
  std::string out = "'";
  for (const char c : text) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

Status MakeDirectory(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return IoError("create " + dir.string() + ": " + ec.message());
  return OkStatus();
}

}  // namespace

Result<fs::path> FindPostgresBinDir() {
  if (const char* env = std::getenv("KINDLING_PG_BIN"); env != nullptr && *env != '\0') {
    if (!fs::exists(fs::path(env) / "pg_ctl"))
      return NotFound(std::string("KINDLING_PG_BIN=") + env + " has no pg_ctl");
    return fs::path(env);
  }
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
    return NotFound(
        "no PostgreSQL server binaries under /usr/lib/postgresql (apt-get install postgresql, "
        "or set KINDLING_PG_BIN)");
  return best;
}

Result<LocalPostgres> LocalPostgres::Create(LocalPostgresOptions options) {
  if (options.data_dir.empty() || options.socket_dir.empty() || options.log_file.empty())
    return InvalidArgument("LocalPostgres needs data_dir, socket_dir and log_file");
  if (options.bin_dir.empty()) {
    KINDLING_ASSIGN_OR_RETURN(options.bin_dir, FindPostgresBinDir());
  }
  const std::string socket =
      (options.socket_dir / (".s.PGSQL." + std::to_string(options.port))).string();
  if (socket.size() >= sizeof(sockaddr_un::sun_path))
    return InvalidArgument("the PostgreSQL socket path " + socket + " is longer than " +
                           std::to_string(sizeof(sockaddr_un::sun_path) - 1) +
                           " bytes: choose a shorter state directory");
  KINDLING_ASSIGN_OR_RETURN(std::optional<RunAsUser> run_as, PostgresServerUser());
  return LocalPostgres(std::move(options), run_as);
}

Result<int> LocalPostgres::RunTool(std::vector<std::string> args, const fs::path& log) const {
  args[0] = (options_.bin_dir / args[0]).string();
  SpawnOptions spawn;
  spawn.args = std::move(args);
  spawn.log_file = log;
  spawn.working_dir = options_.socket_dir;
  spawn.run_as = run_as_;
  // libpq and locale variables of the caller would redirect or change the
  // tools; the cluster is always C-locale UTF-8.
  spawn.drop_env_prefixes = {"PG", "LC_", "LANG"};
  spawn.extra_env = {"LC_ALL=C"};
  return RunToCompletion(spawn);
}

Status LocalPostgres::ChownToServerUser(const fs::path& path) const {
  if (!run_as_) return OkStatus();
  if (::chown(path.c_str(), run_as_->uid, run_as_->gid) != 0)
    return ErrnoError("chown " + path.string() + " to the postgres user", errno);
  return OkStatus();
}

Status LocalPostgres::InitIfMissing() {
  if (fs::exists(options_.data_dir / "PG_VERSION")) return OkStatus();
  std::error_code ec;
  if (fs::exists(options_.data_dir, ec) && !fs::is_empty(options_.data_dir, ec))
    return InvalidArgument(options_.data_dir.string() +
                           " exists but holds no PostgreSQL cluster; move it away");
  KINDLING_RETURN_IF_ERROR(MakeDirectory(options_.data_dir.parent_path()));
  KINDLING_RETURN_IF_ERROR(MakeDirectory(options_.socket_dir));
  KINDLING_RETURN_IF_ERROR(ChownToServerUser(options_.socket_dir));
  const fs::path staging = options_.data_dir.string() + ".initdb-tmp";
  fs::remove_all(staging, ec);
  KINDLING_RETURN_IF_ERROR(MakeDirectory(staging));
  ::chmod(staging.c_str(), 0700);
  KINDLING_RETURN_IF_ERROR(ChownToServerUser(staging));
  const fs::path initdb_log = options_.log_file.string() + ".initdb";
  KINDLING_ASSIGN_OR_RETURN(
      const int rc, RunTool({"initdb", "-D", staging.string(), "-U", "postgres", "-A", "trust",
                             "-E", "UTF8", "--locale=C"},
                            initdb_log));
  if (rc != 0) {
    fs::remove_all(staging, ec);
    return InternalError("initdb failed (exit " + std::to_string(rc) +
                         "); its output: " + FileTail(initdb_log, 2000));
  }
  fs::remove(options_.data_dir, ec);  // an empty directory, if any
  fs::rename(staging, options_.data_dir, ec);
  if (ec) return IoError("rename " + staging.string() + ": " + ec.message());
  return OkStatus();
}

Status LocalPostgres::CopyFrom(const fs::path& template_dir) {
  KINDLING_RETURN_IF_ERROR(MakeDirectory(options_.socket_dir));
  // cp -a as the server user keeps the owner and the 0700 mode PostgreSQL
  // insists on.
  SpawnOptions spawn;
  spawn.args = {"/bin/cp", "-a", template_dir.string(), options_.data_dir.string()};
  spawn.log_file = options_.log_file.string() + ".copy";
  spawn.working_dir = options_.socket_dir;
  spawn.run_as = run_as_;
  KINDLING_ASSIGN_OR_RETURN(const int rc, RunToCompletion(spawn));
  if (rc != 0)
    return IoError("copying " + template_dir.string() +
                   " failed: " + FileTail(spawn.log_file, 2000));
  return OkStatus();
}

bool LocalPostgres::Running() const {
  if (!fs::exists(options_.data_dir / "postmaster.pid")) return false;
  auto rc = RunTool({"pg_ctl", "-D", options_.data_dir.string(), "status"}, "/dev/null");
  return rc && *rc == 0;
}

Status LocalPostgres::Start() {
  if (Running()) return OkStatus();
  KINDLING_RETURN_IF_ERROR(MakeDirectory(options_.socket_dir));
  KINDLING_RETURN_IF_ERROR(ChownToServerUser(options_.socket_dir));
  KINDLING_RETURN_IF_ERROR(MakeDirectory(options_.log_file.parent_path()));
  {
    // The server (as the postgres user) appends to the log: create it for it.
    const int fd =
        ::open(options_.log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) return ErrnoError("open " + options_.log_file.string(), errno);
    ::close(fd);
    KINDLING_RETURN_IF_ERROR(ChownToServerUser(options_.log_file));
  }
  std::string server_options = "-k " + ShellQuote(options_.socket_dir.string()) + " -p " +
                               std::to_string(options_.port) +
                               " -c listen_addresses=" + ShellQuote(options_.listen_addresses);
  for (const std::string& setting : options_.settings)
    server_options += " -c " + ShellQuote(setting);
  const fs::path tool_log = options_.log_file.string() + ".pg_ctl";
  KINDLING_ASSIGN_OR_RETURN(const int rc, RunTool({"pg_ctl", "-D", options_.data_dir.string(), "-l",
                                                   options_.log_file.string(), "-w", "-t", "60",
                                                   "-o", server_options, "start"},
                                                  tool_log));
  if (rc != 0)
    return InternalError("PostgreSQL did not start (pg_ctl exit " + std::to_string(rc) + "): " +
                         FileTail(tool_log, 1500) + "\n" + FileTail(options_.log_file, 1500));
  return OkStatus();
}

Status LocalPostgres::Stop(bool immediate, std::chrono::seconds fast_timeout) {
  if (!Running()) return OkStatus();
  const fs::path tool_log = options_.log_file.string() + ".pg_ctl";
  const std::string data = options_.data_dir.string();
  if (!immediate) {
    KINDLING_ASSIGN_OR_RETURN(const int rc, RunTool({"pg_ctl", "-D", data, "-m", "fast", "-w", "-t",
                                                     std::to_string(fast_timeout.count()), "stop"},
                                                    tool_log));
    if (rc == 0) return OkStatus();
  }
  KINDLING_ASSIGN_OR_RETURN(
      const int rc, RunTool({"pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"}, tool_log));
  if (rc != 0)
    return InternalError("pg_ctl stop failed (exit " + std::to_string(rc) +
                         "): " + FileTail(tool_log, 1500));
  return OkStatus();
}

std::string LocalPostgres::SocketDsn(std::string_view database) const {
  return "postgresql:///" + PercentEncode(database) +
         "?host=" + PercentEncode(options_.socket_dir.string(), /*keep_slash=*/true) +
         "&port=" + std::to_string(options_.port) + "&user=postgres";
}

std::string LocalPostgres::TcpDsn(std::string_view database) const {
  std::string host = options_.listen_addresses;
  if (const auto comma = host.find(','); comma != std::string::npos) host.resize(comma);
  if (host.empty() || host == "*" || host == "0.0.0.0") host = "127.0.0.1";
  return "postgresql://postgres@" + host + ":" + std::to_string(options_.port) + "/" +
         PercentEncode(database);
}

}  // namespace kindling::service
