#include "service/master_key.h"

#include <chrono>
#include <ctime>
#include <nlohmann/json.hpp>
#include <system_error>

#include "common/files.h"
#include "common/secret.h"
#include "crypto/key_file.h"
#include "crypto/sha256.h"
#include "db/audit.h"
#include "db/settings.h"
#include "service/serve.h"

namespace kindling::service {
namespace {

using nlohmann::json;

// kWrongKey when the cluster recorded another key's check value.
Result<bool> CheckAgainstCluster(db::Database* db, const crypto::Key& key,
                                 const std::filesystem::path& shown_as) {
  if (db == nullptr) return false;
  KINDLING_ASSIGN_OR_RETURN(std::optional<std::string> recorded, RecordedMasterKeyCheck(*db));
  if (!recorded) return false;
  if (*recorded != MasterKeyCheckValue(key)) {
    return MakeError(ErrorKind::kWrongKey,
                     "the master key " + shown_as.string() +
                         " is not this cluster's: its secrets and backup store keys were sealed "
                         "with another one (cluster_settings.master_key_check differs)");
  }
  return true;
}

Status AuditKeyAction(db::Database& db, const std::string& action, const json& details) {
  return db.Transact([&](db::Tx& tx) -> Status {
    auto id = db::InsertAuditEvent(
        tx, db::AuditEventInput{
                .action = action, .resource_type = "cluster", .details_json = details.dump()});
    if (!id) return std::unexpected(id.error());
    return OkStatus();
  });
}

std::string NowRfc3339() {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm utc{};
  ::gmtime_r(&now, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

}  // namespace

std::string MasterKeyCheckValue(const crypto::Key& key) {
  return crypto::DigestHex(
             crypto::HmacSha256(crypto::KeyBytes(key), "kindling master key check v1"))
      .substr(0, 32);
}

Result<std::optional<std::string>> RecordedMasterKeyCheck(db::Database& db) {
  return db.Transact([&](db::Tx& tx) { return db::GetSetting(tx, kMasterKeyCheckSetting); });
}

Result<std::optional<MasterKeyExportRecord>> RecordedMasterKeyExport(db::Database& db) {
  return db.Transact([&](db::Tx& tx) -> Result<std::optional<MasterKeyExportRecord>> {
    KINDLING_ASSIGN_OR_RETURN(std::optional<std::string> at,
                              db::GetSetting(tx, kMasterKeyExportedAtSetting));
    if (!at) return std::optional<MasterKeyExportRecord>();
    KINDLING_ASSIGN_OR_RETURN(std::optional<std::string> check,
                              db::GetSetting(tx, kMasterKeyExportedCheckSetting));
    return std::optional(MasterKeyExportRecord{.exported_at = *at, .check = check.value_or("")});
  });
}

Result<std::optional<std::string>> MasterKeyExportWarning(db::Database& db) {
  KINDLING_ASSIGN_OR_RETURN(std::optional<MasterKeyExportRecord> exported,
                            RecordedMasterKeyExport(db));
  if (!exported)
    return std::optional<std::string>(
        "no export of the master key recorded: without the key the control-plane repository, "
        "a restored database's secrets and every volume backup are unreadable. Run `kindling "
        "admin master-key export --out FILE` and keep the file offline, apart from the "
        "backups");
  KINDLING_ASSIGN_OR_RETURN(std::optional<std::string> current, RecordedMasterKeyCheck(db));
  if (current && !exported->check.empty() && exported->check != *current)
    return std::optional<std::string>(
        "the master key export recorded (" + exported->exported_at +
        ") is of another key than the cluster's: export the current key again (`kindling admin "
        "master-key export --out FILE`)");
  return std::optional<std::string>();
}

Result<MasterKeyCopy> ExportMasterKey(const std::filesystem::path& key_file,
                                      const std::filesystem::path& out, bool force,
                                      db::Database* db) {
  auto key = crypto::LoadKeyFile(key_file);
  if (!key) {
    if (key.error().is_not_found())
      return NotFound("no master key at " + key_file.string() +
                      " (--master-key-file or --state-dir name it)");
    return std::unexpected(key.error());
  }
  MasterKeyCopy copy;
  KINDLING_ASSIGN_OR_RETURN(copy.checked_against_cluster, CheckAgainstCluster(db, *key, key_file));
  std::error_code ec;
  if (std::filesystem::exists(out, ec)) {
    auto existing = crypto::LoadKeyFile(out);
    if (existing && *existing == *key) {
      copy.unchanged = true;
    } else if (!force) {
      return MakeError(ErrorKind::kAlreadyExists,
                       out.string() + " exists and does not hold this key; --force replaces it");
    }
  }
  if (!copy.unchanged)
    KINDLING_RETURN_IF_ERROR(WriteFileAtomic(out, crypto::KeyFileText(*key).Reveal(), 0600));
  if (db != nullptr) {
    KINDLING_RETURN_IF_ERROR(db->Transact([&](db::Tx& tx) -> Status {
      auto put = db::PutSetting(tx, kMasterKeyExportedAtSetting, NowRfc3339());
      if (!put) return std::unexpected(put.error());
      auto check = db::PutSetting(tx, kMasterKeyExportedCheckSetting, MasterKeyCheckValue(*key));
      if (!check) return std::unexpected(check.error());
      return OkStatus();
    }));
    KINDLING_RETURN_IF_ERROR(
        AuditKeyAction(*db, "cluster.master_key.export",
                       json{{"checked_against_cluster", copy.checked_against_cluster}}));
  }
  return copy;
}

Result<MasterKeyCopy> ImportMasterKey(const std::filesystem::path& from,
                                      const std::filesystem::path& key_file, bool force,
                                      db::Database* db) {
  auto key = crypto::LoadKeyFile(from);
  if (!key) {
    if (key.error().is_not_found()) return InvalidArgument("no key file at " + from.string());
    return InvalidArgument(key.error().message());
  }
  MasterKeyCopy copy;
  KINDLING_ASSIGN_OR_RETURN(copy.checked_against_cluster, CheckAgainstCluster(db, *key, from));
  std::error_code ec;
  if (std::filesystem::exists(key_file, ec)) {
    auto existing = crypto::LoadKeyFile(key_file);
    if (existing && *existing == *key) {
      copy.unchanged = true;
    } else if (!force) {
      return MakeError(ErrorKind::kAlreadyExists,
                       key_file.string() +
                           " holds another master key; replacing it makes what it sealed "
                           "unreadable. --force replaces it (the old file is kept beside it)");
    } else {
      // Never destroy a key: it may be the only copy of another cluster's.
      const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
      std::filesystem::path kept = key_file;
      kept += ".replaced-" + std::to_string(seconds);
      KINDLING_ASSIGN_OR_RETURN(std::string old_text, ReadFile(key_file));
      const Secret old(std::move(old_text));  // key material: wiped on every path
      KINDLING_RETURN_IF_ERROR(WriteFileAtomic(kept, old.Reveal(), 0600));
      copy.replaced_key_kept_at = kept;
    }
  }
  if (!copy.unchanged) {
    std::filesystem::create_directories(key_file.parent_path(), ec);
    if (ec) return IoError("create " + key_file.parent_path().string() + ": " + ec.message());
    KINDLING_RETURN_IF_ERROR(WriteFileAtomic(key_file, crypto::KeyFileText(*key).Reveal(), 0600));
  }
  if (db != nullptr) {
    KINDLING_RETURN_IF_ERROR(
        AuditKeyAction(*db, "cluster.master_key.import",
                       json{{"checked_against_cluster", copy.checked_against_cluster},
                            {"replaced", copy.replaced_key_kept_at.has_value()}}));
  }
  return copy;
}

}  // namespace kindling::service
