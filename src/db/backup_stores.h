// volume_backup_stores: every store the cluster has written volume backups
// to, by storage_url (the value backup rows record), with what it takes to
// open it again: the non-secret settings and the S3 credentials, sealed
// (AES-256-GCM) with `key` and the url and field name as associated data, so
// a sealed value never opens for another store or field. Rows are kept after
// the settings move to another store: older backups are read from their own
// store. The opened secret access key is held as a Secret (a record is
// move-only); its only other plaintext copies, while sealing and opening, are
// wiped.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/secret.h"
#include "crypto/aead.h"
#include "db/database.h"
#include "db/types.h"

namespace kindling::db {

struct BackupStoreRecord {
  std::string storage_url{};
  std::string s3_bucket{};
  std::string s3_region{};
  std::string s3_endpoint{};
  std::string s3_prefix{};
  std::string local_directory{};
  std::string s3_access_key_id{};  // secret
  Secret s3_secret_access_key{};   // secret
  Timestamp created_at{};
  Timestamp updated_at{};
};

// Inserts or replaces the record of its storage_url. REQUIRES: storage_url is
// not empty.
[[nodiscard]] Status PutBackupStore(Tx& tx, const crypto::Key& key,
                                    const BackupStoreRecord& record);
// nullopt when the url was never recorded; kWrongKey when a secret does not
// open with `key`.
[[nodiscard]] Result<std::optional<BackupStoreRecord>> GetBackupStore(
    Tx& tx, const crypto::Key& key, const std::string& storage_url);
// Every record, without secrets, by url.
[[nodiscard]] Result<std::vector<BackupStoreRecord>> ListBackupStores(Tx& tx);

}  // namespace kindling::db
