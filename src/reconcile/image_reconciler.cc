#include "reconcile/image_reconciler.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <nlohmann/json.hpp>

#include "common/ids.h"
#include "crypto/sha256.h"
#include "db/audit.h"
#include "db/operations.h"
#include "engine/image_file.h"
#include "reconcile/volume_images.h"
#include "reconcile/workload_reconciler.h"

namespace kindling::reconcile {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using SysClock = std::chrono::system_clock;

constexpr std::string_view kConflictPrefix = "image conflict: ";

db::Timestamp ToTimestamp(SysClock::time_point t) {
  return std::chrono::time_point_cast<std::chrono::microseconds>(t);
}

std::string FormatUtc(db::Timestamp t) {
  std::string text = db::FormatTimestamp(t);  // "YYYY-MM-DD HH:MM:SS.ffffff+00"
  return text.substr(0, 19) + "Z";
}

bool IsHeldProblem(const db::QuarantineEntry& e) {
  return e.status == db::QuarantineStatus::kHeld &&
         (e.reason == db::QuarantineReason::kConflict ||
          e.reason == db::QuarantineReason::kUnknownVolume);
}

// The newest succeeded restore, move or adoption of the volume, if any.
Result<std::optional<db::Operation>> LastRelocation(db::Tx& tx, const std::string& volume_id) {
  KINDLING_ASSIGN_OR_RETURN(auto ops, db::ListVolumeOperations(tx, volume_id, 50));
  for (db::Operation& op : ops) {
    if (op.status != db::OperationStatus::kSucceeded) continue;
    if (op.kind == db::OperationKind::kRestore || op.kind == db::OperationKind::kMove ||
        op.kind == db::OperationKind::kAdopt)
      return std::optional<db::Operation>(std::move(op));
  }
  return std::optional<db::Operation>();
}

}  // namespace

Status AuditImage(db::Tx& tx, std::string_view action, const db::QuarantineEntry& e, json details) {
  details["entry_id"] = e.id;
  details["server_id"] = e.server_id;
  details["reason"] = std::string(db::Name(e.reason));
  details["detail"] = e.detail;
  details["size_bytes"] = e.size_bytes;
  details["image_sha256"] = e.image_sha256 ? json(*e.image_sha256) : json(nullptr);
  auto id = db::InsertAuditEvent(tx, db::AuditEventInput{.action = std::string(action),
                                                         .resource_type = "project_volume",
                                                         .resource_id = e.project_volume_id,
                                                         .details_json = details.dump()});
  if (!id) return std::unexpected(id.error());
  return OkStatus();
}

std::string QuarantineBusyKey(const std::string& entry_id) { return "quarantine:" + entry_id; }

std::string DescribeHeldImages(const db::Volume& volume,
                               const std::vector<db::QuarantineEntry>& held) {
  std::string text(kConflictPrefix);
  text += volume.server_id ? "the database pins this volume to server " + *volume.server_id
                           : std::string("the database pins this volume to no server");
  text += "; held in quarantine:";
  for (const db::QuarantineEntry& e : held) {
    text += " server " + e.server_id + " image " + e.id + " (" + std::to_string(e.size_bytes) +
            " bytes, modified " + (e.image_mtime ? FormatUtc(*e.image_mtime) : "unknown") +
            ", image_sha256 " + e.image_sha256.value_or("not computed yet") + ");";
  }
  text +=
      " adopt the right one (kindling volume adopt-image) or purge the others (kindling "
      "quarantine purge)";
  return text;
}

Status RefreshImageConflict(db::Tx& tx, const std::string& volume_id) {
  auto volume = db::GetVolume(tx, volume_id, /*for_update=*/true);
  if (!volume)
    return volume.error().is_not_found() ? OkStatus() : Status(std::unexpected(volume.error()));
  if (volume->deleted_at) return OkStatus();
  KINDLING_ASSIGN_OR_RETURN(
      auto entries,
      db::ListQuarantine(tx, db::QuarantineFilter{.project_volume_id = volume_id,
                                                  .status = db::QuarantineStatus::kHeld}));
  std::erase_if(entries, [](const db::QuarantineEntry& e) { return !IsHeldProblem(e); });
  if (entries.empty()) {
    // Resolved (purged or adopted elsewhere). A missing volume goes back to
    // saying just that; otherwise the pinned server clears the text once it
    // sees its image (EnsurePinnedImages).
    const bool stale = volume->last_error && volume->last_error->starts_with(kConflictPrefix);
    if (!stale || volume->health != db::VolumeHealth::kMissing) return OkStatus();
    auto updated = db::UpdateVolumeState(
        tx, volume_id,
        db::VolumeStateUpdate{.last_error = db::SetTo("volume image missing on server " +
                                                      volume->server_id.value_or("(none)"))});
    if (!updated) return std::unexpected(updated.error());
    return OkStatus();
  }
  const bool worse =
      volume->health == db::VolumeHealth::kMissing || volume->health == db::VolumeHealth::kCorrupt;
  auto updated = db::UpdateVolumeState(
      tx, volume_id,
      db::VolumeStateUpdate{
          .health = worse ? std::nullopt : std::optional(db::VolumeHealth::kDegraded),
          .last_error = db::SetTo(DescribeHeldImages(*volume, entries))});
  if (!updated) return std::unexpected(updated.error());
  return OkStatus();
}

Result<db::Timestamp> ImageChangedAt(const fs::path& image) {
  struct stat st {};
  if (::stat(image.c_str(), &st) != 0) {
    if (errno == ENOENT) return NotFound("image " + image.string() + " does not exist");
    return ErrnoError("stat " + image.string(), errno);
  }
  return ToTimestamp(SysClock::time_point(std::chrono::duration_cast<SysClock::duration>(
      std::chrono::seconds(st.st_ctim.tv_sec) + std::chrono::nanoseconds(st.st_ctim.tv_nsec))));
}

Result<std::optional<db::Operation>> ExplainLeftover(db::Tx& tx, const db::Volume& volume,
                                                     const std::string& server_id,
                                                     db::Timestamp changed) {
  KINDLING_ASSIGN_OR_RETURN(auto relocation, LastRelocation(tx, volume.id));
  if (!relocation || !relocation->completed_at) return std::optional<db::Operation>();
  const json result = json::parse(relocation->result_metadata_json, nullptr, false);
  const bool explained = result.is_object() &&
                         result.value("previous_server_id", "") == server_id &&
                         result.value("server_id", "") == volume.server_id.value_or("") &&
                         changed <= *relocation->completed_at;
  if (!explained) return std::optional<db::Operation>();
  return relocation;
}

db::QuarantineEntry ToRow(const QuarantinedImage& entry, const std::string& server_id) {
  db::QuarantineEntry row;
  row.id = entry.id;
  row.server_id = server_id;
  row.project_volume_id = entry.volume_id;
  row.reason = entry.reason;
  row.detail = entry.detail;
  row.path = entry.image.string();
  row.size_bytes = static_cast<std::int64_t>(entry.size_bytes);
  row.allocated_bytes = static_cast<std::int64_t>(entry.allocated_bytes);
  row.image_mtime = ToTimestamp(entry.mtime);
  if (!entry.image_sha256.empty()) {
    row.image_sha256 = entry.image_sha256;
    row.digest_chunk_size = static_cast<int>(entry.digest_chunk_size);
  }
  row.quarantined_at = ToTimestamp(entry.quarantined_at);
  if (entry.purge_after) row.purge_after = ToTimestamp(*entry.purge_after);
  return row;
}

ImageReconciler::ImageReconciler(db::Database& db, BusyVolumes& busy, ImageQuarantine& quarantine,
                                 ImageReconcilerOptions options)
    : db_(db), busy_(busy), quarantine_(quarantine), options_(std::move(options)) {}

Status ImageReconciler::RunOnce() {
  // Each step runs even when an earlier one failed: a database hiccup in the
  // mirror must not stop images from being kept safe.
  Status first = OkStatus();
  for (Status step :
       {SyncQuarantine(), PurgeExpired(), EnsurePinnedImages(), QuarantineImagesNotPinnedHere()}) {
    if (!step && first) first = step;
  }
  return first;
}

void ImageReconciler::RecordDigest(QuarantinedImage& entry) {
  const std::uint32_t chunk_size = options_.digest_chunk_size();
  auto digest = engine::DigestImageFile(entry.image, chunk_size, /*threads=*/1);
  if (!digest) {
    spdlog::warn("worker: digest of quarantined image {}: {}", entry.id, digest.error().message());
    return;
  }
  entry.image_sha256 = crypto::DigestHex(*digest);
  entry.digest_chunk_size = chunk_size;
  if (auto saved = quarantine_.SetDigest(entry.id, entry.image_sha256, chunk_size); !saved)
    spdlog::warn("worker: record digest of quarantined image {}: {}", entry.id,
                 saved.error().message());
}

Status ImageReconciler::SyncQuarantine() {
  KINDLING_ASSIGN_OR_RETURN(std::vector<QuarantinedImage> entries, quarantine_.List());
  for (QuarantinedImage& entry : entries) {
    BusyScope busy(busy_, QuarantineBusyKey(entry.id));
    if (!busy.acquired()) continue;  // an adoption is working on it
    std::error_code ec;
    if (entry.adopted_into && !fs::exists(entry.image, ec)) {
      // Given back to a volume; once the database says so, only the entry's
      // description is left to remove.
      auto row = db_.Transact([&](db::Tx& tx) { return db::GetQuarantineEntry(tx, entry.id); });
      if (row && row->status == db::QuarantineStatus::kAdopted) {
        if (auto purged = quarantine_.Purge(entry.id); !purged)
          spdlog::warn("worker: remove adopted quarantine entry {}: {}", entry.id,
                       purged.error().message());
      }
      continue;
    }
    if (entry.image_sha256.empty()) RecordDigest(entry);
    const db::QuarantineEntry wanted = ToRow(entry, options_.server_id);
    auto synced = db_.Transact([&](db::Tx& tx) -> Status {
      auto existing = db::GetQuarantineEntry(tx, entry.id, /*for_update=*/true);
      if (existing && (existing->image_sha256 || !wanted.image_sha256)) return OkStatus();
      if (!existing && !existing.error().is_not_found()) return std::unexpected(existing.error());
      KINDLING_ASSIGN_OR_RETURN(db::QuarantineEntry row, db::UpsertQuarantineEntry(tx, wanted));
      if (existing) {
        // The digest arrived: the conflict message names it.
        return IsHeldProblem(row) ? RefreshImageConflict(tx, row.project_volume_id) : OkStatus();
      }
      // The database does not know this entry (restored from an older
      // snapshot, or the pass that made it died before committing).
      KINDLING_RETURN_IF_ERROR(
          AuditImage(tx, "volume.image.quarantined", row, {{"recovered", true}}));
      return IsHeldProblem(row) ? RefreshImageConflict(tx, row.project_volume_id) : OkStatus();
    });
    if (!synced)
      spdlog::warn("worker: record quarantined image {}: {}", entry.id, synced.error().message());
  }
  return OkStatus();
}

Status ImageReconciler::PurgeExpired() {
  KINDLING_ASSIGN_OR_RETURN(std::vector<db::QuarantineEntry> rows, db_.Transact([&](db::Tx& tx) {
    return db::ListQuarantine(tx, db::QuarantineFilter{.server_id = options_.server_id,
                                                       .status = db::QuarantineStatus::kHeld});
  }));
  const db::Timestamp now = ToTimestamp(options_.now());
  for (const db::QuarantineEntry& row : rows) {
    if (!row.purge_after || *row.purge_after > now) continue;
    BusyScope busy(busy_, QuarantineBusyKey(row.id));
    if (!busy.acquired()) continue;
    if (options_.before_image_action) options_.before_image_action("purge", row.id);
    // The listing is older than the busy section: decided again on the row
    // as it is now (an operator may have kept the entry, an adoption taken
    // it), locked until the purge is recorded. Not retried: the image is
    // gone once deleted.
    bool purged = false;
    auto recorded = db_.Transact(
        [&](db::Tx& tx) -> Status {
          KINDLING_ASSIGN_OR_RETURN(db::QuarantineEntry fresh,
                                    db::GetQuarantineEntry(tx, row.id, /*for_update=*/true));
          if (fresh.status != db::QuarantineStatus::kHeld || !fresh.purge_after ||
              *fresh.purge_after > now)
            return OkStatus();
          KINDLING_RETURN_IF_ERROR(quarantine_.Purge(row.id));
          purged = true;
          auto resolved = db::ResolveQuarantineEntry(tx, row.id, db::QuarantineStatus::kPurged);
          if (!resolved) return std::unexpected(resolved.error());
          KINDLING_RETURN_IF_ERROR(AuditImage(tx, "volume.image.purged", *resolved));
          return RefreshImageConflict(tx, row.project_volume_id);
        },
        db::TxOptions{.max_attempts = 1});
    if (!recorded) {
      spdlog::warn("worker: purge quarantined image {}{}: {}", row.id,
                   purged ? " (deleted, not recorded)" : "", recorded.error().message());
    } else if (purged) {
      spdlog::info("worker: purged quarantined image {} of volume {} ({})", row.id,
                   row.project_volume_id, db::Name(row.reason));
    }
  }
  return OkStatus();
}

Status ImageReconciler::EnsurePinnedImages() {
  KINDLING_ASSIGN_OR_RETURN(std::vector<db::Volume> pinned, db_.Transact([&](db::Tx& tx) {
    return db::ListVolumes(tx, db::VolumeFilter{.server_id = options_.server_id});
  }));
  // Failures of volumes no longer pinned here are forgotten.
  std::erase_if(create_failures_, [&](const auto& failure) {
    return std::none_of(pinned.begin(), pinned.end(), [&](const db::Volume& v) {
      return v.id == failure.first && !v.deleted_at;
    });
  });
  for (const db::Volume& volume : pinned) {
    if (volume.deleted_at || db::IsTransitional(volume.status)) continue;
    const fs::path image = ImagePath(options_.state_dir, volume.id);
    std::error_code ec;
    if (fs::exists(image, ec)) {
      if (volume.last_error && volume.last_error->starts_with(kConflictPrefix)) {
        // A conflict whose held images are all resolved (adopted elsewhere
        // or purged): the image here is the volume's again.
        auto cleared = db_.Transact([&](db::Tx& tx) -> Status {
          KINDLING_ASSIGN_OR_RETURN(
              auto held,
              db::ListQuarantine(tx, db::QuarantineFilter{.project_volume_id = volume.id,
                                                          .status = db::QuarantineStatus::kHeld}));
          std::erase_if(held, [](const db::QuarantineEntry& e) { return !IsHeldProblem(e); });
          if (!held.empty()) return OkStatus();
          auto updated = db::UpdateVolumeState(
              tx, volume.id,
              db::VolumeStateUpdate{
                  .health = db::VolumeHealth::kHealthy,
                  .last_error = db::SetNull(),
                  .only_from = {db::VolumeStatus::kDetached, db::VolumeStatus::kAvailable,
                                db::VolumeStatus::kAttached}});
          if (!updated) return std::unexpected(updated.error());
          return OkStatus();
        });
        if (!cleared) spdlog::warn("worker: volume {}: {}", volume.id, cleared.error().message());
      }
      continue;
    }
    BusyScope busy(busy_, volume.id);
    if (!busy.acquired()) continue;
    if (volume.health == db::VolumeHealth::kUnknown) {
      const auto now = options_.now();
      const auto failed = create_failures_.find(volume.id);
      if (failed != create_failures_.end() && failed->second.size_gb == volume.size_gb &&
          now < failed->second.next_try) {
        continue;
      }
      auto tool = FindTool(options_.mkfs_tool);
      Status created =
          tool ? CreateImage(image, volume.size_gb, *tool) : Status(std::unexpected(tool.error()));
      if (created) {
        create_failures_.erase(volume.id);
        spdlog::info("worker: created image for volume {} ({} GiB)", volume.id, volume.size_gb);
        auto updated = db_.Transact([&](db::Tx& tx) {
          return db::UpdateVolumeState(tx, volume.id,
                                       db::VolumeStateUpdate{.health = db::VolumeHealth::kHealthy,
                                                             .last_error = db::SetNull()});
        });
        if (!updated) spdlog::warn("worker: volume {}: {}", volume.id, updated.error().message());
      } else {
        // The volume's problem (its size, most often), not the worker's.
        CreateFailure next{
            .size_gb = volume.size_gb, .next_try = {}, .delay = options_.create_retry};
        if (failed != create_failures_.end() && failed->second.size_gb == volume.size_gb) {
          next.delay = std::min(failed->second.delay * 2, options_.create_retry_max);
        }
        next.next_try = now + next.delay;
        create_failures_.insert_or_assign(volume.id, next);
        const std::string error = "cannot create the volume image on server " + options_.server_id +
                                  ": " + created.error().message();
        spdlog::warn("worker: volume {}: {} (trying again in {} s)", volume.id, error,
                     next.delay.count());
        auto updated = db_.Transact([&](db::Tx& tx) {
          return db::UpdateVolumeState(
              tx, volume.id,
              db::VolumeStateUpdate{.last_error = db::SetTo(error),
                                    .only_from = {db::VolumeStatus::kDetached}});
        });
        if (!updated) spdlog::warn("worker: volume {}: {}", volume.id, updated.error().message());
      }
    } else if (volume.health != db::VolumeHealth::kMissing) {
      // It had data once: a blank image would hide the loss.
      const std::string error = "volume image missing on server " + options_.server_id;
      spdlog::error("worker: volume {}: {}", volume.id, error);
      // Unavailable because this server was dead (the workload reconciler
      // clears that when the image is here): what is true now is that it
      // is missing.
      std::vector<db::VolumeStatus> from = {db::VolumeStatus::kDetached,
                                            db::VolumeStatus::kAvailable};
      if (IsDeadWorkerError(volume.last_error)) from.push_back(db::VolumeStatus::kUnavailable);
      auto updated = db_.Transact([&](db::Tx& tx) -> Status {
        auto marked = db::UpdateVolumeState(tx, volume.id,
                                            db::VolumeStateUpdate{
                                                .status = db::VolumeStatus::kUnavailable,
                                                .health = db::VolumeHealth::kMissing,
                                                .last_error = db::SetTo(error),
                                                .only_from = from,
                                            });
        if (!marked) return std::unexpected(marked.error());
        // Images of it held elsewhere are where an operator looks next.
        return RefreshImageConflict(tx, volume.id);
      });
      if (!updated) spdlog::warn("worker: volume {}: {}", volume.id, updated.error().message());
    }
  }
  return OkStatus();
}

Status ImageReconciler::QuarantineImagesNotPinnedHere() {
  KINDLING_ASSIGN_OR_RETURN(std::vector<std::string> on_disk,
                            ListImageVolumeIds(VolumesDir(options_.state_dir)));
  Status first = OkStatus();
  for (const std::string& volume_id : on_disk) {
    if (!IsUuid(volume_id)) continue;
    // A cheap look first: most images are pinned here.
    auto volume = db_.Transact([&](db::Tx& tx) { return db::GetVolume(tx, volume_id); });
    if (!volume && !volume.error().is_not_found()) return std::unexpected(volume.error());
    if (volume && !volume->deleted_at &&
        (volume->server_id == options_.server_id || db::IsTransitional(volume->status)))
      continue;
    auto taken = QuarantineIfNotPinned(volume_id);
    if (!taken) {
      spdlog::warn("worker: quarantine image of volume {}: {}", volume_id, taken.error().message());
      if (first) first = std::unexpected(taken.error());
      continue;
    }
    if (!*taken) continue;
    QuarantinedImage& entry = **taken;
    if (entry.reason == db::QuarantineReason::kReplaced ||
        entry.reason == db::QuarantineReason::kDeleted) {
      spdlog::info("worker: moved image of volume {} to quarantine {} ({}: {})", volume_id,
                   entry.id, db::Name(entry.reason), entry.detail);
    } else {
      spdlog::warn(
          "worker: moved image of volume {} to quarantine {} ({}: {}); it is held until "
          "an operator adopts or purges it",
          volume_id, entry.id, db::Name(entry.reason), entry.detail);
    }
    RecordDigest(entry);
    if (!entry.image_sha256.empty()) {
      auto recorded = db_.Transact([&](db::Tx& tx) -> Status {
        // The row may be gone since the take (a database restored from an
        // older snapshot meanwhile): re-created, it is audited as such.
        auto existing = db::GetQuarantineEntry(tx, entry.id, /*for_update=*/true);
        if (!existing && !existing.error().is_not_found()) return std::unexpected(existing.error());
        KINDLING_ASSIGN_OR_RETURN(db::QuarantineEntry row,
                                  db::UpsertQuarantineEntry(tx, ToRow(entry, options_.server_id)));
        if (!existing)
          KINDLING_RETURN_IF_ERROR(
              AuditImage(tx, "volume.image.quarantined", row, {{"recovered", true}}));
        return IsHeldProblem(row) ? RefreshImageConflict(tx, volume_id) : OkStatus();
      });
      if (!recorded)
        spdlog::warn("worker: record digest of {}: {}", entry.id, recorded.error().message());
    }
  }
  return first;
}

Result<std::optional<QuarantinedImage>> ImageReconciler::QuarantineIfNotPinned(
    const std::string& volume_id) {
  BusyScope busy(busy_, volume_id);
  if (!busy.acquired()) return std::optional<QuarantinedImage>();
  if (options_.before_image_action) options_.before_image_action("quarantine", volume_id);
  const fs::path image = ImagePath(options_.state_dir, volume_id);
  auto changed = ImageChangedAt(image);
  if (!changed) {
    if (changed.error().is_not_found()) return std::optional<QuarantinedImage>();
    return std::unexpected(changed.error());
  }
  const auto now = options_.now();

  // One attempt: a retry could read a changed row and decide that the image
  // stays after it moved. The next pass decides again.
  std::optional<QuarantinedImage> taken;
  auto decided = db_.Transact(
      [&](db::Tx& tx) -> Result<std::optional<QuarantinedImage>> {
        auto volume = db::GetVolume(tx, volume_id, /*for_update=*/true);
        if (!volume && !volume.error().is_not_found()) return std::unexpected(volume.error());
        db::QuarantineReason reason = db::QuarantineReason::kConflict;
        std::string detail;
        std::optional<SysClock::time_point> purge_after;
        if (!volume) {
          reason = db::QuarantineReason::kUnknownVolume;
          detail = "the database does not know volume " + volume_id;
        } else if (volume->deleted_at) {
          reason = db::QuarantineReason::kDeleted;
          detail = "the volume was deleted at " + FormatUtc(*volume->deleted_at);
          purge_after = now + options_.quarantine_retention;
        } else {
          if (volume->server_id == options_.server_id || db::IsTransitional(volume->status))
            return std::optional<QuarantinedImage>();
          KINDLING_ASSIGN_OR_RETURN(auto active, db::FindActiveOperation(tx, volume_id));
          if (active) return std::optional<QuarantinedImage>();
          const std::string pinned = volume->server_id.value_or("no server");
          KINDLING_ASSIGN_OR_RETURN(auto relocation,
                                    ExplainLeftover(tx, *volume, options_.server_id, *changed));
          if (relocation) {
            reason = db::QuarantineReason::kReplaced;
            detail = std::string(db::Name(relocation->kind)) + " " + relocation->id +
                     " moved the volume to server " + pinned;
            purge_after = now + options_.quarantine_grace;
          } else {
            detail = "the database pins the volume to " +
                     (volume->server_id ? "server " + pinned : pinned) +
                     " and records no restore, move or adoption that took it away from server " +
                     options_.server_id + " after this image was last written";
          }
        }
        KINDLING_ASSIGN_OR_RETURN(QuarantinedImage entry,
                                  quarantine_.Take(image, volume_id, reason, detail, purge_after));
        taken = std::move(entry);
        KINDLING_ASSIGN_OR_RETURN(db::QuarantineEntry row,
                                  db::UpsertQuarantineEntry(tx, ToRow(*taken, options_.server_id)));
        KINDLING_RETURN_IF_ERROR(AuditImage(
            tx, "volume.image.quarantined", row,
            {{"path", row.path},
             {"mtime", row.image_mtime ? json(FormatUtc(*row.image_mtime)) : json(nullptr)}}));
        if (IsHeldProblem(row)) KINDLING_RETURN_IF_ERROR(RefreshImageConflict(tx, volume_id));
        return taken;
      },
      db::TxOptions{.max_attempts = 1});
  // Moved but not recorded: the next pass's mirror records it.
  if (!decided && taken) return taken;
  return decided;
}

}  // namespace kindling::reconcile
