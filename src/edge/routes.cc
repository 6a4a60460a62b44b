#include "edge/routes.h"

#include <algorithm>
#include <cctype>
#include <set>
#include <utility>

namespace kindling::edge {

std::string BackendKey(const Backend& backend) {
  return backend.instance_id + "@" + BackendAddress(backend);
}

std::string BackendAddress(const Backend& backend) {
  if (backend.host.find(':') != std::string::npos) {
    return "[" + backend.host + "]:" + std::to_string(backend.port);
  }
  return backend.host + ":" + std::to_string(backend.port);
}

std::string NormalizeHostname(std::string_view host) {
  while (!host.empty() && std::isspace(static_cast<unsigned char>(host.front()))) {
    host.remove_prefix(1);
  }
  while (!host.empty() && std::isspace(static_cast<unsigned char>(host.back()))) {
    host.remove_suffix(1);
  }
  if (host.starts_with('[')) {
    // An IPv6 literal keeps its brackets; only what follows "]" is a port.
    if (const auto close = host.find(']'); close != std::string_view::npos) {
      host = host.substr(0, close + 1);
    }
  } else if (const auto colon = host.rfind(':'); colon != std::string_view::npos) {
    host = host.substr(0, colon);
  }
  if (host.ends_with('.')) host.remove_suffix(1);
  std::string out(host);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

void RouteTable::Replace(std::vector<Route> routes) {
  std::unordered_map<std::string, Entry> next_routes;
  std::map<std::string, Health> next_health;
  for (auto& route : routes) {
    std::string hostname = NormalizeHostname(route.hostname);
    if (hostname.empty()) continue;
    Entry& entry = next_routes[hostname];
    for (auto& backend : route.backends) {
      std::string key = BackendKey(backend);
      if (std::ranges::find(entry.backends, backend) != entry.backends.end()) continue;
      entry.backends.push_back(std::move(backend));
      next_health.try_emplace(std::move(key));
    }
  }

  std::lock_guard lock(mu_);
  for (auto& [key, health] : next_health) {
    if (auto old = health_.find(key); old != health_.end()) health = old->second;
  }
  for (auto& [hostname, entry] : next_routes) {
    if (auto old = routes_.find(hostname); old != routes_.end() && !entry.backends.empty()) {
      entry.next = old->second.next % entry.backends.size();
    }
  }
  routes_ = std::move(next_routes);
  health_ = std::move(next_health);
}

std::expected<Backend, PickError> RouteTable::Pick(std::string_view host, const Backend* avoid) {
  const std::string hostname = NormalizeHostname(host);
  std::lock_guard lock(mu_);
  auto it = routes_.find(hostname);
  if (it == routes_.end()) return std::unexpected(PickError::kUnknownHost);
  Entry& entry = it->second;
  const std::size_t n = entry.backends.size();
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t index = (entry.next + i) % n;
    const Backend& candidate = entry.backends[index];
    if (avoid != nullptr && candidate == *avoid) continue;
    auto health = health_.find(BackendKey(candidate));
    if (health == health_.end() || !health->second.healthy) continue;
    entry.next = (index + 1) % n;
    return candidate;
  }
  return std::unexpected(PickError::kNoHealthyBackend);
}

bool RouteTable::HasHealthyBackend(std::string_view host) const {
  const std::string hostname = NormalizeHostname(host);
  std::lock_guard lock(mu_);
  auto it = routes_.find(hostname);
  if (it == routes_.end()) return false;
  return std::ranges::any_of(it->second.backends, [this](const Backend& backend) {
    auto health = health_.find(BackendKey(backend));
    return health != health_.end() && health->second.healthy;
  });
}

std::vector<Backend> RouteTable::Backends() const {
  std::lock_guard lock(mu_);
  std::vector<Backend> out;
  std::set<std::string> seen;
  for (const auto& [hostname, entry] : routes_) {
    for (const auto& backend : entry.backends) {
      if (seen.insert(BackendKey(backend)).second) out.push_back(backend);
    }
  }
  return out;
}

bool RouteTable::ReportProbe(const Backend& backend, bool success, int unhealthy_after) {
  std::lock_guard lock(mu_);
  auto it = health_.find(BackendKey(backend));
  if (it == health_.end()) return false;
  Health& health = it->second;
  const bool was_healthy = health.healthy;
  if (success) {
    health.consecutive_failures = 0;
    health.healthy = true;
  } else {
    ++health.consecutive_failures;
    if (health.consecutive_failures >= std::max(unhealthy_after, 1)) health.healthy = false;
  }
  return health.healthy != was_healthy;
}

bool RouteTable::MarkUnhealthy(const Backend& backend) {
  std::lock_guard lock(mu_);
  auto it = health_.find(BackendKey(backend));
  if (it == health_.end() || !it->second.healthy) return false;
  it->second.healthy = false;
  return true;
}

bool RouteTable::IsHealthy(const Backend& backend) const {
  std::lock_guard lock(mu_);
  auto it = health_.find(BackendKey(backend));
  return it != health_.end() && it->second.healthy;
}

std::vector<RouteSummary> RouteTable::Summaries() const {
  std::lock_guard lock(mu_);
  std::vector<RouteSummary> out;
  out.reserve(routes_.size());
  for (const auto& [hostname, entry] : routes_) {
    RouteSummary summary{.hostname = hostname, .backends = entry.backends.size()};
    for (const auto& backend : entry.backends) {
      auto health = health_.find(BackendKey(backend));
      if (health != health_.end() && health->second.healthy) ++summary.healthy;
    }
    out.push_back(std::move(summary));
  }
  std::ranges::sort(out, {}, &RouteSummary::hostname);
  return out;
}

std::size_t RouteTable::size() const {
  std::lock_guard lock(mu_);
  return routes_.size();
}

}  // namespace kindling::edge
