#include "control/backup_store.h"

#include <chrono>
#include <thread>
#include <utility>

#include "common/ids.h"
#include "common/scrub.h"
#include "crypto/kdf.h"
#include "db/backup_stores.h"
#include "db/notifications.h"
#include "db/settings.h"
#include "storage/store_url.h"

namespace kindling::control {
namespace {

// pg advisory lock key serialising store initialisation ("kindlbsi").
constexpr std::int64_t kStoreInitLockKey = 0x6b696e646c627369;
constexpr auto kStoreInitLockWait = std::chrono::seconds(30);

std::string TrimSlashes(std::string_view text) {
  while (!text.empty() && text.front() == '/') text.remove_prefix(1);
  while (!text.empty() && text.back() == '/') text.remove_suffix(1);
  return std::string(text);
}

// Error messages from the store may quote request details; credentials must
// never leave this layer, so any occurrence is masked.
std::string Scrub(std::string_view message, const BackupStoreSettings& settings) {
  return ScrubSecrets(message, {settings.s3_secret_access_key.Reveal(), settings.s3_access_key_id},
                      "***");
}

Error ScrubbedError(const Error& error, const BackupStoreSettings& settings,
                    std::string_view context) {
  return Error(error.kind(), std::string(context) + ": " + Scrub(error.message(), settings));
}

storage::StoreOptions OptionsFor(const BackupStoreSettings& settings, bool quick) {
  storage::StoreOptions options;
  options.s3_endpoint = settings.s3_endpoint;
  options.s3_region = settings.s3_region;
  options.access_key_id = settings.s3_access_key_id;
  options.secret_access_key = settings.s3_secret_access_key.Clone();
  if (quick) {
    // A probe answers an operator waiting on an HTTP request: fail fast.
    options.retry.max_attempts = 2;
    options.retry.max_backoff = std::chrono::milliseconds(500);
  }
  return options;
}

Result<std::unique_ptr<storage::ObjectStore>> OpenRawStore(const BackupStoreSettings& settings,
                                                           bool quick) {
  if (std::string reason = settings.MissingReason(); !reason.empty()) {
    return InvalidArgument("backup store not configured: " + reason);
  }
  auto store = storage::OpenStore(settings.Url(), OptionsFor(settings, quick));
  if (!store) return std::unexpected(ScrubbedError(store.error(), settings, "open backup store"));
  return std::move(*store);
}

Result<std::unique_ptr<db::SessionLock>> AcquireInitLock(db::Database& db) {
  const auto deadline = std::chrono::steady_clock::now() + kStoreInitLockWait;
  while (true) {
    KINDLING_ASSIGN_OR_RETURN(auto lock,
                              db::SessionLock::TryAcquire(db.options().dsn, kStoreInitLockKey));
    if (lock) return lock;
    if (std::chrono::steady_clock::now() > deadline) {
      return TransientError("timed out waiting for another process initialising the backup store");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

}  // namespace

std::string BackupStoreSettings::MissingReason() const {
  if (!s3_bucket.empty()) {
    if (s3_access_key_id.empty()) return std::string(kSecretS3AccessKeyId) + " is not set";
    if (s3_secret_access_key.empty()) return std::string(kSecretS3SecretAccessKey) + " is not set";
    return "";
  }
  if (!local_directory.empty()) {
    if (local_directory.front() != '/') {
      return std::string(kSettingLocalDirectory) + " must be an absolute path";
    }
    return "";
  }
  return std::string(kSettingS3Bucket) + " is not set";
}

std::string BackupStoreSettings::Url() const {
  if (!s3_bucket.empty()) {
    std::string url = "s3://" + s3_bucket;
    if (std::string prefix = TrimSlashes(s3_prefix); !prefix.empty()) url += "/" + prefix;
    return url;
  }
  if (local_directory.empty()) return "";
  return "file://" + local_directory;
}

Result<BackupStoreSettings> LoadBackupStoreSettings(db::Tx& tx, const crypto::Key& master_key) {
  BackupStoreSettings settings;
  const std::pair<const char*, std::string*> plain[] = {
      {kSettingS3Bucket, &settings.s3_bucket},
      {kSettingS3Region, &settings.s3_region},
      {kSettingS3Endpoint, &settings.s3_endpoint},
      {kSettingS3Prefix, &settings.s3_prefix},
      {kSettingLocalDirectory, &settings.local_directory},
  };
  for (const auto& [key, field] : plain) {
    KINDLING_ASSIGN_OR_RETURN(auto value, db::GetSetting(tx, key));
    if (value) *field = std::move(*value);
  }
  KINDLING_ASSIGN_OR_RETURN(auto access_key_id,
                            db::GetSecret(tx, master_key, kSecretS3AccessKeyId));
  if (access_key_id) settings.s3_access_key_id = std::move(*access_key_id);
  KINDLING_ASSIGN_OR_RETURN(auto secret, db::GetSecret(tx, master_key, kSecretS3SecretAccessKey));
  if (secret) settings.s3_secret_access_key = Secret(std::move(*secret));
  return settings;
}

Result<OpenedBackupStore> OpenBackupStore(const BackupStoreSettings& settings,
                                          const crypto::Key& master_key, db::Database* init_lock_db,
                                          bool quick) {
  OpenedBackupStore opened;
  opened.url = settings.Url();
  KINDLING_ASSIGN_OR_RETURN(opened.store, OpenRawStore(settings, quick));

  auto repository = engine::Repository::Open(*opened.store, master_key);
  if (!repository && repository.error().is_not_found() && init_lock_db != nullptr) {
    // Two processes saving settings at once must not both create keys: the
    // second would make the first one's backups unreadable.
    KINDLING_ASSIGN_OR_RETURN(auto lock, AcquireInitLock(*init_lock_db));
    repository = engine::Repository::Open(*opened.store, master_key);
    if (!repository && repository.error().is_not_found()) {
      repository = engine::Repository::Init(*opened.store, master_key);
      if (!repository && repository.error().kind() == ErrorKind::kAlreadyExists) {
        repository = engine::Repository::Open(*opened.store, master_key);
      }
    }
  }
  if (!repository) {
    std::string context = "unlock backup store " + opened.url;
    if (repository.error().kind() == ErrorKind::kWrongKey) {
      context += " (it was initialised with another master key)";
    }
    return std::unexpected(ScrubbedError(repository.error(), settings, context));
  }
  opened.repository = std::make_unique<engine::Repository>(std::move(*repository));
  return opened;
}

namespace {

crypto::Key HistoryKey(const crypto::Key& master_key) {
  return crypto::DeriveKey(master_key, crypto::kBackupStoreHistoryPurpose);
}

}  // namespace

Status RecordBackupStore(db::Tx& tx, const crypto::Key& master_key,
                         const BackupStoreSettings& settings) {
  if (std::string reason = settings.MissingReason(); !reason.empty())
    return InvalidArgument("backup store not configured: " + reason);
  // Only what selects and opens the store the url names.
  const bool s3 = !settings.s3_bucket.empty();
  return db::PutBackupStore(
      tx, HistoryKey(master_key),
      db::BackupStoreRecord{
          .storage_url = settings.Url(),
          .s3_bucket = settings.s3_bucket,
          .s3_region = s3 ? settings.s3_region : "",
          .s3_endpoint = s3 ? settings.s3_endpoint : "",
          .s3_prefix = s3 ? settings.s3_prefix : "",
          .local_directory = s3 ? "" : settings.local_directory,
          .s3_access_key_id = s3 ? settings.s3_access_key_id : "",
          .s3_secret_access_key = s3 ? settings.s3_secret_access_key.Clone() : Secret()});
}

Result<std::optional<BackupStoreSettings>> LoadRecordedBackupStore(db::Tx& tx,
                                                                   const crypto::Key& master_key,
                                                                   const std::string& storage_url) {
  KINDLING_ASSIGN_OR_RETURN(auto record,
                            db::GetBackupStore(tx, HistoryKey(master_key), storage_url));
  if (!record) return std::optional<BackupStoreSettings>();
  return std::optional<BackupStoreSettings>(
      BackupStoreSettings{.s3_bucket = record->s3_bucket,
                          .s3_region = record->s3_region,
                          .s3_endpoint = record->s3_endpoint,
                          .s3_prefix = record->s3_prefix,
                          .local_directory = record->local_directory,
                          .s3_access_key_id = record->s3_access_key_id,
                          .s3_secret_access_key = std::move(record->s3_secret_access_key)});
}

Result<OpenedBackupStore> OpenCurrentBackupStore(db::Database& db, const crypto::Key& master_key) {
  KINDLING_ASSIGN_OR_RETURN(BackupStoreSettings settings, db.Transact([&](db::Tx& tx) {
    return LoadBackupStoreSettings(tx, master_key);
  }));
  if (const std::string missing = settings.MissingReason(); !missing.empty())
    return InvalidArgument("backup store unavailable: " + missing);
  KINDLING_RETURN_IF_ERROR(
      db.Transact([&](db::Tx& tx) { return RecordBackupStore(tx, master_key, settings); }));
  return OpenBackupStore(settings, master_key, &db);
}

Result<OpenedBackupStore> OpenBackupStoreAt(db::Database& db, const crypto::Key& master_key,
                                            const std::string& storage_url) {
  KINDLING_ASSIGN_OR_RETURN(auto recorded, db.Transact([&](db::Tx& tx) {
    return LoadRecordedBackupStore(tx, master_key, storage_url);
  }));
  BackupStoreSettings settings;
  if (recorded) {
    settings = std::move(*recorded);
  } else if (storage_url.starts_with("file:///")) {
    settings.local_directory = storage_url.substr(std::string_view("file://").size());
  } else {
    return NotFound("backup store " + storage_url +
                    " is not recorded in this cluster (set it as the backup store once, with "
                    "its credentials, to read its backups)");
  }
  if (settings.Url() != storage_url)
    return Corruption("the store recorded for " + storage_url + " opens as " + settings.Url());
  return OpenBackupStore(settings, master_key, /*init_lock_db=*/nullptr);
}

Status ProbeBackupStore(const BackupStoreSettings& settings) {
  KINDLING_ASSIGN_OR_RETURN(auto store, OpenRawStore(settings, /*quick=*/true));
  const std::string key = "probes/" + NewUuidV4();
  const std::string payload = "kindling backup store probe " + key;
  if (auto put = store->Put(key, payload); !put) {
    return std::unexpected(ScrubbedError(put.error(), settings, "write probe object"));
  }
  auto got = store->Get(key);
  if (!got) {
    return std::unexpected(ScrubbedError(got.error(), settings, "read probe object"));
  }
  if (*got != payload) {
    IgnoreError(store->Delete(key),
                "the mismatch is the error to report; a probe object left behind is harmless");
    return Corruption("read probe object: content differs from what was written");
  }
  if (auto deleted = store->Delete(key); !deleted) {
    return std::unexpected(ScrubbedError(deleted.error(), settings, "delete probe object"));
  }
  return OkStatus();
}

}  // namespace kindling::control
