#include "control/account_service.h"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace kindling::control {
namespace {

using json = nlohmann::json;

// Membership changes count the owners they keep: serializable, so that two
// concurrent demotions cannot each see the other owner and leave none (one
// is retried and then refused).
constexpr db::TxOptions kOwnersKept{.isolation = db::Isolation::kSerializable};

std::unexpected<ControlError> Forbidden(std::string message) {
  return std::unexpected(ControlError{403, kCodeForbidden, std::move(message)});
}

ControlError OrgNotFound(const std::string& organization_id) {
  return ControlError{404, kCodeNotFound, "organisation " + organization_id + " not found"};
}

// The caller's role in the organisation: kOwner for a platform admin;
// nullopt when not a member (then 404).
std::optional<db::OrgRole> CallerRole(const db::Principal& caller,
                                      const std::string& organization_id) {
  if (caller.user.is_platform_admin) return db::OrgRole::kOwner;
  return caller.RoleIn(organization_id);
}

// Whether a caller with `caller_role` may move a member from `current`
// (nullopt: not a member) to `wanted` (nullopt: removed).
bool MayChange(db::OrgRole caller_role, std::optional<db::OrgRole> current,
               std::optional<db::OrgRole> wanted) {
  if (caller_role == db::OrgRole::kOwner) return true;
  if (caller_role != db::OrgRole::kAdmin) return false;
  return current != db::OrgRole::kOwner && wanted != db::OrgRole::kOwner;
}

std::optional<db::OrgRole> RoleOf(const std::vector<db::Member>& members,
                                  const std::string& user_id) {
  for (const db::Member& m : members) {
    if (m.membership.user_id == user_id) return m.membership.role;
  }
  return std::nullopt;
}

int Owners(const std::vector<db::Member>& members) {
  return static_cast<int>(std::count_if(members.begin(), members.end(), [](const db::Member& m) {
    return m.membership.role == db::OrgRole::kOwner;
  }));
}

}  // namespace

ControlResult<db::User> CreateUser(db::Database& db, const Actor& actor,
                                   const db::Principal& caller, const db::NewUser& user) {
  if (!caller.user.is_platform_admin) return Forbidden("creating users needs a platform admin");
  return TransactChecked<db::User>(
      db, [&](db::Tx& tx, std::optional<ControlError>& refusal) -> Result<db::User> {
        KINDLING_ASSIGN_OR_RETURN(auto taken, db::FindUserByEmail(tx, user.email));
        if (taken) {
          refusal = ControlError{400, kCodeValidation, "a user with this email already exists"};
          return Refused();
        }
        KINDLING_ASSIGN_OR_RETURN(db::User created, db::CreateUser(tx, user));
        KINDLING_RETURN_IF_ERROR(Audit(tx, actor, "user.create", "user", created.id,
                                       json{{"email", created.email},
                                            {"name", created.name},
                                            {"is_platform_admin", created.is_platform_admin}}
                                           .dump()));
        return created;
      });
}

ControlResult<std::vector<db::User>> ListUsers(db::Database& db, const db::Principal& caller) {
  if (!caller.user.is_platform_admin) return Forbidden("listing users needs a platform admin");
  auto users = db.Transact([](db::Tx& tx) { return db::ListUsers(tx); }, db::kAutocommitRead);
  if (!users) return std::unexpected(FromError(users.error()));
  return std::move(*users);
}

ControlResult<db::Organization> CreateOrganization(
    db::Database& db, const Actor& actor, const db::Principal& caller, const std::string& name,
    const std::optional<std::string>& owner_user_id) {
  if (!caller.user.is_platform_admin)
    return Forbidden("creating organisations needs a platform admin");
  const std::string owner = owner_user_id.value_or(caller.user.id);
  return TransactChecked<db::Organization>(
      db, [&](db::Tx& tx, std::optional<ControlError>& refusal) -> Result<db::Organization> {
        auto user = db::GetUser(tx, owner);
        if (!user) {
          if (!user.error().is_not_found()) return std::unexpected(user.error());
          refusal = ControlError{404, kCodeNotFound, "user " + owner + " not found"};
          return Refused();
        }
        KINDLING_ASSIGN_OR_RETURN(db::Organization org, db::CreateOrganization(tx, name));
        KINDLING_RETURN_IF_ERROR(db::SetMembership(tx, org.id, owner, db::OrgRole::kOwner));
        KINDLING_RETURN_IF_ERROR(Audit(tx, actor, "organization.create", "organization", org.id,
                                       json{{"name", name}, {"owner_user_id", owner}}.dump()));
        return org;
      });
}

ControlResult<std::vector<db::Organization>> ListOrganizations(db::Database& db,
                                                               const db::Principal& caller) {
  auto orgs = db.Transact(
      [&](db::Tx& tx) -> Result<std::vector<db::Organization>> {
        KINDLING_ASSIGN_OR_RETURN(auto all, db::ListOrganizations(tx));
        if (caller.user.is_platform_admin) return all;
        std::erase_if(all, [&](const db::Organization& o) { return !caller.RoleIn(o.id); });
        return all;
      },
      db::kAutocommitRead);
  if (!orgs) return std::unexpected(FromError(orgs.error()));
  return std::move(*orgs);
}

ControlResult<std::vector<db::Member>> ListMembers(db::Database& db, const db::Principal& caller,
                                                   const std::string& organization_id) {
  if (!CallerRole(caller, organization_id)) return std::unexpected(OrgNotFound(organization_id));
  return TransactChecked<std::vector<db::Member>>(
      db,
      [&](db::Tx& tx, std::optional<ControlError>& refusal) -> Result<std::vector<db::Member>> {
        auto org = db::GetOrganization(tx, organization_id);
        if (!org) {
          if (!org.error().is_not_found()) return std::unexpected(org.error());
          refusal = OrgNotFound(organization_id);
          return Refused();
        }
        return db::ListMembers(tx, organization_id);
      },
      db::kAutocommitRead);
}

ControlResult<db::Member> SetMember(db::Database& db, const Actor& actor,
                                    const db::Principal& caller, const std::string& organization_id,
                                    const MemberRef& who, db::OrgRole role) {
  const std::optional<db::OrgRole> caller_role = CallerRole(caller, organization_id);
  if (!caller_role) return std::unexpected(OrgNotFound(organization_id));
  return TransactChecked<db::Member>(
      db,
      [&](db::Tx& tx, std::optional<ControlError>& refusal) -> Result<db::Member> {
        auto org = db::GetOrganization(tx, organization_id);
        if (!org) {
          if (!org.error().is_not_found()) return std::unexpected(org.error());
          refusal = OrgNotFound(organization_id);
          return Refused();
        }
        std::optional<db::User> user;
        if (who.user_id) {
          auto found = db::GetUser(tx, *who.user_id);
          if (!found && !found.error().is_not_found()) return std::unexpected(found.error());
          if (found) user = std::move(*found);
        } else if (who.email) {
          KINDLING_ASSIGN_OR_RETURN(user, db::FindUserByEmail(tx, *who.email));
        }
        if (!user) {
          refusal = ControlError{404, kCodeNotFound,
                                 "no such user (a platform admin creates users first)"};
          return Refused();
        }
        KINDLING_ASSIGN_OR_RETURN(auto members, db::ListMembers(tx, organization_id));
        const std::optional<db::OrgRole> current = RoleOf(members, user->id);
        if (!MayChange(*caller_role, current, role)) {
          refusal = ControlError{403, kCodeForbidden,
                                 *caller_role == db::OrgRole::kAdmin
                                     ? "organisation admins cannot change or grant the owner role"
                                     : "changing members needs the owner or admin role"};
          return Refused();
        }
        if (current == db::OrgRole::kOwner && role != db::OrgRole::kOwner && Owners(members) == 1) {
          refusal = ControlError{409, kCodeFailedPrecondition,
                                 "the organisation's last owner cannot be demoted: make another "
                                 "member owner first"};
          return Refused();
        }
        KINDLING_RETURN_IF_ERROR(db::SetMembership(tx, organization_id, user->id, role));
        KINDLING_RETURN_IF_ERROR(
            Audit(tx, actor, "organization.member.set", "organization", organization_id,
                  json{{"user_id", user->id},
                       {"role", db::Name(role)},
                       {"previous_role", current ? json(db::Name(*current)) : json(nullptr)}}
                      .dump()));
        KINDLING_ASSIGN_OR_RETURN(members, db::ListMembers(tx, organization_id));
        for (db::Member& m : members) {
          if (m.membership.user_id == user->id) return std::move(m);
        }
        return InternalError("the membership just written is not there");
      },
      kOwnersKept);
}

ControlResult<bool> RemoveMember(db::Database& db, const Actor& actor, const db::Principal& caller,
                                 const std::string& organization_id, const std::string& user_id) {
  const std::optional<db::OrgRole> caller_role = CallerRole(caller, organization_id);
  if (!caller_role) return std::unexpected(OrgNotFound(organization_id));
  return TransactChecked<bool>(
      db,
      [&](db::Tx& tx, std::optional<ControlError>& refusal) -> Result<bool> {
        KINDLING_ASSIGN_OR_RETURN(auto members, db::ListMembers(tx, organization_id));
        const std::optional<db::OrgRole> current = RoleOf(members, user_id);
        if (!current) {
          refusal = ControlError{404, kCodeNotFound,
                                 "user " + user_id + " is not a member of the organisation"};
          return Refused();
        }
        if (!MayChange(*caller_role, current, std::nullopt)) {
          refusal = ControlError{403, kCodeForbidden,
                                 *caller_role == db::OrgRole::kAdmin
                                     ? "organisation admins cannot remove owners"
                                     : "removing members needs the owner or admin role"};
          return Refused();
        }
        if (current == db::OrgRole::kOwner && Owners(members) == 1) {
          refusal = ControlError{409, kCodeFailedPrecondition,
                                 "the organisation's last owner cannot be removed: make another "
                                 "member owner first"};
          return Refused();
        }
        KINDLING_ASSIGN_OR_RETURN(bool removed, db::RemoveMembership(tx, organization_id, user_id));
        KINDLING_RETURN_IF_ERROR(
            Audit(tx, actor, "organization.member.remove", "organization", organization_id,
                  json{{"user_id", user_id}, {"previous_role", db::Name(*current)}}.dump()));
        return removed;
      },
      kOwnersKept);
}

ControlResult<db::CreatedApiKey> CreateApiKey(db::Database& db, const Actor& actor,
                                              const db::Principal& caller,
                                              const std::string& user_id, const std::string& name) {
  if (user_id != caller.user.id && !caller.user.is_platform_admin)
    return Forbidden("creating another user's API key needs a platform admin");
  return TransactChecked<db::CreatedApiKey>(
      db, [&](db::Tx& tx, std::optional<ControlError>& refusal) -> Result<db::CreatedApiKey> {
        auto user = db::GetUser(tx, user_id);
        if (!user) {
          if (!user.error().is_not_found()) return std::unexpected(user.error());
          refusal = ControlError{404, kCodeNotFound, "user " + user_id + " not found"};
          return Refused();
        }
        KINDLING_ASSIGN_OR_RETURN(auto created, db::CreateApiKey(tx, user_id, name));
        KINDLING_RETURN_IF_ERROR(Audit(tx, actor, "api_key.create", "api_key", created.key.id,
                                       json{{"name", name}, {"user_id", user_id}}.dump()));
        return created;
      });
}

ControlResult<std::vector<db::ApiKey>> ListApiKeys(db::Database& db, const db::Principal& caller,
                                                   const std::string& user_id) {
  if (user_id != caller.user.id && !caller.user.is_platform_admin)
    return Forbidden("listing another user's API keys needs a platform admin");
  auto keys =
      db.Transact([&](db::Tx& tx) { return db::ListApiKeys(tx, user_id); }, db::kAutocommitRead);
  if (!keys) return std::unexpected(FromError(keys.error()));
  return std::move(*keys);
}

ControlResult<db::ApiKey> RevokeApiKey(db::Database& db, const Actor& actor,
                                       const db::Principal& caller, const std::string& key_id) {
  return TransactChecked<db::ApiKey>(
      db, [&](db::Tx& tx, std::optional<ControlError>& refusal) -> Result<db::ApiKey> {
        auto key = db::GetApiKey(tx, key_id);
        if (!key && !key.error().is_not_found()) return std::unexpected(key.error());
        if (!key || (key->user_id != caller.user.id && !caller.user.is_platform_admin)) {
          refusal = ControlError{404, kCodeNotFound, "API key " + key_id + " does not exist"};
          return Refused();
        }
        KINDLING_ASSIGN_OR_RETURN(bool was_active, db::RevokeApiKey(tx, key_id));
        KINDLING_RETURN_IF_ERROR(
            Audit(tx, actor, "api_key.revoke", "api_key", key_id,
                  json{{"name", key->name}, {"user_id", key->user_id}, {"was_active", was_active}}
                      .dump()));
        return db::GetApiKey(tx, key_id);
      });
}

}  // namespace kindling::control
