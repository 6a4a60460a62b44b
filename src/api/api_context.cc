#include "api/api_context.h"

namespace kindling::api {

ApiContext::ApiContext(db::Database& database, const crypto::Key& key, ApiServerOptions opts)
    : db(database),
      master_key(key),
      options(std::move(opts)),
      volumes(database, key),
      deployments(database),
      auth_cache(options.auth_cache_ttl, options.auth_cache_entries, options.clock) {}

void ApiContext::WriteError(httplib::Response& res, int status, std::string_view code,
                            std::string_view message) {
  res.status = status;
  res.set_content(json{{"error", message}, {"code", code}}.dump(), "application/json");
}

ControlResult<db::Principal> ApiContext::Authenticate(const httplib::Request& req) {
  const std::string header = req.get_header_value("Authorization");
  constexpr std::string_view kBearer = "Bearer ";
  if (header.empty()) {
    return Refuse(401, control::kCodeUnauthorized, "missing Authorization: Bearer <api key>");
  }
  if (!header.starts_with(kBearer) || header.size() == kBearer.size()) {
    return Refuse(401, control::kCodeUnauthorized,
                  "the Authorization header must be \"Bearer <api key>\"");
  }
  const std::string secret = header.substr(kBearer.size());
  if (auto cached = auth_cache.Find(secret)) return std::move(*cached);
  const std::uint64_t generation = auth_cache.generation();
  auto principal = db.Transact([&](db::Tx& tx) { return db::AuthenticateApiKey(tx, secret); });
  if (!principal) return std::unexpected(control::FromError(principal.error()));
  if (!*principal) {
    return Refuse(401, control::kCodeUnauthorized, "invalid or revoked API key");
  }
  auth_cache.Remember(secret, **principal, generation);
  return std::move(**principal);
}

httplib::Server::Handler ApiContext::Wrap(Handler handler, bool authenticate) {
  return [this, handler = std::move(handler), authenticate](const httplib::Request& req,
                                                            httplib::Response& res) {
    try {
      Call call{.req = req, .principal = {}, .actor = {}};
      if (authenticate) {
        auto principal = Authenticate(req);
        if (!principal) {
          WriteError(res, principal.error().http_status, principal.error().code,
                     principal.error().message);
          return;
        }
        call.principal = std::move(*principal);
        call.actor.user_id = call.principal.user.id;
      }
      call.actor.request_ip = req.remote_addr;
      if (req.has_header("User-Agent")) call.actor.user_agent = req.get_header_value("User-Agent");
      auto reply = handler(call);
      if (!reply) {
        WriteError(res, reply.error().http_status, reply.error().code, reply.error().message);
        return;
      }
      res.status = reply->status;
      if (reply->status != 204) res.set_content(reply->body.dump(), "application/json");
    } catch (const std::exception&) {
      // Never echo the exception: it may quote the request.
      WriteError(res, 500, control::kCodeInternal, "internal error");
    }
  };
}

ControlResult<db::Project> ApiContext::AccessProject(const Call& call, std::size_t index,
                                                     bool need_admin) {
  API_ASSIGN_OR_RETURN(std::string project_id, call.PathId(index, "project"));
  auto project = db.Transact([&](db::Tx& tx) { return db::GetProject(tx, project_id); });
  if (!project) {
    if (project.error().is_not_found()) {
      return Refuse(404, control::kCodeNotFound, "project " + project_id + " does not exist");
    }
    return std::unexpected(control::FromError(project.error()));
  }
  if (call.IsAdmin()) return std::move(*project);
  auto role = call.principal.RoleIn(project->organization_id);
  if (!role) {
    return Refuse(404, control::kCodeNotFound, "project " + project_id + " does not exist");
  }
  if (need_admin && *role == db::OrgRole::kMember) {
    return Refuse(403, control::kCodeForbidden,
                  "this action needs the owner or admin role in the project's organisation");
  }
  return std::move(*project);
}

}  // namespace kindling::api
