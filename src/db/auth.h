// users, organizations, organization_memberships, api_keys.
//
// API keys: the secret ("kdl_" + 64 hex characters) is returned once, by
// CreateApiKey; the database keeps only its SHA-256 (key_hash) and a short
// display prefix. Lookup hashes the presented secret, so a leaked database
// yields no usable key.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/secret.h"
#include "db/database.h"
#include "db/types.h"

namespace kindling::db {

inline constexpr char kApiKeyPrefix[] = "kdl_";

struct User {
  std::string id{};
  std::string email{};
  std::string name{};
  bool is_platform_admin = false;
  Timestamp created_at{};
  Timestamp updated_at{};
};

struct Organization {
  std::string id{};
  std::string name{};
  Timestamp created_at{};
  Timestamp updated_at{};
};

struct Membership {
  std::string organization_id{};
  std::string organization_name{};
  std::string user_id{};
  OrgRole role = OrgRole::kMember;
  Timestamp created_at{};
};

struct ApiKey {
  std::string id{};
  std::string user_id{};
  std::string name{};
  std::string key_prefix{};  // the secret's first characters, for display
  Timestamp created_at{};
  std::optional<Timestamp> last_used_at{};
  std::optional<Timestamp> revoked_at{};
};

struct CreatedApiKey {
  ApiKey key{};
  Secret secret{};  // shown to the user once; not stored
};

// Who is calling: the key's user, the key, and the user's memberships.
struct Principal {
  User user{};
  ApiKey api_key{};
  std::vector<Membership> memberships{};

  // The user's role in `organization_id`; nullopt when not a member.
  std::optional<OrgRole> RoleIn(const std::string& organization_id) const;
};

struct NewUser {
  std::string email{};
  std::string name{};
  bool is_platform_admin = false;
};

// kInvalidArgument for an email that is taken (case-insensitive) or empty.
[[nodiscard]] Result<User> CreateUser(Tx& tx, const NewUser& user);
[[nodiscard]] Result<User> GetUser(Tx& tx, const std::string& user_id);  // kNotFound
[[nodiscard]] Result<std::optional<User>> FindUserByEmail(Tx& tx, const std::string& email);
[[nodiscard]] Result<User> SetPlatformAdmin(Tx& tx, const std::string& user_id, bool is_admin);

// Every user, by email.
[[nodiscard]] Result<std::vector<User>> ListUsers(Tx& tx);

[[nodiscard]] Result<Organization> CreateOrganization(Tx& tx, const std::string& name);
// Every organization, by name then id.
[[nodiscard]] Result<std::vector<Organization>> ListOrganizations(Tx& tx);
// A member of an organization, with the user's email and name.
struct Member {
  Membership membership{};
  std::string email{};
  std::string name{};
};
// The organization's members, by email.
[[nodiscard]] Result<std::vector<Member>> ListMembers(Tx& tx, const std::string& organization_id);
[[nodiscard]] Result<Organization> GetOrganization(Tx& tx, const std::string& organization_id);

// Adds the user to the organization or changes their role.
[[nodiscard]] Status SetMembership(Tx& tx, const std::string& organization_id,
                                   const std::string& user_id, OrgRole role);
// True when a membership was removed.
[[nodiscard]] Result<bool> RemoveMembership(Tx& tx, const std::string& organization_id,
                                            const std::string& user_id);
// The user's memberships, by organization name.
[[nodiscard]] Result<std::vector<Membership>> ListMemberships(Tx& tx, const std::string& user_id);

// Creates a key for `user_id`; the result's secret is the only copy.
[[nodiscard]] Result<CreatedApiKey> CreateApiKey(Tx& tx, const std::string& user_id,
                                                 const std::string& name);
// The user's keys, revoked ones included, newest first.
[[nodiscard]] Result<std::vector<ApiKey>> ListApiKeys(Tx& tx, const std::string& user_id);
[[nodiscard]] Result<ApiKey> GetApiKey(Tx& tx, const std::string& key_id);  // kNotFound
// Revokes the key; true when it was active (false: already revoked).
// kNotFound for an unknown id.
[[nodiscard]] Result<bool> RevokeApiKey(Tx& tx, const std::string& key_id);

// The principal for a presented secret; nullopt for unknown, malformed or
// revoked keys (callers answer 401 without saying which). Touches
// last_used_at at most once a minute per key.
[[nodiscard]] Result<std::optional<Principal>> AuthenticateApiKey(Tx& tx, std::string_view secret);

struct Bootstrap {
  User user{};
  Organization organization{};
  CreatedApiKey api_key{};
};

// Creates the first platform admin (or promotes the user with that email),
// an organization they own, and an API key. kAlreadyExists once any platform
// admin exists. Concurrent calls are serialized by an advisory lock.
[[nodiscard]] Result<Bootstrap> BootstrapPlatformAdmin(Tx& tx, const std::string& email,
                                                       const std::string& name,
                                                       const std::string& organization_name);

}  // namespace kindling::db
