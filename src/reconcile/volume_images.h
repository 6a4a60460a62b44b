// Volume images on a worker's disk: sparse ext4 files at
// <state_dir>/volumes/<volume_id>.img (the reference keeps
// /data/volumes/<volume_id>.qcow2), and the external tools that make and
// check them (mkfs.ext4, e2fsck from e2fsprogs).
//
// Thread-safety: free functions without shared state. Callers make sure one
// volume's image is touched by one operation at a time.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "common/result.h"

namespace kindling::reconcile {

// <state_dir>/volumes
std::filesystem::path VolumesDir(const std::filesystem::path& state_dir);
// <state_dir>/volumes/<volume_id>.img
std::filesystem::path ImagePath(const std::filesystem::path& state_dir,
                                const std::string& volume_id);

// Where an executable is: `name` itself when it contains a '/', else the first
// of /usr/sbin, /sbin, /usr/bin, /bin and $PATH that has it (mkfs.ext4 lives
// in sbin, which is often not on an unprivileged PATH). kNotFound otherwise.
[[nodiscard]] Result<std::filesystem::path> FindTool(const std::string& name);

struct CommandResult {
  int exit_code = 0;   // -1 when killed by a signal
  std::string output;  // stdout and stderr, truncated to a few KiB
};

// How long a tool may run, and a flag that stops it early. A tool stopped
// either way goes with its whole process group (SIGTERM, SIGKILL 2 s later;
// common/subprocess.h), so a hung e2fsck cannot hold an operation forever.
struct ToolLimits {
  std::chrono::milliseconds timeout{std::chrono::minutes(10)};  // zero: none
  const std::atomic<bool>* cancel = nullptr;
};

// e2fsck on a large, damaged filesystem can take hours; not forever.
inline constexpr std::chrono::hours kE2fsckTimeout{6};

// Runs `argv` (argv[0] an absolute path) without a shell and waits for it,
// within `limits`. An error when it could not be started, kIo when it ran
// past its timeout, kCancelled when `limits.cancel` stopped it; a non-zero
// exit is a CommandResult.
[[nodiscard]] Result<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                               const ToolLimits& limits = {});

// Creates a sparse image of `size_gb` GiB with an empty ext4 filesystem,
// atomically: a temp sibling is formatted, then renamed onto `path`, so a
// crash never leaves a half-formatted image under its final name.
// kAlreadyExists when `path` exists. kFailedPrecondition, before anything
// is written, when the filesystem has less space available than `size_gb`:
// the image is sparse, but the volume must be able to fill it. REQUIRES:
// size_gb >= 1.
[[nodiscard]] Status CreateImage(const std::filesystem::path& path, int size_gb,
                                 const std::filesystem::path& mkfs_tool,
                                 const ToolLimits& limits = {});

// Grows the image at `path` and its ext4 filesystem to `size_gb` GiB, on a
// copy: the image is cloned (reflink where the filesystem can, else a sparse
// copy) to a temp sibling, which is extended, checked (e2fsck -f -p, as
// resize2fs requires) and grown (resize2fs), fsynced and renamed over the
// image. A crash at any point leaves the image as it was. Nothing to do when
// the image is already that large. kFailedPrecondition before anything is
// written when the filesystem cannot hold the copy and the growth;
// kNotFound when the image is missing; kCorruption when e2fsck finds
// damage it cannot fix (the image is left untouched). `tools`: mkfs is not
// needed; e2fsck, resize2fs and cp (found on PATH by default).
struct GrowTools {
  std::string e2fsck = "e2fsck";
  std::string resize2fs = "resize2fs";
  std::string cp = "cp";
};
[[nodiscard]] Status GrowImage(const std::filesystem::path& path, int size_gb,
                               const GrowTools& tools = {},
                               const ToolLimits& limits = {.timeout = kE2fsckTimeout});

// `e2fsck -f -y image`: the exit code says what happened (0 clean, 1 errors
// corrected, 2 corrected but reboot wanted, 4+ uncorrected or failed).
[[nodiscard]] Result<CommandResult> CheckAndRepairImage(const std::filesystem::path& path,
                                                        const std::filesystem::path& e2fsck_tool,
                                                        const ToolLimits& limits = ToolLimits{
                                                            .timeout = kE2fsckTimeout});

// Volume ids of the images in `volumes_dir` (names "<id>.img"), sorted.
[[nodiscard]] Result<std::vector<std::string>> ListImageVolumeIds(
    const std::filesystem::path& volumes_dir);

// Removes temp files (".<name>.tmp-*") a killed restore or create left
// behind. Only safe when no operation of this worker is running.
void RemoveStaleTempFiles(const std::filesystem::path& volumes_dir);

}  // namespace kindling::reconcile
