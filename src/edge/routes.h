// Routes of the edge: which running instances answer for a hostname.
//
// A RouteSource produces the whole set of routes (the database-backed one reads
// the running deployments); a RouteTable holds the current set for the proxy,
// picks backends round-robin among the healthy ones and keeps each backend's
// health, which the health checker and the proxy report.
#pragma once

#include <cstddef>
#include <cstdint>
#include <expected>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/result.h"

namespace kindling::edge {

// One running instance of a service, listening on host:port.
struct Backend {
  std::string instance_id{};
  std::string host{};
  int port = 0;

  bool operator==(const Backend&) const = default;
};

// "instance_id@host:port": identifies a backend's health across Replace().
std::string BackendKey(const Backend& backend);
// "host:port", for logs and pages.
std::string BackendAddress(const Backend& backend);

struct Route {
  std::string hostname{};  // compared case-insensitively; see NormalizeHostname
  std::vector<Backend> backends{};
};

// Lower-cases a hostname or Host header value and drops a trailing ":port"
// (also after an IPv6 literal "[::1]:80"), a trailing dot and surrounding blanks.
std::string NormalizeHostname(std::string_view host);

// Where routes come from. Load() returns the complete current set (not a
// delta); an error leaves the caller's previous set in force.
// Thread-safety: Load() is called from one thread at a time.
class RouteSource {
 public:
  virtual ~RouteSource() = default;
  [[nodiscard]] virtual Result<std::vector<Route>> Load() = 0;
};

// Why Pick() found no backend.
enum class PickError : std::uint8_t {
  kUnknownHost,       // no route has this hostname (404)
  kNoHealthyBackend,  // the route exists but none of its backends is up (503)
};

// One route's state, for metrics and status pages.
struct RouteSummary {
  std::string hostname{};
  std::size_t backends = 0;
  std::size_t healthy = 0;
};

// The current routes, replaced whole while the proxy serves.
//
// Health is kept per backend (BackendKey), survives Replace() for backends that
// stay and is forgotten for those that go; a new backend starts healthy, so a
// deployment takes traffic as soon as its route appears. A backend becomes
// unhealthy after `unhealthy_after` consecutive failed probes, or at once when
// MarkUnhealthy() is called (the proxy could not connect); one successful
// probe makes it healthy again.
//
// Thread-safe: every method may be called from any thread at any time.
class RouteTable {
 public:
  // Installs `routes` in place of the current set. Routes with the same
  // (normalised) hostname are merged; duplicate backends of a route are dropped;
  // routes with an empty hostname are ignored.
  void Replace(std::vector<Route> routes);

  // The next healthy backend of `host` (a Host header value: case and a
  // ":port" suffix do not matter), round-robin. `avoid`, when given, is never
  // picked: a retry wants another backend, not the one that just failed.
  [[nodiscard]] std::expected<Backend, PickError> Pick(std::string_view host,
                                                       const Backend* avoid = nullptr);

  // Whether `host` has a route with a healthy backend (Pick() would succeed).
  bool HasHealthyBackend(std::string_view host) const;

  // Every distinct backend of every route (what the health checker probes).
  std::vector<Backend> Backends() const;

  // Records a health probe. Returns true when the backend's state changed
  // (so the caller can log the transition once). Unknown backends are ignored
  // (the route went away while the probe ran).
  bool ReportProbe(const Backend& backend, bool success, int unhealthy_after);

  // Marks a backend unhealthy at once. Returns true when it was healthy.
  bool MarkUnhealthy(const Backend& backend);

  // Whether the backend is currently known and healthy.
  bool IsHealthy(const Backend& backend) const;

  // One summary per route, sorted by hostname.
  std::vector<RouteSummary> Summaries() const;

  std::size_t size() const;

 private:
  struct Health {
    bool healthy = true;
    int consecutive_failures = 0;
  };
  struct Entry {
    std::vector<Backend> backends;
    std::size_t next = 0;  // round-robin position
  };

  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry> routes_;  // by normalised hostname
  std::map<std::string, Health> health_;           // by BackendKey
};

}  // namespace kindling::edge
