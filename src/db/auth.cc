#include "db/auth.h"

#include "common/hex.h"
#include "crypto/aead.h"
#include "crypto/sha256.h"
#include "db/internal.h"

namespace kindling::db {
namespace {

using internal::OptTime;
using internal::Text;
using internal::Time;

// pg_advisory_xact_lock key serializing bootstrap ("kindlinb").
constexpr std::int64_t kBootstrapLockKey = 0x6b696e646c696e62;
constexpr std::size_t kSecretBytes = 32;
constexpr std::size_t kDisplayPrefixLength = 12;  // "kdl_" + 8 hex

constexpr char kUserColumns[] = "id, email, name, is_platform_admin, created_at, updated_at";

User UserFromRow(const pqxx::row& r) {
  return User{Text(r[0]), Text(r[1]), Text(r[2]), r[3].as<bool>(), Time(r[4]), Time(r[5])};
}

constexpr char kOrgColumns[] = "id, name, created_at, updated_at";

Organization OrgFromRow(const pqxx::row& r) {
  return Organization{Text(r[0]), Text(r[1]), Time(r[2]), Time(r[3])};
}

constexpr char kKeyColumns[] =
    "id, user_id, name, key_prefix, created_at, last_used_at, revoked_at";

ApiKey KeyFromRow(const pqxx::row& r) {
  return ApiKey{Text(r[0]), Text(r[1]),    Text(r[2]),   Text(r[3]),
                Time(r[4]), OptTime(r[5]), OptTime(r[6])};
}

pqxx::binarystring SecretHash(std::string_view secret) {
  const crypto::Digest digest = crypto::Sha256Of(secret);
  return pqxx::binarystring(digest.data(), digest.size());
}

// A membership row, its organization's name joined in (MembershipFromRow
// reads the first five columns).
constexpr char kMembershipColumns[] = "m.organization_id, o.name, m.user_id, m.role, m.created_at";
constexpr char kMembershipFrom[] =
    " FROM organization_memberships m JOIN organizations o ON o.id = m.organization_id ";

Membership MembershipFromRow(const pqxx::row& r) {
  return Membership{Text(r[0]), Text(r[1]), Text(r[2]), internal::Enum<OrgRole>(r[3]), Time(r[4])};
}

std::vector<Membership> ReadMemberships(pqxx::transaction_base& w, const std::string& user_id) {
  const pqxx::result rows =
      internal::Exec(w,
                     std::string("SELECT ") + kMembershipColumns + kMembershipFrom +
                         "WHERE m.user_id = $1::uuid ORDER BY o.name, o.id",
                     user_id);
  std::vector<Membership> out;
  for (const auto& r : rows) out.push_back(MembershipFromRow(r));
  return out;
}

Result<CreatedApiKey> InsertApiKey(pqxx::transaction_base& w, const std::string& user_id,
                                   const std::string& name) {
  std::string random(kSecretBytes, '\0');
  crypto::RandomBytes(random.data(), random.size());
  CreatedApiKey created;
  created.secret = Secret(kApiKeyPrefix + HexEncode(random));
  WipeString(random);
  const pqxx::row row = internal::Exec1(
      w,
      std::string("INSERT INTO api_keys (user_id, name, key_prefix, key_hash) "
                  "VALUES ($1::uuid, $2, $3, $4) RETURNING ") +
          kKeyColumns,
      user_id, name, std::string(created.secret.Reveal().substr(0, kDisplayPrefixLength)),
      SecretHash(created.secret.Reveal()));
  created.key = KeyFromRow(row);
  return created;
}

}  // namespace

std::optional<OrgRole> Principal::RoleIn(const std::string& organization_id) const {
  for (const Membership& m : memberships) {
    if (m.organization_id == organization_id) return m.role;
  }
  return std::nullopt;
}

Result<User> CreateUser(Tx& tx, const NewUser& user) {
  return internal::Run(tx, "create user", [&](pqxx::transaction_base& w) -> Result<User> {
    const pqxx::row row = internal::Exec1(
        w,
        std::string("INSERT INTO users (email, name, is_platform_admin) VALUES ($1, $2, $3) "
                    "RETURNING ") +
            kUserColumns,
        user.email, user.name, user.is_platform_admin);
    return UserFromRow(row);
  });
}

Result<User> GetUser(Tx& tx, const std::string& user_id) {
  return internal::Run(tx, "get user", [&](pqxx::transaction_base& w) -> Result<User> {
    const pqxx::result rows = internal::Exec(
        w, std::string("SELECT ") + kUserColumns + " FROM users WHERE id = $1::uuid", user_id);
    if (rows.empty()) return NotFound("user " + user_id + " not found");
    return UserFromRow(rows[0]);
  });
}

Result<std::optional<User>> FindUserByEmail(Tx& tx, const std::string& email) {
  return internal::Run(
      tx, "find user", [&](pqxx::transaction_base& w) -> Result<std::optional<User>> {
        const pqxx::result rows = internal::Exec(
            w, std::string("SELECT ") + kUserColumns + " FROM users WHERE lower(email) = lower($1)",
            email);
        if (rows.empty()) return std::optional<User>();
        return std::optional<User>(UserFromRow(rows[0]));
      });
}

Result<User> SetPlatformAdmin(Tx& tx, const std::string& user_id, bool is_admin) {
  return internal::Run(tx, "set platform admin", [&](pqxx::transaction_base& w) -> Result<User> {
    const pqxx::result rows =
        internal::Exec(w,
                       std::string("UPDATE users SET is_platform_admin = $2, updated_at = now() "
                                   "WHERE id = $1::uuid RETURNING ") +
                           kUserColumns,
                       user_id, is_admin);
    if (rows.empty()) return NotFound("user " + user_id + " not found");
    return UserFromRow(rows[0]);
  });
}

Result<Organization> CreateOrganization(Tx& tx, const std::string& name) {
  return internal::Run(
      tx, "create organization", [&](pqxx::transaction_base& w) -> Result<Organization> {
        return OrgFromRow(internal::Exec1(
            w, std::string("INSERT INTO organizations (name) VALUES ($1) RETURNING ") + kOrgColumns,
            name));
      });
}

Result<std::vector<User>> ListUsers(Tx& tx) {
  return internal::Run(
      tx, "list users", [&](pqxx::transaction_base& w) -> Result<std::vector<User>> {
        std::vector<User> users;
        for (const auto& r : internal::Exec(
                 w, std::string("SELECT ") + kUserColumns + " FROM users ORDER BY email, id"))
          users.push_back(UserFromRow(r));
        return users;
      });
}

Result<std::vector<Organization>> ListOrganizations(Tx& tx) {
  return internal::Run(
      tx, "list organizations",
      [&](pqxx::transaction_base& w) -> Result<std::vector<Organization>> {
        std::vector<Organization> orgs;
        for (const auto& r : internal::Exec(
                 w, std::string("SELECT ") + kOrgColumns + " FROM organizations ORDER BY name, id"))
          orgs.push_back(OrgFromRow(r));
        return orgs;
      });
}

Result<std::vector<Member>> ListMembers(Tx& tx, const std::string& organization_id) {
  return internal::Run(
      tx, "list members", [&](pqxx::transaction_base& w) -> Result<std::vector<Member>> {
        // The user's email and name after the membership's columns.
        const pqxx::result rows = internal::Exec(
            w,
            std::string("SELECT ") + kMembershipColumns + ", u.email, u.name" + kMembershipFrom +
                "JOIN users u ON u.id = m.user_id "
                "WHERE m.organization_id = $1::uuid ORDER BY u.email, u.id",
            organization_id);
        std::vector<Member> out;
        for (const auto& r : rows) {
          out.push_back(
              Member{.membership = MembershipFromRow(r), .email = Text(r[5]), .name = Text(r[6])});
        }
        return out;
      });
}

Result<Organization> GetOrganization(Tx& tx, const std::string& organization_id) {
  return internal::Run(
      tx, "get organization", [&](pqxx::transaction_base& w) -> Result<Organization> {
        const pqxx::result rows = internal::Exec(
            w, std::string("SELECT ") + kOrgColumns + " FROM organizations WHERE id = $1::uuid",
            organization_id);
        if (rows.empty()) return NotFound("organization " + organization_id + " not found");
        return OrgFromRow(rows[0]);
      });
}

Status SetMembership(Tx& tx, const std::string& organization_id, const std::string& user_id,
                     OrgRole role) {
  return internal::Run(tx, "set membership", [&](pqxx::transaction_base& w) -> Status {
    internal::Exec(w,
                   "INSERT INTO organization_memberships (organization_id, user_id, role) "
                   "VALUES ($1::uuid, $2::uuid, $3) "
                   "ON CONFLICT (organization_id, user_id) DO UPDATE SET role = EXCLUDED.role, "
                   "  updated_at = now()",
                   organization_id, user_id, std::string(Name(role)));
    return {};
  });
}

Result<bool> RemoveMembership(Tx& tx, const std::string& organization_id,
                              const std::string& user_id) {
  return internal::Run(tx, "remove membership", [&](pqxx::transaction_base& w) -> Result<bool> {
    return !internal::Exec(
                w,
                "DELETE FROM organization_memberships "
                "WHERE organization_id = $1::uuid AND user_id = $2::uuid RETURNING user_id",
                organization_id, user_id)
                .empty();
  });
}

Result<std::vector<Membership>> ListMemberships(Tx& tx, const std::string& user_id) {
  return internal::Run(tx, "list memberships",
                       [&](pqxx::transaction_base& w) -> Result<std::vector<Membership>> {
                         return ReadMemberships(w, user_id);
                       });
}

Result<CreatedApiKey> CreateApiKey(Tx& tx, const std::string& user_id, const std::string& name) {
  return internal::Run(tx, "create API key",
                       [&](pqxx::transaction_base& w) -> Result<CreatedApiKey> {
                         return InsertApiKey(w, user_id, name);
                       });
}

Result<std::vector<ApiKey>> ListApiKeys(Tx& tx, const std::string& user_id) {
  return internal::Run(
      tx, "list API keys", [&](pqxx::transaction_base& w) -> Result<std::vector<ApiKey>> {
        std::vector<ApiKey> keys;
        for (const auto& r : internal::Exec(w,
                                            std::string("SELECT ") + kKeyColumns +
                                                " FROM api_keys WHERE user_id = $1::uuid "
                                                "ORDER BY created_at DESC, id",
                                            user_id))
          keys.push_back(KeyFromRow(r));
        return keys;
      });
}

Result<ApiKey> GetApiKey(Tx& tx, const std::string& key_id) {
  return internal::Run(tx, "get API key", [&](pqxx::transaction_base& w) -> Result<ApiKey> {
    const pqxx::result rows = internal::Exec(
        w, std::string("SELECT ") + kKeyColumns + " FROM api_keys WHERE id = $1::uuid", key_id);
    if (rows.empty()) return NotFound("API key " + key_id + " not found");
    return KeyFromRow(rows[0]);
  });
}

Result<bool> RevokeApiKey(Tx& tx, const std::string& key_id) {
  return internal::Run(tx, "revoke API key", [&](pqxx::transaction_base& w) -> Result<bool> {
    const pqxx::result rows = internal::Exec(
        w,
        "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1::uuid "
        "RETURNING revoked_at = now()",
        key_id);
    if (rows.empty()) return NotFound("API key " + key_id + " not found");
    return rows[0][0].as<bool>();
  });
}

Result<std::optional<Principal>> AuthenticateApiKey(Tx& tx, std::string_view secret) {
  if (!secret.starts_with(kApiKeyPrefix) || secret.size() > 256) return std::optional<Principal>();
  return internal::Run(
      tx, "authenticate", [&](pqxx::transaction_base& w) -> Result<std::optional<Principal>> {
        const pqxx::result rows =
            internal::Exec(w,
                           std::string("SELECT ") + kKeyColumns +
                               " FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
                           SecretHash(secret));
        if (rows.empty()) return std::optional<Principal>();
        Principal p;
        p.api_key = KeyFromRow(rows[0]);
        p.user = UserFromRow(internal::Exec1(
            w, std::string("SELECT ") + kUserColumns + " FROM users WHERE id = $1::uuid",
            p.api_key.user_id));
        p.memberships = ReadMemberships(w, p.user.id);
        // A write per request would turn every read into one; a minute's
        // precision is what "last used" needs.
        internal::Exec(w,
                       "UPDATE api_keys SET last_used_at = now() WHERE id = $1::uuid "
                       "AND (last_used_at IS NULL OR last_used_at < now() - interval '60 seconds')",
                       p.api_key.id);
        return std::optional<Principal>(std::move(p));
      });
}

Result<Bootstrap> BootstrapPlatformAdmin(Tx& tx, const std::string& email, const std::string& name,
                                         const std::string& organization_name) {
  return internal::Run(
      tx, "bootstrap platform admin", [&](pqxx::transaction_base& w) -> Result<Bootstrap> {
        internal::Exec(w, "SELECT pg_advisory_xact_lock($1)", kBootstrapLockKey);
        if (!w.exec("SELECT 1 FROM users WHERE is_platform_admin LIMIT 1").empty())
          return MakeError(ErrorKind::kAlreadyExists, "a platform admin already exists");
        Bootstrap b;
        const pqxx::result existing = internal::Exec(
            w,
            std::string("UPDATE users SET is_platform_admin = true, updated_at = now() "
                        "WHERE lower(email) = lower($1) RETURNING ") +
                kUserColumns,
            email);
        b.user = existing.empty()
                     ? UserFromRow(internal::Exec1(
                           w,
                           std::string("INSERT INTO users (email, name, is_platform_admin) "
                                       "VALUES ($1, $2, true) RETURNING ") +
                               kUserColumns,
                           email, name))
                     : UserFromRow(existing[0]);
        b.organization = OrgFromRow(internal::Exec1(
            w, std::string("INSERT INTO organizations (name) VALUES ($1) RETURNING ") + kOrgColumns,
            organization_name));
        internal::Exec(w,
                       "INSERT INTO organization_memberships (organization_id, user_id, role) "
                       "VALUES ($1::uuid, $2::uuid, 'owner')",
                       b.organization.id, b.user.id);
        KINDLING_ASSIGN_OR_RETURN(b.api_key, InsertApiKey(w, b.user.id, "bootstrap"));
        return b;
      });
}

}  // namespace kindling::db
