// ImageReconciler: keeps a worker's volume images in line with the database.
//
//   - A volume pinned here without an image gets a new empty one when it never
//     had data (health unknown), and is marked missing/unavailable otherwise
//     (a blank image would hide data loss).
//   - An image of a volume pinned elsewhere, or deleted, is removed once no
//     operation is in flight on it.
//
// Thread-safety: RunOnce may run concurrently with the worker's operations
// (BusyVolumes keeps them off each other's volumes) but not with itself.
#pragma once

#include <filesystem>
#include <mutex>
#include <string>

#include "common/result.h"
#include "db/database.h"
#include "reconcile/busy_volumes.h"

namespace kindling::reconcile {

struct ImageReconcilerOptions {
  std::string server_id;            // REQUIRED
  std::filesystem::path state_dir;  // REQUIRED: volumes/ lives here
  std::string mkfs_tool = "mkfs.ext4";
};

class ImageReconciler {
 public:
  // REQUIRES: `db` and `busy` outlive the reconciler.
  ImageReconciler(db::Database& db, BusyVolumes& busy, ImageReconcilerOptions options);

  // One pass over the volumes pinned here and the images on disk.
  [[nodiscard]] Status RunOnce();

  // Why this worker cannot hold new volumes (e.g. images cannot be created),
  // empty when it can; reported in the worker component's status.
  std::string degraded_reason() const;

 private:
  [[nodiscard]] Status EnsurePinnedImages();
  [[nodiscard]] Status RemoveImagesPinnedElsewhere();

  db::Database& db_;
  BusyVolumes& busy_;
  const ImageReconcilerOptions options_;
  mutable std::mutex mu_;
  std::string degraded_reason_;  // guarded by mu_
};

}  // namespace kindling::reconcile
