// `kindling admin control-plane configure|backup|check|restore`: backups of
// the control plane's PostgreSQL with pgBackRest (pgbackup/), on the
// `kindling dev` cluster of a state directory (--state-dir) or on this
// host's cluster (its pgBackRest file, /etc/kindling/pgbackrest.conf by
// default, names the data directory, socket and port after `configure`).
//
// check also warns (a WARNING line, `warnings` in --json; the exit status
// stays 0) while the database records no export of the master key. restore
// passes who runs it (host, OS user) for the control_plane.restored audit
// event an in-place restore writes (pgbackup/control_plane.h), and ends with
// the numbered next steps (`next_steps` in --json): the DSN files, restarting
// kindling serve (or dev), `kindling admin validate`, the automatic backup
// rescan, the audit trail.
#pragma once

#include <functional>

namespace CLI {
class App;
}

namespace kindling::cli {

// Adds `control-plane` and its commands under `admin`; the chosen command's
// runner is stored in `action` when it is parsed.
void AddControlPlaneCommands(CLI::App& admin, std::function<int()>& action);

}  // namespace kindling::cli
