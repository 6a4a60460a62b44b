#include "testutil/loop_fs.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include "common/subprocess.h"
#include "reconcile/volume_images.h"

namespace kindling::testutil {
namespace {

namespace fs = std::filesystem;

// The absolute path of `tool` (the sbin folders included: a test's PATH may
// lack them).
std::optional<fs::path> FindTool(const std::string& tool) {
  auto found = reconcile::FindTool(tool);
  if (!found) return std::nullopt;
  return *found;
}

// The package that provides `tool` (Debian), for messages.
std::string PackageOf(const std::string& tool) {
  if (tool == "mkfs.xfs") return "xfsprogs";
  if (tool == "mkfs.btrfs") return "btrfs-progs";
  if (tool == "mkfs.ext4") return "e2fsprogs";
  return "mount";
}

std::string MkfsTool(LoopFsKind kind) {
  switch (kind) {
    case LoopFsKind::kXfs:
      return "mkfs.xfs";
    case LoopFsKind::kBtrfs:
      return "mkfs.btrfs";
    case LoopFsKind::kExt4:
      return "mkfs.ext4";
  }
  return "mkfs";
}

// Runs `args` (args[0] a tool name, looked up). On failure, false with what
// happened in `*why`.
bool RunTool(std::vector<std::string> args, std::string* why) {
  const auto tool = FindTool(args[0]);
  if (!tool) {
    *why = args[0] + " (package " + PackageOf(args[0]) + ")";
    return false;
  }
  args[0] = tool->string();
  CommandOptions options;
  options.args = args;
  options.timeout = std::chrono::minutes(2);
  auto result = SystemCommandRunner().Run(options);
  if (!result) {
    *why = args[0] + ": " + result.error().message();
    return false;
  }
  if (result->exit_status != 0) {
    std::string command;
    for (const auto& a : args) command += (command.empty() ? "" : " ") + a;
    *why = command + ": " + DescribeExit(*result, options) + ": " + result->errors + result->output;
    while (!why->empty() && why->back() == '\n') why->pop_back();
    return false;
  }
  return true;
}

}  // namespace

std::string_view LoopFsName(LoopFsKind kind) {
  switch (kind) {
    case LoopFsKind::kXfs:
      return "xfs";
    case LoopFsKind::kBtrfs:
      return "btrfs";
    case LoopFsKind::kExt4:
      return "ext4";
  }
  return "unknown";
}

std::unique_ptr<LoopFilesystem> LoopFilesystem::Create(LoopFsKind kind, std::string* why,
                                                       std::uint64_t size) {
  std::string ignored;
  if (why == nullptr) why = &ignored;
  const std::string name(LoopFsName(kind));
  if (::geteuid() != 0) {
    *why = "root (to mount loop filesystems)";
    return nullptr;
  }
  for (const std::string& tool : {MkfsTool(kind), std::string("mount"), std::string("umount")}) {
    if (!FindTool(tool)) {
      *why = tool + " (package " + PackageOf(tool) + ")";
      return nullptr;
    }
  }

  std::unique_ptr<LoopFilesystem> lfs(new LoopFilesystem());
  lfs->kind_ = kind;
  const char* base = std::getenv("TMPDIR");
  std::string pattern =
      std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/kindling-loopfs-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) {
    *why = "a temp dir for a " + name + " loop filesystem (mkdtemp " + pattern + " failed)";
    return nullptr;
  }
  lfs->dir_ = pattern;
  lfs->backing_ = lfs->dir_ / (name + ".img");
  lfs->mount_point_ = lfs->dir_ / "mnt";

  const int fd = ::open(lfs->backing_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0 || ::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    *why = "a backing file for a " + name + " loop filesystem (" + lfs->backing_.string() + ")";
    if (fd >= 0) ::close(fd);
    return nullptr;
  }
  ::close(fd);

  std::vector<std::string> mkfs;
  switch (kind) {
    case LoopFsKind::kXfs:
      mkfs = {MkfsTool(kind), "-q", "-f", "-m", "reflink=1", lfs->backing_.string()};
      break;
    case LoopFsKind::kBtrfs:
      mkfs = {MkfsTool(kind), "-q", "-f", lfs->backing_.string()};
      break;
    case LoopFsKind::kExt4:
      mkfs = {MkfsTool(kind), "-q", "-F", lfs->backing_.string()};
      break;
  }
  if (!RunTool(mkfs, why)) {
    *why = "a working " + MkfsTool(kind) + " (" + *why + ")";
    return nullptr;
  }
  std::error_code ec;
  fs::create_directory(lfs->mount_point_, ec);
  if (ec) {
    *why = "a mount point for a " + name + " loop filesystem (" + ec.message() + ")";
    return nullptr;
  }
  if (!RunTool(
          {"mount", "-t", name, "-o", "loop", lfs->backing_.string(), lfs->mount_point_.string()},
          why)) {
    *why = "a mountable " + name + " loop filesystem (" + *why + ")";
    return nullptr;
  }
  lfs->mounted_ = true;
  return lfs;
}

bool LoopFilesystem::Available(LoopFsKind kind, std::string* why) {
  static std::mutex mu;
  static std::map<LoopFsKind, std::pair<bool, std::string>> known;
  std::lock_guard lock(mu);
  auto it = known.find(kind);
  if (it == known.end()) {
    std::string reason;
    const bool ok = Create(kind, &reason) != nullptr;
    it = known.emplace(kind, std::pair{ok, reason}).first;
  }
  if (why != nullptr) *why = it->second.second;
  return it->second.first;
}

std::filesystem::path LoopFilesystem::NewDir(const std::string& prefix) {
  for (;;) {
    const fs::path dir = mount_point_ / (prefix + "-" + std::to_string(++dirs_made_));
    std::error_code ec;
    if (fs::create_directory(dir, ec)) return dir;
    if (ec) throw std::runtime_error("mkdir " + dir.string() + ": " + ec.message());
  }
}

bool LoopFilesystem::Unmount() {
  std::string why;
  // A busy mount (a descriptor a failing test left open, a udev probe of the
  // loop device) usually frees up within moments.
  for (int attempt = 0; attempt < 20; ++attempt) {
    if (RunTool({"umount", mount_point_.string()}, &why)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  // Detached now, released (and the loop device freed) once unused.
  return RunTool({"umount", "-l", mount_point_.string()}, &why);
}

LoopFilesystem::~LoopFilesystem() {
  if (mounted_ && !Unmount()) {
    // Still mounted: deleting recursively would reach into the filesystem.
    std::error_code ec;
    fs::remove(backing_, ec);
    return;
  }
  if (!dir_.empty()) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
}

}  // namespace kindling::testutil
