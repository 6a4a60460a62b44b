#include "reconcile/image_reconciler.h"

#include <spdlog/spdlog.h>

#include "common/ids.h"
#include "db/volumes.h"
#include "reconcile/volume_images.h"

namespace kindling::reconcile {

ImageReconciler::ImageReconciler(db::Database& db, BusyVolumes& busy,
                                 ImageReconcilerOptions options)
    : db_(db), busy_(busy), options_(std::move(options)) {}

std::string ImageReconciler::degraded_reason() const {
  std::lock_guard lock(mu_);
  return degraded_reason_;
}

Status ImageReconciler::RunOnce() {
  KINDLING_RETURN_IF_ERROR(EnsurePinnedImages());
  return RemoveImagesPinnedElsewhere();
}

Status ImageReconciler::EnsurePinnedImages() {
  KINDLING_ASSIGN_OR_RETURN(std::vector<db::Volume> pinned, db_.Transact([&](db::Tx& tx) {
    return db::ListVolumes(tx, db::VolumeFilter{.server_id = options_.server_id});
  }));
  for (const db::Volume& volume : pinned) {
    if (volume.deleted_at || db::IsTransitional(volume.status)) continue;
    const std::filesystem::path image = ImagePath(options_.state_dir, volume.id);
    std::error_code ec;
    if (std::filesystem::exists(image, ec)) continue;
    BusyScope busy(busy_, volume.id);
    if (!busy.acquired()) continue;
    if (volume.health == db::VolumeHealth::kUnknown) {
      auto tool = FindTool(options_.mkfs_tool);
      Status created =
          tool ? CreateImage(image, volume.size_gb, *tool) : Status(std::unexpected(tool.error()));
      if (created) {
        spdlog::info("worker: created image for volume {} ({} GiB)", volume.id, volume.size_gb);
        auto updated = db_.Transact([&](db::Tx& tx) {
          return db::UpdateVolumeState(tx, volume.id,
                                       db::VolumeStateUpdate{.health = db::VolumeHealth::kHealthy});
        });
        if (!updated) spdlog::warn("worker: volume {}: {}", volume.id, updated.error().message());
      } else {
        spdlog::warn("worker: create image for volume {}: {}", volume.id,
                     created.error().message());
        std::lock_guard lock(mu_);
        degraded_reason_ = "cannot create volume images: " + created.error().message();
      }
    } else if (volume.health != db::VolumeHealth::kMissing) {
      // It had data once: a blank image would hide the loss.
      const std::string error = "volume image missing on server " + options_.server_id;
      spdlog::error("worker: volume {}: {}", volume.id, error);
      auto updated = db_.Transact([&](db::Tx& tx) {
        return db::UpdateVolumeState(
            tx, volume.id,
            db::VolumeStateUpdate{
                .status = db::VolumeStatus::kUnavailable,
                .health = db::VolumeHealth::kMissing,
                .last_error = std::optional<std::string>(error),
                .only_from = {db::VolumeStatus::kDetached, db::VolumeStatus::kAvailable}});
      });
      if (!updated) spdlog::warn("worker: volume {}: {}", volume.id, updated.error().message());
    }
  }
  return OkStatus();
}

Status ImageReconciler::RemoveImagesPinnedElsewhere() {
  KINDLING_ASSIGN_OR_RETURN(std::vector<std::string> on_disk,
                            ListImageVolumeIds(VolumesDir(options_.state_dir)));
  for (const std::string& volume_id : on_disk) {
    if (!IsUuid(volume_id)) continue;
    auto volume = db_.Transact([&](db::Tx& tx) { return db::GetVolume(tx, volume_id); });
    if (!volume) {
      // Unknown to this database (restored from an older snapshot?): keep
      // the data, an operator decides.
      if (!volume.error().is_not_found()) return std::unexpected(volume.error());
      continue;
    }
    const bool pinned_here = volume->server_id == options_.server_id && !volume->deleted_at;
    if (pinned_here || (!volume->deleted_at && db::IsTransitional(volume->status))) continue;
    BusyScope busy(busy_, volume_id);
    if (!busy.acquired()) continue;
    std::error_code ec;
    std::filesystem::remove(ImagePath(options_.state_dir, volume_id), ec);
    if (ec) {
      spdlog::warn("worker: remove old image of volume {}: {}", volume_id, ec.message());
    } else {
      spdlog::info("worker: removed image of volume {} (now {})", volume_id,
                   volume->deleted_at ? "deleted" : "on server " + volume->server_id.value_or("-"));
    }
  }
  return OkStatus();
}

}  // namespace kindling::reconcile
