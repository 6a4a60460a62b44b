#include "reconcile/volume_images.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <system_error>

#include "common/files.h"
#include "common/subprocess.h"

namespace kindling::reconcile {
namespace {

constexpr std::size_t kMaxCommandOutput = 8192;

bool IsExecutable(const std::filesystem::path& path) {
  return ::access(path.c_str(), X_OK) == 0 && std::filesystem::is_regular_file(path);
}

}  // namespace

std::filesystem::path VolumesDir(const std::filesystem::path& state_dir) {
  return state_dir / "volumes";
}

std::filesystem::path ImagePath(const std::filesystem::path& state_dir,
                                const std::string& volume_id) {
  return VolumesDir(state_dir) / (volume_id + ".img");
}

Result<std::filesystem::path> FindTool(const std::string& name) {
  if (name.find('/') != std::string::npos) {
    if (IsExecutable(name)) return std::filesystem::path(name);
    return NotFound("tool " + name + " is not an executable file");
  }
  std::vector<std::string> dirs = {"/usr/sbin", "/sbin", "/usr/bin", "/bin"};
  if (const char* path = std::getenv("PATH")) {
    std::string_view rest(path);
    while (!rest.empty()) {
      const std::size_t colon = rest.find(':');
      dirs.emplace_back(rest.substr(0, colon));
      if (colon == std::string_view::npos) break;
      rest.remove_prefix(colon + 1);
    }
  }
  for (const std::string& dir : dirs) {
    if (dir.empty()) continue;
    const std::filesystem::path candidate = std::filesystem::path(dir) / name;
    if (IsExecutable(candidate)) return candidate;
  }
  return NotFound("tool " + name + " not found (is e2fsprogs installed?)");
}

Result<CommandResult> RunCommand(const std::vector<std::string>& argv, const ToolLimits& limits) {
  if (argv.empty()) return InvalidArgument("empty command");
  CommandOptions options;
  options.args = argv;
  options.timeout = limits.timeout;
  options.cancel = limits.cancel;
  options.max_output = kMaxCommandOutput;
  KINDLING_ASSIGN_OR_RETURN(kindling::CommandResult ran, SystemCommandRunner().Run(options));
  const std::string name = std::filesystem::path(argv[0]).filename().string();
  if (ran.cancelled) return Cancelled(name + " was stopped: the operation was cancelled");
  if (ran.timed_out)
    return IoError(name + " " + DescribeExit(ran, options) +
                   "; it was stopped with its process group");
  CommandResult result;
  result.exit_code = ran.exit_status > 128 ? -1 : ran.exit_status;
  result.output = std::move(ran.output);
  result.output.append(ran.errors);
  if (result.output.size() > kMaxCommandOutput) result.output.resize(kMaxCommandOutput);
  return result;
}

Status CreateImage(const std::filesystem::path& path, int size_gb,
                   const std::filesystem::path& mkfs_tool, const ToolLimits& limits) {
  if (size_gb < 1) return InvalidArgument("volume size must be at least 1 GiB");
  std::error_code ec;
  if (std::filesystem::exists(path, ec))
    return MakeError(ErrorKind::kAlreadyExists, path.string() + " already exists");
  std::filesystem::create_directories(path.parent_path(), ec);
  if (ec) return IoError("create " + path.parent_path().string() + ": " + ec.message());
  const std::filesystem::space_info space = std::filesystem::space(path.parent_path(), ec);
  if (ec) return IoError("free space of " + path.parent_path().string() + ": " + ec.message());
  constexpr std::uintmax_t kGiB = 1ull << 30;
  if (static_cast<std::uintmax_t>(size_gb) > space.available / kGiB) {
    return FailedPrecondition("a " + std::to_string(size_gb) +
                              " GiB image does not fit: " + std::to_string(space.available / kGiB) +
                              " GiB available on " + path.parent_path().string());
  }

  const std::filesystem::path temp = TempSiblingPath(path);
  {
    UniqueFd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!fd.valid()) return ErrnoError("create " + temp.string(), errno);
    if (::ftruncate(fd.get(), static_cast<off_t>(size_gb) << 30) != 0) {
      const int e = errno;
      ::unlink(temp.c_str());
      return ErrnoError("size " + temp.string(), e);
    }
  }
  // nodiscard: discarding a fresh sparse file would only punch holes that are
  // already there, and is slow on some filesystems.
  auto mkfs =
      RunCommand({mkfs_tool.string(), "-q", "-F", "-E", "nodiscard", temp.string()}, limits);
  if (!mkfs || mkfs->exit_code != 0) {
    ::unlink(temp.c_str());
    if (!mkfs) return std::unexpected(mkfs.error());
    return IoError("mkfs.ext4 exited with " + std::to_string(mkfs->exit_code) + ": " +
                   mkfs->output);
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    ::unlink(temp.c_str());
    return ErrnoError("rename onto " + path.string(), e);
  }
  return FsyncDirectory(path.parent_path());
}

Status GrowImage(const std::filesystem::path& path, int size_gb, const GrowTools& tools,
                 const ToolLimits& limits) {
  namespace fs = std::filesystem;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return NotFound("image " + path.string() + " is missing");
    return ErrnoError("stat " + path.string(), errno);
  }
  const std::uintmax_t wanted = static_cast<std::uintmax_t>(size_gb) << 30;
  const auto current = static_cast<std::uintmax_t>(st.st_size);
  if (wanted <= current) return OkStatus();
  // The copy's data (when it cannot be a reflink) and the growth.
  const std::uintmax_t allocated = static_cast<std::uintmax_t>(st.st_blocks) * 512;
  std::error_code ec;
  const fs::space_info space = fs::space(path.parent_path(), ec);
  if (ec) return IoError("free space of " + path.parent_path().string() + ": " + ec.message());
  if (space.available < allocated + (wanted - current)) {
    constexpr std::uintmax_t kMiB = 1ull << 20;
    return FailedPrecondition("growing to " + std::to_string(size_gb) + " GiB needs " +
                              std::to_string((allocated + wanted - current) / kMiB) +
                              " MiB free; " + std::to_string(space.available / kMiB) +
                              " MiB available on " + path.parent_path().string());
  }
  KINDLING_ASSIGN_OR_RETURN(const fs::path cp, FindTool(tools.cp));
  KINDLING_ASSIGN_OR_RETURN(const fs::path e2fsck, FindTool(tools.e2fsck));
  KINDLING_ASSIGN_OR_RETURN(const fs::path resize2fs, FindTool(tools.resize2fs));

  const fs::path temp = TempSiblingPath(path);
  struct Cleanup {
    const fs::path& file;
    bool keep = false;
    ~Cleanup() {
      if (!keep) ::unlink(file.c_str());
    }
  } cleanup{temp};
  auto run = [&](std::vector<std::string> argv, bool fsck) -> Status {
    const std::string name = fs::path(argv[0]).filename().string();
    KINDLING_ASSIGN_OR_RETURN(CommandResult ran, RunCommand(argv, limits));
    // e2fsck: 1 is "errors corrected"; more is damage left.
    if (ran.exit_code == 0 || (fsck && ran.exit_code == 1)) return OkStatus();
    const std::string message =
        name + " exited with " + std::to_string(ran.exit_code) + ": " + ran.output;
    return fsck ? Corruption(message) : IoError(message);
  };
  KINDLING_RETURN_IF_ERROR(
      run({cp.string(), "--reflink=auto", "--sparse=always", "--", path.string(), temp.string()},
          false));
  {
    UniqueFd fd(::open(temp.c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd.valid()) return ErrnoError("open " + temp.string(), errno);
    if (::ftruncate(fd.get(), static_cast<off_t>(wanted)) != 0)
      return ErrnoError("size " + temp.string(), errno);
  }
  KINDLING_RETURN_IF_ERROR(run({e2fsck.string(), "-f", "-p", temp.string()}, true));
  KINDLING_RETURN_IF_ERROR(run({resize2fs.string(), temp.string()}, false));
  {
    UniqueFd fd(::open(temp.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return ErrnoError("open " + temp.string(), errno);
    if (::fsync(fd.get()) != 0) return ErrnoError("fsync " + temp.string(), errno);
  }
  if (::rename(temp.c_str(), path.c_str()) != 0)
    return ErrnoError("rename onto " + path.string(), errno);
  cleanup.keep = true;
  return FsyncDirectory(path.parent_path());
}

Result<CommandResult> CheckAndRepairImage(const std::filesystem::path& path,
                                          const std::filesystem::path& e2fsck_tool,
                                          const ToolLimits& limits) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return NotFound("image " + path.string() + " is missing");
  return RunCommand({e2fsck_tool.string(), "-f", "-y", path.string()}, limits);
}

Result<std::vector<std::string>> ListImageVolumeIds(const std::filesystem::path& volumes_dir) {
  std::vector<std::string> ids;
  std::error_code ec;
  if (!std::filesystem::exists(volumes_dir, ec)) return ids;
  for (const auto& entry : std::filesystem::directory_iterator(volumes_dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.starts_with(".") || !name.ends_with(".img")) continue;
    ids.push_back(name.substr(0, name.size() - 4));
  }
  if (ec) return IoError("list " + volumes_dir.string() + ": " + ec.message());
  std::sort(ids.begin(), ids.end());
  return ids;
}

void RemoveStaleTempFiles(const std::filesystem::path& volumes_dir) {
  std::error_code ec;
  if (!std::filesystem::exists(volumes_dir, ec)) return;
  for (const auto& entry : std::filesystem::directory_iterator(volumes_dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.starts_with(".") && name.find(".tmp-") != std::string::npos)
      std::filesystem::remove(entry.path(), ec);
  }
}

}  // namespace kindling::reconcile
