// LocalPostgres: a PostgreSQL cluster that kindling runs itself from Debian's
// server binaries (`initdb`, `pg_ctl`): the private database of `kindling
// dev` and of the tests. When this process is root, the binaries run as the
// `postgres` system user (initdb refuses root) and the data directory is
// owned by it; the directories above it must let that user through.
//
// The server listens on a unix socket in `socket_dir` and, when
// `listen_addresses` is set, on TCP as well. Superuser `postgres`, trust
// authentication: only for clusters that are private to one machine.
//
// Thread-safety: not thread-safe; one owner starts and stops it.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "service/child_process.h"

namespace kindling::service {

// $KINDLING_PG_BIN when set, else the newest /usr/lib/postgresql/<major>/bin
// that has initdb. kNotFound with a hint to install postgresql otherwise.
[[nodiscard]] Result<std::filesystem::path> FindPostgresBinDir();

struct LocalPostgresOptions {
  std::filesystem::path bin_dir;  // empty: FindPostgresBinDir()
  std::filesystem::path data_dir;
  std::filesystem::path socket_dir;
  std::filesystem::path log_file;  // the server's log
  int port = 5432;                 // also names the socket file
  std::string listen_addresses;    // empty: unix socket only
  // Extra server settings ("name=value"), e.g. "fsync=off" for tests.
  std::vector<std::string> settings;
};

class LocalPostgres {
 public:
  // REQUIRES: data_dir, socket_dir and log_file set.
  [[nodiscard]] static Result<LocalPostgres> Create(LocalPostgresOptions options);

  const LocalPostgresOptions& options() const { return options_; }

  // Runs initdb unless data_dir already holds a cluster. initdb writes into a
  // sibling temp directory that is renamed into place, so a crash never
  // leaves a half-initialised data_dir.
  [[nodiscard]] Status InitIfMissing();
  // Makes `data_dir` a copy of the pristine cluster in `template_dir` (made by
  // InitIfMissing elsewhere); faster than initdb. REQUIRES: data_dir absent.
  [[nodiscard]] Status CopyFrom(const std::filesystem::path& template_dir);

  // Starts the server and waits until it accepts connections. A server
  // already running on this data_dir (left by a killed supervisor) is
  // adopted.
  [[nodiscard]] Status Start();
  // Stops the server: fast shutdown (open sessions are cut), or immediate
  // (like a crash) when `immediate` or when the fast one takes longer than
  // `fast_timeout` (its archiver's last round waits for archive_command).
  // No-op when not running.
  [[nodiscard]] Status Stop(bool immediate = false,
                            std::chrono::seconds fast_timeout = std::chrono::seconds(60));
  // True when pg_ctl reports a server running on data_dir.
  bool Running() const;

  // libpq URI for `database` through the unix socket, e.g.
  // postgresql:///kindling?host=/dir&port=5432&user=postgres.
  std::string SocketDsn(std::string_view database) const;
  // libpq URI over TCP. REQUIRES: listen_addresses set.
  std::string TcpDsn(std::string_view database) const;

 private:
  LocalPostgres(LocalPostgresOptions options, std::optional<RunAsUser> run_as)
      : options_(std::move(options)), run_as_(run_as) {}
  // Runs a server binary as the server user with output appended to `log`.
  [[nodiscard]] Result<int> RunTool(std::vector<std::string> args,
                                    const std::filesystem::path& log) const;
  [[nodiscard]] Status ChownToServerUser(const std::filesystem::path& path) const;

  LocalPostgresOptions options_;
  std::optional<RunAsUser> run_as_;
};

}  // namespace kindling::service
