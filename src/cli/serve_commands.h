// The control-plane commands: `kindling serve` (API, worker and/or edge
// components on the shared PostgreSQL), `kindling dev` (everything on one machine) and
// `kindling admin bootstrap` (the first platform admin and its API key).
#pragma once

#include <functional>

#include "cli/flags.h"

namespace CLI {
class App;
}

namespace kindling::cli {

// Adds `serve`, `dev` and `admin bootstrap` to `app`; the chosen command's runner is
// stored in `action` when it is parsed. `serve` and `dev` set `common`'s
// log_format (--log-format, KINDLING_LOG_FORMAT); `serve` also its log_level
// (--log-level, KINDLING_LOG_LEVEL, default info: its access log), and logs
// from a thread of its own (service::UseAsyncLogging). `serve` and `dev` stop
// on SIGINT or SIGTERM, also when a thread started before they blocked those
// signals (the logging thread) took it through the cancel handler (cli/cancel.h).
void AddServeCommands(CLI::App& app, CommonFlags& common, std::function<int()>& action);

}  // namespace kindling::cli
