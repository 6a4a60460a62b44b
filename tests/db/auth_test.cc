#include "db/auth.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "common/hex.h"
#include "crypto/sha256.h"
#include "db_test_util.h"

namespace kindling::db {
namespace {

class AuthTest : public DbTest {
 protected:
  User MakeUser(const std::string& email) {
    auto user = Must([&](Tx& tx) { return CreateUser(tx, NewUser{.email = email, .name = "U"}); });
    return user ? *user : User{};
  }
  std::optional<Principal> Authenticate(const std::string& secret) {
    auto principal = Must([&](Tx& tx) { return AuthenticateApiKey(tx, secret); });
    return principal ? *principal : std::nullopt;
  }
};

TEST_F(AuthTest, UsersAreUniqueByEmailIgnoringCase) {
  const User user = MakeUser("Alice@Example.com");
  ASSERT_OK_AND_ASSIGN(std::optional<User> found, db().Transact([](Tx& tx) {
    return FindUserByEmail(tx, "alice@example.COM");
  }));
  ASSERT_TRUE(found);
  EXPECT_EQ(found->id, user.id);
  EXPECT_EQ(found->email, "Alice@Example.com");
  EXPECT_ERROR_KIND(
      db().Transact([](Tx& tx) { return CreateUser(tx, NewUser{.email = "ALICE@example.com"}); }),
      ErrorKind::kInvalidArgument);
  EXPECT_ERROR_KIND(db().Transact([](Tx& tx) { return CreateUser(tx, NewUser{.email = ""}); }),
                    ErrorKind::kInvalidArgument);
}

TEST_F(AuthTest, ApiKeySecretIsShownOnceAndStoredHashed) {
  const User user = MakeUser("a@example.com");
  ASSERT_OK_AND_ASSIGN(CreatedApiKey created,
                       db().Transact([&](Tx& tx) { return CreateApiKey(tx, user.id, "laptop"); }));
  EXPECT_TRUE(std::string(created.secret.Reveal()).starts_with("kdl_"));
  EXPECT_EQ(std::string(created.secret.Reveal()).size(), 4u + 64u);
  EXPECT_EQ(created.key.key_prefix, std::string(created.secret.Reveal()).substr(0, 12));
  EXPECT_EQ(created.key.name, "laptop");

  const pqxx::result raw = Sql("SELECT key_hash, key_prefix FROM api_keys");
  ASSERT_EQ(raw.size(), 1u);
  const std::string hash = pqxx::binarystring(raw[0][0]).str();
  EXPECT_EQ(hash, std::string(
                      crypto::DigestBytes(crypto::Sha256Of(std::string(created.secret.Reveal())))));
  const std::string dump = Sql("SELECT api_keys::text FROM api_keys")[0][0].as<std::string>();
  EXPECT_EQ(dump.find(std::string(created.secret.Reveal()).substr(4)), std::string::npos);
}

TEST_F(AuthTest, AuthenticateReturnsUserAndMemberships) {
  const User user = MakeUser("a@example.com");
  const std::string acme = MakeOrganization("acme");
  const std::string beta = MakeOrganization("beta");
  ASSERT_OK(db().Transact([&](Tx& tx) -> Status {
    KINDLING_RETURN_IF_ERROR(SetMembership(tx, acme, user.id, OrgRole::kAdmin));
    return SetMembership(tx, beta, user.id, OrgRole::kMember);
  }));
  ASSERT_OK_AND_ASSIGN(CreatedApiKey created,
                       db().Transact([&](Tx& tx) { return CreateApiKey(tx, user.id, "k"); }));

  const std::optional<Principal> principal = Authenticate(std::string(created.secret.Reveal()));
  ASSERT_TRUE(principal);
  EXPECT_EQ(principal->user.id, user.id);
  EXPECT_EQ(principal->api_key.id, created.key.id);
  ASSERT_EQ(principal->memberships.size(), 2u);
  EXPECT_EQ(principal->RoleIn(acme), OrgRole::kAdmin);
  EXPECT_EQ(principal->RoleIn(beta), OrgRole::kMember);
  EXPECT_EQ(principal->RoleIn(NewUuidV4()), std::nullopt);
  EXPECT_EQ(principal->memberships[0].organization_name, "acme");

  // The role can change; last use is recorded.
  ASSERT_OK(
      db().Transact([&](Tx& tx) { return SetMembership(tx, beta, user.id, OrgRole::kOwner); }));
  EXPECT_EQ(Authenticate(std::string(created.secret.Reveal()))->RoleIn(beta), OrgRole::kOwner);
  ASSERT_OK_AND_ASSIGN(ApiKey key,
                       db().Transact([&](Tx& tx) { return GetApiKey(tx, created.key.id); }));
  EXPECT_TRUE(key.last_used_at.has_value());
}

TEST_F(AuthTest, WrongMalformedAndRevokedKeysAreRejected) {
  const User user = MakeUser("a@example.com");
  ASSERT_OK_AND_ASSIGN(CreatedApiKey created,
                       db().Transact([&](Tx& tx) { return CreateApiKey(tx, user.id, "k"); }));
  EXPECT_FALSE(Authenticate("kdl_" + std::string(64, '0')));
  EXPECT_FALSE(Authenticate("Bearer " + std::string(created.secret.Reveal())));
  EXPECT_FALSE(Authenticate(""));
  EXPECT_FALSE(Authenticate(std::string(created.secret.Reveal()) + "x"));
  ASSERT_TRUE(Authenticate(std::string(created.secret.Reveal())));

  ASSERT_OK_AND_ASSIGN(bool revoked,
                       db().Transact([&](Tx& tx) { return RevokeApiKey(tx, created.key.id); }));
  EXPECT_TRUE(revoked);
  EXPECT_FALSE(Authenticate(std::string(created.secret.Reveal())));
  ASSERT_OK_AND_ASSIGN(bool again,
                       db().Transact([&](Tx& tx) { return RevokeApiKey(tx, created.key.id); }));
  EXPECT_FALSE(again);
  EXPECT_ERROR_KIND(db().Transact([](Tx& tx) { return RevokeApiKey(tx, NewUuidV4()); }),
                    ErrorKind::kNotFound);

  ASSERT_OK_AND_ASSIGN(std::vector<ApiKey> keys,
                       db().Transact([&](Tx& tx) { return ListApiKeys(tx, user.id); }));
  ASSERT_EQ(keys.size(), 1u);
  EXPECT_TRUE(keys[0].revoked_at.has_value());
}

TEST_F(AuthTest, BootstrapCreatesTheFirstPlatformAdminOnce) {
  ASSERT_OK_AND_ASSIGN(Bootstrap first, db().Transact([](Tx& tx) {
    return BootstrapPlatformAdmin(tx, "admin@example.com", "Admin", "default");
  }));
  EXPECT_TRUE(first.user.is_platform_admin);
  EXPECT_EQ(first.organization.name, "default");
  const std::optional<Principal> principal =
      Authenticate(std::string(first.api_key.secret.Reveal()));
  ASSERT_TRUE(principal);
  EXPECT_TRUE(principal->user.is_platform_admin);
  EXPECT_EQ(principal->RoleIn(first.organization.id), OrgRole::kOwner);

  EXPECT_ERROR_KIND(db().Transact([](Tx& tx) {
    return BootstrapPlatformAdmin(tx, "other@example.com", "Other", "other");
  }),
                    ErrorKind::kAlreadyExists);
}

TEST_F(AuthTest, BootstrapPromotesAnExistingUser) {
  const User user = MakeUser("ops@example.com");
  ASSERT_OK_AND_ASSIGN(Bootstrap b, db().Transact([](Tx& tx) {
    return BootstrapPlatformAdmin(tx, "OPS@example.com", "Ops", "ops");
  }));
  EXPECT_EQ(b.user.id, user.id);
  EXPECT_TRUE(b.user.is_platform_admin);
}

TEST_F(AuthTest, ConcurrentBootstrapsMakeExactlyOneAdmin) {
  std::atomic<int> succeeded{0};
  std::atomic<int> refused{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      auto result = db().Transact([&](Tx& tx) {
        return BootstrapPlatformAdmin(tx, "admin" + std::to_string(i) + "@example.com", "A",
                                      "org" + std::to_string(i));
      });
      if (result) {
        ++succeeded;
      } else if (result.error().kind() == ErrorKind::kAlreadyExists) {
        ++refused;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(succeeded.load(), 1);
  EXPECT_EQ(refused.load(), 3);
  EXPECT_EQ(Sql("SELECT count(*) FROM users WHERE is_platform_admin")[0][0].as<int>(), 1);
}

TEST_F(AuthTest, MembershipsCanBeRemoved) {
  const User user = MakeUser("a@example.com");
  const std::string org = MakeOrganization();
  ASSERT_OK(
      db().Transact([&](Tx& tx) { return SetMembership(tx, org, user.id, OrgRole::kMember); }));
  ASSERT_OK_AND_ASSIGN(bool removed,
                       db().Transact([&](Tx& tx) { return RemoveMembership(tx, org, user.id); }));
  EXPECT_TRUE(removed);
  ASSERT_OK_AND_ASSIGN(std::vector<Membership> left,
                       db().Transact([&](Tx& tx) { return ListMemberships(tx, user.id); }));
  EXPECT_TRUE(left.empty());
}

}  // namespace
}  // namespace kindling::db
