#include "service/postgres_control.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <sstream>

#include "common/files.h"
#include "common/hex.h"
#include "service/child_process.h"

namespace kindling::service {
namespace {

namespace fs = std::filesystem;

// A TCP port of 127.0.0.1 that no one listens on now: the copy's port (its
// socket's name and shared-memory key; it has no TCP listener).
Result<int> UnusedPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoError("socket", errno);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const int err = errno;
    ::close(fd);
    return ErrnoError("bind 127.0.0.1:0", err);
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

Status WriteIfMissing(const fs::path& path, std::string_view content) {
  std::error_code ec;
  if (fs::exists(path, ec)) return OkStatus();
  KINDLING_RETURN_IF_ERROR(WriteFileAtomic(path, content, 0600));
  KINDLING_ASSIGN_OR_RETURN(std::optional<RunAsUser> user, PostgresServerUser());
  if (user && ::chown(path.c_str(), user->uid, user->gid) != 0)
    return ErrnoError("chown " + path.string(), errno);
  return OkStatus();
}

// postmaster.opts holds the server's command line: `/path/postgres "-D"
// "/data" "-c" "config_file=..."`. The options after the binary and -D, as
// pg_ctl -o takes them.
std::string OptionsFromPostmasterOpts(const std::string& text) {
  std::vector<std::string> tokens;
  std::string current;
  bool quoted = false;
  bool any = false;
  for (const char c : text) {
    if (c == '"') {
      quoted = !quoted;
      any = true;
    } else if (!quoted && std::isspace(static_cast<unsigned char>(c))) {
      if (any) tokens.push_back(current);
      current.clear();
      any = false;
    } else {
      current += c;
      any = true;
    }
  }
  if (any) tokens.push_back(current);
  std::string options;
  for (std::size_t i = 1; i < tokens.size(); ++i) {
    if (tokens[i] == "-D" && i + 1 < tokens.size()) {
      ++i;
      continue;
    }
    std::string escaped;
    for (const char c : tokens[i]) {
      if (c == '"' || c == '\\' || c == '$' || c == '`') escaped += '\\';
      escaped += c;
    }
    options += (options.empty() ? "" : " ") + ("\"" + escaped + "\"");
  }
  return options;
}

}  // namespace

Status LocalServerControl::Start() {
  if (write_missing_config_ && !postgres_.Running()) {
    const fs::path& data = postgres_.options().data_dir;
    KINDLING_RETURN_IF_ERROR(
        WriteIfMissing(data / "postgresql.conf",
                       "# Written by kindling for a restored copy: settings come from "
                       "postgresql.auto.conf and the command line.\n"));
    KINDLING_RETURN_IF_ERROR(WriteIfMissing(
        data / "pg_hba.conf",
        "# Written by kindling for a restored copy: unix socket only, in the data directory.\n"
        "local all all trust\n"));
    KINDLING_RETURN_IF_ERROR(WriteIfMissing(data / "pg_ident.conf", ""));
  }
  return postgres_.Start();
}

std::string LocalServerControl::LogTail() const {
  return FileTail(postgres_.options().log_file, 3000);
}

Result<std::unique_ptr<pgbackup::ServerControl>> MakeDrillServer(const fs::path& data_dir) {
  LocalPostgresOptions options;
  options.data_dir = data_dir;
  options.socket_dir = data_dir;
  options.log_file = data_dir.string() + ".log";
  KINDLING_ASSIGN_OR_RETURN(options.port, UnusedPort());
  // A copy never archives: its new timeline must not reach the repository.
  options.settings = {"archive_mode=off"};
  KINDLING_ASSIGN_OR_RETURN(LocalPostgres postgres, LocalPostgres::Create(std::move(options)));
  return std::unique_ptr<pgbackup::ServerControl>(std::make_unique<LocalServerControl>(
      std::make_unique<LocalPostgres>(std::move(postgres)), /*write_missing_config=*/true));
}

Result<CommandResult> HostServerControl::PgCtl(std::vector<std::string> args) {
  if (options_.bin_dir.empty()) {
    KINDLING_ASSIGN_OR_RETURN(options_.bin_dir, FindPostgresBinDir());
  }
  CommandOptions run;
  run.args = {(options_.bin_dir / "pg_ctl").string(), "-D", options_.data_dir.string()};
  run.args.insert(run.args.end(), args.begin(), args.end());
  run.run_as = options_.run_as;
  run.drop_env_prefixes = {"PG", "LC_", "LANG"};
  run.extra_env = {"LC_ALL=C"};
  run.timeout = std::chrono::minutes(11);
  return runner_.Run(run);
}

Status HostServerControl::PrepareLog() const {
  // The server (as the PostgreSQL user) appends to it: create it for it.
  std::error_code ec;
  fs::create_directories(options_.log_file.parent_path(), ec);
  const int fd = ::open(options_.log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0) return ErrnoError("open " + options_.log_file.string(), errno);
  ::close(fd);
  if (options_.run_as &&
      ::chown(options_.log_file.c_str(), options_.run_as->uid, options_.run_as->gid) != 0)
    return ErrnoError("chown " + options_.log_file.string(), errno);
  return OkStatus();
}

bool HostServerControl::Running() {
  std::error_code ec;
  if (!fs::exists(options_.data_dir / "postmaster.pid", ec)) return false;
  auto status = PgCtl({"status"});
  return status && status->exit_status == 0;
}

Status HostServerControl::Start() {
  if (Running()) return OkStatus();
  KINDLING_RETURN_IF_ERROR(PrepareLog());
  std::string server_options = options_.start_options;
  if (server_options.empty()) server_options = recorded_options_;
  std::vector<std::string> args = {"-l", options_.log_file.string(), "-w", "-t", "600"};
  if (!server_options.empty()) {
    args.push_back("-o");
    args.push_back(server_options);
  }
  args.push_back("start");
  KINDLING_ASSIGN_OR_RETURN(CommandResult result, PgCtl(std::move(args)));
  if (result.exit_status != 0)
    return InternalError("pg_ctl start failed (exit " + std::to_string(result.exit_status) +
                         "): " + result.output + result.errors + "\n" + LogTail());
  return OkStatus();
}

Status HostServerControl::Stop() {
  if (!Running()) return OkStatus();
  if (auto opts = ReadFile(options_.data_dir / "postmaster.opts"); opts)
    recorded_options_ = OptionsFromPostmasterOpts(*opts);
  KINDLING_ASSIGN_OR_RETURN(CommandResult result, PgCtl({"-m", "fast", "-w", "-t", "600", "stop"}));
  if (result.exit_status != 0)
    return InternalError("pg_ctl stop failed (exit " + std::to_string(result.exit_status) +
                         "): " + result.output + result.errors);
  return OkStatus();
}

Status HostServerControl::Restart() {
  // pg_ctl restart starts the server with the options it runs with now.
  KINDLING_RETURN_IF_ERROR(PrepareLog());
  KINDLING_ASSIGN_OR_RETURN(CommandResult result, PgCtl({"-l", options_.log_file.string(), "-m",
                                                         "fast", "-w", "-t", "600", "restart"}));
  if (result.exit_status != 0)
    return InternalError("pg_ctl restart failed (exit " + std::to_string(result.exit_status) +
                         "): " + result.output + result.errors + "\n" + LogTail());
  return OkStatus();
}

std::string HostServerControl::Dsn(std::string_view database) const {
  return "postgresql:///" + PercentEncode(database) +
         "?host=" + PercentEncode(options_.socket_dir.string(), /*keep_slash=*/true) +
         "&port=" + std::to_string(options_.port) + "&user=" + PercentEncode(options_.user);
}

std::string HostServerControl::LogTail() const { return FileTail(options_.log_file, 3000); }

}  // namespace kindling::service
