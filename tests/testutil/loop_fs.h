// Throwaway filesystems on loop devices, for tests that need a particular
// filesystem (XFS with reflink, btrfs, ext4): a sparse backing file in a temp
// dir, formatted with mkfs and mounted with `mount -o loop` on a temp mount
// point; unmounted and deleted on destruction.
//
// Needs root, the mkfs tool (xfsprogs, btrfs-progs, e2fsprogs: see
// scripts/install-deps.sh) and a kernel that lets us mount loop devices (not
// every container does). Tests check with KINDLING_REQUIRE (testutil/require.h)
// so that under CI a missing piece fails instead of skipping.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

namespace kindling::testutil {

enum class LoopFsKind { kXfs, kBtrfs, kExt4 };

// "xfs", "btrfs", "ext4".
std::string_view LoopFsName(LoopFsKind kind);

class LoopFilesystem {
 public:
  // 2 GiB apparent: the backing file is sparse, and mkfs writes only metadata.
  static constexpr std::uint64_t kDefaultSize = 2ull << 30;

  // Formats (XFS: with reflink) and mounts a new filesystem of `kind`.
  // nullptr when that cannot be done here, with what is missing in `*why`
  // ("root (...)", "mkfs.xfs (package xfsprogs)", "a mountable xfs loop
  // filesystem (mount: ...)"): a message for KINDLING_REQUIRE.
  static std::unique_ptr<LoopFilesystem> Create(LoopFsKind kind, std::string* why,
                                                std::uint64_t size = kDefaultSize);

  // Whether Create works for `kind` on this machine: root, the tools
  // present, and a trial filesystem mounts (tried once per process and kind).
  // The reason in `*why` when not.
  static bool Available(LoopFsKind kind, std::string* why);

  LoopFilesystem(const LoopFilesystem&) = delete;
  LoopFilesystem& operator=(const LoopFilesystem&) = delete;
  // Unmounts (retrying, then lazily as a last resort) and deletes everything.
  ~LoopFilesystem();

  LoopFsKind kind() const { return kind_; }
  // The root of the mounted filesystem.
  const std::filesystem::path& mount_point() const { return mount_point_; }
  std::filesystem::path operator/(const std::string& name) const { return mount_point_ / name; }
  // Creates a new empty directory on the filesystem, "<prefix>-<n>", unique
  // for this object.
  std::filesystem::path NewDir(const std::string& prefix);

 private:
  LoopFilesystem() = default;
  bool Unmount();

  LoopFsKind kind_ = LoopFsKind::kExt4;
  std::filesystem::path dir_;  // temp dir: the backing file and the mount point
  std::filesystem::path backing_;
  std::filesystem::path mount_point_;
  bool mounted_ = false;
  int dirs_made_ = 0;
};

}  // namespace kindling::testutil
