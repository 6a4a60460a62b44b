// volume_image_quarantine: volume images the control plane took off a worker
// instead of deleting them (a restore or move replaced them, their volume was
// deleted, or the database pins the volume elsewhere or does not know it).
// The worker's quarantine directory is the truth (reconcile/image_quarantine.h);
// these rows mirror it so the API can list entries, and carry what operators
// decide: an adoption (an `adopt` operation) or a purge request.
//
// Life cycle: held -> adopted (its image became a volume's image again) |
// purged (deleted after purge_after: a retention, or an operator's request).
// A held entry with purge_after NULL is kept until an operator decides.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "db/database.h"
#include "db/types.h"

namespace kindling::db {

struct QuarantineEntry {
  std::string id{};
  std::string server_id{};
  std::string project_volume_id{};
  QuarantineReason reason = QuarantineReason::kConflict;
  std::string detail{};
  std::string path{};  // the image file on the worker
  std::int64_t size_bytes = 0;
  std::int64_t allocated_bytes = 0;
  std::optional<Timestamp> image_mtime{};
  std::optional<std::string> image_sha256{};  // image digest (repo/image_digest.h)
  std::optional<int> digest_chunk_size{};
  QuarantineStatus status = QuarantineStatus::kHeld;
  Timestamp quarantined_at{};
  std::optional<Timestamp> purge_after{};
  std::optional<Timestamp> resolved_at{};
  Timestamp updated_at{};
};

// Inserts the entry, or updates the one with its id (a worker re-announcing
// what its directory holds after the database was restored). `quarantined_at`
// is kept from the entry; `status` is not changed on update.
[[nodiscard]] Result<QuarantineEntry> UpsertQuarantineEntry(Tx& tx, const QuarantineEntry& entry);

[[nodiscard]] Result<QuarantineEntry> GetQuarantineEntry(Tx& tx, const std::string& id,
                                                         bool for_update = false);  // kNotFound

struct QuarantineFilter {
  std::optional<std::string> server_id{};
  std::optional<std::string> project_volume_id{};
  std::optional<std::string> project_id{};  // entries of any volume of the project
  std::optional<QuarantineStatus> status{};
};

// Newest first.
[[nodiscard]] Result<std::vector<QuarantineEntry>> ListQuarantine(
    Tx& tx, const QuarantineFilter& filter = {});

// held -> adopted | purged (resolved_at set). kInvalidArgument when not held.
[[nodiscard]] Result<QuarantineEntry> ResolveQuarantineEntry(Tx& tx, const std::string& id,
                                                             QuarantineStatus status);

// A held entry is to be purged now (purge_after = now()). kInvalidArgument
// when not held.
[[nodiscard]] Result<QuarantineEntry> RequestQuarantinePurge(Tx& tx, const std::string& id);

}  // namespace kindling::db
