// `kindling serve --components api,worker,edge`: wires one process's
// components on the shared database (the edge: service/edge_component.h).
// Every process runs the idempotent migrations, takes part in the leader
// election (reconcile::Leader) and runs the components it was asked for; all
// coordination goes through PostgreSQL, so any number of these processes (one
// per host) work on one database and bucket. Once started it logs one line
// with its version, server, components, listen addresses, runtime and the
// backup store's URL.
//
// Files (paths overridable):
//   DSN         ServeOptions::dsn_file, else $KINDLING_DSN_FILE, else
//               /etc/kindling/postgres.dsn (identical on every host)
//   server-id   <state_dir>/server-id: the host's stable id, created once;
//               re-registration reuses the servers row
//   master key  <state_dir>/master.key: 32 bytes sealing cluster secrets and
//               the backup store's data keys; created on first start. A
//               restored database is useless without it: back it up apart.
//               Every process of a cluster needs the same file: the first
//               start records a check value in cluster_settings and a
//               process with another key refuses to start.
//   volumes     <state_dir>/volumes/<volume_id>.img (the worker's)
//   edge        <state_dir>/edge.address: HOST:PORT the edge component
//               listens on (its port 0 resolved), written once it listens
//   pgBackRest  ServeOptions::pgbackrest_config, else
//               /etc/kindling/pgbackrest.conf when it exists: this host
//               runs the control-plane database, so the process competes
//               for scheduling its backups and checks
//               (service/control_plane_schedule.h)
//
// Thread-safety: Serve blocks its calling thread until stopped.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "common/thread_priority.h"
#include "crypto/aead.h"
#include "db/database.h"
#include "reconcile/store_provider.h"
#include "service/control_plane_schedule.h"

namespace kindling::service {

inline constexpr char kDefaultDsnFile[] = "/etc/kindling/postgres.dsn";
inline constexpr char kDsnFileEnv[] = "KINDLING_DSN_FILE";
inline constexpr char kDefaultStateDir[] = "/var/lib/kindling";
inline constexpr char kDefaultPgBackRestConfig[] = "/etc/kindling/pgbackrest.conf";
inline constexpr char kEdgeAddressFile[] = "edge.address";

// A long-running part of the process (the API server, say) that Serve starts
// after the database is ready and stops on shutdown, in reverse order.
class Component {
 public:
  virtual ~Component() = default;
  [[nodiscard]] virtual Status Start() = 0;
  virtual void Stop() = 0;
};

struct ServeOptions;

// What components get from Serve. References live until the component is
// stopped.
struct ServeContext {
  db::Database& db;
  // The API's own connection pool (ServeOptions::api_db_connections), so
  // that a burst of requests never makes heartbeats, leases or operations
  // wait for a connection.
  db::Database& api_db;
  const crypto::Key& master_key;
  const std::string& server_id;
  const std::string& dsn;
  reconcile::BackupStoreProvider& stores;
  const ServeOptions& options;
};

// The hook through which exe/ plugs in the API component (api/ sits above
// service/ in no particular order with it, so service/ does not link it).
using ComponentFactory = std::function<Result<std::unique_ptr<Component>>(const ServeContext&)>;

struct ServeOptions {
  // Any subset of {"api", "worker", "edge"}.
  std::vector<std::string> components = {"api", "worker"};
  // DSN file; empty: ResolveDsnFile's default. `dsn` set wins over any file
  // (kindling dev passes its private PostgreSQL's DSN).
  std::filesystem::path dsn_file;
  std::string dsn;
  std::filesystem::path state_dir = kDefaultStateDir;
  std::filesystem::path server_id_file;   // empty: <state_dir>/server-id
  std::filesystem::path master_key_file;  // empty: <state_dir>/master.key
  std::string hostname;                   // empty: gethostname()
  std::string internal_ip = "127.0.0.1";
  std::string runtime = "sparse-image";  // worker metadata.runtime
  // Workloads: a directory with the canary guest (vmlinux,
  // initramfs.cpio.gz; the guest_image build target). Set: the worker
  // detects the VM runtime by trying it (runtime/detect.h), runs the
  // deployments pinned to it and reports that runtime instead of `runtime`.
  std::filesystem::path guest_dir;
  std::string listen = "127.0.0.1:8080";  // for the API component
  // PostgreSQL connections of the API component (its own pool; the
  // reconcilers, the edge and the scheduler share another of 16). Requests
  // beyond it wait their turn, oldest first.
  std::size_t api_db_connections = 8;
  // Worker: operations (backups, restores, ...) run at once, and the
  // priority they run at (reconcile::WorkerOptions).
  int max_concurrent_operations = 2;
  ThreadPriority operation_priority{.nice = 19, .io_level = 7};
  // For the edge component (service/edge_component.h): the reverse proxy
  // to the projects' running workloads.
  std::string edge_listen = "127.0.0.1:8000";
  std::chrono::milliseconds heartbeat_interval{10'000};
  std::chrono::milliseconds sweep_interval{2'000};
  // Worker quarantine (reconcile/image_reconciler.h).
  std::chrono::seconds quarantine_grace{3600};
  std::chrono::seconds quarantine_retention{7 * 24 * 3600};
  // Scheduled garbage collection of the backup store, run by the leader
  // (service/store_gc_loop.h, control/store_gc.h): how often (0: never) and
  // the grace for chunks written recently.
  std::chrono::seconds store_gc_every{24 * 3600};
  std::chrono::seconds store_gc_grace{3600};
  // Scheduled verification of the backups, run by the leader
  // (service/backup_verify_loop.h, control/backup_verification.h): a round
  // every `backup_verify_every` (0: never), verifying that percentage of
  // the backups (100: all; the least recently verified first).
  std::chrono::seconds backup_verify_every{7 * 24 * 3600};
  int backup_verify_sample_percent = 100;
  bool run_leader = true;
  // The leader's start grace (reconcile/leader.h): no server is marked dead
  // and no operation failed for this long after a process starts leading, so
  // workers restarted after a database restore get their work back.
  std::chrono::seconds leader_start_grace{120};
  // The leader rescans the backup stores (control/backup_rescan.h) whenever
  // it starts leading, importing backups the database lacks.
  bool rescan_on_leading = true;
  // This host's pgBackRest configuration (`kindling admin control-plane
  // configure` wrote it): control-plane backups are scheduled from here
  // (when this process holds their lock). Empty: kDefaultPgBackRestConfig
  // if it exists, else none; a file named here must exist.
  std::filesystem::path pgbackrest_config;
  // The PostgreSQL superuser connected to through the configuration's socket
  // (and, when root, the system user pgBackRest runs as).
  std::string pg_user = "postgres";
  // Intervals, check cadence and clock; server_id/hostname are filled in.
  ControlPlaneScheduleOptions control_plane;
  // Block SIGINT/SIGTERM and stop on them. Off when an embedding process
  // (kindling dev) handles signals itself and uses `stop`.
  bool handle_signals = true;
  const std::atomic<bool>* stop = nullptr;
  // Called once everything is started.
  std::function<void(const ServeContext&)> on_ready;
  // REQUIRED when components include "api".
  ComponentFactory api_factory;
};

// What servers report as metadata.dsn_sha256: SHA-256 (hex) of the DSN with
// its password masked (db::RedactDsn), so hosts whose DSN files differ can be
// told apart without publishing anything a password could be guessed from.
std::string DsnDigest(std::string_view dsn);

// An --listen value, ADDRESS:PORT.
struct ListenAddress {
  std::string host;
  int port = 0;
};
// kInvalidArgument (naming the value) unless `listen` is HOST:PORT with a
// port in 0..65535.
[[nodiscard]] Result<ListenAddress> ParseListenAddress(const std::string& listen);

// True for a host only this machine can reach: "localhost", 127.0.0.0/8 and
// ::1 (bracketed or not). False for anything else, 0.0.0.0 and :: included.
bool IsLoopbackHost(std::string_view host);

// Whether the API may listen on `listen` as asked: over TLS always; over
// plain HTTP on a loopback address, or anywhere with `insecure_http` (API
// keys and the S3 secret would cross the network in clear). kInvalidArgument
// saying so otherwise, and when only one of the TLS files is given.
[[nodiscard]] Status CheckApiTransport(const ListenAddress& listen,
                                       const std::string& tls_cert_file,
                                       const std::string& tls_key_file, bool insecure_http);

// `flag` when set, else $KINDLING_DSN_FILE when set, else kDefaultDsnFile.
std::filesystem::path ResolveDsnFile(const std::filesystem::path& flag);

// Reads the server-id file, or creates it (a new UUID, written atomically,
// mode 0644) when missing. kInvalidArgument when it holds something else.
[[nodiscard]] Result<std::string> LoadOrCreateServerId(const std::filesystem::path& path);

// Loads the master key file, or creates one (mode 0600) when missing.
[[nodiscard]] Result<crypto::Key> LoadOrCreateMasterKey(const std::filesystem::path& path);

// cluster_settings key holding a check value of the master key (a keyed
// digest of a fixed label) recorded by the first process to start.
inline constexpr char kMasterKeyCheckSetting[] = "master_key_check";

// Records the master key's check value on first use; kWrongKey (naming the
// file, never the key) when the cluster recorded another key's.
[[nodiscard]] Status CheckMasterKeyMatchesCluster(db::Database& db, const crypto::Key& master_key,
                                                  const std::filesystem::path& master_key_file);

// The cluster's backup store as the settings in the database describe it
// (control::OpenBackupStore), reopened after Invalidate() (NOTIFY
// kindling_config). REQUIRES: `db` and `master_key` outlive it.
std::unique_ptr<reconcile::BackupStoreProvider> MakeClusterStoreProvider(
    db::Database& db, const crypto::Key& master_key);

// Runs until SIGINT/SIGTERM (or *stop), then stops components in reverse
// order: the worker hands in-flight operations back as pending.
[[nodiscard]] Status Serve(const ServeOptions& options);

}  // namespace kindling::service
