// ImageQuarantine: where a worker puts a volume image instead of deleting it.
//
// Nothing the control plane decides deletes the only copy of a volume: an
// image that a restore or move replaced, whose volume was deleted, or that
// the database says belongs elsewhere (or does not know) is moved here with
// one rename, and stays until an operator adopts it back or it is purged
// (after its purge time: a short grace for replaced copies, a retention for
// deleted volumes, never on its own for images the database cannot explain).
//
// Layout, inside the worker's state directory (same filesystem as volumes/,
// so taking and giving back an image is a rename, never a copy):
//   quarantine/<entry id>/entry.json   what the entry is (written first)
//   quarantine/<entry id>/image.img    the image
// entry.json is written atomically (temp, fsync, rename) before the image is
// moved in, and every rename is followed by an fsync of both directories, so
// a crash at any instant leaves the image either where it was or inside a
// complete entry. An entry directory without an image and without
// `adopted_into` is a Take in progress or an interrupted one: List skips it,
// RemoveInterruptedTakes deletes it when no Take can be running.
//
// Thread-safety: callers keep one volume's entries to one thread at a time
// (BusyVolumes); different entries may be used concurrently, and List never
// changes an entry, so it may run beside any of them.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "db/types.h"

namespace kindling::reconcile {

struct QuarantinedImage {
  std::string id;         // UUID, also the database row's id
  std::string volume_id;  // the volume the image belonged to
  db::QuarantineReason reason = db::QuarantineReason::kConflict;
  std::string detail;            // why, for operators
  std::filesystem::path image;   // quarantine/<id>/image.img
  std::uint64_t size_bytes = 0;  // apparent size
  std::uint64_t allocated_bytes = 0;
  std::chrono::system_clock::time_point mtime{};  // of the image when taken
  std::chrono::system_clock::time_point quarantined_at{};
  // Unset: held until an operator decides.
  std::optional<std::chrono::system_clock::time_point> purge_after;
  std::string image_sha256;  // image digest (repo/image_digest.h); empty until computed
  std::uint32_t digest_chunk_size = 0;
  // Set once the image was given back to a volume (adopted).
  std::optional<std::string> adopted_into;
};

class ImageQuarantine {
 public:
  explicit ImageQuarantine(std::filesystem::path state_dir);

  // <state_dir>/quarantine
  const std::filesystem::path& dir() const { return dir_; }

  // Moves `image` into a new entry. kNotFound when `image` does not exist.
  [[nodiscard]] Result<QuarantinedImage> Take(
      const std::filesystem::path& image, const std::string& volume_id, db::QuarantineReason reason,
      std::string detail, std::optional<std::chrono::system_clock::time_point> purge_after);

  // Entries still holding their image, and adopted ones, oldest first.
  // Reads only.
  [[nodiscard]] Result<std::vector<QuarantinedImage>> List();
  // Deletes the directories of interrupted Takes (no image, not adopted).
  // REQUIRES: no Take runs meanwhile (the worker calls it at start, before
  // its operations and reconciler run).
  void RemoveInterruptedTakes();
  [[nodiscard]] Result<QuarantinedImage> Get(const std::string& id);  // kNotFound

  // Records the image digest in entry.json.
  [[nodiscard]] Status SetDigest(const std::string& id, const std::string& digest_hex,
                                 std::uint32_t chunk_size);

  // Moves the entry's image to `destination` (which must not exist), noting
  // `volume_id` as adopted_into first so a crash in between is recognised.
  // Idempotent: an entry already adopted into `volume_id` whose image is at
  // `destination` succeeds.
  [[nodiscard]] Status GiveBack(const std::string& id, const std::string& volume_id,
                                const std::filesystem::path& destination);

  // Deletes the entry and its image.
  [[nodiscard]] Status Purge(const std::string& id);

 private:
  std::filesystem::path EntryDir(const std::string& id) const { return dir_ / id; }
  [[nodiscard]] Status WriteEntry(const QuarantinedImage& entry);
  [[nodiscard]] Result<QuarantinedImage> ReadEntry(const std::string& id);

  std::filesystem::path dir_;
};

}  // namespace kindling::reconcile
