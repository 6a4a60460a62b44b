// `kindling admin master-key export` and `import`: the operator's copies of
// the cluster master key (service/master_key.h), with the database when one
// is reachable (the DSN file as `kindling serve` finds it) to check the key
// against the cluster and record the export.
#pragma once

#include <functional>

namespace CLI {
class App;
}

namespace kindling::cli {

// Adds `admin master-key export|import` to `app` (under its `admin` group,
// created when missing); the chosen command's runner is stored in `action`.
void AddMasterKeyCommands(CLI::App& app, std::function<int()>& action);

}  // namespace kindling::cli
