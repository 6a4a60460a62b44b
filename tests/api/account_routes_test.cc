// Users, organisations, memberships and API keys through the API: who may
// do what, every change audited, refusals changing nothing.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "api_test_fixture.h"

namespace kindling::api {
namespace {

using json = nlohmann::json;

class AccountRoutesTest : public ApiServerTest {
 protected:
  int Audited(const std::string& action) {
    return Sql("SELECT count(*) FROM cluster_audit_events WHERE action = '" + action + "'")[0][0]
        .as<int>();
  }
  // A new user (platform admin's call) and a first key for them.
  std::pair<std::string, std::string> NewUserWithKey(const std::string& email) {
    Response user = Send("POST", "/api/users", admin_key_, json{{"email", email}}.dump());
    EXPECT_EQ(user.status, 201) << user.raw;
    const std::string id = user.body.value("id", "");
    Response key =
        Send("POST", "/api/api-keys", admin_key_, json{{"name", "first"}, {"user_id", id}}.dump());
    EXPECT_EQ(key.status, 201) << key.raw;
    EXPECT_EQ(key.body.value("user_id", ""), id);
    return {id, key.body.value("secret", "")};
  }
};

TEST_F(AccountRoutesTest, PlatformAdminsCreateUsersAndTheirFirstKeys) {
  ExpectRefused("POST", "/api/users", org_admin_key_, R"({"email": "x@example.com"})", 403,
                "forbidden");
  ExpectRefused("GET", "/api/users", member_key_, "", 403, "forbidden");
  for (const char* bad : {"no-at", "a@b@c", "@example.com", "sp ace@example.com", ""}) {
    ExpectRefused("POST", "/api/users", admin_key_, json{{"email", bad}}.dump(), 400,
                  "validation_error");
  }
  ExpectRefused("POST", "/api/users", admin_key_, R"({"email": "MEMBER@example.com"})", 400,
                "validation_error");  // taken, whatever the case

  const auto [dana, dana_key] = NewUserWithKey("dana@example.com");
  Response users = Send("GET", "/api/users", admin_key_);
  ASSERT_EQ(users.status, 200);
  EXPECT_EQ(users.body.size(), 4u) << users.raw;
  // Dana's key works; she is in no organisation yet.
  Response orgs = Send("GET", "/api/organizations", dana_key);
  ASSERT_EQ(orgs.status, 200) << orgs.raw;
  EXPECT_TRUE(orgs.body.empty()) << orgs.raw;
  // Only platform admins make keys for someone else.
  ExpectRefused("POST", "/api/api-keys", org_admin_key_,
                json{{"name", "k"}, {"user_id", dana}}.dump(), 403, "forbidden");
  ExpectRefused("GET", "/api/api-keys?user_id=" + dana, org_admin_key_, "", 403, "forbidden");
  Response keys = Send("GET", "/api/api-keys?user_id=" + dana, admin_key_);
  ASSERT_EQ(keys.status, 200) << keys.raw;
  ASSERT_EQ(keys.body.size(), 1u);
  EXPECT_FALSE(keys.body[0].contains("secret"));
  EXPECT_EQ(Audited("user.create"), 1);
  EXPECT_EQ(Audited("api_key.create"), 1);
}

TEST_F(AccountRoutesTest, OwnersAndAdminsManageTheirOrganisationOnly) {
  const auto [olga, olga_key] = NewUserWithKey("olga@example.com");
  const auto [ali, ali_key] = NewUserWithKey("ali@example.com");
  const auto [mo, mo_key] = NewUserWithKey("mo@example.com");
  ExpectRefused("POST", "/api/organizations", org_admin_key_, R"({"name": "beta"})", 403,
                "forbidden");
  Response created = Send("POST", "/api/organizations", admin_key_,
                          json{{"name", "beta"}, {"owner_user_id", olga}}.dump());
  ASSERT_EQ(created.status, 201) << created.raw;
  const std::string beta = created.body.value("id", "");
  const std::string members = "/api/organizations/" + beta + "/members";

  // Olga sees it at once (her cached memberships were dropped).
  Response olga_orgs = Send("GET", "/api/organizations", olga_key);
  ASSERT_EQ(olga_orgs.body.size(), 1u) << olga_orgs.raw;
  EXPECT_EQ(olga_orgs.body[0]["name"], "beta");

  // The owner adds an admin (by email) and a member (by id).
  Response added =
      Send("POST", members, olga_key, json{{"email", "ali@example.com"}, {"role", "admin"}}.dump());
  ASSERT_EQ(added.status, 200) << added.raw;
  EXPECT_EQ(added.body["role"], "admin");
  EXPECT_EQ(added.body["user_id"], ali);
  ASSERT_EQ(
      Send("POST", members, olga_key, json{{"user_id", mo}, {"role", "member"}}.dump()).status,
      200);
  ExpectRefused("POST", members, olga_key,
                json{{"email", "nobody@example.com"}, {"role", "member"}}.dump(), 404, "not_found");
  ExpectRefused("POST", members, olga_key, json{{"user_id", mo}, {"role", "boss"}}.dump(), 400,
                "validation_error");
  ExpectRefused("POST", members, olga_key,
                json{{"user_id", mo}, {"email", "mo@example.com"}, {"role", "member"}}.dump(), 400,
                "validation_error");

  // An admin manages members and admins, never owners.
  ExpectRefused("POST", members, ali_key, json{{"user_id", mo}, {"role", "owner"}}.dump(), 403,
                "forbidden");
  ExpectRefused("POST", members, ali_key, json{{"user_id", olga}, {"role", "member"}}.dump(), 403,
                "forbidden");
  ExpectRefused("DELETE", members + "/" + olga, ali_key, "", 403, "forbidden");
  EXPECT_EQ(Send("POST", members, ali_key, json{{"user_id", mo}, {"role", "admin"}}.dump()).status,
            200);
  // A member only looks.
  Response listed = Send("GET", members, member_key_);
  EXPECT_EQ(listed.status, 404) << listed.raw;  // not a member of beta at all
  ExpectRefused("DELETE", members + "/" + ali, member_key_, "", 404, "not_found");
  ASSERT_EQ(
      Send("POST", members, olga_key, json{{"user_id", mo}, {"role", "member"}}.dump()).status,
      200);
  ExpectRefused("DELETE", members + "/" + ali, mo_key, "", 403, "forbidden");
  Response seen = Send("GET", members, mo_key);
  ASSERT_EQ(seen.status, 200) << seen.raw;
  EXPECT_EQ(seen.body.size(), 3u) << seen.raw;

  // The last owner stays.
  ExpectRefused("DELETE", members + "/" + olga, olga_key, "", 409, "failed_precondition");
  ExpectRefused("POST", members, olga_key, json{{"user_id", olga}, {"role", "admin"}}.dump(), 409,
                "failed_precondition");
  ASSERT_EQ(
      Send("POST", members, olga_key, json{{"user_id", ali}, {"role", "owner"}}.dump()).status,
      200);
  EXPECT_EQ(Send("DELETE", members + "/" + olga, ali_key).status, 204);
  ExpectRefused("DELETE", members + "/" + olga, ali_key, "", 404, "not_found");
  // Olga is out at once.
  EXPECT_TRUE(Send("GET", "/api/organizations", olga_key).body.empty());

  // The acme organisation is none of beta's business, and the reverse.
  ExpectRefused("GET", "/api/organizations/" + org_ + "/members", ali_key, "", 404, "not_found");
  ExpectRefused("POST", "/api/organizations/" + org_ + "/members", ali_key,
                json{{"user_id", ali}, {"role", "owner"}}.dump(), 404, "not_found");
  EXPECT_EQ(Audited("organization.create"), 1);
  EXPECT_EQ(Audited("organization.member.set"), 5);
  EXPECT_EQ(Audited("organization.member.remove"), 1);
}

TEST_F(AccountRoutesTest, PlatformAdminsRevokeAnyKeyOthersOnlyTheirOwn) {
  const auto [eve, eve_key] = NewUserWithKey("eve@example.com");
  Response keys = Send("GET", "/api/api-keys?user_id=" + eve, admin_key_);
  ASSERT_EQ(keys.body.size(), 1u) << keys.raw;
  const std::string key_id = keys.body[0].value("id", "");
  ASSERT_EQ(Send("GET", "/api/organizations", eve_key).status, 200);

  // Someone else's key is not found, for anyone but a platform admin.
  ExpectRefused("DELETE", "/api/api-keys/" + key_id, org_admin_key_, "", 404, "not_found");
  EXPECT_EQ(Send("DELETE", "/api/api-keys/" + key_id, admin_key_).status, 204);
  // Refused at once, not after the auth cache's ttl.
  Response after = Send("GET", "/api/organizations", eve_key);
  EXPECT_EQ(after.status, 401) << after.raw;
  EXPECT_EQ(Audited("api_key.revoke"), 1);
  const auto revoked = Send("GET", "/api/api-keys?user_id=" + eve, admin_key_).body;
  ASSERT_EQ(revoked.size(), 1u);
  EXPECT_FALSE(revoked[0]["revoked_at"].is_null());
}

}  // namespace
}  // namespace kindling::api
