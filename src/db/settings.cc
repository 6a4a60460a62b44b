#include "db/settings.h"

#include "db/internal.h"

namespace kindling::db {
namespace {

using internal::Text;
using internal::Time;

// Empty associated data: a reference database's secrets (sealed without
// any) keep opening after a migration to this project.
constexpr std::string_view kSecretAad = "";

}  // namespace

Result<std::optional<std::string>> GetSetting(Tx& tx, const std::string& key) {
  return internal::Run(tx, "get setting " + key,
                       [&](pqxx::transaction_base& w) -> Result<std::optional<std::string>> {
                         const pqxx::result rows = internal::Exec(
                             w, "SELECT value FROM cluster_settings WHERE key = $1", key);
                         if (rows.empty()) return std::optional<std::string>();
                         return std::optional<std::string>(Text(rows[0][0]));
                       });
}

Result<std::map<std::string, Setting>> ListSettings(Tx& tx) {
  return internal::Run(
      tx, "list settings",
      [&](pqxx::transaction_base& w) -> Result<std::map<std::string, Setting>> {
        std::map<std::string, Setting> settings;
        for (const auto& row : w.exec("SELECT key, value, updated_at FROM cluster_settings")) {
          Setting s{Text(row[0]), Text(row[1]), Time(row[2])};
          settings.emplace(s.key, std::move(s));
        }
        return settings;
      });
}

Result<bool> PutSetting(Tx& tx, const std::string& key, const std::string& value) {
  if (key.empty()) return InvalidArgument("empty setting key");
  return internal::Run(tx, "put setting " + key, [&](pqxx::transaction_base& w) -> Result<bool> {
    const pqxx::result rows =
        internal::Exec(w,
                       "INSERT INTO cluster_settings AS s (key, value) VALUES ($1, $2) "
                       "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now() "
                       "  WHERE s.value IS DISTINCT FROM EXCLUDED.value "
                       "RETURNING key",
                       key, value);
    if (rows.empty()) return false;
    internal::Notify(w, kConfigChannel, "cluster_settings:" + key);
    return true;
  });
}

Result<bool> DeleteSetting(Tx& tx, const std::string& key) {
  return internal::Run(tx, "delete setting " + key, [&](pqxx::transaction_base& w) -> Result<bool> {
    const pqxx::result rows =
        internal::Exec(w, "DELETE FROM cluster_settings WHERE key = $1 RETURNING key", key);
    if (rows.empty()) return false;
    internal::Notify(w, kConfigChannel, "cluster_settings:" + key);
    return true;
  });
}

Result<bool> PutSecret(Tx& tx, const crypto::Key& master_key, const std::string& key,
                       const std::string& plaintext) {
  if (key.empty()) return InvalidArgument("empty secret key");
  std::string sealed;
  crypto::SealAppend(master_key, plaintext, kSecretAad, sealed);
  return internal::Run(tx, "put secret " + key, [&](pqxx::transaction_base& w) -> Result<bool> {
    // xmax <> 0 tells an update (the row existed) from an insert.
    const pqxx::row row = internal::Exec1(
        w,
        "INSERT INTO cluster_secrets AS s (key, ciphertext) VALUES ($1, $2) "
        "ON CONFLICT (key) DO UPDATE SET ciphertext = EXCLUDED.ciphertext, updated_at = now() "
        "RETURNING (xmax <> 0)",
        key, pqxx::binarystring(sealed));
    internal::Notify(w, kConfigChannel, "cluster_secrets:" + key);
    return row[0].as<bool>();
  });
}

Result<std::optional<std::string>> GetSecret(Tx& tx, const crypto::Key& master_key,
                                             const std::string& key) {
  KINDLING_ASSIGN_OR_RETURN(
      std::optional<std::string> sealed,
      internal::Run(tx, "get secret " + key,
                    [&](pqxx::transaction_base& w) -> Result<std::optional<std::string>> {
                      const pqxx::result rows = internal::Exec(
                          w, "SELECT ciphertext FROM cluster_secrets WHERE key = $1", key);
                      if (rows.empty()) return std::optional<std::string>();
                      return std::optional<std::string>(internal::Bytes(rows[0][0]));
                    }));
  if (!sealed) return std::optional<std::string>();
  std::string plaintext;
  if (!crypto::Open(master_key, *sealed, kSecretAad, plaintext)) {
    return MakeError(ErrorKind::kWrongKey,
                     "cluster secret " + key +
                         " does not open with this master key (wrong master key file, or the "
                         "row was altered)");
  }
  return std::optional<std::string>(std::move(plaintext));
}

Result<std::vector<SecretInfo>> ListSecrets(Tx& tx) {
  return internal::Run(
      tx, "list secrets", [&](pqxx::transaction_base& w) -> Result<std::vector<SecretInfo>> {
        std::vector<SecretInfo> secrets;
        for (const auto& row : w.exec("SELECT key, updated_at FROM cluster_secrets ORDER BY key"))
          secrets.push_back(SecretInfo{Text(row[0]), Time(row[1])});
        return secrets;
      });
}

Result<bool> DeleteSecret(Tx& tx, const std::string& key) {
  return internal::Run(tx, "delete secret " + key, [&](pqxx::transaction_base& w) -> Result<bool> {
    const pqxx::result rows =
        internal::Exec(w, "DELETE FROM cluster_secrets WHERE key = $1 RETURNING key", key);
    if (rows.empty()) return false;
    internal::Notify(w, kConfigChannel, "cluster_secrets:" + key);
    return true;
  });
}

}  // namespace kindling::db
