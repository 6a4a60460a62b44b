// The web dashboard's files (web/dashboard), built into the binary by
// cmake/embed_assets.cmake; served by api/dashboard_routes.cc.
//
// Thread-safety: immutable.
#pragma once

#include <span>
#include <string_view>

namespace kindling::api {

struct DashboardAsset {
  std::string_view name;  // "index.html", "app.js", ...
  std::string_view content_type;
  std::string_view body;
  std::string_view etag;  // quoted, as in an ETag header
};

std::span<const DashboardAsset> DashboardAssets();

}  // namespace kindling::api
