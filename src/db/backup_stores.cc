#include "db/backup_stores.h"

#include "common/hex.h"
#include "db/internal.h"

namespace kindling::db {
namespace {

using internal::Text;
using internal::Time;

std::string Aad(const std::string& url, std::string_view field) {
  return "volume_backup_stores:" + url + ":" + std::string(field);
}

std::optional<std::string> Seal(const crypto::Key& key, const std::string& url,
                                std::string_view field, std::string_view plaintext) {
  if (plaintext.empty()) return std::nullopt;
  std::string sealed;
  crypto::SealAppend(key, plaintext, Aad(url, field), sealed);
  return sealed;
}

}  // namespace

Status PutBackupStore(Tx& tx, const crypto::Key& key, const BackupStoreRecord& r) {
  if (r.storage_url.empty()) return InvalidArgument("a backup store needs its storage_url");
  const auto access = Seal(key, r.storage_url, "s3_access_key_id", r.s3_access_key_id);
  const auto secret =
      Seal(key, r.storage_url, "s3_secret_access_key", r.s3_secret_access_key.Reveal());
  // bytea in its hex input form.
  auto bytea = [](const std::optional<std::string>& v) -> std::optional<std::string> {
    if (!v) return std::nullopt;
    return "\\x" + HexEncode(*v);
  };

  return internal::Run(tx, "record backup store", [&](pqxx::transaction_base& w) -> Status {
    internal::Exec(
        w,
        "INSERT INTO volume_backup_stores (storage_url, s3_bucket, s3_region, s3_endpoint, "
        "  s3_prefix, local_directory, s3_access_key_id, s3_secret_access_key) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7::bytea, $8::bytea) "
        "ON CONFLICT (storage_url) DO UPDATE SET s3_bucket = EXCLUDED.s3_bucket, "
        "  s3_region = EXCLUDED.s3_region, s3_endpoint = EXCLUDED.s3_endpoint, "
        "  s3_prefix = EXCLUDED.s3_prefix, local_directory = EXCLUDED.local_directory, "
        "  s3_access_key_id = EXCLUDED.s3_access_key_id, "
        "  s3_secret_access_key = EXCLUDED.s3_secret_access_key, updated_at = now()",
        r.storage_url, r.s3_bucket, r.s3_region, r.s3_endpoint, r.s3_prefix, r.local_directory,
        bytea(access), bytea(secret));
    return OkStatus();
  });
}

Result<std::optional<BackupStoreRecord>> GetBackupStore(Tx& tx, const crypto::Key& key,
                                                        const std::string& storage_url) {
  struct Sealed {
    BackupStoreRecord record;
    std::optional<std::string> access;
    std::optional<std::string> secret;
  };
  KINDLING_ASSIGN_OR_RETURN(
      std::optional<Sealed> row,
      internal::Run(
          tx, "get backup store", [&](pqxx::transaction_base& w) -> Result<std::optional<Sealed>> {
            const pqxx::result rows =
                internal::Exec(w,
                               "SELECT storage_url, s3_bucket, s3_region, s3_endpoint, s3_prefix, "
                               "  local_directory, s3_access_key_id, s3_secret_access_key, "
                               "  created_at, updated_at "
                               "FROM volume_backup_stores WHERE storage_url = $1",
                               storage_url);
            if (rows.empty()) return std::optional<Sealed>();
            const pqxx::row& r = rows[0];
            Sealed s;
            s.record = BackupStoreRecord{.storage_url = Text(r[0]),
                                         .s3_bucket = Text(r[1]),
                                         .s3_region = Text(r[2]),
                                         .s3_endpoint = Text(r[3]),
                                         .s3_prefix = Text(r[4]),
                                         .local_directory = Text(r[5]),
                                         .created_at = Time(r[8]),
                                         .updated_at = Time(r[9])};
            if (!r[6].is_null()) s.access = internal::Bytes(r[6]);
            if (!r[7].is_null()) s.secret = internal::Bytes(r[7]);
            return std::optional<Sealed>(std::move(s));
          }));
  if (!row) return std::optional<BackupStoreRecord>();
  // Opens a sealed field into `plaintext` (left empty when there is none).
  auto open = [&](const std::optional<std::string>& sealed, std::string_view field,
                  std::string& plaintext) -> Status {
    if (!sealed) return OkStatus();
    if (!crypto::Open(key, *sealed, Aad(storage_url, field), plaintext)) {
      WipeString(plaintext);
      return MakeError(ErrorKind::kWrongKey, "the " + std::string(field) +
                                                 " recorded for backup store " + storage_url +
                                                 " does not open with this master key");
    }
    return OkStatus();
  };
  KINDLING_RETURN_IF_ERROR(open(row->access, "s3_access_key_id", row->record.s3_access_key_id));
  std::string secret;
  KINDLING_RETURN_IF_ERROR(open(row->secret, "s3_secret_access_key", secret));
  row->record.s3_secret_access_key = Secret(std::move(secret));  // no copy stays behind
  return std::optional<BackupStoreRecord>(std::move(row->record));
}

Result<std::vector<BackupStoreRecord>> ListBackupStores(Tx& tx) {
  return internal::Run(
      tx, "list backup stores",
      [&](pqxx::transaction_base& w) -> Result<std::vector<BackupStoreRecord>> {
        std::vector<BackupStoreRecord> out;
        for (const auto& r :
             w.exec("SELECT storage_url, s3_bucket, s3_region, s3_endpoint, s3_prefix, "
                    "  local_directory, created_at, updated_at "
                    "FROM volume_backup_stores ORDER BY storage_url"))
          out.push_back(BackupStoreRecord{.storage_url = Text(r[0]),
                                          .s3_bucket = Text(r[1]),
                                          .s3_region = Text(r[2]),
                                          .s3_endpoint = Text(r[3]),
                                          .s3_prefix = Text(r[4]),
                                          .local_directory = Text(r[5]),
                                          .created_at = Time(r[6]),
                                          .updated_at = Time(r[7])});
        return out;
      });
}

}  // namespace kindling::db
