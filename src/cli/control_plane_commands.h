// `kindling admin control-plane configure|backup|check|restore`: backups of
// the control plane's PostgreSQL with pgBackRest (pgbackup/), on the
// `kindling dev` cluster of a state directory (--state-dir) or on this
// host's cluster (its pgBackRest file, /etc/kindling/pgbackrest.conf by
// default, names the data directory, socket and port after `configure`).
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
