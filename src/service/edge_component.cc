#include "service/edge_component.h"

#include <spdlog/spdlog.h>

#include "db/notifications.h"
#include "db/workloads.h"
#include "edge/database_routes.h"

namespace kindling::service {
namespace {

edge::EdgeServiceOptions Options(const ListenAddress& listen) {
  edge::EdgeServiceOptions options;
  options.proxy.listen_address = listen.host;
  options.proxy.port = listen.port;
  return options;
}

}  // namespace

EdgeComponent::EdgeComponent(db::Database& db, std::string dsn, const ListenAddress& listen)
    : dsn_(std::move(dsn)),
      service_(std::make_unique<edge::DatabaseRouteSource>(db), Options(listen)) {}

EdgeComponent::~EdgeComponent() { Stop(); }

Status EdgeComponent::Start() {
  KINDLING_RETURN_IF_ERROR(service_.Start());
  stopping_ = false;
  listener_ = std::thread([this] { ListenLoop(); });
  spdlog::info("edge: listening on port {}", service_.port());
  return OkStatus();
}

void EdgeComponent::Stop() {
  stopping_ = true;
  if (listener_.joinable()) listener_.join();
  service_.Stop();
}

void EdgeComponent::ListenLoop() {
  std::unique_ptr<db::Listener> listener;
  bool reported = false;
  while (!stopping_) {
    if (!listener) {
      auto opened = db::Listener::Open(dsn_, {db::kWorkloadsChannel});
      if (!opened) {
        if (!reported)
          spdlog::warn("edge: cannot listen for route changes: {}", opened.error().message());
        reported = true;
        for (int i = 0; i < 10 && !stopping_; ++i)
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
        continue;
      }
      listener = std::move(*opened);
      reported = false;
      service_.Reload();  // whatever changed while nobody listened
    }
    auto heard = listener->Wait(std::chrono::milliseconds(500));
    if (!heard) {
      listener.reset();
      continue;
    }
    if (!heard->empty()) service_.Reload();
  }
}

}  // namespace kindling::service
