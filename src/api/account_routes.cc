// Account routes: users (platform admins), organisations and their members
// (platform admins, and each organisation's owners and admins), API keys
// (one's own; anyone's for platform admins). Who may do what is
// control/account_service.h's.
#include <algorithm>
#include <string>

#include "api/api_context.h"
#include "api/json_views.h"
#include "control/account_service.h"

namespace kindling::api {
namespace {

using json = nlohmann::json;
using control::ControlResult;

// An email address: 3 to 254 bytes, one "@" with text on both sides, no
// spaces or control characters. Absent or null: nullopt.
ControlResult<std::optional<std::string>> Email(const Body& body, const std::string& name) {
  auto value = body.String(name);
  if (!value || !*value) return value;
  const std::string& email = **value;
  const auto at = email.find('@');
  const bool shape = email.size() >= 3 && email.size() <= 254 && at != std::string::npos &&
                     at > 0 && at + 1 < email.size() &&
                     email.find('@', at + 1) == std::string::npos;
  const bool clean = std::none_of(email.begin(), email.end(), [](char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return c <= 0x20 || c == 0x7F;
  });
  if (!shape || !clean) return Invalid("field \"" + name + "\" must be an email address");
  return value;
}

ControlResult<db::OrgRole> Role(const Body& body) {
  API_ASSIGN_OR_RETURN(auto name, body.String("role"));
  if (!name) return Invalid("role is required: owner, admin or member");
  const auto role = db::ParseEnum<db::OrgRole>(*name);
  if (!role) return Invalid("role must be owner, admin or member");
  return *role;
}

// The user a key route is about: ?user_id= (platform admins), else the
// caller.
ControlResult<std::string> KeyOwner(const Call& call) {
  for (const auto& [name, value] : call.req.params) {
    if (name != "user_id") return Invalid("unknown query parameter \"" + name + "\"");
    if (!IsUuid(value)) return Invalid("user_id is not a UUID");
    return value;
  }
  return call.principal.user.id;
}

void AddUserRoutes(ApiContext& api) {
  // Who the caller is: their user, the key they called with (never its
  // secret) and their organisations with their role in each (what a client,
  // the dashboard say, shows and hides by).
  api.Route("GET", "/api/me", [](Call& call) -> ControlResult<Reply> {
    if (!call.req.params.empty())
      return Invalid("unknown query parameter \"" + call.req.params.begin()->first + "\"");
    json memberships = json::array();
    for (const db::Membership& m : call.principal.memberships) {
      memberships.push_back(json{{"organization_id", m.organization_id},
                                 {"organization_name", m.organization_name},
                                 {"role", db::Name(m.role)}});
    }
    return Reply{200, json{{"user", UserJson(call.principal.user)},
                           {"api_key", ApiKeyJson(call.principal.api_key)},
                           {"memberships", std::move(memberships)}}};
  });
  api.Route("POST", "/api/users", [&api](Call& call) -> ControlResult<Reply> {
    API_ASSIGN_OR_RETURN(auto body, Body::Parse(call.req, {"email", "name", "is_platform_admin"}));
    API_ASSIGN_OR_RETURN(auto email, Email(body, "email"));
    if (!email) return Invalid("email is required");
    API_ASSIGN_OR_RETURN(auto name, body.Name("name"));
    API_ASSIGN_OR_RETURN(auto admin, body.Bool("is_platform_admin"));
    API_ASSIGN_OR_RETURN(
        auto user, control::CreateUser(api.db, call.actor, call.principal,
                                       db::NewUser{.email = *email,
                                                   .name = name.value_or(*email),
                                                   .is_platform_admin = admin.value_or(false)}));
    return Reply{201, UserJson(user)};
  });
  api.Route("GET", "/api/users", [&api](Call& call) -> ControlResult<Reply> {
    API_ASSIGN_OR_RETURN(auto users, control::ListUsers(api.db, call.principal));
    json out = json::array();
    for (const auto& u : users) out.push_back(UserJson(u));
    return Reply{200, out};
  });
}

void AddOrganizationRoutes(ApiContext& api) {
  api.Route("POST", "/api/organizations", [&api](Call& call) -> ControlResult<Reply> {
    API_ASSIGN_OR_RETURN(auto body, Body::Parse(call.req, {"name", "owner_user_id"}));
    API_ASSIGN_OR_RETURN(auto name, body.Name("name"));
    if (!name) return Invalid("name is required");
    API_ASSIGN_OR_RETURN(auto owner, body.Uuid("owner_user_id"));
    API_ASSIGN_OR_RETURN(
        auto org, control::CreateOrganization(api.db, call.actor, call.principal, *name, owner));
    // The owner's cached memberships are out of date.
    api.auth_cache.ForgetUser(owner.value_or(call.principal.user.id));
    return Reply{201, OrganizationJson(org)};
  });
  api.Route("GET", "/api/organizations", [&api](Call& call) -> ControlResult<Reply> {
    API_ASSIGN_OR_RETURN(auto orgs, control::ListOrganizations(api.db, call.principal));
    json out = json::array();
    for (const auto& o : orgs) out.push_back(OrganizationJson(o));
    return Reply{200, out};
  });
  const std::string members = R"(/api/organizations/([^/]+)/members)";
  api.Route("GET", members, [&api](Call& call) -> ControlResult<Reply> {
    API_ASSIGN_OR_RETURN(std::string org, call.PathId(1, "organisation"));
    API_ASSIGN_OR_RETURN(auto list, control::ListMembers(api.db, call.principal, org));
    json out = json::array();
    for (const auto& m : list) out.push_back(MemberJson(m));
    return Reply{200, out};
  });
  api.Route("POST", members, [&api](Call& call) -> ControlResult<Reply> {
    API_ASSIGN_OR_RETURN(std::string org, call.PathId(1, "organisation"));
    API_ASSIGN_OR_RETURN(auto body, Body::Parse(call.req, {"user_id", "email", "role"}));
    control::MemberRef who;
    API_ASSIGN_OR_RETURN(who.user_id, body.Uuid("user_id"));
    API_ASSIGN_OR_RETURN(who.email, Email(body, "email"));
    if (who.user_id.has_value() == who.email.has_value())
      return Invalid("give one of user_id and email");
    API_ASSIGN_OR_RETURN(const db::OrgRole role, Role(body));
    API_ASSIGN_OR_RETURN(auto member,
                         control::SetMember(api.db, call.actor, call.principal, org, who, role));
    api.auth_cache.ForgetUser(member.membership.user_id);
    return Reply{200, MemberJson(member)};
  });
  api.Route("DELETE", members + "/([^/]+)", [&api](Call& call) -> ControlResult<Reply> {
    API_ASSIGN_OR_RETURN(std::string org, call.PathId(1, "organisation"));
    API_ASSIGN_OR_RETURN(std::string user, call.PathId(2, "user"));
    API_RETURN_IF_ERROR(Body::Parse(call.req, {}));
    API_RETURN_IF_ERROR(control::RemoveMember(api.db, call.actor, call.principal, org, user));
    api.auth_cache.ForgetUser(user);
    return Reply{204, json()};
  });
}

void AddApiKeyRoutes(ApiContext& api) {
  api.Route("POST", "/api/api-keys", [&api](Call& call) -> ControlResult<Reply> {
    API_ASSIGN_OR_RETURN(auto body, Body::Parse(call.req, {"name", "user_id"}));
    API_ASSIGN_OR_RETURN(auto name, body.Name("name"));
    if (!name) return Invalid("name is required");
    API_ASSIGN_OR_RETURN(auto user, body.Uuid("user_id"));
    API_ASSIGN_OR_RETURN(auto created,
                         control::CreateApiKey(api.db, call.actor, call.principal,
                                               user.value_or(call.principal.user.id), *name));
    json out = ApiKeyJson(created.key);
    out["secret"] = created.secret.Reveal();  // shown once
    return Reply{201, out};
  });
  api.Route("GET", "/api/api-keys", [&api](Call& call) -> ControlResult<Reply> {
    API_ASSIGN_OR_RETURN(std::string user, KeyOwner(call));
    API_ASSIGN_OR_RETURN(auto keys, control::ListApiKeys(api.db, call.principal, user));
    json out = json::array();
    for (const auto& k : keys) out.push_back(ApiKeyJson(k));
    return Reply{200, out};
  });
  api.Route("DELETE", R"(/api/api-keys/([^/]+))", [&api](Call& call) -> ControlResult<Reply> {
    API_ASSIGN_OR_RETURN(std::string id, call.PathId(1, "API key"));
    API_RETURN_IF_ERROR(control::RevokeApiKey(api.db, call.actor, call.principal, id));
    api.auth_cache.Forget(id);
    return Reply{204, json()};
  });
}

}  // namespace

void AddAccountRoutes(ApiContext& api) {
  AddUserRoutes(api);
  AddOrganizationRoutes(api);
  AddApiKeyRoutes(api);
}

}  // namespace kindling::api
