// DatabaseRouteSource: the edge's routes from the control plane's database
// (db::ListRoutes): a route per current deployment, named
// "<service>-<project slug>.<service_base_domain>" (db::ServiceHostname),
// with its running instance's address as the backend. A deployment that
// should not run, or whose instance is not up, is a route without backends
// (the proxy answers 503 for it, not 404).
//
// Thread-safety: Load() from one thread at a time (RouteSource's contract).
#pragma once

#include <string>
#include <vector>

#include "db/database.h"
#include "edge/routes.h"

namespace kindling::edge {

class DatabaseRouteSource : public RouteSource {
 public:
  // REQUIRES: `db` outlives the source.
  explicit DatabaseRouteSource(db::Database& db) : db_(db) {}
  [[nodiscard]] Result<std::vector<Route>> Load() override;

 private:
  db::Database& db_;
};

// "host:port" (host may be a bracketed IPv6 literal) as a backend;
// kInvalidArgument for anything else.
[[nodiscard]] Result<Backend> ParseBackendAddress(const std::string& instance_id,
                                                  const std::string& address);

}  // namespace kindling::edge
