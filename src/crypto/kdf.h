// Key derivation (HKDF-SHA-256, RFC 5869, through OpenSSL): one key per
// purpose from a root key (the cluster master key), so that a value sealed
// for one purpose never opens as another. Thread-safe.
#pragma once

#include <string_view>

#include "crypto/aead.h"

namespace kindling::crypto {

// HKDF-SHA-256(ikm = `root`, salt = none, info = "kindling " + `purpose`).
// REQUIRES: `purpose` names one use, e.g. "volume backup store secrets".
Key DeriveKey(const Key& root, std::string_view purpose);

// The purposes the cluster master key is used for, each through its own
// subkey (DeriveKey(master key, purpose)). What they sealed is persisted:
// a label is never changed, a new format gets a new label.
//   cluster_secrets rows (db/settings.h), each bound to its name.
inline constexpr std::string_view kClusterSecretsPurpose = "cluster-secrets/v1";
//   volume_backup_stores' sealed credentials (control/backup_store.h).
inline constexpr std::string_view kBackupStoreHistoryPurpose = "volume backup store secrets";
//   a store's config object, from the store's key file (which for the
//   control plane's stores is the master key; repo/store_keys.h).
inline constexpr std::string_view kStoreConfigPurpose = "store config/v1";
//   pgBackRest's repository cipher passphrase (pgbackup/config.h).
inline constexpr std::string_view kControlPlaneBackupPurpose = "control-plane backup repository";

}  // namespace kindling::crypto
