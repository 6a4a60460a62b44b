// HealthProbe: the database check behind GET /healthz, shared by the
// requests that arrive together.
//
// /healthz is public and asked often (load balancers, monitors, anyone): a
// database round trip per request let unauthenticated clients put
// PostgreSQL's whole load on the API's pool, and under backups each took
// tens of milliseconds. A Check() reuses the answer of a ping begun less
// than `fresh` ago, waits for the ping running (inside a BlockingRegion,
// common/blocking_region.h), or else runs one. So a database that stops
// answering shows within `fresh` plus one ping.
//
// Thread-safety: thread-safe.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>

#include "common/result.h"
#include "common/shared_result.h"

namespace kindling::api {

class HealthProbe {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  // `ping`: one database round trip. `clock` defaults to steady_clock::now.
  HealthProbe(std::function<Status()> ping, std::chrono::milliseconds fresh, Clock clock = {});

  // The answer of the newest ping, as above.
  Status Check();

 private:
  struct Ping {
    std::chrono::steady_clock::time_point began{};
    SharedResult<Status> result{};  // guarded by mu_
  };

  const std::function<Status()> ping_;
  const std::chrono::milliseconds fresh_;
  const Clock clock_;
  std::mutex mu_;
  std::shared_ptr<Ping> last_;     // the newest ping answered; guarded by mu_
  std::shared_ptr<Ping> running_;  // guarded by mu_
};

}  // namespace kindling::api
