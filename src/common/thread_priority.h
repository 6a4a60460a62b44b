// Scheduling priority of the calling thread, for work that must not take the
// CPU and disk from latency-sensitive threads of the same process (volume
// backups and restores next to the API, the NOTIFY listener, heartbeats).
//
// Linux keeps the nice value and the I/O priority per thread, and a thread
// inherits both from the thread that creates it: lowering them in an
// executor thread before it runs an operation covers the engine's pipeline
// threads started from it.
//
// Thread-safety: acts on the calling thread only.
#pragma once

#include "common/result.h"

namespace kindling {

struct ThreadPriority {
  int nice = 0;  // -20 (highest) .. 19 (lowest)
  // I/O priority in the best-effort class, 0 (highest) .. 7 (lowest);
  // negative leaves it alone.
  int io_level = -1;
};

// Sets the calling thread's nice value and I/O priority. Raising nice needs
// no privilege; lowering it below the current value does (kPermissionDenied
// then, the priority unchanged). kInvalidArgument outside the ranges.
[[nodiscard]] Status SetThisThreadPriority(const ThreadPriority& priority);

// The calling thread's current nice value and best-effort I/O level (-1 when
// its I/O class is not best-effort or was never set).
[[nodiscard]] Result<ThreadPriority> GetThisThreadPriority();

}  // namespace kindling
