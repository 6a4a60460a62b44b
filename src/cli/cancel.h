// Cancellation by signal: SIGINT and SIGTERM set one process-wide CancelFlag
// that the engine polls; the engine then stops within one chunk and cleans up.
// A second signal ends the process at once with exit code 130.
#pragma once

#include "engine/progress.h"

namespace kindling::cli {

// Installs the handlers (idempotent) and ignores SIGPIPE. Returns the flag.
engine::CancelFlag& InstallCancelHandlers();

// True once SIGINT or SIGTERM arrived.
bool CancelRequested();

}  // namespace kindling::cli
