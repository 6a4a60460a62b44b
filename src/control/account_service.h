// Accounts: users, organisations, memberships and API keys, with who may
// change what. Each change is audited in its own transaction (user.create,
// organization.create, organization.member.set, organization.member.remove,
// api_key.create, api_key.revoke); details never hold a key's secret.
//
// Who may:
//  - a platform admin: everything;
//  - an organisation's owner: its memberships, any role;
//  - an organisation's admin: its members and admins (not its owners, and
//    never the owner role);
//  - a member: see the organisation and its members;
//  - anyone: their own API keys.
// An organisation the caller is not a member of answers 404 (its existence
// is not revealed), one they are a member of but may not change 403. An
// organisation always keeps one owner: removing or demoting the last one
// is a 409 failed_precondition.
//
// Thread-safety: free functions; state lives in the database.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "control/control_error.h"
#include "control/volume_service.h"
#include "db/auth.h"

namespace kindling::control {

// user.create (platform admin). 400 validation_error for a taken email.
[[nodiscard]] ControlResult<db::User> CreateUser(db::Database& db, const Actor& actor,
                                                 const db::Principal& caller,
                                                 const db::NewUser& user);
// Every user (platform admin).
[[nodiscard]] ControlResult<std::vector<db::User>> ListUsers(db::Database& db,
                                                             const db::Principal& caller);

// organization.create (platform admin); `owner_user_id` (default: the
// caller) becomes its owner.
[[nodiscard]] ControlResult<db::Organization> CreateOrganization(
    db::Database& db, const Actor& actor, const db::Principal& caller, const std::string& name,
    const std::optional<std::string>& owner_user_id);
// Every organisation for a platform admin; the caller's own otherwise.
[[nodiscard]] ControlResult<std::vector<db::Organization>> ListOrganizations(
    db::Database& db, const db::Principal& caller);
[[nodiscard]] ControlResult<std::vector<db::Member>> ListMembers(
    db::Database& db, const db::Principal& caller, const std::string& organization_id);

// Who a membership change is about: a user id, or an email (404 when no
// user has it: platform admins create users).
struct MemberRef {
  std::optional<std::string> user_id{};
  std::optional<std::string> email{};
};
// organization.member.set: adds the user or changes their role.
[[nodiscard]] ControlResult<db::Member> SetMember(db::Database& db, const Actor& actor,
                                                  const db::Principal& caller,
                                                  const std::string& organization_id,
                                                  const MemberRef& who, db::OrgRole role);
// organization.member.remove; 404 when the user is not a member.
[[nodiscard]] ControlResult<bool> RemoveMember(db::Database& db, const Actor& actor,
                                               const db::Principal& caller,
                                               const std::string& organization_id,
                                               const std::string& user_id);

// api_key.create for `user_id`: the caller's own, or anyone's by a platform
// admin (a new user's first key). The secret is in the result only.
[[nodiscard]] ControlResult<db::CreatedApiKey> CreateApiKey(db::Database& db, const Actor& actor,
                                                            const db::Principal& caller,
                                                            const std::string& user_id,
                                                            const std::string& name);
// The keys of `user_id` (the caller's own, or anyone's by a platform admin).
[[nodiscard]] ControlResult<std::vector<db::ApiKey>> ListApiKeys(db::Database& db,
                                                                 const db::Principal& caller,
                                                                 const std::string& user_id);
// api_key.revoke: the caller's own key, or any key by a platform admin (404
// otherwise). Revoking a revoked key changes nothing and succeeds.
[[nodiscard]] ControlResult<db::ApiKey> RevokeApiKey(db::Database& db, const Actor& actor,
                                                     const db::Principal& caller,
                                                     const std::string& key_id);

}  // namespace kindling::control
