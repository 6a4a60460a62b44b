// The web dashboard: GET / (its page) and GET /assets/{name} (its script and
// style sheet), public like any static file, with a content security
// policy that lets the page load nothing and talk to nothing but this
// origin (no inline script, no other host).
#include "api/api_context.h"
#include "api/dashboard_assets.h"

namespace kindling::api {
namespace {

constexpr char kContentSecurityPolicy[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

const DashboardAsset* FindAsset(std::string_view name) {
  for (const DashboardAsset& asset : DashboardAssets())
    if (asset.name == name) return &asset;
  return nullptr;
}

void Serve(const DashboardAsset& asset, const httplib::Request& req, httplib::Response& res) {
  res.set_header("Content-Security-Policy", kContentSecurityPolicy);
  res.set_header("X-Content-Type-Options", "nosniff");
  res.set_header("Referrer-Policy", "no-referrer");
  res.set_header("X-Frame-Options", "DENY");
  // Revalidated on every load: a new binary's assets are never mixed with
  // an old page.
  res.set_header("Cache-Control", "no-cache");
  res.set_header("ETag", std::string(asset.etag));
  if (req.get_header_value("If-None-Match") == asset.etag) {
    res.status = 304;
    return;
  }
  res.set_content(std::string(asset.body), std::string(asset.content_type));
}

}  // namespace

void AddDashboardRoutes(ApiContext& api) {
  api.RawRoute(
      "GET", "/",
      [](const httplib::Request& req, httplib::Response& res) {
        Serve(*FindAsset("index.html"), req, res);
      },
      RouteAccess::kPublic);
  api.RawRoute(
      "GET", R"(/assets/([A-Za-z0-9_.-]+))",
      [](const httplib::Request& req, httplib::Response& res) {
        const DashboardAsset* asset = FindAsset(req.matches[1].str());
        if (asset == nullptr) {
          ApiContext::WriteError(res, 404, control::kCodeNotFound, "no such asset");
          return;
        }
        Serve(*asset, req, res);
      },
      RouteAccess::kPublic);
}

}  // namespace kindling::api
