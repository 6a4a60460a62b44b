#include "common/extents.h"

#include <linux/btrfs.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/statfs.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace kindling {
namespace {

constexpr long kXfsMagic = 0x58465342;
constexpr long kBtrfsMagic = 0x9123683e;
// Records asked of the kernel per FIEMAP call.
constexpr std::uint32_t kExtentsPerCall = 512;

bool CannotClone(int err) {
  return err == EOPNOTSUPP || err == ENOTTY || err == EXDEV || err == EINVAL || err == ENOSYS ||
         err == EBADF || err == EPERM;
}

class KernelExtentFs final : public ExtentFs {
 public:
  Status Clone(int src_fd, int dst_fd) const override {
    if (::ioctl(dst_fd, FICLONE, src_fd) == 0) return OkStatus();
    const int err = errno;
    if (CannotClone(err))
      return FailedPrecondition(std::string("the filesystem cannot clone this file (FICLONE: ") +
                                std::strerror(err) + ")");
    return IoError(std::string("FICLONE: ") + std::strerror(err));
  }

  Result<ExtentMap> Map(int fd) const override {
    ExtentMap map;
    std::vector<std::uint8_t> buffer(sizeof(fiemap) + kExtentsPerCall * sizeof(fiemap_extent));
    std::uint64_t start = 0;
    for (;;) {
      std::memset(buffer.data(), 0, buffer.size());
      auto* fm = reinterpret_cast<fiemap*>(buffer.data());
      fm->fm_start = start;
      fm->fm_length = FIEMAP_MAX_OFFSET - start;
      fm->fm_flags = FIEMAP_FLAG_SYNC;
      fm->fm_extent_count = kExtentsPerCall;
      if (::ioctl(fd, FS_IOC_FIEMAP, fm) != 0) {
        const int err = errno;
        if (err == EOPNOTSUPP || err == ENOTTY)
          return FailedPrecondition("the filesystem has no extent maps (FIEMAP)");
        return IoError(std::string("FIEMAP: ") + std::strerror(err));
      }
      if (fm->fm_mapped_extents == 0) return map;
      bool last = false;
      for (std::uint32_t i = 0; i < fm->fm_mapped_extents; ++i) {
        const fiemap_extent& e = fm->fm_extents[i];
        map.push_back(Extent{e.fe_logical, e.fe_physical, e.fe_length, e.fe_flags});
        last = last || (e.fe_flags & FIEMAP_EXTENT_LAST) != 0;
      }
      if (last) return map;
      const Extent& tail = map.back();
      const std::uint64_t next = tail.logical + tail.length;
      if (next <= start) return IoError("FIEMAP made no progress");
      start = next;
    }
  }

  Result<FsInfo> Info(int fd) const override {
    struct statfs sf {};
    if (::fstatfs(fd, &sf) != 0) return IoError(std::string("statfs: ") + std::strerror(errno));
    FsInfo info;
    const auto magic = static_cast<long>(sf.f_type);
    if (magic == kXfsMagic) {
      info.kind = FsKind::kXfs;
      info.name = "xfs";
    } else if (magic == kBtrfsMagic) {
      info.kind = FsKind::kBtrfs;
      info.name = "btrfs";
      // Generation 0: unknown (a kernel without the flag, or FS_INFO failed).
      btrfs_ioctl_fs_info_args args{};
      args.flags = BTRFS_FS_INFO_FLAG_GENERATION;
      if (::ioctl(fd, BTRFS_IOC_FS_INFO, &args) == 0 &&
          (args.flags & BTRFS_FS_INFO_FLAG_GENERATION) != 0)
        info.generation = args.generation;
      btrfs_ioctl_balance_args balance{};
      // Running or paused: extents may move. Unknown (but for a caller
      // without CAP_SYS_ADMIN, EPERM) counts as moving.
      if (::ioctl(fd, BTRFS_IOC_BALANCE_PROGRESS, &balance) == 0)
        info.relocating = true;
      else if (errno != ENOTCONN && errno != EPERM)
        info.relocating = true;
    } else if (magic == 0xef53) {
      info.name = "ext2/3/4";
    } else {
      char hex[32];
      std::snprintf(hex, sizeof hex, "0x%lx", static_cast<unsigned long>(magic));
      info.name = hex;
    }
    return info;
  }
};

}  // namespace

const ExtentFs& DefaultExtentFs() {
  static const KernelExtentFs fs;
  return fs;
}

}  // namespace kindling
