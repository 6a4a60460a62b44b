#include "edge/health_checker.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <vector>

namespace kindling::edge {

namespace {

void SetTimeouts(httplib::Client& client, std::chrono::milliseconds timeout) {
  const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(timeout).count();
  const auto sec = static_cast<time_t>(micros / 1'000'000);
  const auto usec = static_cast<time_t>(micros % 1'000'000);
  client.set_connection_timeout(sec, usec);
  client.set_read_timeout(sec, usec);
  client.set_write_timeout(sec, usec);
}

}  // namespace

HealthChecker::HealthChecker(RouteTable& table, HealthCheckOptions options, Probe probe)
    : table_(table), options_(std::move(options)), probe_(std::move(probe)) {}

HealthChecker::~HealthChecker() { Stop(); }

bool HealthChecker::HttpProbe(const Backend& backend, const std::string& path,
                              std::chrono::milliseconds timeout) {
  try {
    httplib::Client client(backend.host, backend.port);
    SetTimeouts(client, timeout);
    client.set_keep_alive(false);
    client.set_decompress(false);
    const httplib::Headers headers{{"User-Agent", "kindling-edge-health"}};
    auto result = client.Get(path, headers);
    return result && result->status > 0 && result->status < 500;
  } catch (const std::exception&) {
    return false;
  }
}

void HealthChecker::CheckOnce() {
  const std::vector<Backend> backends = table_.Backends();
  if (backends.empty()) return;

  std::atomic<std::size_t> next{0};
  auto work = [&] {
    for (std::size_t i = next++; i < backends.size(); i = next++) {
      const Backend& backend = backends[i];
      const bool ok =
          probe_ ? probe_(backend) : HttpProbe(backend, options_.path, options_.timeout);
      if (table_.ReportProbe(backend, ok, options_.unhealthy_after)) {
        if (ok) {
          spdlog::info("edge: backend {} ({}) is up again", BackendAddress(backend),
                       backend.instance_id);
        } else {
          spdlog::warn("edge: backend {} ({}) is down: {} failed health checks",
                       BackendAddress(backend), backend.instance_id, options_.unhealthy_after);
        }
      }
    }
  };
  const auto workers = std::min<std::size_t>(
      backends.size(), static_cast<std::size_t>(std::max(options_.max_parallel, 1)));
  std::vector<std::thread> threads;
  threads.reserve(workers - 1);
  for (std::size_t i = 1; i < workers; ++i) threads.emplace_back(work);
  work();
  for (auto& thread : threads) thread.join();
}

void HealthChecker::Start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] { Run(); });
}

void HealthChecker::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void HealthChecker::Run() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    lock.unlock();
    CheckOnce();
    lock.lock();
    wake_.wait_for(lock, options_.interval, [this] { return stopping_; });
  }
}

}  // namespace kindling::edge
