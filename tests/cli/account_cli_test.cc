// kindling user / org / api-key against a real API: a platform admin
// onboards a user (user create, api-key create --user), gives them an
// organisation, and revokes a leaked key.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "api_cli_fixture.h"

namespace kindling::clitest {
namespace {

using json = nlohmann::json;

class AccountCliTest : public ApiCliTest {};

TEST_F(AccountCliTest, OnboardAUserGiveThemAnOrganisationAndRevokeTheirKey) {
  json user = Ok({"user", "create", "--email", "rita@example.com", "--name", "Rita"});
  const std::string rita = user.value("id", "");
  ASSERT_FALSE(rita.empty()) << user.dump();
  RunResult users = Kindling({"user", "list"});
  EXPECT_EQ(users.exit_code, 0) << users.Describe();
  EXPECT_NE(users.out.find("rita@example.com"), std::string::npos) << users.out;
  Fails({"user", "create", "--email", "rita@example.com"}, 2, "already exists");

  // Her first key, shown once.
  RunResult created = Kindling({"api-key", "create", "--name", "laptop", "--user", rita});
  ASSERT_EQ(created.exit_code, 0) << created.Describe();
  const auto at = created.out.find("KINDLING_API_KEY=");
  ASSERT_NE(at, std::string::npos) << created.out;
  const std::string rita_key = created.out.substr(at + 17, created.out.find('\n', at) - at - 17);
  const Env as_rita = {{"KINDLING_API_KEY", rita_key}};
  EXPECT_TRUE(Ok({"org", "list"}, as_rita).empty());

  json org = Ok({"org", "create", "--name", "rita-co", "--owner", rita});
  const std::string org_id = org.value("id", "");
  json mine = Ok({"org", "list"}, as_rita);
  ASSERT_EQ(mine.size(), 1u) << mine.dump();
  // As its owner she adds the admin (by email) as a member, then removes them.
  json member =
      Ok({"org", "set-member", "--org", org_id, "--email", "ops@example.com", "--role", "member"},
         as_rita);
  EXPECT_EQ(member["role"], "member");
  json members = Ok({"org", "members", "--org", org_id}, as_rita);
  EXPECT_EQ(members.size(), 2u) << members.dump();
  RunResult table = Kindling({"org", "members", "--org", org_id}, as_rita);
  EXPECT_NE(table.out.find("owner"), std::string::npos) << table.out;
  EXPECT_EQ(Ok({"org", "remove-member", "--org", org_id, "--user", member.value("user_id", "")},
               as_rita)["removed"],
            true);
  Fails({"org", "remove-member", "--org", org_id, "--user", rita}, 1, "last owner", as_rita);
  Fails({"org", "set-member", "--org", org_id, "--role", "member"}, 2, "--user or --email");
  Fails({"org", "set-member", "--org", org_id, "--user", rita, "--role", "boss"}, 2, "boss");

  // The key leaked: the platform admin revokes it, and it is refused at once.
  json keys = Ok({"api-key", "list", "--user", rita});
  ASSERT_EQ(keys.size(), 1u) << keys.dump();
  RunResult revoked = Kindling({"api-key", "revoke", keys[0].value("id", "")});
  EXPECT_EQ(revoked.exit_code, 0) << revoked.Describe();
  EXPECT_NE(revoked.out.find("revoked API key"), std::string::npos) << revoked.out;
  Fails({"org", "list"}, 1, "invalid or revoked API key", as_rita);
  Fails({"api-key", "revoke", "not-a-uuid"}, 2, "UUID");
}

}  // namespace
}  // namespace kindling::clitest
