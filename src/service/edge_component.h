// The edge component of `kindling serve --components edge`: the reverse
// proxy (edge::EdgeService) with its routes read from the database
// (edge::DatabaseRouteSource), reloaded whenever a workload changes
// (LISTEN kindling_workloads, reopened after a lost connection) and every
// 30 s besides.
//
// Thread-safety: Start/Stop from one owner thread.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "common/result.h"
#include "db/database.h"
#include "edge/edge_service.h"
#include "service/serve.h"

namespace kindling::service {

class EdgeComponent : public Component {
 public:
  // REQUIRES: `db` outlives the component; `dsn` is the database's (for the
  // listener's own connection).
  EdgeComponent(db::Database& db, std::string dsn, const ListenAddress& listen);
  ~EdgeComponent() override;

  // kIo when the address cannot be bound.
  [[nodiscard]] Status Start() override;
  void Stop() override;
  int port() const { return service_.port(); }

 private:
  void ListenLoop();

  const std::string dsn_;
  edge::EdgeService service_;
  std::atomic<bool> stopping_{false};
  std::thread listener_;
};

}  // namespace kindling::service
