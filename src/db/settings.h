// cluster_settings and cluster_secrets: cluster-wide configuration.
//
// Secrets are sealed (AES-256-GCM) before they reach the database; only
// GetSecret ever returns a value, and a wrong master key is reported as such
// instead of as garbage. Two formats of cluster_secrets.ciphertext:
//   - format 2, written by PutSecret: "kdl" 0x02 || nonce || ciphertext ||
//     tag under the subkey DeriveKey(master key, kClusterSecretsPurpose),
//     the associated data binding the secret's name, so one row's
//     ciphertext copied into another row does not open;
//   - legacy, the reference's: nonce || ciphertext || tag under the raw
//     master key with no associated data. Still read (a reference database,
//     or a row inserted by hand as its runbook does) and replaced by format
//     2 on the secret's next PutSecret. Every write announces itself
// with pg_notify('kindling_config', "<table>:<key>") in the same transaction,
// so listeners reload only after it commits; payloads never carry values.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "crypto/aead.h"
#include "db/database.h"
#include "db/types.h"

namespace kindling::db {

inline constexpr char kConfigChannel[] = "kindling_config";

struct Setting {
  std::string key{};
  std::string value{};
  Timestamp updated_at{};
};

// nullopt when the key is not set.
[[nodiscard]] Result<std::optional<std::string>> GetSetting(Tx& tx, const std::string& key);
// Every setting by key.
[[nodiscard]] Result<std::map<std::string, Setting>> ListSettings(Tx& tx);
// Inserts or updates; true when the stored value changed (callers audit
// `details.changed` from it). No NOTIFY when nothing changed.
[[nodiscard]] Result<bool> PutSetting(Tx& tx, const std::string& key, const std::string& value);
// True when a row was deleted.
[[nodiscard]] Result<bool> DeleteSetting(Tx& tx, const std::string& key);

struct SecretInfo {
  std::string key{};
  Timestamp updated_at{};
};

// Seals `plaintext` with `master_key` and stores it (a fresh nonce every
// time, so re-putting the same value still rotates the ciphertext). Returns
// true when the key was already set (a rotation), false for a new secret.
[[nodiscard]] Result<bool> PutSecret(Tx& tx, const crypto::Key& master_key, const std::string& key,
                                     std::string_view plaintext);
// nullopt when not set; kWrongKey when the ciphertext does not open with
// `master_key` (a different key, or an altered row).
[[nodiscard]] Result<std::optional<std::string>> GetSecret(Tx& tx, const crypto::Key& master_key,
                                                           const std::string& key);
// Which secrets are set, without values, by key.
[[nodiscard]] Result<std::vector<SecretInfo>> ListSecrets(Tx& tx);
[[nodiscard]] Result<bool> DeleteSecret(Tx& tx, const std::string& key);

}  // namespace kindling::db
