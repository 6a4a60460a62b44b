// EdgeService: the edge component of a process: a RouteTable fed by a
// RouteSource, its HealthChecker and the EdgeProxy serving from it.
//
// Routes are loaded at Start(), whenever Reload() is called (the database
// source's owner calls it on a NOTIFY) and every reload_interval, so a missed
// notification heals by itself. Reload() never blocks: calls that arrive while
// a load runs are served together by one more load. A failed load keeps the
// previous routes; the failure is logged once, and the recovery once.
//
// Thread-safety: Start/Stop from one owner thread; Reload(), reload_stats(),
// MetricsText() and routes() from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/result.h"
#include "edge/edge_proxy.h"
#include "edge/health_checker.h"
#include "edge/routes.h"

namespace kindling::edge {

struct EdgeServiceOptions {
  EdgeProxyOptions proxy{};
  HealthCheckOptions health{};
  std::chrono::milliseconds reload_interval{30'000};
};

struct RouteReloadStats {
  std::uint64_t loads = 0;     // RouteSource::Load() calls finished
  std::uint64_t failures = 0;  // of those, the failed ones
  bool pending = false;        // a Reload() is waiting for the next load
  bool loading = false;        // a load is running
};

class EdgeService {
 public:
  // REQUIRES: `source` is not null.
  explicit EdgeService(std::unique_ptr<RouteSource> source, EdgeServiceOptions options = {});
  ~EdgeService();  // Stop()s
  EdgeService(const EdgeService&) = delete;
  EdgeService& operator=(const EdgeService&) = delete;

  // Loads the routes (a failure is logged and the periodic reload retries),
  // then starts the proxy, the health checks and the reload loop. kIo when
  // the proxy cannot listen (then nothing runs); kInvalidArgument when started.
  [[nodiscard]] Status Start();
  // Stops the proxy (in-flight requests finish), the checks and the reloads.
  // Idempotent.
  void Stop();

  // Asks for a reload soon; returns at once. Coalesced with other calls.
  void Reload();

  // The proxy's bound port (valid after Start()).
  int port() const;
  RouteReloadStats reload_stats() const;
  // The proxy's metrics plus route loads, to append to /metrics.
  std::string MetricsText() const;

  RouteTable& routes() { return table_; }
  HealthChecker& health_checker() { return checker_; }

 private:
  void RunReloads();
  void LoadNow();

  const std::unique_ptr<RouteSource> source_;
  const EdgeServiceOptions options_;
  RouteTable table_;
  HealthChecker checker_;
  EdgeProxy proxy_;

  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool started_ = false;    // guarded by mu_
  bool stopping_ = false;   // guarded by mu_
  bool failing_ = false;    // the last load failed; guarded by mu_
  RouteReloadStats stats_;  // guarded by mu_
  std::thread reloader_;
};

}  // namespace kindling::edge
