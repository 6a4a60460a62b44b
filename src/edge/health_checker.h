// HealthChecker: probes every backend of a RouteTable and reports the results
// to it, on its own thread every `interval`, or once per CheckOnce() call (what
// tests do instead of waiting for the interval).
//
// A probe is an HTTP GET of `path` on the backend's host:port with short
// timeouts; any status below 500 counts as alive (an application without a
// health route answers 404, which still proves it serves). The table turns a
// backend unhealthy after `unhealthy_after` consecutive failures and healthy
// again after one success. Transitions are logged once each.
//
// Thread-safety: CheckOnce() may run on any thread, also while the background
// thread runs; Start()/Stop() from one owner thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "edge/routes.h"

namespace kindling::edge {

struct HealthCheckOptions {
  std::string path = "/healthz";
  std::chrono::milliseconds interval{5'000};
  std::chrono::milliseconds timeout{1'000};  // connect, and again for the answer
  int unhealthy_after = 3;                   // consecutive failed probes
  int max_parallel = 8;                      // probes in flight at once
};

class HealthChecker {
 public:
  // Whether the backend answers; the default is the HTTP probe described above.
  using Probe = std::function<bool(const Backend&)>;

  // REQUIRES: `table` outlives the checker.
  HealthChecker(RouteTable& table, HealthCheckOptions options, Probe probe = {});
  ~HealthChecker();  // Stop()s
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  // Probes every backend of the table once and reports the results. Blocks
  // until all probes are done (at most about 2 * timeout per batch of
  // max_parallel backends).
  void CheckOnce();

  // Runs CheckOnce() now and then every interval on a background thread.
  // Idempotent.
  void Start();
  // Stops the background thread (an in-flight round finishes first). Idempotent.
  void Stop();

  // The HTTP probe used by default.
  static bool HttpProbe(const Backend& backend, const std::string& path,
                        std::chrono::milliseconds timeout);

 private:
  void Run();

  RouteTable& table_;
  const HealthCheckOptions options_;
  const Probe probe_;

  std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace kindling::edge
