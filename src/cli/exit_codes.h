// Exit codes of the kindling binary (documented in README.md; scripts rely on
// them, so they never change meaning).
#pragma once

#include "common/result.h"

namespace kindling::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;       // the operation failed (I/O, network, not found)
inline constexpr int kExitUsage = 2;        // bad flags or arguments
inline constexpr int kExitIntegrity = 3;    // corrupt data found (verify problems, restore check)
inline constexpr int kExitWrongKey = 4;     // the key file does not unlock the store
inline constexpr int kExitCancelled = 130;  // SIGINT or SIGTERM

int ExitCodeFor(const Error& error);

// Prints "kindling: error: <message>" as one line on stderr and returns
// ExitCodeFor(error).
int ReportError(const Error& error);

}  // namespace kindling::cli
