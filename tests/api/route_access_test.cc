// Every route of the API, taken from the server's own route list (so a new
// route cannot be left out): 401 without a valid key, and for a member of
// another organisation, 404 on routes naming a project or operation (not
// 403, not data), no other organisation's data anywhere, nothing changed.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "api/api_server.h"
#include "api_test_fixture.h"
#include "common/ids.h"
#include "db/backups.h"
#include "db/operations.h"

namespace kindling::api {
namespace {

// `pattern` with its regex groups replaced, in order, by `ids` (the last one
// repeated when there are more groups).
std::string Concrete(const std::string& pattern, const std::vector<std::string>& ids) {
  std::string out;
  std::size_t group = 0;
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] != '(') {
      out += pattern[i];
      continue;
    }
    int depth = 0;
    for (; i < pattern.size(); ++i) {
      if (pattern[i] == '(') ++depth;
      if (pattern[i] == ')' && --depth == 0) break;
    }
    out += ids[std::min(group++, ids.size() - 1)];
  }
  return out;
}

std::string Describe(const ApiRoute& route) { return route.method + " " + route.pattern; }

class RouteAccessTest : public ApiServerTest {
 protected:
  const std::vector<ApiRoute>& Routes() { return server_->routes(); }

  // A body every POST/PUT route parses, so that a route which forgot to
  // check access would go on to act rather than fail validation first.
  static std::string BodyFor(const ApiRoute& route) {
    if (route.method != "POST" && route.method != "PUT") return "";
    return "{}";
  }
};

TEST_F(RouteAccessTest, TheRouteListIsCompleteEnoughToMeanSomething) {
  std::set<std::string> listed;
  for (const auto& route : Routes()) {
    EXPECT_TRUE(listed.insert(Describe(route)).second) << "listed twice: " << Describe(route);
  }
  EXPECT_GE(listed.size(), 35u);
  for (const char* expected :
       {"GET /api/meta", "GET /api/projects/([^/]+)/volume",
        "POST /api/projects/([^/]+)/volume/restore", "GET /api/operations/([^/]+)",
        "DELETE /api/api-keys/([^/]+)", "GET /metrics", "POST /api/projects/([^/]+)/deploy"}) {
    EXPECT_TRUE(listed.count(expected)) << expected << " is not in the route list";
  }
  // Public routes are few and deliberate: a new one must be added here.
  std::set<std::string> public_routes;
  for (const auto& route : Routes()) {
    if (route.access == RouteAccess::kPublic) public_routes.insert(Describe(route));
  }
  // The dashboard's page and assets hold no data: every call they make is
  // to the API with the user's key.
  EXPECT_EQ(public_routes, (std::set<std::string>{"GET /healthz", "GET /readyz", "GET /",
                                                  "GET /assets/([A-Za-z0-9_.-]+)"}));
}

TEST_F(RouteAccessTest, EveryRouteAnswers401WithoutAValidKey) {
  MakeServer("w1");
  const std::string project = CreateProject();
  ASSERT_EQ(Send("PUT", "/api/projects/" + project + "/volume", admin_key_, "{}").status, 200);
  int checked = 0;
  for (const auto& route : Routes()) {
    if (route.access == RouteAccess::kPublic) continue;
    SCOPED_TRACE(Describe(route));
    // Real ids where the route names a project, random ones elsewhere: the
    // key is checked before anything is looked up either way.
    const std::string path = Concrete(route.pattern, {project, NewUuidV4()});
    for (const std::string& key :
         {std::string(), std::string("garbage"), "kdl_" + std::string(64, '0')}) {
      ExpectRefused(route.method, path, key, BodyFor(route), 401, "unauthorized");
    }
    ++checked;
  }
  EXPECT_GE(checked, 35);
}

TEST_F(RouteAccessTest, AnotherOrganisationGets404OrNothingOnEveryRoute) {
  // Organisation A (the fixture's) has a project with a volume, a backup and
  // an operation.
  MakeServer("w1");
  ConfigureLocalStore();
  const std::string project = CreateProject("secret-project-a");
  Response volume = Send("PUT", "/api/projects/" + project + "/volume", admin_key_, "{}");
  ASSERT_EQ(volume.status, 200) << volume.raw;
  const std::string volume_id = volume.body["id"];
  Response queued = Send("POST", "/api/projects/" + project + "/volume/backups", admin_key_, "{}");
  ASSERT_EQ(queued.status, 202) << queued.raw;
  const std::string operation_id = queued.body["id"];
  const std::string backup_id = queued.body.value("backup_id", NewUuidV4());

  // Organisation B's owner: an admin of their own organisation, nothing else.
  const std::string outsider =
      Must([&](db::Tx& tx) -> Result<std::string> {
        KINDLING_ASSIGN_OR_RETURN(auto org, db::CreateOrganization(tx, "org-b"));
        KINDLING_ASSIGN_OR_RETURN(auto user,
                                  db::CreateUser(tx, db::NewUser{.email = "b@example.com"}));
        KINDLING_RETURN_IF_ERROR(db::SetMembership(tx, org.id, user.id, db::OrgRole::kOwner));
        KINDLING_ASSIGN_OR_RETURN(auto key, db::CreateApiKey(tx, user.id, "b"));
        return std::string(key.secret.Reveal());
      }).value_or("");
  ASSERT_FALSE(outsider.empty());

  const std::vector<std::string> secrets = {project, volume_id, operation_id, backup_id,
                                            "secret-project-a"};
  int not_found = 0;
  for (const auto& route : Routes()) {
    SCOPED_TRACE(Describe(route));
    const bool names_project = route.pattern.starts_with("/api/projects/(");
    const bool names_operation = route.pattern.starts_with("/api/operations/(");
    // The route's first id is A's project or operation; later ones A's
    // backup (the most sensitive of the rest).
    const std::string first = names_operation ? operation_id : project;
    const std::string path = Concrete(route.pattern, {first, backup_id});
    if (names_project || names_operation) {
      ExpectRefused(route.method, path, outsider, BodyFor(route), 404, "not_found");
      ++not_found;
      continue;
    }
    // Routes not about one project (lists, platform and account routes):
    // refused, or answered without anything of A's. A write may act on B's
    // own things (an API key, a project of B's), never on A's.
    const std::string before = State();
    Response r = Send(route.method, path, outsider, BodyFor(route));
    for (const auto& secret : secrets) {
      // An id the caller sent in the path may be echoed ("... does not exist").
      if (path.find(secret) != std::string::npos) continue;
      EXPECT_EQ(r.raw.find(secret), std::string::npos)
          << "the answer (" << r.status << ") shows organisation A's " << secret << ": " << r.raw;
    }
    if (r.status >= 400) {
      EXPECT_EQ(State(), before) << "a refused request changed something";
    }
  }
  EXPECT_GE(not_found, 15);
  // And A's things are as they were.
  Response mine = Send("GET", "/api/projects/" + project + "/volume", admin_key_);
  ASSERT_EQ(mine.status, 200) << mine.raw;
  EXPECT_EQ(mine.body["id"], volume_id);
}

}  // namespace
}  // namespace kindling::api
