// pgbackup::ServerControl for the PostgreSQL clusters the control-plane
// backup commands act on:
//
//   LocalServerControl  a LocalPostgres: `kindling dev`'s private cluster, or
//                       the copy a restore drill starts (MakeDrillServer).
//   HostServerControl   a host's cluster (Debian: /var/lib/postgresql/15/main)
//                       through pg_ctl, run as the PostgreSQL user. A restart
//                       reuses the running server's options (pg_ctl restart);
//                       a start after a restore uses the options recorded in
//                       postmaster.opts before the stop, or `start_options`.
//
// Thread-safety: one caller at a time.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "common/subprocess.h"
#include "pgbackup/server_control.h"
#include "service/local_postgres.h"

namespace kindling::service {

class LocalServerControl final : public pgbackup::ServerControl {
 public:
  // Drives `postgres`, which must outlive this.
  explicit LocalServerControl(LocalPostgres& postgres) : postgres_(postgres) {}
  // Owns it; with `write_missing_config`, Start first writes a minimal
  // postgresql.conf and a local-only pg_hba.conf when the data directory
  // has none.
  LocalServerControl(std::unique_ptr<LocalPostgres> owned, bool write_missing_config)
      : owned_(std::move(owned)), postgres_(*owned_), write_missing_config_(write_missing_config) {}

  const std::filesystem::path& data_dir() const override { return postgres_.options().data_dir; }
  bool Running() override { return postgres_.Running(); }
  Status Start() override;
  Status Stop() override { return postgres_.Stop(); }
  std::string Dsn(std::string_view database) const override {
    return postgres_.SocketDsn(database);
  }
  std::string LogTail() const override;

 private:
  std::unique_ptr<LocalPostgres> owned_;
  LocalPostgres& postgres_;
  bool write_missing_config_ = false;
};

// The server of a restored copy in `data_dir`: its socket in data_dir, a
// port no one uses now, no TCP listener, archive_mode=off, its log in
// <data_dir>.log. Missing postgresql.conf/pg_hba.conf (a Debian cluster
// keeps them in /etc) are written at start: local connections only.
[[nodiscard]] Result<std::unique_ptr<pgbackup::ServerControl>> MakeDrillServer(
    const std::filesystem::path& data_dir);

struct HostServerOptions {
  std::filesystem::path bin_dir;  // empty: FindPostgresBinDir()
  std::filesystem::path data_dir;
  std::filesystem::path socket_dir = "/var/run/postgresql";
  int port = 5432;
  // The superuser kindling connects as through the socket (a password, if
  // one is needed, comes from PGPASSWORD or ~/.pgpass as libpq reads them).
  std::string user = "postgres";
  // pg_ctl -o for a start after a restore; empty: what postmaster.opts
  // recorded before the stop.
  std::string start_options;
  std::filesystem::path log_file = "/var/log/postgresql/kindling-pg_ctl.log";
  std::optional<RunAsUser> run_as;
};

class HostServerControl final : public pgbackup::ServerControl {
 public:
  HostServerControl(HostServerOptions options, CommandRunner& runner)
      : options_(std::move(options)), runner_(runner) {}

  const std::filesystem::path& data_dir() const override { return options_.data_dir; }
  bool Running() override;
  Status Start() override;
  Status Stop() override;
  Status Restart() override;
  std::string Dsn(std::string_view database) const override;
  std::string LogTail() const override;

 private:
  [[nodiscard]] Result<CommandResult> PgCtl(std::vector<std::string> args);
  [[nodiscard]] Status PrepareLog() const;

  HostServerOptions options_;
  CommandRunner& runner_;
  std::string recorded_options_;  // from postmaster.opts, before a stop
};

}  // namespace kindling::service
