// FollowOperation: waits for a volume operation (backup, restore, move,
// repair) to finish by polling GET /api/operations/{id} (client/poll.h's
// loop), reporting every answer on the way (status and progress for a
// display).
//
// Thread-safety: one call per thread; the callbacks run on the caller's thread.
#pragma once

#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "client/api_client.h"
#include "common/result.h"

namespace kindling::client {

struct FollowOptions {
  std::chrono::milliseconds interval{500};
  // Transient failures (no answer, 502/503/504) are retried until this long
  // has passed without a good answer; a restarting API does not end the wait.
  std::chrono::milliseconds transient_grace{30'000};
  // Checked between polls (every ~50 ms while waiting); true ends the wait
  // with kCancelled. The operation itself carries on on the server.
  std::function<bool()> cancelled;
  // Called with every operation document received, in order.
  std::function<void(const nlohmann::json& operation)> on_update;
};

// True when `operation` ("status") succeeded or failed.
bool IsFinished(const nlohmann::json& operation);
// True when `operation` succeeded.
bool Succeeded(const nlohmann::json& operation);

// Polls until the operation finishes and returns its last document, failed
// or not (the caller decides what a failure means). Errors: the client's
// (kNotFound for an unknown id, ...), kCancelled, or the last transient
// error once the grace period is over.
[[nodiscard]] Result<nlohmann::json> FollowOperation(ApiClient& client,
                                                     const std::string& operation_id,
                                                     const FollowOptions& options);

}  // namespace kindling::client
