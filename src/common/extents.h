// Reflink clones and extent maps: the filesystem calls behind snapshots and
// changed-block tracking (engine/snapshots.h, engine/changed_blocks.h).
//
// ExtentFs is the seam: the default forwards to the kernel (FICLONE, FIEMAP
// with FIEMAP_FLAG_SYNC, statfs, btrfs' FS_INFO and BALANCE_PROGRESS); tests
// wrap it (ExtentFsWrapper) to inject a failing clone or a damaged map.
// Thread-safe: no state.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"

namespace kindling {

// One FIEMAP record: the file's bytes [logical, logical + length) live at
// [physical, physical + length) of the device (btrfs: its logical address
// space). `flags` are FIEMAP_EXTENT_* bits.
struct Extent {
  std::uint64_t logical = 0;
  std::uint64_t physical = 0;
  std::uint64_t length = 0;
  std::uint32_t flags = 0;
  bool operator==(const Extent&) const = default;
};
// Sorted by `logical`, not overlapping; gaps are holes.
using ExtentMap = std::vector<Extent>;

enum class FsKind { kOther, kXfs, kBtrfs };

struct FsInfo {
  FsKind kind = FsKind::kOther;
  std::string name;  // "xfs", "btrfs", or statfs' magic in hex
  // btrfs only: the filesystem's generation (transaction id; 0 when the
  // kernel does not tell) and whether a
  // balance (which relocates extents) is running or paused.
  std::uint64_t generation = 0;
  bool relocating = false;
};

class ExtentFs {
 public:
  virtual ~ExtentFs() = default;
  // Makes the (empty, writable) file `dst` share all of `src`'s extents
  // (ioctl FICLONE). kFailedPrecondition when the filesystem cannot clone
  // (no reflink, another filesystem, not a regular file); kIo otherwise.
  [[nodiscard]] virtual Status Clone(int src_fd, int dst_fd) const = 0;
  // The whole file's extent map, dirty data flushed first
  // (FIEMAP_FLAG_SYNC). kFailedPrecondition when the filesystem has no
  // FIEMAP; kIo on any other error.
  [[nodiscard]] virtual Result<ExtentMap> Map(int fd) const = 0;
  // What the filesystem holding `fd` is. kIo when statfs fails.
  [[nodiscard]] virtual Result<FsInfo> Info(int fd) const = 0;
};

// The kernel's calls. A process-wide instance.
const ExtentFs& DefaultExtentFs();

// Forwards every call to `base`; a fault-injecting test overrides only what
// it changes.
class ExtentFsWrapper : public ExtentFs {
 public:
  explicit ExtentFsWrapper(const ExtentFs& base) : base_(base) {}
  Status Clone(int src_fd, int dst_fd) const override { return base_.Clone(src_fd, dst_fd); }
  Result<ExtentMap> Map(int fd) const override { return base_.Map(fd); }
  Result<FsInfo> Info(int fd) const override { return base_.Info(fd); }

 private:
  const ExtentFs& base_;
};

}  // namespace kindling
