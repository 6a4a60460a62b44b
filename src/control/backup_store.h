// The cluster's volume backup store, as configured through the API.
//
// Settings live in cluster_settings (volume_backup_s3_bucket, _s3_region,
// _s3_endpoint, _s3_prefix, and this project's volume_backup_local_directory
// for single-host set-ups) and cluster_secrets (volume_backup_s3_access_key_id,
// volume_backup_s3_secret_access_key, sealed with the master key). The store's
// data keys are sealed with the cluster master key too, so every host that has
// the master key can read every backup, and a restored database plus the
// master key is all disaster recovery needs.
//
// BackupStoreSettings holds the secret access key as a Secret, so settings are
// moved, not copied; the store opened from them takes its own copy.
//
// Thread-safety: free functions; OpenedBackupStore is thread-safe to use.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "common/result.h"
#include "common/secret.h"
#include "crypto/aead.h"
#include "db/database.h"
#include "engine/repository.h"
#include "storage/object_store.h"

namespace kindling::control {

inline constexpr char kSettingS3Bucket[] = "volume_backup_s3_bucket";
inline constexpr char kSettingS3Region[] = "volume_backup_s3_region";
inline constexpr char kSettingS3Endpoint[] = "volume_backup_s3_endpoint";
inline constexpr char kSettingS3Prefix[] = "volume_backup_s3_prefix";
inline constexpr char kSettingLocalDirectory[] = "volume_backup_local_directory";
inline constexpr char kSecretS3AccessKeyId[] = "volume_backup_s3_access_key_id";
inline constexpr char kSecretS3SecretAccessKey[] = "volume_backup_s3_secret_access_key";

struct BackupStoreSettings {
  std::string s3_bucket{};
  std::string s3_region{};
  std::string s3_endpoint{};
  std::string s3_prefix{};
  std::string local_directory{};   // absolute path; used when no bucket is set
  std::string s3_access_key_id{};  // secret: never logged, returned or audited
  Secret s3_secret_access_key{};   // secret: never logged, returned or audited

  // Empty when usable; otherwise why not (e.g. "volume_backup_s3_bucket is not
  // set"), for the backup_store_unavailable error.
  std::string MissingReason() const;
  // file:///dir or s3://bucket[/prefix]: no secrets.
  std::string Url() const;
};

// Reads the settings and decrypts the secrets. kWrongKey when a secret does not
// open with `master_key`.
[[nodiscard]] Result<BackupStoreSettings> LoadBackupStoreSettings(db::Tx& tx,
                                                                  const crypto::Key& master_key);

struct OpenedBackupStore {
  std::string url;
  std::unique_ptr<storage::ObjectStore> store;
  std::unique_ptr<engine::Repository> repository;  // refers to *store
};

// Opens the store the settings name and unlocks it with the master key. When
// the store has no keys yet and `db` is given, initialises it under a cluster-
// wide advisory lock so that two processes never create two sets of keys.
// `quick`: few retries with short backoff, for an operator waiting on an
// HTTP answer (workers retry patiently).
[[nodiscard]] Result<OpenedBackupStore> OpenBackupStore(const BackupStoreSettings& settings,
                                                        const crypto::Key& master_key,
                                                        db::Database* init_lock_db,
                                                        bool quick = false);

// Records `settings` (usable ones) in the store history under their Url().
[[nodiscard]] Status RecordBackupStore(db::Tx& tx, const crypto::Key& master_key,
                                       const BackupStoreSettings& settings);
// The recorded settings of `storage_url`; nullopt when never recorded.
[[nodiscard]] Result<std::optional<BackupStoreSettings>> LoadRecordedBackupStore(
    db::Tx& tx, const crypto::Key& master_key, const std::string& storage_url);

// Opens the current store (settings), recording it in the history first.
// kInvalidArgument when the settings are incomplete.
[[nodiscard]] Result<OpenedBackupStore> OpenCurrentBackupStore(db::Database& db,
                                                               const crypto::Key& master_key);
// Opens the store at `storage_url` (a backup row's) from the history; a
// file:// url that was never recorded is opened from its path. kNotFound
// when the cluster has no record of an s3:// url. Never initialises a store.
[[nodiscard]] Result<OpenedBackupStore> OpenBackupStoreAt(db::Database& db,
                                                          const crypto::Key& master_key,
                                                          const std::string& storage_url);

// Writes, reads back and deletes a probe object with these settings; the error
// says which step failed (and never includes a secret).
[[nodiscard]] Status ProbeBackupStore(const BackupStoreSettings& settings);

}  // namespace kindling::control
