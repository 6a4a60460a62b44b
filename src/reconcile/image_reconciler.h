// ImageReconciler: keeps a worker's volume images in line with the database,
// without ever deleting an image on the database's say-so.
//
//   - A volume pinned here without an image gets a new empty one when it never
//     had data (health unknown), and is marked missing/unavailable otherwise
//     (a blank image would hide data loss). An image that cannot be made (too
//     large for the free space, mkfs failing) is that volume's problem, not
//     the worker's: the volume's last_error says why, and it is tried again
//     after create_retry (doubling up to create_retry_max), at once when its
//     size changes; the worker stays eligible for every other volume.
//   - An image of a volume that is not pinned here is moved to the quarantine
//     (image_quarantine.h) once no operation is in flight on it, with a reason:
//       replaced        a restore, move or adoption the database records moved
//                       the volume away from here after this image was last
//                       written: purged after `quarantine_grace`;
//       deleted         the volume was deleted: purged after
//                       `quarantine_retention`;
//       conflict        the database pins the volume elsewhere and nothing it
//                       records explains why (a database restored from an
//                       older snapshot, rows rewritten by hand): held until an
//                       operator adopts or purges it;
//       unknown_volume  the database does not know the volume: held.
//     The decision and the move happen inside the volume's busy section
//     (BusyScope) and while the volume's row is locked (SELECT ... FOR
//     UPDATE), so they act on what the database says at that moment, not on
//     the earlier read that picked the image: when the row changed in
//     between (pinned here again, an operation in flight), the image stays.
//     That transaction is not retried: a retry could decide otherwise after
//     the image moved; the next pass decides again instead. A conflict is made visible on the
//     volume (health degraded unless worse, last_error naming every server's
//     held image with its size, mtime and image digest), in a warning log
//     line and an audit event (volume.image.quarantined).
//   - The quarantine directory is mirrored into volume_image_quarantine (rows
//     re-created after a database restore, audited volume.image.quarantined
//     with recovered: true, also when the row went between a take and its
//     digest), image digests are computed for
//     new entries, and entries past their purge time are deleted
//     (volume.image.purged), again decided in the entry's busy section on
//     the row read locked at that moment (still held, still due).
//
// Thread-safety: RunOnce may run concurrently with the worker's operations
// (BusyVolumes keeps them off each other's volumes and entries) but not with
// itself.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "db/database.h"
#include "db/operations.h"
#include "db/quarantine.h"
#include "db/volumes.h"
#include "reconcile/busy_volumes.h"
#include "reconcile/image_quarantine.h"

namespace kindling::reconcile {

struct ImageReconcilerOptions {
  std::string server_id;            // REQUIRED
  std::filesystem::path state_dir;  // REQUIRED: volumes/ lives here
  std::string mkfs_tool = "mkfs.ext4";
  // How long a replaced copy (after a restore, move or adoption) is kept.
  std::chrono::seconds quarantine_grace{3600};
  // How long the image of a deleted volume is kept.
  std::chrono::seconds quarantine_retention{7 * 24 * 3600};
  // Chunk size of the image digests of quarantined images (the store's, so
  // they compare with backups' image_sha256); called once per new entry.
  std::function<std::uint32_t()> digest_chunk_size = [] { return 4u << 20; };
  std::function<std::chrono::system_clock::time_point()> now = [] {
    return std::chrono::system_clock::now();
  };
  // Test seam: called with ("quarantine", volume id) once a first read said
  // that volume's image should go, and with ("purge", entry id) once the
  // listing said that entry is due, each time in the busy section and right
  // before the decision is made again on a fresh, locked read of the row.
  std::function<void(std::string_view action, const std::string& id)> before_image_action{};
  // When an image could not be made: the first wait before trying again,
  // and the longest.
  std::chrono::seconds create_retry{60};
  std::chrono::seconds create_retry_max{900};
};

// BusyVolumes key of a quarantine entry (an adoption holds it).
std::string QuarantineBusyKey(const std::string& entry_id);

// The last_error of a volume that has held images: which server the database
// pins it to and every held image (server, entry id, size, mtime, digest).
std::string DescribeHeldImages(const db::Volume& volume,
                               const std::vector<db::QuarantineEntry>& held);

// Sets the volume's conflict state from its held conflict/unknown entries:
// last_error from DescribeHeldImages and health degraded (unless missing or
// corrupt). When it has none left, a missing volume's last_error goes back to
// saying it is missing; nothing else changes.
[[nodiscard]] Status RefreshImageConflict(db::Tx& tx, const std::string& volume_id);

// When the image at `image` last changed (its ctime: a write, or the rename
// that put it there). kNotFound when it does not exist.
[[nodiscard]] Result<db::Timestamp> ImageChangedAt(const std::filesystem::path& image);

// Whether the database explains why `server_id` holds an image of `volume`,
// which is not pinned there: its newest succeeded restore, move or adoption
// took the volume from `server_id` to the server it is pinned to now, after
// the image last changed (`changed`). Returns that operation, or nullopt when
// nothing explains the image (it may then be the newest copy).
[[nodiscard]] Result<std::optional<db::Operation>> ExplainLeftover(db::Tx& tx,
                                                                   const db::Volume& volume,
                                                                   const std::string& server_id,
                                                                   db::Timestamp changed);

// Writes audit event `action` (volume.image.quarantined, .purged) for entry
// `e`: entry id, server, reason, detail, size and digest, plus `details`.
[[nodiscard]] Status AuditImage(db::Tx& tx, std::string_view action, const db::QuarantineEntry& e,
                                nlohmann::json details = nlohmann::json::object());

// The row mirroring an on-disk entry of `server_id`.
db::QuarantineEntry ToRow(const QuarantinedImage& entry, const std::string& server_id);

class ImageReconciler {
 public:
  // REQUIRES: `db`, `busy` and `quarantine` outlive the reconciler.
  ImageReconciler(db::Database& db, BusyVolumes& busy, ImageQuarantine& quarantine,
                  ImageReconcilerOptions options);

  // One pass: the quarantine mirror and purges, the volumes pinned here, then
  // the images on disk.
  [[nodiscard]] Status RunOnce();

 private:
  [[nodiscard]] Status SyncQuarantine();
  [[nodiscard]] Status PurgeExpired();
  [[nodiscard]] Status EnsurePinnedImages();
  [[nodiscard]] Status QuarantineImagesNotPinnedHere();
  // Decides and moves one image under the volume's row lock; nullopt when it
  // stays (pinned here again, or busy).
  [[nodiscard]] Result<std::optional<QuarantinedImage>> QuarantineIfNotPinned(
      const std::string& volume_id);
  // Computes a new entry's digest and records it.
  void RecordDigest(QuarantinedImage& entry);

  db::Database& db_;
  BusyVolumes& busy_;
  ImageQuarantine& quarantine_;
  const ImageReconcilerOptions options_;
  // Volumes whose image could not be made: when to try again. Used by
  // RunOnce only.
  struct CreateFailure {
    int size_gb = 0;  // the size that failed: another is tried at once
    std::chrono::system_clock::time_point next_try{};
    std::chrono::seconds delay{};
  };
  std::map<std::string, CreateFailure> create_failures_;
};

}  // namespace kindling::reconcile
