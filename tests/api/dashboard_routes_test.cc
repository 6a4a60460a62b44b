// The web dashboard's files (GET /, GET /assets/{name}): served without a
// key, with a policy that keeps the page on this origin, revalidated by
// ETag; and GET /api/me, what the dashboard shows and hides by.
#include <gtest/gtest.h>

#include <string>

#include "api/dashboard_assets.h"
#include "api_test_fixture.h"

namespace kindling::api {
namespace {

class DashboardRoutesTest : public ApiServerTest {};

TEST_F(DashboardRoutesTest, ThePageAndItsAssetsAreServedWithAStrictPolicy) {
  auto page = client_->Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_EQ(page->get_header_value("Content-Type"), "text/html; charset=utf-8");
  EXPECT_NE(page->body.find("/assets/app.js"), std::string::npos);
  const std::string policy = page->get_header_value("Content-Security-Policy");
  EXPECT_NE(policy.find("default-src 'none'"), std::string::npos) << policy;
  EXPECT_NE(policy.find("script-src 'self'"), std::string::npos) << policy;
  EXPECT_NE(policy.find("connect-src 'self'"), std::string::npos) << policy;
  EXPECT_EQ(policy.find("unsafe"), std::string::npos) << policy;
  EXPECT_EQ(page->get_header_value("X-Content-Type-Options"), "nosniff");
  EXPECT_EQ(page->get_header_value("X-Frame-Options"), "DENY");

  for (const std::string name : {"app.js", "app.css"}) {
    auto asset = client_->Get("/assets/" + name);
    ASSERT_TRUE(asset);
    EXPECT_EQ(asset->status, 200) << name;
    EXPECT_FALSE(asset->body.empty()) << name;
    EXPECT_EQ(asset->get_header_value("Content-Type"),
              name.ends_with(".js") ? "text/javascript; charset=utf-8" : "text/css; charset=utf-8");
    // The built-in copy is the file's bytes.
    bool found = false;
    for (const DashboardAsset& a : DashboardAssets()) {
      if (a.name == name) {
        found = true;
        EXPECT_EQ(asset->body, a.body);
      }
    }
    EXPECT_TRUE(found) << name;
    // Revalidation: the same ETag answers 304 without a body.
    const std::string etag = asset->get_header_value("ETag");
    ASSERT_FALSE(etag.empty());
    auto again = client_->Get("/assets/" + name, httplib::Headers{{"If-None-Match", etag}});
    ASSERT_TRUE(again);
    EXPECT_EQ(again->status, 304);
    EXPECT_TRUE(again->body.empty());
  }
  for (const std::string bad : {"/assets/nope.js", "/assets/..%2Fapi", "/assets/index.html.bak"}) {
    auto missing = client_->Get(bad);
    ASSERT_TRUE(missing);
    EXPECT_EQ(missing->status, 404) << bad;
  }
  // The page is no way around the API's keys.
  Response data = Send("GET", "/api/projects", "");
  EXPECT_EQ(data.status, 401);
}

TEST_F(DashboardRoutesTest, MeTellsWhoTheCallerIsAndTheirRoles) {
  Response admin = Send("GET", "/api/me", admin_key_);
  ASSERT_EQ(admin.status, 200) << admin.raw;
  EXPECT_EQ(admin.body["user"]["email"], "admin@example.com");
  EXPECT_TRUE(admin.body["user"]["is_platform_admin"].get<bool>());
  ASSERT_EQ(admin.body["memberships"].size(), 1u);
  EXPECT_EQ(admin.body["memberships"][0]["organization_id"], org_);
  EXPECT_EQ(admin.body["memberships"][0]["role"], "owner");
  EXPECT_EQ(admin.body["api_key"]["key_prefix"], admin_key_.substr(0, 12));
  EXPECT_EQ(admin.raw.find(admin_key_), std::string::npos) << "never the key itself";

  Response member = Send("GET", "/api/me", member_key_);
  ASSERT_EQ(member.status, 200) << member.raw;
  EXPECT_FALSE(member.body["user"]["is_platform_admin"].get<bool>());
  EXPECT_EQ(member.body["memberships"][0]["role"], "member");
  ExpectRefused("GET", "/api/me?x=1", member_key_, "", 400, "validation_error");
  ExpectRefused("GET", "/api/me", "", "", 401, "unauthorized");
}

}  // namespace
}  // namespace kindling::api
