// The nice values of a process's threads, as the kernel reports them, for
// tests that check which threads run at a lowered priority.
#pragma once

#include <sys/types.h>

#include <vector>

namespace kindling::testutil {

// One value per thread of process `pid` (field 19 of /proc/<pid>/task/*/stat);
// empty when the process is gone.
std::vector<int> ThreadNiceValues(pid_t pid);

}  // namespace kindling::testutil
