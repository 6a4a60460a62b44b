// The control-plane commands: `kindling serve` (API, worker and/or edge
// components on the shared PostgreSQL), `kindling dev` (everything on one machine) and
// `kindling admin bootstrap` (the first platform admin and its API key).
#pragma once

#include <functional>

namespace CLI {
class App;
}

namespace kindling::cli {

// Adds `serve`, `dev` and `admin bootstrap` to `app`; the chosen command's runner is
// stored in `action` when it is parsed.
void AddServeCommands(CLI::App& app, std::function<int()>& action);

}  // namespace kindling::cli
