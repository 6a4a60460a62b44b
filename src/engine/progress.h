// Progress reporting and cancellation shared by the engine's pipelines.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string_view>

namespace kindling::engine {

struct Progress {
  std::string_view phase;  // "scan", "backup", "commit", "restore", "verify", "done"
  // Image bytes processed (holes count as processed); verify counts the
  // plaintext bytes of the chunks it checks, so both end at bytes_total.
  std::uint64_t bytes_done = 0;
  std::uint64_t bytes_total = 0;  // image size (verify: bytes of the chunks checked)
  std::uint64_t chunks_done = 0;
  std::uint64_t chunks_total = 0;
  std::uint64_t bytes_transferred = 0;  // stored bytes uploaded or downloaded so far
};

// Called from one thread at a time, at most every ~100 ms and once at the end
// of each phase. Must be cheap and must not call back into the engine.
using ProgressFn = std::function<void(const Progress&)>;

// Cooperative cancellation: set it from any thread (e.g. a signal-watching
// thread); pipelines stop within one chunk's work and return kCancelled,
// leaving nothing half-written behind.
using CancelFlag = std::atomic<bool>;

}  // namespace kindling::engine
