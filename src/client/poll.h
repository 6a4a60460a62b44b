// PollUntil: the wait loop of the client's followers (operation_follow.h,
// deployment_follow.h): fetch a document every `interval` until it is done,
// riding out transient failures for a grace period, stopping promptly when
// cancelled or when a deadline passes.
//
// Thread-safety: one call per thread; the callbacks run on the caller's thread.
#pragma once

#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "common/result.h"

namespace kindling::client {

struct PollOptions {
  std::chrono::milliseconds interval{500};
  // Retryable errors of `fetch` are retried until this long has passed
  // without a good answer.
  std::chrono::milliseconds transient_grace{30'000};
  // Zero: no limit.
  std::chrono::milliseconds timeout{0};
  // Checked between polls (every ~50 ms while waiting); true ends the wait.
  std::function<bool()> cancelled;
  // Called with every document fetched, in order.
  std::function<void(const nlohmann::json&)> on_update;
};

// Calls `fetch` until `done` holds for its answer and returns that answer.
// `what` names the thing waited for in messages ("operation <id>"), `state`
// describes a document in them ("starting"). Errors: fetch's non-retryable
// ones at once, its last retryable one once the grace period is over,
// kCancelled ("stopped following <what>"), and kTransient ("<what> is still
// <state> after <timeout>") once the timeout passed.
[[nodiscard]] Result<nlohmann::json> PollUntil(
    const std::function<Result<nlohmann::json>()>& fetch,
    const std::function<bool(const nlohmann::json&)>& done,
    const std::function<std::string(const nlohmann::json&)>& state, const PollOptions& options,
    const std::string& what);

}  // namespace kindling::client
