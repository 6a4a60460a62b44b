#include "edge/edge_service.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <exception>
#include <utility>

namespace kindling::edge {

EdgeService::EdgeService(std::unique_ptr<RouteSource> source, EdgeServiceOptions options)
    : source_(std::move(source)),
      options_(std::move(options)),
      checker_(table_, options_.health),
      proxy_(table_, options_.proxy) {}

EdgeService::~EdgeService() { Stop(); }

Status EdgeService::Start() {
  {
    std::lock_guard lock(mu_);
    if (started_) return InvalidArgument("edge service already started");
  }
  LoadNow();
  KINDLING_RETURN_IF_ERROR(proxy_.Start());
  checker_.Start();
  std::lock_guard lock(mu_);
  started_ = true;
  stopping_ = false;
  reloader_ = std::thread([this] { RunReloads(); });
  return OkStatus();
}

void EdgeService::Stop() {
  {
    std::lock_guard lock(mu_);
    if (!started_) return;
    stopping_ = true;
  }
  wake_.notify_all();
  if (reloader_.joinable()) reloader_.join();
  proxy_.Stop();
  checker_.Stop();
  std::lock_guard lock(mu_);
  started_ = false;
}

void EdgeService::Reload() {
  {
    std::lock_guard lock(mu_);
    stats_.pending = true;
  }
  wake_.notify_all();
}

int EdgeService::port() const { return proxy_.port(); }

RouteReloadStats EdgeService::reload_stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void EdgeService::RunReloads() {
  using Clock = std::chrono::steady_clock;
  std::unique_lock lock(mu_);
  auto next = Clock::now() + options_.reload_interval;
  while (true) {
    wake_.wait_until(lock, next, [this] { return stopping_ || stats_.pending; });
    if (stopping_) return;
    // Every Reload() up to here is served by this load; later ones by the next.
    stats_.pending = false;
    stats_.loading = true;
    lock.unlock();
    LoadNow();
    lock.lock();
    stats_.loading = false;
    next = Clock::now() + options_.reload_interval;
  }
}

void EdgeService::LoadNow() {
  Result<std::vector<Route>> routes = InternalError("no routes loaded");
  try {
    routes = source_->Load();
  } catch (const std::exception& e) {
    routes = InternalError(std::string("route source threw: ") + e.what());
  }
  const std::size_t count = routes ? routes->size() : 0;
  if (routes) table_.Replace(std::move(*routes));

  std::lock_guard lock(mu_);
  ++stats_.loads;
  if (!routes) {
    ++stats_.failures;
    if (!failing_) {
      spdlog::warn("edge: loading routes failed, keeping the previous {} routes: {}", table_.size(),
                   routes.error().message());
    }
    failing_ = true;
    return;
  }
  if (failing_) {
    spdlog::info("edge: routes load again ({} routes)", count);
  } else {
    spdlog::debug("edge: loaded {} routes", count);
  }
  failing_ = false;
}

std::string EdgeService::MetricsText() const {
  const RouteReloadStats stats = reload_stats();
  std::string out = proxy_.MetricsText();
  out += "# HELP kindling_edge_route_loads_total Loads of the route table by result.\n";
  out += "# TYPE kindling_edge_route_loads_total counter\n";
  out += fmt::format("kindling_edge_route_loads_total{{result=\"ok\"}} {}\n",
                     stats.loads - stats.failures);
  out += fmt::format("kindling_edge_route_loads_total{{result=\"error\"}} {}\n", stats.failures);
  return out;
}

}  // namespace kindling::edge
