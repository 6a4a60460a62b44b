// `kindling dev`: the whole system on one machine, for trying kindling out and
// for end-to-end tests. It runs a private PostgreSQL (Debian's initdb/pg_ctl,
// unix socket only) and, as child processes of the same binary, one
// `kindling serve --components api` and N `kindling serve --components worker`
// processes, each with its own state directory, exactly as separate hosts
// would run them; a local-directory backup store is configured on first
// start. Everything lives in one state directory, so a second start keeps
// the data:
//
//   <state>/postgres/data       the cluster (owned by `postgres` when root)
//   <state>/postgres.dsn        DSN file every child reads (0600)
//   <state>/master.key          the cluster master key, shared by the children
//   <state>/admin-api-key       the platform admin's API key (0600)
//   <state>/dev.env             KINDLING_URL/_API_KEY/_DSN lines while running
//   <state>/backups/            the local backup store
//   <state>/api/, worker-N/     the children's state directories (server-id,
//                               volumes/)
//   <state>/logs/               postgres.log, api.log, worker-N.log
//
// A child that exits unexpectedly is restarted (its work is picked up again
// through leases). SIGINT/SIGTERM stop the children (API first, then the
// workers, which hand running operations back) and then PostgreSQL. Children
// get SIGTERM if the supervisor itself is killed; PostgreSQL then keeps
// running and the next start adopts it.
//
// Thread-safety: RunDev blocks the calling thread until stopped.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <string>

#include "common/result.h"

namespace kindling::service {

inline constexpr char kDefaultDevStateDir[] = "/var/tmp/kindling-dev";

// What `kindling dev` prints once everything is up.
struct DevEndpoints {
  std::string url;      // http://ADDR:PORT of the API process
  std::string api_key;  // a platform admin's key
  std::string dsn;      // the private PostgreSQL (unix socket)
  std::filesystem::path state_dir;
  std::filesystem::path log_dir;
};

struct DevOptions {
  std::filesystem::path state_dir = kDefaultDevStateDir;
  std::string listen = "127.0.0.1:8080";  // port 0: pick a free port
  int workers = 2;
  // The binary the children run; empty: this process's own (/proc/self/exe).
  std::filesystem::path kindling_binary;
  int postgres_port = 5432;  // names the socket only; no TCP listener
  std::string admin_email = "admin@kindling.local";
  std::chrono::milliseconds ready_timeout{90'000};
  // Called once every child is up and every worker heartbeats.
  std::function<void(const DevEndpoints&)> on_ready;
  // Stop when set, besides SIGINT/SIGTERM (which RunDev blocks and waits for
  // when `handle_signals`).
  const std::atomic<bool>* stop = nullptr;
  bool handle_signals = true;
};

// `NAME=value`, the value single-quoted when a shell would interpret any of
// its characters, so the line can be sourced.
std::string ShellAssignment(const std::string& name, const std::string& value);
// KINDLING_URL, KINDLING_API_KEY and KINDLING_DSN lines, as printed on stdout
// and kept in <state>/dev.env (0600) for other shells to source.
std::string DevEnvironmentLines(const DevEndpoints& endpoints);

// Runs until stopped. Errors: kInvalidArgument for a state directory that is
// in use by another `kindling dev` or unreachable for the postgres user,
// kNotFound when PostgreSQL's server binaries are missing, and the first
// failure of PostgreSQL or a child during start-up (with its log's tail).
[[nodiscard]] Status RunDev(const DevOptions& options);

}  // namespace kindling::service
