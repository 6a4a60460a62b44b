#include "storage/local_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <mutex>
#include <set>

#include "common/files.h"
#include "common/ids.h"

namespace kindling::storage {

namespace fs = std::filesystem;

Result<std::unique_ptr<LocalStore>> LocalStore::Open(const fs::path& root) {
  std::error_code ec;
  if (auto created = CreateDirectoriesDurably(root); !created)
    return std::unexpected(created.error().WithContext("create store directory"));
  if (!fs::is_directory(root, ec)) return InvalidArgument("not a directory: " + root.string());
  return std::unique_ptr<LocalStore>(new LocalStore(fs::absolute(root)));
}

Result<fs::path> LocalStore::PathFor(std::string_view key) const {
  if (!IsValidObjectKey(key)) return InvalidArgument("invalid object key: " + std::string(key));
  return root_ / fs::path(key);
}

Status LocalStore::Put(std::string_view key, std::string_view data) {
  KINDLING_ASSIGN_OR_RETURN(fs::path path, PathFor(key));
  KINDLING_RETURN_IF_ERROR(CreateDirectoriesDurably(path.parent_path()));
  return WriteFileAtomic(path, data);
}

Status LocalStore::PutIfAbsent(std::string_view key, std::string_view data) {
  KINDLING_ASSIGN_OR_RETURN(fs::path path, PathFor(key));
  KINDLING_RETURN_IF_ERROR(CreateDirectoriesDurably(path.parent_path()));
  auto written = WriteFileNoReplace(path, data);
  if (!written && written.error().kind() == ErrorKind::kAlreadyExists)
    return MakeError(ErrorKind::kAlreadyExists, "object already exists: " + std::string(key));
  return written;
}

Result<std::string> LocalStore::Get(std::string_view key) {
  KINDLING_ASSIGN_OR_RETURN(fs::path path, PathFor(key));
  auto data = ReadFile(path);
  if (!data && data.error().is_not_found())
    return NotFound("object not found: " + std::string(key));
  return data;
}

Result<std::uint64_t> LocalStore::Head(std::string_view key) {
  KINDLING_ASSIGN_OR_RETURN(fs::path path, PathFor(key));
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      return NotFound("object not found: " + std::string(key));
    return ErrnoError("stat " + path.string(), errno);
  }
  return static_cast<std::uint64_t>(st.st_size);
}

Status LocalStore::Delete(std::string_view key) {
  KINDLING_ASSIGN_OR_RETURN(fs::path path, PathFor(key));
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    return ErrnoError("delete " + path.string(), errno);
  return OkStatus();
}

Result<std::vector<ObjectInfo>> LocalStore::List(std::string_view prefix) {
  // Walk only the deepest directory the prefix names, not the whole store.
  std::string_view dir_part =
      prefix.substr(0, prefix.rfind('/') == std::string_view::npos ? 0 : prefix.rfind('/'));
  fs::path start = dir_part.empty() ? root_ : root_ / fs::path(dir_part);
  std::vector<ObjectInfo> out;
  std::error_code ec;
  if (!fs::is_directory(start, ec)) return out;
  fs::recursive_directory_iterator it(start, ec), end;
  if (ec) return IoError("list " + start.string() + ": " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) return IoError("list " + start.string() + ": " + ec.message());
    const std::string name = it->path().filename().string();
    if (it->is_directory(ec)) {
      // Batches' staging folders, and anything else hidden.
      if (!name.empty() && name.front() == '.') it.disable_recursion_pending();
      continue;
    }
    if (!it->is_regular_file(ec)) continue;
    if (!name.empty() && name.front() == '.') continue;  // temp files in flight
    std::string key = fs::relative(it->path(), root_, ec).generic_string();
    if (key.compare(0, prefix.size(), prefix) != 0) continue;
    const auto size = static_cast<std::uint64_t>(it->file_size(ec));
    const auto written = it->last_write_time(ec);
    const std::int64_t modified_ms =
        ec ? 0
           : std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::file_clock::to_sys(written).time_since_epoch())
                 .count();
    out.push_back({std::move(key), size, modified_ms});
  }
  std::sort(out.begin(), out.end(),
            [](const ObjectInfo& a, const ObjectInfo& b) { return a.key < b.key; });
  return out;
}

std::string LocalStore::Describe() const { return "file://" + root_.string(); }

namespace {

constexpr std::string_view kStagingDir = ".staging";
// A staging folder is created under this suffix and renamed once locked, so
// that no one takes a folder about to be locked for an abandoned one.
constexpr std::string_view kNewSuffix = ".new";

// Removes the staging folders no batch holds. A folder still under its
// creation name and not locked is removed once a minute old (its creator
// died between mkdir and flock).
void RemoveAbandonedStaging(const fs::path& staging) {
  std::error_code ec;
  for (fs::directory_iterator it(staging, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path path = it->path();
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid() || ::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) continue;
    if (path.filename().string().ends_with(kNewSuffix)) {
      struct stat st {};
      if (::fstat(fd.get(), &st) != 0 || st.st_mtime > ::time(nullptr) - 60) continue;
    }
    std::error_code remove_ec;
    fs::remove_all(path, remove_ec);
  }
}

}  // namespace

class LocalStore::Batch final : public PutBatch {
 public:
  Batch(const LocalStore& store, fs::path dir, UniqueFd lock)
      : store_(store), dir_(std::move(dir)), lock_(std::move(lock)) {}

  ~Batch() override {
    if (committed_) return;
    for (const Staged& s : staged_)
      if (!s.moved) ::unlink(s.staged.c_str());
    ::rmdir(dir_.c_str());
  }

  Status Put(std::string_view key, std::string_view data) override {
    KINDLING_ASSIGN_OR_RETURN(fs::path target, store_.PathFor(key));
    fs::path staged = dir_ / ("." + std::to_string(next_.fetch_add(1, std::memory_order_relaxed)));
    KINDLING_RETURN_IF_ERROR(WriteNewFileUnsynced(staged, data));
    std::lock_guard lock(mu_);
    staged_.push_back({std::move(staged), std::move(target)});
    return OkStatus();
  }

  Status Commit() override {
    std::lock_guard lock(mu_);
    // Content first: nothing is moved into place before all of it is
    // durable. The first fdatasync flushes the disk cache; most later ones
    // find their file's data and size already on disk.
    for (const Staged& s : staged_) KINDLING_RETURN_IF_ERROR(FdatasyncFile(s.staged));
    std::set<fs::path> parents;
    for (Staged& s : staged_) {
      if (parents.insert(s.target.parent_path()).second)
        KINDLING_RETURN_IF_ERROR(CreateDirectoriesDurably(s.target.parent_path()));
      if (::rename(s.staged.c_str(), s.target.c_str()) != 0)
        return ErrnoError("rename " + s.staged.string() + " to " + s.target.string(), errno);
      s.moved = true;
    }
    for (const fs::path& parent : parents) KINDLING_RETURN_IF_ERROR(FsyncDirectory(parent));
    committed_ = true;
    ::rmdir(dir_.c_str());
    return OkStatus();
  }

 private:
  struct Staged {
    fs::path staged;
    fs::path target;
    bool moved = false;
  };

  const LocalStore& store_;
  const fs::path dir_;
  const UniqueFd lock_;  // flock held while the batch lives
  std::atomic<std::uint64_t> next_{0};
  std::mutex mu_;
  std::vector<Staged> staged_;
  bool committed_ = false;
};

Result<std::unique_ptr<PutBatch>> LocalStore::NewBatch() {
  const fs::path staging = root_ / kStagingDir;
  KINDLING_RETURN_IF_ERROR(CreateDirectoriesDurably(staging));
  RemoveAbandonedStaging(staging);
  const std::string id = NewUuidV7();
  const fs::path creating = staging / (id + std::string(kNewSuffix));
  const fs::path dir = staging / id;
  if (::mkdir(creating.c_str(), 0700) != 0)
    return ErrnoError("create staging folder " + creating.string(), errno);
  UniqueFd lock(::open(creating.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!lock.valid() || ::flock(lock.get(), LOCK_EX) != 0 ||
      ::rename(creating.c_str(), dir.c_str()) != 0) {
    const int e = errno;
    ::rmdir(creating.c_str());
    return ErrnoError("set up staging folder " + dir.string(), e);
  }
  return std::make_unique<Batch>(*this, dir, std::move(lock));
}

}  // namespace kindling::storage
