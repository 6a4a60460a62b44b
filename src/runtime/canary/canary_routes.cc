#include "runtime/canary/canary_routes.h"

#include <nlohmann/json.hpp>

namespace kindling::canary {
namespace {

using nlohmann::json;

HttpResponse Json(int status, const json& body) { return {.status = status, .body = body.dump()}; }

HttpResponse Failure(const Error& error) { return Json(500, {{"error", error.message()}}); }

}  // namespace

HttpResponse HandleCanaryRequest(RecordStore& store, const HttpRequest& request) {
  std::string_view path = request.target;
  path = path.substr(0, path.find('?'));
  if (path == "/healthz") {
    if (request.method != "GET" && request.method != "HEAD") return Json(405, {{"error", "GET"}});
    return Json(200, {{"status", "ok"}});
  }
  if (path == "/records") {
    if (request.method != "POST") return Json(405, {{"error", "POST"}});
    auto id = store.Add(request.body);
    if (!id) return Failure(id.error());
    return Json(201, {{"id", *id}});
  }
  if (path == "/records/verify") {
    if (request.method != "GET") return Json(405, {{"error", "GET"}});
    auto report = store.Verify();
    if (!report) return Failure(report.error());
    return {.status = 200, .body = VerifyReportJson(*report)};
  }
  return Json(404, {{"error", "no such route"}});
}

}  // namespace kindling::canary
