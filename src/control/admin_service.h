// Platform-admin and account actions, each with its audit event in the same
// transaction: drain/activate, cluster settings (GET/PUT /api/meta), volume
// backup settings and secrets (accounts and API keys: account_service.h).
// Audit details name settings and secrets, never secret values.
//
// Thread-safety: free functions and a thread-safe class; state lives in the
// database.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/secret.h"
#include "control/backup_store.h"
#include "control/control_error.h"
#include "control/volume_service.h"
#include "db/auth.h"
#include "db/servers.h"

namespace kindling::control {

// server.drain / server.activate.
[[nodiscard]] ControlResult<db::Server> SetServerStatus(db::Database& db, const Actor& actor,
                                                        const std::string& server_id,
                                                        db::ServerStatus status);

// The cluster settings GET /api/meta shows and PUT /api/meta writes.
inline constexpr const char* kMetaSettings[] = {"public_base_url", "service_base_domain",
                                                "max_volume_size_gb"};

// The largest size_gb a volume may have (create or grow), cluster-wide:
// the max_volume_size_gb setting, this when unset.
inline constexpr int kDefaultMaxVolumeSizeGb = 16384;
[[nodiscard]] Result<int> MaxVolumeSizeGb(db::Tx& tx);

// Current values of kMetaSettings (unset ones absent).
[[nodiscard]] ControlResult<std::map<std::string, std::string>> GetMetaSettings(db::Database& db);
// Writes `values` (an empty value deletes the setting); audits
// cluster.settings.update with details.changed. REQUIRES: keys are in
// kMetaSettings. Returns the settings afterwards.
[[nodiscard]] ControlResult<std::map<std::string, std::string>> UpdateMetaSettings(
    db::Database& db, const Actor& actor, const std::map<std::string, std::string>& values);

// A change to the backup settings: unset fields are kept; an empty string
// (or an empty Secret) clears a setting or secret. Move-only: it may hold the
// new secret access key.
struct BackupSettingsUpdate {
  std::optional<std::string> s3_bucket{};
  std::optional<std::string> s3_region{};
  std::optional<std::string> s3_endpoint{};
  std::optional<std::string> s3_prefix{};
  std::optional<std::string> local_directory{};
  std::optional<std::string> s3_access_key_id{};
  std::optional<Secret> s3_secret_access_key{};
};

// The fields that select a store are mutually exclusive: a non-empty
// local_directory clears s3_bucket and a non-empty s3_bucket clears
// local_directory (switching the store); both at once is 400
// validation_error.
[[nodiscard]] ControlResult<BackupSettingsUpdate> ExclusiveStoreSelection(
    BackupSettingsUpdate update);

// What UpdateBackupSettings would save: `base` (the saved settings) with
// `update` applied after ExclusiveStoreSelection (its secret moves into the
// result). For POST .../test, which tests exactly the settings its body
// describes.
[[nodiscard]] ControlResult<BackupStoreSettings> MergeBackupSettings(BackupStoreSettings base,
                                                                     BackupSettingsUpdate update);

[[nodiscard]] ControlResult<BackupStoreSettings> GetBackupSettings(db::Database& db,
                                                                   const crypto::Key& master_key);
// Saves (after ExclusiveStoreSelection), auditing
// volume_backup_settings.update (details.changed: setting names) and, when
// secrets changed, cluster.secrets.update (details.secrets: names only), and
// records usable settings in the store history (RecordBackupStore). Returns
// the settings afterwards. The caller initialises the store afterwards
// (OpenBackupStore), outside the transaction.
[[nodiscard]] ControlResult<BackupStoreSettings> UpdateBackupSettings(db::Database& db,
                                                                      const crypto::Key& master_key,
                                                                      const Actor& actor,
                                                                      BackupSettingsUpdate update);

}  // namespace kindling::control
