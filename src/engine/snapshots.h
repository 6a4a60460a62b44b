// Reflink snapshots of a volume image, kept beside it for the next backup's
// changed-block tracking (engine/changed_blocks.h).
//
// Layout: a hidden folder next to the image, on its filesystem (a clone
// cannot cross filesystems):
//
//   <dir>/.<image name>.snapshots/
//     <backup id>.pending   a clone a backup is reading (mode 0400)
//     <backup id>.snap      the clone the last committed backup read (0400)
//     <backup id>.digests   that backup's chunk digests (0400): the
//                           SHA-256 of each chunk, from which its manifest's
//                           keyed ids and image digest derive
//
// A backup takes a clone (Take) before it reads, reads only the clone, and
// after its manifest is written commits it (Commit): the digests are written
// (temp file, fsync, rename) once the clone is fsynced, the clone renamed to
// .snap, and the previous
// snapshot deleted, each step durable before the next. So a crash at any
// instant leaves the previous snapshot whole, or the new one, or both; Open
// removes whatever else it finds (pending clones, a .snap without its
// digests or the reverse, temp files, all committed snapshots but the
// newest): nothing accumulates, and a clone a crashed backup took is never
// trusted. A failed backup discards its clone (Discard) and keeps the
// previous snapshot.
//
// The folder is locked (flock) for as long as the SnapshotDir lives: one
// backup per image at a time; a second gets kFailedPrecondition.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/extents.h"
#include "common/files.h"
#include "common/result.h"
#include "crypto/sha256.h"

namespace kindling::engine {

// What a committed snapshot's backup recorded of it.
struct SnapshotDigests {
  std::string volume_id;
  std::string backup_id;
  std::uint64_t image_size = 0;
  std::uint32_t chunk_size = 0;
  std::vector<crypto::Digest> chunks;  // SHA-256 of each chunk, holes included
};

// The file's bytes; Decode checks a trailing SHA-256 and every field
// (kCorruption otherwise).
std::string EncodeSnapshotDigests(const SnapshotDigests& digests);
[[nodiscard]] Result<SnapshotDigests> DecodeSnapshotDigests(std::string_view bytes);

struct CommittedSnapshot {
  std::string backup_id;
  std::filesystem::path snap;
  std::filesystem::path digests;
};

// Whether images in `dir` can be snapshotted: the filesystem's name and
// whether a clone works there (a trial: a small temp file cloned, both
// removed). kIo when `dir` cannot be written.
struct SnapshotSupport {
  std::string filesystem;
  bool reflink = false;
};
[[nodiscard]] Result<SnapshotSupport> ProbeSnapshotSupport(const std::filesystem::path& dir,
                                                           const ExtentFs& fs);

class SnapshotDir {
 public:
  // The folder that holds `image`'s snapshots.
  static std::filesystem::path FolderOf(const std::filesystem::path& image);

  // Opens `image`'s folder, creating it (durably) when missing, locks it and
  // removes the leftovers described above. kFailedPrecondition when another
  // backup of the image holds the lock; kIo on filesystem errors.
  [[nodiscard]] static Result<SnapshotDir> Open(const std::filesystem::path& image);

  SnapshotDir(SnapshotDir&&) noexcept = default;
  SnapshotDir& operator=(SnapshotDir&&) noexcept = default;
  ~SnapshotDir();

  const std::filesystem::path& folder() const { return folder_; }
  // The newest committed snapshot, if any.
  const std::optional<CommittedSnapshot>& previous() const { return previous_; }

  // Clones the image open at `image_fd` into <backup_id>.pending with `fs`
  // (mode 0400); nothing else, so that a VM paused around it is paused for
  // the clone only (Commit makes it durable). kFailedPrecondition when the
  // filesystem cannot clone (nothing is left behind).
  [[nodiscard]] Result<std::filesystem::path> Take(const ExtentFs& fs, int image_fd,
                                                   std::string_view backup_id);
  // After the backup `digests.backup_id` committed: makes its clone the
  // snapshot the next backup diffs against and deletes the previous one.
  [[nodiscard]] Status Commit(const SnapshotDigests& digests);
  // Deletes the clone Take made, if any (a failed backup).
  void Discard();
  // Removes the folder when it holds nothing (a filesystem that could not
  // clone); the lock goes with it.
  void RemoveIfEmpty();

 private:
  SnapshotDir() = default;
  std::filesystem::path folder_;
  UniqueFd lock_;
  std::optional<CommittedSnapshot> previous_;
  std::string pending_id_;
};

}  // namespace kindling::engine
