// HttpGetStatus: one GET to 127.0.0.1:<port><path> with a deadline, for
// readiness checks. One connection per call, "Connection: close"; only the
// status line is read.
//
// Thread-safety: free function without shared state.
#pragma once

#include <chrono>
#include <cstdint>
#include <string_view>

#include "common/result.h"

namespace kindling::vmm {

// The answer's status code. kTransient when no answer came: refused, reset,
// closed without a status line, or nothing before `timeout`.
[[nodiscard]] Result<int> HttpGetStatus(std::uint16_t port, std::string_view path,
                                        std::chrono::milliseconds timeout);

}  // namespace kindling::vmm
