// `kindling dev`: the whole system on one machine, for trying kindling out and
// for end-to-end tests. It runs a private PostgreSQL (Debian's initdb/pg_ctl,
// unix socket only) and, as child processes of the same binary, one
// `kindling serve --components api`, N `kindling serve --components worker`
// and one `kindling serve --components edge` process, each with its own state
// directory and DevOptions::log_format, exactly as separate hosts would run them; a local-directory
// backup store is configured on first start. Everything lives in one state directory, so a second
// start keeps the data:
//
//   <state>/postgres/data       the cluster (owned by `postgres` when root)
//   <state>/postgres.dsn        DSN file every child reads (0600)
//   <state>/master.key          the cluster master key, shared by the children
//   <state>/admin-api-key       the platform admin's API key (0600)
//   <state>/dev.env             KINDLING_URL/_API_KEY/_DSN/_EDGE_URL lines while
//                               running
//   <state>/backups/            the local backup store
//   <state>/pgbackrest.conf     pgBackRest's configuration (0640, postgres)
//   <state>/pgbackrest/         the control-plane backup repository
//   <state>/pgbackrest-spool/   its async WAL queue and lock files
//   <state>/api/, worker-N/,    the children's state directories (server-id,
//           edge/               volumes/)
//   <state>/logs/               postgres.log, api.log, worker-N.log, edge.log,
//                               pgbackrest/
//
// Control-plane backups are configured at every start (pgbackup/: WAL
// archiving into the local repository, or the one `kindling admin
// control-plane configure --state-dir` chose, wal_level=logical; PostgreSQL is
// restarted once when that changes its settings); without pgBackRest
// installed only wal_level is set, with a warning. With archiving on, the
// supervisor schedules the backups and checks itself
// (service/control_plane_schedule.h, DevOptions::control_plane; it competes
// for the schedule lock like a `kindling serve` with a pgBackRest
// configuration would), so every API process can report them.
//
// A child that exits unexpectedly is restarted (its work is picked up again
// through leases), and so is PostgreSQL, after a pause that grows with the
// restarts (1 s, 2 s, ... 30 s), logged. SIGINT/SIGTERM stop the children
// (API first, then the workers and the edge, which hand running operations back), archive
// the current WAL file (so a restore can reach the last moment before the
// stop) and stop PostgreSQL. Children get SIGTERM if the supervisor itself is
// killed; PostgreSQL then keeps running and the next start adopts it.
//
// With a DSN file (DevOptions::dsn_file) the API and workers run against
// that database instead, and no PostgreSQL is started or configured.
//
// Thread-safety: RunDev blocks the calling thread until stopped.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include "common/result.h"
#include "crypto/aead.h"
#include "pgbackup/control_plane.h"
#include "service/control_plane_schedule.h"
#include "service/local_postgres.h"
#include "service/log_format.h"

namespace kindling::service {

inline constexpr char kDefaultDevStateDir[] = "/var/tmp/kindling-dev";
inline constexpr int kDefaultDevPostgresPort = 5432;

// What `kindling dev` prints once everything is up.
struct DevEndpoints {
  std::string url;       // http://ADDR:PORT of the API process
  std::string edge_url;  // http://ADDR:PORT of the edge process
  std::string api_key;   // a platform admin's key
  std::string dsn;       // the private PostgreSQL (unix socket)
  std::filesystem::path state_dir;
  std::filesystem::path log_dir;
};

struct DevOptions {
  std::filesystem::path state_dir = kDefaultDevStateDir;
  std::string listen = "127.0.0.1:8080";       // port 0: pick a free port
  std::string edge_listen = "127.0.0.1:8000";  // the edge's; port 0: a free port
  int workers = 2;
  // The canary guest the workers run workloads with (serve --guest-dir).
  // Empty: <build>/guest next to the binary when the build made it; "none":
  // no workloads.
  std::filesystem::path guest_dir;
  // The binary the children run; empty: this process's own (/proc/self/exe).
  std::filesystem::path kindling_binary;
  int postgres_port = kDefaultDevPostgresPort;  // names the socket only; no TCP listener
  // Run the API and workers against the database this file names instead of
  // a private PostgreSQL. Empty: the private one.
  std::filesystem::path dsn_file;
  std::string admin_email = "admin@kindling.local";
  std::chrono::milliseconds ready_timeout{90'000};
  // Called once every child is up and every worker heartbeats.
  std::function<void(const DevEndpoints&)> on_ready;
  // Stop when set, besides SIGINT/SIGTERM (which RunDev blocks and waits for
  // when `handle_signals`).
  const std::atomic<bool>* stop = nullptr;
  bool handle_signals = true;
  // Scheduled control-plane backups of the private cluster (intervals,
  // check cadence); hostname and process are filled in.
  ControlPlaneScheduleOptions control_plane;
  // The children's log lines (`serve --log-format`).
  LogFormat log_format = LogFormat::kText;
};

// `NAME=value`, the value single-quoted when a shell would interpret any of
// its characters, so the line can be sourced.
std::string ShellAssignment(const std::string& name, const std::string& value);
// KINDLING_URL, KINDLING_API_KEY, KINDLING_DSN and KINDLING_EDGE_URL lines,
// as printed on stdout
// and kept in <state>/dev.env (0600) for other shells to source.
std::string DevEnvironmentLines(const DevEndpoints& endpoints);

// The private PostgreSQL of the state directory.
LocalPostgresOptions DevPostgresOptions(const std::filesystem::path& state_dir,
                                        int port = kDefaultDevPostgresPort);
// Its control-plane backups: <state>/pgbackrest.conf, the repository
// <state>/pgbackrest (unless `repository` names another), the passphrase
// from the master key; run_as is the postgres user when root.
[[nodiscard]] Result<pgbackup::Setup> DevBackupSetup(
    const std::filesystem::path& state_dir, const crypto::Key& master_key,
    int port = kDefaultDevPostgresPort, const std::optional<pgbackup::Repository>& repository = {});

// The lock a running `kindling dev` holds on <state>/dev.lock, for as long
// as the object lives.
class DevStateLock {
 public:
  // nullopt when another process holds it (a `kindling dev` runs there).
  [[nodiscard]] static Result<std::optional<DevStateLock>> TryAcquire(
      const std::filesystem::path& state_dir);
  DevStateLock(DevStateLock&& other) noexcept;
  DevStateLock& operator=(DevStateLock&& other) noexcept;
  ~DevStateLock();

 private:
  explicit DevStateLock(int fd) : fd_(fd) {}
  int fd_;
};

// Runs until stopped. Errors: kInvalidArgument for a state directory that is
// in use by another `kindling dev` or unreachable for the postgres user,
// kNotFound when PostgreSQL's server binaries are missing, and the first
// failure of PostgreSQL or a child during start-up (with its log's tail).
[[nodiscard]] Status RunDev(const DevOptions& options);

}  // namespace kindling::service
