#include "edge/database_routes.h"

#include <charconv>
#include <map>

#include "db/settings.h"
#include "db/workloads.h"

namespace kindling::edge {

Result<Backend> ParseBackendAddress(const std::string& instance_id, const std::string& address) {
  const auto colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size())
    return InvalidArgument("instance " + instance_id + ": address '" + address +
                           "' is not host:port");
  std::string host = address.substr(0, colon);
  if (host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  int port = 0;
  const char* first = address.data() + colon + 1;
  const char* last = address.data() + address.size();
  const auto [end, ec] = std::from_chars(first, last, port);
  if (ec != std::errc() || end != last || port < 1 || port > 65535)
    return InvalidArgument("instance " + instance_id + ": address '" + address +
                           "' has no valid port");
  return Backend{.instance_id = instance_id, .host = std::move(host), .port = port};
}

Result<std::vector<Route>> DatabaseRouteSource::Load() {
  struct Loaded {
    std::vector<db::RouteRow> rows;
    std::string domain;
  };
  KINDLING_ASSIGN_OR_RETURN(Loaded loaded,
                            db_.Transact(
                                [](db::Tx& tx) -> Result<Loaded> {
                                  KINDLING_ASSIGN_OR_RETURN(auto rows, db::ListRoutes(tx));
                                  KINDLING_ASSIGN_OR_RETURN(
                                      auto domain, db::GetSetting(tx, "service_base_domain"));
                                  return Loaded{std::move(rows), domain.value_or("")};
                                },
                                db::TxOptions{.read_only = true}));
  std::map<std::string, Route> by_hostname;
  for (const db::RouteRow& row : loaded.rows) {
    const std::string hostname =
        NormalizeHostname(db::ServiceHostname(row.service, row.project_name, loaded.domain));
    Route& route = by_hostname[hostname];
    route.hostname = hostname;
    if (!row.instance_id || !row.address) continue;
    // One bad address must not take the other routes down: it is left out.
    auto backend = ParseBackendAddress(*row.instance_id, *row.address);
    if (backend) route.backends.push_back(std::move(*backend));
  }
  std::vector<Route> routes;
  for (auto& [hostname, route] : by_hostname) routes.push_back(std::move(route));
  return routes;
}

}  // namespace kindling::edge
