#include "control/admin_service.h"

#include <array>
#include <charconv>
#include <nlohmann/json.hpp>
#include <string_view>
#include <utility>

#include "db/settings.h"

namespace kindling::control {
namespace {

using nlohmann::json;

struct PlainField {
  const char* key;
  std::optional<std::string> BackupSettingsUpdate::*update;
  std::string BackupStoreSettings::*settings;
};

constexpr PlainField kPlainFields[] = {
    {kSettingS3Bucket, &BackupSettingsUpdate::s3_bucket, &BackupStoreSettings::s3_bucket},
    {kSettingS3Region, &BackupSettingsUpdate::s3_region, &BackupStoreSettings::s3_region},
    {kSettingS3Endpoint, &BackupSettingsUpdate::s3_endpoint, &BackupStoreSettings::s3_endpoint},
    {kSettingS3Prefix, &BackupSettingsUpdate::s3_prefix, &BackupStoreSettings::s3_prefix},
    {kSettingLocalDirectory, &BackupSettingsUpdate::local_directory,
     &BackupStoreSettings::local_directory},
};

// The secrets an update sets (a value) or clears (an empty value); nullopt for
// those it leaves alone. The views point into `update`.
std::array<std::pair<const char*, std::optional<std::string_view>>, 2> SecretChanges(
    const BackupSettingsUpdate& update) {
  std::optional<std::string_view> access_key_id;
  if (update.s3_access_key_id) access_key_id = *update.s3_access_key_id;
  std::optional<std::string_view> secret_access_key;
  if (update.s3_secret_access_key) secret_access_key = update.s3_secret_access_key->Reveal();
  return {{{kSecretS3AccessKeyId, access_key_id}, {kSecretS3SecretAccessKey, secret_access_key}}};
}

Result<std::map<std::string, std::string>> ReadMeta(db::Tx& tx) {
  std::map<std::string, std::string> out;
  for (const char* key : kMetaSettings) {
    KINDLING_ASSIGN_OR_RETURN(auto value, db::GetSetting(tx, key));
    if (value) out[key] = std::move(*value);
  }
  return out;
}

}  // namespace

ControlResult<db::Server> SetServerStatus(db::Database& db, const Actor& actor,
                                          const std::string& server_id, db::ServerStatus status) {
  return TransactChecked<db::Server>(
      db, [&](db::Tx& tx, std::optional<ControlError>& refusal) -> Result<db::Server> {
        auto change = db::SetServerStatus(tx, server_id, status);
        if (!change) {
          if (change.error().is_not_found()) {
            refusal = ControlError{404, kCodeNotFound, "server " + server_id + " does not exist"};
            return Refused();
          }
          return std::unexpected(change.error());
        }
        const char* action =
            status == db::ServerStatus::kActive ? "server.activate" : "server.drain";
        KINDLING_RETURN_IF_ERROR(Audit(tx, actor, action, "server", server_id,
                                       json{{"previous_status", db::Name(change->previous)},
                                            {"status", db::Name(change->server.status)},
                                            {"hostname", change->server.hostname}}
                                           .dump()));
        return change->server;
      });
}

Result<int> MaxVolumeSizeGb(db::Tx& tx) {
  KINDLING_ASSIGN_OR_RETURN(auto value, db::GetSetting(tx, "max_volume_size_gb"));
  if (!value) return kDefaultMaxVolumeSizeGb;
  int max = 0;
  const auto [end, ec] = std::from_chars(value->data(), value->data() + value->size(), max);
  // Only PUT /api/meta writes it, as a positive integer; anything else
  // (SQL by hand) is refused rather than read as no limit.
  if (ec != std::errc() || end != value->data() + value->size() || max < 1)
    return InvalidArgument("the cluster setting max_volume_size_gb is not a positive integer");
  return max;
}

ControlResult<std::map<std::string, std::string>> GetMetaSettings(db::Database& db) {
  return TransactChecked<std::map<std::string, std::string>>(
      db, [&](db::Tx& tx, std::optional<ControlError>&) { return ReadMeta(tx); });
}

ControlResult<std::map<std::string, std::string>> UpdateMetaSettings(
    db::Database& db, const Actor& actor, const std::map<std::string, std::string>& values) {
  return TransactChecked<std::map<std::string, std::string>>(
      db,
      [&](db::Tx& tx, std::optional<ControlError>&) -> Result<std::map<std::string, std::string>> {
        json changed = json::array();
        for (const auto& [key, value] : values) {
          bool did_change = false;
          if (value.empty()) {
            KINDLING_ASSIGN_OR_RETURN(did_change, db::DeleteSetting(tx, key));
          } else {
            KINDLING_ASSIGN_OR_RETURN(did_change, db::PutSetting(tx, key, value));
          }
          if (did_change) changed.push_back(key);
        }
        KINDLING_RETURN_IF_ERROR(Audit(tx, actor, "cluster.settings.update", "cluster_settings",
                                       std::nullopt, json{{"changed", changed}}.dump()));
        return ReadMeta(tx);
      });
}

ControlResult<BackupSettingsUpdate> ExclusiveStoreSelection(BackupSettingsUpdate update) {
  const bool local = update.local_directory && !update.local_directory->empty();
  const bool bucket = update.s3_bucket && !update.s3_bucket->empty();
  if (local && bucket) {
    return Refuse(400, kCodeValidation,
                  "local_directory and s3_bucket select different stores: give one of them");
  }
  if (local) update.s3_bucket = std::string();
  if (bucket) update.local_directory = std::string();
  return update;
}

ControlResult<BackupStoreSettings> MergeBackupSettings(BackupStoreSettings base,
                                                       BackupSettingsUpdate requested) {
  auto selected = ExclusiveStoreSelection(std::move(requested));
  if (!selected) return std::unexpected(selected.error());
  BackupSettingsUpdate& update = *selected;
  for (const PlainField& field : kPlainFields) {
    if (update.*field.update) base.*field.settings = *(update.*field.update);
  }
  if (update.s3_access_key_id) base.s3_access_key_id = *update.s3_access_key_id;
  if (update.s3_secret_access_key)
    base.s3_secret_access_key = std::move(*update.s3_secret_access_key);
  return base;
}

ControlResult<BackupStoreSettings> GetBackupSettings(db::Database& db,
                                                     const crypto::Key& master_key) {
  return TransactChecked<BackupStoreSettings>(db, [&](db::Tx& tx, std::optional<ControlError>&) {
    return LoadBackupStoreSettings(tx, master_key);
  });
}

ControlResult<BackupStoreSettings> UpdateBackupSettings(db::Database& db,
                                                        const crypto::Key& master_key,
                                                        const Actor& actor,
                                                        BackupSettingsUpdate requested) {
  auto selected = ExclusiveStoreSelection(std::move(requested));
  if (!selected) return std::unexpected(selected.error());
  const BackupSettingsUpdate& update = *selected;
  if (update.local_directory && !update.local_directory->empty() &&
      update.local_directory->front() != '/') {
    return Refuse(400, kCodeValidation, "local_directory must be an absolute path");
  }
  return TransactChecked<BackupStoreSettings>(
      db, [&](db::Tx& tx, std::optional<ControlError>&) -> Result<BackupStoreSettings> {
        json changed = json::array();
        for (const PlainField& field : kPlainFields) {
          const auto& value = update.*field.update;
          if (!value) continue;
          bool did_change = false;
          if (value->empty()) {
            KINDLING_ASSIGN_OR_RETURN(did_change, db::DeleteSetting(tx, field.key));
          } else {
            KINDLING_ASSIGN_OR_RETURN(did_change, db::PutSetting(tx, field.key, *value));
          }
          if (did_change) changed.push_back(field.key);
        }
        json secrets_set = json::array();
        json secrets_cleared = json::array();
        json secrets_rotated = json::array();
        for (const auto& [key, value] : SecretChanges(update)) {
          if (!value) continue;
          if (value->empty()) {
            KINDLING_ASSIGN_OR_RETURN(bool deleted, db::DeleteSecret(tx, key));
            if (deleted) secrets_cleared.push_back(key);
          } else {
            KINDLING_ASSIGN_OR_RETURN(bool rotated, db::PutSecret(tx, master_key, key, *value));
            secrets_set.push_back(key);
            if (rotated) secrets_rotated.push_back(key);
          }
        }
        json secret_names = secrets_set;
        for (const auto& name : secrets_cleared) secret_names.push_back(name);
        KINDLING_RETURN_IF_ERROR(
            Audit(tx, actor, "volume_backup_settings.update", "volume_backup_settings",
                  std::nullopt, json{{"changed", changed}, {"secrets", secret_names}}.dump()));
        if (!secret_names.empty()) {
          KINDLING_RETURN_IF_ERROR(Audit(tx, actor, "cluster.secrets.update", "cluster_secrets",
                                         std::nullopt,
                                         json{{"secrets", secret_names},
                                              {"set", secrets_set},
                                              {"rotated", secrets_rotated},
                                              {"cleared", secrets_cleared}}
                                             .dump()));
        }
        KINDLING_ASSIGN_OR_RETURN(BackupStoreSettings after,
                                  LoadBackupStoreSettings(tx, master_key));
        // Backups written from now on name this store: remember how to open
        // it for as long as they may be restored.
        if (after.MissingReason().empty())
          KINDLING_RETURN_IF_ERROR(RecordBackupStore(tx, master_key, after));
        return after;
      });
}

}  // namespace kindling::control
