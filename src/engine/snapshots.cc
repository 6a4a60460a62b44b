#include "engine/snapshots.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <set>

namespace kindling::engine {
namespace {

constexpr std::string_view kMagic = "KNDLSNP1";
constexpr std::string_view kPending = ".pending";
constexpr std::string_view kSnap = ".snap";
constexpr std::string_view kDigests = ".digests";

void PutU16(std::string& out, std::uint16_t v) {
  for (int i = 0; i < 2; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void PutU32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void PutU64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// Reads little-endian fields from a byte string; `ok` turns false on the
// first read past its end.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  std::uint64_t Uint(int bytes) {
    if (in_.size() < static_cast<std::size_t>(bytes)) {
      ok = false;
      return 0;
    }
    std::uint64_t v = 0;
    for (int i = 0; i < bytes; ++i)
      v |= std::uint64_t{static_cast<unsigned char>(in_[static_cast<std::size_t>(i)])} << (8 * i);
    in_.remove_prefix(static_cast<std::size_t>(bytes));
    return v;
  }
  std::string_view Bytes(std::size_t n) {
    if (in_.size() < n) {
      ok = false;
      return {};
    }
    std::string_view v = in_.substr(0, n);
    in_.remove_prefix(n);
    return v;
  }
  std::size_t left() const { return in_.size(); }
  bool ok = true;

 private:
  std::string_view in_;
};

// The backup id a file of the folder belongs to, and its kind (its suffix);
// nullopt for a name this folder never holds (temp files included).
std::optional<std::pair<std::string, std::string_view>> Classify(const std::string& name) {
  for (std::string_view suffix : {kPending, kSnap, kDigests}) {
    if (name.size() > suffix.size() && name.ends_with(suffix))
      return std::pair{name.substr(0, name.size() - suffix.size()), suffix};
  }
  return std::nullopt;
}

Status RemoveDurably(const std::filesystem::path& path) {
  std::error_code ec;
  std::filesystem::remove(path, ec);
  if (ec) return IoError("remove " + path.string() + ": " + ec.message());
  return OkStatus();
}

}  // namespace

std::string EncodeSnapshotDigests(const SnapshotDigests& d) {
  std::string out(kMagic);
  PutU16(out, static_cast<std::uint16_t>(d.volume_id.size()));
  out += d.volume_id;
  PutU16(out, static_cast<std::uint16_t>(d.backup_id.size()));
  out += d.backup_id;
  PutU64(out, d.image_size);
  PutU32(out, d.chunk_size);
  PutU64(out, d.chunks.size());
  for (const crypto::Digest& c : d.chunks) out += crypto::DigestBytes(c);
  out += crypto::DigestBytes(crypto::Sha256Of(out));
  return out;
}

Result<SnapshotDigests> DecodeSnapshotDigests(std::string_view bytes) {
  if (bytes.size() < kMagic.size() + 32 || !bytes.starts_with(kMagic))
    return Corruption("snapshot digests: not a digests file");
  const std::string_view body = bytes.substr(0, bytes.size() - 32);
  if (crypto::DigestBytes(crypto::Sha256Of(body)) != bytes.substr(body.size()))
    return Corruption("snapshot digests: checksum mismatch");
  Reader r(body.substr(kMagic.size()));
  SnapshotDigests d;
  d.volume_id = std::string(r.Bytes(r.Uint(2)));
  d.backup_id = std::string(r.Bytes(r.Uint(2)));
  d.image_size = r.Uint(8);
  d.chunk_size = static_cast<std::uint32_t>(r.Uint(4));
  const std::uint64_t count = r.Uint(8);
  if (!r.ok || d.chunk_size == 0 || count != (d.image_size + d.chunk_size - 1) / d.chunk_size ||
      r.left() != count * 32)
    return Corruption("snapshot digests: inconsistent header");
  d.chunks.resize(count);
  for (crypto::Digest& c : d.chunks) {
    const std::string_view raw = r.Bytes(32);
    std::copy(raw.begin(), raw.end(), c.begin());
  }
  return d;
}

Result<SnapshotSupport> ProbeSnapshotSupport(const std::filesystem::path& dir, const ExtentFs& fs) {
  std::string name = (dir / ".kindling-reflink-probe-XXXXXX").string();
  UniqueFd source(::mkstemp(name.data()));
  if (!source.valid()) return ErrnoError("create a file in " + dir.string(), errno);
  const std::filesystem::path source_path = name;
  const std::filesystem::path clone_path = name + ".clone";
  auto cleanup = [&] {
    std::error_code ec;
    std::filesystem::remove(source_path, ec);
    std::filesystem::remove(clone_path, ec);
  };
  SnapshotSupport support;
  auto info = fs.Info(source.get());
  if (!info) {
    cleanup();
    return std::unexpected(info.error());
  }
  support.filesystem = info->name;
  const std::string block(4096, 'k');
  UniqueFd clone(::open(clone_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (clone.valid() &&
      ::pwrite(source.get(), block.data(), block.size(), 0) == static_cast<ssize_t>(block.size()) &&
      ::fsync(source.get()) == 0)
    support.reflink = fs.Clone(source.get(), clone.get()).has_value();
  cleanup();
  return support;
}

std::filesystem::path SnapshotDir::FolderOf(const std::filesystem::path& image) {
  return image.parent_path() / ("." + image.filename().string() + ".snapshots");
}

Result<SnapshotDir> SnapshotDir::Open(const std::filesystem::path& image) {
  SnapshotDir dir;
  dir.folder_ = FolderOf(image);
  KINDLING_RETURN_IF_ERROR(CreateDirectoriesDurably(dir.folder_));
  dir.lock_ = UniqueFd(::open(dir.folder_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir.lock_.valid()) return ErrnoError("open " + dir.folder_.string(), errno);
  if (::flock(dir.lock_.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK)
      return FailedPrecondition("another backup of " + image.string() + " is running (" +
                                dir.folder_.string() + " is locked)");
    return ErrnoError("lock " + dir.folder_.string(), errno);
  }
  ::fchmod(dir.lock_.get(), 0700);

  // What the folder holds, by backup id.
  std::map<std::string, std::set<std::string_view>> kinds;
  std::vector<std::filesystem::path> stray;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir.folder_, ec)) {
    const std::string name = entry.path().filename().string();
    if (auto c = Classify(name); c && entry.is_regular_file())
      kinds[c->first].insert(c->second);
    else
      stray.push_back(entry.path());
  }
  if (ec) return IoError("list " + dir.folder_.string() + ": " + ec.message());
  // The newest id with both a snapshot and its digests is the previous
  // snapshot (backup ids are time-ordered); everything else goes.
  for (auto it = kinds.rbegin(); it != kinds.rend(); ++it) {
    if (!dir.previous_ && it->second.contains(kSnap) && it->second.contains(kDigests)) {
      dir.previous_ = CommittedSnapshot{it->first, dir.folder_ / (it->first + std::string(kSnap)),
                                        dir.folder_ / (it->first + std::string(kDigests))};
      continue;
    }
    for (std::string_view kind : it->second)
      stray.push_back(dir.folder_ / (it->first + std::string(kind)));
  }
  for (const auto& path : stray) {
    std::filesystem::remove_all(path, ec);
    if (ec) return IoError("remove " + path.string() + ": " + ec.message());
  }
  if (!stray.empty()) KINDLING_RETURN_IF_ERROR(FsyncDirectory(dir.folder_));
  return dir;
}

SnapshotDir::~SnapshotDir() {
  if (lock_.valid()) Discard();
}

Result<std::filesystem::path> SnapshotDir::Take(const ExtentFs& fs, int image_fd,
                                                std::string_view backup_id) {
  const std::filesystem::path path = folder_ / (std::string(backup_id) + std::string(kPending));
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0400));
  if (!fd.valid()) return ErrnoError("create " + path.string(), errno);
  pending_id_ = std::string(backup_id);
  if (auto cloned = fs.Clone(image_fd, fd.get()); !cloned) {
    Discard();
    return std::unexpected(cloned.error());
  }
  return path;
}

Status SnapshotDir::Commit(const SnapshotDigests& digests) {
  if (pending_id_ != digests.backup_id)
    return InternalError("snapshot commit for " + digests.backup_id + ", but the clone is of '" +
                         pending_id_ + "'");
  const std::string id = pending_id_;
  // The clone's extents durable first (not in Take: a VM may be paused
  // around it).
  {
    const std::filesystem::path pending = folder_ / (id + std::string(kPending));
    UniqueFd fd(::open(pending.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return ErrnoError("open " + pending.string(), errno);
    if (::fsync(fd.get()) != 0) return ErrnoError("fsync " + pending.string(), errno);
  }
  KINDLING_RETURN_IF_ERROR(WriteFileAtomic(folder_ / (id + std::string(kDigests)),
                                           EncodeSnapshotDigests(digests), 0400));
  std::error_code ec;
  std::filesystem::rename(folder_ / (id + std::string(kPending)),
                          folder_ / (id + std::string(kSnap)), ec);
  if (ec) return IoError("rename snapshot " + id + ": " + ec.message());
  pending_id_.clear();
  KINDLING_RETURN_IF_ERROR(FsyncDirectory(folder_));
  if (previous_ && previous_->backup_id != id) {
    KINDLING_RETURN_IF_ERROR(RemoveDurably(previous_->snap));
    KINDLING_RETURN_IF_ERROR(RemoveDurably(previous_->digests));
    KINDLING_RETURN_IF_ERROR(FsyncDirectory(folder_));
  }
  previous_ = CommittedSnapshot{id, folder_ / (id + std::string(kSnap)),
                                folder_ / (id + std::string(kDigests))};
  return OkStatus();
}

void SnapshotDir::Discard() {
  if (pending_id_.empty()) return;
  std::error_code ec;
  std::filesystem::remove(folder_ / (pending_id_ + std::string(kPending)), ec);
  pending_id_.clear();
}

void SnapshotDir::RemoveIfEmpty() {
  Discard();
  std::error_code ec;
  if (std::filesystem::is_empty(folder_, ec) && !ec) {
    lock_ = UniqueFd();
    std::filesystem::remove(folder_, ec);
    if (!ec) (void)FsyncDirectory(folder_.parent_path());
  }
}

}  // namespace kindling::engine
