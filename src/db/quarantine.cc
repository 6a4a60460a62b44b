#include "db/quarantine.h"

#include "db/internal.h"

namespace kindling::db {
namespace {

using internal::OptText;
using internal::OptTime;
using internal::Text;
using internal::Time;

constexpr char kColumns[] =
    "id, server_id, project_volume_id, reason, detail, path, size_bytes, allocated_bytes, "
    "image_mtime, image_sha256, digest_chunk_size, status, quarantined_at, purge_after, "
    "resolved_at, updated_at";

QuarantineEntry EntryFromRow(const pqxx::row& r) {
  QuarantineEntry e;
  e.id = Text(r[0]);
  e.server_id = Text(r[1]);
  e.project_volume_id = Text(r[2]);
  e.reason = internal::Enum<QuarantineReason>(r[3]);
  e.detail = Text(r[4]);
  e.path = Text(r[5]);
  e.size_bytes = r[6].as<std::int64_t>();
  e.allocated_bytes = r[7].as<std::int64_t>();
  e.image_mtime = OptTime(r[8]);
  e.image_sha256 = OptText(r[9]);
  if (!r[10].is_null()) e.digest_chunk_size = r[10].as<int>();
  e.status = internal::Enum<QuarantineStatus>(r[11]);
  e.quarantined_at = Time(r[12]);
  e.purge_after = OptTime(r[13]);
  e.resolved_at = OptTime(r[14]);
  e.updated_at = Time(r[15]);
  return e;
}

}  // namespace

Result<QuarantineEntry> UpsertQuarantineEntry(Tx& tx, const QuarantineEntry& e) {
  return internal::Run(
      tx, "record quarantined image", [&](pqxx::transaction_base& w) -> Result<QuarantineEntry> {
        return EntryFromRow(internal::Exec1(
            w,
            std::string(
                "INSERT INTO volume_image_quarantine (id, server_id, project_volume_id, reason, "
                "  detail, path, size_bytes, allocated_bytes, image_mtime, image_sha256, "
                "  digest_chunk_size, quarantined_at, purge_after) "
                "VALUES ($1::uuid, $2::uuid, $3::uuid, $4, $5, $6, $7, $8, $9::timestamptz, $10, "
                "  $11, COALESCE($12::timestamptz, now()), $13::timestamptz) "
                "ON CONFLICT (id) DO UPDATE SET detail = EXCLUDED.detail, path = EXCLUDED.path, "
                "  size_bytes = EXCLUDED.size_bytes, allocated_bytes = EXCLUDED.allocated_bytes, "
                "  image_mtime = EXCLUDED.image_mtime, "
                "  image_sha256 = COALESCE(EXCLUDED.image_sha256, "
                "    volume_image_quarantine.image_sha256), "
                "  digest_chunk_size = COALESCE(EXCLUDED.digest_chunk_size, "
                "    volume_image_quarantine.digest_chunk_size), "
                "  updated_at = now() "
                "RETURNING ") +
                kColumns,
            e.id, e.server_id, e.project_volume_id, std::string(Name(e.reason)), e.detail, e.path,
            e.size_bytes, e.allocated_bytes, internal::OptTimeParam(e.image_mtime), e.image_sha256,
            e.digest_chunk_size,
            e.quarantined_at == Timestamp{} ? std::nullopt
                                            : internal::OptTimeParam(e.quarantined_at),
            internal::OptTimeParam(e.purge_after)));
      });
}

Result<QuarantineEntry> GetQuarantineEntry(Tx& tx, const std::string& id, bool for_update) {
  return internal::Run(
      tx, "get quarantined image", [&](pqxx::transaction_base& w) -> Result<QuarantineEntry> {
        const pqxx::result rows =
            internal::Exec(w,
                           std::string("SELECT ") + kColumns +
                               " FROM volume_image_quarantine WHERE id = $1::uuid" +
                               (for_update ? " FOR UPDATE" : ""),
                           id);
        if (rows.empty()) return NotFound("quarantined image " + id + " not found");
        return EntryFromRow(rows[0]);
      });
}

Result<std::vector<QuarantineEntry>> ListQuarantine(Tx& tx, const QuarantineFilter& f) {
  return internal::Run(
      tx, "list quarantined images",
      [&](pqxx::transaction_base& w) -> Result<std::vector<QuarantineEntry>> {
        std::vector<QuarantineEntry> out;
        for (const auto& r :
             internal::Exec(w,
                            std::string("SELECT ") + kColumns +
                                " FROM volume_image_quarantine q "
                                "WHERE ($1::uuid IS NULL OR q.server_id = $1::uuid) "
                                "  AND ($2::uuid IS NULL OR q.project_volume_id = $2::uuid) "
                                "  AND ($3::uuid IS NULL OR q.project_volume_id IN "
                                "    (SELECT id FROM project_volumes WHERE project_id = $3::uuid)) "
                                "  AND ($4::text IS NULL OR q.status = $4) "
                                "ORDER BY q.quarantined_at DESC, q.id",
                            f.server_id, f.project_volume_id, f.project_id,
                            f.status ? std::optional<std::string>(std::string(Name(*f.status)))
                                     : std::nullopt))
          out.push_back(EntryFromRow(r));
        return out;
      });
}

Result<QuarantineEntry> ResolveQuarantineEntry(Tx& tx, const std::string& id,
                                               QuarantineStatus status) {
  return internal::Run(
      tx, "resolve quarantined image", [&](pqxx::transaction_base& w) -> Result<QuarantineEntry> {
        const pqxx::result rows = internal::Exec(
            w,
            std::string("UPDATE volume_image_quarantine SET status = $2, resolved_at = now(), "
                        "  updated_at = now() WHERE id = $1::uuid AND status = 'held' "
                        "RETURNING ") +
                kColumns,
            id, std::string(Name(status)));
        if (rows.empty()) return InvalidArgument("quarantined image " + id + " is not held");
        return EntryFromRow(rows[0]);
      });
}

Result<QuarantineEntry> RequestQuarantinePurge(Tx& tx, const std::string& id) {
  return internal::Run(
      tx, "purge quarantined image", [&](pqxx::transaction_base& w) -> Result<QuarantineEntry> {
        const pqxx::result rows = internal::Exec(
            w,
            std::string("UPDATE volume_image_quarantine SET purge_after = now(), "
                        "  updated_at = now() WHERE id = $1::uuid AND status = 'held' "
                        "RETURNING ") +
                kColumns,
            id);
        if (rows.empty()) return InvalidArgument("quarantined image " + id + " is not held");
        return EntryFromRow(rows[0]);
      });
}

}  // namespace kindling::db
