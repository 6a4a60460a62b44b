#include "db/settings.h"

#include "common/secret.h"
#include "crypto/kdf.h"
#include "db/internal.h"

namespace kindling::db {
namespace {

using internal::Text;
using internal::Time;

// Format 2 (see the header): "kdl" 0x02 || nonce || ciphertext || tag, under
// the cluster-secrets subkey, the associated data binding the marker and the
// secret's name. A legacy row (the reference's: nonce || ciphertext || tag
// under the raw master key, no associated data) starts with the marker only
// when its random nonce does (2^-32): such a row fails to open as format 2
// and then opens as legacy, so the marker never makes a row unreadable.
constexpr std::string_view kFormat2Marker{"kdl\x02", 4};

std::string Format2Aad(const std::string& key) { return std::string(kFormat2Marker) + key; }

std::string SealSecret(const crypto::Key& master_key, const std::string& key,
                       std::string_view plaintext) {
  const crypto::Key subkey = crypto::DeriveKey(master_key, crypto::kClusterSecretsPurpose);
  std::string sealed(kFormat2Marker);
  crypto::SealAppend(subkey, plaintext, Format2Aad(key), sealed);
  return sealed;
}

// The plaintext of a row in either format; false when it opens in neither
// (another master key, another row's ciphertext, an altered byte).
bool OpenSecret(const crypto::Key& master_key, const std::string& key, std::string_view sealed,
                std::string& plaintext) {
  if (sealed.starts_with(kFormat2Marker)) {
    const crypto::Key subkey = crypto::DeriveKey(master_key, crypto::kClusterSecretsPurpose);
    if (crypto::Open(subkey, sealed.substr(kFormat2Marker.size()), Format2Aad(key), plaintext)) {
      return true;
    }
  }
  return static_cast<bool>(crypto::Open(master_key, sealed, /*aad=*/"", plaintext));
}

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
                       std::string_view plaintext) {
  if (key.empty()) return InvalidArgument("empty secret key");
  const std::string sealed = SealSecret(master_key, key, plaintext);
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
  if (!OpenSecret(master_key, key, *sealed, plaintext)) {
    WipeString(plaintext);  // what a failed open may have left in the buffer
    return MakeError(ErrorKind::kWrongKey,
                     "cluster secret " + key +
                         " does not open with this master key (wrong master key file, or the "
                         "row was altered or holds another secret's ciphertext)");
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
