#include "storage/local_store.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>

#include "common/files.h"

namespace kindling::storage {

namespace fs = std::filesystem;

bool IsValidObjectKey(std::string_view key) {
  if (key.empty() || key.size() > 1024 || key.front() == '/' || key.back() == '/') return false;
  for (char c : key) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-' || c == '/';
    if (!ok) return false;
  }
  std::size_t start = 0;
  while (start <= key.size()) {
    std::size_t end = key.find('/', start);
    if (end == std::string_view::npos) end = key.size();
    std::string_view part = key.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") return false;
    start = end + 1;
  }
  return true;
}

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
    if (!it->is_regular_file(ec)) continue;
    const std::string name = it->path().filename().string();
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

}  // namespace kindling::storage
